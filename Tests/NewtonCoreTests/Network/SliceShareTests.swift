import NewtonCore
import XCTest

final class SliceShareTests: XCTestCase {
    /// Writes `share` as `rows × classes × width`, or throws its error.
    private func written(_ share: SliceShare, rows: Int, classes: Int, width: Int) throws -> [Float] {
        var out = [Float](repeating: .nan, count: rows * classes * width)
        try out.withUnsafeMutableBufferPointer { try share.write(rows: rows, classes: classes, width: width, into: $0) }
        return out
    }

    /// Every block's columns of a ReLU network's slices are written the same
    /// bit for bit whether handed over in-process or packed, and the packing
    /// leaves out the columns of units that are off.
    func testPackedAndInProcessSharesWriteTheSameBits() throws {
        let f = try KernelFixture(layers: [5, 12, 9, 4], activation: .relu, rows: 20)
        let slices = f.kernels.jacobianSlices(f.kernels.forward(inputs: f.inputs, rows: f.rows))
        let classes = f.spec.classes
        for m in 1..<f.spec.depth {
            let width = f.spec.layerSizes[m]
            let full = slices[m - 1]
            for columns in [0..<width, 0..<(width / 2), (width / 3)..<width] {
                let share = SliceShare.columns(of: full, classes: classes, fullWidth: width, columns: columns)
                let expected = (0..<(f.rows * classes)).flatMap { sk in columns.map { full[sk * width + $0] } }
                let packed = share.packed
                for (name, form) in [("in-process", share), ("packed", .packed(packed))] {
                    let values = try written(form, rows: f.rows, classes: classes, width: columns.count)
                    XCTAssertEqual(values.map(\.bitPattern), expected.map(\.bitPattern), "\(name), layer \(m), columns \(columns)")
                }
                let zeroColumns = (0..<f.rows).reduce(0) { count, s in
                    count + columns.filter { c in (0..<classes).allSatisfy { full[(s * classes + $0) * width + c].bitPattern == 0 } }.count
                }
                XCTAssertGreaterThan(zeroColumns, 0, "the fixture should switch some units off (layer \(m))")
                XCTAssertEqual(packed.values.count, (f.rows * columns.count - zeroColumns) * classes, "layer \(m), columns \(columns)")
            }
        }
    }

    /// A column is left out only when it is +0.0 bit for bit: a −0.0 column
    /// is kept, so unpacking restores it.
    func testNegativeZeroColumnsAreKept() throws {
        let slice: [Float] = [0, -0.0, 1, 0, -0.0, 2]  // one row, two classes, three columns
        let packed = SliceShare.columns(of: slice, classes: 2, fullWidth: 3, columns: 0..<3).packed
        XCTAssertEqual(packed.keptColumns, [0b110])
        XCTAssertEqual(packed.values.map(\.bitPattern), [-0.0, 1, -0.0, 2].map { Float($0).bitPattern })
        XCTAssertEqual(try written(.packed(packed), rows: 1, classes: 2, width: 3).map(\.bitPattern), slice.map(\.bitPattern))
    }

    /// A share that does not fit the block's shape is refused with a message
    /// naming what is wrong.
    func testMisfitSharesAreRefused() throws {
        let share = SliceShare.columns(of: [1, 0, 2, 3, 0, 4], classes: 1, fullWidth: 3, columns: 0..<3)  // 2 rows, 4 columns kept
        let packed = share.packed
        XCTAssertNoThrow(try written(.packed(packed), rows: 2, classes: 1, width: 3))
        let cases: [(SliceShare, rows: Int, String)] = [
            (.packed(packed), 3, "1 bytes of kept columns; 3 rows × 3 columns need 2"),
            (.packed(PackedSlice(keptColumns: [0b0100_1101], values: packed.values)), 2, "marks columns past its 2 rows × 3 columns"),
            (
                .packed(PackedSlice(keptColumns: packed.keptColumns, values: [1, 2, 3])), 2,
                "keeps 4 columns of 1 classes but carries 3 values"
            ),
            (share, 3, "do not give 3 rows × 1 classes × 3 columns"),
        ]
        for (bad, rows, message) in cases {
            XCTAssertThrowsError(try written(bad, rows: rows, classes: 1, width: 3)) { error in
                XCTAssertTrue("\(error)".contains(message), "\(error)")
            }
        }
    }
}
