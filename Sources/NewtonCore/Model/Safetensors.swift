#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

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

        let root: JSONNode
        do {
            var parser = JSONParser(bytes: Array(bytes[8..<dataStart]))
            root = try parser.parseDocument()
        } catch let e as JSONParser.Failure {
            throw malformed("invalid JSON header: \(e.what)", at: 8 + e.at)
        }
        guard case .object(let entries) = root.kind else {
            throw malformed("header is not a JSON object", at: 8 + root.at)
        }

        struct Entry {
            var name: String
            var shape: [Int]
            var begin: Int
            var end: Int
        }
        var metadata: [String: String] = [:]
        var found: [Entry] = []
        for (name, node) in entries {
            if name == metadataKey {
                guard case .object(let pairs) = node.kind else {
                    throw malformed("\(metadataKey) is not an object", at: 8 + node.at)
                }
                for (key, value) in pairs {
                    guard case .string(let s) = value.kind else {
                        throw malformed("metadata value for '\(key)' is not a string", at: 8 + value.at)
                    }
                    metadata[key] = s
                }
                continue
            }
            guard case .object(let fields) = node.kind else {
                throw malformed("tensor '\(name)' is not an object", at: 8 + node.at)
            }
            func field(_ key: String) throws -> JSONNode {
                guard let f = fields.first(where: { $0.key == key }) else {
                    throw malformed("tensor '\(name)' has no \"\(key)\"", at: 8 + node.at)
                }
                return f.node
            }
            func integers(_ key: String) throws -> (values: [Int], at: Int) {
                let f = try field(key)
                guard case .array(let items) = f.kind else {
                    throw malformed("tensor '\(name)' \(key) is not an array", at: 8 + f.at)
                }
                let values = try items.map { item -> Int in
                    guard case .number(let text, true) = item.kind, !text.hasPrefix("-"), let v = Int(text) else {
                        throw malformed("tensor '\(name)' \(key) holds something other than a non-negative integer", at: 8 + item.at)
                    }
                    return v
                }
                return (values, f.at)
            }
            let dtype = try field("dtype")
            guard case .string(let dtypeName) = dtype.kind else {
                throw malformed("tensor '\(name)' dtype is not a string", at: 8 + dtype.at)
            }
            guard dtypeName == "F32" else {
                throw malformed("tensor '\(name)' has dtype \(dtypeName); only F32 is supported", at: 8 + dtype.at)
            }
            let shape = try integers("shape").values
            let offsets = try integers("data_offsets")
            guard offsets.values.count == 2, offsets.values[0] <= offsets.values[1] else {
                throw malformed("tensor '\(name)' data_offsets \(offsets.values) is not a [begin, end] pair", at: 8 + offsets.at)
            }
            let (begin, end) = (offsets.values[0], offsets.values[1])
            guard end <= dataLength else {
                throw malformed(
                    "tensor '\(name)' data_offsets [\(begin), \(end)] run past the \(dataLength)-byte data buffer", at: 8 + offsets.at)
            }
            guard let count = elementCount(shape), count * 4 == end - begin else {
                throw malformed("tensor '\(name)' data_offsets [\(begin), \(end)] do not match shape \(shape) of F32", at: 8 + offsets.at)
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

    /// Encodes and writes a file atomically: the bytes go to a temporary file in
    /// the same directory, which is synced and then renamed over `path`.
    public static func write(_ tensors: [SafetensorsTensor], metadata: [String: String], to path: String) throws {
        try writeFileAtomically(encode(tensors, metadata: metadata), to: path)
    }

    /// Reads and decodes the safetensors file at `path`.
    public static func read(from path: String) throws -> (tensors: [SafetensorsTensor], metadata: [String: String]) {
        try decode(readFile(path), source: path)
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

    /// `s` as a JSON string literal, escaped like serde_json does.
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

// MARK: - JSON header parsing

/// A parsed JSON value and the byte offset (within the header) where it starts.
private struct JSONNode {
    enum Kind {
        case object([(key: String, node: JSONNode)])
        case array([JSONNode])
        case string(String)
        /// The literal text, and whether it has no fraction or exponent.
        case number(String, isInteger: Bool)
        case bool(Bool)
        case null
    }
    var kind: Kind
    var at: Int
}

/// A strict RFC 8259 parser with a nesting limit; it rejects duplicate keys.
private struct JSONParser {
    struct Failure: Error {
        var what: String
        var at: Int
    }

    let bytes: [UInt8]
    var i = 0
    private let maxDepth = 64

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func parseDocument() throws -> JSONNode {
        let node = try value(depth: 0)
        skipWhitespace()
        guard i == bytes.count else { throw Failure(what: "unexpected data after the JSON value", at: i) }
        return node
    }

    private var current: UInt8? { i < bytes.count ? bytes[i] : nil }

    private mutating func skipWhitespace() {
        while let c = current, c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D { i += 1 }
    }

    private mutating func expect(_ c: UInt8, _ what: String) throws {
        guard current == c else { throw Failure(what: "expected \(what)", at: i) }
        i += 1
    }

    private mutating func value(depth: Int) throws -> JSONNode {
        skipWhitespace()
        let start = i
        guard depth < maxDepth else { throw Failure(what: "nesting deeper than \(maxDepth)", at: start) }
        switch current {
        case UInt8(ascii: "{"):
            i += 1
            var members: [(key: String, node: JSONNode)] = []
            var keys = Set<String>()
            skipWhitespace()
            if current == UInt8(ascii: "}") {
                i += 1
                return JSONNode(kind: .object(members), at: start)
            }
            while true {
                skipWhitespace()
                let keyAt = i
                guard current == UInt8(ascii: "\"") else { throw Failure(what: "expected a string key", at: i) }
                let key = try string()
                guard keys.insert(key).inserted else { throw Failure(what: "duplicate key '\(key)'", at: keyAt) }
                skipWhitespace()
                try expect(UInt8(ascii: ":"), "':'")
                members.append((key, try value(depth: depth + 1)))
                skipWhitespace()
                if current == UInt8(ascii: "}") {
                    i += 1
                    return JSONNode(kind: .object(members), at: start)
                }
                try expect(UInt8(ascii: ","), "',' or '}'")
            }
        case UInt8(ascii: "["):
            i += 1
            var items: [JSONNode] = []
            skipWhitespace()
            if current == UInt8(ascii: "]") {
                i += 1
                return JSONNode(kind: .array(items), at: start)
            }
            while true {
                items.append(try value(depth: depth + 1))
                skipWhitespace()
                if current == UInt8(ascii: "]") {
                    i += 1
                    return JSONNode(kind: .array(items), at: start)
                }
                try expect(UInt8(ascii: ","), "',' or ']'")
            }
        case UInt8(ascii: "\""):
            return JSONNode(kind: .string(try string()), at: start)
        case UInt8(ascii: "t"):
            try literal("true")
            return JSONNode(kind: .bool(true), at: start)
        case UInt8(ascii: "f"):
            try literal("false")
            return JSONNode(kind: .bool(false), at: start)
        case UInt8(ascii: "n"):
            try literal("null")
            return JSONNode(kind: .null, at: start)
        case let c? where c == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c):
            return try number()
        case nil: throw Failure(what: "unexpected end of header", at: i)
        default: throw Failure(what: "unexpected character", at: i)
        }
    }

    private mutating func literal(_ word: String) throws {
        let start = i
        for c in word.utf8 {
            guard current == c else { throw Failure(what: "invalid literal", at: start) }
            i += 1
        }
    }

    private mutating func digits() -> Int {
        let start = i
        while let c = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) { i += 1 }
        return i - start
    }

    private mutating func number() throws -> JSONNode {
        let start = i
        if current == UInt8(ascii: "-") { i += 1 }
        let intStart = i
        let intDigits = digits()
        guard intDigits > 0 else { throw Failure(what: "invalid number", at: start) }
        guard intDigits == 1 || bytes[intStart] != UInt8(ascii: "0") else { throw Failure(what: "number with a leading zero", at: start) }
        var isInteger = true
        if current == UInt8(ascii: ".") {
            i += 1
            guard digits() > 0 else { throw Failure(what: "invalid number", at: start) }
            isInteger = false
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            i += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { throw Failure(what: "invalid number", at: start) }
            isInteger = false
        }
        return JSONNode(kind: .number(String(decoding: bytes[start..<i], as: UTF8.self), isInteger: isInteger), at: start)
    }

    /// Parses a string literal starting at the opening quote.
    private mutating func string() throws -> String {
        let start = i
        i += 1
        var out: [UInt8] = []
        while true {
            guard let c = current else { throw Failure(what: "unterminated string", at: start) }
            switch c {
            case UInt8(ascii: "\""):
                i += 1
                let s = String(decoding: out, as: UTF8.self)
                guard s.utf8.elementsEqual(out) else { throw Failure(what: "string is not valid UTF-8", at: start) }
                return s
            case UInt8(ascii: "\\"):
                i += 1
                guard let e = current else { throw Failure(what: "unterminated string", at: start) }
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    let escapeAt = i - 2
                    var code = try hex4()
                    if (0xD800..<0xDC00).contains(code) {
                        guard current == UInt8(ascii: "\\") else { throw Failure(what: "unpaired surrogate escape", at: escapeAt) }
                        i += 1
                        try expect(UInt8(ascii: "u"), "a low surrogate escape")
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw Failure(what: "unpaired surrogate escape", at: escapeAt) }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw Failure(what: "unpaired surrogate escape", at: escapeAt) }
                    out.append(contentsOf: String(Character(scalar)).utf8)
                default: throw Failure(what: "invalid escape", at: i - 2)
                }
            case 0..<0x20: throw Failure(what: "control character in string", at: i)
            default:
                out.append(c)
                i += 1
            }
        }
    }

    private mutating func hex4() throws -> UInt32 {
        var code: UInt32 = 0
        for _ in 0..<4 {
            guard let c = current, let d = Self.hexDigit(c) else { throw Failure(what: "invalid \\u escape", at: i) }
            code = code << 4 | UInt32(d)
            i += 1
        }
        return code
    }

    private static func hexDigit(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

// MARK: - File I/O

private func errnoMessage(_ code: Int32) -> String { String(cString: strerror(code)) }

/// The whole contents of the file at `path`.
private func readFile(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw CoreError(.io, "\(path): cannot open: \(errnoMessage(errno))") }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw CoreError(.io, "\(path): cannot stat: \(errnoMessage(errno))") }
    var buffer = [UInt8](repeating: 0, count: max(Int(info.st_size), 0))
    var filled = 0
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        // Read straight into the buffer while it has room, then in chunks in case the file grew.
        let n =
            filled < buffer.count
            ? buffer.withUnsafeMutableBytes { raw in read(fd, raw.baseAddress.map { $0 + filled }, raw.count - filled) }
            : chunk.withUnsafeMutableBytes { raw in read(fd, raw.baseAddress, raw.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw CoreError(.io, "\(path): read failed at byte \(filled): \(errnoMessage(errno))")
        }
        if n == 0 { break }
        if filled < buffer.count {
            filled += n
        } else {
            buffer.append(contentsOf: chunk[0..<n])
            filled += n
        }
    }
    buffer.removeLast(buffer.count - filled)
    return buffer
}

