import NewtonCore
import NewtonRoles
import NewtonTraining

/// Runs a job on a fresh embedded cluster over small synthetic data.
struct Harness {
    var trainRows = 600
    var testRows = 200
    var features = 8
    var classes = 3
    var layers: [Int] = [8, 12, 10, 3]
    var activation = Activation.tanh
    var loss = Loss.crossEntropy
    var partitions: [Int]? = nil
    var servers = 1
    var workers = 1
    var shardRows = 64
    var serverOptions = ServerCore.Options()

    var descriptor: DataDescriptor {
        DataDescriptor(
            source: .synthetic(trainRows: trainRows, testRows: testRows, features: features, classes: classes, seed: 11),
            scaling: .standardize)
    }

    func network() throws -> NetworkSpec {
        try NetworkSpec(layerSizes: layers, activations: [activation], loss: loss)
    }

    func cluster() async throws -> EmbeddedCluster {
        let network = try network()
        let grid = try partitions.map { try PartitionGrid(spec: network, partitions: $0) } ?? PartitionGrid(unpartitioned: network)
        return try await EmbeddedCluster(
            grid: grid, data: try descriptor.load(), descriptor: descriptor,
            servers: servers, workers: workers, shardRows: shardRows, serverOptions: serverOptions)
    }

    /// Runs a job. C defaults to 1 here: the authors' C = 0.01 scaled by a
    /// few hundred rows would let the regulariser dominate the loss.
    func run(
        _ optimizer: OptimizerKind = .newton, iterations: Int, seed: UInt64 = 3, secondOrder: SecondOrderOptions = .init(),
        newton: NewtonOptions = .init(), hessianFree: HessianFreeOptions = .init(), firstOrder: FirstOrderOptions = .init(),
        regularization: Double = 1, resume: Checkpoint? = nil, checkpoints: CheckpointPolicy? = nil
    ) async throws -> TrainingSummary {
        let job = TrainingJob(
            network: try network(), optimizer: optimizer, regularization: regularization, secondOrder: secondOrder, newton: newton,
            hessianFree: hessianFree, firstOrder: firstOrder, budget: TrainingBudget(maxIterations: iterations), seed: seed)
        return try await job.run(
            on: try await cluster().coordinator, jobID: "test", data: descriptor, resume: resume, checkpoints: checkpoints)
    }
}

extension TrainingSummary {
    var objectives: [Double] { records.map(\.objective) }
}

func maxRelativeGap(_ a: [Double], _ b: [Double]) -> Double {
    zip(a, b).map { abs($0 - $1) / max(abs($0), abs($1), 1e-300) }.max() ?? 0
}
