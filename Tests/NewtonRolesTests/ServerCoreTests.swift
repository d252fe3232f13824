import NewtonCore
import NewtonRoles
import NewtonTraining
import XCTest

/// Round 1 of the job the tests assign ("t").
private let round1 = PushRound(job: "t", round: 1)

final class ServerCoreTests: XCTestCase {
    private func assignedServer(blocks: [Int] = [0, 1]) async throws -> (ServerCore, PartitionGrid) {
        let spec = try NetworkSpec(layerSizes: [3, 2], activations: [], loss: .squared)
        let grid = try PartitionGrid(spec: spec, partitions: [2, 1])  // blocks: 2×2 + bias (6 values), 1×2 (2 values)
        let server = ServerCore()
        let weights = blocks.map { [Float](repeating: 1, count: grid.parameterCount(grid.blocks[$0])) }
        try await server.assign(BlockAssignment(jobID: "t", grid: grid, blocks: blocks, weights: weights))
        return (server, grid)
    }

    /// Contributions arriving out of order are added in shard order.
    func testSumsInShardOrderWhateverTheArrivalOrder() async throws {
        let (server, _) = try await assignedServer()
        // Values whose float sum depends on the order of addition.
        let shards: [[Float]] = [[1e8, 1, -1e8, 3, 0, 0], [1, 1e8, 1, 0, 0, 0], [-1e8, 1, 1e8, 0, 0, 0]]
        func contribution(_ k: Int) -> [[Float]] { [shards[k], [Float(k), 1]] }
        try await server.beginSum(into: .gradient, shards: 3, round: 1)
        for k in [0, 1, 2] { try await server.push(into: .gradient, round: round1, shard: k, blocks: [0, 1], values: contribution(k)) }
        try await server.finishSum(into: .gradient)
        let inOrder = try await server.read(.gradient, blocks: [0, 1])

        try await server.beginSum(into: .gradient, shards: 3, round: 1)
        for k in [2, 0, 2, 1] { try await server.push(into: .gradient, round: round1, shard: k, blocks: [0, 1], values: contribution(k)) }
        try await server.finishSum(into: .gradient)
        let outOfOrder = try await server.read(.gradient, blocks: [0, 1])
        XCTAssertEqual(outOfOrder, inOrder)
    }

    /// A read names each block's version; a block the reader holds at its
    /// current version is not sent again. Any write to a vector (a write, a
    /// program, a sum) gives it a new version; other vectors keep theirs.
    func testReadsSendOnlyTheBlocksThatChangedSinceTheHeldVersions() async throws {
        let (server, _) = try await assignedServer()
        let first = try await server.read(.weights, blocks: [0, 1], held: [])
        XCTAssertEqual(first.map(\.values), [[Float](repeating: 1, count: 6), [1, 1]])
        let held = first.map(\.version)
        let again = try await server.read(.weights, blocks: [0, 1], held: held)
        XCTAssertEqual(again, held.map { VersionedBlock(version: $0, values: nil) })

        _ = try await server.run([.fill(target: .direction, value: 2), .dot(.direction, .weights)])
        let afterProgram = try await server.read(.weights, blocks: [0, 1], held: held)
        XCTAssertEqual(afterProgram.map(\.values), [nil, nil])
        try await server.write(.weights, blocks: [1], values: [[3, 4]])
        let afterWrite = try await server.read(.weights, blocks: [0, 1], held: held)
        XCTAssertEqual(afterWrite.map(\.values), [nil, [3, 4]])
        XCTAssertEqual(afterWrite[0].version, held[0])
        XCTAssertNotEqual(afterWrite[1].version, held[1])
        _ = try await server.run([.combine(target: .weights, terms: [VectorTerm(1, .weights), VectorTerm(0, .direction)])])
        let afterCombine = try await server.read(.weights, blocks: [0], held: [held[0]])
        XCTAssertEqual(afterCombine.map(\.values), [[Float](repeating: 1, count: 6)])

        do {
            _ = try await server.read(.weights, blocks: [0, 1], held: [held[0]])
            XCTFail("a read with one held version for two blocks was accepted")
        } catch let error as RoleError {
            XCTAssertTrue(error.description.contains("names 2 blocks but 1 held versions"), error.description)
        }
    }

    func testMissingShardAndForeignBlocksAreReported() async throws {
        let (server, _) = try await assignedServer()
        try await server.beginSum(into: .gradient, shards: 2, round: 1)
        try await server.push(into: .gradient, round: round1, shard: 1, blocks: [0, 1], values: [[0, 0, 0, 0, 0, 0], [0, 0]])
        await XCTAssertThrowsErrorAsync(try await server.finishSum(into: .gradient)) { message in
            XCTAssertTrue(message.contains("missing shards [0]"), message)
        }
        try await server.beginSum(into: .gradient, shards: 2, round: 1)
        await XCTAssertThrowsErrorAsync(
            try await server.push(into: .gradient, round: round1, shard: 0, blocks: [0], values: [[0, 0, 0, 0, 0, 0]])
        ) {
            message in
            XCTAssertTrue(message.contains("owns [0, 1]"), message)
        }
        await XCTAssertThrowsErrorAsync(
            try await server.push(into: .gradient, round: round1, shard: 0, blocks: [0, 1], values: [[0, 0], [0, 0]])
        ) {
            message in
            XCTAssertTrue(message.contains("holds 6 values, got 2"), message)
        }
        await XCTAssertThrowsErrorAsync(
            try await server.push(into: .gradient, round: round1, shard: 7, blocks: [0, 1], values: [[0, 0, 0, 0, 0, 0], [0, 0]])
        ) { message in
            XCTAssertTrue(message.contains("expects shards 0..<2"), message)
        }
    }

