import CZlib

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Whole-file reading and writing: the one file layer of the data readers
/// and writers and of safetensors models. Errors name the path first.
enum FileIO {
    /// The bytes of the file at `path`, decompressed if the file starts with the
    /// gzip magic bytes (1f 8b). The name of the file plays no part.
    static func readAll(_ path: String) throws -> [UInt8] {
        let raw = try readRaw(path)
        guard raw.count >= 2, raw[0] == 0x1F, raw[1] == 0x8B else { return raw }
        return try gunzip(raw, path: path)
    }

    /// The type bits of `path`'s mode (`S_IFREG`, `S_IFDIR`, …; symbolic
    /// links followed), or nil when nothing is there.
    static func fileType(_ path: String) -> mode_t? {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mode & S_IFMT : nil
    }

    static func isDirectory(_ path: String) -> Bool { fileType(path) == S_IFDIR }
    static func isRegularFile(_ path: String) -> Bool { fileType(path) == S_IFREG }

    /// At most this many bytes are read from one file.
    static let maxFileBytes = 1 << 35

    /// The bytes of the file at `path`, as they are. Regular files and pipes
    /// only (a device such as /dev/zero never ends), at most `maxFileBytes`.
    static func readRaw(_ path: String) throws -> [UInt8] {
        // Non-blocking open: a FIFO without a writer must not hang the caller.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw ioError("cannot open", path) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw ioError("cannot stat", path) }
        let kind = info.st_mode & S_IFMT
        guard kind == S_IFREG || kind == S_IFIFO else {
            throw CoreError(.io, "\(path): not a regular file or a pipe (mode \(String(kind, radix: 8)))")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        guard info.st_size <= maxFileBytes else {
            throw CoreError(.io, "\(path): \(info.st_size) bytes, over the cap of \(maxFileBytes) (FileIO.maxFileBytes)")
        }
        let sizeHint = info.st_size > 0 ? Int(info.st_size) : 0
        // Read until end of file, so pipes and files that grow or shrink work too.
        var bytes = [UInt8](repeating: 0, count: max(sizeHint, 1 << 16))
        var count = 0
        while true {
            if count == bytes.count {
                guard count < maxFileBytes else {
                    throw CoreError(.io, "\(path): more than \(maxFileBytes) bytes (FileIO.maxFileBytes)")
                }
                bytes.append(contentsOf: repeatElement(0, count: min(bytes.count, maxFileBytes - bytes.count)))
            }
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError("read failed at byte \(count)", path)
            }
            if n == 0 { break }
            count += n
        }
        bytes.removeSubrange(count...)
        return bytes
    }

    /// Replaces the file at `path` with `bytes` atomically (see `writeStreaming`).
    static func writeAll(_ bytes: [UInt8], to path: String) throws {
        try writeStreaming(to: path) { write in try write(bytes) }
    }

