import Foundation

/// One named float32 tensor: its shape and its values in row-major order.
public struct SafetensorsTensor: Sendable, Equatable {
    public var name: String
    /// Dimensions, outermost first; `[]` is a scalar holding one value.
    public var shape: [Int]
    public var values: [Float]

    public init(name: String, shape: [Int], values: [Float]) {
        self.name = name
        self.shape = shape
        self.values = values
    }
}

/// Reads and writes the safetensors format (https://github.com/huggingface/safetensors):
/// a little-endian u64 header length, a space-padded JSON header, then the raw
/// little-endian tensor data. Only `F32` tensors are supported.
public enum Safetensors {
    private static let metadataKey = "__metadata__"

    /// The bytes of a safetensors file holding `tensors` (laid out in the given
    /// order) and `metadata`. The same input always gives the same bytes: metadata
    /// first with sorted keys, then tensors with fields in the reference
    /// implementation's order, so the output matches Python's `save_file` byte for byte.
    public static func encode(_ tensors: [SafetensorsTensor], metadata: [String: String]) throws -> [UInt8] {
        var entries: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            entries.append("\(jsonString(metadataKey)):{\(pairs.joined(separator: ","))}")
        }
        var seen = Set<String>()
        var offset = 0
        for t in tensors {
            guard t.name != metadataKey else {
                throw CoreError(.invalidArgument, "a tensor cannot be named \(metadataKey)")
            }
            guard seen.insert(t.name).inserted else {
                throw CoreError(.invalidArgument, "two tensors are named '\(t.name)'")
            }
            guard let count = elementCount(t.shape) else {
                throw CoreError(.invalidArgument, "tensor '\(t.name)' has invalid shape \(t.shape)")
            }
            guard count == t.values.count else {
                throw CoreError(
                    .shapeMismatch, "tensor '\(t.name)' has shape \(t.shape) (\(count) values) but holds \(t.values.count) values")
            }
            let end = offset + 4 * count
            let shape = t.shape.map(String.init).joined(separator: ",")
            entries.append("\(jsonString(t.name)):{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        var header = Array("{\(entries.joined(separator: ","))}".utf8)
        header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - header.count % 8) % 8))

        var out = [UInt8](repeating: 0, count: 8 + header.count + offset)
        out.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: UInt64(header.count).littleEndian, toByteOffset: 0, as: UInt64.self)
            var at = 8
            for b in header {
                raw[at] = b
                at += 1
            }
            for t in tensors {
                for v in t.values {
                    raw.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: at, as: UInt32.self)
                    at += 4
                }
            }
        }
        return out
    }

    /// Parses and fully validates safetensors `bytes`; `source` (the file name)
    /// starts every error message. Tensors come back in data-offset order.
    public static func decode(_ bytes: [UInt8], source: String) throws -> (tensors: [SafetensorsTensor], metadata: [String: String]) {
        func malformed(_ what: String, at byte: Int? = nil) -> CoreError {
            CoreError(.malformedData, "\(source): \(what)" + (byte.map { ", at byte \($0)" } ?? ""))
        }
        guard bytes.count >= 8 else {
            throw malformed("file is \(bytes.count) bytes long, too short for the 8-byte header length", at: 0)
        }
        let headerLength = bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLength <= UInt64(bytes.count - 8) else {
            throw malformed("header length \(headerLength) exceeds the \(bytes.count - 8) bytes that follow it", at: 0)
        }
        let dataStart = 8 + Int(headerLength)
        let dataLength = bytes.count - dataStart

        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: Data(bytes[8..<dataStart]))
        } catch {
            let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
            throw malformed("invalid JSON header (bytes 8..<\(dataStart)): \(detail)")
        }
        guard let entries = root as? [String: Any] else {
            throw malformed("header is not a JSON object", at: 8)
        }

        struct Entry {
            var name: String
            var shape: [Int]
            var begin: Int
            var end: Int
        }
        var metadata: [String: String] = [:]
        var found: [Entry] = []
        for (name, node) in entries.sorted(by: { $0.key < $1.key }) {
            if name == metadataKey {
                guard let pairs = node as? [String: Any] else { throw malformed("\(metadataKey) is not an object") }
                for (key, value) in pairs {
                    guard let text = value as? String else { throw malformed("metadata value for '\(key)' is not a string") }
                    metadata[key] = text
                }
                continue
            }
            guard let fields = node as? [String: Any] else { throw malformed("tensor '\(name)' is not an object") }
            func field(_ key: String) throws -> Any {
                guard let value = fields[key] else { throw malformed("tensor '\(name)' has no \"\(key)\"") }
                return value
            }
            func integers(_ key: String) throws -> [Int] {
                guard let items = try field(key) as? [Any] else { throw malformed("tensor '\(name)' \(key) is not an array") }
                return try items.map { item in
                    guard let value = nonNegativeInteger(item) else {
                        throw malformed("tensor '\(name)' \(key) holds something other than a non-negative integer")
                    }
                    return value
                }
            }
            guard let dtype = try field("dtype") as? String else { throw malformed("tensor '\(name)' dtype is not a string") }
            guard dtype == "F32" else { throw malformed("tensor '\(name)' has dtype \(dtype); only F32 is supported") }
            let shape = try integers("shape")
            let offsets = try integers("data_offsets")
            guard offsets.count == 2, offsets[0] <= offsets[1] else {
                throw malformed("tensor '\(name)' data_offsets \(offsets) is not a [begin, end] pair")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard end <= dataLength else {
                throw malformed("tensor '\(name)' data_offsets [\(begin), \(end)] run past the \(dataLength)-byte data buffer")
            }
            guard let count = elementCount(shape), count * 4 == end - begin else {
                throw malformed("tensor '\(name)' data_offsets [\(begin), \(end)] do not match shape \(shape) of F32")
            }
            found.append(Entry(name: name, shape: shape, begin: begin, end: end))
        }

        found.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var expected = 0
        var previous = ""
        for e in found {
            guard e.begin >= expected else {
                throw malformed("tensor '\(e.name)' overlaps tensor '\(previous)'", at: dataStart + e.begin)
            }
            guard e.begin == expected else {
                throw malformed("\(e.begin - expected) unused bytes before tensor '\(e.name)'", at: dataStart + expected)
            }
            expected = e.end
            previous = e.name
        }
        guard expected == dataLength else {
            throw malformed("\(dataLength - expected) bytes of trailing data after the last tensor", at: dataStart + expected)
        }

        let tensors = found.map { e in
            let count = (e.end - e.begin) / 4
            let values = bytes.withUnsafeBytes { raw in
                [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                    for i in 0..<count {
                        let bits = raw.loadUnaligned(fromByteOffset: dataStart + e.begin + 4 * i, as: UInt32.self)
                        buffer.initializeElement(at: i, to: Float(bitPattern: UInt32(littleEndian: bits)))
                    }
                    initialized = count
                }
            }
            return SafetensorsTensor(name: e.name, shape: e.shape, values: values)
        }
        return (tensors, metadata)
    }

    /// Encodes and writes a file atomically (see `FileIO.writeAll`).
    public static func write(_ tensors: [SafetensorsTensor], metadata: [String: String], to path: String) throws {
        try FileIO.writeAll(encode(tensors, metadata: metadata), to: path)
    }

    /// Reads and decodes the safetensors file at `path`.
    public static func read(from path: String) throws -> (tensors: [SafetensorsTensor], metadata: [String: String]) {
        try decode(FileIO.readRaw(path), source: path)
    }

    /// A JSON number that is a non-negative integer written without a
    /// fraction or exponent (`2`, not `2.0`, `2e0` or `true`).
    private static func nonNegativeInteger(_ value: Any) -> Int? {
        // Foundation reads `true` as a char ("c") and `2.0` as a double ("d").
        guard let number = value as? NSNumber, ["s", "i", "l", "q"].contains(String(cString: number.objCType)) else { return nil }
        return number.intValue >= 0 ? number.intValue : nil
    }

    /// The number of values a tensor of `shape` holds, or nil for a negative
    /// dimension or an overflowing product.
    private static func elementCount(_ shape: [Int]) -> Int? {
        var count = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, product <= Int.max / 4 else { return nil }
            count = product
        }
        return count
    }

    /// `s` as a JSON string literal, escaped like serde_json does (Foundation's
    /// encoders escape `/` and order keys differently, and the header must
    /// match Python's `save_file` byte for byte).
    private static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{8}": out += "\\b"
            case "\u{C}": out += "\\f"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
