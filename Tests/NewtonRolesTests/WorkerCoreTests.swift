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
    func read(_ vector: VectorName, blocks: [Int]) async throws -> [[Float]] { try await core.read(vector, blocks: blocks) }
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
    func pushJacobian(round: PushRound, rowOffset: Int, blocks: [Int], inputs: [[Float]], slices: [[Float]], outputs: [Float])
        async throws
    {
        try await watch(shard: nil) {
            try await core.pushJacobian(
                round: round, rowOffset: rowOffset, blocks: blocks, inputs: inputs, slices: slices, outputs: outputs)
        }
    }
    func jacobianProduct(of vector: VectorName) async throws -> [(block: Int, values: [Float])] {
        try await core.jacobianProduct(of: vector)
    }
    func jacobianTransposeProduct(_ u: [Float], into vector: VectorName) async throws {
        try await core.jacobianTransposeProduct(u, into: vector)
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
