import Foundation
import XCTest

@testable import NewtonCore

final class LIBSVMReaderTests: DataTestCase {
    private func load(_ text: String, name: String = "train.svm") throws -> Dataset {
        try DataLoader.loadTraining(.libsvm(try file(name, text)))
    }

    func testReadsSparseRowsWithCommentsAndLabelSpellings() throws {
        let set = try load(
            """
            # a comment line
            +1 1:0.5 3:-2   # trailing comment
            -1 2:1e-3\r

            1.0 qid:7 1:1 4:4
            -1
            """)
        XCTAssertEqual(set.rows, 4)
        XCTAssertEqual(set.columns, 4)
        XCTAssertEqual(set.classNames, ["-1", "1"])
        XCTAssertEqual(set.labels, [1, 0, 1, 0])
        XCTAssertEqual(set.features, [0.5, 0, -2, 0, 0, 0.001, 0, 0, 1, 0, 0, 4, 0, 0, 0, 0])
    }

    func testLabelsSortNumerically() throws {
        let set = try load("10 1:1\n9 1:2\n-2.5 1:3\n9.0 1:4\n")
        XCTAssertEqual(set.classNames, ["-2.5", "9", "10"])
        XCTAssertEqual(set.labels, [2, 1, 0, 1])
    }

    func testMalformedLinesNameFileAndLine() throws {
        let path = directory + "/bad.svm"
        let cases: [(String, String)] = [
            ("1 1:abc", "value 'abc' of feature 1 is not a finite number"),
            ("1 1:", "value '' of feature 1"),
            ("1 0:1", "feature index 0"),
            ("1 3:1 2:1", "feature index 2 follows index 3"),
            ("1 2:1 2:1", "feature index 2 follows index 2"),
            ("1 1:1 5", "'5' is missing the colon"),
            ("1 :4", "no feature index"),
            ("1 x:4", "feature index in 'x:4' is not a positive integer"),
            ("one 1:4", "label 'one' is not a number"),
            ("1 1:inf", "'inf' of feature 1 is not a finite number"),
        ]
        for (line, problem) in cases {
            try file("bad.svm", "0 1:1\n\n\(line)\n0 2:2\n")
            assertThrows(.malformedData, containing: ["\(path):3:", problem]) { try DataLoader.loadTraining(.libsvm(path)) }
        }
    }

    func testEmptyFile() throws {
        let path = try file("empty.svm", "# nothing\n\n")
        assertThrows(.malformedData, containing: [path, "no data rows"]) { try DataLoader.loadTraining(.libsvm(path)) }
    }

    func testTestFileUsesTrainingColumnsAndClasses() throws {
        let training = try load("1 1:1 4:4\n2 2:2\n3 3:3\n")
        let test = try DataLoader.loadTest(.libsvm(try file("test.svm", "3 1:7\n1.0 2:8\n")), matching: training)
        XCTAssertEqual(test.columns, 4)
        XCTAssertEqual(test.classNames, training.classNames)
        XCTAssertEqual(test.labels, [2, 0])
        XCTAssertEqual(test.features, [7, 0, 0, 0, 0, 8, 0, 0])
    }

    func testTestFileWithMoreColumnsFails() throws {
        let training = try load("1 1:1 4:4\n2 2:2\n")
        let path = try file("test.svm", "1 1:1\n2 3:1 5:1\n")
        assertThrows(.shapeMismatch, containing: ["\(path):2:", "feature index 5", "4 columns"]) {
            try DataLoader.loadTest(.libsvm(path), matching: training)
        }
    }

    func testTestFileWithUnseenLabelFails() throws {
        let training = try load("1 1:1\n2 1:2\n")
        let path = try file("test.svm", "1 1:1\n2 1:1\n7 1:1\n")
        assertThrows(.malformedData, containing: ["\(path):3:", "label '7'", "1, 2"]) {
            try DataLoader.loadTest(.libsvm(path), matching: training)
        }
    }

    func testGzipFileWithSeveralMembers() throws {
        let first = try XCTUnwrap(FileManager.default.contents(atPath: try gzipFile("a.gz", Array("1 1:1\n".utf8))))
        let second = try XCTUnwrap(FileManager.default.contents(atPath: try gzipFile("b.gz", Array("2 2:2\n".utf8))))
        let path = try file("train.svm.gz", Array(first + second))
        XCTAssertEqual(try DataLoader.loadTraining(.libsvm(path)).features, [1, 0, 0, 2])

        let garbage = try file("garbage.svm.gz", Array(first) + [1, 2, 3])
        assertThrows(.malformedData, containing: [garbage, "compressed byte offset \(first.count)"]) {
            try DataLoader.loadTraining(.libsvm(garbage))
        }
    }

    /// Rows are dense, so an index like 2³¹ − 1 would ask for 8 GB a row.
    func testFeatureIndexIsCapped() throws {
        let path = try file("huge.svm", "1 2147483647:1\n")
        XCTAssertThrowsError(try LIBSVMReader.read(path, matching: nil)) { error in
            XCTAssertEqual((error as? CoreError)?.code, .malformedData)
            XCTAssertTrue("\(error)".contains("huge.svm:1: feature index 2147483647 exceeds the cap of 1048576 columns"), "\(error)")
        }
    }

    /// A small gzip file cannot inflate without bound.
    func testDecompressedBytesAreCapped() throws {
        let bomb = try XCTUnwrap(FileManager.default.contents(atPath: try gzipFile("zeros.gz", [UInt8](repeating: 0, count: 1 << 20))))
        XCTAssertLessThan(bomb.count, 10_000)
        XCTAssertThrowsError(try FileIO.gunzip(Array(bomb), path: "zeros.gz", limit: 1 << 16)) { error in
            XCTAssertTrue("\(error)".contains("zeros.gz: inflates to more than 65536 bytes (FileIO.maxDecompressedBytes)"), "\(error)")
        }
        XCTAssertEqual(try FileIO.gunzip(Array(bomb), path: "zeros.gz").count, 1 << 20)
    }

    /// A device never ends and a FIFO without a writer would block: neither
    /// may hang or exhaust the reader.
    func testDevicesAreRefusedAndAnEmptyPipeDoesNotBlock() throws {
        XCTAssertThrowsError(try LIBSVMReader.read("/dev/zero", matching: nil)) { error in
            XCTAssertTrue("\(error)".contains("/dev/zero: not a regular file or a pipe"), "\(error)")
        }
        let fifo = try file("pipe.svm", "")
        try FileManager.default.removeItem(atPath: fifo)
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let clock = ContinuousClock.now
        XCTAssertEqual(try FileIO.readRaw(fifo), [])
        XCTAssertLessThan(ContinuousClock.now - clock, .seconds(1))
    }
}
