/// Reads the IDX format of MNIST and Fashion-MNIST: a magic number `00 00 TT NN`
/// (TT the element type, NN the number of dimensions), NN big-endian 32-bit
/// dimension sizes, then the elements, big-endian, row-major. Files may be
/// gzip-compressed.
enum IDXReader {
    /// Element types, by their type byte.
    enum ElementType: UInt8 {
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

    /// One decoded IDX file.
    struct Tensor<Element> {
        var dimensions: [Int]
        var values: [Element]
        /// Byte offset of the first element in the (decompressed) file.
        var dataOffset: Int
        var elementSize: Int
    }

    /// Reads an images file and a labels file as one data set. Images are
    /// flattened: each row has the product of the dimensions after the first.
    static func read(images imagesPath: String, labels labelsPath: String, matching schema: TrainingSchema?) throws -> Dataset {
        let images: Tensor<Float> = try read(imagesPath)
        let labels: Tensor<Double> = try read(labelsPath)
        let rows = images.dimensions[0]
        let columns = images.dimensions.dropFirst().reduce(1, *)
        guard columns > 0 else {
            throw CoreError(.shapeMismatch, "\(imagesPath): images have shape \(shape(images.dimensions)), which has no feature columns")
        }
        guard labels.dimensions.dropFirst().allSatisfy({ $0 == 1 }) else {
            throw CoreError(.shapeMismatch, "\(labelsPath): labels have shape \(shape(labels.dimensions)); expected one label per row")
        }
        guard labels.dimensions[0] == rows else {
            throw CoreError(.shapeMismatch, "\(labelsPath) has \(labels.dimensions[0]) labels but \(imagesPath) has \(rows) images")
        }
        guard rows > 0 else { throw CoreError(.malformedData, "\(imagesPath) holds no images") }
        if let schema, schema.columns != columns {
            throw CoreError(
                .shapeMismatch, "\(imagesPath): images have \(columns) values each but the training set has \(schema.columns) columns")
        }
        var table = LabelTable()
        for (row, value) in labels.values.enumerated() {
            table.append(LabelTable.canonicalName(value), at: row)
        }
        let (names, classes) = try table.classes(matching: schema) { row in
            "\(labelsPath): label \(row) at byte offset \(labels.dataOffset + row * labels.elementSize)"
        }
        return Dataset(validated: images.values, labels: classes, columns: columns, classNames: names)
    }

    /// Reads and decodes one IDX file, converting its elements to `T`.
    static func read<T: BinaryFloatingPoint>(_ path: String) throws -> Tensor<T> {
        let bytes = try FileIO.readAll(path)
        func malformed(_ offset: Int, _ what: String) -> CoreError {
            CoreError(.malformedData, "\(path): byte offset \(offset): \(what)")
        }
        guard bytes.count >= 4 else { throw malformed(bytes.count, "file ends inside the 4-byte IDX magic number") }
        let magic = bytes[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let hex = String(magic, radix: 16)
        let magicText = "0x" + String(repeating: "0", count: 8 - hex.count) + hex
        guard bytes[0] == 0, bytes[1] == 0, let type = ElementType(rawValue: bytes[2]), bytes[3] > 0 else {
            throw malformed(0, "bad IDX magic number \(magicText) (expected 0x000008NN..0x00000ENN with NN ≥ 1 dimensions)")
        }
        let rank = Int(bytes[3])
        let dataOffset = 4 + 4 * rank
        guard bytes.count >= dataOffset else { throw malformed(bytes.count, "file ends inside the header of \(rank) dimension sizes") }
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
        guard bytes.count >= expected else {
            throw malformed(
                bytes.count,
                "file is truncated: the header declares shape \(shape(dimensions)) of \(type) (\(expected) bytes in all) but the file has \(bytes.count) bytes"
            )
        }
        guard bytes.count == expected else {
            throw malformed(expected, "\(bytes.count - expected) unexpected bytes after the \(shape(dimensions)) elements")
        }
        let values: [T] = bytes.withUnsafeBytes { decode(UnsafeRawBufferPointer(rebasing: $0[dataOffset...]), type, count) }
        if type == .float32 || type == .float64, let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw CoreError(.nonFinite, "\(path): byte offset \(dataOffset + bad * type.size): element \(bad) is not a finite number")
        }
        return Tensor(dimensions: dimensions, values: values, dataOffset: dataOffset, elementSize: type.size)
    }

    private static func shape(_ dimensions: [Int]) -> String {
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
