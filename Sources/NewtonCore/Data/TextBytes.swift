#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The bytes of a text data file, with the small parsing helpers the LIBSVM and
/// CSV readers share. Always ends with a NUL byte, so the C number parsers used
/// here can never run past the end.
struct TextBytes {
    let bytes: UnsafeBufferPointer<UInt8>

    /// Reads `path` (gunzipping if needed) and calls `body` with each line: its
    /// byte range without the line break or a trailing CR, and its 1-based number.
    static func forEachLine(in path: String, _ body: (TextBytes, Range<Int>, Int) throws -> Void) throws {
        try forEachLine(of: FileIO.readAll(path), firstLine: 1, body)
    }

    /// Calls `body` with each line of `content`, numbered from `firstLine`.
    static func forEachLine(of content: [UInt8], firstLine: Int, _ body: (TextBytes, Range<Int>, Int) throws -> Void) throws {
        var file = content
        file.append(0)
        try file.withUnsafeBufferPointer { buffer in
            let text = TextBytes(bytes: buffer)
            let base = buffer.baseAddress!
            let end = buffer.count - 1
            var start = 0
            var number = firstLine
            while start < end {
                let newline = memchr(base + start, 0x0A, end - start).map { UnsafeRawPointer($0) - UnsafeRawPointer(base) } ?? end
                var lineEnd = newline
                if lineEnd > start, buffer[lineEnd - 1] == 0x0D { lineEnd -= 1 }
                try body(text, start..<lineEnd, number)
                start = newline + 1
                number += 1
            }
        }
    }

    @inline(__always) static func isBlank(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }

    /// `range` without leading and trailing spaces and tabs.
    func trimmed(_ range: Range<Int>) -> Range<Int> {
        var lower = range.lowerBound
        var upper = range.upperBound
        while lower < upper, Self.isBlank(bytes[lower]) { lower += 1 }
        while upper > lower, Self.isBlank(bytes[upper - 1]) { upper -= 1 }
        return lower..<upper
    }

    func string(_ range: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    /// The finite number spelled by exactly the bytes in `range`, or nil.
    @inline(__always) func float(_ range: Range<Int>) -> Float? {
        guard let first = range.first.map({ bytes[$0] }),
            (first >= 0x30 && first <= 0x39) || first == 0x2B || first == 0x2D || first == 0x2E
        else { return nil }  // strtof would also skip blanks and accept "inf" or "nan"
        let start = UnsafeRawPointer(bytes.baseAddress! + range.lowerBound).assumingMemoryBound(to: CChar.self)
        var stop: UnsafeMutablePointer<CChar>?
        let value = strtof(start, &stop)
        guard let stop, UnsafePointer(stop) - start == range.count,
            value.isFinite
        else { return nil }
        return value
    }
}
