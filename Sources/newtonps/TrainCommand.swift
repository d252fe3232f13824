import ArgumentParser
import Foundation
import NewtonCore
import NewtonDriver
import NewtonObservability
import NewtonRoles
import NewtonTraining
import NewtonTransport

/// `newtonps train`: the main job, on an embedded in-process cluster.
struct TrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a network on an embedded (in-process) cluster.",
        discussion:
            "Defaults: Fashion-MNIST from /usr/share/datasets/fashion-mnist, 784-300-300-10 ReLU, softmax cross-entropy, subsampled Gauss-Newton Newton-CG."
    )

    @OptionGroup(title: "Data") var data: DataOptions
    @OptionGroup(title: "Model") var model: ModelOptions
    @OptionGroup(title: "Optimiser") var optimizer: OptimizerOptions
    @OptionGroup(title: "Agents (next, dgd)") var agents: AgentOptions
    @OptionGroup(title: "Cluster") var cluster: ClusterOptions
    @OptionGroup(title: "Run") var budget: RunOptions
    @Option(
        help:
            "OpenBLAS threads per BLAS call. OpenBLAS's rounding depends on its thread count, so runs are bit-identical across worker counts at a fixed value."
    )
    var blasThreads = 1
    @Option(help: "Write one JSON record per iteration to this file.")
    var logJson: String?
    @Option(help: "Save the trained model here (safetensors).")
    var save: String?
    @Option(help: "next, dgd: a model (safetensors) each record measures every agent's relative distance to, e.g. a centralised optimum.")
    var referenceModel: String?
    @Flag(help: "Only print the summary.")
    var quiet = false

    /// Every job setting given as a flag, as a key and its text.
    var jobArguments: [(key: String, value: String)] {
        data.jobArguments + model.jobArguments + optimizer.jobArguments + agents.jobArguments + cluster.jobArguments
            + budget.jobArguments
    }

    /// The job the flags describe: the same `JobSpec` a submitted YAML spec
    /// with the same keys gives.
    func jobSpec() throws -> JobSpec {
        do {
            return try JobSpec.parse(arguments: jobArguments)
        } catch let error as DriverError where error.code == .invalidJob {
            throw ValidationError(error.message)
        }
    }

    func run() async throws {
        BLAS.threads = blasThreads
        let spec = try jobSpec()
        let decentralised = spec.optimizer.decentralised != nil
        // Checked and read before the data set, which may take a while to load.
        if referenceModel != nil, !decentralised { throw ValidationError("--reference-model is for next and dgd runs") }
        let reference = try referenceModel.map { try SavedModel.load(from: $0).parameters }
        let loadClock = ContinuousClock.now
        print("loading the data…")
        let loaded = try spec.data.load()
        print(
            "data: \(loaded.train.rows) training rows × \(loaded.train.columns) features, \(loaded.test.map { "\($0.rows) test rows" } ?? "no test set"), \(loaded.train.classCount) classes (\(formatSeconds(ContinuousClock.now - loadClock)))"
        )
        let network = try spec.network(for: loaded.train)
        let job = spec.trainingJob(network: network, regularization: try await chooseRegularization(spec, network: network, data: loaded))
        // Agents run concurrently, so each gets one server and one worker unless told otherwise.
        let (servers, workers) =
            decentralised ? (spec.servers ?? 1, spec.workers ?? 1) : (spec.servers ?? 2, spec.workers ?? ProcessInfoCores.count)
        // A networked agent runs one server, so agents' grids are cut for one.
        let grid = try spec.grid(for: network, servers: decentralised ? 1 : servers)
        print(
            "network: \(network.layerSizes.map(String.init).joined(separator: "-")) \(network.hiddenActivations.map(\.rawValue).joined(separator: ",")) \(network.loss.rawValue); grid \(grid.partitionCounts) (\(grid.blocks.count) blocks); \(servers) server(s), \(workers) worker(s)\(decentralised ? " per agent" : ""), \(BLAS.threads) BLAS thread(s) each; optimizer \(spec.summary)"
        )

        let reporter = try ProgressReporter(jsonLog: logJson, quiet: quiet, maxIterations: spec.budget.maxIterations)
        let summary: TrainingSummary
        // The cluster whose `.weights` hold the trained model at the end.
        let model: ClusterCoordinator
        do {
            if decentralised {
                let embedded = try await EmbeddedAgents(
                    grid: grid, data: loaded, descriptor: spec.data, agents: job.decentralised.agents, serversPerAgent: servers,
                    workersPerAgent: workers, monitorWorkers: ProcessInfoCores.count, shardRows: spec.shardRows)
                model = embedded.monitor.coordinator
                summary = try await job.run(
                    agents: embedded.agents.map(\.coordinator), monitor: model, jobID: "embedded", data: spec.data,
                    reference: reference, observe: reporter.record)
            } else {
                let embedded = try await EmbeddedCluster(
                    grid: grid, data: loaded, descriptor: spec.data, servers: servers, workers: workers, shardRows: spec.shardRows)
                model = embedded.coordinator
                summary = try await job.run(
                    on: model, jobID: "embedded", data: spec.data,
                    checkpoints: modelCheckpoints(spec, classNames: loaded.train.classNames, scaler: loaded.scaler),
                    observe: reporter.record)
            }
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
            let weights = try await model.read(.weights)
            try SavedModel(parameters: weights, classNames: loaded.train.classNames, scaler: loaded.scaler).save(to: save)
            print("saved model to \(save)")
        }
    }
}

extension TrainCommand {
    /// With `C: auto`, runs the held-out search and prints each trial;
    /// otherwise nil (the spec's C).
    func chooseRegularization(_ spec: JobSpec, network: NetworkSpec, data: TrainingData) async throws -> Double? {
        guard spec.searchesRegularization else { return nil }
        let rows = data.train.rows
        print("choosing C on a held-out fifth of the \(rows) training rows (\(RegularizationSearch.candidates.count) runs)…")
        let (chosen, _) = try await RegularizationSearch(spec: spec, network: network, workers: ProcessInfoCores.count)
            .choose(from: data) { trial in
                let accuracy = trial.heldOutAccuracy.map { String(format: "%.2f%%", $0 * 100) } ?? "diverged"
                print("  C = \(trial.regularization): held-out accuracy \(accuracy) after \(trial.iterations) iterations")
            }
        print("C = \(chosen) chosen")
        return chosen
    }

    /// With `--save`, the model of every checkpoint overwrites the file
    /// (atomically), so an interrupted run keeps its latest model.
    func modelCheckpoints(_ spec: JobSpec, classNames: [String], scaler: FeatureScaler) -> CheckpointPolicy? {
        guard let save, spec.checkpointEvery > 0 else { return nil }
        return CheckpointPolicy(every: spec.checkpointEvery) { checkpoint in
            try SavedModel(parameters: checkpoint.weights, classNames: classNames, scaler: scaler).save(to: save)
        }
    }
}

func formatSeconds(_ d: Duration) -> String {
    String(format: "%.2f s", Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
}
