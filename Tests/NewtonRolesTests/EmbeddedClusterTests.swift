import NewtonCore
import NewtonRoles
import NewtonTraining
import XCTest

final class EmbeddedClusterTests: XCTestCase {
    private let descriptor = DataDescriptor(
        source: .synthetic(trainRows: 10, testRows: 4, features: 3, classes: 2, seed: 1), scaling: .none)

    func testAgentsShareTheRowsContiguouslyAndTheMonitorHoldsThemAll() async throws {
        let data = try descriptor.load()
        let grid = PartitionGrid(unpartitioned: try NetworkSpec(layerSizes: [3, 2], activations: [], loss: .crossEntropy))
        let embedded = try await EmbeddedAgents(
            grid: grid, data: data, descriptor: descriptor, agents: 3, serversPerAgent: 1, workersPerAgent: 2, monitorWorkers: 1,
            shardRows: 4)
        // ⌊i·10/3⌋: rows 0..<3, 3..<6, 6..<10.
        XCTAssertEqual(embedded.agents.map(\.coordinator.trainRows), [3, 3, 4])
        XCTAssertEqual(embedded.agents.map(\.coordinator.testRows), [0, 0, 0])
        XCTAssertEqual(embedded.agents.map(\.coordinator.workers.count), [2, 2, 2])
        XCTAssertEqual(embedded.monitor.coordinator.trainRows, 10)
        XCTAssertEqual(embedded.monitor.coordinator.testRows, 4)

        do {
            _ = try await EmbeddedAgents(
                grid: grid, data: data, descriptor: descriptor, agents: 11, serversPerAgent: 1, workersPerAgent: 1, monitorWorkers: 1,
                shardRows: 4)
            XCTFail("11 agents cannot share 10 rows")
        } catch let error as RoleError {
            XCTAssertTrue(error.message.contains("10 training rows cannot be shared by 11 agents"), error.message)
        }
    }
}
