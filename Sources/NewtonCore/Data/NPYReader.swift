/// Reads NumPy's `.npy` format: the magic `\x93NUMPY`, a version, a header
/// that is a Python dict literal (`{'descr': '<f4', 'fortran_order': False,
/// 'shape': (1000, 785), }`), then the elements in C order. newtonps reads
/// a two-dimensional array of numbers, one row per example, with the label
/// in one column (`labelColumn`, like CSV: 0 is the first, -1 the last):
/// `np.save("train.npy", np.column_stack([y, X]))`. Files may be
/// gzip-compressed. Rows lie at fixed offsets, so blocks are found by arithmetic.
enum NPYReader {
    /// How one element is stored: 'b' (bool), 'i', 'u' or 'f', its size and byte order.
    struct ElementType: Codable, Equatable {
        var kind: UInt8
        var size: Int
        var bigEndian: Bool
    }

    /// What an `.npy` header says, with the label column resolved.
    struct Header: Codable, Equatable {
        var type: ElementType
        var rows: Int
        /// Values per row, the label's included.
        var width: Int
        var dataOffset: Int
        var labelColumn: Int

        /// At most this many header bytes are read.
        static let maxBytes = 1 << 20

        var rowBytes: Int { width * type.size }
        var columns: Int { width - 1 }
    }

    /// Reads the whole file as a data set.
    static func read(_ path: String, labelColumn: Int, matching schema: TrainingSchema?) throws -> Dataset {
        let bytes = try FileIO.readAll(path)
        let header = try header(of: bytes, fileBytes: bytes.count, labelColumn: labelColumn, path: path, matching: schema)
        let raw = try rows(0..<header.rows, header, Array(bytes[header.dataOffset...]), path: path)
        return try raw.dataset(matching: schema, describe: labelLocation(header, path))
    }

    /// Where the label of `row` is, for error messages.
    static func labelLocation(_ header: Header, _ path: String) -> (Int) -> String {
        { row in
            "\(path): row \(row), label at byte offset \(header.dataOffset + row * header.rowBytes + header.labelColumn * header.type.size)"
        }
    }

    /// The header at the start of `prefix` (the first bytes of a file of
    /// `fileBytes` bytes), checked against the file's size and `schema`.
    static func header(of prefix: [UInt8], fileBytes: Int, labelColumn: Int, path: String, matching schema: TrainingSchema?) throws
        -> Header
    {
        func malformed(_ offset: Int, _ what: String) -> CoreError {
            CoreError(.malformedData, "\(path): byte offset \(offset): \(what)")
        }
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY
        guard prefix.count >= 10, Array(prefix[0..<6]) == magic else {
            throw malformed(0, "not a NumPy .npy file (it must start with \\x93NUMPY and a version)")
        }
        let major = prefix[6]
        guard (1...3).contains(major) else { throw malformed(6, "unknown .npy format version \(major).\(prefix[7])") }
        let lengthBytes = major == 1 ? 2 : 4
        let start = 8 + lengthBytes
        guard prefix.count >= start else { throw malformed(prefix.count, "file ends inside the header length") }
        let length = prefix[8..<start].reversed().reduce(0) { $0 << 8 | Int($1) }
        guard start + length <= prefix.count else {
            throw malformed(
                start,
                "the header claims \(length) bytes but the file has \(max(prefix.count - start, 0)) after it (at most \(Header.maxBytes) are read)"
            )
        }
        let text = String(decoding: prefix[start..<(start + length)], as: UTF8.self)
        let shown = String(text.reversed().drop(while: \.isWhitespace).reversed())
        func value(_ key: String) throws -> Substring {
            guard let keyRange = text.range(of: "'\(key)'"), let colon = text[keyRange.upperBound...].firstIndex(of: ":") else {
                throw malformed(start, "the header has no '\(key)': \(shown)")
            }
            return text[text.index(after: colon)...].drop(while: { $0 == " " })
        }
        let descrText = try value("descr")
        guard descrText.first == "'", let close = descrText.dropFirst().firstIndex(of: "'") else {
            throw malformed(start, "the header's 'descr' is not a simple type string (structured arrays are not read): \(shown)")
        }
        let descr = String(descrText[descrText.index(after: descrText.startIndex)..<close])
        let type =
            try elementType(descr)
            ?? { throw malformed(start, "element type '\(descr)' is not a number type newtonps reads (b1, i1–i8, u1–u8, f4, f8)") }()
        if try value("fortran_order").hasPrefix("True") {
            throw malformed(start, "the array is in Fortran order: save it with np.save(path, np.ascontiguousarray(a))")
        }
        let shapeText = try value("shape")
        guard shapeText.first == "(", let end = shapeText.firstIndex(of: ")") else {
            throw malformed(start, "the header's 'shape' is not a tuple")
        }
        let dimensions = shapeText[shapeText.index(after: shapeText.startIndex)..<end].split(separator: ",").map {
            Int($0.filter { $0 != " " })
        }
        guard dimensions.count == 2, let rows = dimensions[0], let width = dimensions[1], rows >= 0, width >= 0 else {
            throw malformed(
                start,
                "the array has shape \(shapeText[...end]); newtonps reads a 2-D array (rows, label and features), e.g. np.column_stack([y, X])"
            )
        }
        let resolved = labelColumn < 0 ? width + labelColumn : labelColumn
        guard width >= 2, (0..<width).contains(resolved) else {
            throw CoreError(
                .invalidArgument,
                "\(path): label column \(labelColumn) does not exist in rows of \(width) values (a row needs the label and at least one feature)"
            )
        }
        let dataOffset = start + length
        let (count, overflow) = rows.multipliedReportingOverflow(by: width * type.size)
        guard !overflow, dataOffset + count == fileBytes else {
            throw malformed(
                min(fileBytes, dataOffset + (overflow ? 0 : count)),
                overflow || dataOffset + count > fileBytes
                    ? "file is truncated: shape (\(rows), \(width)) of \(descr) needs \(dataOffset + (overflow ? 0 : count)) bytes in all but the file has \(fileBytes)"
                    : "\(fileBytes - dataOffset - count) unexpected bytes after the (\(rows), \(width)) elements")
        }
        guard rows > 0 else { throw CoreError(.malformedData, "\(path) holds no data rows") }
        if let schema, schema.columns != width - 1 {
            throw CoreError(.shapeMismatch, "\(path): rows have \(width - 1) features but the training set has \(schema.columns) columns")
        }
        return Header(type: type, rows: rows, width: width, dataOffset: dataOffset, labelColumn: resolved)
    }

