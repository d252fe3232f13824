import NewtonCore
import Synchronization

/// The driver's view of a cluster: fans work out to servers and workers
/// through the `ParameterServer` and `Worker` protocols and puts every
/// answer back together in a fixed order — shard order for sums over rows,
/// canonical block order for sums over blocks — so the result never depends
/// on how many peers there are or when they answer.
public final class ClusterCoordinator: Sendable {
    public let grid: PartitionGrid
    public let servers: [any ParameterServer]
    /// The workers, in the order they joined (see `admit`).
    public var workers: [any Worker] { pool.withLock { $0 } }
    private let pool: Mutex<[any Worker]>
    /// Server index owning each block, in canonical block order.
    public let ownership: [Int]
    /// Rows per shard; fixed for a job, independent of the number of workers.
    public let shardRows: Int
    public let trainRows: Int
    public let testRows: Int
    /// The data index workers are given with the job (nil: they find it).
    public let indexedData: IndexedData?
    /// The last round handed out (see `PushRound`).
    private let rounds = Mutex(0)

    public init(
        grid: PartitionGrid, servers: [any ParameterServer], workers: [any Worker],
        shardRows: Int, trainRows: Int, testRows: Int, indexedData: IndexedData? = nil
    ) throws {
        guard !servers.isEmpty else { throw TrainingError(.invalidOptions, "a cluster needs at least one server") }
        guard !workers.isEmpty else { throw TrainingError(.invalidOptions, "a cluster needs at least one worker") }
        guard shardRows > 0 else { throw TrainingError(.invalidOptions, "shard size must be positive, got \(shardRows)") }
        self.grid = grid
        self.servers = servers
        self.pool = Mutex(workers)
        self.ownership = grid.balancedOwnership(servers: servers.count)
        self.shardRows = shardRows
        self.trainRows = trainRows
        self.testRows = testRows
        self.indexedData = indexedData
    }

    /// The blocks owned by server `s`, in canonical order.
    public func blocks(ofServer s: Int) -> [Int] {
        ownership.indices.filter { ownership[$0] == s }
    }

    // MARK: Job set-up

