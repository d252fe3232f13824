import Foundation

/// Where every block of `blockRows` rows of one data set lies in its files,
/// with its row and column counts, its classes and (for training data) the
/// column statistics scaling is fitted on: made in one streaming pass, so a
/// worker reads only the blocks of its own shards and nobody holds the
/// whole data set. Text formats are indexed by scanning; IDX by arithmetic.
///
/// The files' size and modification time are recorded and checked when the
/// data is opened, and every block carries a CRC-32 checked when it is read,
/// so a changed file is refused, never mixed with the old one.
public struct DataIndex: Sendable, Codable, Equatable {
    /// Rows `blockRows · i ..< blockRows · (i + 1)` of the data set.
    public struct Block: Sendable, Codable, Equatable {
        /// The block's bytes in each file (IDX: images, then labels).
        public var ranges: [Range<Int>]
        /// The line of the block's first row (text formats; 0 for IDX).
        public var firstLine: Int
        /// CRC-32 of the bytes of `ranges`, in order.
        public var checksum: UInt32
    }

    /// Bumped when the stored form changes; an index of another version is rebuilt.
    public static let currentVersion = 1
    /// Rows per block when nobody says.
    public static let defaultBlockRows = 4096
    /// The file name suffix of a stored index (`train.libsvm.npsidx`).
    public static let fileSuffix = ".npsidx"

    public private(set) var version = Self.currentVersion
    public private(set) var format: DataFormat
    /// The files read: the data file, or an IDX images and labels file.
    public private(set) var paths: [String]
    /// Size and modification time of each file when it was indexed.
    public private(set) var identities: [FileIdentity]
    /// CSV and NPY: the label's column as given; CSV: the separator byte.
    public private(set) var labelColumn: Int
    public private(set) var csvSeparator: UInt8
    public private(set) var rows: Int
    /// Feature columns (a test set: the training set's).
    public private(set) var columns: Int
    /// Class names (a test set: the training set's).
    public private(set) var classNames: [String]
    public private(set) var blockRows: Int
    public private(set) var blocks: [Block]
    /// Statistics of every column over every row; empty for a test set.
    public private(set) var statistics: ColumnStatistics
    /// IDX only: the images and labels headers.
    var idxHeaders: [IDXReader.Header]
    /// NPY only: the array's header.
    var npyHeader: NPYReader.Header?

    /// The rows of block `b`.
    public func rowRange(ofBlock b: Int) -> Range<Int> {
        (b * blockRows)..<min((b + 1) * blockRows, rows)
    }

    /// The blocks holding rows `range`.
    public func blocks(holding range: Range<Int>) -> Range<Int> {
        range.isEmpty ? 0..<0 : (range.lowerBound / blockRows)..<((range.upperBound - 1) / blockRows + 1)
    }

    /// Bytes of the files the blocks cover.
    public var contentBytes: Int { blocks.reduce(0) { $0 + $1.ranges.reduce(0) { $0 + $1.count } } }

    /// Whether this index was made from `source` as it is now.
    public func describes(_ source: DataSource) -> Bool {
        guard version == Self.currentVersion, format == source.format,
            paths == (try? Self.paths(of: source)), labelColumn == source.csv.labelColumn,
            csvSeparator == source.csv.separator.asciiValue ?? 0
        else { return false }
        return (try? paths.map(FileIdentity.init(path:))) == identities
    }

    // MARK: Building

    /// Indexes `source` in one streaming pass, parsing `chunkBytes` of text
    /// at a time. A test set is indexed against its training set's index
    /// (`training`), whose columns and classes it must fit.
    public static func build(
        _ source: DataSource, blockRows: Int = defaultBlockRows, chunkBytes: Int = defaultChunkBytes, matching training: DataIndex? = nil
    ) throws -> DataIndex {
        guard blockRows >= 1 else { throw CoreError(.invalidArgument, "an index needs at least 1 row per block, got \(blockRows)") }
        let paths = try Self.paths(of: source)
        let identities = try paths.map(FileIdentity.init(path:))
        let files = try paths.map(ContentFile.init(path:))
        let schema = training.map { TrainingSchema(columns: $0.columns, classNames: $0.classNames) }
        var index = DataIndex(
            format: source.format, paths: paths, identities: identities, labelColumn: source.csv.labelColumn,
            csvSeparator: source.csv.separator.asciiValue ?? 0, rows: 0, columns: 0, classNames: [], blockRows: blockRows, blocks: [],
            statistics: ColumnStatistics(), idxHeaders: [], npyHeader: nil)
        var labels = LabelTable()
        switch source.format {
        case .idx: try index.scanIDX(files, schema: schema, labels: &labels)
        case .npy: try index.scanNPY(files[0], schema: schema, labels: &labels)
        case .libsvm, .csv:
            try index.scanText(files[0], options: source.csv, schema: schema, chunkBytes: max(chunkBytes, 1), labels: &labels)
        }
        guard index.rows > 0 else { throw CoreError(.malformedData, "\(paths[0]) holds no data rows") }
        let location = index.labelLocation
        if source.format == .libsvm {
            guard index.columns > 0 else { throw CoreError(.malformedData, "\(paths[0]) has no feature values in any row") }
            try labels.requireNumeric(describe: location)
        }
        index.classNames = try labels.classes(matching: schema, describe: location).names
        return index
    }

