import Foundation
import XCTest

@testable import NewtonCore

final class DataRootTests: DataTestCase {
    private func root() throws -> DataRoot {
        try FileManager.default.createDirectory(atPath: directory + "/root/sub", withIntermediateDirectories: true)
        return try DataRoot(directory + "/root")
    }

    private func assertRefused(_ root: DataRoot, _ path: String, _ expected: String, line: UInt = #line) {
        XCTAssertThrowsError(try root.locate(path), line: line) {
            XCTAssertTrue("\($0)".contains(expected), "\($0)", line: line)
            XCTAssertTrue("\($0)".contains(path), "the error names the path: \($0)", line: line)
        }
    }

    func testPathsInsideTheRootAreLocatedRelativeOrAbsolute() throws {
        let root = try root()
        let csv = try file("root/sub/train.csv", "a,1\n")
        XCTAssertEqual(try root.locate("sub/train.csv"), try root.locate(csv))
        XCTAssertEqual(try root.locate("./sub/../sub/train.csv"), root.path + "/sub/train.csv")
        XCTAssertEqual(try root.locate("sub"), root.path + "/sub")
    }

    func testPathsOutsideTheRootAreRefusedAlikeWhetherOrNotTheyExist() throws {
        let root = try root()
        try file("secret", "x")
        for path in ["/etc/passwd", "/no/such/file", "../secret", "sub/../../secret", "/dev/zero"] {
            assertRefused(root, path, "is outside the data root")
        }
        assertRefused(root, "missing.csv", "does not exist under the data root")
    }

    func testSymbolicLinksAndSpecialFilesCannotLeadOut() throws {
        let root = try root()
        try FileManager.default.createSymbolicLink(atPath: root.path + "/passwd", withDestinationPath: "/etc/passwd")
        assertRefused(root, "passwd", "leads outside the data root")
        XCTAssertEqual(mkfifo(root.path + "/fifo", 0o600), 0)
        assertRefused(root, "fifo", "neither a regular file nor a directory")
    }

    func testDescriptorsAreLocatedFileByFile() throws {
        let root = try root()
        try file("root/sub/train.csv", "a,1\nb,2\n")
        let csv = DataDescriptor(
            source: .files(format: .csv, train: "sub/train.csv", test: nil, csvLabelColumn: 0, csvHeader: false), scaling: .none)
        guard case .files(_, let train, _, _, _) = try root.locate(csv).source else { return XCTFail("not files") }
        XCTAssertEqual(train, root.path + "/sub/train.csv")
        // An IDX directory inside the root whose labels file leads out is refused.
        try file("root/sub/train-images-idx3-ubyte", [0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1])
        try file("outside-labels", "x")
        try FileManager.default.createSymbolicLink(
            atPath: root.path + "/sub/train-labels-idx1-ubyte", withDestinationPath: directory + "/outside-labels")
        let idx = DataDescriptor(
            source: .files(format: .idx, train: "sub", test: nil, csvLabelColumn: 0, csvHeader: nil), scaling: .none)
        XCTAssertThrowsError(try root.locate(idx)) { XCTAssertTrue("\($0)".contains("leads outside the data root"), "\($0)") }
        let synthetic = DataDescriptor(source: .synthetic(trainRows: 1, testRows: 0, features: 1, classes: 2, seed: 1), scaling: .none)
        XCTAssertEqual(try root.locate(synthetic), synthetic)
        XCTAssertThrowsError(try DataRoot(directory + "/nope"))
    }
}
