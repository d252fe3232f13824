import NewtonCluster
import NewtonCore
import NewtonTraining
import XCTest

final class NewtonCGTests: XCTestCase {
    func testSameSeedGivesSameIterates() async throws {
        let a = try await Harness().run(iterations: 4)
        let b = try await Harness().run(iterations: 4)
        XCTAssertEqual(a.objectives, b.objectives)
        XCTAssertEqual(a.records.map(\.cgIterations), b.records.map(\.cgIterations))
    }

    /// Shards are fixed and summed in shard order, so the number of workers
    /// cannot change a single bit of the iterates.
    func testWorkerCountDoesNotChangeIterates() async throws {
        var one = Harness()
        one.workers = 1
        var four = Harness()
        four.workers = 4
        four.servers = 2
        for products in ProductsMode.allCases {
            var options = NewtonOptions()
            options.products = products
            let a = try await one.run(iterations: 4, newton: options)
            let b = try await four.run(iterations: 4, newton: options)
            XCTAssertEqual(a.objectives, b.objectives, "\(products)")
            XCTAssertEqual(a.records.map(\.lambda), b.records.map(\.lambda), "\(products)")
        }
    }

    /// The grid only changes how sums over blocks are rounded.
    func testGridsAgreeWithinRounding() async throws {
        let reference = try await Harness().run(iterations: 4)
        for partitions in [[2, 3, 2, 1], [3, 2, 3, 2], [1, 5, 1, 3], [8, 12, 10, 3]] {
            var h = Harness()
            h.partitions = partitions
            h.servers = 3
            let run = try await h.run(iterations: 4)
            XCTAssertLessThan(maxRelativeGap(reference.objectives, run.objectives), 1e-4, "grid \(partitions)")
            XCTAssertEqual(reference.records.map(\.cgIterations), run.records.map(\.cgIterations), "grid \(partitions)")
        }
    }

    /// Cached-Jacobian products and R-operator products define the same G.
    func testProductsModesAgree() async throws {
        var jacobian = NewtonOptions()
        jacobian.products = .jacobian
        var rop = NewtonOptions()
        rop.products = .rop
        var h = Harness()
        h.partitions = [2, 2, 2, 1]
        let a = try await h.run(iterations: 4, newton: jacobian)
        let b = try await h.run(iterations: 4, newton: rop)
        XCTAssertLessThan(maxRelativeGap(a.objectives, b.objectives), 1e-4)
    }

    func testTrainsSyntheticDataToStatedAccuracy() async throws {
        var h = Harness()
        h.trainRows = 1500
        h.testRows = 500
        h.partitions = [2, 2, 2, 1]
        h.servers = 2
        h.workers = 2
        var options = NewtonOptions()
        options.subsampleFraction = 0.2
        let summary = try await h.run(iterations: 30, newton: options)
        let objectives = summary.objectives
        XCTAssertLessThan(objectives.last!, objectives.first! * 0.5)
        XCTAssertTrue(summary.records.dropFirst().allSatisfy { $0.outcome == .accepted })
        // Each accepted step satisfies Armijo, so f never increases.
        for (a, b) in zip(objectives, objectives.dropFirst()) { XCTAssertLessThanOrEqual(b, a) }
        XCTAssertGreaterThanOrEqual(summary.records.last!.testAccuracy!, 0.85)
    }

    func testBlockDiagonalModeDescends() async throws {
        var h = Harness()
        h.partitions = [2, 2, 2, 1]
        h.servers = 2
        var options = NewtonOptions()
        options.blockDiagonal = true
        options.subsampleFraction = 0.2
        let summary = try await h.run(iterations: 8, newton: options)
        XCTAssertLessThan(summary.objectives.last!, summary.objectives.first! * 0.8)
        XCTAssertGreaterThan(summary.records.last!.cgIterations, 0)
    }

    /// With a straggling server and a cut-off below 1, the direction search
    /// returns before the slow blocks finish, and training still descends.
    func testStragglerCutoffStopsSlowBlocks() async throws {
        var h = Harness()
        h.partitions = [2, 2, 2, 1]
        h.servers = 1
        let network = try h.network()
        let grid = try PartitionGrid(spec: network, partitions: h.partitions!)
        let data = try h.descriptor.load()
        let fast = ServerCore()
        let slow = ServerCore(options: .init(solveIterationDelay: .milliseconds(20)))
        let catalog = DataCatalog()
        await catalog.register(data, for: h.descriptor)
        let servers: [any ParameterServer] = [fast, slow]
        let worker = WorkerCore(catalog: catalog, servers: { _ in servers })
        let coordinator = try ClusterCoordinator(
            grid: grid, servers: servers, workers: [worker], shardRows: 64,
            trainRows: data.train.rows, testRows: data.test!.rows)
        var options = NewtonOptions()
        options.blockDiagonal = true
        options.stragglerCutoff = 0.5
        options.cgTolerance = 0.01
        let job = TrainingJob(network: network, optimizer: .newton, newton: options, budget: TrainingBudget(maxIterations: 3), seed: 3)
        let clock = ContinuousClock.now
        let summary = try await job.run(on: coordinator, jobID: "straggler", data: h.descriptor)
        XCTAssertLessThan(summary.objectives.last!, summary.objectives.first!)
        // The slow server's blocks would need ~20 ms per CG iteration for tens of
        // iterations each; with the cut-off the whole run stays far below that.
        let slowBlocks = coordinator.blocks(ofServer: 1).count
        XCTAssertGreaterThan(slowBlocks, 0)
        XCTAssertLessThan(ContinuousClock.now - clock, .seconds(10))
    }

    func testInvalidOptionsAreRejectedWithTheirNames() async throws {
        var options = NewtonOptions()
        options.cgTolerance = 2
        options.blockDiagonal = true
        options.products = .rop
        XCTAssertEqual(options.problems.count, 2)
        XCTAssertTrue(options.problems.joined().contains("CG tolerance"))
        do {
            _ = try await Harness().run(iterations: 1, newton: options)
            XCTFail("bad options were accepted")
        } catch let error as TrainingError {
            XCTAssertEqual(error.code, .invalidOptions)
        }
    }

    func testDifferentSeedsGiveDifferentRuns() async throws {
        let a = try await Harness().run(iterations: 2, seed: 1)
        let b = try await Harness().run(iterations: 2, seed: 2)
        XCTAssertNotEqual(a.objectives, b.objectives)
    }
}