    func testVectorProgramsCombineAndDotPerBlock() async throws {
        let (server, _) = try await assignedServer()
        let answers = try await server.run([
            .fill(target: .direction, value: 2),
            .combine(target: .trial, terms: [VectorTerm(1, .weights), VectorTerm(0.5, .direction)]),
            .dot(.trial, .trial),
            .dot(.weights, .residual),  // a vector never written reads as zero
        ])
        XCTAssertEqual(answers, [BlockDots(block: 0, values: [24, 0]), BlockDots(block: 1, values: [8, 0])])

        // A target among its own terms is scaled in place; one that is not
        // is overwritten, stale NaNs included.
        try await server.write(.residual, blocks: [0, 1], values: [[Float](repeating: .nan, count: 6), [.nan, .nan]])
        let again = try await server.run([
            .combine(target: .trial, terms: [VectorTerm(3, .direction), VectorTerm(0.5, .trial)]),
            .combine(target: .residual, terms: [VectorTerm(-1, .weights)]),
            .dot(.trial, .weights), .dot(.residual, .weights),
        ])
        // trial was 2 everywhere: 0.5·2 + 3·2 = 7; residual = −1.
        XCTAssertEqual(again, [BlockDots(block: 0, values: [42, -6]), BlockDots(block: 1, values: [14, -2])])
    }

    func testUnassignedServerAndUnknownBlocksGiveClearErrors() async throws {
        let server = ServerCore()
        await XCTAssertThrowsErrorAsync(try await server.beginJacobian(rows: 4, round: 1)) { message in
            XCTAssertTrue(message.contains("no job assigned"), message)
        }
        let (assigned, _) = try await assignedServer(blocks: [1])
        await XCTAssertThrowsErrorAsync(try await assigned.read(.weights, blocks: [0])) { message in
            XCTAssertTrue(message.contains("not owned"), message)
        }
        await XCTAssertThrowsErrorAsync(try await assigned.jacobianProduct(of: .weights, first: [.fill(target: .weights, value: 0)])) {
            message in
            XCTAssertTrue(message.contains("no cached Jacobian"), message)
        }
        await XCTAssertThrowsErrorAsync(try await assigned.jacobianProduct(of: .weights, first: [.dot(.weights, .weights)])) { message in
            XCTAssertTrue(message.contains("takes dots"), message)
        }
        // The refused products ran none of their programs.
        let weights = try await assigned.read(.weights, blocks: [1])
        XCTAssertEqual(weights, [[1, 1]])
    }

    /// A stop for the current generation makes a solve return its iterate.
    func testStopEndsASolveEarly() async throws {
        let spec = try NetworkSpec(layerSizes: [4, 3], activations: [], loss: .crossEntropy)
        let grid = PartitionGrid(unpartitioned: spec)
        let server = ServerCore(options: .init(solveIterationDelay: .milliseconds(50)))
        try await server.assign(
            BlockAssignment(jobID: "t", grid: grid, blocks: [0], weights: [grid.split(DenseParameters(heNormal: spec, seed: 1))[0]]))
        try await server.beginJacobian(rows: 2, round: 1)
        var rng = SeededGenerator(seed: 4)
        let noise = { (n: Int) in (0..<n).map { _ in Float(rng.nextGaussian()) } }
        try await server.pushJacobian(
            round: round1, rowOffset: 0, blocks: [0], inputs: [noise(8)],
            slices: [.columns(of: noise(18), classes: 3, fullWidth: 3, columns: 0..<3)], outputs: noise(6))
        try await server.write(.gradient, blocks: [0], values: [noise(15)])
        let request = BlockSolveRequest(
            block: 0, generation: 1, rightHandSide: .gradient, solution: .direction, residual: .residual,
            damping: 1e-6, curvatureScale: 0.5, tolerance: 1e-12, maxIterations: 1000)
        async let report = server.solveDiagonalBlock(request)
        try await Task.sleep(for: .milliseconds(120))
        server.stopDiagonalSolves(generation: 1)
        let finished = try await report
        XCTAssertEqual(finished.outcome, .stopped)
        XCTAssertLessThan(finished.iterations, 10)
        let direction = try await server.read(.direction, blocks: [0])[0]
        XCTAssertTrue(direction.contains { $0 != 0 }, "the stopped solve keeps its current iterate")

        // A new job starts its generations afresh: the old stop does not apply.
        try await server.assign(
            BlockAssignment(jobID: "next", grid: grid, blocks: [0], weights: [grid.split(DenseParameters(heNormal: spec, seed: 2))[0]]))
        try await server.beginJacobian(rows: 2, round: 1)
        try await server.pushJacobian(
            round: PushRound(job: "next", round: 1), rowOffset: 0, blocks: [0], inputs: [noise(8)],
            slices: [.columns(of: noise(18), classes: 3, fullWidth: 3, columns: 0..<3)], outputs: noise(6))
        try await server.write(.gradient, blocks: [0], values: [noise(15)])
        var quick = request
        quick.maxIterations = 2
        let next = try await server.solveDiagonalBlock(quick)
        XCTAssertEqual(next.iterations, 2, "a stop from the previous job leaked into this one")
    }

