import Foundation

/// The one directory a service reads job data from. Every data path a job
/// names — relative to the root, or absolute — must resolve, symbolic links
/// followed, to a regular file (or, for IDX, a directory of them) inside it;
/// anything else is refused before a byte is read, with an error that names
/// the path and the root but nothing of what lies outside.
public struct DataRoot: Sendable, Hashable {
    /// The root's real path.
    public let path: String

    /// - Throws: `.io` when `path` is not an existing directory.
    public init(_ path: String) throws {
        guard let real = Self.realPath(path), FileIO.isDirectory(real) else {
            throw CoreError(.io, "the data root \(path) is not an existing directory")
        }
        self.path = real
    }

    /// `path` as a real path inside the root.
    public func locate(_ path: String) throws -> String {
        let joined = path.hasPrefix("/") ? path : self.path + "/" + path
        // Checked before anything is looked up, so a path outside tells the
        // caller nothing about what exists there.
        guard contains(Self.normalized(joined)) else {
            throw CoreError(.invalidArgument, "data path '\(path)' is outside the data root \(self.path)")
        }
        guard let real = Self.realPath(joined) else {
            throw CoreError(.io, "data path '\(path)' does not exist under the data root \(self.path)")
        }
        guard contains(real) else {
            throw CoreError(.invalidArgument, "data path '\(path)' leads outside the data root \(self.path) (through a symbolic link)")
        }
        guard FileIO.isRegularFile(real) || FileIO.isDirectory(real) else {
            throw CoreError(.invalidArgument, "data path '\(path)' under the data root is neither a regular file nor a directory")
        }
        return real
    }

    /// The descriptor with every file path located inside the root; the
    /// files a path stands for (an IDX directory's images and labels) are
    /// checked too. Synthetic data passes unchanged.
    public func locate(_ descriptor: DataDescriptor) throws -> DataDescriptor {
        guard case .files(let format, let train, let test, let labelColumn, let header) = descriptor.source else { return descriptor }
        let options = CSVOptions(labelColumn: labelColumn, hasHeader: header)
        func located(_ path: String, _ split: DataSplit) throws -> String {
            let real = try locate(path)
            let source = try DataSource.resolve(path: real, format: format, split: split, csv: options)
            for file in [source.path, source.labelsPath].compactMap({ $0 }) {
                guard FileIO.isRegularFile(try locate(file)) else {
                    throw CoreError(.invalidArgument, "data file \(file) under the data root is not a regular file")
                }
            }
            return real
        }
        var result = descriptor
        result.source = .files(
            format: format, train: try located(train, .train), test: try test.map { try located($0, .test) }, csvLabelColumn: labelColumn,
            csvHeader: header)
        return result
    }

    private func contains(_ real: String) -> Bool {
        real == path || real.hasPrefix(path == "/" ? "/" : path + "/")
    }

    /// `path` with `.`, `..` and repeated slashes resolved lexically.
    static func normalized(_ path: String) -> String {
        var parts = [Substring]()
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".": continue
            case "..": _ = parts.popLast()
            default: parts.append(part)
            }
        }
        return "/" + parts.joined(separator: "/")
    }

    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
