import NewtonCore
import NewtonRoles
import NewtonTraining
import XCTest

/// The failure `WatchedServer` injects.
private struct InjectedFailure: Error, CustomStringConvertible {
    let shard: Int
    var description: String { "injected failure of the push of contribution \(shard)" }
}

/// A `ServerCore` that records how many pushes (sums and Jacobian rows) are
/// in flight at once, and can fail one contribution's push.
private actor WatchedServer: ParameterServer {
    private let core = ServerCore()
    private let failingShard: Int?
    private var inFlight = 0
    private(set) var mostInFlight = 0
    private(set) var pushes = 0
    /// Blocks sent by reads, per vector.
    private(set) var blocksSent = [VectorName: Int]()

    init(failingShard: Int? = nil) { self.failingShard = failingShard }

    private func watch(shard: Int?, _ push: () async throws -> Void) async throws {
        inFlight += 1
        pushes += 1
        mostInFlight = max(mostInFlight, inFlight)
        defer { inFlight -= 1 }
        // Long enough for a second push to arrive, were the worker to send one.
        try await Task.sleep(for: .milliseconds(5))
        if let shard, shard == failingShard { throw InjectedFailure(shard: shard) }
        try await push()
    }

    func assign(_ assignment: BlockAssignment) async throws { try await core.assign(assignment) }
    func read(_ vector: VectorName, blocks: [Int], held: [UInt64]) async throws -> [VersionedBlock] {
        let answers = try await core.read(vector, blocks: blocks, held: held)
        blocksSent[vector, default: 0] += answers.filter { $0.values != nil }.count
        return answers
    }
    func write(_ vector: VectorName, blocks: [Int], values: [[Float]]) async throws {
        try await core.write(vector, blocks: blocks, values: values)
    }
    func run(_ program: [VectorOp]) async throws -> [BlockDots] { try await core.run(program) }
    func beginSum(into vector: VectorName, shards: Int, round: Int) async throws {
        try await core.beginSum(into: vector, shards: shards, round: round)
    }
    func push(into vector: VectorName, round: PushRound, shard: Int, blocks: [Int], values: [[Float]]) async throws {
        try await watch(shard: shard) {
            try await core.push(into: vector, round: round, shard: shard, blocks: blocks, values: values)
        }
    }
    func finishSum(into vector: VectorName) async throws { try await core.finishSum(into: vector) }
    func beginJacobian(rows: Int, round: Int) async throws { try await core.beginJacobian(rows: rows, round: round) }
    func pushJacobian(round: PushRound, rowOffset: Int, blocks: [Int], inputs: [[Float]], slices: [SliceShare], outputs: [Float])
        async throws
    {
        try await watch(shard: nil) {
            try await core.pushJacobian(
                round: round, rowOffset: rowOffset, blocks: blocks, inputs: inputs, slices: slices, outputs: outputs)
        }
    }
    func jacobianProduct(of vector: VectorName, first program: [VectorOp]) async throws -> [(block: Int, values: [Float])] {
        try await core.jacobianProduct(of: vector, first: program)
    }
    func jacobianTransposeProduct(_ u: [Float], into vector: VectorName, then program: [VectorOp]) async throws -> [BlockDots] {
        try await core.jacobianTransposeProduct(u, into: vector, then: program)
    }
    func solveDiagonalBlock(_ request: BlockSolveRequest) async throws -> BlockSolveReport {
        try await core.solveDiagonalBlock(request)
    }
    func stopDiagonalSolves(generation: Int) async throws { core.stopDiagonalSolves(generation: generation) }
}

