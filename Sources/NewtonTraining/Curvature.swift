/// A curvature product on one iteration's sample: the Gauss-Newton
/// `(1/|S|) Σ JᵀBJ v` in either products mode, or the true Hessian
/// `(1/|S|) Σ ∇²ξ v` by R-operator passes on the workers.
struct Curvature: Sendable {
    /// The product, and where its sample is.
    enum Kind: Sendable {
        /// Gauss-Newton from the servers' cached Jacobian of the sample, whose
        /// network outputs these are (products mode `jacobian`).
        case cachedJacobian(outputs: [Float])
        /// Gauss-Newton by R-operator passes over the sample's shards on the
        /// workers (products mode `rop`).
        case gaussNewtonByROperator(shards: [RowShard])
        /// The true Hessian by R-operator passes over the sample's shards.
        case hessian(shards: [RowShard])
    }

    let cluster: ClusterCoordinator
    let kind: Kind
    /// 1/|S|.
    let scale: Double
}

/// `(C + μI) v` for a curvature product C and damping μ = λ + 1/(C·l).
struct DampedOperator: LinearOperator {
    let curvature: Curvature
    let damping: Double

    func apply(_ x: VectorName, into y: VectorName, first prelude: [VectorOp], then program: [VectorOp]) async throws -> [Double] {
        let cluster = curvature.cluster
        switch curvature.kind {
        case .cachedJacobian(let outputs):
            // The prelude rides on the servers' J_b x_b. The driver scales
            // u = s·B(Jx) before the servers' J_bᵀu, which the damping step
            // and the program follow in the same round trip.
            return try await cluster.gaussNewtonFromJacobian(
                direction: x, into: y, outputs: outputs, scale: curvature.scale, first: prelude, then: [.axpy(damping, x, y)] + program)
        case .gaussNewtonByROperator(let shards):
            // The workers read x from the servers, so the prelude goes first.
            if !prelude.isEmpty { _ = try await cluster.run(prelude) }
            try await cluster.gaussNewtonByROperator(at: .weights, direction: x, into: y, shards: shards)
            return try await cluster.run([.axpby(damping, x, curvature.scale, y)] + program)
        case .hessian(let shards):
            if !prelude.isEmpty { _ = try await cluster.run(prelude) }
            try await cluster.hessianProduct(at: .weights, direction: x, into: y, shards: shards)
            return try await cluster.run([.axpby(damping, x, curvature.scale, y)] + program)
        }
    }
}
