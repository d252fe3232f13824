import CProcess
import NewtonCore
import NewtonTraining

/// Where a worker gets the scaled rows of its shards.
public protocol RowSource: Sendable {
    /// Feature columns of every row.
    var columns: Int { get }
    /// Classes of the training set.
    var classCount: Int { get }
    /// The features (row-major) and class indices of the shard's rows.
    func rows(of shard: RowShard) async throws -> (features: [Float], labels: [Int32])
    /// Starts reading the shard's rows ahead of `rows(of:)`, if that helps.
    func prefetch(_ shard: RowShard) async
}

/// Rows of data held in memory: the embedded cluster's, and synthetic data.
public struct InMemoryRows: RowSource {
    public let data: TrainingData

    public init(_ data: TrainingData) { self.data = data }

    public var columns: Int { data.train.columns }
    public var classCount: Int { data.train.classCount }

    public func rows(of shard: RowShard) throws -> (features: [Float], labels: [Int32]) {
        guard let set = shard.split == .train ? data.train : data.test else {
            throw RoleError(.invalidRequest, "shard \(shard.index) asks for test rows but the job has no test set")
        }
        try check(shard, rows: set.rows)
        let width = set.columns
        switch shard.rows {
        case .range(let r):
            return (Array(set.features[(r.lowerBound * width)..<(r.upperBound * width)]), Array(set.labels[r]))
        case .indices(let indices):
            var features = [Float]()
            features.reserveCapacity(indices.count * width)
            for i in indices { features += set.features[(i * width)..<((i + 1) * width)] }
            return (features, indices.map { set.labels[$0] })
        }
    }

    public func prefetch(_ shard: RowShard) {}
}

/// Rows read block by block, from indexed files or streamed from the
/// driver, through a bounded cache: a worker holds only the blocks of its
/// recent shards, never the data set.
public struct IndexedRows: RowSource {
    /// Fetches a block's bytes (one array per file) from elsewhere: the driver.
    public typealias Fetch = @Sendable (_ split: DataSplit, _ block: Int) async throws -> [[UInt8]]

    /// Where one split's blocks come from.
    enum Origin: Sendable {
        case files(DataIndex.Reader)
        case stream(@Sendable (_ block: Int) async throws -> [[UInt8]])
    }

    public let data: IndexedData
    let cache: BlockCache
    let origins: [DataSplit: Origin]

    /// Opens the job's data as `data.access` says: the files (which `root`,
    /// when given, must hold), or blocks fetched by `fetch`.
    init(_ data: IndexedData, cache: BlockCache, root: DataRoot?, fetch: Fetch?) throws {
        self.data = data
        self.cache = cache
        var origins = [DataSplit: Origin]()
        for split in DataSplit.allCases {
            guard let index = data.index(of: split) else { continue }
            origins[split] = try Self.open(index, split: split, access: data.access, root: root, fetch: fetch)
        }
        self.origins = origins
    }

    private static func open(_ index: DataIndex, split: DataSplit, access: DataAccess, root: DataRoot?, fetch: Fetch?) throws -> Origin {
        func local() throws -> Origin {
            for path in index.paths { _ = try root?.locate(path) }
            return .files(try DataIndex.Reader(index))
        }
        let streamed = fetch.map { fetch in Origin.stream { try await fetch(split, $0) } }
        switch access {
        case .local:
            do { return try local() } catch {
                throw RoleError(.data, "data_access local: cannot read the job's \(split) data here", cause: error)
            }
        case .stream:
            guard let streamed else { throw RoleError(.data, "data_access stream: this process has no driver to stream the data from") }
            return streamed
        case .auto:
            do { return try local() } catch {
                guard let streamed else { throw RoleError(.data, "cannot read the job's \(split) data here", cause: error) }
                return streamed
            }
        }
    }

    public var columns: Int { data.train.columns }
    public var classCount: Int { data.train.classNames.count }

    /// Whether the blocks of `split` are streamed rather than read from files.
    public func streams(_ split: DataSplit) -> Bool {
        if case .stream = origins[split] { return true }
        return false
    }

