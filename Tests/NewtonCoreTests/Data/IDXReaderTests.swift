import XCTest

@testable import NewtonCore

final class IDXReaderTests: DataTestCase {
    /// Five 2×3 images with pixel value 10·row + position, labels 3 1 3 0 1.
    private let pixels: [UInt8] = (0..<5).flatMap { row in (0..<6).map { UInt8(10 * row + $0) } }
    private let labelBytes: [UInt8] = [3, 1, 3, 0, 1]

    private func writePlain(prefix: String = "train") throws -> DataSource {
        .idx(
            images: try file("\(prefix)-images-idx3-ubyte", idxBytes(type: 0x08, dimensions: [5, 2, 3], data: pixels)),
            labels: try file("\(prefix)-labels-idx1-ubyte", idxBytes(type: 0x08, dimensions: [5], data: labelBytes)))
    }

    func testPlainAndGzipGiveTheSameData() throws {
        let plain = try DataLoader.loadTraining(try writePlain())
        let zipped = try DataLoader.loadTraining(
            .idx(
                images: try gzipFile("z-images-idx3-ubyte.gz", idxBytes(type: 0x08, dimensions: [5, 2, 3], data: pixels)),
                labels: try gzipFile("z-labels-idx1-ubyte.gz", idxBytes(type: 0x08, dimensions: [5], data: labelBytes))))
        XCTAssertEqual(plain.rows, 5)
        XCTAssertEqual(plain.columns, 6)
        XCTAssertEqual(plain.features, pixels.map(Float.init))
        XCTAssertEqual(plain.classNames, ["0", "1", "3"])
        XCTAssertEqual(plain.labels, [2, 1, 2, 0, 1])
        XCTAssertEqual(zipped.features, plain.features)
        XCTAssertEqual(zipped.labels, plain.labels)
        XCTAssertEqual(zipped.classNames, plain.classNames)
    }

    func testGzipIsDetectedByContentNotName() throws {
        let images = try gzipFile("a-images-idx3-ubyte", idxBytes(type: 0x08, dimensions: [5, 2, 3], data: pixels))
        let labels = try file("a-labels-idx1-ubyte.gz", idxBytes(type: 0x08, dimensions: [5], data: labelBytes))
        XCTAssertEqual(try DataLoader.loadTraining(.idx(images: images, labels: labels)).features, pixels.map(Float.init))
    }

    func testTruncatedImagesNameFileAndOffset() throws {
        let images = try file(
            "t-images-idx3-ubyte", idxBytes(type: 0x08, dimensions: [100, 28, 28], data: Array(repeating: 7, count: 50 * 784)))
        let labels = try file("t-labels-idx1-ubyte", idxBytes(type: 0x08, dimensions: [100], data: Array(repeating: 1, count: 100)))
        assertThrows(.malformedData, containing: [images, "byte offset \(16 + 50 * 784)", "truncated", "100×28×28"]) {
            try DataLoader.loadTraining(.idx(images: images, labels: labels))
        }
    }

    func testTruncatedGzipStream() throws {
        let full = try gzipFile("full.gz", idxBytes(type: 0x08, dimensions: [5, 2, 3], data: pixels))
        let bytes = try XCTUnwrap(FileManager.default.contents(atPath: full))
        let cut = try file("cut-images-idx3-ubyte.gz", Array(bytes.prefix(bytes.count / 2)))
        let labels = try file("cut-labels-idx1-ubyte", idxBytes(type: 0x08, dimensions: [5], data: labelBytes))
        assertThrows(.malformedData, containing: [cut, "truncated", "byte offset"]) {
            try DataLoader.loadTraining(.idx(images: cut, labels: labels))
        }
    }

    func testBadMagic() throws {
        let source = try writePlain()
        try file("train-images-idx3-ubyte", [0x12, 0x34, 0x56, 0x78] + pixels)
        assertThrows(.malformedData, containing: [source.path, "byte offset 0", "magic", "0x12345678"]) {
            try DataLoader.loadTraining(source)
        }
        try file("train-images-idx3-ubyte", [0x00, 0x00, 0x07, 0x01, 0, 0, 0, 1, 5])
        assertThrows(.malformedData, containing: [source.path, "magic", "0x00000701"]) {
            try DataLoader.loadTraining(source)
        }
    }

