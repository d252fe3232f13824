import Foundation
import XCTest

@testable import NewtonCore

final class DataIndexTests: DataTestCase {
    /// Every block read on its own, joined, must be the whole file as the
    /// readers load it: the same features, labels and classes, bit for bit.
    private func assertBlocksEqualWholeFile(
        _ source: DataSource, blockRows: Int, chunkBytes: Int = 64, file: StaticString = #filePath, line: UInt = #line
    ) throws -> DataIndex {
        let whole = try DataLoader.loadTraining(source)
        let index = try DataIndex.build(source, blockRows: blockRows, chunkBytes: chunkBytes)
        XCTAssertEqual(index.rows, whole.rows, file: file, line: line)
        XCTAssertEqual(index.columns, whole.columns, file: file, line: line)
        XCTAssertEqual(index.classNames, whole.classNames, file: file, line: line)
        XCTAssertEqual(index.blocks.count, (whole.rows + blockRows - 1) / blockRows, file: file, line: line)
        let reader = try DataIndex.Reader(index)
        var features = [Float]()
        var labels = [Int32]()
        for b in index.blocks.indices {
            let block = try reader.rows(ofBlock: b)
            XCTAssertEqual(block.rows, index.rowRange(ofBlock: b).count, file: file, line: line)
            features += block.features
            labels += block.labels
        }
        XCTAssertEqual(features.map(\.bitPattern), whole.features.map(\.bitPattern), file: file, line: line)
        XCTAssertEqual(labels, whole.labels, file: file, line: line)
        return index
    }

    func testLIBSVMBlocksEqualTheWholeFileAcrossChunkBoundaries() throws {
        // Comments, blank lines, CRLF and a late row with the largest index.
        let text =
            (0..<37).map { i in
                (i % 5 == 0 ? "# note \(i)\n\n" : "") + "\(i % 3 == 0 ? "+1" : "-1") 1:\(Float(i) * 0.25) \(i % 4 + 2):-\(i)\r\n"
            }.joined() + "1 9:7\n"
        let path = try file("train.svm", text)
        for blockRows in [1, 5, 38, 100] {
            for chunkBytes in [1, 17, 4096] {
                _ = try assertBlocksEqualWholeFile(.libsvm(path), blockRows: blockRows, chunkBytes: chunkBytes)
            }
        }
    }

    func testCSVWithHeaderAndGzip() throws {
        let rows = (0..<23).map { i in "\(["cat", "dog", "eel"][i % 3]),\(i),\(Float(i) / 7),-\(i * i)" }
        let text = "label,a,b,c\n" + rows.joined(separator: "\n") + "\n"
        let plain = try file("train.csv", text)
        let gz = try gzipFile("train.csv.gz", Array(text.utf8))
        for path in [plain, gz] {
            let index = try assertBlocksEqualWholeFile(.csv(path), blockRows: 4, chunkBytes: 30)
            XCTAssertEqual(index.classNames, ["cat", "dog", "eel"])
        }
    }

    func testIDXBlocksByArithmetic() throws {
        let images = idxBytes(type: 0x08, dimensions: [10, 2, 3], data: (0..<60).map { UInt8($0 * 3 % 256) })
        let labels = idxBytes(type: 0x08, dimensions: [10], data: (0..<10).map { UInt8($0 % 4) })
        let source = DataSource.idx(
            images: try gzipFile("train-images-idx3-ubyte.gz", images), labels: try file("train-labels-idx1-ubyte", labels))
        let index = try assertBlocksEqualWholeFile(source, blockRows: 3)
        XCTAssertEqual(index.blocks[1].ranges, [(16 + 18)..<(16 + 36), (8 + 3)..<(8 + 6)])
    }