    /// Hands every server its blocks with their initial weights and tells every
    /// worker about the job.
    public func start(jobID: String, data: DataDescriptor, weights: DenseParameters) async throws {
        let blockWeights = grid.split(weights)
        try await forEachServer { s, server in
            let owned = self.blocks(ofServer: s)
            try await server.assign(BlockAssignment(jobID: jobID, grid: self.grid, blocks: owned, weights: owned.map { blockWeights[$0] }))
        }
        let job = WorkerJob(jobID: jobID, grid: grid, ownership: ownership, data: data, indexed: indexedData)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (w, worker) in workers.enumerated() {
                group.addTask {
                    do { try await worker.prepare(job) } catch {
                        throw TrainingError(.clusterFailure, "worker \(w) could not prepare job \(jobID)", cause: error)
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Adds a worker to a running job once it has prepared it (loaded the
    /// data): later tasks are spread over it too. Results do not change,
    /// since they never depend on how many workers there are.
    public func admit(_ worker: any Worker, jobID: String, data: DataDescriptor) async throws {
        try await worker.prepare(WorkerJob(jobID: jobID, grid: grid, ownership: ownership, data: data, indexed: indexedData))
        pool.withLock { $0.append(worker) }
    }

    // MARK: Vectors

    /// Runs `program` on every server and returns each `dot`'s total, summed
    /// over blocks in canonical order.
    @discardableResult
    public func run(_ program: [VectorOp]) async throws -> [Double] {
        try totals(of: program, try await mapServers { _, server in try await server.run(program) })
    }

    /// The dots of `program` summed over every block in block order, from
    /// the servers' `answers`.
    private func totals(of program: [VectorOp], _ answers: [[BlockDots]]) throws -> [Double] {
        let dotCount = program.filter(\.isDot).count
        var perBlock = [[Double]?](repeating: nil, count: grid.blocks.count)
        for answer in answers.joined() {
            guard perBlock.indices.contains(answer.block), answer.values.count == dotCount else {
                throw TrainingError(
                    .clusterFailure,
                    "a server answered block \(answer.block) with \(answer.values.count) dot values; expected \(dotCount) for one of \(grid.blocks.count) blocks"
                )
            }
            perBlock[answer.block] = answer.values
        }
        var totals = [Double](repeating: 0, count: dotCount)
        for (b, values) in perBlock.enumerated() {
            guard let values else { throw TrainingError(.clusterFailure, "no server answered for block \(grid.blocks[b])") }
            for k in 0..<dotCount { totals[k] += values[k] }
        }
        return totals
    }

    /// The whole of `vector`, gathered from the servers.
    public func read(_ vector: VectorName) async throws -> DenseParameters {
        var blockValues = [[Float]](repeating: [], count: grid.blocks.count)
        let answers = try await mapServers { s, server in
            let owned = self.blocks(ofServer: s)
            return (owned, try await server.read(vector, blocks: owned))
        }
        for (owned, values) in answers { for (b, v) in zip(owned, values) { blockValues[b] = v } }
        do { return try grid.assemble(blockValues) } catch {
            throw TrainingError(.clusterFailure, "servers returned a malformed \(vector)", cause: error)
        }
    }

    /// Overwrites the whole of `vector` on the servers.
    public func write(_ vector: VectorName, _ value: DenseParameters) async throws {
        let blockValues = grid.split(value)
        try await forEachServer { s, server in
            let owned = self.blocks(ofServer: s)
            try await server.write(vector, blocks: owned, values: owned.map { blockValues[$0] })
        }
    }

    // MARK: Row work

    /// Cuts `rows` of `split` into fixed shards of `shardRows` rows.
    public func shards(_ split: DataSplit, rows: [Int]? = nil) -> [RowShard] {
        let total = rows?.count ?? (split == .train ? trainRows : testRows)
        return stride(from: 0, to: total, by: shardRows).enumerated().map { index, start in
            let end = min(start + shardRows, total)
            let selection: RowSelection = rows.map { .indices(Array($0[start..<end])) } ?? .range(start..<end)
            return RowShard(index: index, split: split, rows: selection, offset: start)
        }
    }

    /// Cuts the training rows `rows` (a subsample) for the Jacobian cache
    /// into `jacobianShardCount` shards, sizes within one row.
    public func jacobianShards(rows: [Int]) -> [RowShard] {
        shards(.train, rows: rows, count: Self.jacobianShardCount(rows: rows.count, shardRows: shardRows))
    }

    /// The fewest shards of at most `shardRows` rows that is a multiple of
    /// `evenParts`, so that 1, 2, 3, 4, 6 or 12 workers get the same rows.
    /// The count depends on the rows alone, never on the workers: a row's
    /// Jacobian slices can depend on the shape of the GEMMs it is computed
    /// in (OpenBLAS picks kernels by size), so a cut by the number of
    /// workers would change the numbers with it.
    public static func jacobianShardCount(rows: Int, shardRows: Int) -> Int {
        (rows + evenParts * shardRows - 1) / (evenParts * shardRows) * evenParts
    }

    /// Cuts `rows` of `split` into `count` shards of `shardSizes`.
    public func shards(_ split: DataSplit, rows: [Int], count: Int) -> [RowShard] {
        var start = 0
        return Self.shardSizes(rows: rows.count, count: count).enumerated().map { index, size in
            defer { start += size }
            return RowShard(index: index, split: split, rows: .indices(Array(rows[start..<(start + size)])), offset: start)
        }
    }

    /// The sizes of `count` shards of `rows` rows, in order: at most one
    /// shard per row, at least one (when there are rows), sizes differing
    /// by at most one row, the larger first.
    public static func shardSizes(rows: Int, count: Int) -> [Int] {
        let count = min(rows, max(1, count))
        return (0..<count).map { rows / count + ($0 < rows % count ? 1 : 0) }
    }

    /// Σ ξ and the number of correct predictions at `point` over `shards`.
    public func evaluate(at point: VectorName, shards: [RowShard]) async throws -> (loss: Double, correct: Int) {
        // An evaluation pushes nothing, so it needs no round of its own.
        let results = try await dispatch(.evaluate(point: point), shards: shards, round: 0)
        return (results.reduce(0) { $0 + $1.loss }, results.reduce(0) { $0 + $1.correct })
    }

    /// Sums the gradient of Σ ξ over `shards` into `into` (no averaging, no
    /// regulariser) and returns Σ ξ.
    public func gradient(at point: VectorName, into target: VectorName, shards: [RowShard]) async throws -> Double {
        try await sum(.gradient(point: point, into: target), into: target, shards: shards).reduce(0) { $0 + $1.loss }
    }

    /// Sums `Σ JᵀBJv` over `shards` into `into` by R-operator passes on the
    /// workers (the "rop" products mode).
    public func gaussNewtonByROperator(at point: VectorName, direction: VectorName, into target: VectorName, shards: [RowShard])
        async throws
    {
        _ = try await sum(.gaussNewton(point: point, direction: direction, into: target), into: target, shards: shards)
    }

    /// Sums the true Hessian product `Σ ∇²ξ v` over `shards` into `into` by
    /// R-operator passes on the workers.
    public func hessianProduct(at point: VectorName, direction: VectorName, into target: VectorName, shards: [RowShard]) async throws {
        _ = try await sum(.hessian(point: point, direction: direction, into: target), into: target, shards: shards)
    }

    /// Sums `Σ_r (∇ξ_r)²` (element-wise squared per-row gradients) over
    /// `shards` into `into`: the empirical Fisher diagonal.
    public func squaredGradientSum(at point: VectorName, into target: VectorName, shards: [RowShard]) async throws {
        _ = try await sum(.squaredGradient(point: point, into: target), into: target, shards: shards)
    }

    /// Has the workers compute the Jacobian slices of the training rows
    /// `rows` (the subsample) at `point` and push them to the block owners;
    /// returns the subsample's outputs (`|S| × n_L`), which define the loss
    /// curvature B. The rows are cut into `jacobianShards`, so every worker
    /// gets the same share.
    public func cacheJacobian(at point: VectorName, rows: [Int]) async throws -> [Float] {
        let round = nextRound()
        try await forEachServer { _, server in try await server.beginJacobian(rows: rows.count, round: round) }
        let results = try await dispatch(.jacobian(point: point), shards: jacobianShards(rows: rows), round: round)
        return Array(results.map(\.outputs).joined())
    }

    /// `into = scale · JᵀBJ v` from the cached Jacobian (the "jacobian"
    /// products mode): servers run `prelude` (no dots) and answer `J_b v_b`,
    /// the driver sums them in block order, applies `B`, and servers finish
    /// with `J_bᵀ u` and then run `program` in the same round trip. Only
    /// `|S| × n_L` numbers per block cross in each direction. Returns
    /// `program`'s dots, as `run` does.
    public func gaussNewtonFromJacobian(
        direction: VectorName, into target: VectorName, outputs: [Float], scale: Double, first prelude: [VectorOp],
        then program: [VectorOp]
    ) async throws -> [Double] {
        let classes = grid.spec.classes
        var perBlock = [[Float]?](repeating: nil, count: grid.blocks.count)
        for answers in try await mapServers({ _, server in try await server.jacobianProduct(of: direction, first: prelude) }) {
            for answer in answers {
                guard perBlock.indices.contains(answer.block), answer.values.count == outputs.count else {
                    throw TrainingError(
                        .clusterFailure,
                        "a server answered J_b v_b for block \(answer.block) with \(answer.values.count) values; expected \(outputs.count)")
                }
                perBlock[answer.block] = answer.values
            }
        }
        var sum = [Double](repeating: 0, count: outputs.count)
        for (b, values) in perBlock.enumerated() {
            guard let values else { throw TrainingError(.clusterFailure, "no server answered J_b v_b for block \(grid.blocks[b])") }
            for i in sum.indices { sum[i] += Double(values[i]) }
        }
        let jv = sum.map { Float($0) }
        var u = [Float](repeating: 0, count: jv.count)
        outputs.withUnsafeBufferPointer { z in
            jv.withUnsafeBufferPointer { j in
                u.withUnsafeMutableBufferPointer { up in
                    grid.spec.loss.curvatureProduct(outputs: z, j, classes: classes, into: up)
                    for i in up.indices { up[i] *= Float(scale) }
                }
            }
        }
        let curvatureApplied = u
        return try totals(
            of: program,
            try await mapServers { _, server in try await server.jacobianTransposeProduct(curvatureApplied, into: target, then: program) })
    }

    /// Solves every diagonal block on its owner with no exchange. Returns as
    /// soon as `cutoff` (a fraction) of the blocks have finished; the others are
    /// told to stop and keep their current iterate.
    public func solveDiagonalBlocks(_ template: BlockSolveRequest, cutoff: Double) async throws -> [BlockSolveReport] {
        let needed = max(1, Int((cutoff * Double(grid.blocks.count)).rounded(.up)))
        return try await withThrowingTaskGroup(of: BlockSolveReport.self) { group in
            for b in grid.blocks.indices {
                var request = template
                request.block = b
                let server = servers[ownership[b]]
                group.addTask {
                    do { return try await server.solveDiagonalBlock(request) } catch {
                        throw TrainingError(
                            .clusterFailure, "server \(self.ownership[b]) failed solving block \(self.grid.blocks[b])", cause: error)
                    }
                }
            }
            var reports = [BlockSolveReport]()
            var stopSent = false
            for try await report in group {
                reports.append(report)
                if !stopSent && reports.count >= needed && reports.count < grid.blocks.count {
                    stopSent = true
                    try await forEachServer { _, server in try await server.stopDiagonalSolves(generation: template.generation) }
                }
            }
            return reports.sorted { $0.block < $1.block }
        }
    }

    // MARK: Fan-out

    /// Twelve: work cut into a multiple of this many parts shares evenly
    /// among 1, 2, 3, 4, 6 or 12 workers. A sum has at most this many pushes
    /// (a longer list of shards is cut into this many groups of consecutive
    /// shards, each added up on one worker), and the Jacobian cache has a
    /// multiple of this many shards.
    public static let evenParts = 12

    /// A sum over `shards` into `target`, in a fresh round: servers begin it,
    /// workers push into it (one push per group of `shardsPerPush`
    /// consecutive shards), servers finish it in group order. The grouping
    /// depends on the number of shards alone, never on the workers.
    private func sum(_ kind: WorkerTask.Kind, into target: VectorName, shards: [RowShard]) async throws -> [ShardResult] {
        let round = nextRound()
        let perPush = max(1, (shards.count + Self.evenParts - 1) / Self.evenParts)
        let pushes = (shards.count + perPush - 1) / perPush
        try await forEachServer { _, server in try await server.beginSum(into: target, shards: pushes, round: round) }
        let results = try await dispatch(kind, shards: shards, round: round, shardsPerPush: perPush)
        try await forEachServer { _, server in try await server.finishSum(into: target) }
        return results
    }

    /// A number no earlier sum or Jacobian cache of this coordinator had.
    private func nextRound() -> Int {
        rounds.withLock { round in
            round += 1
            return round
        }
    }

    /// Splits `shards` into contiguous runs of whole push groups, one run per
    /// worker, runs them concurrently and returns the results in shard
    /// order. A run whose worker fails is given to the next worker; the task
    /// fails only when every worker has failed it.
    private func dispatch(_ kind: WorkerTask.Kind, shards: [RowShard], round: Int, shardsPerPush: Int = 1) async throws
        -> [ShardResult]
    {
        guard !shards.isEmpty else { return [] }
        let workers = self.workers
        let groups = (shards.count + shardsPerPush - 1) / shardsPerPush
        let runs = min(workers.count, groups)
        let results = try await withThrowingTaskGroup(of: [ShardResult].self) { group in
            for r in 0..<runs {
                let first = r * groups / runs * shardsPerPush
                let end = min(shards.count, (r + 1) * groups / runs * shardsPerPush)
                let task = WorkerTask(kind: kind, shards: Array(shards[first..<end]), round: round, shardsPerPush: shardsPerPush)
                group.addTask { try await self.runWithFailover(task, on: workers, first: r) }
            }
            var all = [ShardResult]()
            for try await part in group { all.append(contentsOf: part) }
            return all
        }
        let sorted = results.sorted { $0.shard < $1.shard }
        guard sorted.map(\.shard) == shards.map(\.index) else {
            throw TrainingError(
                .clusterFailure, "workers reported shards \(sorted.map(\.shard)) for a task over shards \(shards.map(\.index))")
        }
        return sorted
    }

    private func runWithFailover(_ task: WorkerTask, on workers: [any Worker], first firstWorker: Int) async throws -> [ShardResult] {
        var failures = [String]()
        for attempt in 0..<workers.count {
            let w = (firstWorker + attempt) % workers.count
            do {
                return try await workers[w].run(task)
            } catch {
                if Task.isCancelled { throw TrainingError(.cancelled, "cancelled while worker \(w) ran shards") }
                failures.append("worker \(w): \(error)")
            }
        }
        throw TrainingError(
            .clusterFailure,
            "every worker failed shards \(task.shards.first!.index)…\(task.shards.last!.index): \(failures.joined(separator: "; "))")
    }

    private func forEachServer(_ body: @escaping @Sendable (Int, any ParameterServer) async throws -> Void) async throws {
        _ = try await mapServers(body)
    }

    private func mapServers<T: Sendable>(_ body: @escaping @Sendable (Int, any ParameterServer) async throws -> T) async throws -> [T] {
        try await withThrowingTaskGroup(of: (Int, T).self) { group in
            for (s, server) in servers.enumerated() {
                group.addTask {
                    do { return (s, try await body(s, server)) } catch let error as TrainingError {
                        throw error
                    } catch {
                        throw TrainingError(.clusterFailure, "server \(s) failed", cause: error)
                    }
                }
            }
            var results = [T?](repeating: nil, count: servers.count)
            for try await (s, value) in group { results[s] = value }
            return results.map { $0! }
        }
    }
}
