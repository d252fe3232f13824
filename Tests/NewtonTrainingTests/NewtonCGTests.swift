import Foundation
import NewtonCore
import NewtonRoles
import NewtonTraining
import Synchronization
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

    /// A sum over more than `evenParts` shards is pushed in groups of
    /// consecutive shards: the same for every worker count, and the same as
    /// one shard over every row up to rounding. A task that splits a group
    /// is refused.
    func testPushGroupsDoNotDependOnTheWorkers() async throws {
        var gradients = [[Float]]()
        for (workers, shardRows) in [(1, 16), (2, 16), (3, 16), (5, 16), (1, 600)] {
            var h = Harness()
            h.workers = workers
            h.shardRows = shardRows
            let network = try h.network()
            let coordinator = try await h.cluster().coordinator
            try await coordinator.start(jobID: "groups", data: h.descriptor, weights: DenseParameters(heNormal: network, seed: 5))
            // 600 rows in 16-row shards: 38 shards, 10 pushes of 4 (the last of 2).
            let shards = coordinator.shards(.train)
            XCTAssertEqual(shards.count, shardRows == 16 ? 38 : 1)
            _ = try await coordinator.gradient(at: .weights, into: .gradient, shards: shards)
            gradients.append(try await coordinator.read(.gradient).values)
            if workers == 2 {
                let split = WorkerTask(
                    kind: .gradient(point: .weights, into: .gradient), shards: Array(shards[2..<6]), round: 1, shardsPerPush: 4)
                do {
                    _ = try await coordinator.workers[0].run(split)
                    XCTFail("a task starting inside a push group was accepted")
                } catch {
                    XCTAssertTrue("\(error)".contains("whole groups of 4"), "\(error)")
                }
            }
        }
        for (k, g) in gradients.dropFirst().prefix(3).enumerated() {
            XCTAssertEqual(g.map(\.bitPattern), gradients[0].map(\.bitPattern), "1 worker against \([2, 3, 5][k])")
        }
        let reference = gradients[4].map(Double.init)
        let scale = reference.map(abs).max()!
        XCTAssertLessThan(zip(gradients[0], reference).map { abs(Double($0) - $1) }.max()! / scale, 1e-5)
    }

    /// The Jacobian cache's shards: a multiple of twelve (fewer only when
    /// there are fewer rows), at most `shardRows` rows each, sizes within one
    /// row, rows in order, and the same cut for every number of workers.
    func testJacobianShardsDependOnTheRowsAlone() async throws {
        let twelve = { (size: Int) in [Int](repeating: size, count: 12) }
        let cases = [
            (3000, twelve(250)), (12_001, [501] + [Int](repeating: 500, count: 23)),
            (130, [Int](repeating: 11, count: 10) + [10, 10]), (3, [1, 1, 1]),
        ]
        for workers in [1, 2, 3] {
            for (rows, expected) in cases {
                try await checkJacobianShards(workers: workers, rows: rows, expected: expected)
            }
        }
        // A fixed count (a first-order minibatch's halves): never more shards than rows, never none.
        let coordinator = try await Harness().cluster().coordinator
        for (rows, count, expected) in [(128, 2, [64, 64]), (129, 2, [65, 64]), (1, 2, [1]), (5, 0, [5])] {
            let shards = coordinator.shards(.train, rows: Array(0..<rows), count: count)
            XCTAssertEqual(shards.map { $0.rows.count }, expected, "\(rows) rows in \(count)")
            XCTAssertEqual(shards.map(\.offset), expected.indices.map { expected.prefix($0).reduce(0, +) })
        }
    }

    private func checkJacobianShards(workers: Int, rows: Int, expected: [Int]) async throws {
        var h = Harness()
        h.workers = workers
        h.trainRows = 2 * rows
        h.shardRows = 1000
        let coordinator = try await h.cluster().coordinator
        let selected = Array(stride(from: 0, to: 2 * rows, by: 2))
        let shards = coordinator.jacobianShards(rows: selected)
        XCTAssertEqual(shards.map(\.index), Array(shards.indices))
        var joined = [Int]()
        for shard in shards {
            guard case .indices(let indices) = shard.rows else { return XCTFail("shard \(shard.index) is not a list of rows") }
            XCTAssertEqual(shard.offset, joined.count)
            joined += indices
        }
        XCTAssertEqual(shards.map { $0.rows.count }, expected, "\(workers) workers, \(rows) rows")
        XCTAssertEqual(joined, selected)
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

    /// Progressive batching: each record's f is f at that iteration's
    /// weights on the next iteration's sample (600 rows: 30, 60, 120, 240,
    /// 480, then every row from iteration 6), checked against the objective
    /// computed afresh from the checkpointed weights; from there on f
    /// descends as in the default method.
    func testProgressiveBatchingRecordsFOnTheNextSampleUntilEveryRowCounts() async throws {
        var options = NewtonOptions()
        options.gradientSampleFraction = 0.05
        options.gradientSampleGrowth = 2
        let saved = Mutex<[Checkpoint]>([])
        let policy = CheckpointPolicy(every: 1) { checkpoint in saved.withLock { $0.append(checkpoint) } }
        let h = Harness()
        let summary = try await h.run(iterations: 8, newton: options, checkpoints: policy)
        let checkpoints = saved.withLock { $0 }
        XCTAssertEqual(checkpoints.map(\.state.iteration), Array(0...8))
        XCTAssertTrue(summary.records.dropFirst().allSatisfy { $0.outcome == .accepted })

        let cluster = try await h.cluster().coordinator
        try await cluster.start(jobID: "check", data: h.descriptor, weights: checkpoints[0].weights)
        let objective = try Objective(cluster: cluster, regularization: 1)
        for (record, checkpoint) in zip(summary.records, checkpoints) {
            try await cluster.write(.weights, checkpoint.weights)
            let rows = Int((0.05 * pow(2, Double(record.iteration)) * 600).rounded(.up))
            let batch = rows < 600 ? objective.batch(objective.sampleRows(rows, seed: 3, stream: 3000 + UInt64(record.iteration + 1))) : nil
            XCTAssertEqual(batch?.rows ?? 600, [30, 60, 120, 240, 480, 600, 600, 600, 600][record.iteration])
            let f = try await objective.value(at: .weights, on: batch)
            XCTAssertEqual(record.objective, f, accuracy: 1e-12 * f, "iteration \(record.iteration)")
        }
        let full = summary.objectives.suffix(4)
        for (a, b) in zip(full, full.dropFirst()) { XCTAssertLessThan(b, a) }
        let initial = try await Harness().run(iterations: 0).objectives[0]
        XCTAssertLessThan(full.last!, initial * 0.8)
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

    /// A fast and a slow server (20 ms per local CG iteration), one worker.
    private func stragglerCluster(_ h: Harness) async throws -> ClusterCoordinator {
        let grid = try PartitionGrid(spec: try h.network(), partitions: h.partitions!)
        let data = try h.descriptor.load()
        let catalog = DataCatalog()
        await catalog.register(data, for: h.descriptor)
        let servers: [any ParameterServer] = [ServerCore(), ServerCore(options: .init(solveIterationDelay: .milliseconds(20)))]
        let worker = WorkerCore(catalog: catalog, servers: { _ in servers })
        return try ClusterCoordinator(
            grid: grid, servers: servers, workers: [worker], shardRows: 64, trainRows: data.train.rows, testRows: data.test!.rows)
    }

    /// With a cut-off at the fast server's share of the blocks, the
    /// direction search returns once those have converged and the slow
    /// server's blocks are stopped with their current iterate; with no
    /// cut-off (1.0) every block converges. Fails if the cut-off is ignored.
    func testStragglerCutoffStopsSlowBlocks() async throws {
        var h = Harness()
        h.partitions = [2, 2, 2, 1]
        let coordinator = try await stragglerCluster(h)
        try await coordinator.start(jobID: "straggler", data: h.descriptor, weights: DenseParameters(heNormal: try h.network(), seed: 3))
        let objective = try Objective(cluster: coordinator, regularization: 1)
        let (_, gradientNorm) = try await objective.valueAndGradient(at: .weights, into: .gradient)
        XCTAssertGreaterThan(gradientNorm, 0)
        let outputs = try await coordinator.cacheJacobian(at: .weights, rows: Array(0..<200))
        XCTAssertEqual(outputs.count, 200 * 3)
        let blocks = coordinator.grid.blocks.count
        let slowBlocks = Set(coordinator.blocks(ofServer: 1))
        XCTAssert(!slowBlocks.isEmpty && slowBlocks.count < blocks, "each server must own blocks")
        let fastShare = Double(blocks - slowBlocks.count) / Double(blocks)
        for (generation, cutoff) in [(1, fastShare), (2, 1.0)] {
            let request = BlockSolveRequest(
                block: 0, generation: generation, rightHandSide: .gradient, solution: .direction, residual: .residual,
                damping: 1e-3 + objective.ridge, curvatureScale: 1.0 / 200, tolerance: 1e-4, maxIterations: 500)
            let reports = try await coordinator.solveDiagonalBlocks(request, cutoff: cutoff)
            XCTAssertEqual(reports.map(\.block), Array(0..<blocks))
            for report in reports {
                let expected: BlockSolveReport.Outcome = cutoff < 1 && slowBlocks.contains(report.block) ? .stopped : .converged
                XCTAssertEqual(report.outcome, expected, "block \(report.block) at cut-off \(cutoff): \(report)")
            }
        }
    }

    /// Block-diagonal training with a straggler and a cut-off still descends.
    func testStragglerCutoffStillDescends() async throws {
        var h = Harness()
        h.partitions = [2, 2, 2, 1]
        let coordinator = try await stragglerCluster(h)
        var options = NewtonOptions()
        options.blockDiagonal = true
        options.stragglerCutoff = 0.5
        var shared = SecondOrderOptions()
        shared.cgTolerance = 0.01
        let job = TrainingJob(
            network: try h.network(), optimizer: .newton, regularization: 1, secondOrder: shared, newton: options,
            budget: TrainingBudget(maxIterations: 3), seed: 3)
        let summary = try await job.run(on: coordinator, jobID: "straggler", data: h.descriptor)
        XCTAssertLessThan(summary.objectives.last!, summary.objectives.first!)
    }

    func testInvalidOptionsAreRejectedWithTheirNames() async throws {
        var options = NewtonOptions()
        options.blockDiagonal = true
        options.products = .rop
        options.gradientSampleFraction = 0
        options.gradientSampleGrowth = 1
        var shared = SecondOrderOptions()
        shared.cgTolerance = 2
        XCTAssertEqual(options.problems.count + shared.problems.count, 4)
        XCTAssertTrue(shared.problems.joined().contains("CG tolerance"))
        XCTAssertTrue(options.problems.joined().contains("gradient sample fraction must be in (0, 1], got 0.0"))
        XCTAssertTrue(options.problems.joined().contains("gradient sample growth must be a finite factor above 1, got 1.0"))
        do {
            _ = try await Harness().run(iterations: 1, secondOrder: shared, newton: options)
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
