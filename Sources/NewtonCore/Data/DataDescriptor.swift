/// Where a job's data comes from, in a form that can travel to another
/// process: file paths (every worker reads the same files) or the
/// parameters of the synthetic generator.
public struct DataDescriptor: Sendable, Hashable, Codable {
    public enum Source: Sendable, Hashable, Codable {
        /// Training (and optional test) files of one format. For IDX a path may
        /// be a directory or an images file.
        case files(format: DataFormat, train: String, test: String?, csvLabelColumn: Int, csvHeader: Bool?)
        /// `SyntheticData.classification`: one set of `trainRows + testRows`
        /// rows from the seed, the first `trainRows` for training.
        case synthetic(trainRows: Int, testRows: Int, features: Int, classes: Int, seed: UInt64)
    }

    public var source: Source
    /// Fitted on the training rows, applied to both sets.
    public var scaling: FeatureScaling

    public init(source: Source, scaling: FeatureScaling) {
        self.source = source
        self.scaling = scaling
    }

    /// The training and test files, or nil for synthetic data.
    public func sources() throws -> (train: DataSource, test: DataSource?)? {
        guard case .files(let format, let train, let test, let labelColumn, let header) = source else { return nil }
        let options = CSVOptions(labelColumn: labelColumn, hasHeader: header)
        return (
            try DataSource.resolve(path: train, format: format, split: .train, csv: options),
            try test.map { try DataSource.resolve(path: $0, format: format, split: .test, csv: options) }
        )
    }

    /// Reads (or generates) the training and test sets and scales them.
    public func load() throws -> TrainingData {
        var train: Dataset
        var test: Dataset?
        switch source {
        case .files(let format, let trainPath, let testPath, let labelColumn, let header):
            let options = CSVOptions(labelColumn: labelColumn, hasHeader: header)
            train = try DataLoader.loadTraining(DataSource.resolve(path: trainPath, format: format, split: .train, csv: options))
            if let testPath {
                test = try DataLoader.loadTest(
                    DataSource.resolve(path: testPath, format: format, split: .test, csv: options), matching: train)
            }
        case .synthetic(let trainRows, let testRows, let features, let classes, let seed):
            let all = SyntheticData.classification(rows: trainRows + testRows, features: features, classes: classes, seed: seed)
            train = all.subset(0..<trainRows)
            test = testRows > 0 ? all.subset(trainRows..<(trainRows + testRows)) : nil
        }
        let scaler = try FeatureScaler.fit(scaling, on: train)
        try scaler.apply(to: &train)
        if test != nil { try scaler.apply(to: &test!) }
        return TrainingData(train: train, test: test, scaler: scaler)
    }
}

extension DataDescriptor {
    /// At most this many synthetic rows (train + test).
    public static let maxSyntheticRows = 100_000_000
    /// At most this many synthetic classes.
    public static let maxSyntheticClasses = 100_000
    /// At most this many synthetic values (rows × features).
    public static let maxSyntheticValues = 1 << 30

    /// Every problem with synthetic-data parameters, each naming its cap;
    /// computed without overflow for any input.
    public static func syntheticProblems(trainRows: Int, testRows: Int, features: Int, classes: Int) -> [String] {
        var p = [String]()
        if trainRows < 1 { p.append("synthetic train_rows must be at least 1, got \(trainRows)") }
        if testRows < 0 { p.append("synthetic test_rows must be non-negative, got \(testRows)") }
        if features < 1 { p.append("synthetic features must be at least 1, got \(features)") }
        if classes < 2 { p.append("synthetic classes must be at least 2, got \(classes)") }
        if classes > maxSyntheticClasses { p.append("synthetic classes must be at most \(maxSyntheticClasses), got \(classes)") }
        let (rows, overflow) = trainRows.addingReportingOverflow(testRows)
        if overflow || rows > maxSyntheticRows {
            p.append("synthetic data must have at most \(maxSyntheticRows) rows (maxSyntheticRows)")
        } else if rows > 0, features > 0, rows.multipliedReportingOverflow(by: features).overflow || rows * features > maxSyntheticValues {
            p.append(
                "synthetic data of \(rows) rows × \(features) features is too large (at most \(maxSyntheticValues) values, maxSyntheticValues)"
            )
        }
        return p
    }
}

/// A job's training set and optional test set, already scaled, with the
/// scaler fitted on the training rows (a saved model carries it).
public struct TrainingData: Sendable {
    public var train: Dataset
    public var test: Dataset?
    public var scaler: FeatureScaler

    public init(train: Dataset, test: Dataset?, scaler: FeatureScaler) {
        self.train = train
        self.test = test
        self.scaler = scaler
    }
}

extension DataFormat: Codable {}
