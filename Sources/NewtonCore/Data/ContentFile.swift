import CZlib

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// What identifies one version of a file without reading it: its size and
/// modification time. A data index records it to notice a changed file.
public struct FileIdentity: Sendable, Codable, Hashable {
    public var bytes: Int
    public var modifiedNanoseconds: Int

    /// The identity of the file at `path` now.
    public init(path: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw CoreError(.io, "\(path): cannot stat: \(String(cString: strerror(errno)))")
        }
        bytes = Int(info.st_size)
        modifiedNanoseconds = Int(info.st_mtim.tv_sec) * 1_000_000_000 + Int(info.st_mtim.tv_nsec)
    }
}

/// A data file's content read by byte offset without holding it: the file
/// itself, or for a gzip file its content inflated once, a piece at a time,
/// into an unlinked scratch file (gzip cannot be read from the middle).
final class ContentFile: Sendable {
    let path: String
    /// Bytes of content (after inflating).
    let count: Int
    private let descriptor: Int32

    init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Self.ioError("cannot open", path) }
        var magic = [UInt8](repeating: 0, count: 2)
        let n = pread(fd, &magic, 2, 0)
        guard n == 2, magic == [0x1F, 0x8B] else {
            descriptor = fd
            count = Int(lseek(fd, 0, SEEK_END))
            return
        }
        defer { close(fd) }
        let directory = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(directory)/newtonps-inflated-XXXXXX".utf8CString)
        let scratch = mkstemp(&template)
        guard scratch >= 0 else { throw Self.ioError("cannot create a scratch file in \(directory) to inflate into", path) }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }  // unnamed: it goes when closed
        var written = 0
        do {
            try FileIO.inflate(
                path: path,
                read: { buffer in
                    while true {
                        let got = Glibc.read(fd, buffer.baseAddress, buffer.count)
                        if got >= 0 { return got }
                        if errno != EINTR { throw Self.ioError("read failed", path) }
                    }
                },
                write: { piece in
                    var done = 0
                    while done < piece.count {
                        let put = pwrite(scratch, piece.baseAddress! + done, piece.count - done, off_t(written + done))
                        if put < 0, errno == EINTR { continue }
                        guard put > 0 else { throw Self.ioError("cannot write the inflated content to a scratch file", path) }
                        done += put
                    }
                    written += piece.count
                })
        } catch {
            close(scratch)
            throw error
        }
        descriptor = scratch
        count = written
    }

    deinit { close(descriptor) }

    /// The content bytes in `range`.
    func bytes(in range: Range<Int>) throws -> [UInt8] {
        guard range.lowerBound >= 0, range.upperBound <= count else {
            throw CoreError(.malformedData, "\(path): bytes \(range) lie outside its \(count) bytes of content")
        }
        return try [UInt8](unsafeUninitializedCapacity: range.count) { buffer, initialized in
            var done = 0
            while done < range.count {
                let got = pread(descriptor, buffer.baseAddress! + done, range.count - done, off_t(range.lowerBound + done))
                if got < 0, errno == EINTR { continue }
                guard got > 0 else {
                    initialized = done
                    throw got == 0
                        ? CoreError(.malformedData, "\(path): ends at byte \(range.lowerBound + done), inside bytes \(range)")
                        : Self.ioError("read failed at byte \(range.lowerBound + done)", path)
                }
                done += got
            }
            initialized = done
        }
    }

    private static func ioError(_ what: String, _ path: String) -> CoreError {
        CoreError(.io, "\(path): \(what): \(String(cString: strerror(errno)))")
    }
}

extension ArraySlice<UInt8> {
    /// CRC-32 (zlib's) of these bytes, continuing from `crc`.
    func crc32(continuing crc: UInt32 = 0) -> UInt32 {
        isEmpty ? crc : withUnsafeBufferPointer { UInt32(CZlib.crc32(uLong(crc), $0.baseAddress, uInt($0.count))) }
    }
}

extension [UInt8] {
    /// CRC-32 (zlib's) of these bytes, continuing from `crc`.
    func crc32(continuing crc: UInt32 = 0) -> UInt32 { self[...].crc32(continuing: crc) }
}
