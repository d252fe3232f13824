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
public struct FeatureScaler: Sendable, Equatable, Codable {
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
        switch scaling {
        case .none:
            let columns = data.columns
            return FeatureScaler(
                scaling: scaling, offsets: Array(repeating: 0, count: columns), factors: Array(repeating: 1, count: columns))
        case .unitRange:
            let (minima, maxima, _) = try statistics(of: data, for: scaling)
            let factors = zip(minima, maxima).map { low, high in low == high ? 0 : Float(1 / (Double(high) - Double(low))) }
            return FeatureScaler(scaling: scaling, offsets: minima, factors: factors)
        case .standardize:
            let (minima, maxima, means) = try statistics(of: data, for: scaling)
            let columns = data.columns
            var squares = [Double](repeating: 0, count: columns)
            data.features.withUnsafeBufferPointer { x in
                for row in 0..<data.rows {
                    let base = row * columns
                    for j in 0..<columns {
                        let d = Double(x[base + j]) - means[j]
                        squares[j] += d * d
                    }
                }
            }
            let factors = (0..<columns).map { j in
                minima[j] == maxima[j] ? 0 : Float(1 / (squares[j] / Double(data.rows)).squareRoot())
            }
            return FeatureScaler(scaling: scaling, offsets: means.map { Float($0) }, factors: factors)
        }
    }

    /// Per-column minimum, maximum and mean (in Double).
    private static func statistics(of data: Dataset, for scaling: FeatureScaling) throws -> (
        minima: [Float], maxima: [Float], means: [Double]
    ) {
        guard data.rows > 0 else {
            throw CoreError(.invalidArgument, "cannot fit \(scaling.rawValue) feature scaling on an empty data set")
        }
        let columns = data.columns
        var minima = Array(data.features[0..<columns])
        var maxima = minima
        var sums = [Double](repeating: 0, count: columns)
        data.features.withUnsafeBufferPointer { x in
            for row in 0..<data.rows {
                let base = row * columns
                for j in 0..<columns {
                    let v = x[base + j]
                    minima[j] = min(minima[j], v)
                    maxima[j] = max(maxima[j], v)
                    sums[j] += Double(v)
                }
            }
        }
        return (minima, maxima, sums.map { $0 / Double(data.rows) })
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
