import ArgumentParser
import Foundation
import NewtonCore

/// `newtonps evaluate`: accuracy and loss of a saved model on a data set.
struct EvaluateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Evaluate a saved model (safetensors) on a data set; prints one JSON object.")

    @Option(help: "The model file written by `train --save`.")
    var model: String
    @Option(help: "The data: a file, or for idx a directory (its t10k split) or images file.")
    var data: String
    @Option(help: "Data format: idx, libsvm, csv or npy.")
    var format: DataFormat = .idx
    @Option(help: "CSV, npy: the label column.")
    var labelColumn = 0
    @Option(help: "CSV: whether the first line is a header (default: detect).")
    var csvHeader: Bool?

    func run() async throws {
        let saved = try SavedModel.load(from: model)
        let source = try DataSource.resolve(
            path: data, format: format, split: .test,
            csv: CSVOptions(labelColumn: labelColumn, hasHeader: csvHeader))
        // Read with the model's classes so labels map to the same outputs.
        let reference = try Dataset(features: [], labels: [], columns: saved.spec.inputs, classNames: saved.classNames)
        var set = try DataLoader.loadTest(source, matching: reference)
        try saved.scaler.apply(to: &set)
        let kernels = RowKernels(parameters: saved.parameters)
        var loss = 0.0
        var correct = 0
        let chunk = 4096
        for start in stride(from: 0, to: set.rows, by: chunk) {
            let part = set.subset(start..<min(start + chunk, set.rows))
            let pass = kernels.forward(inputs: part.features, rows: part.rows)
            loss += kernels.loss(pass, labels: part.labels)
            correct += kernels.correctCount(pass, labels: part.labels)
        }
        let result: [String: Double] = [
            "rows": Double(set.rows),
            "accuracy": set.rows > 0 ? Double(correct) / Double(set.rows) : 0,
            "mean_loss": set.rows > 0 ? loss / Double(set.rows) : 0,
        ]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(result), as: UTF8.self))
    }
}
