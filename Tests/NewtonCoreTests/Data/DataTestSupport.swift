import CZlib
import Foundation
import XCTest

@testable import NewtonCore

/// A fresh temporary directory per test, removed afterwards.
class DataTestCase: XCTestCase {
    private(set) var directory = ""

    override func setUpWithError() throws {
        directory =
            FileManager.default.temporaryDirectory
            .appendingPathComponent("newtonps-data-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Writes `bytes` to `name` in the test directory and returns its path.
    @discardableResult
    func file(_ name: String, _ bytes: [UInt8]) throws -> String {
        let path = directory + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @discardableResult
    func file(_ name: String, _ text: String) throws -> String {
        try file(name, Array(text.utf8))
    }

    /// Writes `bytes` gzip-compressed to `name` in the test directory.
    @discardableResult
    func gzipFile(_ name: String, _ bytes: [UInt8]) throws -> String {
        let path = directory + "/" + name
        let gz = try XCTUnwrap(gzopen(path, "wb"))
        let written = bytes.withUnsafeBytes { gzwrite(gz, $0.baseAddress, UInt32($0.count)) }
        XCTAssertEqual(Int(written), bytes.count)
        XCTAssertEqual(gzclose(gz), Z_OK)
        return path
    }

    /// Asserts that `body` throws a `CoreError` with `code` whose message contains every one of `fragments`.
    func assertThrows<T>(
        _ code: CoreError.Code, containing fragments: [String], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> T
    ) {
        do {
            _ = try body()
            XCTFail("expected a \(code) error", file: file, line: line)
        } catch let error as CoreError {
            XCTAssertEqual(error.code, code, "\(error)", file: file, line: line)
            for fragment in fragments {
                XCTAssertTrue(error.message.contains(fragment), "'\(error.message)' does not mention '\(fragment)'", file: file, line: line)
            }
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
    }
}

/// An IDX file: magic, big-endian dimension sizes, then `data` as given.
func idxBytes(type: UInt8, dimensions: [Int], data: [UInt8]) -> [UInt8] {
    var bytes: [UInt8] = [0, 0, type, UInt8(dimensions.count)]
    for d in dimensions { bytes += withUnsafeBytes(of: UInt32(d).bigEndian, Array.init) }
    return bytes + data
}

/// Big-endian bytes of each value.
func bigEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
    values.flatMap { withUnsafeBytes(of: $0.bigEndian, Array.init) }
}
