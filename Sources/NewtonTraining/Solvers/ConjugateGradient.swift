/// Conjugate gradient on `A x = −g` from 0 (or a warm start), in any
/// `KrylovSpace`: the solution is left in `.direction`, the residual
/// `−g − A x` in `.residual`. Read it beside simpleNN's `opt/CG.m`:
///
///     r = −g − A x;  p = z = M⁻¹r
///     while ‖r‖ > tolerance·‖g‖ and iterations < max:
///         Ap = A p
///         [negative curvature: pᵀAp ≤ ε‖p‖² → stop, keep p]
///         α = rᵀz / pᵀAp;  x += α p;  r −= α Ap;  z = M⁻¹r
///         β = rᵀz_new / rᵀz;  p = z + β p   (sent with the next A p)
public struct ConjugateGradient: Sendable {
    /// What CG does at a direction of non-positive curvature.
    public enum Curvature: Sendable, Equatable {
        /// A is positive definite (a damped Gauss-Newton matrix): pᵀAp ≤ 0
        /// is an error.
        case positiveDefinite
        /// A may be indefinite (a damped Hessian): stop at pᵀAp ≤ ε‖p‖² and
        /// keep p in `.negativeCurvature`.
        case stopAtNegative(tolerance: Double)
    }

    /// What one iteration left, for a caller's monitor: the iteration and the
    /// quadratic model `φ(x) = ½xᵀAx + gᵀx` at the new iterate.
    public struct Progress: Sendable {
        public var iteration: Int
        public var model: Double
    }

    /// Stop at ‖r‖ ≤ tolerance · ‖g‖.
    public var tolerance: Double
    public var maxIterations: Int
    public var curvature: Curvature
    /// The element-wise inverse of a diagonal preconditioner M (nil: none).
    public var inversePreconditioner: VectorName?

    public init(tolerance: Double, maxIterations: Int, curvature: Curvature = .positiveDefinite, inversePreconditioner: VectorName? = nil) {
        self.tolerance = tolerance
        self.maxIterations = maxIterations
        self.curvature = curvature
        self.inversePreconditioner = inversePreconditioner
    }

    /// Solves `A x = −g` (`g` named `rhs`, `‖g‖` given) from `start` (already
    /// scaled) or 0. `monitor`, when given, sees every iteration's progress
    /// and may stop the solve by returning true.
    nonisolated(nonsending) public func solve(
        in space: some KrylovSpace, rhs g: VectorName, gradientNorm: Double, start: VectorName? = nil,
        monitor: ((Progress) async throws -> Bool)? = nil
    ) async throws -> SolveReport {
        try await space.begin(at: start)
        // z = M⁻¹r; z is r itself without a preconditioner.
        let z: VectorName = inversePreconditioner == nil ? .residual : .preconditionedResidual
        let precondition: [VectorOp] = inversePreconditioner.map { [.multiply(target: z, a: $0, b: .residual)] } ?? []
        let first = try await space.run(
            [.combine(target: .residual, terms: [VectorTerm(-1, g), VectorTerm(-1, .product)])] + precondition + [
                .copy(z, to: .conjugate), .dot(.residual, .residual), .dot(.residual, z),
            ])
        var (rr, rz) = (first[0], first[1])
        let stop = tolerance * gradientNorm
        var iterations = 0
        // The new direction p = z + βp rides on the next product's request.
        var nextDirection: [VectorOp] = []
        while true {
            if rr.squareRoot() <= stop { return SolveReport(iterations: iterations, outcome: .converged) }
            if iterations >= maxIterations { return SolveReport(iterations: iterations, outcome: .iterationLimit) }
            if try await space.shouldStop() { return SolveReport(iterations: iterations, outcome: .stopped) }

            let pAp: Double
            switch curvature {
            case .positiveDefinite:
                pAp = try await space.apply(.conjugate, into: .product, first: nextDirection, then: [.dot(.conjugate, .product)])[0]
                guard pAp > 0 else {
                    throw TrainingError(
                        .nonFinite, "CG met pᵀAp = \(pAp) at iteration \(iterations + 1); the operator should be positive definite")
                }
            case .stopAtNegative(let epsilon):
                let dots = try await space.apply(
                    .conjugate, into: .product, first: nextDirection, then: [.dot(.conjugate, .product), .dot(.conjugate, .conjugate)])
                pAp = dots[0]
                if pAp <= epsilon * dots[1] {
                    _ = try await space.run([.copy(.conjugate, to: .negativeCurvature)])
                    return SolveReport(iterations: iterations, outcome: .negativeCurvature, negativeCurvature: pAp / dots[1])
                }
            }

            iterations += 1
            let alpha = rz / pAp
            // φ(x) = ½gᵀx − ½rᵀx, since Ax = −g − r: two more dots, only for a monitor.
            let modelDots: [VectorOp] = monitor == nil ? [] : [.dot(g, .direction), .dot(.residual, .direction)]
            let step = try await space.run(
                [.axpy(alpha, .conjugate, .direction), .axpy(-alpha, .product, .residual)] + precondition + [
                    .dot(.residual, .residual), .dot(.residual, z),
                ] + modelDots)
            let beta = try checked(step[1] / rz, "CG β")
            (rr, rz) = (step[0], step[1])
            nextDirection = [.axpby(1, z, beta, .conjugate)]
            if let monitor, try await monitor(Progress(iteration: iterations, model: 0.5 * step[2] - 0.5 * step[3])) {
                return SolveReport(iterations: iterations, outcome: .stalledProgress)
            }
        }
    }
}
