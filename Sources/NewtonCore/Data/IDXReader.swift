/// Reads the IDX format of MNIST and Fashion-MNIST: a magic number `00 00 TT NN`
/// (TT the element type, NN the number of dimensions), NN big-endian 32-bit
/// dimension sizes, then the elements, big-endian, row-major. Files may be
/// gzip-compressed.
enum IDXReader {
    /// Element types, by their type byte.
    enum ElementType: UInt8, Codable {
        case uint8 = 0x08
        case int8 = 0x09
        case int16 = 0x0B
        case int32 = 0x0C
        case float32 = 0x0D
        case float64 = 0x0E

        var size: Int {
            switch self {
            case .uint8, .int8: 1
            case .int16: 2
            case .int32, .float32: 4
            case .float64: 8
            }
        }
    }

    /// What an IDX file's header says: the element type, the dimension sizes
    /// and where the elements start.
    struct Header: Codable, Equatable {
        var type: ElementType
        var dimensions: [Int]
        /// Byte offset of the first element in the (decompressed) file.
        var dataOffset: Int

        /// At most this many header bytes (255 dimensions).
        static let maxBytes = 4 + 4 * 255

        var rows: Int { dimensions[0] }
        /// Elements per row: the product of the dimensions after the first.
        var rowElements: Int { dimensions.dropFirst().reduce(1, *) }
        var rowBytes: Int { rowElements * type.size }
    }

    /// Reads an images file and a labels file as one data set. Images are
    /// flattened: each row has the product of the dimensions after the first.
    static func read(images imagesPath: String, labels labelsPath: String, matching schema: TrainingSchema?) throws -> Dataset {
        let imageBytes = try FileIO.readAll(imagesPath)
        let labelBytes = try FileIO.readAll(labelsPath)
        let images = try header(of: imageBytes, fileBytes: imageBytes.count, path: imagesPath)
        let labels = try header(of: labelBytes, fileBytes: labelBytes.count, path: labelsPath)
        try checkPair(images: images, labels: labels, imagesPath: imagesPath, labelsPath: labelsPath, matching: schema)
        let raw = try rows(
            0..<images.rows, images: images, Array(imageBytes[images.dataOffset...]), labels: labels,
            Array(labelBytes[labels.dataOffset...]), imagesPath: imagesPath, labelsPath: labelsPath)
        return try raw.dataset(matching: schema, describe: labelLocation(labels, labelsPath))
    }

    /// Checks that an images and a labels file make one data set (of the
    /// training set's columns, for `schema`).
    static func checkPair(images: Header, labels: Header, imagesPath: String, labelsPath: String, matching schema: TrainingSchema?)
        throws
    {
        guard images.rowElements > 0 else {
            throw CoreError(.shapeMismatch, "\(imagesPath): images have shape \(shape(images.dimensions)), which has no feature columns")
        }
        guard labels.rowElements == 1 else {
            throw CoreError(.shapeMismatch, "\(labelsPath): labels have shape \(shape(labels.dimensions)); expected one label per row")
        }
        guard labels.rows == images.rows else {
            throw CoreError(.shapeMismatch, "\(labelsPath) has \(labels.rows) labels but \(imagesPath) has \(images.rows) images")
        }
        guard images.rows > 0 else { throw CoreError(.malformedData, "\(imagesPath) holds no images") }
        if let schema, schema.columns != images.rowElements {
            throw CoreError(
                .shapeMismatch,
                "\(imagesPath): images have \(images.rowElements) values each but the training set has \(schema.columns) columns")
        }
    }

    /// Rows `range` from the bytes of exactly those rows' images and labels.
    static func rows(
        _ range: Range<Int>, images: Header, _ imageBytes: [UInt8], labels: Header, _ labelBytes: [UInt8], imagesPath: String,
        labelsPath: String
    ) throws -> RawRows {
        let features: [Float] = try decode(imageBytes, images, firstRow: range.lowerBound, rows: range.count, path: imagesPath)
        let values: [Double] = try decode(labelBytes, labels, firstRow: range.lowerBound, rows: range.count, path: labelsPath)
        var table = LabelTable()
        for (row, value) in zip(range, values) { table.append(LabelTable.canonicalName(value), at: row) }
        return RawRows(features: features, columns: images.rowElements, labels: table)
    }

    /// Where label `row` is, for error messages.
    static func labelLocation(_ labels: Header, _ path: String) -> (Int) -> String {
        { row in "\(path): label \(row) at byte offset \(labels.dataOffset + row * labels.type.size)" }
    }