    /// A late push from an earlier round (a worker whose task was given to
    /// another) or from another job is refused, never added into the sum in
    /// progress, and the right push still is.
    func testStalePushesAreRefused() async throws {
        let (server, _) = try await assignedServer()
        let values: [[Float]] = [[1, 1, 1, 1, 1, 1], [1, 1]]
        try await server.beginSum(into: .gradient, shards: 1, round: 1)
        try await server.push(into: .gradient, round: round1, shard: 0, blocks: [0, 1], values: values)
        try await server.finishSum(into: .gradient)
        try await server.beginSum(into: .gradient, shards: 1, round: 2)
        for stale in [round1, PushRound(job: "another", round: 2)] {
            await XCTAssertThrowsErrorAsync(
                try await server.push(into: .gradient, round: stale, shard: 0, blocks: [0, 1], values: [[9, 9, 9, 9, 9, 9], [9, 9]])
            ) { message in
                XCTAssertTrue(message.contains("stale push of shard 0 into gradient"), message)
            }
        }
        try await server.push(into: .gradient, round: PushRound(job: "t", round: 2), shard: 0, blocks: [0, 1], values: values)
        try await server.finishSum(into: .gradient)
        let sum = try await server.read(.gradient, blocks: [0, 1])
        XCTAssertEqual(sum, values)

        try await server.beginJacobian(rows: 2, round: 3)
        await XCTAssertThrowsErrorAsync(
            try await server.pushJacobian(
                round: round1, rowOffset: 0, blocks: [0, 1], inputs: [[], []],
                slices: [.packed(PackedSlice(keptColumns: [], values: [])), .packed(PackedSlice(keptColumns: [], values: []))], outputs: [])
        ) { message in
            XCTAssertTrue(message.contains("stale Jacobian push"), message)
        }
    }

    /// A packed slice that does not fit its block is refused, naming the block.
    func testMisfitJacobianPushNamesTheBlock() async throws {
        let (server, _) = try await assignedServer()
        try await server.beginJacobian(rows: 2, round: 1)
        let fits = SliceShare.columns(of: [1, 0, 2, 3, 0, 4, 5, 6], classes: 2, fullWidth: 2, columns: 0..<2).packed
        let oneValueShort = PackedSlice(keptColumns: fits.keptColumns, values: Array(fits.values.dropLast()))
        await XCTAssertThrowsErrorAsync(
            try await server.pushJacobian(
                round: round1, rowOffset: 0, blocks: [0, 1], inputs: [[1, 2, 3, 4], [5, 6]],
                slices: [.packed(fits), .packed(oneValueShort)],
                outputs: [0, 0, 0, 0])
        ) { message in
            XCTAssertTrue(message.contains("Jacobian push for block W1[1,0]"), message)
            XCTAssertTrue(message.contains("keeps 4 columns of 2 classes but carries 7 values"), message)
        }
    }

    /// Sizes from a request are checked against the caps before anything is allocated.
    func testHostileSizesAreRefusedBeforeAllocating() async throws {
        let (server, _) = try await assignedServer()
        await XCTAssertThrowsErrorAsync(try await server.beginJacobian(rows: Int.max / 2, round: 1)) { message in
            XCTAssertTrue(message.contains("ServerCore.maxJacobianBytes"), message)
        }
        try await server.beginJacobian(rows: 4, round: 1)
        let request = BlockSolveRequest(
            block: 0, generation: 1, rightHandSide: .gradient, solution: .direction, residual: .residual, damping: 1,
            curvatureScale: 1, tolerance: 0.1, maxIterations: 1 << 31)
        await XCTAssertThrowsErrorAsync(try await server.solveDiagonalBlock(request)) { message in
            XCTAssertTrue(message.contains("SecondOrderOptions.maxCGIterations"), message)
        }
    }
}

/// Asserts that `body` throws and hands the error's description to `check`.
func XCTAssertThrowsErrorAsync<T>(
    _ body: @autoclosure () async throws -> T, file: StaticString = #filePath, line: UInt = #line,
    _ check: (String) -> Void = { _ in }
) async {
    do {
        _ = try await body()
        XCTFail("no error was thrown", file: file, line: line)
    } catch {
        check("\(error)")
    }
}
