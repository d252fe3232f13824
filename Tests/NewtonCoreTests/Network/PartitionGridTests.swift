import NewtonCore
import XCTest

final class PartitionGridTests: XCTestCase {
    func testSplitAndAssembleRoundTripOnEveryGrid() throws {
        let spec = try NetworkSpec(layerSizes: [7, 5, 3], activations: [.relu], loss: .squared)
        let dense = DenseParameters(heNormal: spec, seed: 1)
        for partitions in [[1, 1, 1], [2, 3, 1], [3, 2, 3], [7, 5, 3]] {
            let grid = try PartitionGrid(spec: spec, partitions: partitions)
            let blocks = grid.split(dense)
            XCTAssertEqual(blocks.map(\.count).reduce(0, +), dense.count)
            XCTAssertEqual(try grid.assemble(blocks), dense)
        }
    }

    func testUnevenSplitsAndCanonicalOrder() throws {
        let spec = try NetworkSpec(layerSizes: [7, 5, 3], activations: [.relu], loss: .squared)
        let grid = try PartitionGrid(spec: spec, partitions: [3, 2, 1])
        XCTAssertEqual(grid.groups[0], [0..<3, 3..<5, 5..<7])
        XCTAssertEqual(grid.groups[1], [0..<3, 3..<5])
        XCTAssertEqual(grid.blocks, grid.blocks.sorted())
        XCTAssertEqual(grid.blocks.count, 3 * 2 + 2 * 1)
        let custom = try PartitionGrid(spec: spec, groupSizes: [[1, 6], [4, 1], [3]])
        XCTAssertEqual(custom.parameterCount(BlockID(layer: 1, inputGroup: 0, outputGroup: 1)), 1 * 1 + 1)
    }

    func testImpossibleGridsAreRejectedWithReasons() throws {
        let spec = try NetworkSpec(layerSizes: [7, 5, 3], activations: [.relu], loss: .squared)
        XCTAssertThrowsError(try PartitionGrid(spec: spec, partitions: [2, 2])) { error in
            XCTAssertTrue("\(error)".contains("3 layers"), "\(error)")
        }
        XCTAssertThrowsError(try PartitionGrid(spec: spec, partitions: [1, 6, 1])) { error in
            XCTAssertTrue("\(error)".contains("5 neurons"), "\(error)")
        }
        XCTAssertThrowsError(try PartitionGrid(spec: spec, groupSizes: [[7], [2, 2], [3]]))
    }

    /// A grid of about 10⁹ blocks is refused by counting, before any block is made.
    func testBlockCountIsCappedBeforeAnyBlockIsBuilt() throws {
        let spec = try NetworkSpec(layerSizes: [1_000_000, 998, 2], activations: [.relu], loss: .crossEntropy)
        let clock = ContinuousClock.now
        XCTAssertThrowsError(try PartitionGrid(spec: spec, partitions: [1_000_000, 998, 2])) { error in
            XCTAssertTrue("\(error)".contains("PartitionGrid.maxBlocks"), "\(error)")
        }
        XCTAssertThrowsError(
            try PartitionGrid(spec: spec, groupSizes: [[Int](repeating: 1, count: 1_000_000), [Int](repeating: 1, count: 998), [1, 1]]))
        XCTAssertLessThan(ContinuousClock.now - clock, .seconds(1))
    }

    /// The default grid is cut until the servers' parameter shares are within
    /// 10 % of even; each owner's share is checked by summing its blocks.
    func testBalancedGridSharesTheParametersEvenly() throws {
        let spec = try NetworkSpec(layerSizes: [784, 300, 300, 10], activations: [.relu], loss: .crossEntropy)
        XCTAssertEqual(PartitionGrid.balanced(spec: spec, servers: 1), PartitionGrid(unpartitioned: spec))
        let unpartitioned = PartitionGrid(unpartitioned: spec)
        XCTAssertEqual(unpartitioned.ownershipImbalance(servers: 2), 2 * 235_500 / 328_810, accuracy: 1e-12)
        for servers in [2, 3, 4, 8] {
            let grid = PartitionGrid.balanced(spec: spec, servers: servers)
            let owners = grid.balancedOwnership(servers: servers)
            var load = [Int](repeating: 0, count: servers)
            for (b, s) in owners.enumerated() { load[s] += grid.parameterCount(grid.blocks[b]) }
            XCTAssertEqual(load.reduce(0, +), 328_810)
            XCTAssertLessThanOrEqual(Double(load.max()!) / (328_810 / Double(servers)), 1.1, "\(servers) servers: \(load)")
            XCTAssertEqual(grid.ownershipImbalance(servers: servers), Double(load.max()!) * Double(servers) / 328_810, accuracy: 1e-12)
            XCTAssertEqual(grid.partitionCounts.last, 1, "the output layer stays whole")
        }
        XCTAssertEqual(PartitionGrid.balanced(spec: spec, servers: 2).partitionCounts, [1, 2, 1, 1])
        // A network too small to share stops cutting once no cut helps.
        let tiny = try NetworkSpec(layerSizes: [1, 2], activations: [], loss: .crossEntropy)
        XCTAssertEqual(PartitionGrid.balanced(spec: tiny, servers: 8).blocks.count, 1)
    }
}
