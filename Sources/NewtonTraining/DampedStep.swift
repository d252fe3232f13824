/// The step both second-order trainers take along `.direction`: Armijo
/// backtracking, then the Levenberg–Marquardt update of λ.
struct DampedStep: Sendable {
    let armijo: Double
    let maxSteps: Int
    let lambdaIncrease: Double
    let lambdaDecrease: Double
    let lowRatio: Double
    let highRatio: Double

    /// How a line search ended: the accepted value (nil when the cap was
    /// hit), the step α (0 when nothing was accepted) and the halvings tried.
    struct Search: Sendable {
        var value: Double?
        var step: Double
        var steps: Int
    }

    /// α = 1, ½, ¼ … until `f(θ + αd) ≤ f + η α ∇fᵀd` on `batch` (all rows
    /// when nil), at most `maxSteps` tries; the accepted point is left in `.trial`.
    func search(_ objective: Objective, on batch: Objective.Batch? = nil, from f: Double, slope gd: Double) async throws -> Search {
        var step = 1.0
        for tries in 1...maxSteps {
            try await objective.cluster.run([.combine(target: .trial, terms: [VectorTerm(1, .weights), VectorTerm(step, .direction)])])
            let trial = try await objective.value(at: .trial, on: batch)
            if trial <= f + armijo * step * gd { return Search(value: trial, step: step, steps: tries) }
            step /= 2
        }
        return Search(value: nil, step: 0, steps: maxSteps)
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

extension NewtonOptions {
    var dampedStep: DampedStep {
        DampedStep(armijo: armijo, maxSteps: maxLineSearchSteps, lambdaIncrease: lambdaIncrease, lambdaDecrease: lambdaDecrease,
                   lowRatio: lowRatio, highRatio: highRatio)
    }
}

extension HessianFreeOptions {
    var dampedStep: DampedStep {
        DampedStep(armijo: armijo, maxSteps: maxLineSearchSteps, lambdaIncrease: lambdaIncrease, lambdaDecrease: lambdaDecrease,
                   lowRatio: lowRatio, highRatio: highRatio)
    }
}