    /// Replaces the file at `path` atomically with what `body` writes, a
    /// piece at a time: the pieces go to a temporary file in the same
    /// directory, which is synced and renamed over `path`. On failure the
    /// temporary file is removed and `path` is untouched.
    static func writeStreaming(to path: String, _ body: (_ write: ([UInt8]) throws -> Void) throws -> Void) throws {
        let directory = path.lastIndex(of: "/").map { String(path[...$0]) } ?? ""
        let temp = "\(directory).newtonps-\(getpid())-\(String(UInt64.random(in: .min ... .max), radix: 16)).tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ioError("cannot create temporary file \(temp)", path) }
        var closed = false
        do {
            var total = 0
            try body { bytes in
                var written = 0
                while written < bytes.count {
                    let n = bytes.withUnsafeBytes { raw in write(fd, raw.baseAddress.map { $0 + written }, raw.count - written) }
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw ioError("write failed at byte \(total + written)", path)
                    }
                    written += n
                }
                total += written
            }
            guard fsync(fd) == 0 else { throw ioError("fsync failed", path) }
            closed = true
            guard close(fd) == 0 else { throw ioError("close failed", path) }
            guard rename(temp, path) == 0 else { throw ioError("cannot rename \(temp) into place", path) }
        } catch {
            if !closed { close(fd) }
            unlink(temp)
            throw error
        }
        // Best effort: make the rename itself durable.
        let directoryFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_CLOEXEC)
        if directoryFD >= 0 {
            fsync(directoryFD)
            close(directoryFD)
        }
    }

    /// `path: what: strerror(errno)`.
    private static func ioError(_ what: String, _ path: String) -> CoreError {
        CoreError(.io, "\(path): \(what): \(String(cString: strerror(errno)))")
    }

    /// At most this many bytes come out of a gzip file (a small file can
    /// inflate without bound).
    static let maxDecompressedBytes = 1 << 33

    /// Inflates one or more concatenated gzip members, at most `limit` bytes.
    static func gunzip(_ input: [UInt8], path: String, limit: Int = maxDecompressedBytes) throws -> [UInt8] {
        var output = [UInt8]()
        output.reserveCapacity(min(input.count * 4, limit))
        var offered = 0
        try inflate(
            path: path, limit: limit,
            read: { buffer in
                let n = min(buffer.count, input.count - offered)
                input.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + offered, byteCount: n) }
                offered += n
                return n
            },
            write: { output.append(contentsOf: $0) })
        return output
    }

    /// Inflates the gzip stream that `read` supplies (filling its buffer,
    /// 0 at the end), one or more concatenated members, handing the output
    /// to `write` a piece at a time: at most `limit` bytes in all.
    static func inflate(
        path: String, limit: Int = maxDecompressedBytes, read: (UnsafeMutableRawBufferPointer) throws -> Int,
        write: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        var stream = z_stream()
        guard inflateInit2_(&stream, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw CoreError(.io, "\(path): cannot start gzip decompression")
        }
        defer { inflateEnd(&stream) }
        let chunk = 1 << 20
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer {
            input.deallocate()
            output.deallocate()
        }
        var start = 0
        var available = 0
        var atEnd = false
        var memberEnded = false
        var consumed = 0
        var produced = 0
        while true {
            if available == 0, !atEnd {
                start = 0
                available = try read(input)
                atEnd = available == 0
            }
            if available == 0 {
                if memberEnded { return }
                throw CoreError(.malformedData, "\(path): gzip data is truncated (file ends at compressed byte offset \(consumed))")
            }
            if memberEnded {
                guard input[start] == 0x1F, available < 2 || input[start + 1] == 0x8B else {
                    throw CoreError(.malformedData, "\(path): unexpected bytes after the gzip data at compressed byte offset \(consumed)")
                }
                inflateReset(&stream)
                memberEnded = false
            }
            stream.next_in = input.baseAddress!.assumingMemoryBound(to: UInt8.self) + start
            stream.avail_in = uInt(available)
            stream.next_out = output.baseAddress!.assumingMemoryBound(to: UInt8.self)
            stream.avail_out = uInt(chunk)
            let status = CZlib.inflate(&stream, Z_NO_FLUSH)
            let used = available - Int(stream.avail_in)
            start += used
            available -= used
            consumed += used
            let made = chunk - Int(stream.avail_out)
            if made > 0 {
                produced += made
                guard produced <= limit else {
                    throw CoreError(.malformedData, "\(path): inflates to more than \(limit) bytes (FileIO.maxDecompressedBytes)")
                }
                try write(UnsafeRawBufferPointer(rebasing: output[0..<made]))
            }
            switch status {
            case Z_STREAM_END: memberEnded = true
            case Z_OK, Z_BUF_ERROR: continue  // more input is needed, or more room was
            default:
                let reason = stream.msg.map { String(cString: $0) } ?? "error \(status)"
                throw CoreError(.malformedData, "\(path): corrupt gzip data near compressed byte offset \(consumed): \(reason)")
            }
        }
    }
}