final class WorkerCoreTests: XCTestCase {
    /// One worker and `server` over 640 training rows in 64-row shards.
    private func coordinator(_ server: WatchedServer) async throws -> ClusterCoordinator {
        let descriptor = DataDescriptor(
            source: .synthetic(trainRows: 640, testRows: 64, features: 6, classes: 3, seed: 5), scaling: .standardize)
        let spec = try NetworkSpec(layerSizes: [6, 8, 3], activations: [.relu], loss: .crossEntropy)
        let data = try descriptor.load()
        let catalog = DataCatalog()
        await catalog.register(data, for: descriptor)
        let worker = WorkerCore(catalog: catalog, servers: { _ in [server] })
        let coordinator = try ClusterCoordinator(
            grid: PartitionGrid(unpartitioned: spec), servers: [server], workers: [worker], shardRows: 64,
            trainRows: data.train.rows, testRows: data.test?.rows ?? 0)
        try await coordinator.start(jobID: "w", data: descriptor, weights: DenseParameters(heNormal: spec, seed: 1))
        return coordinator
    }

    /// A worker pushes one shard's results while it computes the next ones,
    /// but never has two pushes in flight, and every contribution arrives.
    func testOnePushInFlightAtATime() async throws {
        let server = WatchedServer()
        let coordinator = try await coordinator(server)
        let objective = try Objective(cluster: coordinator, regularization: 1)
        _ = try await objective.valueAndGradient(at: .weights, into: .gradient)  // 10 shards, one push each
        _ = try await coordinator.cacheJacobian(at: .weights, rows: Array(0..<320))  // 12 shards
        let (most, pushes) = await (server.mostInFlight, server.pushes)
        XCTAssertEqual(most, 1)
        XCTAssertEqual(pushes, 22)
    }

    /// A worker pulls a point once and then only the blocks of it that
    /// changed: a second R-operator product at the same weights pulls just
    /// its direction, a new point is pulled in full, and a product from a
    /// partly kept point equals a fresh worker's.
    func testTheSamePointIsNotPulledAgain() async throws {
        let server = WatchedServer()
        let coordinator = try await coordinator(server)
        let shards = coordinator.shards(.train, rows: Array(0..<200))
        try await coordinator.gaussNewtonByROperator(at: .weights, direction: .weights, into: .product, shards: shards)
        let first = try await coordinator.read(.product)
        try await coordinator.gaussNewtonByROperator(at: .weights, direction: .weights, into: .product, shards: shards)
        let second = try await coordinator.read(.product)
        XCTAssertEqual(second, first)
        var sent = await server.blocksSent
        // Two blocks (one per layer): once as the point, twice as the direction.
        XCTAssertEqual(sent[.weights], 6)

        // One block of the point changes: only that block is read again.
        try await coordinator.run([.combine(target: .trial, terms: [VectorTerm(2, .weights)])])
        try await server.write(.weights, blocks: [1], values: [[Float](repeating: 0.25, count: 27)])
        try await coordinator.gaussNewtonByROperator(at: .weights, direction: .trial, into: .product, shards: shards)
        let fromKeptPoint = try await coordinator.read(.product)
        sent = await server.blocksSent
        XCTAssertEqual(sent[.weights], 7)
        XCTAssertEqual(sent[.trial], 2)
        // Another point is read in full.
        try await coordinator.gaussNewtonByROperator(at: .trial, direction: .weights, into: .product, shards: shards)
        sent = await server.blocksSent
        XCTAssertEqual(sent[.trial], 4)
        XCTAssertEqual(sent[.weights], 9)

        // The same vectors on a fresh worker that never pulled anything.
        let reference = try await self.coordinator(WatchedServer())
        try await reference.write(.weights, try await coordinator.read(.weights))
        try await reference.write(.trial, try await coordinator.read(.trial))
        try await reference.gaussNewtonByROperator(at: .weights, direction: .trial, into: .product, shards: shards)
        let expected = try await reference.read(.product)
        XCTAssertEqual(fromKeptPoint, expected)
    }

    /// A push that fails while the next shard computes fails the task, and
    /// the error names the cause.
    func testAFailedPushFailsTheTask() async throws {
        let coordinator = try await coordinator(WatchedServer(failingShard: 3))
        let objective = try Objective(cluster: coordinator, regularization: 1)
        await XCTAssertThrowsErrorAsync(try await objective.valueAndGradient(at: .weights, into: .gradient)) { message in
            XCTAssertTrue(message.contains("injected failure of the push of contribution 3"), message)
        }
    }
}
