/// What both second-order trainers (Newton-CG and Hessian-free) share: how
/// far CG goes and the step control.
public struct SecondOrderOptions: Sendable, Equatable {
    /// CG stops at ‖r‖ ≤ ξ‖∇f‖.
    public var cgTolerance = 0.1
    public var cgMaxIterations = 250
    /// Levenberg–Marquardt damping and the Armijo line search.
    public var step = StepControl()

    /// At most this many CG iterations per solve, on the driver or a server.
    public static let maxCGIterations = 10_000

    public init() {}

    /// Every problem with these knobs, as messages naming the knob.
    public var problems: [String] {
        var p = [String]()
        if !(cgTolerance > 0 && cgTolerance < 1) { p.append("CG tolerance must be in (0, 1), got \(cgTolerance)") }
        if !(1...Self.maxCGIterations).contains(cgMaxIterations) {
            p.append("CG max iterations must be in 1...\(Self.maxCGIterations), got \(cgMaxIterations)")
        }
        return p + step.problems
    }
}

/// Levenberg–Marquardt damping and the Armijo line search: the knobs and
/// what the second-order trainers do with them.
public struct StepControl: Sendable, Equatable {
    /// Levenberg–Marquardt λ₀.
    public var initialLambda = 1.0
    /// λ is multiplied by this when ρ < `lowRatio`.
    public var lambdaIncrease = 1.5
    /// λ is multiplied by this when ρ ≥ `highRatio`.
    public var lambdaDecrease = 2.0 / 3.0
    public var lowRatio = 0.25
    public var highRatio = 0.75
    /// Armijo constant η.
    public var armijo = 1e-4
    /// Halvings of α before the line search gives up on this direction.
    public var maxLineSearchSteps = 20
    /// Give up (stop as `.stalled`) after this many failed line searches in a row.
    public var maxLineSearchFailures = 5

    public init() {}

    /// Every problem with these knobs, as messages naming the knob.
    public var problems: [String] {
        var p = [String]()
        if !(initialLambda >= 0) { p.append("initial lambda must be non-negative, got \(initialLambda)") }
        if !(lambdaIncrease > 1) { p.append("lambda increase must exceed 1, got \(lambdaIncrease)") }
        if !(lambdaDecrease > 0 && lambdaDecrease < 1) { p.append("lambda decrease must be in (0, 1), got \(lambdaDecrease)") }
        if !(lowRatio < highRatio) { p.append("low ratio \(lowRatio) must be below high ratio \(highRatio)") }
        if !(armijo > 0 && armijo < 0.5) { p.append("Armijo constant must be in (0, 0.5), got \(armijo)") }
        if maxLineSearchSteps < 1 { p.append("line search steps must be at least 1, got \(maxLineSearchSteps)") }
        if maxLineSearchFailures < 1 { p.append("line search failures must be at least 1, got \(maxLineSearchFailures)") }
        return p
    }

    /// How a line search ended: the accepted value (nil when the cap was
    /// hit), the step α (0 when nothing was accepted) and the halvings tried.
    struct Search: Sendable {
        var value: Double?
        var step: Double
        var steps: Int
        /// ‖∇f‖ at the accepted point when it was the first trial and the
        /// search was asked for its gradient (then left in that vector).
        var gradientNorm: Double? = nil
    }

    /// α = 1, ½, ¼ … until `f(θ + αd) ≤ f + η (α ∇fᵀd + ½α² dᵀHd)` on
    /// `batch` (all rows when nil), at most `maxLineSearchSteps` tries; the
    /// accepted point is left in `.trial`. The curvature term is 0 (plain
    /// Armijo) except along a direction of negative curvature, where it asks
    /// for a share of the decrease the curvature promises.
    ///
    /// With `firstTrialGradient`, the first trial (α = 1, which Newton steps
    /// usually take) computes ∇f into that vector in the same pass as f, so an
    /// accepted full step needs no second pass for the next gradient (Wang et
    /// al.'s pipelined function and gradient evaluation).
    func search(
        _ objective: Objective, on batch: Objective.Batch? = nil, from f: Double, slope gd: Double, curvature dHd: Double = 0,
        firstTrialGradient: VectorName? = nil
    ) async throws -> Search {
        var step = 1.0
        for tries in 1...maxLineSearchSteps {
            try await objective.cluster.run([.combine(target: .trial, terms: [VectorTerm(1, .weights), VectorTerm(step, .direction)])])
            let trial: Double
            let gradientNorm: Double?
            if tries == 1, let firstTrialGradient {
                let measured = try await objective.valueAndGradient(at: .trial, into: firstTrialGradient, on: batch)
                trial = measured.value
                gradientNorm = measured.gradientNorm
            } else {
                trial = try await objective.value(at: .trial, on: batch)
                gradientNorm = nil
            }
            if trial <= f + armijo * step * gd + armijo * 0.5 * step * step * dHd {
                return Search(value: trial, step: step, steps: tries, gradientNorm: gradientNorm)
            }
            step /= 2
        }
        return Search(value: nil, step: 0, steps: maxLineSearchSteps)
    }

    /// λ after a search: ×`lambdaIncrease` when ρ = actual / predicted
    /// reduction is below `lowRatio` (a non-negative prediction counts as a
    /// poor fit) or nothing was accepted, ×`lambdaDecrease` at or above
    /// `highRatio`. The prediction `α∇fᵀd + ½α² dᵀAd` leaves λ out.
    func nextLambda(_ lambda: Double, after search: Search, from f: Double, slope gd: Double, curvature dAd: Double) -> Double {
        guard let value = search.value else { return lambda * lambdaIncrease }
        let predicted = search.step * gd + 0.5 * search.step * search.step * dAd
        let ratio = predicted < 0 ? (value - f) / predicted : 0
        if ratio < lowRatio { return lambda * lambdaIncrease }
        if ratio >= highRatio { return lambda * lambdaDecrease }
        return lambda
    }
}
