import NewtonCore

/// The rows of one shard: a contiguous range or an explicit, sorted list.
public enum RowSelection: Sendable, Equatable {
    case range(Range<Int>)
    case indices([Int])

    public var count: Int {
        switch self {
        case .range(let r): return r.count
        case .indices(let i): return i.count
        }
    }
}

/// A fixed piece of work: rows that are always processed together, so that
/// results never depend on how many workers share them. Sums over shards are
/// taken in `index` order.
public struct RowShard: Sendable, Equatable {
    public var index: Int
    public var split: DataSplit
    public var rows: RowSelection
    /// Position of the shard's first row within its row set (the subsample
    /// for Jacobian slices).
    public var offset: Int

    public init(index: Int, split: DataSplit, rows: RowSelection, offset: Int) {
        self.index = index
        self.split = split
        self.rows = rows
        self.offset = offset
    }
}

/// Which sum (or Jacobian cache) a push belongs to: the job and the round
/// the coordinator numbered it with. A server refuses a push for any other
/// round, so a late push from a worker whose task was given to another
/// cannot be added into a later sum of the same vector.
public struct PushRound: Sendable, Hashable, CustomStringConvertible {
    public var job: String
    public var round: Int

    public init(job: String, round: Int) {
        self.job = job
        self.round = round
    }

    public var description: String { "job \(job) round \(round)" }
}

/// What a server needs to know to own its blocks of one job.
public struct BlockAssignment: Sendable {
    public var jobID: String
    public var grid: PartitionGrid
    /// Indices (in the grid's canonical order) of the blocks this server owns.
    public var blocks: [Int]
    /// Initial weights of those blocks, in the same order.
    public var weights: [[Float]]

    public init(jobID: String, grid: PartitionGrid, blocks: [Int], weights: [[Float]]) {
        self.jobID = jobID
        self.grid = grid
        self.blocks = blocks
        self.weights = weights
    }
}

/// A request to solve one diagonal block's damped Gauss-Newton system
/// `(s·J_bᵀBJ_b + μI) x = −g_b` by CG from 0 on its owner, with no exchange.
public struct BlockSolveRequest: Sendable, Equatable {
    public var block: Int
    /// Identifies one direction search; `stopDiagonalSolves` names it.
    public var generation: Int
    public var rightHandSide: VectorName
    public var solution: VectorName
    public var residual: VectorName
    /// μ = λ + 1/(C·l).
    public var damping: Double
    /// s = 1/|S|.
    public var curvatureScale: Double
    /// Stop at ‖r‖ ≤ tolerance · ‖g_b‖.
    public var tolerance: Double
    public var maxIterations: Int

    public init(
        block: Int, generation: Int, rightHandSide: VectorName, solution: VectorName, residual: VectorName,
        damping: Double, curvatureScale: Double, tolerance: Double, maxIterations: Int
    ) {
        self.block = block
        self.generation = generation
        self.rightHandSide = rightHandSide
        self.solution = solution
        self.residual = residual
        self.damping = damping
        self.curvatureScale = curvatureScale
        self.tolerance = tolerance
        self.maxIterations = maxIterations
    }
}

/// How one block's local solve ended.
public struct BlockSolveReport: Sendable, Equatable {
    public enum Outcome: String, Sendable { case converged, iterationLimit, stopped }
    public var block: Int
    public var iterations: Int
    public var outcome: Outcome
    public init(block: Int, iterations: Int, outcome: Outcome) {
        self.block = block
        self.iterations = iterations
        self.outcome = outcome
    }
}

/// One block of a vector as read from its owner: its version, and its
/// values unless the reader already held them at that version.
public struct VersionedBlock: Sendable, Equatable {
    /// Changes with every write to the block's vector and is never reused.
    public var version: UInt64
    /// nil when the reader named this version as held.
    public var values: [Float]?
    public init(version: UInt64, values: [Float]?) {
        self.version = version
        self.values = values
    }
}

/// The operations a **parameter server** offers: it owns blocks of the
/// weights and every vector over them, sums what workers push in shard
/// order, caches Jacobian slices of the subsample and runs block-local
/// products and solves.
///
/// Implemented in-process (direct calls) and over the network; the
/// optimiser sees only this protocol.
public protocol ParameterServer: Sendable {
    /// Takes ownership of blocks for a job, replacing any previous job.
    func assign(_ assignment: BlockAssignment) async throws
    /// `vector` on the given owned blocks with their versions. `held` is
    /// empty or names, per block, the version the caller already has; a
    /// block still at that version comes back without values.
    func read(_ vector: VectorName, blocks: [Int], held: [UInt64]) async throws -> [VersionedBlock]
    /// Overwrites `vector` on the given owned blocks.
    func write(_ vector: VectorName, blocks: [Int], values: [[Float]]) async throws
    /// Runs a vector program on every owned block; one answer per block.
    func run(_ program: [VectorOp]) async throws -> [BlockDots]

    /// Starts summing `shards` contributions into `vector` (zeroed first) for
    /// round `round` of the assigned job. A contribution is one shard's, or
    /// one push group's (`WorkerTask.shardsPerPush`), numbered from 0.
    func beginSum(into vector: VectorName, shards: Int, round: Int) async throws
    /// One shard's (or push group's) contribution to owned blocks. A shard pushed again before
    /// its turn replaces the waiting copy; once added, repeats are ignored
    /// (they come from the same rows at the same point, so they are equal).
    /// A push for another job or round is refused.
    func push(into vector: VectorName, round: PushRound, shard: Int, blocks: [Int], values: [[Float]]) async throws
    /// Adds the contributions in shard order; fails if any shard is missing.
    func finishSum(into vector: VectorName) async throws

