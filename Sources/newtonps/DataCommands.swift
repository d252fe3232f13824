import ArgumentParser
import NewtonCore

/// Formats the data commands write.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case libsvm, csv, npy

    var dataFormat: DataFormat {
        switch self {
        case .libsvm: .libsvm
        case .csv: .csv
        case .npy: .npy
        }
    }

    func write(_ data: Dataset, to path: String) throws {
        switch self {
        case .libsvm: try SyntheticData.writeLIBSVM(data, to: path)
        case .csv: try SyntheticData.writeCSV(data, to: path, header: true)
        case .npy: try SyntheticData.writeNPY(data, to: path)
        }
    }
}

/// `newtonps convert`: rewrite a data set (for example Fashion-MNIST's IDX
/// files) as LIBSVM or CSV text.
struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert", abstract: "Convert a data set to LIBSVM or CSV text or a NumPy .npy array (unscaled).")

    @Option(help: "The data: a file, or for idx a directory or images file.")
    var input: String
    @Option(help: "Input format: idx, libsvm, csv or npy.")
    var format: DataFormat = .idx
    @Option(help: "For an idx directory: which split to read (train or test).")
    var split: DataSplit = .train
    @Option(help: "Output format: libsvm, csv (with a header line) or npy (float32, label first).")
    var to: OutputFormat
    @Option(help: "Output file.")
    var output: String
    @Option(help: "Keep only the first N rows.")
    var rows: Int?

    func run() throws {
        var data = try DataLoader.loadTraining(DataSource.resolve(path: input, format: format, split: split))
        if let rows, rows < data.rows { data = data.subset(0..<max(rows, 0)) }
        try to.write(data, to: output)
        print("wrote \(data.rows) rows × \(data.columns) features, \(data.classCount) classes to \(output)")
    }
}

/// `newtonps synth`: write a synthetic classification problem (a small MLP
/// learns it; a linear model cannot) as LIBSVM or CSV text, a piece at a
/// time, so files larger than memory can be made.
struct SynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth", abstract: "Write a synthetic classification data set as LIBSVM, CSV or .npy, of any size.")

    @Option var rows = 2000
    @Option(help: "Rows of a separate test file (written to --test-output).")
    var testRows = 0
    @Option var features = 20
    @Option var classes = 4
    @Option var seed: UInt64 = 1
    @Option(name: [.customLong("to"), .customLong("format")], help: "Output format: libsvm, csv or npy.")
    var to: OutputFormat
    @Option(name: [.customLong("output"), .customLong("out")], help: "Training output file.")
    var output: String
    @Option(name: [.customLong("test-output"), .customLong("test-out")], help: "Test output file.")
    var testOutput: String?

    func validate() throws {
        guard rows > 0, features > 0, classes > 1, testRows >= 0 else {
            throw ValidationError("need rows > 0, features > 0, classes > 1 and test rows ≥ 0")
        }
        guard (testRows > 0) == (testOutput != nil) else {
            throw ValidationError("--test-rows and --test-output go together")
        }
    }

    func run() throws {
        var generator = SyntheticData.Generator(features: features, classes: classes, seed: seed)
        try generator.write(rows, as: to.dataFormat, to: output)
        print("wrote \(rows) rows to \(output)")
        if let testOutput {
            try generator.write(testRows, as: to.dataFormat, to: testOutput)
            print("wrote \(testRows) rows to \(testOutput)")
        }
    }
}

/// `newtonps data`: work on data files ahead of training.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data", abstract: "Work on data files ahead of training.", subcommands: [DataIndexCommand.self])
}

/// `newtonps data index`: index a data file in one streaming pass and store
/// the index beside it, where drivers and workers find it.
struct DataIndexCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "index",
        abstract: "Index a data file (row blocks, classes, column statistics) and store the index beside it; prints JSON.")

    @Argument(help: "The data: a file, or for idx a directory or images file.")
    var path: String
    @Option(help: "Format: idx, libsvm, csv or npy.")
    var format: DataFormat = .libsvm
    @Option(help: "For an idx directory: which split (train or test).")
    var split: DataSplit = .train
    @Option(help: "CSV, npy: the label's column (0 first, -1 last).")
    var labelColumn = 0
    @Option(help: "Rows per block: the unit workers read and cache.")
    var blockRows = DataIndex.defaultBlockRows
    @Option(help: "Where to store the index (default: beside the data, FILE.npsidx).")
    var out: String?

    func run() throws {
        let source = try DataSource.resolve(path: path, format: format, split: split, csv: CSVOptions(labelColumn: labelColumn))
        let start = ContinuousClock.now
        let index = try DataIndex.build(source, blockRows: blockRows)
        let elapsed = seconds(since: start)
        let stored = out ?? DataIndex.storedPath(for: source)
        try index.save(to: stored)
        let gigabytes = Double(index.contentBytes) / 1e9
        print(
            #"{"index":"\#(stored)","rows":\#(index.rows),"columns":\#(index.columns),"classes":\#(index.classNames.count),"blocks":\#(index.blocks.count),"content_bytes":\#(index.contentBytes),"seconds":\#(elapsed),"seconds_per_gb":\#(gigabytes > 0 ? elapsed / gigabytes : 0)}"#
        )
    }
}

extension DataSplit: ExpressibleByArgument {}
