/// How features are rescaled before training. The raw values are the
/// command-line spellings.
public enum FeatureScaling: String, Sendable, CaseIterable, Codable {
    /// Features are used as read ("none").
    case none = "none"
    /// Each feature is mapped by (x − min) / (max − min) of the training set, so
    /// training values lie in [0, 1] ("unit").
    case unitRange = "unit"
    /// Each feature is mapped by (x − mean) / std of the training set
    /// (population standard deviation) ("standard").
    case standardize = "standard"
}

/// A per-feature affine map `x' = (x − offset) · factor` fitted on a training
/// set and then applied unchanged to it and to test data. Features that are
/// constant in the training set get factor 0, so they map to 0.
public struct FeatureScaler: Sendable, Hashable, Codable {
    /// The scaling this scaler was fitted for.
    public let scaling: FeatureScaling
    /// Per feature, the value that maps to 0 (training minimum or mean).
    public let offsets: [Float]
    /// Per feature, what a difference from the offset is multiplied by.
    public let factors: [Float]

    /// A scaler from stored parts (as saved with a model); `apply` checks the
    /// counts against the data.
    public init(scaling: FeatureScaling, offsets: [Float], factors: [Float]) {
        self.scaling = scaling
        self.offsets = offsets
        self.factors = factors
    }

    /// Fits `scaling` to the columns of `data`.
    public static func fit(_ scaling: FeatureScaling, on data: Dataset) throws -> FeatureScaler {
        var statistics = ColumnStatistics()
        statistics.add(data.features, columns: data.columns)
        if scaling == .standardize { statistics.addDeviations(data.features, columns: data.columns) }
        return try fit(scaling, statistics: statistics)
    }

    /// Fits `scaling` to statistics of the training rows (for `.standardize`
    /// with their squared deviations added).
    public static func fit(_ scaling: FeatureScaling, statistics: ColumnStatistics) throws -> FeatureScaler {
        guard scaling == .none || statistics.rows > 0 else {
            throw CoreError(.invalidArgument, "cannot fit \(scaling.rawValue) feature scaling on an empty data set")
        }
        let minima = statistics.minima
        let maxima = statistics.maxima
        let columns = minima.count
        switch scaling {
        case .none:
            return FeatureScaler(
                scaling: scaling, offsets: Array(repeating: 0, count: columns), factors: Array(repeating: 1, count: columns))
        case .unitRange:
            let factors = zip(minima, maxima).map { low, high in low == high ? 0 : Float(1 / (Double(high) - Double(low))) }
            return FeatureScaler(scaling: scaling, offsets: minima, factors: factors)
        case .standardize:
            guard let squares = statistics.squaredDeviations else {
                throw CoreError(.invalidArgument, "standard feature scaling needs the squared deviations of the training rows")
            }
            let factors = (0..<columns).map { j in
                minima[j] == maxima[j] ? 0 : Float(1 / (squares[j] / Double(statistics.rows)).squareRoot())
            }
            return FeatureScaler(scaling: scaling, offsets: statistics.means.map { Float($0) }, factors: factors)
        }
    }

    /// Rescales the features of `data` in place; `data` must have the columns
    /// this scaler was fitted on.
    public func apply(to data: inout Dataset) throws {
        guard data.columns == offsets.count, factors.count == offsets.count else {
            throw CoreError(.shapeMismatch, "feature scaler fitted on \(offsets.count) columns cannot scale data with \(data.columns)")
        }
        guard scaling != .none else { return }
        let columns = data.columns
        let rows = data.rows
        offsets.withUnsafeBufferPointer { offset in
            factors.withUnsafeBufferPointer { factor in
                data.features.withUnsafeMutableBufferPointer { x in
                    for row in 0..<rows {
                        let base = row * columns
                        for j in 0..<columns { x[base + j] = (x[base + j] - offset[j]) * factor[j] }
                    }
                }
            }
        }
    }
}

/// Per-column statistics of training rows, accumulated row by row in file
/// order: the same numbers whether the rows came in one piece or block by
/// block. Rows may widen (LIBSVM): earlier rows count as 0 in new columns.
public struct ColumnStatistics: Sendable, Codable, Equatable {
    public private(set) var rows = 0
    public private(set) var minima: [Float] = []
    public private(set) var maxima: [Float] = []
    public private(set) var sums: [Double] = []
    /// Σ (x − mean)² per column, once `addDeviations` has seen every row.
    public private(set) var squaredDeviations: [Double]?

    public init() {}

    public var means: [Double] { sums.map { $0 / Double(rows) } }

    /// Adds rows of `columns` features, in order.
    public mutating func add(_ features: [Float], columns: Int) {
        if columns > minima.count {
            let earlier: Float? = rows > 0 ? 0 : nil
            let added = columns - minima.count
            minima += repeatElement(earlier ?? .infinity, count: added)
            maxima += repeatElement(earlier ?? -.infinity, count: added)
            sums += repeatElement(0, count: added)
        }
        let count = columns == 0 ? 0 : features.count / columns
        if count > 0 {  // narrower rows are 0 in the columns they lack
            for j in columns..<minima.count {
                minima[j] = min(minima[j], 0)
                maxima[j] = max(maxima[j], 0)
            }
        }
        features.withUnsafeBufferPointer { x in
            for row in 0..<count {
                let base = row * columns
                for j in 0..<columns {
                    let v = x[base + j]
                    minima[j] = min(minima[j], v)
                    maxima[j] = max(maxima[j], v)
                    sums[j] += Double(v)
                }
            }
        }
        rows += count
    }

    /// Adds the squared deviations from the means of rows already added,
    /// seen again in the same order with every column.
    public mutating func addDeviations(_ features: [Float], columns: Int) {
        let means = self.means
        var squares = squaredDeviations ?? [Double](repeating: 0, count: means.count)
        features.withUnsafeBufferPointer { x in
            for row in 0..<(columns == 0 ? 0 : features.count / columns) {
                let base = row * columns
                for j in 0..<columns {
                    let d = Double(x[base + j]) - means[j]
                    squares[j] += d * d
                }
            }
        }
        squaredDeviations = squares
    }
}
