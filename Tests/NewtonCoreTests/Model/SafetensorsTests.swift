import Foundation
import XCTest

@testable import NewtonCore

final class SafetensorsTests: XCTestCase {
    private let source = "bad.safetensors"

    /// A file made of `header` (padded to 8 bytes unless `pad` is false) and `data`.
    private func file(_ header: String, data: [UInt8] = [], pad: Bool = true) -> [UInt8] {
        var h = Array(header.utf8)
        if pad { h += Array(repeating: UInt8(ascii: " "), count: (8 - h.count % 8) % 8) }
        return withUnsafeBytes(of: UInt64(h.count).littleEndian, Array.init) + h + data
    }

    private func floats(_ values: [Float]) -> [UInt8] {
        values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
    }

    private func tempDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("safetensors-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// Asserts that decoding `bytes` fails with a malformed-data error naming the file and containing `fragment`.
    private func assertMalformed(_ bytes: [UInt8], _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Safetensors.decode(bytes, source: source), file: file, line: line) { error in
            guard let e = error as? CoreError else { return XCTFail("not a CoreError: \(error)", file: file, line: line) }
            XCTAssertEqual(e.code, .malformedData, file: file, line: line)
            XCTAssertTrue(e.message.hasPrefix("\(source): "), e.message, file: file, line: line)
            XCTAssertTrue(e.message.contains(fragment), "'\(e.message)' lacks '\(fragment)'", file: file, line: line)
        }
    }

