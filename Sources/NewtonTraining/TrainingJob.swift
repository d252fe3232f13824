import NewtonCore

/// Which optimiser a job runs.
public enum OptimizerKind: String, Sendable, CaseIterable, Codable {
    /// Subsampled Gauss-Newton Newton-CG (Wang et al. 2018).
    case newton
    /// Hessian-free with negative curvature (He et al.), minibatch capable.
    case hessianFree = "hf"
    case sgd
    case adam
    /// NEXT over a graph of agents (Scardapane & Di Lorenzo 2017).
    case next
    /// Decentralised gradient descent over a graph of agents.
    case dgd

    /// The decentralised method this optimiser is, if it is one.
    public var decentralised: DecentralisedMethod? { DecentralisedMethod(rawValue: rawValue) }
}

/// Everything that decides a run's iterates, apart from the data and the
/// cluster it runs on: network, objective, initial weights, optimiser and
/// budget.
public struct TrainingJob: Sendable {
    public var network: NetworkSpec
    public var optimizer: OptimizerKind
    /// C in ‖θ‖²/(2·C·l): the one objective every method minimises.
    public var regularization: Double
    /// CG limits and step control, shared by Newton-CG and Hessian-free.
    public var secondOrder: SecondOrderOptions
    public var newton: NewtonOptions
    public var hessianFree: HessianFreeOptions
    public var firstOrder: FirstOrderOptions
    /// NEXT and DGD: agents, graph, surrogate, τ, regulariser, step sizes.
    public var decentralised: DecentralisedOptions
    public var budget: TrainingBudget
    /// Seeds the initial weights, the subsamples and the minibatch order.
    public var seed: UInt64

    public init(
        network: NetworkSpec, optimizer: OptimizerKind, regularization: Double = 0.01, secondOrder: SecondOrderOptions = .init(),
        newton: NewtonOptions = .init(), hessianFree: HessianFreeOptions = .init(), firstOrder: FirstOrderOptions = .init(),
        decentralised: DecentralisedOptions = .init(), budget: TrainingBudget, seed: UInt64
    ) {
        self.network = network
        self.optimizer = optimizer
        self.regularization = regularization
        self.secondOrder = secondOrder
        self.newton = newton
        self.hessianFree = hessianFree
        self.firstOrder = firstOrder
        self.decentralised = decentralised
        self.budget = budget
        self.seed = seed
    }

    /// Every problem with the job, as messages naming the setting.
    public var problems: [String] {
        var p = [String]()
        if !(regularization > 0 && regularization.isFinite) { p.append("regularization C must be positive, got \(regularization)") }
        if budget.maxIterations < 0 { p.append("max iterations must be non-negative, got \(budget.maxIterations)") }
        if let t = budget.timeLimit, !(t > 0) { p.append("time limit must be positive, got \(t)") }
        switch optimizer {
        case .newton: p += secondOrder.problems + newton.problems
        case .hessianFree: p += secondOrder.problems + hessianFree.problems
        case .sgd, .adam: p += firstOrder.problems
        case .next: p += decentralised.problems + (decentralised.surrogate == .gaussNewton ? secondOrder.problems + newton.problems : [])
        case .dgd: p += decentralised.problems
        }
        return p
    }

