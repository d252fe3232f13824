/// A curvature product on one iteration's sample: the Gauss-Newton
/// `(1/|S|) Σ JᵀBJ v` in either products mode, or the true Hessian
/// `(1/|S|) Σ ∇²ξ v` by R-operator passes on the workers.
struct Curvature: Sendable {
    enum Kind: Sendable {
        case gaussNewton(ProductsMode)
        case hessian
    }

    let cluster: ClusterCoordinator
    let kind: Kind
    let shards: [RowShard]
    /// The sample's outputs (jacobian mode only).
    let outputs: [Float]
    /// 1/|S|.
    let scale: Double
}

/// `(C + μI) v` for a curvature product C and damping μ = λ + 1/(C·l).
struct DampedOperator: LinearOperator {
    let curvature: Curvature
    let damping: Double

    func apply(_ x: VectorName, into y: VectorName) async throws {
        let cluster = curvature.cluster
        switch curvature.kind {
        case .gaussNewton(.jacobian):
            // The driver scales u = s·B(Jx) before the servers' J_bᵀu.
            try await cluster.gaussNewtonFromJacobian(direction: x, into: y, outputs: curvature.outputs, scale: curvature.scale)
            try await cluster.run([.axpy(damping, x, y)])
        case .gaussNewton(.rop):
            try await cluster.gaussNewtonByROperator(at: .weights, direction: x, into: y, shards: curvature.shards)
            try await cluster.run([.axpby(damping, x, curvature.scale, y)])
        case .hessian:
            try await cluster.hessianProduct(at: .weights, direction: x, into: y, shards: curvature.shards)
            try await cluster.run([.axpby(damping, x, curvature.scale, y)])
        }
    }
}
