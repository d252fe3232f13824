import NewtonCore

/// What every agent of a decentralised run shares: the method and its
/// settings, the seed, and the scalars of the whole problem U.
public struct DecentralisedRun: Sendable, Equatable {
    public let method: DecentralisedMethod
    public let options: DecentralisedOptions
    /// CG limits of the Gauss-Newton surrogate's solve.
    public let secondOrder: SecondOrderOptions
    /// The Gauss-Newton surrogate's subsample (a fraction of the agent's rows)
    /// and products mode.
    public let newton: NewtonOptions
    /// Seeds the graphs, the subsamples and the power iterations.
    public let seed: UInt64
    /// l, the training rows of all agents together.
    public let totalRows: Int
    /// C of the l2 term ‖w‖²/(2·C·l).
    public let regularization: Double
    /// ρ of r = (ρ/2)‖w‖² (0 with l1).
    public let ridge: Double

    /// - Parameter regularization: C of ρ = 1/(C·l), used with `l2`.
    public init(
        method: DecentralisedMethod, options: DecentralisedOptions, secondOrder: SecondOrderOptions, newton: NewtonOptions,
        seed: UInt64, totalRows: Int, regularization: Double
    ) throws {
        if let problem = (options.problems + secondOrder.problems + newton.problems).first {
            throw TrainingError(.invalidOptions, problem)
        }
        guard totalRows > 0 else { throw TrainingError(.invalidOptions, "a decentralised run needs training rows, got \(totalRows)") }
        guard regularization > 0, regularization.isFinite else {
            throw TrainingError(.invalidOptions, "regularization C must be positive, got \(regularization)")
        }
        self.method = method
        self.options = options
        self.secondOrder = secondOrder
        self.newton = newton
        self.seed = seed
        self.totalRows = totalRows
        self.regularization = regularization
        self.ridge = options.regularizer == .l2 ? 1 / (regularization * Double(totalRows)) : 0
    }

    /// 1/l, the weight of each row's loss in gᵢ.
    var rowWeight: Double { 1 / Double(totalRows) }

    /// Vectors an agent sends each neighbour per round: z and y for NEXT, w for DGD.
    public var vectorsExchanged: Int { method == .next ? 2 : 1 }
}

/// One agent of a decentralised run as its trainer drives it, in this
/// process (`LocalAgent`) or another (NewtonTransport's remote agent).
public protocol DecentralisedAgent: Sendable {
    /// The training rows the agent holds.
    var rows: Int { get }
    /// Starts the agent at `initial` (its local gradient and, for NEXT, its
    /// tracker) for the run `runID` and returns its τᵢ.
    func start(runID: String, data: DataDescriptor, initial: DenseParameters) async throws -> Double
    /// Runs round `round` with step α, its exchange with the round's
    /// neighbours included.
    func round(_ round: Int, alpha: Double) async throws -> AgentRoundReport
}

/// What an agent reports after a round, for the records.
public struct AgentRoundReport: Sendable, Equatable {
    /// wᵢ after the round.
    public var weights: [Float]
    /// With l1, the point whose exact zeros make the model sparse (NEXT's
    /// ŵᵢ, DGD's wᵢ); nil with l2.
    public var sparse: [Float]?
    public var cgIterations: Int
    /// Bytes of vectors sent to neighbours this round.
    public var bytesSent: Int
    /// Seconds of the round's phases (local_step, exchange, tracking).
    public var phaseSeconds: [String: Double]

    public init(weights: [Float], sparse: [Float]?, cgIterations: Int, bytesSent: Int, phaseSeconds: [String: Double]) {
        self.weights = weights
        self.sparse = sparse
        self.cgIterations = cgIterations
        self.bytesSent = bytesSent
        self.phaseSeconds = phaseSeconds
    }
}

