import Foundation
import NewtonCore
import NewtonTraining
import XCTest

@testable import NewtonRoles

final class RowSourceTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("newtonps-rows-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A LIBSVM training and test file of synthetic rows, and its descriptor.
    private func files(trainRows: Int = 500, testRows: Int = 120, scaling: FeatureScaling = .standardize) throws -> DataDescriptor {
        var generator = SyntheticData.Generator(features: 8, classes: 3, seed: 11)
        try generator.write(trainRows, as: .libsvm, to: directory + "/train.svm")
        try generator.write(testRows, as: .libsvm, to: directory + "/test.svm")
        return DataDescriptor(
            source: .files(
                format: .libsvm, train: directory + "/train.svm", test: directory + "/test.svm", csvLabelColumn: 0, csvHeader: nil),
            scaling: scaling)
    }

    /// A worker's job on `descriptor`, bringing `indexed` as the driver sends it.
    private func job(_ descriptor: DataDescriptor, indexed: IndexedData? = nil) throws -> WorkerJob {
        let grid = PartitionGrid(unpartitioned: try NetworkSpec(layerSizes: [8, 3], activations: [], loss: .crossEntropy))
        return WorkerJob(jobID: "j.1", grid: grid, ownership: [0], data: descriptor, indexed: indexed)
    }

    private let shards = [
        RowShard(index: 0, split: .train, rows: .range(0..<500), offset: 0),
        RowShard(index: 1, split: .train, rows: .range(37..<41), offset: 0),
        RowShard(index: 2, split: .train, rows: .indices([3, 96, 250, 499]), offset: 0),
        RowShard(index: 3, split: .test, rows: .range(100..<120), offset: 0),
    ]

    private func assertSameRows(_ source: any RowSource, as reference: InMemoryRows, file: StaticString = #filePath, line: UInt = #line)
        async throws
    {
        for shard in shards {
            let expected = try reference.rows(of: shard)
            await source.prefetch(shard)
            let got = try await source.rows(of: shard)
            XCTAssertEqual(
                got.features.map { $0.bitPattern }, expected.features.map { $0.bitPattern }, "shard \(shard.index)", file: file, line: line)
            XCTAssertEqual(got.labels, expected.labels, "shard \(shard.index)", file: file, line: line)
        }
    }

    func testIndexedRowsEqualTheRowsInMemory() async throws {
        let descriptor = try files()
        let inMemory = InMemoryRows(try descriptor.load())
        let catalog = DataCatalog(blockRows: 32, cacheBytes: 4096)
        let indexed = try await catalog.rows(for: job(descriptor))
        try await assertSameRows(indexed, as: inMemory)
        do {
            _ = try await indexed.rows(of: RowShard(index: 9, split: .train, rows: .range(490..<510), offset: 0))
            XCTFail("rows past the end must be refused")
        } catch let error as RoleError {
            XCTAssertTrue(error.message.contains("shard 9 asks for rows 490..<510 of a train set with 500"), error.message)
        }
        // The index was stored beside the data for the next process.
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory + "/train.svm" + DataIndex.fileSuffix))
        let summary = try await catalog.summary(for: descriptor)
        XCTAssertEqual(summary.scaler, inMemory.data.scaler)
        XCTAssertEqual(summary.trainRows, 500)
        XCTAssertEqual(summary.testRows, 120)

        // Another job on the same files, scaled otherwise, shares the cache but not its blocks.
        var unit = descriptor
        unit.scaling = .unitRange
        try await assertSameRows(try await catalog.rows(for: job(unit)), as: InMemoryRows(try unit.load()))
    }

    /// A worker whose data root does not hold the files streams the blocks
    /// from the driver's catalog and gets the same rows; a block changed on
    /// the way is refused by its checksum.
    func testStreamedRowsEqualTheRowsInMemory() async throws {
        let descriptor = try files()
        let inMemory = InMemoryRows(try descriptor.load())
        let driver = DataCatalog(blockRows: 32)
        let found = try await driver.indexedData(for: descriptor, access: .auto)
        let indexed = try XCTUnwrap(found)
        let corrupt = Box(false)
        let fetch: DataCatalog.BlockFetcher = { job, split, block in
            XCTAssertEqual(job, "j.1")
            var content = try await driver.content(ofBlock: block, in: indexed.index(of: split)!)
            if corrupt.value { content[0][content[0].count / 2] ^= 1 }
            return content
        }
        let elsewhere = directory + "/elsewhere"
        try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
        let worker = DataCatalog(root: try DataRoot(elsewhere), cacheBytes: 4096, fetchBlock: fetch)
        let streamed = try await worker.rows(for: job(descriptor, indexed: indexed))
        try await assertSameRows(streamed, as: inMemory)
        let counters = await worker.counters
        XCTAssertGreaterThan(counters.streamedBytes, 0)
        XCTAssertEqual(counters.fileBytes, 0)

        corrupt.set(true)
        let fresh = try await DataCatalog(root: try DataRoot(elsewhere), fetchBlock: fetch).rows(for: job(descriptor, indexed: indexed))
        do {
            _ = try await fresh.rows(of: shards[1])
            XCTFail("a changed block must be refused")
        } catch {
            XCTAssertTrue("\(error)".contains("do not match the index"), "\(error)")
        }

        // Local access where the files are not readable fails, naming why.
        var local = indexed
        local.access = .local
        do {
            _ = try await worker.rows(for: job(descriptor, indexed: local))
            XCTFail("local access outside the data root must be refused")
        } catch let error as RoleError {
            XCTAssertTrue("\(error)".contains("data_access local: cannot read the job's train data here"), "\(error)")
        }
    }

    /// Block `b` of a file in the test's directory, unscaled.
    private func blockKey(_ b: Int) throws -> BlockCache.Key {
        BlockCache.Key(
            file: "f", identity: try FileIdentity(path: directory), blockRows: 10, block: b,
            scaler: FeatureScaler(scaling: .none, offsets: [], factors: []))
    }

    /// A block of 10 rows of 9 features: 400 bytes parsed.
    private func block() throws -> Dataset {
        try Dataset(features: [Float](repeating: 1, count: 90), labels: Array(repeating: 0, count: 10), columns: 9, classNames: ["a"])
    }

    func testBlockCacheHoldsAtMostItsCapacity() async throws {
        let cache = BlockCache(capacityBytes: 1000)
        let block = try block()
        let loads = Counter()
        for b in [0, 1, 2, 0, 2, 2, 1] {
            _ = try await cache.block(try blockKey(b), bytes: 400) {
                loads.add()
                return block
            }
        }
        let counters = await cache.counters
        // Two blocks of 400 bytes fit: 0, 1, 2 (drops 0), 0 (drops 1), 2, 2, 1 (drops 0).
        XCTAssertEqual(counters.misses, 5)
        XCTAssertEqual(counters.hits, 2)
        XCTAssertEqual(loads.value, 5)
        XCTAssertLessThanOrEqual(counters.peakHeldBytes, 1000)
    }

    /// Room is made before a block is read: with two 400-byte blocks held in
    /// 1000 bytes, reading a third first drops the oldest, so what the cache
    /// holds and reads at once stays within its capacity.
    func testBlockCacheMakesRoomBeforeReading() async throws {
        let cache = BlockCache(capacityBytes: 1000)
        let block = try block()
        let overCapacity = Box(false)
        for b in [0, 1, 2, 0] {
            _ = try await cache.block(try blockKey(b), bytes: 400) {
                if await cache.counters.heldBytes + 400 > 1000 { overCapacity.set(true) }
                return block
            }
        }
        XCTAssertFalse(overCapacity.value, "a block was read while the cache held its capacity")
        let counters = await cache.counters
        XCTAssertEqual(counters.misses, 4)
        XCTAssertEqual(counters.peakHeldBytes, 800)
    }

    /// Training on workers that read indexed files through a cache smaller
    /// than the data gives the objectives of the in-memory run, as doubles.
    func testTrainingOnIndexedFilesEqualsTrainingInMemory() async throws {
        let descriptor = try files()
        let network = try NetworkSpec(layerSizes: [8, 12, 3], activations: [.tanh], loss: .crossEntropy)
        let grid = try PartitionGrid(spec: network, partitions: [1, 2, 1])
        let job = TrainingJob(
            network: network, optimizer: .newton, regularization: 1, budget: TrainingBudget(maxIterations: 4), seed: 3)

        let inMemory = try await EmbeddedCluster(
            grid: grid, data: try descriptor.load(), descriptor: descriptor, servers: 2, workers: 2, shardRows: 64)
        let expected = try await job.run(on: inMemory.coordinator, jobID: "memory", data: descriptor)

        let catalog = DataCatalog(blockRows: 50, cacheBytes: 8 << 10)
        let servers = [ServerCore(), ServerCore()]
        let workers = (0..<2).map { _ in WorkerCore(catalog: catalog, servers: { _ in servers }) }
        let coordinator = try ClusterCoordinator(
            grid: grid, servers: servers, workers: workers, shardRows: 64, trainRows: 500, testRows: 120)
        let streamed = try await job.run(on: coordinator, jobID: "files", data: descriptor)

        XCTAssertEqual(streamed.records.map(\.objective), expected.records.map(\.objective))
        XCTAssertEqual(streamed.records.map(\.testAccuracy), expected.records.map(\.testAccuracy))
        let counters = await catalog.cache.counters
        XCTAssertGreaterThan(counters.misses, 0)
        XCTAssertLessThanOrEqual(counters.peakHeldBytes, 8 << 10)
    }
}

/// A flag shared with a `@Sendable` closure.
private final class Box: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Bool
    init(_ value: Bool) { stored = value }
    var value: Bool { lock.withLock { stored } }
    func set(_ value: Bool) { lock.withLock { stored = value } }
}

/// A count shared with a `@Sendable` closure.
private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var value: Int { lock.withLock { count } }
    func add() { lock.withLock { count += 1 } }
}
