/// A labelled classification data set held in memory: a dense, row-major
/// float32 feature matrix and one class index per row.
public struct Dataset: Sendable {
    /// Row-major features, `rows × columns`.
    public var features: [Float]
    /// Class index of each row, in `0..<classCount`.
    public var labels: [Int32]
    public var columns: Int
    /// The original label of each class, in class-index order (for example
    /// `["-1", "1"]` for a LIBSVM file with labels -1 and +1).
    public var classNames: [String]

    public var rows: Int { labels.count }
    public var classCount: Int { classNames.count }

    public init(features: [Float], labels: [Int32], columns: Int, classNames: [String]) throws {
        guard columns > 0 else { throw CoreError(.shapeMismatch, "a data set needs at least one feature column") }
        guard features.count == labels.count * columns else {
            throw CoreError(.shapeMismatch, "\(features.count) feature values do not fill \(labels.count) rows of \(columns) columns")
        }
        if let bad = labels.firstIndex(where: { $0 < 0 || Int($0) >= classNames.count }) {
            throw CoreError(.invalidArgument, "row \(bad) has class index \(labels[bad]) outside 0..<\(classNames.count)")
        }
        self.init(validated: features, labels: labels, columns: columns, classNames: classNames)
    }

    /// For callers that built the parts from an already valid data set.
    init(validated features: [Float], labels: [Int32], columns: Int, classNames: [String]) {
        self.features = features
        self.labels = labels
        self.columns = columns
        self.classNames = classNames
    }

    /// The rows at `indices`, in that order.
    public func subset(_ indices: some Collection<Int>) -> Dataset {
        var f = [Float]()
        f.reserveCapacity(indices.count * columns)
        var l = [Int32]()
        l.reserveCapacity(indices.count)
        for i in indices {
            f.append(contentsOf: features[(i * columns)..<((i + 1) * columns)])
            l.append(labels[i])
        }
        return Dataset(validated: f, labels: l, columns: columns, classNames: classNames)
    }
}