    private static func paths(of source: DataSource) throws -> [String] {
        source.format == .idx ? [source.path, try source.labelsPath ?? DataSource.labelsPath(forImages: source.path)] : [source.path]
    }

    /// Bytes of text parsed at a time while indexing, when nobody says.
    public static let defaultChunkBytes = 8 << 20

    /// One pass over a LIBSVM or CSV file: parses whole lines a chunk at a
    /// time, starting a block at every `blockRows`-th row.
    private mutating func scanText(
        _ file: ContentFile, options: CSVOptions, schema: TrainingSchema?, chunkBytes: Int, labels: inout LabelTable
    ) throws {
        let path = file.path
        var offset = 0
        var line = 1
        var checksum: UInt32 = 0
        var blockStart: (offset: Int, line: Int)?
        columns = schema?.columns ?? 0
        while offset < file.count {
            var end = min(offset + chunkBytes, file.count)
            var bytes = try file.bytes(in: offset..<end)
            if end < file.count {
                // Whole lines only: stop after the last line break, reading on if a line is longer than a chunk.
                if let last = bytes.lastIndex(of: 0x0A) {
                    bytes.removeSubrange((last + 1)...)
                    end = offset + last + 1
                } else {
                    while end < file.count, !bytes.contains(0x0A) {
                        let more = try file.bytes(in: end..<min(end + chunkBytes, file.count))
                        if let cut = more.firstIndex(of: 0x0A) {
                            bytes += more[...cut]
                            end += cut + 1
                        } else {
                            bytes += more
                            end += more.count
                        }
                    }
                }
            }
            var chunkOptions = options
            if blockStart != nil || rows > 0 { chunkOptions.hasHeader = false }
            let parsed: RawRows =
                format == .libsvm
                ? try LIBSVMReader.parse(bytes, name: path, firstLine: line, matching: schema)
                : try CSVReader.parse(bytes, name: path, firstLine: line, options: chunkOptions, matching: schema)
            if format == .csv, parsed.count > 0, rows > 0, parsed.columns != columns {
                throw CoreError(
                    .malformedData,
                    "\(path):\(line): \(parsed.columns + 1) fields, but the rows above have \(columns + 1)")
            }
            if schema == nil { statistics.add(parsed.features, columns: parsed.columns) }
            columns = max(columns, parsed.columns)
            labels.addLabels(of: parsed.labels)
            // Block boundaries in this chunk, with their line numbers and checksums.
            var segment = 0
            var counted = (offset: 0, line: line)
            for (k, rowOffset) in parsed.lineOffsets.enumerated() where (rows + k) % blockRows == 0 {
                counted.line += bytes[counted.offset..<rowOffset].reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
                counted.offset = rowOffset
                if let start = blockStart {
                    checksum = bytes[segment..<rowOffset].crc32(continuing: checksum)
                    blocks.append(Block(ranges: [start.offset..<(offset + rowOffset)], firstLine: start.line, checksum: checksum))
                }
                blockStart = (offset + rowOffset, counted.line)
                segment = rowOffset
                checksum = 0
            }
            if blockStart != nil { checksum = bytes[segment...].crc32(continuing: checksum) }
            line = counted.line + bytes[counted.offset...].reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
            rows += parsed.count
            offset = end
        }
        if let start = blockStart {
            blocks.append(Block(ranges: [start.offset..<file.count], firstLine: start.line, checksum: checksum))
        }
    }

