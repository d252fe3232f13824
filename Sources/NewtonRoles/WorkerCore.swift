import NewtonCore
import NewtonTraining

/// A worker: takes shards, pulls the weights (and directions) it needs from
/// the block owners, computes on its rows with BLAS, and pushes per-shard
/// results (summed per push group) back to the owners. It keeps nothing a
/// job needs between tasks: any worker can take any group of shards at any
/// time. It does keep the last point it pulled, with its blocks' versions,
/// so that the next task at the same point (every R-operator product of a
/// CG solve) fetches only the blocks that changed since.
public actor WorkerCore: Worker {
    /// Finds the servers of a job, in the job's server order.
    public typealias ServerResolver = @Sendable (WorkerJob) async throws -> [any ParameterServer]

    private let catalog: DataCatalog
    private let resolveServers: ServerResolver
    private var job: WorkerJob?
    private var servers: [any ParameterServer] = []
    private var source: (any RowSource)?
    /// The last point pulled, and the version of each of its blocks.
    private var lastPoint: (vector: VectorName, versions: [UInt64], values: DenseParameters)?

    public init(catalog: DataCatalog, servers: @escaping ServerResolver) {
        self.catalog = catalog
        self.resolveServers = servers
    }

    public func prepare(_ job: WorkerJob) async throws {
        let source = try await catalog.rows(for: job)
        guard source.columns == job.grid.spec.inputs else {
            throw RoleError(
                .invalidRequest, "job \(job.jobID) expects \(job.grid.spec.inputs) input features; its data has \(source.columns)")
        }
        guard source.classCount <= job.grid.spec.classes else {
            throw RoleError(
                .invalidRequest, "job \(job.jobID) has \(job.grid.spec.classes) outputs; its data has \(source.classCount) classes")
        }
        let servers = try await resolveServers(job)
        guard let maxOwner = job.ownership.max(), maxOwner < servers.count else {
            throw RoleError(
                .invalidRequest, "job \(job.jobID) names servers up to \(job.ownership.max() ?? -1) but \(servers.count) are known")
        }
        self.job = job
        self.source = source
        self.servers = servers
        self.lastPoint = nil
    }

    public func run(_ task: WorkerTask) async throws -> [ShardResult] {
        guard let job, let source else { throw RoleError(.invalidRequest, "worker has no job; prepare must come first") }
        let round = PushRound(job: job.jobID, round: task.round)
        switch task.kind {
        case .evaluate(let point):
            let kernels = RowKernels(parameters: try await pull(point, job, isPoint: true))
            var results = [ShardResult]()
            try await forEachShard(task.shards, source) { shard, inputs, labels in
                let pass = kernels.forward(inputs: inputs, rows: labels.count)
                results.append(
                    ShardResult(
                        shard: shard.index, loss: kernels.loss(pass, labels: labels), correct: kernels.correctCount(pass, labels: labels)))
                return nil
            }
            return results
        case .gradient(let point, let target):
            let kernels = RowKernels(parameters: try await pull(point, job, isPoint: true))
            return try await sumShards(task, into: target, round: round, job, source) { shard, inputs, labels in
                let pass = kernels.forward(inputs: inputs, rows: labels.count)
                let (loss, gradient) = kernels.lossAndGradient(pass, labels: labels)
                return (gradient, ShardResult(shard: shard.index, loss: loss, correct: kernels.correctCount(pass, labels: labels)))
            }
        case .gaussNewton(let point, let direction, let target):
            return try await sumProducts(at: point, along: direction, task, into: target, round: round, job, source) {
                kernels, pass, _, v in
                kernels.gaussNewtonProduct(pass, direction: v)
            }
        case .hessian(let point, let direction, let target):
            return try await sumProducts(at: point, along: direction, task, into: target, round: round, job, source) {
                kernels, pass, labels, v in
                kernels.hessianProduct(pass, labels: labels, direction: v)
            }
        case .squaredGradient(let point, let target):
            let kernels = RowKernels(parameters: try await pull(point, job, isPoint: true))
            return try await sumShards(task, into: target, round: round, job, source) { shard, inputs, labels in
                let pass = kernels.forward(inputs: inputs, rows: labels.count)
                return (kernels.squaredGradientSum(pass, labels: labels), ShardResult(shard: shard.index, loss: 0, correct: 0))
            }
        case .jacobian(let point):
            let kernels = RowKernels(parameters: try await pull(point, job, isPoint: true))
            let servers = self.servers
            var results = [ShardResult]()
            try await forEachShard(task.shards, source) { shard, inputs, labels in
                let pass = kernels.forward(inputs: inputs, rows: labels.count)
                let slices = kernels.jacobianSlices(pass)
                results.append(
                    ShardResult(
                        shard: shard.index, loss: kernels.loss(pass, labels: labels),
                        correct: kernels.correctCount(pass, labels: labels), outputs: pass.outputs))
                return { try await Self.pushJacobian(pass, slices: slices, offset: shard.offset, round: round, job, to: servers) }
            }
            return results
        }
    }

    /// Computes a curvature product along `direction` on each shard and
    /// sums it into `target` on the block owners.
    private func sumProducts(
        at point: VectorName, along direction: VectorName, _ task: WorkerTask, into target: VectorName, round: PushRound,
        _ job: WorkerJob, _ source: any RowSource,
        _ product: (RowKernels, ForwardPass, [Int32], DenseParameters) -> DenseParameters
    ) async throws -> [ShardResult] {
        async let pulledDirection = pull(direction, job)
        let kernels = RowKernels(parameters: try await pull(point, job, isPoint: true))
        let v = try await pulledDirection
        return try await sumShards(task, into: target, round: round, job, source) { shard, inputs, labels in
            let pass = kernels.forward(inputs: inputs, rows: labels.count)
            return (product(kernels, pass, labels, v), ShardResult(shard: shard.index, loss: 0, correct: 0))
        }
    }

    /// Runs `body` on each shard of a summing task and pushes the dense
    /// results into `target`: the shards of one push group are added here in
    /// shard order (starting from the first shard's values, as the owner's
    /// sum starts from zero), and each group is pushed as soon as it is
    /// complete, while the next group computes.
    private func sumShards(
        _ task: WorkerTask, into target: VectorName, round: PushRound, _ job: WorkerJob, _ source: any RowSource,
        _ body: (RowShard, [Float], [Int32]) async throws -> (DenseParameters, ShardResult)
    ) async throws -> [ShardResult] {
        let perPush = task.shardsPerPush
        let indices = task.shards.map(\.index)
        guard perPush >= 1, let first = indices.first, first % perPush == 0, indices == Array(first..<(first + indices.count)) else {
            throw RoleError(
                .invalidRequest,
                "a summing task must hold whole groups of \(perPush) consecutive shards; got shards \(indices.prefix(10))")
        }
        let servers = self.servers
        var results = [ShardResult]()
        var group: DenseParameters?
        try await forEachShard(task.shards, source) { shard, inputs, labels in
            let (dense, result) = try await body(shard, inputs, labels)
            results.append(result)
            if var sum = group {
                group = nil
                sum.values.withUnsafeMutableBufferPointer { s in dense.values.withUnsafeBufferPointer { VectorMath.axpy(1, $0, s) } }
                group = sum
            } else {
                group = dense
            }
            guard (shard.index + 1) % perPush == 0 || shard.index == indices.last, let complete = group else { return nil }
            group = nil
            return {
                try await Self.pushBlocks(complete, into: target, round: round, shard: shard.index / perPush, job, to: servers)
            }
        }
        return results
    }

    // MARK: Pull and push

    /// Gathers `vector` from every block owner into the dense form. A point
    /// (`isPoint`: the weights or a trial point) is kept with its versions,
    /// and pulled again block by block only where it changed.
    private func pull(_ vector: VectorName, _ job: WorkerJob, isPoint: Bool = false) async throws -> DenseParameters {
        let servers = self.servers
        let grid = job.grid
        let cached = isPoint ? lastPoint.flatMap { $0.vector == vector ? $0 : nil } : nil
        let perServer = try await withThrowingTaskGroup(of: ([Int], [VersionedBlock]).self) { group in
            for (s, server) in servers.enumerated() {
                let owned = job.ownership.indices.filter { job.ownership[$0] == s }
                let held = cached.map { cached in owned.map { cached.versions[$0] } } ?? []
                group.addTask { (owned, try await server.read(vector, blocks: owned, held: held)) }
            }
            var all = [([Int], [VersionedBlock])]()
            for try await part in group { all.append(part) }
            return all
        }
        var dense = cached?.values ?? DenseParameters(zeros: grid.spec)
        var versions = [UInt64](repeating: 0, count: grid.blocks.count)
        for (owned, answers) in perServer {
            guard owned.count == answers.count else {
                throw RoleError(
                    .invalidRequest, "a server answered a read of \(vector) for \(owned.count) blocks with \(answers.count) arrays")
            }
            for (b, answer) in zip(owned, answers) {
                versions[b] = answer.version
                if let values = answer.values {
                    try grid.insert(grid.blocks[b], values: values, into: &dense)
                } else if cached?.versions[b] != answer.version {
                    throw RoleError(
                        .invalidRequest,
                        "a server left out block \(b) of \(vector), which this worker does not hold at version \(answer.version)")
                }
            }
        }
        if isPoint { lastPoint = (vector, versions, dense) }
        return dense
    }

    /// Splits a dense result into blocks and pushes each server its own.
    private static func pushBlocks(
        _ dense: DenseParameters, into target: VectorName, round: PushRound, shard: Int, _ job: WorkerJob,
        to servers: [any ParameterServer]
    ) async throws {
        try await forEachServer(of: job, servers) { server, owned in
            try await server.push(
                into: target, round: round, shard: shard, blocks: owned,
                values: owned.map { job.grid.extract(job.grid.blocks[$0], from: dense) })
        }
    }

    /// Sends each block owner its share of a shard's Jacobian: the layer
    /// inputs of the block's input group and the slice of its output group
    /// (which a remote owner's stub packs for the network).
    private static func pushJacobian(
        _ pass: ForwardPass, slices: [[Float]], offset: Int, round: PushRound, _ job: WorkerJob, to servers: [any ParameterServer]
    ) async throws {
        let grid = job.grid
        let rows = pass.rows
        let classes = grid.spec.classes
        try await forEachServer(of: job, servers) { server, owned in
            var inputs = [[Float]]()
            var blockSlices = [SliceShare]()
            for b in owned {
                let id = grid.blocks[b]
                inputs.append(
                    columns(pass.activations[id.layer - 1], rows: rows, width: grid.spec.layerSizes[id.layer - 1], grid.inputRange(id)))
                blockSlices.append(
                    .columns(
                        of: slices[id.layer - 1], classes: classes, fullWidth: grid.spec.layerSizes[id.layer], columns: grid.outputRange(id)
                    ))
            }
            try await server.pushJacobian(
                round: round, rowOffset: offset, blocks: owned, inputs: inputs, slices: blockSlices, outputs: pass.outputs)
        }
    }

    private static func forEachServer(
        of job: WorkerJob, _ servers: [any ParameterServer], _ body: @escaping @Sendable (any ParameterServer, [Int]) async throws -> Void
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (s, server) in servers.enumerated() {
                let owned = job.ownership.indices.filter { job.ownership[$0] == s }
                group.addTask { try await body(server, owned) }
            }
            try await group.waitForAll()
        }
    }

    /// Sends a shard's (or push group's) results to the block owners.
    private typealias Push = @Sendable () async throws -> Void

    /// Calls `body` with each shard's rows in turn, reading the next
    /// shard's rows while `body` computes on the current one. The push that
    /// `body` returns runs while the next shards compute; it starts once the
    /// previous push has finished, so one push is in flight at a time (one
    /// more shard's results held) and a failed push fails the task.
    private func forEachShard(
        _ shards: [RowShard], _ source: any RowSource, _ body: (RowShard, [Float], [Int32]) async throws -> Push?
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { pushes in
            for (i, shard) in shards.enumerated() {
                async let current = source.rows(of: shard)
                if i + 1 < shards.count { await source.prefetch(shards[i + 1]) }
                let (inputs, labels) = try await current
                guard let push = try await body(shard, inputs, labels) else { continue }
                try await pushes.next()
                pushes.addTask(operation: push)
            }
            try await pushes.waitForAll()
        }
    }
}

/// Columns `range` of a row-major `rows × width` matrix.
func columns(_ matrix: [Float], rows: Int, width: Int, _ range: Range<Int>) -> [Float] {
    if range.count == width { return matrix }
    var out = [Float]()
    out.reserveCapacity(rows * range.count)
    for r in 0..<rows { out.append(contentsOf: matrix[(r * width + range.lowerBound)..<(r * width + range.upperBound)]) }
    return out
}
