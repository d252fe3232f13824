import XCTest

@testable import NewtonCore

final class CSVReaderTests: DataTestCase {
    private func load(_ text: String, _ options: CSVOptions = CSVOptions()) throws -> Dataset {
        try DataLoader.loadTraining(.csv(try file("train.csv", text), options: options))
    }

    func testDetectsHeaderAndReadsLabelFirst() throws {
        let set = try load("class,width,height\ncat,1,2\n\"dog\", 3.5 ,\"4\"\r\n\ncat,5,-6\n")
        XCTAssertEqual(set.columns, 2)
        XCTAssertEqual(set.classNames, ["cat", "dog"])
        XCTAssertEqual(set.labels, [0, 1, 0])
        XCTAssertEqual(set.features, [1, 2, 3.5, 4, 5, -6])
    }

    func testWithoutHeaderAndLabelLastAndNumericLabels() throws {
        let set = try load("1,2,10\n3,4,9\n5,6,10.0\n7,8,-1\n", CSVOptions(labelColumn: -1))
        XCTAssertEqual(set.classNames, ["-1", "9", "10"])
        XCTAssertEqual(set.labels, [2, 1, 2, 0])
        XCTAssertEqual(set.features, [1, 2, 3, 4, 5, 6, 7, 8])
    }

    func testExplicitHeaderFlagAndSeparator() throws {
        let numericHeader = try load("0;1;2\n1;5;6\n", CSVOptions(labelColumn: 1, hasHeader: true, separator: ";"))
        XCTAssertEqual(numericHeader.rows, 1)
        XCTAssertEqual(numericHeader.features, [1, 6])
        XCTAssertEqual(numericHeader.classNames, ["5"])

        let path = directory + "/train.csv"
        assertThrows(.malformedData, containing: ["\(path):1:", "field 2 'a'"]) {
            try load("y,a,b\n1,2,3\n", CSVOptions(hasHeader: false))
        }
        assertThrows(.invalidArgument, containing: [path, "'.'"]) { try load("1.2.3\n", CSVOptions(separator: ".")) }
    }

    func testStringAndNumericLabelsMixedSortAsText() throws {
        let set = try load("10,1\n9,2\nx,3\n")
        XCTAssertEqual(set.classNames, ["10", "9", "x"])
    }

    func testRaggedRows() throws {
        let path = directory + "/train.csv"
        assertThrows(.malformedData, containing: ["\(path):3:", "2 fields", "first line has 3"]) {
            try load("a,1,2\nb,3,4\nc,5\n")
        }
    }

    func testNonNumericFeature() throws {
        let path = directory + "/train.csv"
        assertThrows(.malformedData, containing: ["\(path):4:", "field 3 'seven'"]) {
            try load("y,p,q\na,1,2\n\nb,3,seven\n")
        }
        assertThrows(.malformedData, containing: ["\(path):2:", "field 2 ''"]) { try load("a,1,2\nb,,4\n") }
        assertThrows(.malformedData, containing: ["\(path):2:", "label (field 1) is empty"]) { try load("a,1,2\n,3,4\n") }
    }

    func testLabelColumnOutOfRange() throws {
        let path = directory + "/train.csv"
        assertThrows(.invalidArgument, containing: ["\(path):1:", "label column 5"]) { try load("a,1,2\n", CSVOptions(labelColumn: 5)) }
        assertThrows(.invalidArgument, containing: ["\(path):1:", "label column -4"]) { try load("a,1,2\n", CSVOptions(labelColumn: -4)) }
    }

    func testTestFileMustMatchTraining() throws {
        let training = try load("x,f1,f2\nb,1,2\na,3,4\n")
        let good = try DataLoader.loadTest(.csv(try file("ok.csv", "b,5,6\na,7,8\n")), matching: training)
        XCTAssertEqual(good.labels, [1, 0])
        XCTAssertEqual(good.features, [5, 6, 7, 8])

        let wide = try file("wide.csv", "\nb,5,6,7\n")
        assertThrows(.shapeMismatch, containing: ["\(wide):2:", "4 fields", "training set has 3"]) {
            try DataLoader.loadTest(.csv(wide), matching: training)
        }
        let unseen = try file("unseen.csv", "a,1,2\nc,5,6\n")
        assertThrows(.malformedData, containing: ["\(unseen):2:", "label 'c'", "a, b"]) {
            try DataLoader.loadTest(.csv(unseen), matching: training)
        }
    }
}
