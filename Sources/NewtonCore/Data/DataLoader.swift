#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The file formats newtonps reads. Any of them may be gzip-compressed.
public enum DataFormat: String, Sendable, CaseIterable {
    /// MNIST-style binary IDX: an images file and a labels file.
    case idx
    /// LIBSVM sparse text: `label index:value ...`.
    case libsvm
    /// Comma-separated (or other separator) text with one label column.
    case csv
    /// NumPy `.npy`: a 2-D array of numbers with one label column.
    case npy
}

/// Which part of a data set a path stands for, where that matters (IDX directories).
public enum DataSplit: String, Sendable, CaseIterable {
    case train, test

    /// The file name prefix of this split in MNIST-style directories.
    public var idxPrefix: String {
        switch self {
        case .train: "train"
        case .test: "t10k"
        }
    }
}

/// Where a data set is and how to read it.
public struct DataSource: Sendable, Equatable {
    /// How the file(s) are written.
    public var format: DataFormat
    /// The data file; for `.idx` the images file.
    public var path: String
    /// For `.idx`, the labels file; nil finds it by replacing `images-idx3` with
    /// `labels-idx1` in the images file's name.
    public var labelsPath: String?
    /// How to read `.csv` files (and, for `.npy`, the label column).
    public var csv: CSVOptions

    public init(format: DataFormat, path: String, labelsPath: String? = nil, csv: CSVOptions = CSVOptions()) {
        self.format = format
        self.path = path
        self.labelsPath = labelsPath
        self.csv = csv
    }

    /// An IDX images file and its labels file.
    public static func idx(images: String, labels: String) -> DataSource {
        DataSource(format: .idx, path: images, labelsPath: labels)
    }

    /// The IDX files of `split` in an MNIST-style directory:
    /// `<prefix>-images-idx3-ubyte.gz` (or without `.gz`) and the matching labels
    /// file, where the prefix is `train` or `t10k`.
    public static func idx(directory: String, split: DataSplit) throws -> DataSource {
        func find(_ kind: String) throws -> String {
            let base = joined(directory, "\(split.idxPrefix)-\(kind)-ubyte")
            if let found = [base + ".gz", base].first(where: isFile) { return found }
            throw CoreError(.io, "\(directory) has neither \(base).gz nor \(base)")
        }
        return idx(images: try find("images-idx3"), labels: try find("labels-idx1"))
    }

    /// A LIBSVM file.
    public static func libsvm(_ path: String) -> DataSource {
        DataSource(format: .libsvm, path: path)
    }

    /// A CSV file.
    public static func csv(_ path: String, options: CSVOptions = CSVOptions()) -> DataSource {
        DataSource(format: .csv, path: path, csv: options)
    }

    /// The source a command-line path names. For `.idx` the path is either a
    /// directory (whose `train-*` or `t10k-*` files are used, by `split`) or an
    /// images file whose labels file is found by its name. For `.libsvm` and
    /// `.csv` it is the file itself.
    public static func resolve(path: String, format: DataFormat, split: DataSplit, csv: CSVOptions = CSVOptions()) throws -> DataSource {
        guard exists(path) else { throw CoreError(.io, "\(path) does not exist") }
        switch format {
        case .idx:
            if isDirectory(path) { return try idx(directory: path, split: split) }
            return idx(images: path, labels: try labelsPath(forImages: path))
        case .libsvm, .csv, .npy:
            guard !isDirectory(path) else {
                throw CoreError(.invalidArgument, "\(path) is a directory, but \(format.rawValue) data is one file")
            }
            return DataSource(format: format, path: path, csv: csv)
        }
    }

    /// The labels file next to an IDX images file: its name with `images-idx3`
    /// replaced by `labels-idx1`, with or without `.gz`.
    static func labelsPath(forImages images: String) throws -> String {
        let slash = images.lastIndex(of: "/").map { images.index(after: $0) } ?? images.startIndex
        var name = String(images[slash...])
        guard let range = name.firstRange(of: "images-idx3") else {
            throw CoreError(
                .invalidArgument,
                "cannot find the labels file for \(images): its name does not contain 'images-idx3' (give the directory instead, or both files)"
            )
        }
        name.replaceSubrange(range, with: "labels-idx1")
        let labels = String(images[..<slash]) + name
        let alternative = labels.hasSuffix(".gz") ? String(labels.dropLast(3)) : labels + ".gz"
        if let found = [labels, alternative].first(where: isFile) { return found }
        throw CoreError(.io, "cannot find the labels file for \(images): neither \(labels) nor \(alternative) exists")
    }

    private static func joined(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    private static func exists(_ path: String) -> Bool { FileIO.fileType(path) != nil }
    private static func isFile(_ path: String) -> Bool { FileIO.fileType(path).map { $0 != S_IFDIR } ?? false }
    private static func isDirectory(_ path: String) -> Bool { FileIO.isDirectory(path) }
}

/// Loads data sets, checking that test data matches its training data.
public enum DataLoader {
    /// Loads a training set (class mapping and column count come from it).
    public static func loadTraining(_ source: DataSource) throws -> Dataset {
        try load(source, matching: nil)
    }

    /// Loads a test/validation set that must match `training` (columns, classes):
    /// a label the training set lacks or a different column count is an error;
    /// LIBSVM rows are padded with zeros to the training set's columns.
    public static func loadTest(_ source: DataSource, matching training: Dataset) throws -> Dataset {
        try load(source, matching: TrainingSchema(training))
    }

    private static func load(_ source: DataSource, matching schema: TrainingSchema?) throws -> Dataset {
        switch source.format {
        case .idx:
            let labels = try source.labelsPath ?? DataSource.labelsPath(forImages: source.path)
            return try IDXReader.read(images: source.path, labels: labels, matching: schema)
        case .libsvm:
            return try LIBSVMReader.read(source.path, matching: schema)
        case .csv:
            return try CSVReader.read(source.path, options: source.csv, matching: schema)
        case .npy:
            return try NPYReader.read(source.path, labelColumn: source.csv.labelColumn, matching: schema)
        }
    }
}