    /// A shard's rows, block by block in row order: at most one block is
    /// held here at a time (shard rows are sorted), so even a subsample
    /// spread over every block costs one block's memory, not the data set's.
    public func rows(of shard: RowShard) async throws -> (features: [Float], labels: [Int32]) {
        guard let index = data.index(of: shard.split) else {
            throw RoleError(.invalidRequest, "shard \(shard.index) asks for test rows but the job has no test set")
        }
        try check(shard, rows: index.rows)
        let width = index.columns
        var features = [Float]()
        var labels = [Int32]()
        features.reserveCapacity(shard.rows.count * width)
        labels.reserveCapacity(shard.rows.count)
        func append(_ block: Dataset, rows local: Range<Int>) {
            features += block.features[(local.lowerBound * width)..<(local.upperBound * width)]
            labels += block.labels[local]
        }
        switch shard.rows {
        case .range(let r):
            for b in index.blocks(holding: r) {
                let block = try await self.block(b, shard.split, index)
                let first = index.rowRange(ofBlock: b).lowerBound
                append(block, rows: (max(r.lowerBound, first) - first)..<(min(r.upperBound, first + block.rows) - first))
            }
        case .indices(let rows):
            var next = 0
            while next < rows.count {
                let b = rows[next] / index.blockRows
                let block = try await self.block(b, shard.split, index)
                let first = b * index.blockRows
                while next < rows.count, rows[next] / index.blockRows == b {
                    append(block, rows: (rows[next] - first)..<(rows[next] - first + 1))
                    next += 1
                }
            }
        }
        return (features, labels)
    }

    /// Starts reading the first block of the shard, so that the next shard
    /// of a task is on its way while the current one is computed.
    public func prefetch(_ shard: RowShard) async {
        guard let index = data.index(of: shard.split) else { return }
        let first: Int?
        switch shard.rows {
        case .range(let r): first = r.lowerBound
        case .indices(let rows): first = rows.first
        }
        guard let first, first >= 0, first < index.rows else { return }
        let b = first / index.blockRows
        await cache.prefetch(key(b, index), bytes: parsedBytes(b, index)) { try await self.load(b, shard.split) }
    }

    private func block(_ b: Int, _ split: DataSplit, _ index: DataIndex) async throws -> Dataset {
        try await cache.block(key(b, index), bytes: parsedBytes(b, index)) { try await self.load(b, split) }
    }

    /// What block `b` holds once parsed: its features and labels.
    private func parsedBytes(_ b: Int, _ index: DataIndex) -> Int {
        4 * index.rowRange(ofBlock: b).count * (index.columns + 1)
    }

    private func key(_ b: Int, _ index: DataIndex) -> BlockCache.Key {
        BlockCache.Key(file: index.paths[0], identity: index.identities[0], blockRows: index.blockRows, block: b, scaler: data.scaler)
    }

    /// Reads (or fetches), checks and scales one block.
    private func load(_ b: Int, _ split: DataSplit) async throws -> Dataset {
        let index = data.index(of: split)!
        var rows: Dataset
        let releaseMemory: Bool
        do {
            let content: [[UInt8]]
            switch origins[split]! {
            case .files(let reader): content = try reader.content(ofBlock: b)
            case .stream(let fetch):
                content = try await fetch(b)
                try index.check(content, block: b)
            }
            releaseMemory = await cache.recordRead(bytes: content.reduce(0) { $0 + $1.count }, streamed: streams(split))
            rows = try index.rows(ofBlock: b, content: content)
        }
        // The blocks' text and parse buffers are freed; now and then their
        // pages go back (the tool keeps up to 128 MiB of freed memory
        // otherwise), so that a worker's memory is its cache.
        if releaseMemory { newtonps_release_free_memory() }
        try data.scaler.apply(to: &rows)
        return rows
    }
}

/// Refuses a shard whose rows are not all within a set of `rows` rows.
private func check(_ shard: RowShard, rows: Int) throws {
    switch shard.rows {
    case .range(let r):
        guard r.lowerBound >= 0, r.upperBound <= rows else {
            throw RoleError(.invalidRequest, "shard \(shard.index) asks for rows \(r) of a \(shard.split) set with \(rows)")
        }
    case .indices(let indices):
        guard indices.allSatisfy({ $0 >= 0 && $0 < rows }) else {
            throw RoleError(.invalidRequest, "shard \(shard.index) asks for a row outside the \(shard.split) set's \(rows)")
        }
    }
}

