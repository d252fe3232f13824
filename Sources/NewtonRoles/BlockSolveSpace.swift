import NewtonCore
import NewtonTraining

/// One diagonal block's damped Gauss-Newton system `(s·J_bᵀBJ_b + μI) x = −g_b`,
/// solved on its owner from the cached Jacobian with the same CG the driver
/// uses, on scratch vectors of its own (the block's server vectors other
/// than the solution and residual are left alone).
final class BlockSolveSpace: KrylovSpace {
    /// The right-hand side (as `.gradient`) and the solver's vectors.
    let vectors: VectorStore
    private let cache: BlockJacobian
    private let loss: Loss
    private let outputs: [Float]
    private let curvatureScale: Float
    private let damping: Double
    /// True once the driver has told this solve to stop (a straggler).
    private let stopped: @Sendable () -> Bool
    /// Extra time per iteration, to play a straggler in tests.
    private let iterationDelay: Duration

    init(
        rightHandSide: [Float], label: String, cache: BlockJacobian, loss: Loss, outputs: [Float], curvatureScale: Float,
        damping: Double, stopped: @escaping @Sendable () -> Bool, iterationDelay: Duration
    ) {
        vectors = VectorStore(size: rightHandSide.count, label: label)
        vectors[.gradient] = rightHandSide
        self.cache = cache
        self.loss = loss
        self.outputs = outputs
        self.curvatureScale = curvatureScale
        self.damping = damping
        self.stopped = stopped
        self.iterationDelay = iterationDelay
    }

    /// CG from 0, stopped at ‖r‖ ≤ tolerance·‖g_b‖; the solution is left in
    /// `vectors[.direction]`, the residual in `vectors[.residual]`.
    nonisolated(nonsending) func solve(tolerance: Double, maxIterations: Int) async throws -> SolveReport {
        let norm = try vectors.run([.dot(.gradient, .gradient)])[0].squareRoot()
        return try await ConjugateGradient(tolerance: tolerance, maxIterations: maxIterations)
            .solve(in: self, rhs: .gradient, gradientNorm: norm)
    }

    nonisolated(nonsending) func run(_ program: [VectorOp]) async throws -> [Double] {
        try vectors.run(program)
    }

    nonisolated(nonsending) func apply(_ x: VectorName, into y: VectorName, first prelude: [VectorOp], then program: [VectorOp])
        async throws -> [Double]
    {
        _ = try vectors.run(prelude)
        vectors[y] = cache.gaussNewtonProduct(vectors.vector(x), loss: loss, outputs: outputs, scale: curvatureScale)
        return try vectors.run([.axpy(damping, x, y)] + program)
    }

    /// Between iterations the server's other requests get their turn.
    nonisolated(nonsending) func shouldStop() async throws -> Bool {
        if stopped() { return true }
        try Task.checkCancellation()
        if iterationDelay > .zero { try await Task.sleep(for: iterationDelay) } else { await Task.yield() }
        return false
    }
}