/// Writes `bytes` to a temporary file next to `path`, syncs it, and renames it
/// over `path`; on failure the temporary file is removed and `path` is untouched.
private func writeFileAtomically(_ bytes: [UInt8], to path: String) throws {
    let directory = path.lastIndex(of: "/").map { String(path[...$0]) } ?? ""
    let temp = "\(directory).safetensors-\(getpid())-\(String(UInt64.random(in: .min ... .max), radix: 16)).tmp"
    let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw CoreError(.io, "\(path): cannot create temporary file \(temp): \(errnoMessage(errno))") }
    var closed = false
    do {
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { raw in write(fd, raw.baseAddress.map { $0 + written }, raw.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                throw CoreError(.io, "\(path): write failed at byte \(written): \(errnoMessage(errno))")
            }
            written += n
        }
        guard fsync(fd) == 0 else { throw CoreError(.io, "\(path): fsync failed: \(errnoMessage(errno))") }
        closed = true
        guard close(fd) == 0 else { throw CoreError(.io, "\(path): close failed: \(errnoMessage(errno))") }
        guard rename(temp, path) == 0 else { throw CoreError(.io, "\(path): cannot rename \(temp) into place: \(errnoMessage(errno))") }
    } catch {
        if !closed { close(fd) }
        unlink(temp)
        throw error
    }
    // Best effort: make the rename itself durable.
    let dirFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_CLOEXEC)
    if dirFD >= 0 {
        fsync(dirFD)
        close(dirFD)
    }
}
