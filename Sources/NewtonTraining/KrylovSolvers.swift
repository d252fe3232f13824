/// `y = A x` for a symmetric (possibly indefinite) operator on server-side
/// vectors: a damped Gauss-Newton matrix, a damped Hessian, or a test matrix.
public protocol LinearOperator: Sendable {
    func apply(_ x: VectorName, into y: VectorName) async throws
}

extension VectorName {
    /// A direction of negative curvature found by CG.
    public static let negativeCurvature: VectorName = "negative-curvature"
    /// The previous solve's solution (warm starts).
    public static let previousDirection: VectorName = "previous-direction"
    /// The preconditioned residual `M⁻¹ r` of preconditioned CG.
    static let preconditionedResidual: VectorName = "preconditioned-residual"
    /// A random vector for probing curvature.
    public static let probe: VectorName = "probe"
    /// `Σ_r ∇ξ_r²`, the empirical Fisher diagonal of a batch.
    static let squaredGradient: VectorName = "squared-gradient"
    /// The inverse diagonal preconditioner `M⁻¹`.
    static let inversePreconditioner: VectorName = "inverse-preconditioner"
    /// Where the Newton part waits while a probe runs.
    static let probeKept: VectorName = "probe-kept-direction"
    static let shadowResidual: VectorName = "bicgstab-shadow"
    static let bicgstabV: VectorName = "bicgstab-v"
    static let bicgstabS: VectorName = "bicgstab-s"
    static let bicgstabT: VectorName = "bicgstab-t"
    /// The k-th CG iterate kept for backtracking.
    static func cgIterate(_ k: Int) -> VectorName { VectorName(rawValue: "cg-iterate-\(k)") }
}

/// How a Krylov solve ended.
public struct SolveReport: Sendable, Equatable {
    public enum Outcome: String, Sendable {
        case converged
        case iterationLimit = "iteration-limit"
        /// CG met pᵀAp ≤ ε‖p‖²; the direction is in `.negativeCurvature`.
        case negativeCurvature = "negative-curvature"
        /// Martens' relative-progress rule stopped CG.
        case stalledProgress = "relative-progress"
        /// BiCG-STAB broke down (a zero inner product).
        case breakdown
    }

    public var iterations: Int
    public var outcome: Outcome
    /// `pᵀAp / ‖p‖²` of the negative-curvature direction, when one was found.
    public var negativeCurvature: Double?
    /// Iterates kept for backtracking, in CG order (the final one last).
    public var keptIterates: [VectorName]
}

/// Conjugate gradient and BiCG-STAB on `A x = −g`, with every vector on the
/// servers and only scalars (α, β, ω, dots) on the driver. The solution is
/// left in `.direction` and the residual `−g − A x` in `.residual`.
public struct KrylovSolver: Sendable {
    public let cluster: ClusterCoordinator

    public init(cluster: ClusterCoordinator) {
        self.cluster = cluster
    }

    /// Options of a CG solve.
    public struct CGOptions: Sendable {
        /// Stop at ‖r‖ ≤ tolerance · ‖g‖.
        public var tolerance: Double
        public var maxIterations: Int
        /// Start from this vector instead of 0 (a warm start, already scaled).
        public var start: VectorName?
        /// Stop at pᵀAp ≤ ε‖p‖² and keep p; nil treats it as an error (A must
        /// be positive definite, as a damped Gauss-Newton matrix is).
        public var negativeCurvatureTolerance: Double?
        /// Martens' rule: stop at iteration i > k = max(10, 0.1 i) once
        /// `(φ_i − φ_{i−k}) / φ_i < k · 5e-4`, with φ the quadratic model.
        public var relativeProgress: Bool
        /// Keep the iterates at iterations ⌈1.3^j⌉ (and the last) for backtracking.
        public var keepIterates: Bool
        /// The inverse of a diagonal preconditioner M, element-wise: CG then
        /// runs on `M⁻¹A` (preconditioned CG).
        public var inversePreconditioner: VectorName?

        public init(
            tolerance: Double, maxIterations: Int, start: VectorName? = nil, negativeCurvatureTolerance: Double? = nil,
            relativeProgress: Bool = false, keepIterates: Bool = false, inversePreconditioner: VectorName? = nil
        ) {
            self.inversePreconditioner = inversePreconditioner
            self.tolerance = tolerance
            self.maxIterations = maxIterations
            self.start = start
            self.negativeCurvatureTolerance = negativeCurvatureTolerance
            self.relativeProgress = relativeProgress
            self.keepIterates = keepIterates
        }
    }

