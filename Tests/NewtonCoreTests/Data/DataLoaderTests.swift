import Foundation
import XCTest

@testable import NewtonCore

final class DataLoaderTests: DataTestCase {
    private func writeIDX(_ name: String, rows: Int, gzip: Bool) throws {
        let images = idxBytes(type: 0x08, dimensions: [rows, 2, 2], data: Array(repeating: 1, count: rows * 4))
        let labels = idxBytes(type: 0x08, dimensions: [rows], data: (0..<rows).map { UInt8($0 % 2) })
        if gzip {
            try gzipFile(name.replacingOccurrences(of: "KIND", with: "images-idx3") + ".gz", images)
            try gzipFile(name.replacingOccurrences(of: "KIND", with: "labels-idx1") + ".gz", labels)
        } else {
            try file(name.replacingOccurrences(of: "KIND", with: "images-idx3"), images)
            try file(name.replacingOccurrences(of: "KIND", with: "labels-idx1"), labels)
        }
    }

    func testResolvesIDXDirectoryBySplit() throws {
        try writeIDX("train-KIND-ubyte", rows: 6, gzip: true)
        try writeIDX("t10k-KIND-ubyte", rows: 4, gzip: false)
        let train = try DataSource.resolve(path: directory, format: .idx, split: .train)
        XCTAssertEqual(train, .idx(images: directory + "/train-images-idx3-ubyte.gz", labels: directory + "/train-labels-idx1-ubyte.gz"))
        let test = try DataSource.resolve(path: directory + "/", format: .idx, split: .test)
        XCTAssertEqual(test, .idx(images: directory + "/t10k-images-idx3-ubyte", labels: directory + "/t10k-labels-idx1-ubyte"))
        let training = try DataLoader.loadTraining(train)
        XCTAssertEqual(try DataLoader.loadTest(test, matching: training).rows, 4)
    }

    func testResolvesIDXImagesFile() throws {
        try writeIDX("my-KIND-ubyte", rows: 3, gzip: false)
        let source = try DataSource.resolve(path: directory + "/my-images-idx3-ubyte", format: .idx, split: .test)
        XCTAssertEqual(source.labelsPath, directory + "/my-labels-idx1-ubyte")
        try FileManager.default.removeItem(atPath: directory + "/my-labels-idx1-ubyte")
        try gzipFile("my-labels-idx1-ubyte.gz", idxBytes(type: 0x08, dimensions: [3], data: [0, 1, 0]))
        XCTAssertEqual(
            try DataSource.resolve(path: directory + "/my-images-idx3-ubyte", format: .idx, split: .test).labelsPath,
            directory + "/my-labels-idx1-ubyte.gz")
        // Without an explicit labels path the loader finds it the same way.
        XCTAssertEqual(try DataLoader.loadTraining(DataSource(format: .idx, path: directory + "/my-images-idx3-ubyte")).rows, 3)
    }

    func testResolveErrors() throws {
        assertThrows(.io, containing: [directory + "/missing", "does not exist"]) {
            try DataSource.resolve(path: directory + "/missing", format: .csv, split: .train)
        }
        assertThrows(.io, containing: [directory, "train-images-idx3-ubyte.gz"]) {
            try DataSource.resolve(path: directory, format: .idx, split: .train)
        }
        let odd = try file("pixels.bin", [0])
        assertThrows(.invalidArgument, containing: [odd, "images-idx3"]) { try DataSource.resolve(path: odd, format: .idx, split: .train) }
        let lonely = try file("x-images-idx3-ubyte", [0])
        assertThrows(.io, containing: [directory + "/x-labels-idx1-ubyte", "x-labels-idx1-ubyte.gz"]) {
            try DataSource.resolve(path: lonely, format: .idx, split: .train)
        }
        assertThrows(.invalidArgument, containing: [directory, "directory"]) {
            try DataSource.resolve(path: directory, format: .libsvm, split: .train)
        }
        let csv = try DataSource.resolve(path: odd, format: .csv, split: .train, csv: CSVOptions(labelColumn: -1))
        XCTAssertEqual(csv, .csv(odd, options: CSVOptions(labelColumn: -1)))
    }

    func testReadingADirectoryAsAFileFails() throws {
        assertThrows(.io, containing: [directory]) { try DataLoader.loadTraining(.libsvm(directory)) }
    }

    func testFashionMNISTTestSplit() throws {
        let root = "/usr/share/datasets/fashion-mnist"
        guard FileManager.default.fileExists(atPath: root) else { throw XCTSkip("\(root) is not installed") }
        let set = try DataLoader.loadTraining(try DataSource.resolve(path: root, format: .idx, split: .test))
        XCTAssertEqual(set.rows, 10_000)
        XCTAssertEqual(set.columns, 784)
        XCTAssertEqual(set.classNames, (0..<10).map(String.init))
        var counts = [Int](repeating: 0, count: 10)
        for label in set.labels { counts[Int(label)] += 1 }
        XCTAssertEqual(counts, Array(repeating: 1000, count: 10))
        XCTAssertEqual(set.features.max(), 255)
        XCTAssertEqual(set.features.min(), 0)
    }
}