    /// Initialises the weights (He-normal from the seed), hands them to the
    /// cluster and trains; with `resume`, hands the cluster the checkpoint's
    /// vectors instead and continues after its iteration. `checkpoints`
    /// says when to record checkpoints and where they go.
    public func run(
        on cluster: ClusterCoordinator, jobID: String, data: DataDescriptor, resume: Checkpoint? = nil,
        checkpoints: CheckpointPolicy? = nil, observe: @escaping IterationObserver = { _ in }
    ) async throws -> TrainingSummary {
        if let problem = problems.first { throw TrainingError(.invalidOptions, problem) }
        guard cluster.grid.spec == network else {
            throw TrainingError(
                .invalidOptions, "the cluster's grid is for network \(cluster.grid.spec.layerSizes), the job's is \(network.layerSizes)")
        }
        if let every = checkpoints?.every, every < 1 {
            throw TrainingError(.invalidOptions, "checkpoints must be every 1 or more iterations, got \(every)")
        }
        if let resume {
            guard resume.weights.spec == network, resume.state.iteration >= 0 else {
                throw TrainingError(
                    .invalidCheckpoint,
                    "the checkpoint of iteration \(resume.state.iteration) is for network \(resume.weights.spec.layerSizes), the job's is \(network.layerSizes)"
                )
            }
            try await cluster.start(jobID: jobID, data: data, weights: resume.weights)
            for (name, vector) in resume.optimizerVectors { try await cluster.write(name, vector) }
        } else {
            try await cluster.start(jobID: jobID, data: data, weights: DenseParameters(heNormal: network, seed: seed))
        }
        let objective = try Objective(cluster: cluster, regularization: regularization)
        let state = resume?.state
        switch optimizer {
        case .newton:
            return try await NewtonCG(options: newton, secondOrder: secondOrder, seed: seed, objective: objective)
                .train(budget: budget, resume: state, checkpoints: checkpoints, observe: observe)
        case .hessianFree:
            return try await HessianFree(options: hessianFree, secondOrder: secondOrder, seed: seed, objective: objective)
                .train(budget: budget, resume: state, checkpoints: checkpoints, observe: observe)
        case .sgd, .adam:
            return try await FirstOrderTrainer(
                method: optimizer == .sgd ? .sgd : .adam, options: firstOrder, seed: seed, objective: objective
            ).train(budget: budget, resume: state, checkpoints: checkpoints, observe: observe)
        case .next, .dgd:
            throw TrainingError(.invalidOptions, "\(optimizer.rawValue) runs on a graph of agents, not on one cluster")
        }
    }

    /// The settings every agent of a decentralised job (`next`, `dgd`)
    /// shares, for `totalRows` training rows in all.
    public func decentralisedRun(totalRows: Int) throws -> DecentralisedRun {
        if let problem = problems.first { throw TrainingError(.invalidOptions, problem) }
        guard let method = optimizer.decentralised else {
            throw TrainingError(.invalidOptions, "\(optimizer.rawValue) runs on one cluster, not on a graph of agents")
        }
        return try DecentralisedRun(
            method: method, options: decentralised, secondOrder: secondOrder, newton: newton, seed: seed, totalRows: totalRows,
            regularization: regularization)
    }

    /// Runs a decentralised job on agents in this process: one cluster per
    /// agent, each holding that agent's rows, exchanging through a shared
    /// mailbox. See `run(agents:monitor:jobID:data:reference:observe:)`.
    public func run(
        agents clusters: [ClusterCoordinator], monitor: ClusterCoordinator, jobID: String, data: DataDescriptor,
        reference: DenseParameters? = nil, observe: @escaping IterationObserver = { _ in }
    ) async throws -> TrainingSummary {
        let run = try decentralisedRun(totalRows: monitor.trainRows)
        let mailbox = ExchangeMailbox()
        let agents = try clusters.enumerated().map { i, cluster in
            guard cluster.grid.spec == network else {
                throw TrainingError(.invalidOptions, "agent \(i)'s grid is not for network \(network.layerSizes)")
            }
            return try LocalAgent(index: i, run: run, cluster: cluster, exchange: InMemoryExchange(agent: i, mailbox: mailbox))
        }
        return try await self.run(agents: agents, monitor: monitor, jobID: jobID, data: data, reference: reference, observe: observe)
    }

    /// Runs a decentralised job (`next`, `dgd`) on `agents`, with `monitor`
    /// over every row for the records. All start from the He-normal weights
    /// of the seed; the final average model is left in the monitor's
    /// `.weights`. With `reference`, records say how far every agent is from it.
    public func run(
        agents: [any DecentralisedAgent], monitor: ClusterCoordinator, jobID: String, data: DataDescriptor,
        reference: DenseParameters? = nil, observe: @escaping IterationObserver = { _ in }
    ) async throws -> TrainingSummary {
        guard monitor.grid.spec == network else {
            throw TrainingError(.invalidOptions, "the monitor's grid is not for network \(network.layerSizes)")
        }
        let trainer = try DecentralisedTrainer(
            run: try decentralisedRun(totalRows: monitor.trainRows), agents: agents,
            monitor: try Objective(cluster: monitor, regularization: regularization))
        return try await trainer.train(
            jobID: jobID, data: data, initial: DenseParameters(heNormal: network, seed: seed), reference: reference, budget: budget,
            observe: observe)
    }
}