    /// IDX: the images and labels files, blocks by arithmetic.
    private mutating func scanIDX(_ files: [ContentFile], schema: TrainingSchema?, labels: inout LabelTable) throws {
        let headers = try files.map { file in
            try IDXReader.header(
                of: file.bytes(in: 0..<min(IDXReader.Header.maxBytes, file.count)), fileBytes: file.count, path: file.path)
        }
        try IDXReader.checkPair(
            images: headers[0], labels: headers[1], imagesPath: files[0].path, labelsPath: files[1].path, matching: schema)
        idxHeaders = headers
        try scanFixedRows(files, rows: headers[0].rows, columns: headers[0].rowElements, schema: schema, labels: &labels)
    }

    /// NPY: one file, blocks by arithmetic.
    private mutating func scanNPY(_ file: ContentFile, schema: TrainingSchema?, labels: inout LabelTable) throws {
        let header = try NPYReader.header(
            of: file.bytes(in: 0..<min(NPYReader.Header.maxBytes, file.count)), fileBytes: file.count, labelColumn: labelColumn,
            path: file.path, matching: schema)
        npyHeader = header
        try scanFixedRows([file], rows: header.rows, columns: header.columns, schema: schema, labels: &labels)
    }

    /// Formats whose rows lie at fixed offsets: one pass over the blocks for
    /// the labels, statistics and checksums.
    private mutating func scanFixedRows(
        _ files: [ContentFile], rows: Int, columns: Int, schema: TrainingSchema?, labels: inout LabelTable
    ) throws {
        self.rows = rows
        self.columns = columns
        for b in 0..<((rows + blockRows - 1) / blockRows) {
            let ranges = fixedRanges(rowRange(ofBlock: b))
            let bytes = try zip(files, ranges).map { try $0.bytes(in: $1) }
            let parsed = try rawRows(ofBlock: b, content: bytes)
            if schema == nil { statistics.add(parsed.features, columns: parsed.columns) }
            labels.addLabels(of: parsed.labels)
            blocks.append(Block(ranges: ranges, firstLine: 0, checksum: bytes.reduce(0) { $1.crc32(continuing: $0) }))
        }
    }

    /// Where rows `range` lie in each file of a fixed-layout format.
    private func fixedRanges(_ range: Range<Int>) -> [Range<Int>] {
        if let npy = npyHeader {
            return [(npy.dataOffset + range.lowerBound * npy.rowBytes)..<(npy.dataOffset + range.upperBound * npy.rowBytes)]
        }
        return idxHeaders.map { h in (h.dataOffset + range.lowerBound * h.rowBytes)..<(h.dataOffset + range.upperBound * h.rowBytes) }
    }

    /// Adds the squared deviations `.standardize` scaling needs: a second pass
    /// over every block.
    public mutating func addDeviations() throws {
        guard statistics.squaredDeviations == nil else { return }
        let reader = try DataIndex.Reader(self)
        for b in blocks.indices {
            let block = try reader.rows(ofBlock: b)
            statistics.addDeviations(block.features, columns: columns)
        }
    }

    // MARK: Storing

    /// Where the index of `source` is stored beside its data.
    public static func storedPath(for source: DataSource) -> String { source.path + fileSuffix }

    /// Writes the index as JSON, atomically.
    public func save(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try FileIO.writeAll(Array(try encoder.encode(self)), to: path)
    }

    /// The index stored at `path`.
    public static func load(from path: String) throws -> DataIndex {
        let bytes = try FileIO.readRaw(path)
        do { return try JSONDecoder().decode(DataIndex.self, from: Data(bytes)) } catch {
            throw CoreError(.malformedData, "\(path): not a data index: \(error)")
        }
    }
}

extension DataIndex {
    /// Reads blocks of an indexed data set: raw rows with the index's classes,
    /// each checked against the block's checksum and row count. Safe to use
    /// from several tasks at once.
    public final class Reader: Sendable {
        public let index: DataIndex
        private let files: [ContentFile]

        /// Opens the index's files, refusing them if they changed since indexing.
        public init(_ index: DataIndex) throws {
            for (path, identity) in zip(index.paths, index.identities) where try FileIdentity(path: path) != identity {
                throw CoreError(
                    .malformedData,
                    "\(path) changed since it was indexed (size or modification time differ): index it again (newtonps data index)")
            }
            self.index = index
            self.files = try index.paths.map(ContentFile.init(path:))
        }

        /// Block `b`'s bytes, one array per file, checked against its checksum.
        public func content(ofBlock b: Int) throws -> [[UInt8]] {
            let block = index.blocks[b]
            let bytes = try zip(files, block.ranges).map { try $0.bytes(in: $1) }
            try index.check(bytes, block: b)
            return bytes
        }

