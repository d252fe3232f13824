import NewtonCore
import NewtonTraining
import Synchronization

/// The state and operations of one parameter server: the blocks it owns,
/// every named vector over them, running shard-ordered sums, the cached
/// Jacobian of the current subsample, and block-local solves.
///
/// Used directly by the embedded cluster and behind the network service.
public actor ServerCore: ParameterServer {
    /// Knobs for operators and experiments.
    public struct Options: Sendable {
        /// Extra time spent per local CG iteration, to play a straggler.
        public var solveIterationDelay: Duration = .zero
        public init(solveIterationDelay: Duration = .zero) { self.solveIterationDelay = solveIterationDelay }
    }

    /// One owned block: its vectors and its slice of the subsample's Jacobian.
    private final class Block {
        let index: Int
        let id: BlockID
        let vectors: VectorStore
        var jacobian: BlockJacobian?
        init(index: Int, id: BlockID, size: Int) {
            self.index = index
            self.id = id
            self.vectors = VectorStore(size: size, label: "block \(id)")
        }
        var size: Int { vectors.size }
        func vector(_ name: VectorName) -> [Float] { vectors.vector(name) }
    }

    /// A sum of pushed contributions, added strictly in shard order.
    private struct RunningSum {
        var round: PushRound
        var expected: Int
        var next = 0
        var pending: [Int: [[Float]]] = [:]
        var total: [[Float]]

        /// Adds every shard that is now next in order; a shard already added
        /// (from a retried task) carries the same numbers and is ignored.
        mutating func add(_ values: [[Float]], shard: Int, round pushed: PushRound, into vector: VectorName) throws {
            guard pushed == round else {
                throw RoleError(
                    .invalidRequest, "stale push of shard \(shard) into \(vector) for \(pushed); the sum in progress is \(round)")
            }
            guard shard >= 0, shard < expected else {
                throw RoleError(.invalidRequest, "push of shard \(shard) into \(vector), whose sum expects shards 0..<\(expected)")
            }
            guard shard >= next else { return }
            pending[shard] = values
            while let ready = pending.removeValue(forKey: next) {
                for k in total.indices {
                    total[k].withUnsafeMutableBufferPointer { t in
                        ready[k].withUnsafeBufferPointer { VectorMath.axpy(1, $0, t) }
                    }
                }
                next += 1
            }
        }
    }

    private let options: Options
    private var grid: PartitionGrid?
    /// The assigned job; pushes name it.
    private var jobID = ""
    /// The round of the Jacobian cache being filled.
    private var jacobianRound: PushRound?
    private var blocks: [Block] = []
    private var position: [Int: Int] = [:]
    private var sums: [VectorName: RunningSum] = [:]
    private var outputs: [Float] = []
    private let stoppedGeneration = Mutex(Int.min)

    /// At most this many bytes of cached Jacobian slices and inputs on one server.
    public static let maxJacobianBytes = 1 << 32

    public init(options: Options = Options()) {
        self.options = options
    }

    /// Indices of the blocks this server owns.
    public var ownedBlocks: [Int] { blocks.map(\.index) }

    public func assign(_ assignment: BlockAssignment) throws {
        guard assignment.blocks.count == assignment.weights.count else {
            throw RoleError(
                .invalidRequest,
                "assignment of job \(assignment.jobID) lists \(assignment.blocks.count) blocks but \(assignment.weights.count) weight arrays"
            )
        }
        let grid = assignment.grid
        var owned = [Block]()
        for (index, weights) in zip(assignment.blocks, assignment.weights) {
            guard grid.blocks.indices.contains(index) else {
                throw RoleError(.invalidRequest, "job \(assignment.jobID) assigns block \(index) but the grid has \(grid.blocks.count)")
            }
            let id = grid.blocks[index]
            guard weights.count == grid.parameterCount(id) else {
                throw RoleError(.invalidRequest, "block \(id) needs \(grid.parameterCount(id)) weights, got \(weights.count)")
            }
            let block = Block(index: index, id: id, size: weights.count)
            block.vectors[.weights] = weights
            owned.append(block)
        }
        self.grid = grid
        self.jobID = assignment.jobID
        self.jacobianRound = nil
        self.blocks = owned
        self.position = Dictionary(uniqueKeysWithValues: owned.enumerated().map { ($1.index, $0) })
        self.sums = [:]
        self.outputs = []
        // Solve generations restart with every job.
        stoppedGeneration.withLock { $0 = Int.min }
    }

    public func read(_ vector: VectorName, blocks requested: [Int], held: [UInt64]) throws -> [VersionedBlock] {
        guard held.isEmpty || held.count == requested.count else {
            throw RoleError(.invalidRequest, "a read of \(vector) names \(requested.count) blocks but \(held.count) held versions")
        }
        return try requested.enumerated().map { i, index in
            let store = try block(index).vectors
            let version = store.version(of: vector)
            return VersionedBlock(version: version, values: !held.isEmpty && held[i] == version ? nil : store.vector(vector))
        }
    }

    public func write(_ vector: VectorName, blocks requested: [Int], values: [[Float]]) throws {
        try checkPayload(requested, values, what: "write of \(vector)")
        for (index, v) in zip(requested, values) { try block(index).vectors[vector] = v }
    }

    public func run(_ program: [VectorOp]) throws -> [BlockDots] {
        try blocks.map { block in BlockDots(block: block.index, values: try block.vectors.run(program)) }
    }

    public func beginSum(into vector: VectorName, shards: Int, round: Int) throws {
        guard shards >= 0 else { throw RoleError(.invalidRequest, "a sum over \(shards) shards") }
        sums[vector] = RunningSum(
            round: PushRound(job: jobID, round: round), expected: shards, total: blocks.map { [Float](repeating: 0, count: $0.size) })
    }

    public func push(into vector: VectorName, round: PushRound, shard: Int, blocks pushed: [Int], values: [[Float]]) throws {
        guard sums[vector] != nil else {
            throw RoleError(.invalidRequest, "push of shard \(shard) into \(vector), which has no sum in progress")
        }
        guard pushed == ownedBlocks else {
            throw RoleError(
                .invalidRequest, "push of shard \(shard) into \(vector) names blocks \(pushed); this server owns \(ownedBlocks)")
        }
        try checkPayload(pushed, values, what: "push of shard \(shard) into \(vector)")
        // Mutated in place in the dictionary: a copy would duplicate every total.
        try sums[vector]?.add(values, shard: shard, round: round, into: vector)
    }

    public func finishSum(into vector: VectorName) throws {
        guard let sum = sums.removeValue(forKey: vector) else {
            throw RoleError(.invalidRequest, "finish of a sum into \(vector) that was never begun")
        }
        guard sum.next == sum.expected else {
            let missing = (sum.next..<sum.expected).filter { sum.pending[$0] == nil }
            throw RoleError(
                .invalidRequest, "sum into \(vector) is missing shards \(missing.prefix(10))\(missing.count > 10 ? "…" : "")")
        }
        for (block, total) in zip(blocks, sum.total) { block.vectors[vector] = total }
    }

    public func beginJacobian(rows: Int, round: Int) throws {
        let grid = try requireGrid()
        // Per block: the inputs of its input group and the slices of its output group.
        let floatsPerRow = blocks.reduce(0) { total, block in
            total + grid.inputRange(block.id).count + grid.spec.classes * grid.outputRange(block.id).count
        }
        guard rows > 0, rows <= Self.maxJacobianBytes / 4 / max(floatsPerRow, 1) else {
            throw RoleError(
                .invalidRequest,
                "a Jacobian cache for \(rows) rows needs \(floatsPerRow) floats a row on this server, over the cap of \(Self.maxJacobianBytes) bytes (ServerCore.maxJacobianBytes)"
            )
        }
        for block in blocks {
            if let cache = block.jacobian, cache.rows == rows { continue }
            block.jacobian = BlockJacobian(
                rows: rows, classes: grid.spec.classes,
                inputWidth: grid.inputRange(block.id).count,
                outputWidth: grid.outputRange(block.id).count,
                hasBias: grid.hasBias(block.id))
        }
        outputs = [Float](repeating: 0, count: rows * grid.spec.classes)
        jacobianRound = PushRound(job: jobID, round: round)
    }

    public func pushJacobian(
        round: PushRound, rowOffset: Int, blocks pushed: [Int], inputs: [[Float]], slices: [SliceShare], outputs newOutputs: [Float]
    ) throws {
        let grid = try requireGrid()
        guard round == jacobianRound else {
            throw RoleError(
                .invalidRequest,
                "stale Jacobian push for rows from \(rowOffset) for \(round); the cache being filled is \(jacobianRound.map(String.init(describing:)) ?? "none")"
            )
        }
        guard pushed == ownedBlocks, inputs.count == pushed.count, slices.count == pushed.count else {
            throw RoleError(
                .invalidRequest,
                "Jacobian push for rows from \(rowOffset) names blocks \(pushed) with \(inputs.count) inputs and \(slices.count) slices; this server owns \(ownedBlocks)"
            )
        }
        let classes = grid.spec.classes
        guard newOutputs.count % classes == 0, rowOffset >= 0, rowOffset * classes + newOutputs.count <= outputs.count else {
            throw RoleError(
                .invalidRequest,
                "Jacobian push of \(newOutputs.count) outputs at row \(rowOffset) does not fit a subsample of \(outputs.count / max(classes, 1)) rows"
            )
        }
        for (k, block) in blocks.enumerated() {
            guard block.jacobian != nil else { throw RoleError(.invalidRequest, "Jacobian push before beginJacobian") }
            do { try block.jacobian!.store(rowOffset: rowOffset, inputs: inputs[k], slices: slices[k]) } catch {
                throw RoleError(.invalidRequest, "Jacobian push for block \(block.id)", cause: error)
            }
        }
        outputs.replaceSubrange((rowOffset * classes)..<(rowOffset * classes + newOutputs.count), with: newOutputs)
    }

    public func jacobianProduct(of vector: VectorName, first program: [VectorOp]) throws -> [(block: Int, values: [Float])] {
        if program.contains(where: \.isDot) {
            throw RoleError(.invalidRequest, "the program run before J_b v_b takes dots, which its answer has no place for")
        }
        let caches = try blocks.map { try cache(of: $0) }
        _ = try run(program)
        return zip(blocks, caches).map { block, cache in (block.index, cache.jacobianProduct(block.vector(vector))) }
    }

    public func jacobianTransposeProduct(_ u: [Float], into vector: VectorName, then program: [VectorOp]) throws -> [BlockDots] {
        for block in blocks {
            let cache = try cache(of: block)
            guard u.count == cache.rows * cache.classes else {
                throw RoleError(
                    .invalidRequest, "J_bᵀu with \(u.count) values; the cached subsample has \(cache.rows) rows × \(cache.classes) classes")
            }
            block.vectors[vector] = cache.jacobianTransposeProduct(u)
        }
        return try run(program)
    }

    public func solveDiagonalBlock(_ request: BlockSolveRequest) async throws -> BlockSolveReport {
        let cap = SecondOrderOptions.maxCGIterations
        guard (0...cap).contains(request.maxIterations) else {
            throw RoleError(
                .invalidRequest,
                "a block solve of \(request.maxIterations) iterations is outside 0...\(cap) (SecondOrderOptions.maxCGIterations)")
        }
        guard request.tolerance.isFinite, request.damping.isFinite, request.curvatureScale.isFinite else {
            throw RoleError(.invalidRequest, "a block solve with a non-finite tolerance, damping or curvature scale")
        }
        let block = try block(request.block)
        let space = BlockSolveSpace(
            rightHandSide: block.vector(request.rightHandSide), label: "block \(block.id)", cache: try cache(of: block),
            loss: try requireGrid().spec.loss, outputs: outputs, curvatureScale: Float(request.curvatureScale), damping: request.damping,
            stopped: { self.isStopped(generation: request.generation) },
            iterationDelay: options.solveIterationDelay)
        let report: SolveReport
        do {
            report = try await space.solve(tolerance: request.tolerance, maxIterations: request.maxIterations)
        } catch let error as TrainingError {
            throw RoleError(.numerical, "block \(block.id): local CG failed", cause: error)
        }
        // A new assignment during the solve replaced the block: its result has no home.
        guard let k = position[request.block], blocks[k] === block else {
            throw RoleError(.invalidRequest, "block \(block.id) was reassigned while it was being solved")
        }
        block.vectors[request.solution] = space.vectors.vector(.direction)
        block.vectors[request.residual] = space.vectors.vector(.residual)
        let outcome: BlockSolveReport.Outcome =
            switch report.outcome {
            case .converged: .converged
            case .stopped: .stopped
            default: .iterationLimit
            }
        return BlockSolveReport(block: request.block, iterations: report.iterations, outcome: outcome)
    }

    /// Whether solves of `generation` were told to stop.
    private nonisolated func isStopped(generation: Int) -> Bool {
        stoppedGeneration.withLock { $0 >= generation }
    }

    public nonisolated func stopDiagonalSolves(generation: Int) {
        stoppedGeneration.withLock { $0 = max($0, generation) }
    }

    // MARK: Helpers

    private func requireGrid() throws -> PartitionGrid {
        guard let grid else { throw RoleError(.invalidRequest, "this server has no job assigned") }
        return grid
    }

    private func block(_ index: Int) throws -> Block {
        guard let k = position[index] else {
            throw RoleError(.invalidRequest, "block \(index) is not owned by this server (owns \(ownedBlocks))")
        }
        return blocks[k]
    }

    private func cache(of block: Block) throws -> BlockJacobian {
        guard let cache = block.jacobian else {
            throw RoleError(.invalidRequest, "block \(block.id) has no cached Jacobian; the subsample's slices were never pushed")
        }
        return cache
    }

    private func checkPayload(_ indices: [Int], _ values: [[Float]], what: String) throws {
        guard indices.count == values.count else {
            throw RoleError(.invalidRequest, "\(what) names \(indices.count) blocks but carries \(values.count) arrays")
        }
        for (index, v) in zip(indices, values) {
            let b = try block(index)
            guard v.count == b.size else {
                throw RoleError(.invalidRequest, "\(what): block \(b.id) holds \(b.size) values, got \(v.count)")
            }
        }
    }
}
