import NewtonCore
import NewtonTraining

/// What the driver needs to know of a job's data without reading its rows.
public struct DataSummary: Sendable {
    public var trainRows: Int
    public var testRows: Int
    public var columns: Int
    public var classNames: [String]
    public var scaler: FeatureScaler
}

/// Gives each job's data to the roles of one process: files are indexed
/// once (or their stored index is used) and read block by block through
/// one bounded `BlockCache`, from the files or streamed from the driver;
/// synthetic data and data registered by the embedded cluster are held in
/// memory. The driver uses it for indexes and to serve streamed blocks.
///
/// With a data root, every file path a job names must lie inside it (see
/// `DataRoot`). Indexing runs off the actor, so a slow file holds up only
/// the callers that want that data, and each caller waits at most
/// `loadTimeout`.
public actor DataCatalog {
    public nonisolated let root: DataRoot?
    public nonisolated let loadTimeout: Duration
    /// Where indexes are stored when they cannot be stored beside the data
    /// (nil: such indexes are kept in memory only).
    public nonisolated let indexDirectory: String?
    /// Rows per block of the indexes this catalog builds.
    public nonisolated let blockRows: Int
    /// The parsed blocks this process holds, across jobs.
    public nonisolated let cache: BlockCache
    /// Fetches a block of a running job's data from the driver (workers only).
    public typealias BlockFetcher = @Sendable (_ job: String, _ split: DataSplit, _ block: Int) async throws -> [[UInt8]]
    private nonisolated let fetchBlock: BlockFetcher?
    private var ready: [DataDescriptor: Prepared] = [:]
    /// Open files of indexes whose blocks this process serves, by index.
    private var servedReaders: [[FileIdentity]: DataIndex.Reader] = [:]
    private var preparing: [DataDescriptor: Task<Prepared, any Error>] = [:]

    /// A worker's block cache when nobody says: 256 MiB.
    public static let defaultCacheBytes = 256 << 20

    private enum Prepared: Sendable {
        case inMemory(TrainingData)
        case indexed(IndexedData)
    }

    /// - Parameter root: nil lets jobs read any file the process can.
    public init(
        root: DataRoot? = nil, indexDirectory: String? = nil, blockRows: Int = DataIndex.defaultBlockRows,
        cacheBytes: Int = defaultCacheBytes, fetchBlock: BlockFetcher? = nil, loadTimeout: Duration = .seconds(600)
    ) {
        self.fetchBlock = fetchBlock
        self.root = root
        self.indexDirectory = indexDirectory
        self.blockRows = blockRows
        self.cache = BlockCache(capacityBytes: cacheBytes)
        self.loadTimeout = loadTimeout
    }

    /// Makes already loaded data available under its descriptor.
    public func register(_ data: TrainingData, for descriptor: DataDescriptor) {
        ready[descriptor] = .inMemory(data)
    }

    /// Where a worker reads the rows of a job: by the index the job brings
    /// (from the files or streamed, as its data access says), else by the
    /// data's own stored or new index, or in memory.
    public func rows(for job: WorkerJob) async throws -> any RowSource {
        var fetch: IndexedRows.Fetch?
        if let fetchBlock {
            let jobID = job.jobID
            fetch = { split, block in try await fetchBlock(jobID, split, block) }
        }
        let data: IndexedData
        if let indexed = job.indexed {
            data = indexed
        } else {
            switch try await prepared(job.data) {
            case .inMemory(let rows): return InMemoryRows(rows)
            case .indexed(let indexed): data = indexed
            }
        }
        do {
            return try IndexedRows(data, cache: cache, root: root, fetch: fetch)
        } catch let error as RoleError { throw error } catch {
            throw RoleError(.data, "cannot open the job's data", cause: error)
        }
    }

    /// The index and scaler workers are sent for the data described, with
    /// `access`; nil when the data is not files.
    public func indexedData(for descriptor: DataDescriptor, access: DataAccess) async throws -> IndexedData? {
        guard case .indexed(var data) = try await prepared(descriptor) else { return nil }
        data.access = access
        return data
    }

    /// The bytes of block `b` of `index`'s files, checked, for a worker that
    /// streams it.
    public func content(ofBlock b: Int, in index: DataIndex) throws -> [[UInt8]] {
        guard index.blocks.indices.contains(b) else {
            throw RoleError(.invalidRequest, "block \(b) does not exist: \(index.paths[0]) has \(index.blocks.count) blocks")
        }
        let reader: DataIndex.Reader
        if let open = servedReaders[index.identities], open.index == index {
            reader = open
        } else {
            do { reader = try DataIndex.Reader(index) } catch { throw RoleError(.data, "cannot open the job's data", cause: error) }
            servedReaders[index.identities] = reader
        }
        do { return try reader.content(ofBlock: b) } catch {
            throw RoleError(.data, "cannot read block \(b) of the job's data", cause: error)
        }
    }

    /// The shape, classes and scaler of the data described, from its index.
    public func summary(for descriptor: DataDescriptor) async throws -> DataSummary {
        switch try await prepared(descriptor) {
        case .inMemory(let data):
            return DataSummary(
                trainRows: data.train.rows, testRows: data.test?.rows ?? 0, columns: data.train.columns,
                classNames: data.train.classNames, scaler: data.scaler)
        case .indexed(let data):
            return DataSummary(
                trainRows: data.train.rows, testRows: data.test?.rows ?? 0, columns: data.train.columns,
                classNames: data.train.classNames, scaler: data.scaler)
        }
    }

    /// What the blocks read so far cost: hits, misses, bytes held and read.
    public var counters: BlockCache.Counters { get async { await cache.counters } }

    private func prepared(_ descriptor: DataDescriptor) async throws -> Prepared {
        if let data = ready[descriptor] { return data }
        let located: DataDescriptor
        do { located = try root?.locate(descriptor) ?? descriptor } catch {
            throw RoleError(.data, "the job's data is not readable here", cause: error)
        }
        let places = IndexPlaces(directory: indexDirectory, blockRows: blockRows)
        let task =
            preparing[descriptor]
            ?? Task.detached {
                do { return try Self.prepare(located, places) } catch {
                    throw RoleError(.data, "cannot load the job's data", cause: error)
                }
            }
        preparing[descriptor] = task
        let timeout = loadTimeout
        defer { preparing[descriptor] = nil }
        let data = try await withThrowingTaskGroup(of: Prepared.self) { group in
            group.addTask { try await task.value }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw RoleError(.data, "loading the job's data took longer than \(timeout) (DataCatalog.loadTimeout)")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
        ready[descriptor] = data
        return data
    }

    /// Where a catalog keeps indexes, and how it makes new ones.
    private struct IndexPlaces {
        var directory: String?
        var blockRows: Int

        /// Where the index of `source` may be stored: beside it, then in `directory`.
        func paths(of source: DataSource) -> [String] {
            let beside = DataIndex.storedPath(for: source)
            guard let directory else { return [beside] }
            let flat = String(source.path.map { $0 == "/" ? "_" : $0 })
            return [beside, directory + "/" + flat + DataIndex.fileSuffix]
        }

        /// The stored index of `source` if one describes it as it is now (and
        /// fits `training`), else a new one, stored where it can be.
        func storedOrBuilt(_ source: DataSource, matching training: DataIndex?) throws -> DataIndex {
            for path in paths(of: source) {
                guard let index = try? DataIndex.load(from: path), index.describes(source) else { continue }
                if let training, index.columns != training.columns || index.classNames != training.classNames { continue }
                return index
            }
            let index = try DataIndex.build(source, blockRows: blockRows, matching: training)
            store(index, of: source)
            return index
        }

        /// Stores `index` in the first place that takes it; an index that
        /// cannot be stored is only rebuilt next time.
        func store(_ index: DataIndex, of source: DataSource) {
            for path in paths(of: source) where (try? index.save(to: path)) != nil { return }
        }
    }

    private static func prepare(_ descriptor: DataDescriptor, _ places: IndexPlaces) throws -> Prepared {
        guard let (trainSource, testSource) = try descriptor.sources() else { return .inMemory(try descriptor.load()) }
        var train = try places.storedOrBuilt(trainSource, matching: nil)
        if descriptor.scaling == .standardize, train.statistics.squaredDeviations == nil {
            try train.addDeviations()
            places.store(train, of: trainSource)
        }
        let test = try testSource.map { try places.storedOrBuilt($0, matching: train) }
        let scaler = try FeatureScaler.fit(descriptor.scaling, statistics: train.statistics)
        return .indexed(IndexedData(train: train, test: test, scaler: scaler, access: .auto))
    }
}