    /// Prepares the Jacobian cache for a subsample of `rows` rows (reusing the
    /// buffers when the size is unchanged); every row is then pushed.
    func beginJacobian(rows: Int, round: Int) async throws
    /// Caches rows `rowOffset…` of the subsample: per owned block, the layer
    /// inputs of its input group and the Jacobian slice of its output group;
    /// and the network outputs of those rows.
    func pushJacobian(round: PushRound, rowOffset: Int, blocks: [Int], inputs: [[Float]], slices: [SliceShare], outputs: [Float])
        async throws
    /// Runs `program` as `run` runs it (it may not take dots), then answers
    /// `J_b v_b` (`|S| × n_L`) for every owned block: one round trip for both.
    func jacobianProduct(of vector: VectorName, first program: [VectorOp]) async throws -> [(block: Int, values: [Float])]
    /// `into_b = J_bᵀ u` for every owned block, then `program` as `run`
    /// runs it (one round trip for both); its dots per block.
    func jacobianTransposeProduct(_ u: [Float], into vector: VectorName, then program: [VectorOp]) async throws -> [BlockDots]

    /// Solves one owned diagonal block with the cached Jacobian.
    func solveDiagonalBlock(_ request: BlockSolveRequest) async throws -> BlockSolveReport
    /// Makes every running or queued solve of `generation` (or an earlier one)
    /// return its current iterate; a new assignment clears it.
    func stopDiagonalSolves(generation: Int) async throws
}

extension ParameterServer {
    /// The values of `vector` on the given owned blocks.
    public func read(_ vector: VectorName, blocks: [Int]) async throws -> [[Float]] {
        try await read(vector, blocks: blocks, held: []).map { $0.values ?? [] }
    }
}

/// Everything a worker needs to know about a job before it takes shards.
public struct WorkerJob: Sendable {
    public var jobID: String
    public var grid: PartitionGrid
    /// Server index owning each block, in canonical block order.
    public var ownership: [Int]
    public var data: DataDescriptor
    /// For data in files: the index workers read their blocks by (nil: each
    /// worker's catalog finds or makes it).
    public var indexed: IndexedData?

    public init(jobID: String, grid: PartitionGrid, ownership: [Int], data: DataDescriptor, indexed: IndexedData? = nil) {
        self.jobID = jobID
        self.grid = grid
        self.ownership = ownership
        self.data = data
        self.indexed = indexed
    }
}

/// One piece of work for a worker: the same computation on each of `shards`.
public struct WorkerTask: Sendable {
    public enum Kind: Sendable, Equatable {
        /// Loss and number of correct predictions at `point`.
        case evaluate(point: VectorName)
        /// Loss, and each shard's gradient sum pushed into `into`.
        case gradient(point: VectorName, into: VectorName)
        /// Each shard's Gauss-Newton product `Σ JᵀBJv` (v = `direction`)
        /// at `point`, pushed into `into`.
        case gaussNewton(point: VectorName, direction: VectorName, into: VectorName)
        /// Jacobian slices and layer inputs at `point`, pushed to every block
        /// owner; the shard's outputs come back in the result.
        case jacobian(point: VectorName)
        /// Each shard's Hessian product `Σ ∇²ξ v` (v = `direction`) at
        /// `point`, by the R-operator, pushed into `into`.
        case hessian(point: VectorName, direction: VectorName, into: VectorName)
        /// Each shard's `Σ_r (∇ξ_r)²` (element-wise) at `point`, pushed into `into`.
        case squaredGradient(point: VectorName, into: VectorName)
    }

    public var kind: Kind
    public var shards: [RowShard]
    /// The round of the sum (or Jacobian cache) the pushes belong to.
    public var round: Int
    /// For sums: the worker adds the results of this many consecutive shards
    /// (the group `shard.index / shardsPerPush`), in shard order, and pushes
    /// each group once, as the group's index. A task holds whole groups.
    public var shardsPerPush: Int
    public init(kind: Kind, shards: [RowShard], round: Int, shardsPerPush: Int = 1) {
        self.kind = kind
        self.shards = shards
        self.round = round
        self.shardsPerPush = shardsPerPush
    }
}

/// What a worker reports for one shard.
public struct ShardResult: Sendable, Equatable {
    public var shard: Int
    /// Σ ξ over the shard's rows.
    public var loss: Double
    public var correct: Int
    /// Network outputs `rows × n_L` (Jacobian tasks only).
    public var outputs: [Float]

    public init(shard: Int, loss: Double, correct: Int, outputs: [Float] = []) {
        self.shard = shard
        self.loss = loss
        self.correct = correct
        self.outputs = outputs
    }
}

/// The operations a **worker** offers. Workers are stateless between tasks:
/// they pull what they need from the servers and push what they compute.
public protocol Worker: Sendable {
    /// Prepares for a job: data to read, grid, which server owns which block.
    func prepare(_ job: WorkerJob) async throws
    /// Runs the task on every shard and reports each one.
    func run(_ task: WorkerTask) async throws -> [ShardResult]
}