    /// The statistics gathered block by block fit the same scaler as the
    /// whole data set, for every scaling, as doubles.
    func testStatisticsFitTheSameScalerAsTheWholeFile() throws {
        let data = SyntheticData.classification(rows: 301, features: 6, classes: 3, seed: 5)
        let path = directory + "/train.svm"
        try SyntheticData.writeLIBSVM(data, to: path)
        let whole = try DataLoader.loadTraining(.libsvm(path))
        var index = try DataIndex.build(.libsvm(path), blockRows: 16, chunkBytes: 500)
        try index.addDeviations()
        for scaling in FeatureScaling.allCases {
            XCTAssertEqual(
                try FeatureScaler.fit(scaling, statistics: index.statistics), try FeatureScaler.fit(scaling, on: whole), "\(scaling)")
        }
    }

    func testTestSetIsIndexedAgainstTheTrainingSet() throws {
        let train = try DataIndex.build(.libsvm(try file("train.svm", "1 1:1 4:2\n2 2:1\n")))
        let testPath = try file("test.svm", "2 1:5\n1 3:1\n")
        let test = try DataIndex.build(.libsvm(testPath), blockRows: 1, matching: train)
        XCTAssertEqual(test.columns, 4)
        XCTAssertEqual(test.classNames, ["1", "2"])
        let block = try DataIndex.Reader(test).rows(ofBlock: 1)
        XCTAssertEqual(block.features, [0, 0, 1, 0])
        XCTAssertEqual(block.labels, [0])
        assertThrows(.malformedData, containing: ["test2.svm:2", "label '3'"]) {
            try DataIndex.build(.libsvm(try file("test2.svm", "1 1:1\n3 1:1\n")), matching: train)
        }
    }

    func testStoredIndexRoundTripsAndNoticesAChangedFile() throws {
        let path = try file("train.svm", "1 1:1\n2 1:2\n1 1:3\n")
        let index = try DataIndex.build(.libsvm(path), blockRows: 2)
        let stored = DataIndex.storedPath(for: .libsvm(path))
        try index.save(to: stored)
        XCTAssertEqual(try DataIndex.load(from: stored), index)
        XCTAssertTrue(index.describes(.libsvm(path)))

        // Same size, same modification time, different bytes: the block checksum notices.
        let modified = try FileIdentity(path: path).modifiedNanoseconds
        try file("train.svm", "1 1:1\n2 1:2\n1 1:4\n")
        var times = [
            timespec(tv_sec: modified / 1_000_000_000, tv_nsec: modified % 1_000_000_000),
            timespec(tv_sec: modified / 1_000_000_000, tv_nsec: modified % 1_000_000_000),
        ]
        XCTAssertEqual(utimensat(AT_FDCWD, path, &times, 0), 0)
        XCTAssertTrue(index.describes(.libsvm(path)))
        let reader = try DataIndex.Reader(index)
        XCTAssertNoThrow(try reader.rows(ofBlock: 0))
        assertThrows(.malformedData, containing: ["train.svm", "rows 2..<3 (block 1)", "changed since it was indexed"]) {
            try reader.rows(ofBlock: 1)
        }

        // A different size: refused when opened.
        try file("train.svm", "1 1:1\n2 1:2\n1 1:3\n2 1:1\n")
        XCTAssertFalse(index.describes(.libsvm(path)))
        assertThrows(.malformedData, containing: ["train.svm changed since it was indexed", "newtonps data index"]) {
            try DataIndex.Reader(index)
        }
        assertThrows(.malformedData, containing: ["not a data index"]) { try DataIndex.load(from: try file("bad.npsidx", "{}")) }
    }

    func testEmptyAndMalformedFilesNameThePlace() throws {
        assertThrows(.malformedData, containing: ["empty.svm holds no data rows"]) {
            try DataIndex.build(.libsvm(try file("empty.svm", "# nothing\n\n")))
        }
        assertThrows(.malformedData, containing: ["bad.svm:3", "not a finite number"]) {
            try DataIndex.build(.libsvm(try file("bad.svm", "1 1:1\n2 1:2\n1 1:x\n")), chunkBytes: 6)
        }
        assertThrows(.malformedData, containing: ["bad.csv:3: 3 fields, but the rows above have 2"]) {
            try DataIndex.build(.csv(try file("bad.csv", "a,1\nb,2\nc,3,4\n")), chunkBytes: 8)
        }
    }
}
