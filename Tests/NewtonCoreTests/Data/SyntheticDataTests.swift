import XCTest

@testable import NewtonCore

final class SyntheticDataTests: DataTestCase {
    func testSameSeedSameData() {
        let a = SyntheticData.classification(rows: 300, features: 5, classes: 3, seed: 42)
        let b = SyntheticData.classification(rows: 300, features: 5, classes: 3, seed: 42)
        let c = SyntheticData.classification(rows: 300, features: 5, classes: 3, seed: 43)
        XCTAssertEqual(a.features, b.features)
        XCTAssertEqual(a.labels, b.labels)
        XCTAssertNotEqual(a.features, c.features)
        XCTAssertNotEqual(a.labels, c.labels)
        XCTAssertEqual(a.rows, 300)
        XCTAssertEqual(a.columns, 5)
        XCTAssertEqual(a.classNames, ["0", "1", "2"])
        XCTAssertTrue(a.features.allSatisfy(\.isFinite))
    }

    /// Every class is present and centred on the origin, so no linear model can
    /// separate it by its mean.
    func testClassesAreBalancedAndCentred() {
        let set = SyntheticData.classification(rows: 6000, features: 4, classes: 3, seed: 7)
        for label in Int32(0)..<3 {
            let rows = set.labels.indices.filter { set.labels[$0] == label }
            XCTAssertEqual(Double(rows.count), 2000, accuracy: 200)
            for j in 0..<4 {
                let mean = rows.map { Double(set.features[$0 * 4 + j]) }.reduce(0, +) / Double(rows.count)
                XCTAssertEqual(mean, 0, accuracy: 0.15)
            }
        }
    }

    func testDegenerateShapes() {
        let line = SyntheticData.classification(rows: 10, features: 1, classes: 2, seed: 1)
        XCTAssertEqual(line.columns, 1)
        XCTAssertTrue(line.features.allSatisfy(\.isFinite))
        let empty = SyntheticData.classification(rows: -3, features: 0, classes: 0, seed: 1)
        XCTAssertEqual(empty.rows, 0)
        XCTAssertEqual(empty.columns, 1)
        XCTAssertEqual(empty.classCount, 1)
    }

    func testWrittenFilesReadBackExactly() throws {
        let set = SyntheticData.classification(rows: 50, features: 6, classes: 4, seed: 3)
        let svm = directory + "/set.svm"
        try SyntheticData.writeLIBSVM(set, to: svm)
        let csv = directory + "/set.csv"
        try SyntheticData.writeCSV(set, to: csv, header: true)
        for source in [DataSource.libsvm(svm), .csv(csv)] {
            let back = try DataLoader.loadTraining(source)
            XCTAssertEqual(back.features, set.features, "\(source.format)")
            XCTAssertEqual(back.labels, set.labels)
            XCTAssertEqual(back.classNames, set.classNames)
        }
        let headerless = directory + "/plain.csv"
        try SyntheticData.writeCSV(set, to: headerless)
        XCTAssertEqual(try DataLoader.loadTraining(.csv(headerless)).rows, 50)
    }

    func testWriteToMissingDirectoryFails() {
        let path = directory + "/no/such/dir.svm"
        let set = SyntheticData.classification(rows: 2, features: 2, classes: 2, seed: 1)
        assertThrows(.io, containing: [path]) { try SyntheticData.writeLIBSVM(set, to: path) }
    }
}
