/// The name of a parameter-sized vector that lives, block by block, on the
/// servers: the weights, the gradient, the solver's vectors, optimiser state.
public struct VectorName: Hashable, Sendable, RawRepresentable, ExpressibleByStringLiteral, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }

    public static let weights: VectorName = "weights"
    public static let gradient: VectorName = "gradient"
    /// The solver's solution (the Newton direction d).
    public static let direction: VectorName = "direction"
    public static let residual: VectorName = "residual"
    /// CG's conjugate direction p.
    public static let conjugate: VectorName = "conjugate"
    /// A curvature product, e.g. `(G + λI) p`.
    public static let product: VectorName = "product"
    /// The line search's trial point θ + αd.
    public static let trial: VectorName = "trial"
    /// ∇f at the line search's first trial point, computed with its value.
    public static let trialGradient: VectorName = "trial-gradient"
    public static let momentum: VectorName = "momentum"
    public static let adamFirstMoment: VectorName = "adam-m"
    public static let adamSecondMoment: VectorName = "adam-v"
    /// A direction of negative curvature found by CG.
    public static let negativeCurvature: VectorName = "negative-curvature"
    /// The preconditioned residual `M⁻¹ r` of preconditioned CG.
    public static let preconditionedResidual: VectorName = "preconditioned-residual"
    /// BiCG-STAB's shadow residual r̂ and its v, s and t.
    public static let shadowResidual: VectorName = "bicgstab-shadow"
    public static let bicgstabV: VectorName = "bicgstab-v"
    public static let bicgstabS: VectorName = "bicgstab-s"
    public static let bicgstabT: VectorName = "bicgstab-t"
    /// Hessian-free: the previous solve's solution (warm starts).
    public static let previousDirection: VectorName = "previous-direction"
    /// Hessian-free: a random vector for probing curvature.
    public static let probe: VectorName = "probe"
    /// Hessian-free: `Σ_r ∇ξ_r²`, the empirical Fisher diagonal of a batch.
    public static let squaredGradient: VectorName = "squared-gradient"
    /// Hessian-free: the inverse diagonal preconditioner `M⁻¹`.
    public static let inversePreconditioner: VectorName = "inverse-preconditioner"
    /// Hessian-free: where the Newton part x waits while a probe runs, or
    /// while what it buys alone is measured.
    public static let newtonPart: VectorName = "newton-part"
    /// NEXT: the agent's gradient tracker yᵢ (its estimate of the average
    /// gradient of all agents' losses).
    public static let tracker: VectorName = "tracker"
    /// NEXT: π̃ᵢ = I·yᵢ − ∇gᵢ, the agent's estimate of the other agents'
    /// gradient sum.
    public static let othersGradient: VectorName = "others-gradient"
    /// NEXT: ∇gᵢ at the agent's previous weights.
    public static let previousGradient: VectorName = "previous-gradient"
    /// NEXT: the gradient of the agent's local problem at wᵢ,
    /// `∇gᵢ + π̃ᵢ + ∇r`, the right-hand side of its Gauss-Newton step.
    public static let surrogateGradient: VectorName = "surrogate-gradient"

    /// How many CG iterates Hessian-free may keep for backtracking.
    public static let maxKeptIterates = 64

    /// The k-th CG iterate kept for backtracking, `k < maxKeptIterates`.
    public static func cgIterate(_ k: Int) -> VectorName { VectorName(rawValue: "cg-iterate-\(k)") }

    /// Every name the trainers use. A server reached over the network accepts
    /// no other, so a request cannot make it allocate arbitrary vectors.
    public static let known: Set<VectorName> = Set(
        [
            weights, gradient, direction, residual, conjugate, product, trial, trialGradient, momentum, adamFirstMoment, adamSecondMoment,
            negativeCurvature, preconditionedResidual, shadowResidual, bicgstabV, bicgstabS, bicgstabT, previousDirection, probe,
            squaredGradient, inversePreconditioner, newtonPart, tracker, othersGradient, previousGradient, surrogateGradient,
        ] + (0..<maxKeptIterates).map(cgIterate))
}

/// One term `coefficient · vector` of a linear combination.
public struct VectorTerm: Sendable, Equatable {
    public var coefficient: Double
    public var vector: VectorName
    public init(_ coefficient: Double, _ vector: VectorName) {
        self.coefficient = coefficient
        self.vector = vector
    }
}

/// Adam's element-wise update of `weights` from `gradient` with moments `m`
/// and `v`, at 1-based step `step`.
public struct AdamUpdate: Sendable, Equatable {
    public var learningRate: Double
    public var beta1: Double
    public var beta2: Double
    public var epsilon: Double
    public var step: Int
    public init(learningRate: Double, beta1: Double, beta2: Double, epsilon: Double, step: Int) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.step = step
    }
}

/// One solver-side vector operation. A server runs a list of them on every
/// block it owns, in order, and answers one partial result per `dot`.
public enum VectorOp: Sendable, Equatable {
    /// `target = Σ_k c_k · v_k` (the target may appear among the terms;
    /// a vector not yet present on a server reads as zero).
    case combine(target: VectorName, terms: [VectorTerm])
    /// `target = value` in every entry.
    case fill(target: VectorName, value: Float)
    /// Appends the block's partial `⟨a, b⟩` to the answer.
    case dot(VectorName, VectorName)
    /// Adam's moment and weight update.
    case adam(AdamUpdate, weights: VectorName, gradient: VectorName, firstMoment: VectorName, secondMoment: VectorName)
    /// `target = a ⊙ b`, element-wise.
    case multiply(target: VectorName, a: VectorName, b: VectorName)
    /// `target = (scale · source + shift)^exponent`, element-wise (a
    /// diagonal preconditioner's inverse, for example).
    case power(target: VectorName, source: VectorName, scale: Double, shift: Double, exponent: Double)
}

/// A server's answer to a program for one block: the block's partial value
/// of each `dot`, in program order.
public struct BlockDots: Sendable, Equatable {
    /// Index of the block in the grid's canonical order.
    public var block: Int
    public var values: [Double]
    public init(block: Int, values: [Double]) {
        self.block = block
        self.values = values
    }
}

extension VectorOp {
    /// True for a `dot`, the one step that answers a value.
    public var isDot: Bool {
        if case .dot = self { return true } else { return false }
    }

    /// `target = source`.
    public static func copy(_ source: VectorName, to target: VectorName) -> VectorOp {
        .combine(target: target, terms: [VectorTerm(1, source)])
    }

    /// `y += a·x`.
    public static func axpy(_ a: Double, _ x: VectorName, _ y: VectorName) -> VectorOp {
        .combine(target: y, terms: [VectorTerm(1, y), VectorTerm(a, x)])
    }

    /// `y = a·x + b·y` in one pass: a product's scale and damping, or CG's
    /// `p = z + βp`.
    public static func axpby(_ a: Double, _ x: VectorName, _ b: Double, _ y: VectorName) -> VectorOp {
        .combine(target: y, terms: [VectorTerm(a, x), VectorTerm(b, y)])
    }

    /// `target = s·target`.
    public static func scale(_ target: VectorName, by s: Double) -> VectorOp {
        .combine(target: target, terms: [VectorTerm(s, target)])
    }
}