/// An agent whose rows live on its own cluster: the cluster's servers hold
/// its copy of the weights and its optimiser vectors, its workers hold its
/// rows, and `exchange` reaches its neighbours. The steps are those of
/// `DecentralisedTrainer`'s NEXT and DGD.
public actor LocalAgent: DecentralisedAgent {
    public nonisolated let index: Int
    public nonisolated let run: DecentralisedRun
    public nonisolated let cluster: ClusterCoordinator
    private let exchange: any AgentExchange
    private let schedule: GraphSchedule
    private var tau = 0.0
    /// wᵢ as the agent's servers hold it.
    private var weights = [Float]()

    public init(index: Int, run: DecentralisedRun, cluster: ClusterCoordinator, exchange: any AgentExchange) throws {
        guard (0..<run.options.agents).contains(index) else {
            throw TrainingError(.invalidOptions, "agent \(index) is not one of the run's \(run.options.agents) agents")
        }
        self.index = index
        self.run = run
        self.cluster = cluster
        self.exchange = exchange
        self.schedule = try GraphSchedule(
            topology: run.options.topology, agents: run.options.agents, timeVarying: run.options.timeVarying, seed: run.seed)
    }

    public nonisolated var rows: Int { cluster.trainRows }
    private var count: Int { run.options.agents }
    private var options: DecentralisedOptions { run.options }

    public func start(runID: String, data: DataDescriptor, initial: DenseParameters) async throws -> Double {
        try await cluster.start(jobID: "\(runID)-agent-\(index)", data: data, weights: initial)
        if let given = options.tau { tau = given } else { tau = try await defaultTau() }
        try await localGradient()
        if run.method == .next {
            // y⁰ = ∇gᵢ(w⁰), π̃⁰ = I·y⁰ − ∇gᵢ(w⁰).
            try await cluster.run([
                .copy(.gradient, to: .tracker),
                .combine(target: .othersGradient, terms: [VectorTerm(Double(count - 1), .gradient)]),
            ])
        }
        weights = initial.values
        return tau
    }

    public func round(_ round: Int, alpha: Double) async throws -> AgentRoundReport {
        let mixing = schedule.graph(round: round).metropolisWeights[index]
        let neighbours = mixing.map(\.agent).filter { $0 != index }
        var phases = [String: Double]()
        let cgIterations: Int
        let sparse: [Float]?
        switch run.method {
        case .next:
            let step = try await timed("local_step", into: &phases) { try await localStep(round: round, alpha: alpha) }
            cgIterations = step.cgIterations
            sparse = options.regularizer == .l1 ? step.best : nil
            let tracker = try await cluster.read(.tracker).values
            let received = try await timed("exchange", into: &phases) {
                try await exchange.exchange(round: round, vectors: [step.z, tracker], with: neighbours)
            }
            let mixedWeights = try mix(mixing, own: step.z, received: received, vector: 0)
            let mixedTracker = try mix(mixing, own: tracker, received: received, vector: 1)
            try await timed("tracking", into: &phases) { try await track(weights: mixedWeights, tracker: mixedTracker) }
        case .dgd:
            cgIterations = 0
            let received = try await timed("exchange", into: &phases) {
                try await exchange.exchange(round: round, vectors: [weights], with: neighbours)
            }
            let mixed = try mix(mixing, own: weights, received: received, vector: 0)
            try await timed("local_step", into: &phases) { try await gradientStep(mixed: mixed, step: alpha / tau) }
            sparse = options.regularizer == .l1 ? weights : nil
        }
        return AgentRoundReport(
            weights: weights, sparse: sparse, cgIterations: cgIterations,
            bytesSent: neighbours.count * run.vectorsExchanged * weights.count * MemoryLayout<Float>.size, phaseSeconds: phases)
    }

    /// ∇gᵢ at the agent's weights, into `.gradient`.
    private func localGradient() async throws {
        _ = try await cluster.gradient(at: .weights, into: .gradient, shards: cluster.shards(.train))
        try await cluster.run([.scale(.gradient, by: run.rowWeight)])
    }

    /// NEXT steps 2–3 of `round`: the agent's zᵢ, the CG iterations its
    /// solve took, and with l1 its local solution ŵᵢ (exactly sparse; empty
    /// otherwise). The Gauss-Newton subsample is drawn fresh each round from
    /// the seed, the agent and the round.
    private func localStep(round: Int, alpha: Double) async throws -> (z: [Float], cgIterations: Int, best: [Float]) {
        let ridge = run.ridge
        switch (options.surrogate, options.regularizer) {
        case (.linear, .l2):
            // z = w + α(ŵ − w) = w − α/(τ+ρ)·(∇g + π̃ + ρw).
            let c = alpha / (tau + ridge)
            try await cluster.run([
                .combine(
                    target: .trial,
                    terms: [VectorTerm(1 - c * ridge, .weights), VectorTerm(-c, .gradient), VectorTerm(-c, .othersGradient)])
            ])
            return (try await cluster.read(.trial).values, 0, [])
        case (.linear, .l1):
            try await cluster.run([
                .combine(
                    target: .trial,
                    terms: [VectorTerm(1, .weights), VectorTerm(-1 / tau, .gradient), VectorTerm(-1 / tau, .othersGradient)])
            ])
            let best = softThreshold(try await cluster.read(.trial).values, options.l1Strength / tau)
            return (zip(weights, best).map { w, b in Float(Double(w) + alpha * (Double(b) - Double(w))) }, 0, best)
        case (.gaussNewton, _):
            let agentRows = cluster.trainRows
            let sample = Objective.sampleRows(
                Int((run.newton.subsampleFraction * Double(agentRows)).rounded(.up)), of: agentRows, seed: run.seed,
                stream: (UInt64(index) << 32) + 20_000 + UInt64(round))
            let kind: Curvature.Kind =
                run.newton.products == .jacobian
                ? .cachedJacobian(outputs: try await cluster.cacheJacobian(at: .weights, rows: sample))
                : .gaussNewtonByROperator(shards: cluster.shards(.train, rows: sample))
            // Gᵢ = (1/l) Σ_{rows of i} JᵀBJ, estimated on the sample.
            let curvature = Curvature(
                cluster: cluster, kind: kind, scale: Double(agentRows) * run.rowWeight / Double(sample.count))
            let norm = try await cluster.run([
                .combine(
                    target: .surrogateGradient,
                    terms: [VectorTerm(1, .gradient), VectorTerm(1, .othersGradient), VectorTerm(ridge, .weights)]),
                .dot(.surrogateGradient, .surrogateGradient),
            ])[0].squareRoot()
            let space = ServerVectorSpace(cluster: cluster, operator: DampedOperator(curvature: curvature, damping: tau + ridge))
            let report = try await ConjugateGradient(
                tolerance: run.secondOrder.cgTolerance, maxIterations: run.secondOrder.cgMaxIterations
            ).solve(in: space, rhs: .surrogateGradient, gradientNorm: try checked(norm, "agent \(index)'s surrogate gradient norm"))
            try await cluster.run([.combine(target: .trial, terms: [VectorTerm(1, .weights), VectorTerm(alpha, .direction)])])
            return (try await cluster.read(.trial).values, report.iterations, [])
        }
    }

    /// NEXT step 5 after the exchange: the agent takes its mixed weights and
    /// tracker, and updates ∇gᵢ, yᵢ and π̃ᵢ.
    private func track(weights mixed: [Float], tracker: [Float]) async throws {
        let spec = cluster.grid.spec
        try await cluster.write(.weights, try DenseParameters(spec: spec, values: mixed))
        try await cluster.write(.tracker, try DenseParameters(spec: spec, values: tracker))
        weights = mixed
        try await cluster.run([.copy(.gradient, to: .previousGradient)])
        try await localGradient()
        try await cluster.run([
            .combine(target: .tracker, terms: [VectorTerm(1, .tracker), VectorTerm(1, .gradient), VectorTerm(-1, .previousGradient)]),
            .combine(target: .othersGradient, terms: [VectorTerm(Double(count), .tracker), VectorTerm(-1, .gradient)]),
        ])
    }

    /// DGD: from the mixed weights, a step of η on I·∇gᵢ + ρwᵢ at the old
    /// weights (then the ℓ1 threshold), and ∇gᵢ at the new weights.
    private func gradientStep(mixed: [Float], step: Double) async throws {
        try await cluster.write(.trial, try DenseParameters(spec: cluster.grid.spec, values: mixed))
        try await cluster.run([
            .combine(
                target: .weights,
                terms: [VectorTerm(1, .trial), VectorTerm(-step * Double(count), .gradient), VectorTerm(-step * run.ridge, .weights)])
        ])
        var next = try await cluster.read(.weights)
        if options.regularizer == .l1 {
            next.values = softThreshold(next.values, step * options.l1Strength)
            try await cluster.write(.weights, next)
        }
        weights = next.values
        try await localGradient()
    }

    /// τᵢ from L̂ᵢ, the largest eigenvalue of the agent's Gᵢ at its weights.
    private func defaultTau() async throws -> Double {
        var rng = SeededGenerator(seed: run.seed, stream: 30_000 + UInt64(index))
        let spec = cluster.grid.spec
        let start = (0..<DenseParameters(zeros: spec).count).map { _ in Float(rng.nextGaussian()) }
        try await cluster.write(.probe, try DenseParameters(spec: spec, values: start))
        let curvature = Curvature(cluster: cluster, kind: .gaussNewtonByROperator(shards: cluster.shards(.train)), scale: run.rowWeight)
        let gaussNewton = DampedOperator(curvature: curvature, damping: 0)
        var largest = 0.0
        for _ in 0..<DecentralisedTrainer.powerIterations {
            let dots = try await gaussNewton.apply(
                .probe, into: .product, first: [], then: [.dot(.probe, .product), .dot(.probe, .probe), .dot(.product, .product)])
            largest = dots[0] / dots[1]
            guard dots[2] > 0 else { break }
            try await cluster.run([.combine(target: .probe, terms: [VectorTerm(1 / dots[2].squareRoot(), .product)])])
        }
        let scale: Double
        switch (run.method, options.surrogate) {
        case (.next, .gaussNewton): scale = max(options.initialStep * Double(count) - 1, options.initialStep)
        default: scale = options.initialStep * Double(count)
        }
        let tau = try checked(scale * largest, "agent \(index)'s curvature estimate")
        guard tau > 0 else {
            throw TrainingError(
                .invalidOptions, "agent \(index)'s loss has no curvature at the start (L̂ = \(largest)); give tau explicitly")
        }
        return tau
    }

    /// `Σⱼ cᵢⱼ vⱼ` over the round's mixing row, summed in double precision
    /// in ascending j (the agent's own vector at j = i).
    private func mix(
        _ row: [(agent: Int, weight: Double)], own: [Float], received: [Int: [[Float]]], vector: Int
    ) throws -> [Float] {
        var sum = [Double](repeating: 0, count: own.count)
        for (j, c) in row {
            let v = j == index ? own : received[j].flatMap { $0.indices.contains(vector) ? $0[vector] : nil } ?? []
            guard v.count == own.count else {
                throw TrainingError(
                    .invalidExchange,
                    "agent \(j) sent agent \(index) \(received[j]?.count ?? 0) vector(s) with \(v.count) values where \(run.vectorsExchanged) of \(own.count) were expected"
                )
            }
            v.withUnsafeBufferPointer { v in
                for k in sum.indices { sum[k] += c * Double(v[k]) }
            }
        }
        return sum.map { Float($0) }
    }
}

/// `S_t(x) = sign(x)·max(|x| − t, 0)`, element-wise.
func softThreshold(_ x: [Float], _ t: Double) -> [Float] {
    x.map { v in
        let magnitude = abs(Double(v)) - t
        return magnitude > 0 ? Float(v > 0 ? magnitude : -magnitude) : 0
    }
}