    private func assertBitEqual(_ a: [SafetensorsTensor], _ b: [SafetensorsTensor], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.map(\.name), b.map(\.name), file: file, line: line)
        XCTAssertEqual(a.map(\.shape), b.map(\.shape), file: file, line: line)
        XCTAssertEqual(a.map { $0.values.map(\.bitPattern) }, b.map { $0.values.map(\.bitPattern) }, file: file, line: line)
    }

    private let sample = [
        SafetensorsTensor(name: "layer.0.weight", shape: [2, 3], values: [1, -2.5, 0, -0.0, .pi, 1e-30]),
        SafetensorsTensor(
            name: "special", shape: [5], values: [.infinity, -.infinity, .nan, .leastNonzeroMagnitude, .greatestFiniteMagnitude]),
        SafetensorsTensor(name: "scalar", shape: [], values: [42]),
        SafetensorsTensor(name: "empty", shape: [3, 0], values: []),
        SafetensorsTensor(name: "b\u{e9}\"\\\n", shape: [1, 1, 1], values: [-7]),
    ]

    // MARK: Round trips

    func testRoundTripThroughFile() throws {
        let path = try tempDirectory().appendingPathComponent("model.safetensors").path
        try Safetensors.write(sample, metadata: ["format": "np"], to: path)
        let (tensors, metadata) = try Safetensors.read(from: path)
        assertBitEqual(tensors, sample)
        XCTAssertEqual(metadata, ["format": "np"])
    }

    func testMetadataRoundTrip() throws {
        let metadata = ["epoch": "3", "note": "quote \" slash \\ tab \t nl \n ctl \u{1} \u{7f} \u{e9}\u{1F600}", "": "", "__x": "y"]
        let decoded = try Safetensors.decode(Safetensors.encode(sample, metadata: metadata), source: "m")
        XCTAssertEqual(decoded.metadata, metadata)
        assertBitEqual(decoded.tensors, sample)
        XCTAssertEqual(try Safetensors.decode(Safetensors.encode([], metadata: [:]), source: "m").metadata, [:])
    }

    func testEncodingIsDeterministicAndPadded() throws {
        var a: [String: String] = [:]
        var b: [String: String] = [:]
        for i in 0..<50 { a["key\(i)"] = "\(i)" }
        for i in (0..<50).reversed() { b["key\(i)"] = "\(i)" }
        let bytesA = try Safetensors.encode(sample, metadata: a)
        XCTAssertEqual(bytesA, try Safetensors.encode(sample, metadata: b))
        let headerLength = bytesA.prefix(8).reversed().reduce(0) { $0 << 8 | Int($1) }
        XCTAssertEqual(headerLength % 8, 0)
        XCTAssertEqual(bytesA.count, 8 + headerLength + 4 * sample.reduce(0) { $0 + $1.values.count })
    }

    func testEncodeRejectsInvalidTensors() {
        let cases: [([SafetensorsTensor], CoreError.Code)] = [
            ([SafetensorsTensor(name: "a", shape: [2, 2], values: [1, 2, 3])], .shapeMismatch),
            ([SafetensorsTensor(name: "a", shape: [-1], values: [])], .invalidArgument),
            (
                [SafetensorsTensor(name: "a", shape: [1], values: [1]), SafetensorsTensor(name: "a", shape: [1], values: [2])],
                .invalidArgument
            ),
            ([SafetensorsTensor(name: "__metadata__", shape: [1], values: [1])], .invalidArgument),
        ]
        for (tensors, code) in cases {
            XCTAssertThrowsError(try Safetensors.encode(tensors, metadata: [:])) { XCTAssertEqual(($0 as? CoreError)?.code, code) }
        }
    }

    // MARK: Reference implementation

    /// Written by Python `safetensors` 0.8.0: `save_file({"a": np.arange(6, dtype=np.float32).reshape(2, 3),
    /// "b": np.array([1.5], dtype=np.float32)}, path, metadata={"k": "v"})`.
    private let referenceFile: [UInt8] = [
        0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7b, 0x22, 0x5f, 0x5f, 0x6d, 0x65, 0x74, 0x61,
        0x64, 0x61, 0x74, 0x61, 0x5f, 0x5f, 0x22, 0x3a, 0x7b, 0x22, 0x6b, 0x22, 0x3a, 0x22, 0x76, 0x22,
        0x7d, 0x2c, 0x22, 0x61, 0x22, 0x3a, 0x7b, 0x22, 0x64, 0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x22,
        0x46, 0x33, 0x32, 0x22, 0x2c, 0x22, 0x73, 0x68, 0x61, 0x70, 0x65, 0x22, 0x3a, 0x5b, 0x32, 0x2c,
        0x33, 0x5d, 0x2c, 0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74, 0x73,
        0x22, 0x3a, 0x5b, 0x30, 0x2c, 0x32, 0x34, 0x5d, 0x7d, 0x2c, 0x22, 0x62, 0x22, 0x3a, 0x7b, 0x22,
        0x64, 0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x22, 0x46, 0x33, 0x32, 0x22, 0x2c, 0x22, 0x73, 0x68,
        0x61, 0x70, 0x65, 0x22, 0x3a, 0x5b, 0x31, 0x5d, 0x2c, 0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f,
        0x66, 0x66, 0x73, 0x65, 0x74, 0x73, 0x22, 0x3a, 0x5b, 0x32, 0x34, 0x2c, 0x32, 0x38, 0x5d, 0x7d,
        0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x3f,
        0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x40, 0x40, 0x00, 0x00, 0x80, 0x40, 0x00, 0x00, 0xa0, 0x40,
        0x00, 0x00, 0xc0, 0x3f,
    ]
    private let referenceTensors = [
        SafetensorsTensor(name: "a", shape: [2, 3], values: [0, 1, 2, 3, 4, 5]),
        SafetensorsTensor(name: "b", shape: [1], values: [1.5]),
    ]

    func testDecodesReferenceFile() throws {
        let (tensors, metadata) = try Safetensors.decode(referenceFile, source: "ref.safetensors")
        XCTAssertEqual(tensors, referenceTensors)
        XCTAssertEqual(metadata, ["k": "v"])
    }

    func testEncodingMatchesReferenceBytes() throws {
        XCTAssertEqual(try Safetensors.encode(referenceTensors, metadata: ["k": "v"]), referenceFile)
    }

    func testTensorsComeBackInDataOffsetOrder() throws {
        let bytes = file(
            #"{"z":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
            data: floats([1, 2, 3]))
        let (tensors, _) = try Safetensors.decode(bytes, source: source)
        XCTAssertEqual(
            tensors, [SafetensorsTensor(name: "z", shape: [1], values: [1]), SafetensorsTensor(name: "a", shape: [2], values: [2, 3])])
    }

    // MARK: Malformed input

    func testShortFileAndAbsurdHeaderLength() {
        assertMalformed([], "too short")
        assertMalformed([1, 0, 0, 0, 0, 0, 0], "too short")
        assertMalformed(
            [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7B, 0x7D], "header length 18446744073709551615 exceeds the 2 bytes")
        var tooLong = file("{}")
        tooLong[0] += 1
        assertMalformed(tooLong, "at byte 0")
    }

    /// Foundation's JSON parser reads the header; its diagnosis follows
    /// "invalid JSON header".
    func testHeaderNotJSONOrNotObject() {
        assertMalformed(file("{\"a\": ", pad: false), "invalid JSON header (bytes 8..<14): Unexpected end of file")
        assertMalformed(file("{abc}"), "invalid JSON header")
        assertMalformed(file("{} x"), "invalid JSON header")
        assertMalformed(file("[1, 2]"), "header is not a JSON object, at byte 8")
        assertMalformed(file("\"s\""), "invalid JSON header")
        assertMalformed(file(""), "invalid JSON header")
        assertMalformed(file(#"{"a":01}"#), "leading zero")
        assertMalformed(file(#"{"a":"\x"}"#), "Invalid escape")
        assertMalformed(file(#"{"a":"\ud800"}"#), "low-surrogate")
        assertMalformed(file("{\"a\":\"\t\"}"), "control character")
        var invalidUTF8 = file(#"{"__metadata__":{"k":"vv"}}"#)
        invalidUTF8[30] = 0xFF
        assertMalformed(invalidUTF8, "Invalid UTF-8")
        assertMalformed(file(String(repeating: "[", count: 100_000)), "Too many nested")
        assertMalformed(file(#"{"__metadata__":{"k":1}}"#), "metadata value for 'k' is not a string")
        assertMalformed(file(#"{"__metadata__":[]}"#), "__metadata__ is not an object")
    }

    func testInvalidTensorEntries() {
        let data = floats([1, 2])
        func entry(_ body: String) -> [UInt8] { file("{\"t\":\(body)}", data: data) }
        assertMalformed(entry("3"), "tensor 't' is not an object")
        assertMalformed(entry(#"{"shape":[2],"data_offsets":[0,8]}"#), "tensor 't' has no \"dtype\"")
        assertMalformed(entry(#"{"dtype":"F32","data_offsets":[0,8]}"#), "tensor 't' has no \"shape\"")
        assertMalformed(entry(#"{"dtype":"F32","shape":[2]}"#), "tensor 't' has no \"data_offsets\"")
        assertMalformed(entry(#"{"dtype":"F16","shape":[4],"data_offsets":[0,8]}"#), "tensor 't' has dtype F16; only F32 is supported")
        assertMalformed(entry(#"{"dtype":7,"shape":[2],"data_offsets":[0,8]}"#), "dtype is not a string")
        assertMalformed(
            entry(#"{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}"#), "shape holds something other than a non-negative integer")
        assertMalformed(entry(#"{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}"#), "non-negative integer")
        assertMalformed(entry(#"{"dtype":"F32","shape":[2e0],"data_offsets":[0,8]}"#), "non-negative integer")
        assertMalformed(entry(#"{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}"#), "non-negative integer")
        assertMalformed(entry(#"{"dtype":"F32","shape":2,"data_offsets":[0,8]}"#), "shape is not an array")
        assertMalformed(entry(#"{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]}"#), "non-negative integer")
        assertMalformed(entry(#"{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}"#), "do not match shape")
        assertMalformed(entry(#"{"dtype":"F32","shape":[2],"data_offsets":[0]}"#), "is not a [begin, end] pair")
        assertMalformed(entry(#"{"dtype":"F32","shape":[2],"data_offsets":[8,0]}"#), "is not a [begin, end] pair")
        assertMalformed(entry(#"{"dtype":"F32","shape":[2],"data_offsets":[0,-8]}"#), "non-negative integer")
        assertMalformed(entry(#"{"dtype":"F32","shape":[2],"data_offsets":[8,16]}"#), "run past the 8-byte data buffer")
        assertMalformed(entry(#"{"dtype":"F32","shape":[2],"data_offsets":[0,9223372036854775807]}"#), "run past")
        assertMalformed(entry(#"{"dtype":"F32","shape":[3],"data_offsets":[0,8]}"#), "data_offsets [0, 8] do not match shape [3]")
    }

    func testLayoutProblems() {
        let t = #""dtype":"F32","shape":[2]"#
        let overlap = file("{\"x\":{\(t),\"data_offsets\":[0,8]},\"y\":{\(t),\"data_offsets\":[4,12]}}", data: floats([1, 2, 3]))
        assertMalformed(overlap, "tensor 'y' overlaps tensor 'x'")
        let hole = file("{\"x\":{\(t),\"data_offsets\":[4,12]}}", data: floats([1, 2, 3]))
        assertMalformed(hole, "4 unused bytes before tensor 'x'")
        let trailing = file("{\"x\":{\(t),\"data_offsets\":[0,8]}}", data: floats([1, 2]) + [9])
        let headerEnd = trailing.count - 9
        assertMalformed(trailing, "1 bytes of trailing data after the last tensor, at byte \(headerEnd + 8)")
        assertMalformed(file("{}", data: [0]), "trailing data")
    }

    func testNonFiniteValuesAreJustData() throws {
        let bytes = file(#"{"n":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}"#, data: floats([.nan, .infinity, -.infinity]))
        let values = try Safetensors.decode(bytes, source: source).tensors[0].values
        XCTAssertTrue(values[0].isNaN)
        XCTAssertEqual(values[1...], [.infinity, -.infinity])
    }

    /// Truncations and byte flips of a valid file must throw or decode, never crash.
    func testMutatedFilesNeverCrash() throws {
        let valid = try Safetensors.encode(sample, metadata: ["k": "v"])
        for n in 0..<valid.count { _ = try? Safetensors.decode(Array(valid.prefix(n)), source: source) }
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<3000 {
            var bytes = valid
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            do { _ = try Safetensors.decode(bytes, source: source) } catch let e as CoreError {
                XCTAssertTrue(e.message.hasPrefix("\(source): "))
            }
        }
    }

    // MARK: Files

    func testIOErrorsNameThePath() throws {
        let dir = try tempDirectory()
        let missing = dir.appendingPathComponent("missing.safetensors").path
        XCTAssertThrowsError(try Safetensors.read(from: missing)) {
            XCTAssertEqual(($0 as? CoreError)?.code, .io)
            XCTAssertTrue(($0 as? CoreError)?.message.hasPrefix(missing) == true)
        }
        let unwritable = dir.appendingPathComponent("no/such/dir/x.safetensors").path
        XCTAssertThrowsError(try Safetensors.write(sample, metadata: [:], to: unwritable)) {
            XCTAssertEqual(($0 as? CoreError)?.code, .io)
        }
        let bad = dir.appendingPathComponent("bad.safetensors").path
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: bad))
        XCTAssertThrowsError(try Safetensors.read(from: bad)) {
            XCTAssertEqual(($0 as? CoreError)?.code, .malformedData)
            XCTAssertTrue(($0 as? CoreError)?.message.hasPrefix("\(bad): ") == true)
        }
    }

    func testWriteReplacesAtomicallyAndLeavesNoTemporaryFiles() throws {
        let dir = try tempDirectory()
        let path = dir.appendingPathComponent("m.safetensors").path
        try Safetensors.write(sample, metadata: ["v": "1"], to: path)
        try Safetensors.write(referenceTensors, metadata: ["k": "v"], to: path)
        XCTAssertEqual(try Safetensors.read(from: path).tensors, referenceTensors)
        // A failed write (invalid input) leaves the existing file untouched.
        XCTAssertThrowsError(try Safetensors.write([SafetensorsTensor(name: "x", shape: [2], values: [1])], metadata: [:], to: path))
        XCTAssertEqual(Array(try Data(contentsOf: URL(fileURLWithPath: path))), referenceFile)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["m.safetensors"])
    }
}
