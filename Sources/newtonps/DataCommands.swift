import ArgumentParser
import NewtonCore

/// Text formats the data commands write.
enum TextFormat: String, ExpressibleByArgument, CaseIterable {
    case libsvm, csv

    func write(_ data: Dataset, to path: String) throws {
        switch self {
        case .libsvm: try SyntheticData.writeLIBSVM(data, to: path)
        case .csv: try SyntheticData.writeCSV(data, to: path, header: true)
        }
    }
}

/// `newtonps convert`: rewrite a data set (for example Fashion-MNIST's IDX
/// files) as LIBSVM or CSV text.
struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert", abstract: "Convert a data set to LIBSVM or CSV text (unscaled).")

    @Option(help: "The data: a file, or for idx a directory or images file.")
    var input: String
    @Option(help: "Input format: idx, libsvm or csv.")
    var format: DataFormat = .idx
    @Option(help: "For an idx directory: which split to read (train or test).")
    var split: DataSplit = .train
    @Option(help: "Output format: libsvm or csv (with a header line).")
    var to: TextFormat
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
/// learns it; a linear model cannot) as LIBSVM or CSV text.
struct SynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth", abstract: "Write a synthetic classification data set as LIBSVM or CSV text.")

    @Option var rows = 2000
    @Option(help: "Rows of a separate test file (written to --test-output).")
    var testRows = 0
    @Option var features = 20
    @Option var classes = 4
    @Option var seed: UInt64 = 1
    @Option(help: "Output format: libsvm or csv.")
    var to: TextFormat
    @Option(help: "Training output file.")
    var output: String
    @Option(help: "Test output file.")
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
        let all = SyntheticData.classification(rows: rows + testRows, features: features, classes: classes, seed: seed)
        try to.write(all.subset(0..<rows), to: output)
        print("wrote \(rows) rows to \(output)")
        if let testOutput {
            try to.write(all.subset(rows..<(rows + testRows)), to: testOutput)
            print("wrote \(testRows) rows to \(testOutput)")
        }
    }
}

extension DataSplit: ExpressibleByArgument {}
