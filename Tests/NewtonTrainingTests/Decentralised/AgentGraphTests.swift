import XCTest

@testable import NewtonTraining

final class AgentGraphTests: XCTestCase {
    func testEachTopologyHasItsShapeAndIsConnected() throws {
        let ring = try GraphTopology.ring.graph(agents: 8, seed: 1)
        XCTAssertEqual(ring.edges.count, 8)
        XCTAssertTrue((0..<8).allSatisfy { ring.degree($0) == 2 })
        // 8 agents as 2 rows of 4: 2·3 row edges + 4 column edges.
        let grid = try GraphTopology.grid.graph(agents: 8, seed: 1)
        XCTAssertEqual(grid.edges.count, 10)
        XCTAssertEqual(grid.neighbours[1], [0, 2, 5])
        let star = try GraphTopology.star.graph(agents: 8, seed: 1)
        XCTAssertEqual(star.degree(0), 7)
        XCTAssertTrue((1..<8).allSatisfy { star.neighbours[$0] == [0] })
        XCTAssertEqual(try GraphTopology.complete.graph(agents: 8, seed: 1).edges.count, 28)
        // i ~ i ± 1, ± 2, ± 4 (mod 8): ±4 is one neighbour, so degree 5.
        let exponential = try GraphTopology.exponential.graph(agents: 8, seed: 1)
        XCTAssertTrue((0..<8).allSatisfy { exponential.degree($0) == 5 })
        for topology in [GraphTopology.ring, .grid, .star, .complete, .exponential, .erdosRenyi(0.3)] {
            for agents in [1, 2, 3, 7, 8] {
                XCTAssertTrue(try topology.graph(agents: agents, seed: 5).isConnected, "\(topology) over \(agents) agents")
            }
        }
    }

    func testErdosRenyiGraphsAreDrawnConnectedFromTheSeed() throws {
        let a = try GraphTopology.erdosRenyi(0.3).graph(agents: 8, seed: 4)
        XCTAssertEqual(a, try GraphTopology.erdosRenyi(0.3).graph(agents: 8, seed: 4))
        let others = try (5..<15).map { try GraphTopology.erdosRenyi(0.3).graph(agents: 8, seed: $0) }
        XCTAssertTrue(others.contains { $0 != a })
        XCTAssertTrue(others.allSatisfy(\.isConnected))
        XCTAssertThrowsError(try GraphTopology.erdosRenyi(1e-6).graph(agents: 30, seed: 1)) { error in
            XCTAssertTrue("\(error)".contains("no connected Erdős–Rényi graph"), "\(error)")
        }
        XCTAssertThrowsError(try GraphTopology.erdosRenyi(1.5).graph(agents: 4, seed: 1))
    }

    func testMetropolisWeightsAreSymmetricAndDoublyStochastic() throws {
        for graph in [try GraphTopology.star.graph(agents: 6, seed: 1), try GraphTopology.erdosRenyi(0.4).graph(agents: 9, seed: 2)] {
            let rows = graph.metropolisWeights
            var matrix = [[Double]](repeating: [Double](repeating: 0, count: graph.agents), count: graph.agents)
            for (i, row) in rows.enumerated() {
                XCTAssertEqual(row.map(\.agent), (graph.neighbours[i] + [i]).sorted())
                for (j, c) in row { matrix[i][j] = c }
            }
            for i in 0..<graph.agents {
                XCTAssertEqual(matrix[i].reduce(0, +), 1, accuracy: 1e-15)
                XCTAssertEqual(matrix.reduce(0) { $0 + $1[i] }, 1, accuracy: 1e-15)
                for j in 0..<graph.agents {
                    XCTAssertEqual(matrix[i][j], matrix[j][i])
                    XCTAssertGreaterThanOrEqual(matrix[i][j], 0)
                }
            }
        }
    }

    func testTimeVaryingGraphsAreConnectedOverEveryWindowAndRepeatFromTheSeed() throws {
        let schedule = try GraphSchedule(
            topology: .complete, agents: 8, timeVarying: TimeVaryingGraph(activation: 0.08, window: 3), seed: 9)
        let graphs = (1...60).map { schedule.graph(round: $0) }
        XCTAssertTrue(graphs.contains { !$0.isConnected }, "some single round should be disconnected at q = 0.08")
        for start in stride(from: 0, to: 60, by: 3) {
            let union = graphs[start..<start + 3].dropFirst().reduce(graphs[start]) { $0.union($1) }
            XCTAssertTrue(union.isConnected, "rounds \(start + 1)…\(start + 3)")
        }
        XCTAssertTrue(graphs.allSatisfy { $0.edges.allSatisfy { e in schedule.base.neighbours[e.0].contains(e.1) } })
        XCTAssertEqual(graphs, (1...60).map { schedule.graph(round: $0) })
        let ring = try GraphSchedule(topology: .ring, agents: 8, timeVarying: TimeVaryingGraph(activation: 0.5, window: 1), seed: 2)
        XCTAssertTrue((1...20).allSatisfy { ring.graph(round: $0).isConnected }, "a window of 1 makes every round connected")
        // A round number from the wire may be anything up to Int.max; the window arithmetic must not overflow.
        XCTAssertEqual(schedule.graph(round: .max).agents, 8)
        let longest = try GraphSchedule(
            topology: .ring, agents: 4, timeVarying: TimeVaryingGraph(activation: 0.5, window: TimeVaryingGraph.maxWindow), seed: 1)
        XCTAssertEqual(longest.graph(round: .max).agents, 4)
        XCTAssertEqual(longest.graph(round: TimeVaryingGraph.maxWindow).agents, 4, "the last round of the longest window")
        XCTAssertThrowsError(
            try GraphSchedule(topology: .ring, agents: 4, timeVarying: TimeVaryingGraph(activation: 0.5, window: .max), seed: 1)
        ) { XCTAssertTrue("\($0)".contains("1 to 10000 rounds"), "\($0)") }
    }

    func testNamesParseAndPrintBack() {
        for text in ["ring", "grid", "star", "complete", "exponential", "erdos-renyi:0.3"] {
            XCTAssertEqual(GraphTopology(text: text)?.description, text)
        }
        XCTAssertNil(GraphTopology(text: "erdos-renyi"))
        XCTAssertNil(GraphTopology(text: "torus"))
        XCTAssertEqual(TimeVaryingGraph(text: "0.5"), TimeVaryingGraph(activation: 0.5, window: 4))
        XCTAssertEqual(TimeVaryingGraph(text: "0.25:6")?.text, "0.25:6")
        XCTAssertNil(TimeVaryingGraph(text: "0.5:x"))
        XCTAssertEqual(TimeVaryingGraph(activation: 0, window: 0).problems.count, 2)
    }
}
