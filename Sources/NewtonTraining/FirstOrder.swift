import NewtonCore

/// The first-order baselines users compare Newton methods with.
public enum FirstOrderMethod: String, Sendable, CaseIterable, Codable {
    /// Minibatch SGD with heavy-ball momentum: `m ← μm + g`, `θ ← θ − η m`.
    case sgd
    /// Adam (Kingma & Ba) with bias correction.
    case adam
}

public struct FirstOrderOptions: Sendable, Equatable {
    public var learningRate = 0.01
    public var momentum = 0.9
    public var beta1 = 0.9
    public var beta2 = 0.999
    public var epsilon = 1e-8
    public var batchSize = 128

    public init() {}

    public var problems: [String] {
        var p = [String]()
        if !(learningRate > 0) { p.append("learning rate must be positive, got \(learningRate)") }
        if !(momentum >= 0 && momentum < 1) { p.append("momentum must be in [0, 1), got \(momentum)") }
        if !(beta1 >= 0 && beta1 < 1) { p.append("beta1 must be in [0, 1), got \(beta1)") }
        if !(beta2 >= 0 && beta2 < 1) { p.append("beta2 must be in [0, 1), got \(beta2)") }
        if !(epsilon > 0) { p.append("epsilon must be positive, got \(epsilon)") }
        if batchSize < 1 { p.append("batch size must be at least 1, got \(batchSize)") }
        return p
    }
}

/// Minibatch SGD-momentum or Adam on the same cluster and objective as the
/// Newton methods. One recorded iteration is one epoch: a pass over every row
/// in an order drawn from the seed and the epoch number.
public struct FirstOrderTrainer: Sendable {
    public let method: FirstOrderMethod
    public let options: FirstOrderOptions
    /// Seeds the minibatch order.
    public let seed: UInt64
    public let objective: Objective

    public init(method: FirstOrderMethod, options: FirstOrderOptions, seed: UInt64, objective: Objective) throws {
        if let problem = options.problems.first { throw TrainingError(.invalidOptions, problem) }
        self.method = method
        self.options = options
        self.seed = seed
        self.objective = objective
    }

    private var cluster: ClusterCoordinator { objective.cluster }

    /// Runs from the weights already on the servers; with `resume`, continues
    /// after that checkpoint (whose vectors are already on the servers).
    public func train(
        budget: TrainingBudget, resume: Checkpoint.State? = nil, checkpoints: CheckpointPolicy? = nil,
        observe: @escaping IterationObserver = { _ in }
    ) async throws -> TrainingSummary {
        var runLog = RunLog(budget: budget, observe: observe, checkpoints: checkpoints, resuming: resume)
        if resume == nil { try await cluster.run(stateVectors.map { .fill(target: $0, value: 0) }) }
        var phases = [String: Double]()
        var (f, gradientNorm) = try await timed("gradient", into: &phases) {
            try await objective.valueAndGradient(at: .weights, into: .gradient)
        }
        var step = resume?.minibatchSteps ?? 0
        var epoch = resume?.iteration ?? 0
        if resume == nil {
            let start = IterationRecord(
                iteration: 0, elapsedSeconds: runLog.seconds, objective: f, gradientNorm: gradientNorm,
                cgIterations: 0, lambda: 0, step: options.learningRate, lineSearchSteps: 0,
                testAccuracy: try await objective.testAccuracy(at: .weights), outcome: .start, phaseSeconds: phases)
            runLog.emit(start)
            try await runLog.checkpoint(after: start, optimizerVectors: stateVectors, from: cluster)
        }
        let rows = objective.rows
        while true {
            if let reason = runLog.stopReason(after: epoch, gradientNorm: gradientNorm) { return runLog.summary(reason) }
            epoch += 1
            phases = [:]
            var order = Array(0..<rows)
            var rng = SeededGenerator(seed: seed, stream: 5000 + UInt64(epoch))
            order.shuffle(using: &rng)
            try await timed("minibatches", into: &phases) {
                for start in stride(from: 0, to: rows, by: options.batchSize) {
                    if let limit = budget.timeLimit, runLog.seconds >= limit { break }
                    step += 1
                    let batch = order[start..<min(start + options.batchSize, rows)].sorted()
                    _ = try await cluster.gradient(at: .weights, into: .gradient, shards: minibatchShards(batch))
                    try await cluster.run(update(batchRows: batch.count, step: step))
                }
            }
            (f, gradientNorm) = try await timed("gradient", into: &phases) {
                try await objective.valueAndGradient(at: .weights, into: .gradient)
            }
            let accuracy = try await timed("evaluate", into: &phases) { try await objective.testAccuracy(at: .weights) }
            let record = IterationRecord(
                iteration: epoch, elapsedSeconds: runLog.seconds, objective: f, gradientNorm: gradientNorm,
                cgIterations: 0, lambda: 0, step: options.learningRate, lineSearchSteps: 0,
                testAccuracy: accuracy, outcome: .epoch, phaseSeconds: phases)
            runLog.emit(record)
            try await runLog.checkpoint(after: record, minibatchSteps: step, optimizerVectors: stateVectors, from: cluster)
        }
    }

    /// A minibatch cut in two (more when a half would pass the shard size),
    /// so that two workers share every minibatch. The cut depends on the
    /// minibatch alone, never on the number of workers.
    private func minibatchShards(_ batch: [Int]) -> [RowShard] {
        cluster.shards(.train, rows: batch, count: max(2, (batch.count + cluster.shardRows - 1) / cluster.shardRows))
    }

    /// The vectors the method carries from one minibatch to the next.
    private var stateVectors: [VectorName] {
        switch method {
        case .sgd: return [.momentum]
        case .adam: return [.adamFirstMoment, .adamSecondMoment]
        }
    }

    /// The server-side update for one minibatch whose gradient sum is in `.gradient`.
    private func update(batchRows: Int, step: Int) -> [VectorOp] {
        let average = VectorOp.axpby(objective.ridge, .weights, 1 / Double(batchRows), .gradient)
        switch method {
        case .sgd:
            return [
                average,
                .axpby(1, .gradient, options.momentum, .momentum),
                .axpy(-options.learningRate, .momentum, .weights),
            ]
        case .adam:
            let adam = AdamUpdate(
                learningRate: options.learningRate, beta1: options.beta1, beta2: options.beta2,
                epsilon: options.epsilon, step: step)
            return [
                average,
                .adam(
                    adam, weights: .weights, gradient: .gradient,
                    firstMoment: .adamFirstMoment, secondMoment: .adamSecondMoment),
            ]
        }
    }
}
