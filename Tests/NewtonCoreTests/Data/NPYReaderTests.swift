import Foundation
import XCTest

@testable import NewtonCore

final class NPYReaderTests: DataTestCase {
    /// An `.npy` file: the version 1.0 header with `dict`, then `data`.
    private func npy(_ dict: String, _ data: [UInt8]) -> [UInt8] {
        var header = Array(dict.utf8)
        header += repeatElement(0x20, count: (64 - (10 + header.count + 1) % 64) % 64) + [0x0A]
        return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.count & 0xFF), UInt8(header.count >> 8)] + header + data
    }

    private func load(_ name: String, _ bytes: [UInt8], labelColumn: Int = 0) throws -> Dataset {
        try DataLoader.loadTraining(DataSource(format: .npy, path: try file(name, bytes), csv: CSVOptions(labelColumn: labelColumn)))
    }

    func testGeneratedFileReadsBackAsTheGeneratedRows() throws {
        var generator = SyntheticData.Generator(features: 5, classes: 3, seed: 4)
        let path = directory + "/train.npy"
        try generator.write(77, as: .npy, to: path)
        let expected = SyntheticData.classification(rows: 77, features: 5, classes: 3, seed: 4)
        let read = try DataLoader.loadTraining(DataSource(format: .npy, path: path))
        XCTAssertEqual(read.features.map(\.bitPattern), expected.features.map(\.bitPattern))
        XCTAssertEqual(read.labels, expected.labels)
        XCTAssertEqual(read.classNames, expected.classNames)
        let bytes = try FileIO.readRaw(path)
        let header = try NPYReader.header(of: bytes, fileBytes: bytes.count, labelColumn: 0, path: path, matching: nil)
        XCTAssertEqual(header.dataOffset % 64, 0, "NumPy aligns the data to 64 bytes")
    }

    func testElementTypesByteOrderAndLabelColumn() throws {
        // Big-endian float64, label last: rows (1.5, 2.5 | 7) and (-1, 0 | 3).
        let f8 = [1.5, 2.5, 7, -1, 0, 3].flatMap { withUnsafeBytes(of: $0.bitPattern.bigEndian, Array.init) }
        let a = try load("a.npy", npy("{'descr': '>f8', 'fortran_order': False, 'shape': (2, 3), }", f8), labelColumn: -1)
        XCTAssertEqual(a.features, [1.5, 2.5, -1, 0])
        XCTAssertEqual(a.classNames, ["3", "7"])
        XCTAssertEqual(a.labels, [1, 0])
        // Little-endian int16 and unsigned bytes.
        let i2 = [Int16(1), -300, 2, 0].flatMap { withUnsafeBytes(of: $0.littleEndian, Array.init) }
        let b = try load("b.npy", npy("{'descr': '<i2', 'fortran_order': False, 'shape': (2, 2), }", i2))
        XCTAssertEqual(b.features, [-300, 0])
        XCTAssertEqual(b.classNames, ["1", "2"])
        let c = try load("c.npy", npy("{'descr': '|u1', 'fortran_order': False, 'shape': (1, 3), }", [9, 200, 1]))
        XCTAssertEqual(c.features, [200, 1])
    }

    func testErrorsNameTheFileAndPlace() throws {
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }"
        let good = [Float(1), 2, 0, 4].flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
        let cases: [(String, [UInt8], CoreError.Code, [String])] = [
            ("magic.npy", Array("NUMPY".utf8) + good, .malformedData, ["magic.npy: byte offset 0", "not a NumPy .npy file"]),
            (
                "fortran.npy", npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", good), .malformedData,
                ["Fortran order", "ascontiguousarray"]
            ),
            (
                "flat.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", good), .malformedData,
                ["shape (4,)", "2-D array"]
            ),
            (
                "struct.npy", npy("{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (2, 2), }", good), .malformedData,
                ["structured arrays"]
            ),
            (
                "complex.npy", npy("{'descr': '<c8', 'fortran_order': False, 'shape': (2, 2), }", good), .malformedData,
                ["element type '<c8'"]
            ),
            ("short.npy", npy(header, Array(good.dropLast(3))), .malformedData, ["file is truncated", "needs 144 bytes"]),
            ("long.npy", npy(header, good + [0, 0]), .malformedData, ["2 unexpected bytes after the (2, 2) elements"]),
            (
                "nan.npy",
                npy(header, good.prefix(8) + withUnsafeBytes(of: Float.nan.bitPattern.littleEndian, Array.init) + good.suffix(4)),
                .nonFinite, ["nan.npy: byte offset 136", "row 1, column 0 is not a finite number"]
            ),
        ]
        for (name, bytes, code, fragments) in cases {
            assertThrows(code, containing: [name] + fragments) { try load(name, bytes) }
        }
        assertThrows(.invalidArgument, containing: ["label column 5 does not exist in rows of 2 values"]) {
            try load("label.npy", npy(header, good), labelColumn: 5)
        }
    }

    func testIndexedBlocksEqualTheWholeFile() throws {
        var generator = SyntheticData.Generator(features: 3, classes: 2, seed: 9)
        let path = directory + "/train.npy"
        try generator.write(50, as: .npy, to: path)
        let whole = try DataLoader.loadTraining(DataSource(format: .npy, path: path))
        let index = try DataIndex.build(DataSource(format: .npy, path: path), blockRows: 7)
        let reader = try DataIndex.Reader(index)
        let joined = try index.blocks.indices.map { try reader.rows(ofBlock: $0) }
        XCTAssertEqual(joined.flatMap(\.features), whole.features)
        XCTAssertEqual(joined.flatMap(\.labels), whole.labels)
        XCTAssertEqual(try FeatureScaler.fit(.unitRange, statistics: index.statistics), try FeatureScaler.fit(.unitRange, on: whole))
    }
}