/// Parsed, scaled blocks of indexed data, least recently used dropped first
/// once they and the blocks being read would hold more than `capacityBytes`
/// (room is made before a block is read, so the cache's memory stays within
/// its capacity unless one block alone exceeds it). A block being read is
/// read once however many ask for it.
public actor BlockCache {
    /// A parsed, scaled block: the file as indexed, its blocking, the block
    /// and the scaling (jobs on one file may scale it differently).
    struct Key: Hashable {
        var file: String
        var identity: FileIdentity
        var blockRows: Int
        var block: Int
        var scaler: FeatureScaler
    }

    /// What the cache did: hits, misses, bytes held and bytes read.
    public struct Counters: Sendable, Equatable {
        public var hits = 0
        public var misses = 0
        /// Bytes of parsed blocks currently held.
        public var heldBytes = 0
        public var peakHeldBytes = 0
        /// Bytes of data read from files, and streamed from the driver.
        public var fileBytes = 0
        public var streamedBytes = 0
    }

    public nonisolated let capacityBytes: Int
    public private(set) var counters = Counters()
    private var blocks = [Key: (rows: Dataset, lastUse: Int)]()
    /// Blocks being read, with the bytes kept free for them.
    private var reading = [Key: (task: Task<Dataset, any Error>, bytes: Int)]()
    private var readingBytes = 0
    private var readSinceRelease = 0
    private var clock = 0

    public init(capacityBytes: Int) { self.capacityBytes = capacityBytes }

    /// Counts `bytes` of data read; true when so much has been read since
    /// the last time it said so that freed parse buffers should go back to
    /// the system (`releaseEveryBytes`).
    func recordRead(bytes: Int, streamed: Bool) -> Bool {
        if streamed { counters.streamedBytes += bytes } else { counters.fileBytes += bytes }
        readSinceRelease += bytes
        guard readSinceRelease >= Self.releaseEveryBytes else { return false }
        readSinceRelease = 0
        return true
    }

    /// Data read between two returns of freed memory to the system.
    static let releaseEveryBytes = 64 << 20

    /// Block `key`, from the cache or read by `load`; `bytes` is what it
    /// will hold once read.
    func block(_ key: Key, bytes: Int, load: @escaping @Sendable () async throws -> Dataset) async throws -> Dataset {
        clock += 1
        if let held = blocks[key] {
            counters.hits += 1
            blocks[key]!.lastUse = clock
            return held.rows
        }
        counters.misses += 1
        let task = reading[key]?.task ?? start(key, bytes: bytes, load)
        let rows = try await task.value
        finish(key, task, rows)
        return rows
    }

    func prefetch(_ key: Key, bytes: Int, load: @escaping @Sendable () async throws -> Dataset) {
        guard blocks[key] == nil, reading[key] == nil else { return }
        _ = start(key, bytes: bytes, load)
    }

    private func start(_ key: Key, bytes: Int, _ load: @escaping @Sendable () async throws -> Dataset) -> Task<Dataset, any Error> {
        dropLeastRecentlyUsed(keepingFree: bytes)
        let task = Task.detached { try await load() }
        reading[key] = (task, bytes)
        readingBytes += bytes
        Task { await self.settle(key, task) }
        return task
    }

    private func settle(_ key: Key, _ task: Task<Dataset, any Error>) async {
        let rows = try? await task.value
        finish(key, task, rows)
    }

    /// Ends `task`'s read of `key` (whichever of its waiters gets here first)
    /// and holds the block it read, if it read one.
    private func finish(_ key: Key, _ task: Task<Dataset, any Error>, _ rows: Dataset?) {
        if let read = reading[key], read.task == task {
            reading[key] = nil
            readingBytes -= read.bytes
        }
        if let rows { insert(key, rows) }
    }

    /// Holds a block just read (once), dropping the least recently used beyond the capacity.
    private func insert(_ key: Key, _ rows: Dataset) {
        guard blocks[key] == nil else { return }
        clock += 1
        blocks[key] = (rows, clock)
        counters.heldBytes += Self.bytes(rows)
        dropLeastRecentlyUsed(keepingFree: 0)
        counters.peakHeldBytes = max(counters.peakHeldBytes, counters.heldBytes)
    }

    /// Drops the least recently used blocks until the held blocks, the
    /// blocks being read and `bytes` more fit the capacity. Making room for a
    /// read may drop every block; after an insert (`bytes` 0) the block just
    /// inserted stays, however large.
    private func dropLeastRecentlyUsed(keepingFree bytes: Int) {
        let keep = bytes > 0 ? 0 : 1
        while counters.heldBytes + readingBytes + bytes > capacityBytes, blocks.count > keep,
            let oldest = blocks.min(by: { $0.value.lastUse < $1.value.lastUse })?.key
        {
            counters.heldBytes -= Self.bytes(blocks.removeValue(forKey: oldest)!.rows)
        }
    }

    private static func bytes(_ rows: Dataset) -> Int { 4 * (rows.features.count + rows.labels.count) }
}