    /// CG on `A x = −g` (`g` in `gradient`, its norm `gradientNorm`).
    public func conjugateGradient(
        _ A: some LinearOperator, gradient g: VectorName, gradientNorm: Double,
        options: CGOptions
    ) async throws -> SolveReport {
        if let start = options.start {
            try await cluster.run([.combine(target: .direction, terms: [VectorTerm(1, start)])])
            try await A.apply(.direction, into: .product)
        } else {
            try await cluster.run([.fill(target: .direction, value: 0), .fill(target: .product, value: 0)])
        }
        // z = M⁻¹r (z is r itself without a preconditioner).
        let z: VectorName = options.inversePreconditioner == nil ? .residual : .preconditionedResidual
        func precondition() -> [VectorOp] {
            options.inversePreconditioner.map { [.multiply(target: z, a: $0, b: .residual)] } ?? []
        }
        let start = try await cluster.run(
            [.combine(target: .residual, terms: [VectorTerm(-1, g), VectorTerm(-1, .product)])] + precondition() + [
                .combine(target: .conjugate, terms: [VectorTerm(1, z)]),
                .dot(.residual, .residual), .dot(.residual, z),
            ])
        var (rr, rz) = (start[0], start[1])
        let stop = options.tolerance * gradientNorm
        let keepAt = Set((0..<40).map { Int(pow13($0).rounded(.up)) })
        var kept = [VectorName]()
        var models = [Double]()  // φ(x_i), i = 0, 1, …
        var iterations = 0
        var outcome = SolveReport.Outcome.iterationLimit
        var negativeCurvature: Double?
        while true {
            if rr.squareRoot() <= stop {
                outcome = .converged
                break
            }
            if iterations >= options.maxIterations { break }
            try await A.apply(.conjugate, into: .product)
            let dots = try await cluster.run([.dot(.conjugate, .product), .dot(.conjugate, .conjugate)])
            let (pAp, pp) = (dots[0], dots[1])
            if let epsilon = options.negativeCurvatureTolerance {
                if pAp <= epsilon * pp {
                    try await cluster.run([.combine(target: .negativeCurvature, terms: [VectorTerm(1, .conjugate)])])
                    negativeCurvature = pAp / pp
                    outcome = .negativeCurvature
                    break
                }
            } else if !(pAp > 0) {
                throw TrainingError(
                    .nonFinite, "CG met pᵀAp = \(pAp) at iteration \(iterations + 1); the operator should be positive definite")
            }
            iterations += 1
            let alpha = rz / pAp
            let step = try await cluster.run(
                [
                    .combine(target: .direction, terms: [VectorTerm(1, .direction), VectorTerm(alpha, .conjugate)]),
                    .combine(target: .residual, terms: [VectorTerm(1, .residual), VectorTerm(-alpha, .product)]),
                ] + precondition() + [
                    .dot(.residual, .residual), .dot(g, .direction), .dot(.residual, .direction), .dot(.residual, z),
                ])
            let beta = try checked(step[3] / rz, "CG β")
            (rr, rz) = (step[0], step[3])
            try await cluster.run([.combine(target: .conjugate, terms: [VectorTerm(1, z), VectorTerm(beta, .conjugate)])])
            // φ(x) = ½xᵀAx + gᵀx = ½gᵀx − ½rᵀx, since Ax = −g − r.
            models.append(0.5 * step[1] - 0.5 * step[2])
            if options.keepIterates && keepAt.contains(iterations) {
                let name = VectorName.cgIterate(kept.count)
                try await cluster.run([.combine(target: name, terms: [VectorTerm(1, .direction)])])
                kept.append(name)
            }
            if options.relativeProgress {
                let i = models.count
                let k = max(10, Int((0.1 * Double(i)).rounded(.up)))
                if i > k, models[i - 1] < 0, (models[i - 1] - models[i - 1 - k]) / models[i - 1] < Double(k) * 5e-4 {
                    outcome = .stalledProgress
                    break
                }
            }
        }
        if options.keepIterates && (kept.isEmpty || !keepAt.contains(iterations)) {
            let name = VectorName.cgIterate(kept.count)
            try await cluster.run([.combine(target: name, terms: [VectorTerm(1, .direction)])])
            kept.append(name)
        }
        return SolveReport(iterations: iterations, outcome: outcome, negativeCurvature: negativeCurvature, keptIterates: kept)
    }

