/// BiCG-STAB (van der Vorst 1992) on `A x = −g` from 0 or a warm start, in
/// any `KrylovSpace`: no symmetry or definiteness needed, two products per
/// iteration. The solution is left in `.direction`, the residual in
/// `.residual`.
public struct BiCGSTAB: Sendable {
    /// Stop at ‖r‖ ≤ tolerance · ‖g‖.
    public var tolerance: Double
    public var maxIterations: Int

    public init(tolerance: Double, maxIterations: Int) {
        self.tolerance = tolerance
        self.maxIterations = maxIterations
    }

    nonisolated(nonsending) public func solve(
        in space: some KrylovSpace, rhs g: VectorName, gradientNorm: Double, start: VectorName? = nil
    ) async throws -> SolveReport {
        try await space.begin(at: start)
        // Each residual update also answers ρ = ⟨r̂, r⟩ for the next iteration.
        let first = try await space.run([
            .combine(target: .residual, terms: [VectorTerm(-1, g), VectorTerm(-1, .product)]),
            .copy(.residual, to: .shadowResidual),
            .fill(target: .conjugate, value: 0), .fill(target: .bicgstabV, value: 0),
            .dot(.residual, .residual), .dot(.shadowResidual, .residual),
        ])
        var (rr, rhoNew) = (first[0], first[1])
        let stop = tolerance * gradientNorm
        var (rho, alpha, omega) = (1.0, 1.0, 1.0)
        var iterations = 0
        while iterations < maxIterations {
            if rr.squareRoot() <= stop { return SolveReport(iterations: iterations, outcome: .converged) }
            iterations += 1
            guard rhoNew != 0, omega != 0 else { return SolveReport(iterations: iterations, outcome: .breakdown) }
            let beta = (rhoNew / rho) * (alpha / omega)
            rho = rhoNew
            // p = r + β(p − ωv), in the same round trip as v = A p.
            let direction = VectorOp.combine(
                target: .conjugate, terms: [VectorTerm(1, .residual), VectorTerm(beta, .conjugate), VectorTerm(-beta * omega, .bicgstabV)])
            let shadowV = try await space.apply(
                .conjugate, into: .bicgstabV, first: [direction], then: [.dot(.shadowResidual, .bicgstabV)])[0]
            guard shadowV != 0 else { return SolveReport(iterations: iterations, outcome: .breakdown) }
            alpha = rho / shadowV
            // s = r − αv
            let ss = try await space.run([
                .combine(target: .bicgstabS, terms: [VectorTerm(1, .residual), VectorTerm(-alpha, .bicgstabV)]),
                .dot(.bicgstabS, .bicgstabS),
            ])[0]
            if ss.squareRoot() <= stop {
                _ = try await space.run([.axpy(alpha, .conjugate, .direction), .copy(.bicgstabS, to: .residual)])
                return SolveReport(iterations: iterations, outcome: .converged)
            }
            let ts = try await space.apply(
                .bicgstabS, into: .bicgstabT, first: [], then: [.dot(.bicgstabT, .bicgstabS), .dot(.bicgstabT, .bicgstabT)])
            guard ts[1] > 0 else { return SolveReport(iterations: iterations, outcome: .breakdown) }
            omega = ts[0] / ts[1]
            // x += αp + ωs, r = s − ωt
            let update = try await space.run([
                .combine(
                    target: .direction,
                    terms: [VectorTerm(1, .direction), VectorTerm(alpha, .conjugate), VectorTerm(omega, .bicgstabS)]),
                .combine(target: .residual, terms: [VectorTerm(1, .bicgstabS), VectorTerm(-omega, .bicgstabT)]),
                .dot(.residual, .residual), .dot(.shadowResidual, .residual),
            ])
            (rr, rhoNew) = (try checked(update[0], "BiCG-STAB residual"), update[1])
        }
        return SolveReport(iterations: iterations, outcome: rr.squareRoot() <= stop ? .converged : .iterationLimit)
    }
}
