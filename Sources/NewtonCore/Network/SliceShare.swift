/// A block's share of a shard's Jacobian slices, as a worker hands it to
/// the block's owner: its columns of the slices as computed (in-process),
/// or those columns packed for the network.
public enum SliceShare: Sendable {
    /// Columns `columns` of `slices`, the worker's `rows × classes × fullWidth`
    /// values (row-major), shared rather than copied.
    case columns(of: [Float], classes: Int, fullWidth: Int, columns: Range<Int>)
    /// The same values without their all-zero columns.
    case packed(PackedSlice)

    /// This share packed: what travels over the network.
    public var packed: PackedSlice {
        switch self {
        case .packed(let packed): return packed
        case .columns(let slices, let classes, let fullWidth, let columns):
            return PackedSlice(packing: slices, classes: classes, fullWidth: fullWidth, columns: columns)
        }
    }

    /// Writes the `rows × classes × width` values into `out`, after checking
    /// that the share has exactly that shape.
    public func write(rows: Int, classes: Int, width: Int, into out: UnsafeMutableBufferPointer<Float>) throws {
        switch self {
        case .packed(let packed): try packed.unpack(rows: rows, classes: classes, width: width, into: out)
        case .columns(let slices, let sliceClasses, let fullWidth, let columns):
            guard sliceClasses == classes, columns.count == width, columns.lowerBound >= 0, columns.upperBound <= fullWidth,
                slices.count == rows * classes * fullWidth
            else {
                throw CoreError(
                    .shapeMismatch,
                    "Jacobian slice columns \(columns) of \(slices.count) values (\(sliceClasses) classes, \(fullWidth) wide) do not give \(rows) rows × \(classes) classes × \(width) columns"
                )
            }
            slices.withUnsafeBufferPointer { d in
                for r in 0..<(rows * classes) {
                    (out.baseAddress! + r * width).update(from: d.baseAddress! + r * fullWidth + columns.lowerBound, count: width)
                }
            }
        }
    }
}

/// A block's Jacobian slice rows without the columns that are zero for
/// every class: what a worker sends over the network.
///
/// A slice row `D_s` is `n_L × |J|`; its column `c` is `∂z^L/∂S^m_c`, which
/// a ReLU unit that is off for sample `s` makes zero for every class. About
/// half the columns of a ReLU layer are such, so packing roughly halves a
/// Jacobian push. A column is left out only when all its values are `+0.0`
/// bit for bit, so unpacking gives back exactly the slice that was packed.
/// The shape is not part of the packing: the receiving block supplies it
/// and `unpack` checks the packing against it.
public struct PackedSlice: Sendable, Equatable {
    /// Bit `s·width + c` (least significant bit of each byte first) is set
    /// when column `c` of sample `s` is sent; the bits after the last are 0.
    public let keptColumns: [UInt8]
    /// For each sample in turn, its `classes × kept` values, row-major.
    public let values: [Float]

    /// A packing received from elsewhere; `unpack` checks it.
    public init(keptColumns: [UInt8], values: [Float]) {
        self.keptColumns = keptColumns
        self.values = values
    }

    /// Packs columns `columns` of `slices`, `rows × classes × fullWidth` values row-major.
    init(packing slices: [Float], classes: Int, fullWidth: Int, columns: Range<Int>) {
        let rows = slices.count / max(classes * fullWidth, 1)
        precondition(slices.count == rows * classes * fullWidth, "packing \(slices.count) values as rows × \(classes) × \(fullWidth)")
        precondition(columns.lowerBound >= 0 && columns.upperBound <= fullWidth, "columns \(columns) of \(fullWidth)")
        let width = columns.count
        var kept = [UInt8](repeating: 0, count: Self.maskBytes(rows: rows, width: width))
        var keptCount = 0
        var bits = [UInt32](repeating: 0, count: width)
        // Two passes, so the values are allocated at their exact size.
        slices.withUnsafeBufferPointer { d in
            for s in 0..<rows {
                let sample = d.baseAddress! + s * classes * fullWidth + columns.lowerBound
                for c in 0..<width { bits[c] = 0 }
                for k in 0..<classes {
                    let row = sample + k * fullWidth
                    for c in 0..<width { bits[c] |= row[c].bitPattern }
                }
                for c in 0..<width where bits[c] != 0 {
                    let bit = s * width + c
                    kept[bit >> 3] |= 1 << UInt8(bit & 7)
                    keptCount += 1
                }
            }
        }
        let mask = Self(keptColumns: kept, values: [])
        let values = [Float](unsafeUninitializedCapacity: keptCount * classes) { out, initialized in
            slices.withUnsafeBufferPointer { d in
                var next = 0
                mask.forEachSample(rows: rows, width: width) { s, keptIndices in
                    let sample = d.baseAddress! + s * classes * fullWidth + columns.lowerBound
                    for k in 0..<classes {
                        let row = sample + k * fullWidth
                        for c in keptIndices {
                            (out.baseAddress! + next).initialize(to: row[c])
                            next += 1
                        }
                    }
                }
            }
            initialized = keptCount * classes
        }
        self.init(keptColumns: kept, values: values)
    }

    /// Writes the `rows × classes × width` slice into `out`, after checking
    /// that the packing is one of exactly that shape.
    public func unpack(rows: Int, classes: Int, width: Int, into out: UnsafeMutableBufferPointer<Float>) throws {
        precondition(out.count == rows * classes * width, "unpacking into \(out.count) values, not \(rows) × \(classes) × \(width)")
        let bitCount = rows * width
        guard keptColumns.count == Self.maskBytes(rows: rows, width: width) else {
            throw CoreError(
                .shapeMismatch,
                "packed Jacobian slice has \(keptColumns.count) bytes of kept columns; \(rows) rows × \(width) columns need \(Self.maskBytes(rows: rows, width: width))"
            )
        }
        if bitCount % 8 != 0, keptColumns[keptColumns.count - 1] >> UInt8(bitCount % 8) != 0 {
            throw CoreError(.shapeMismatch, "packed Jacobian slice marks columns past its \(rows) rows × \(width) columns")
        }
        let keptCount = keptColumns.reduce(0) { $0 + $1.nonzeroBitCount }
        guard values.count == keptCount * classes else {
            throw CoreError(
                .shapeMismatch,
                "packed Jacobian slice keeps \(keptCount) columns of \(classes) classes but carries \(values.count) values")
        }
        var next = 0
        values.withUnsafeBufferPointer { v in
            forEachSample(rows: rows, width: width) { s, keptIndices in
                let sample = out.baseAddress! + s * classes * width
                sample.update(repeating: 0, count: classes * width)
                for k in 0..<classes {
                    let row = sample + k * width
                    for c in keptIndices {
                        row[c] = v[next]
                        next += 1
                    }
                }
            }
        }
    }

    /// Calls `body` with each sample and the indices of its kept columns, in order.
    private func forEachSample(rows: Int, width: Int, _ body: (Int, [Int]) -> Void) {
        var keptIndices = [Int]()
        keptIndices.reserveCapacity(width)
        for s in 0..<rows {
            keptIndices.removeAll(keepingCapacity: true)
            for c in 0..<width {
                let bit = s * width + c
                if keptColumns[bit >> 3] & (1 << UInt8(bit & 7)) != 0 { keptIndices.append(c) }
            }
            body(s, keptIndices)
        }
    }

    private static func maskBytes(rows: Int, width: Int) -> Int { (rows * width + 7) / 8 }
}
