import NewtonCore
import NewtonRoles
import XCTest

@testable import NewtonTraining

/// A `ServerCore` that counts the driver's round trips to it.
private actor CountingServer: ParameterServer {
    let core = ServerCore()
    private(set) var programs = 0
    private(set) var products = 0
    private(set) var transposeProducts = 0

    func assign(_ assignment: BlockAssignment) async throws { try await core.assign(assignment) }
    func read(_ vector: VectorName, blocks: [Int], held: [UInt64]) async throws -> [VersionedBlock] {
        try await core.read(vector, blocks: blocks, held: held)
    }
    func write(_ vector: VectorName, blocks: [Int], values: [[Float]]) async throws {
        try await core.write(vector, blocks: blocks, values: values)
    }
    func run(_ program: [VectorOp]) async throws -> [BlockDots] {
        programs += 1
        return try await core.run(program)
    }
    func beginSum(into vector: VectorName, shards: Int, round: Int) async throws {
        try await core.beginSum(into: vector, shards: shards, round: round)
    }
    func push(into vector: VectorName, round: PushRound, shard: Int, blocks: [Int], values: [[Float]]) async throws {
        try await core.push(into: vector, round: round, shard: shard, blocks: blocks, values: values)
    }
    func finishSum(into vector: VectorName) async throws { try await core.finishSum(into: vector) }
    func beginJacobian(rows: Int, round: Int) async throws { try await core.beginJacobian(rows: rows, round: round) }
    func pushJacobian(round: PushRound, rowOffset: Int, blocks: [Int], inputs: [[Float]], slices: [SliceShare], outputs: [Float])
        async throws
    {
        try await core.pushJacobian(round: round, rowOffset: rowOffset, blocks: blocks, inputs: inputs, slices: slices, outputs: outputs)
    }
    func jacobianProduct(of vector: VectorName, first program: [VectorOp]) async throws -> [(block: Int, values: [Float])] {
        products += 1
        return try await core.jacobianProduct(of: vector, first: program)
    }
    func jacobianTransposeProduct(_ u: [Float], into vector: VectorName, then program: [VectorOp]) async throws -> [BlockDots] {
        transposeProducts += 1
        return try await core.jacobianTransposeProduct(u, into: vector, then: program)
    }
    func solveDiagonalBlock(_ request: BlockSolveRequest) async throws -> BlockSolveReport {
        try await core.solveDiagonalBlock(request)
    }
    func stopDiagonalSolves(generation: Int) async throws { core.stopDiagonalSolves(generation: generation) }
}

final class CurvatureTests: XCTestCase {
    /// In jacobian mode the solver's prelude travels with the servers'
    /// `J_b v_b`, and the damping step and the solver's program with their
    /// `J_bᵀu`: a damped product is two round trips and no separate
    /// program, and its vector and dots are those of the prelude, product,
    /// damping and program done one after another.
    func testTheDampedCachedJacobianProductCarriesItsPreludeAndProgram() async throws {
        var h = Harness()
        h.partitions = [2, 2, 2, 1]
        let spec = try h.network()
        let grid = try PartitionGrid(spec: spec, partitions: h.partitions!)
        let data = try h.descriptor.load()
        let catalog = DataCatalog()
        await catalog.register(data, for: h.descriptor)
        let servers = [CountingServer(), CountingServer()]
        let cluster = try ClusterCoordinator(
            grid: grid, servers: servers, workers: [WorkerCore(catalog: catalog, servers: { _ in servers })],
            shardRows: h.shardRows, trainRows: data.train.rows, testRows: data.test?.rows ?? 0)
        try await cluster.start(jobID: "curvature", data: h.descriptor, weights: DenseParameters(heNormal: spec, seed: 2))
        var direction = DenseParameters(zeros: spec)
        for i in direction.values.indices { direction.values[i] = Float(i % 7) - 3 }
        try await cluster.write(.conjugate, direction)
        let outputs = try await cluster.cacheJacobian(at: .weights, rows: Array(0..<50))
        let curvature = Curvature(cluster: cluster, kind: .cachedJacobian(outputs: outputs), scale: 1.0 / 50)
        let prelude: [VectorOp] = [.combine(target: .conjugate, terms: [VectorTerm(0.5, .conjugate)])]
        let program: [VectorOp] = [.dot(.conjugate, .product), .dot(.product, .product)]

        let programsBefore = await servers.asyncMap { await $0.programs }
        let dots = try await DampedOperator(curvature: curvature, damping: 0.25).apply(
            .conjugate, into: .product, first: prelude, then: program)
        for (s, server) in servers.enumerated() {
            let (programs, products, transposes) = (await server.programs, await server.products, await server.transposeProducts)
            XCTAssertEqual(programs, programsBefore[s], "server \(s) ran a program of its own")
            XCTAssertEqual(products, 1, "server \(s)")
            XCTAssertEqual(transposes, 1, "server \(s)")
        }

        // The same prelude, product, damping and program as four separate steps.
        try await cluster.write(.conjugate, direction)
        try await cluster.run(prelude)
        _ = try await cluster.gaussNewtonFromJacobian(
            direction: .conjugate, into: .residual, outputs: outputs, scale: 1.0 / 50, first: [], then: [])
        try await cluster.run([.axpy(0.25, .conjugate, .residual)])
        let referenceDots = try await cluster.run([.dot(.conjugate, .residual), .dot(.residual, .residual)])
        XCTAssertEqual(dots, referenceDots)
        let (product, expected) = (try await cluster.read(.product), try await cluster.read(.residual))
        XCTAssertEqual(product.values.map(\.bitPattern), expected.values.map(\.bitPattern))
    }
}

extension Array {
    fileprivate func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results = [T]()
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
