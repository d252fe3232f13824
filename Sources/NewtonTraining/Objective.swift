/// The training objective `f(θ) = ‖θ‖²/(2·C·l) + (1/l) Σ_i ξ(z^L(x_i; θ), y_i)`
/// evaluated through a cluster, as the authors' code defines it (C scaled by
/// the number of rows l).
public struct Objective: Sendable {
    public let cluster: ClusterCoordinator
    /// C, before scaling by l.
    public let regularization: Double
    public let trainShards: [RowShard]
    public let testShards: [RowShard]

    public init(cluster: ClusterCoordinator, regularization: Double) throws {
        guard regularization > 0, regularization.isFinite else {
            throw TrainingError(.invalidOptions, "the regularisation constant C must be positive and finite, got \(regularization)")
        }
        self.cluster = cluster
        self.regularization = regularization
        self.trainShards = cluster.shards(.train)
        self.testShards = cluster.shards(.test)
    }

    public var rows: Int { cluster.trainRows }
    /// 1/(C·l), the weight of θ in the gradient and of I in the curvature.
    public var ridge: Double { 1 / (regularization * Double(rows)) }

    /// f at `point`.
    public func value(at point: VectorName) async throws -> Double {
        async let loss = cluster.evaluate(at: point, shards: trainShards).loss
        let norm = try await cluster.run([.dot(point, point)])[0]
        return try checked(try await loss / Double(rows) + 0.5 * ridge * norm, "objective at \(point)")
    }

    /// f and ∇f at `point`; the gradient is left in `into`. Returns f and ‖∇f‖.
    public func valueAndGradient(at point: VectorName, into gradient: VectorName) async throws -> (value: Double, gradientNorm: Double) {
        let loss = try await cluster.gradient(at: point, into: gradient, shards: trainShards)
        let dots = try await cluster.run([
            .combine(target: gradient, terms: [VectorTerm(1 / Double(rows), gradient), VectorTerm(ridge, point)]),
            .dot(gradient, gradient), .dot(point, point),
        ])
        let value = try checked(loss / Double(rows) + 0.5 * ridge * dots[1], "objective at \(point)")
        return (value, try checked(dots[0].squareRoot(), "gradient norm at \(point)"))
    }

    /// The fraction of test rows predicted correctly at `point`, or nil
    /// without a test set.
    public func testAccuracy(at point: VectorName) async throws -> Double? {
        guard cluster.testRows > 0 else { return nil }
        return Double(try await cluster.evaluate(at: point, shards: testShards).correct) / Double(cluster.testRows)
    }
}

/// Throws a `.nonFinite` error naming `what` unless `x` is finite.
func checked(_ x: Double, _ what: String) throws -> Double {
    guard x.isFinite else { throw TrainingError(.nonFinite, "\(what) is \(x)") }
    return x
}