    /// The element type a `descr` such as `<f4` or `|u1` names, or nil.
    static func elementType(_ descr: String) -> ElementType? {
        let bytes = Array(descr.utf8)
        guard bytes.count >= 3, let order = bytes.first, let size = Int(String(decoding: bytes[2...], as: UTF8.self)) else { return nil }
        let kind = bytes[1]
        let sizes: [UInt8: Set<Int>] = [0x62: [1], 0x69: [1, 2, 4, 8], 0x75: [1, 2, 4, 8], 0x66: [4, 8]]  // b i u f
        guard sizes[kind]?.contains(size) == true, [0x3C, 0x3E, 0x7C, 0x3D].contains(order) else { return nil }  // < > | =
        return ElementType(kind: kind, size: size, bigEndian: order == 0x3E)
    }

    /// Rows `range` from the bytes of exactly those rows.
    static func rows(_ range: Range<Int>, _ header: Header, _ bytes: [UInt8], path: String) throws -> RawRows {
        guard bytes.count == range.count * header.rowBytes else {
            throw CoreError(.malformedData, "\(path): \(bytes.count) bytes for rows \(range), expected \(range.count * header.rowBytes)")
        }
        let width = header.width
        var features = [Float]()
        features.reserveCapacity(range.count * header.columns)
        var table = LabelTable()
        try bytes.withUnsafeBytes { raw in
            for (r, row) in range.enumerated() {
                for column in 0..<width {
                    let element = r * width + column
                    let value = decode(raw, at: element, header.type)
                    guard value.isFinite else {
                        throw CoreError(
                            .nonFinite,
                            "\(path): byte offset \(header.dataOffset + (range.lowerBound * width + element) * header.type.size): row \(row), column \(column) is not a finite number"
                        )
                    }
                    if column == header.labelColumn {
                        table.append(LabelTable.canonicalName(value), at: row)
                    } else {
                        features.append(Float(value))
                    }
                }
            }
        }
        return RawRows(features: features, columns: header.columns, labels: table)
    }

    /// Element `i` as a Double.
    @inline(__always) private static func decode(_ raw: UnsafeRawBufferPointer, at i: Int, _ type: ElementType) -> Double {
        let offset = i * type.size
        func load<T: FixedWidthInteger>(_: T.Type) -> T {
            let v = raw.loadUnaligned(fromByteOffset: offset, as: T.self)
            return type.bigEndian ? T(bigEndian: v) : T(littleEndian: v)
        }
        switch (type.kind, type.size) {
        case (0x66, 4): return Double(Float(bitPattern: load(UInt32.self)))
        case (0x66, _): return Double(bitPattern: load(UInt64.self))
        case (0x69, 1): return Double(Int8(bitPattern: raw[offset]))
        case (0x69, 2): return Double(load(Int16.self))
        case (0x69, 4): return Double(load(Int32.self))
        case (0x69, _): return Double(load(Int64.self))
        case (_, 1): return Double(raw[offset])  // u1 and b1
        case (_, 2): return Double(load(UInt16.self))
        case (_, 4): return Double(load(UInt32.self))
        default: return Double(load(UInt64.self))
        }
    }
}