    /// BiCG-STAB (van der Vorst) on `A x = −g` from `start` or 0: no
    /// symmetry or definiteness needed, two products per iteration.
    public func bicgstab(
        _ A: some LinearOperator, gradient g: VectorName, gradientNorm: Double,
        tolerance: Double, maxIterations: Int, start: VectorName? = nil
    ) async throws -> SolveReport {
        if let start {
            try await cluster.run([.combine(target: .direction, terms: [VectorTerm(1, start)])])
            try await A.apply(.direction, into: .product)
        } else {
            try await cluster.run([.fill(target: .direction, value: 0), .fill(target: .product, value: 0)])
        }
        var rr = try await cluster.run([
            .combine(target: .residual, terms: [VectorTerm(-1, g), VectorTerm(-1, .product)]),
            .combine(target: .shadowResidual, terms: [VectorTerm(1, .residual)]),
            .fill(target: .conjugate, value: 0), .fill(target: .bicgstabV, value: 0),
            .dot(.residual, .residual),
        ])[0]
        let stop = tolerance * gradientNorm
        var (rho, alpha, omega) = (1.0, 1.0, 1.0)
        var iterations = 0
        while iterations < maxIterations {
            if rr.squareRoot() <= stop {
                return SolveReport(iterations: iterations, outcome: .converged, negativeCurvature: nil, keptIterates: [])
            }
            iterations += 1
            let rhoNew = try await cluster.run([.dot(.shadowResidual, .residual)])[0]
            guard rhoNew != 0, omega != 0 else {
                return SolveReport(iterations: iterations, outcome: .breakdown, negativeCurvature: nil, keptIterates: [])
            }
            let beta = (rhoNew / rho) * (alpha / omega)
            rho = rhoNew
            // p = r + β(p − ωv)
            try await cluster.run([
                .combine(
                    target: .conjugate,
                    terms: [
                        VectorTerm(1, .residual), VectorTerm(beta, .conjugate), VectorTerm(-beta * omega, .bicgstabV),
                    ])
            ])
            try await A.apply(.conjugate, into: .bicgstabV)
            let shadowV = try await cluster.run([.dot(.shadowResidual, .bicgstabV)])[0]
            guard shadowV != 0 else {
                return SolveReport(iterations: iterations, outcome: .breakdown, negativeCurvature: nil, keptIterates: [])
            }
            alpha = rho / shadowV
            let ss = try await cluster.run([
                .combine(target: .bicgstabS, terms: [VectorTerm(1, .residual), VectorTerm(-alpha, .bicgstabV)]),
                .dot(.bicgstabS, .bicgstabS),
            ])[0]
            if ss.squareRoot() <= stop {
                rr = try await cluster.run([
                    .combine(target: .direction, terms: [VectorTerm(1, .direction), VectorTerm(alpha, .conjugate)]),
                    .combine(target: .residual, terms: [VectorTerm(1, .bicgstabS)]),
                    .dot(.residual, .residual),
                ])[0]
                return SolveReport(iterations: iterations, outcome: .converged, negativeCurvature: nil, keptIterates: [])
            }
            try await A.apply(.bicgstabS, into: .bicgstabT)
            let ts = try await cluster.run([.dot(.bicgstabT, .bicgstabS), .dot(.bicgstabT, .bicgstabT)])
            guard ts[1] > 0 else {
                return SolveReport(iterations: iterations, outcome: .breakdown, negativeCurvature: nil, keptIterates: [])
            }
            omega = ts[0] / ts[1]
            rr = try await cluster.run([
                .combine(
                    target: .direction, terms: [VectorTerm(1, .direction), VectorTerm(alpha, .conjugate), VectorTerm(omega, .bicgstabS)]),
                .combine(target: .residual, terms: [VectorTerm(1, .bicgstabS), VectorTerm(-omega, .bicgstabT)]),
                .dot(.residual, .residual),
            ])[0]
            _ = try checked(rr, "BiCG-STAB residual")
        }
        let outcome: SolveReport.Outcome = rr.squareRoot() <= stop ? .converged : .iterationLimit
        return SolveReport(iterations: iterations, outcome: outcome, negativeCurvature: nil, keptIterates: [])
    }
}

/// 1.3^j, the spacing of kept CG iterates (Martens 2010).
private func pow13(_ j: Int) -> Double {
    var x = 1.0
    for _ in 0..<j { x *= 1.3 }
    return x
}
