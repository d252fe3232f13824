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

    /// Replaces the file at `path` with `bytes` atomically: they go to a
    /// temporary file in the same directory, which is synced and renamed over
    /// `path`. On failure the temporary file is removed and `path` is untouched.
    static func writeAll(_ bytes: [UInt8], to path: String) throws {
        let directory = path.lastIndex(of: "/").map { String(path[...$0]) } ?? ""
        let temp = "\(directory).newtonps-\(getpid())-\(String(UInt64.random(in: .min ... .max), radix: 16)).tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ioError("cannot create temporary file \(temp)", path) }
        var closed = false
        do {
            var written = 0
            while written < bytes.count {
                let n = bytes.withUnsafeBytes { raw in write(fd, raw.baseAddress.map { $0 + written }, raw.count - written) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw ioError("write failed at byte \(written)", path)
                }
                written += n
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
        var stream = z_stream()
        guard inflateInit2_(&stream, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw CoreError(.io, "\(path): cannot start gzip decompression")
        }
        defer { inflateEnd(&stream) }

        // The gzip trailer stores the uncompressed size modulo 2^32: a good first
        // guess, capped by deflate's best possible ratio in case the file is corrupt.
        let trailerSize = input.suffix(4).reversed().reduce(0) { $0 << 8 | Int($1) }
        let guess = min(trailerSize, input.count * 1032)
        var output = [UInt8](repeating: 0, count: min(max(guess, input.count * 2, 1 << 16), limit))
        var produced = 0
        var consumed = 0

        try input.withUnsafeBytes { inputBytes in
            let base = inputBytes.bindMemory(to: UInt8.self).baseAddress!
            while true {
                if produced == output.count {
                    guard output.count < limit else {
                        throw CoreError(.malformedData, "\(path): inflates to more than \(limit) bytes (FileIO.maxDecompressedBytes)")
                    }
                    output.append(contentsOf: repeatElement(0, count: min(output.count, limit - output.count)))
                }
                let inChunk = min(input.count - consumed, Int(Int32.max))
                let outChunk = min(output.count - produced, Int(Int32.max))
                stream.next_in = UnsafeMutablePointer(mutating: base + consumed)
                stream.avail_in = uInt(inChunk)
                let status = output.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress! + produced
                    stream.avail_out = uInt(outChunk)
                    return inflate(&stream, Z_NO_FLUSH)
                }
                consumed += inChunk - Int(stream.avail_in)
                produced += outChunk - Int(stream.avail_out)
                switch status {
                case Z_STREAM_END:
                    if consumed == input.count { return }
                    guard input.count - consumed >= 2, input[consumed] == 0x1F, input[consumed + 1] == 0x8B else {
                        throw CoreError(
                            .malformedData, "\(path): unexpected bytes after the gzip data at compressed byte offset \(consumed)")
                    }
                    inflateReset(&stream)
                case Z_OK:
                    continue
                case Z_BUF_ERROR where consumed == input.count:
                    throw CoreError(.malformedData, "\(path): gzip data is truncated (file ends at compressed byte offset \(consumed))")
                case Z_BUF_ERROR:
                    continue  // output buffer was full; it grows above
                default:
                    let reason = stream.msg.map { String(cString: $0) } ?? "error \(status)"
                    throw CoreError(.malformedData, "\(path): corrupt gzip data near compressed byte offset \(consumed): \(reason)")
                }
            }
        }
        output.removeSubrange(produced...)
        return output
    }
}
