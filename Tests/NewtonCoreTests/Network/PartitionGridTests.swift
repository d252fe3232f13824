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
}
