import ArgumentParser
import Foundation
import NewtonCluster
import NewtonCore
import NewtonTraining

/// `newtonps train`: the main job, on an embedded in-process cluster.
struct TrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a network on an embedded (in-process) cluster.",
        discussion:
            "Defaults: Fashion-MNIST from /usr/share/datasets/fashion-mnist, 784-300-300-10 ReLU, softmax cross-entropy, subsampled Gauss-Newton Newton-CG."
    )

    @OptionGroup var data: DataOptions
    @OptionGroup var model: ModelOptions
    @OptionGroup var optimizer: OptimizerOptions
    @OptionGroup var cluster: ClusterOptions
    @Option(help: "Newton iterations (or epochs for sgd/adam).")
    var maxIterations = 100
    @Option(help: "Stop after this many seconds of training.")
    var timeLimit: Double?
    @Option(help: "Stop once ‖∇f‖ falls below this fraction of its initial value (0: never).")
    var gradientTolerance = 0.0
    @Option(help: "Seed for the initial weights, subsamples and minibatch order.")
    var seed: UInt64 = 1
    @Option(help: "Write one JSON record per iteration to this file.")
    var logJson: String?
    @Option(help: "Save the trained model here (safetensors).")
    var save: String?
    @Flag(help: "Only print the summary.")
    var quiet = false

    func run() async throws {
        cluster.applyThreads()
        let descriptor = data.descriptor
        let loadClock = ContinuousClock.now
        let loaded = try descriptor.load()
        print(
            "data: \(loaded.train.rows) training rows × \(loaded.train.columns) features, \(loaded.test.map { "\($0.rows) test rows" } ?? "no test set"), \(loaded.train.classCount) classes (\(formatSeconds(ContinuousClock.now - loadClock)))"
        )

        let network = try model.network(for: loaded.train)
        let grid = try cluster.grid(for: network)
        let job = optimizer.job(
            network: network,
            budget: TrainingBudget(maxIterations: maxIterations, timeLimit: timeLimit, gradientTolerance: gradientTolerance), seed: seed)
        let problems = job.problems
        guard problems.isEmpty else { throw ValidationError(problems.joined(separator: "\n")) }
        print(
            "network: \(network.layerSizes.map(String.init).joined(separator: "-")) \(network.hiddenActivations.map(\.rawValue).joined(separator: ",")) \(network.loss.rawValue); grid \(grid.partitionCounts) (\(grid.blocks.count) blocks); \(cluster.servers) server(s), \(cluster.workers) worker(s), \(BLAS.threads) BLAS thread(s) each; optimizer \(optimizer.summary)"
        )

        let embedded = try await EmbeddedCluster(
            grid: grid, data: loaded, descriptor: descriptor, servers: cluster.servers,
            workers: cluster.workers, shardRows: cluster.shardRows)
        let reporter = try ProgressReporter(jsonLog: logJson, quiet: quiet)
        let summary: TrainingSummary
        do {
            summary = try await job.run(on: embedded.coordinator, jobID: "embedded", data: descriptor, observe: reporter.record)
        } catch {
            reporter.finish()
            throw error
        }
        reporter.finish()

        let iterations = summary.records.last?.iteration ?? 0
        let perIteration =
            iterations > 0 ? (summary.records.last!.elapsedSeconds - summary.records[0].elapsedSeconds) / Double(iterations) : 0
        let accuracy = summary.records.last?.testAccuracy.map { String(format: "%.2f%%", $0 * 100) } ?? "n/a"
        print(
            String(
                format: "done: %d iterations in %.1f s (%.2f s per iteration), stop: %@, objective %.6e, test accuracy %@",
                iterations, summary.seconds, perIteration, summary.stopReason.rawValue, summary.records.last?.objective ?? .nan, accuracy))
        if let save {
            let weights = try await embedded.coordinator.read(.weights)
            try SavedModel(parameters: weights, classNames: loaded.train.classNames, scaler: loaded.scaler).save(to: save)
            print("saved model to \(save)")
        }
    }
}

func formatSeconds(_ d: Duration) -> String {
    String(format: "%.2f s", Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
}
