import NewtonCore

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

    /// A sample of the training rows: its shards and its size.
    public struct Batch: Sendable {
        public var shards: [RowShard]
        public var rows: Int
    }

    /// Every training row.
    public var fullBatch: Batch { Batch(shards: trainShards, rows: rows) }

    /// The given rows, cut into the cluster's fixed shards.
    public func batch(_ rowIndices: [Int]) -> Batch {
        Batch(shards: cluster.shards(.train, rows: rowIndices), rows: rowIndices.count)
    }

    /// f at `point` on a batch (the regulariser is always the full one):
    /// `‖θ‖²/(2·C·l) + (1/|batch|) Σ_{i∈batch} ξ_i`.
    public func value(at point: VectorName, on batch: Batch? = nil) async throws -> Double {
        let batch = batch ?? fullBatch
        async let loss = cluster.evaluate(at: point, shards: batch.shards).loss
        let norm = try await cluster.run([.dot(point, point)])[0]
        return try checked(try await loss / Double(batch.rows) + 0.5 * ridge * norm, "objective at \(point)")
    }

    /// f and ∇f at `point` on a batch; the gradient is left in `into`.
    /// Returns f and ‖∇f‖.
    public func valueAndGradient(at point: VectorName, into gradient: VectorName, on batch: Batch? = nil) async throws -> (
        value: Double, gradientNorm: Double
    ) {
        let batch = batch ?? fullBatch
        let loss = try await cluster.gradient(at: point, into: gradient, shards: batch.shards)
        let dots = try await cluster.run([
            .axpby(ridge, point, 1 / Double(batch.rows), gradient),
            .dot(gradient, gradient), .dot(point, point),
        ])
        let value = try checked(loss / Double(batch.rows) + 0.5 * ridge * dots[1], "objective at \(point)")
        return (value, try checked(dots[0].squareRoot(), "gradient norm at \(point)"))
    }

    /// `count` distinct training rows, sorted, drawn from `seed` and `stream`
    /// alone (all rows when `count` reaches l).
    public func sampleRows(_ count: Int, seed: UInt64, stream: UInt64) -> [Int] {
        Self.sampleRows(count, of: rows, seed: seed, stream: stream)
    }

    /// `count` distinct indices of `0..<l`, sorted, drawn from `seed` and
    /// `stream` alone (all of them when `count` reaches l).
    public static func sampleRows(_ count: Int, of l: Int, seed: UInt64, stream: UInt64) -> [Int] {
        let size = min(l, max(1, count))
        if size == l { return Array(0..<l) }
        var rng = SeededGenerator(seed: seed, stream: stream)
        var pool = Array(0..<l)
        for i in 0..<size {
            let j = i + Int(rng.next() % UInt64(l - i))
            pool.swapAt(i, j)
        }
        return pool[0..<size].sorted()
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