        /// Block `b`'s rows, unscaled.
        public func rows(ofBlock b: Int) throws -> Dataset {
            try index.rows(ofBlock: b, content: content(ofBlock: b))
        }
    }

    /// Refuses block content whose checksum differs from the index's.
    public func check(_ content: [[UInt8]], block b: Int) throws {
        let checksum = content.reduce(UInt32(0)) { $1.crc32(continuing: $0) }
        guard checksum == blocks[b].checksum else {
            throw CoreError(
                .malformedData,
                "\(paths[0]): rows \(rowRange(ofBlock: b)) (block \(b)) do not match the index (CRC-32 \(checksum), indexed \(blocks[b].checksum)): the file changed since it was indexed"
            )
        }
    }

    /// Parses block `b` from its bytes (one array per file).
    public func rows(ofBlock b: Int, content: [[UInt8]]) throws -> Dataset {
        let raw = try rawRows(ofBlock: b, content: content)
        let expected = rowRange(ofBlock: b).count
        guard raw.count == expected else {
            throw CoreError(
                .malformedData,
                "\(paths[0]): block \(b) holds \(raw.count) rows, the index says \(expected): the file changed since it was indexed")
        }
        return try raw.dataset(matching: TrainingSchema(columns: columns, classNames: classNames), describe: labelLocation)
    }

    /// Block `b`'s rows as the format's reader parses them.
    func rawRows(ofBlock b: Int, content: [[UInt8]]) throws -> RawRows {
        let range = rowRange(ofBlock: b)
        let schema = classNames.isEmpty ? nil : TrainingSchema(columns: columns, classNames: classNames)
        switch format {
        case .idx:
            return try IDXReader.rows(
                range, images: idxHeaders[0], content[0], labels: idxHeaders[1], content[1], imagesPath: paths[0], labelsPath: paths[1])
        case .npy:
            return try NPYReader.rows(range, npyHeader!, content[0], path: paths[0])
        case .libsvm:
            return try LIBSVMReader.parse(content[0], name: paths[0], firstLine: blocks[b].firstLine, matching: schema)
        case .csv:
            let options = CSVOptions(labelColumn: labelColumn, hasHeader: false, separator: Character(UnicodeScalar(csvSeparator)))
            return try CSVReader.parse(content[0], name: paths[0], firstLine: blocks[b].firstLine, options: options, matching: schema)
        }
    }

    /// Where row `row`'s label is, for error messages.
    var labelLocation: (Int) -> String {
        switch format {
        case .idx: return IDXReader.labelLocation(idxHeaders[1], paths[1])
        case .npy: return NPYReader.labelLocation(npyHeader!, paths[0])
        case .libsvm, .csv: return { [paths] in "\(paths[0]):\($0)" }
        }
    }
}

/// How workers reach a job's data files.
public enum DataAccess: String, Sendable, Codable, CaseIterable {
    /// Read from the files where the job names them (the path must be readable).
    case local
    /// Streamed from the driver, block by block (the files need not be visible).
    case stream
    /// Local where the files are readable and unchanged, else streamed.
    case auto
}

/// A job's indexed data files: the training set's index, the test set's
/// (indexed against the training set), the scaler fitted on the training
/// set's statistics, and how workers reach the files. The driver sends it
/// to every worker, so no worker indexes or loads the data set.
public struct IndexedData: Sendable, Codable, Equatable {
    public var train: DataIndex
    public var test: DataIndex?
    public var scaler: FeatureScaler
    public var access: DataAccess

    public init(train: DataIndex, test: DataIndex?, scaler: FeatureScaler, access: DataAccess) {
        self.train = train
        self.test = test
        self.scaler = scaler
        self.access = access
    }

    /// The index of `split`, or nil for a test split the job does not have.
    public func index(of split: DataSplit) -> DataIndex? { split == .train ? train : test }

    /// The JSON form that travels in a `WorkerJob`.
    public func encoded() throws -> [UInt8] { Array(try JSONEncoder().encode(self)) }

    /// Decodes `encoded()`'s form; `source` names where it came from.
    public init(encoded bytes: [UInt8], source: String) throws {
        do { self = try JSONDecoder().decode(IndexedData.self, from: Data(bytes)) } catch {
            throw CoreError(.malformedData, "\(source): not a data index: \(error)")
        }
    }
}