    func testHeaderCutShort() throws {
        let source = try writePlain()
        try file("train-images-idx3-ubyte", [0, 0, 8, 3, 0, 0, 0, 5])
        assertThrows(.malformedData, containing: [source.path, "byte offset 8", "header"]) { try DataLoader.loadTraining(source) }
    }

    func testTrailingBytes() throws {
        let source = try writePlain()
        try file("train-labels-idx1-ubyte", idxBytes(type: 0x08, dimensions: [5], data: labelBytes + [9, 9]))
        assertThrows(.malformedData, containing: [try XCTUnwrap(source.labelsPath), "byte offset 13", "2 unexpected bytes"]) {
            try DataLoader.loadTraining(source)
        }
    }

    func testRowCountMismatch() throws {
        let source = try writePlain()
        try file("train-labels-idx1-ubyte", idxBytes(type: 0x08, dimensions: [4], data: [1, 2, 3, 4]))
        assertThrows(.shapeMismatch, containing: [source.path, try XCTUnwrap(source.labelsPath), "4 labels", "5 images"]) {
            try DataLoader.loadTraining(source)
        }
    }

    func testOtherElementTypesAreBigEndian() throws {
        let labels = try file("labels", idxBytes(type: 0x0C, dimensions: [2, 1], data: bigEndianBytes([Int32(-7), 70_000])))
        let cases: [(UInt8, [UInt8])] = [
            (0x09, [0xFF, 0x02, 0x80, 0x7F]),
            (0x0B, bigEndianBytes([Int16(-300), 2, 300, -1])),
            (0x0C, bigEndianBytes([Int32(-100_000), 2, 100_000, -1])),
            (0x0D, bigEndianBytes([Float(-1.5), 2, 0.25, -1].map(\.bitPattern))),
            (0x0E, bigEndianBytes([Double(-1.5), 2, 0.25, -1].map(\.bitPattern))),
        ]
        let expected: [[Float]] = [
            [-1, 2, -128, 127], [-300, 2, 300, -1], [-100_000, 2, 100_000, -1], [-1.5, 2, 0.25, -1], [-1.5, 2, 0.25, -1],
        ]
        for ((type, data), values) in zip(cases, expected) {
            let images = try file("images-\(type)", idxBytes(type: type, dimensions: [2, 2], data: data))
            let set = try DataLoader.loadTraining(.idx(images: images, labels: labels))
            XCTAssertEqual(set.features, values, "type \(type)")
            XCTAssertEqual(set.classNames, ["-7", "70000"])
            XCTAssertEqual(set.labels, [0, 1])
        }
    }

    func testNonFiniteFloats() throws {
        let labels = try file("labels", idxBytes(type: 0x08, dimensions: [2], data: [0, 1]))
        let images = try file(
            "images", idxBytes(type: 0x0D, dimensions: [2, 2], data: bigEndianBytes([Float(1), 2, .nan, 4].map(\.bitPattern))))
        assertThrows(.nonFinite, containing: [images, "byte offset 20", "element 2"]) {
            try DataLoader.loadTraining(.idx(images: images, labels: labels))
        }
    }

    func testTestSplitMustMatchTraining() throws {
        let training = try DataLoader.loadTraining(try writePlain())
        let test = try DataLoader.loadTest(try writePlain(prefix: "t10k"), matching: training)
        XCTAssertEqual(test.labels, training.labels)

        let wide = try file("wide-images-idx3-ubyte", idxBytes(type: 0x08, dimensions: [5, 7], data: Array(repeating: 1, count: 35)))
        let labels = try XCTUnwrap(try writePlain(prefix: "w").labelsPath)
        assertThrows(.shapeMismatch, containing: [wide, "7 values", "6 columns"]) {
            try DataLoader.loadTest(.idx(images: wide, labels: labels), matching: training)
        }

        let unseen = try file("unseen-labels", idxBytes(type: 0x08, dimensions: [5], data: [0, 1, 3, 9, 1]))
        assertThrows(.malformedData, containing: [unseen, "label 3 at byte offset 11", "'9'"]) {
            try DataLoader.loadTest(.idx(images: try writePlain(prefix: "u").path, labels: unseen), matching: training)
        }
    }

    func testMissingFile() throws {
        let missing = directory + "/nope-images-idx3-ubyte"
        assertThrows(.io, containing: [missing]) {
            try DataLoader.loadTraining(.idx(images: missing, labels: missing))
        }
    }
}