    /// The header at the start of `prefix` (the first bytes of a file of
    /// `fileBytes` bytes in all), checked against the file's size.
    static func header(of prefix: [UInt8], fileBytes: Int, path: String) throws -> Header {
        let bytes = prefix
        func malformed(_ offset: Int, _ what: String) -> CoreError {
            CoreError(.malformedData, "\(path): byte offset \(offset): \(what)")
        }
        guard fileBytes >= 4, bytes.count >= 4 else { throw malformed(fileBytes, "file ends inside the 4-byte IDX magic number") }
        let magic = bytes[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let hex = String(magic, radix: 16)
        let magicText = "0x" + String(repeating: "0", count: 8 - hex.count) + hex
        guard bytes[0] == 0, bytes[1] == 0, let type = ElementType(rawValue: bytes[2]), bytes[3] > 0 else {
            throw malformed(0, "bad IDX magic number \(magicText) (expected 0x000008NN..0x00000ENN with NN ≥ 1 dimensions)")
        }
        let rank = Int(bytes[3])
        let dataOffset = 4 + 4 * rank
        guard fileBytes >= dataOffset, bytes.count >= dataOffset else {
            throw malformed(fileBytes, "file ends inside the header of \(rank) dimension sizes")
        }
        var dimensions = [Int]()
        var count = 1
        for d in 0..<rank {
            let size = bytes[(4 + 4 * d)..<(8 + 4 * d)].reduce(0) { $0 << 8 | Int($1) }
            let (product, overflow) = count.multipliedReportingOverflow(by: size)
            guard !overflow, product <= Int.max / 8 else {
                throw malformed(4 + 4 * d, "dimension sizes \(dimensions + [size]) are too large")
            }
            dimensions.append(size)
            count = product
        }
        let expected = dataOffset + count * type.size
        guard fileBytes >= expected else {
            throw malformed(
                fileBytes,
                "file is truncated: the header declares shape \(shape(dimensions)) of \(type) (\(expected) bytes in all) but the file has \(fileBytes) bytes"
            )
        }
        guard fileBytes == expected else {
            throw malformed(expected, "\(fileBytes - expected) unexpected bytes after the \(shape(dimensions)) elements")
        }
        return Header(type: type, dimensions: dimensions, dataOffset: dataOffset)
    }

    /// Decodes `rows` rows starting at row `firstRow` from their bytes,
    /// refusing non-finite floats by their place in the file.
    static func decode<T: BinaryFloatingPoint>(_ bytes: [UInt8], _ header: Header, firstRow: Int, rows: Int, path: String) throws -> [T] {
        let count = rows * header.rowElements
        guard bytes.count == count * header.type.size else {
            throw CoreError(
                .malformedData,
                "\(path): \(bytes.count) bytes for rows \(firstRow)..<\(firstRow + rows), expected \(count * header.type.size)")
        }
        let values: [T] = bytes.withUnsafeBytes { decode($0, header.type, count) }
        if header.type == .float32 || header.type == .float64, let bad = values.firstIndex(where: { !$0.isFinite }) {
            let element = firstRow * header.rowElements + bad
            throw CoreError(
                .nonFinite,
                "\(path): byte offset \(header.dataOffset + element * header.type.size): element \(element) is not a finite number")
        }
        return values
    }

    static func shape(_ dimensions: [Int]) -> String {
        dimensions.map(String.init).joined(separator: "×")
    }

    /// Converts `count` big-endian elements in tight loops, one per type.
    private static func decode<T: BinaryFloatingPoint>(_ raw: UnsafeRawBufferPointer, _ type: ElementType, _ count: Int) -> [T] {
        [T](unsafeUninitializedCapacity: count) { out, initialized in
            switch type {
            case .uint8:
                for i in 0..<count { out[i] = T(raw[i]) }
            case .int8:
                for i in 0..<count { out[i] = T(Int8(bitPattern: raw[i])) }
            case .int16:
                for i in 0..<count { out[i] = T(Int16(bigEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))) }
            case .int32:
                for i in 0..<count { out[i] = T(Int32(bigEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self))) }
            case .float32:
                for i in 0..<count {
                    out[i] = T(Float(bitPattern: UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))))
                }
            case .float64:
                for i in 0..<count {
                    out[i] = T(Double(bitPattern: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
                }
            }
            initialized = count
        }
    }
}
