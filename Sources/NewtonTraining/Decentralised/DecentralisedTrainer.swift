import NewtonCore

/// NEXT or DGD over agents that each own a cluster: the agent's servers hold
/// its copy of the weights and its optimiser vectors, its workers hold its
/// rows. Agents exchange vectors only with their neighbours in the round's
/// graph; `monitor` (a cluster over every row) measures the average model
/// w̄ for the records and never feeds back into the iterates.
///
/// The objective is U(w) = Σᵢ gᵢ(w) + r(w) with gᵢ = (1/l) Σ_{rows of i} ξ,
/// l the total row count, so with `l2` U is exactly the centralised f. NEXT
/// (Scardapane & Di Lorenzo 2017, Algorithm 1) in round n:
///
/// 1. α[n] = α[n−1](1 − ε·α[n−1]);
/// 2. ŵᵢ = argmin g̃ᵢ(w; wᵢ) + π̃ᵢᵀ(w − wᵢ) + r(w): with the linear
///    surrogate `(τwᵢ − ∇gᵢ − π̃ᵢ)/(τ + ρ)` for r = (ρ/2)‖w‖², or
///    `S_{λ/τ}(wᵢ − (∇gᵢ + π̃ᵢ)/τ)` for r = λ‖w‖₁; with the Gauss-Newton
///    surrogate `wᵢ + d`, `(Gᵢ + (τ + ρ)I) d = −(∇gᵢ + π̃ᵢ + ρwᵢ)` by CG;
/// 3. zᵢ = wᵢ + α[n](ŵᵢ − wᵢ);
/// 4. wᵢ ← Σⱼ cᵢⱼ zⱼ (first exchange);
/// 5. yᵢ ← Σⱼ cᵢⱼ yⱼ + ∇gᵢ(wᵢ new) − ∇gᵢ(wᵢ old) (second exchange);
///    π̃ᵢ = I·yᵢ − ∇gᵢ(wᵢ new).
///
/// DGD: `wᵢ ← Σⱼ cᵢⱼ wⱼ − η(I·∇gᵢ(wᵢ) + ρwᵢ)` with η = α[n]/τᵢ (for `l1`,
/// the soft threshold `S_{ηλ}` after the gradient step): the step NEXT's
/// linear surrogate takes, without the tracking.
///
/// **τ by default** is each agent's own, from L̂ᵢ, the largest eigenvalue of
/// its Gauss-Newton matrix Gᵢ at the start (power iteration): τᵢ = α⁰·I·L̂ᵢ
/// for the linear surrogate and DGD, τᵢ = max(α⁰·I − 1, α⁰)·L̂ᵢ for the
/// Gauss-Newton one. Since gᵢ holds about 1/I of U's rows, U's curvature is
/// about I·L̂ᵢ, and I·yᵢ tracks ∇U: the linear surrogate's first step is
/// then a 1/L gradient step on U; the Gauss-Newton surrogate's is α⁰·I of a
/// Newton step along directions of curvature ≫ I·τᵢ, capped at one full
/// Newton step along the steepest one, and at most I times the linear step
/// along directions the Gauss-Newton model sees as flat (a ReLU network has
/// many; τ = 0.01·L̂ᵢ diverged on one where 0.1·L̂ᵢ trained it). An isotropic
/// τ slows every direction flatter than it, so smaller is faster where it is
/// safe. In the paper's unnormalised sums the rule reads τ ∝ I × local rows:
/// τ grows with the number of agents and the local data size.
public struct DecentralisedTrainer: Sendable {
    public let method: DecentralisedMethod
    public let options: DecentralisedOptions
    /// CG limits of the Gauss-Newton surrogate's solve.
    public let secondOrder: SecondOrderOptions
    /// The Gauss-Newton surrogate's subsample (a fraction of the agent's rows)
    /// and products mode.
    public let newton: NewtonOptions
    /// Seeds the graphs, the subsamples and the power iterations.
    public let seed: UInt64
    public let agents: [ClusterCoordinator]
    /// Every training row and the test rows, for the records at w̄.
    public let monitor: Objective
    public let schedule: GraphSchedule

    /// Power iterations behind each agent's default τ.
    public static let powerIterations = 12

    public init(
        method: DecentralisedMethod, options: DecentralisedOptions, secondOrder: SecondOrderOptions, newton: NewtonOptions,
        seed: UInt64, agents: [ClusterCoordinator], monitor: Objective
    ) throws {
        if let problem = (options.problems + secondOrder.problems + newton.problems).first {
            throw TrainingError(.invalidOptions, problem)
        }
        guard agents.count == options.agents else {
            throw TrainingError(.invalidOptions, "the run is for \(options.agents) agents but \(agents.count) clusters were given")
        }
        let agentRows = agents.reduce(0) { $0 + $1.trainRows }
        guard agentRows == monitor.rows, agents.allSatisfy({ $0.trainRows > 0 }) else {
            throw TrainingError(
                .invalidOptions,
                "the agents hold \(agents.map(\.trainRows)) rows (\(agentRows) in all); each needs some and together the monitor's \(monitor.rows)"
            )
        }
        self.method = method
        self.options = options
        self.secondOrder = secondOrder
        self.newton = newton
        self.seed = seed
        self.agents = agents
        self.monitor = monitor
        self.schedule = try GraphSchedule(
            topology: options.topology, agents: options.agents, timeVarying: options.timeVarying, seed: seed)
    }

    private var count: Int { agents.count }
    /// ρ of r = (ρ/2)‖w‖² (0 with l1).
    private var ridge: Double { options.regularizer == .l2 ? monitor.ridge : 0 }
    /// 1/l, the weight of each row's loss in gᵢ.
    private var rowWeight: Double { 1 / Double(monitor.rows) }

    /// Starts every agent (and the monitor) at `initial` and runs rounds
    /// until the budget ends. The last record's w̄ is left in the monitor's
    /// `.weights`. With `reference` (a known optimum, say), each record
    /// gives every agent's relative distance to it.
    public func train(
        jobID: String, data: DataDescriptor, initial: DenseParameters, reference: DenseParameters? = nil, budget: TrainingBudget,
        observe: @escaping IterationObserver = { _ in }
    ) async throws -> TrainingSummary {
        if let reference, reference.spec != initial.spec {
            throw TrainingError(
                .invalidOptions, "the reference model is for network \(reference.spec.layerSizes), the run's is \(initial.spec.layerSizes)")
        }
        var runLog = RunLog(budget: budget, observe: observe, checkpoints: nil, resuming: nil)
        try await monitor.cluster.start(jobID: "\(jobID)-monitor", data: data, weights: initial)
        var phases = [String: Double]()
        let taus = try await timed("curvature", into: &phases) {
            try await forEachAgent { i, cluster in
                try await cluster.start(jobID: "\(jobID)-agent-\(i)", data: data, weights: initial)
                let tau: Double
                if let given = options.tau { tau = given } else { tau = try await defaultTau(agent: i) }
                try await localGradient(i)
                if method == .next {
                    // y⁰ = ∇gᵢ(w⁰), π̃⁰ = I·y⁰ − ∇gᵢ(w⁰).
                    try await cluster.run([
                        .copy(.gradient, to: .tracker),
                        .combine(target: .othersGradient, terms: [VectorTerm(Double(count - 1), .gradient)]),
                    ])
                }
                return tau
            }
        }
        let meanTau = taus.reduce(0, +) / Double(count)
        var weights = Array(repeating: initial.values, count: count)
        var record = try await measure(
            round: 0, weights: weights, sparse: nil, reference: reference, seconds: runLog.seconds, step: options.initialStep,
            tau: meanTau, phases: phases)
        runLog.emit(record)
        var alpha = options.initialStep
        var round = 0
        while true {
            if let reason = runLog.stopReason(after: round, gradientNorm: record.gradientNorm) { return runLog.summary(reason) }
            round += 1
            phases = [:]
            alpha *= 1 - options.stepDecay * alpha
            // The agents' weights as their servers hold them.
            let (step, thisRound, held) = (alpha, round, weights)
            let graph = schedule.graph(round: thisRound)
            let mixing = graph.metropolisWeights
            let cgIterations: Int
            // With l1: the points whose exact zeros make the model sparse.
            let sparse: [[Float]]?
            switch method {
            case .next:
                let steps = try await timed("local_step", into: &phases) {
                    try await forEachAgent { i, _ in try await localStep(i, weights: held[i], round: thisRound, alpha: step, tau: taus[i]) }
                }
                cgIterations = steps.map(\.cgIterations).max() ?? 0
                sparse = options.regularizer == .l1 ? steps.map(\.best) : nil
                let (mixedWeights, mixedTrackers) = try await timed("exchange", into: &phases) {
                    let trackers = try await forEachAgent { try await $1.read(.tracker).values }
                    return (mix(steps.map(\.z), mixing), mix(trackers, mixing))
                }
                weights = try await timed("tracking", into: &phases) {
                    try await forEachAgent { i, _ in try await track(i, weights: mixedWeights[i], tracker: mixedTrackers[i]) }
                }
            case .dgd:
                cgIterations = 0
                let mixed = await timed("exchange", into: &phases) { mix(weights, mixing) }
                weights = try await timed("local_step", into: &phases) {
                    try await forEachAgent { i, _ in try await gradientStep(i, mixed: mixed[i], step: step / taus[i]) }
                }
                sparse = options.regularizer == .l1 ? weights : nil
            }
            let sent = (0..<count).reduce(0) { $0 + graph.degree($1) } * vectorsExchanged * initial.count * MemoryLayout<Float>.size
            record = try await measure(
                round: round, weights: weights, sparse: sparse, reference: reference, seconds: runLog.seconds, step: step, tau: meanTau,
                cgIterations: cgIterations, bytesSent: Double(sent) / Double(count), phases: phases)
            runLog.emit(record)
        }
    }

    /// Vectors an agent sends each neighbour per round: z and y for NEXT, w for DGD.
    private var vectorsExchanged: Int { method == .next ? 2 : 1 }

    // MARK: One agent's work

    /// ∇gᵢ at the agent's weights, into `.gradient`.
    private func localGradient(_ i: Int) async throws {
        let cluster = agents[i]
        _ = try await cluster.gradient(at: .weights, into: .gradient, shards: cluster.shards(.train))
        try await cluster.run([.scale(.gradient, by: rowWeight)])
    }

    /// NEXT steps 2–3 of `round`: the agent's zᵢ, the CG iterations its
    /// solve took, and with l1 its local solution ŵᵢ (exactly sparse; empty
    /// otherwise). The Gauss-Newton subsample is drawn fresh each round from
    /// the seed, the agent and the round.
    private func localStep(_ i: Int, weights w: [Float], round: Int, alpha: Double, tau: Double) async throws -> (
        z: [Float], cgIterations: Int, best: [Float]
    ) {
        let cluster = agents[i]
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
            return (zip(w, best).map { w, b in Float(Double(w) + alpha * (Double(b) - Double(w))) }, 0, best)
        case (.gaussNewton, _):
            let agentRows = cluster.trainRows
            let sample = Objective.sampleRows(
                Int((newton.subsampleFraction * Double(agentRows)).rounded(.up)), of: agentRows, seed: seed,
                stream: (UInt64(i) << 32) + 20_000 + UInt64(round))
            let shards = cluster.shards(.train, rows: sample)
            let outputs = newton.products == .jacobian ? try await cluster.cacheJacobian(at: .weights, shards: shards) : []
            // Gᵢ = (1/l) Σ_{rows of i} JᵀBJ, estimated on the sample.
            let curvature = Curvature(
                cluster: cluster, kind: .gaussNewton(newton.products), shards: shards, outputs: outputs,
                scale: Double(agentRows) * rowWeight / Double(sample.count))
            let norm = try await cluster.run([
                .combine(
                    target: .surrogateGradient,
                    terms: [VectorTerm(1, .gradient), VectorTerm(1, .othersGradient), VectorTerm(ridge, .weights)]),
                .dot(.surrogateGradient, .surrogateGradient),
            ])[0].squareRoot()
            let space = ServerVectorSpace(cluster: cluster, operator: DampedOperator(curvature: curvature, damping: tau + ridge))
            let report = try await ConjugateGradient(tolerance: secondOrder.cgTolerance, maxIterations: secondOrder.cgMaxIterations)
                .solve(in: space, rhs: .surrogateGradient, gradientNorm: try checked(norm, "agent \(i)'s surrogate gradient norm"))
            try await cluster.run([.combine(target: .trial, terms: [VectorTerm(1, .weights), VectorTerm(alpha, .direction)])])
            return (try await cluster.read(.trial).values, report.iterations, [])
        }
    }

    /// NEXT step 5 after the exchange: the agent takes its mixed weights and
    /// tracker, updates ∇gᵢ, yᵢ and π̃ᵢ, and returns its new weights.
    private func track(_ i: Int, weights: [Float], tracker: [Float]) async throws -> [Float] {
        let cluster = agents[i]
        let spec = cluster.grid.spec
        try await cluster.write(.weights, try DenseParameters(spec: spec, values: weights))
        try await cluster.write(.tracker, try DenseParameters(spec: spec, values: tracker))
        try await cluster.run([.copy(.gradient, to: .previousGradient)])
        try await localGradient(i)
        try await cluster.run([
            .combine(target: .tracker, terms: [VectorTerm(1, .tracker), VectorTerm(1, .gradient), VectorTerm(-1, .previousGradient)]),
            .combine(target: .othersGradient, terms: [VectorTerm(Double(count), .tracker), VectorTerm(-1, .gradient)]),
        ])
        return weights
    }

    /// DGD: from the mixed weights, a step of η on I·∇gᵢ + ρwᵢ at the old
    /// weights (then the ℓ1 threshold); ∇gᵢ at the new weights; returns them.
    private func gradientStep(_ i: Int, mixed: [Float], step: Double) async throws -> [Float] {
        let cluster = agents[i]
        try await cluster.write(.trial, try DenseParameters(spec: cluster.grid.spec, values: mixed))
        try await cluster.run([
            .combine(
                target: .weights,
                terms: [VectorTerm(1, .trial), VectorTerm(-step * Double(count), .gradient), VectorTerm(-step * ridge, .weights)])
        ])
        var weights = try await cluster.read(.weights)
        if options.regularizer == .l1 {
            weights.values = softThreshold(weights.values, step * options.l1Strength)
            try await cluster.write(.weights, weights)
        }
        try await localGradient(i)
        return weights.values
    }

    /// τᵢ from L̂ᵢ, the largest eigenvalue of the agent's Gᵢ at its weights.
    private func defaultTau(agent i: Int) async throws -> Double {
        let cluster = agents[i]
        var rng = SeededGenerator(seed: seed, stream: 30_000 + UInt64(i))
        let spec = cluster.grid.spec
        let start = (0..<DenseParameters(zeros: spec).count).map { _ in Float(rng.nextGaussian()) }
        try await cluster.write(.probe, try DenseParameters(spec: spec, values: start))
        let curvature = Curvature(
            cluster: cluster, kind: .gaussNewton(.rop), shards: cluster.shards(.train), outputs: [], scale: rowWeight)
        let gaussNewton = DampedOperator(curvature: curvature, damping: 0)
        var largest = 0.0
        for _ in 0..<Self.powerIterations {
            try await gaussNewton.apply(.probe, into: .product)
            let dots = try await cluster.run([.dot(.probe, .product), .dot(.probe, .probe), .dot(.product, .product)])
            largest = dots[0] / dots[1]
            guard dots[2] > 0 else { break }
            try await cluster.run([.combine(target: .probe, terms: [VectorTerm(1 / dots[2].squareRoot(), .product)])])
        }
        let scale: Double
        switch (method, options.surrogate) {
        case (.next, .gaussNewton): scale = max(options.initialStep * Double(count) - 1, options.initialStep)
        default: scale = options.initialStep * Double(count)
        }
        let tau = try checked(scale * largest, "agent \(i)'s curvature estimate")
        guard tau > 0 else {
            throw TrainingError(.invalidOptions, "agent \(i)'s loss has no curvature at the start (L̂ = \(largest)); give tau explicitly")
        }
        return tau
    }

    // MARK: Between agents

    /// Runs `body` for every agent concurrently; results in agent order.
    private func forEachAgent<T: Sendable>(_ body: @escaping @Sendable (Int, ClusterCoordinator) async throws -> T) async throws -> [T] {
        try await withThrowingTaskGroup(of: (Int, T).self) { group in
            for (i, cluster) in agents.enumerated() { group.addTask { (i, try await body(i, cluster)) } }
            var results = [T?](repeating: nil, count: agents.count)
            for try await (i, value) in group { results[i] = value }
            return results.map { $0! }
        }
    }

    /// `Σⱼ cᵢⱼ vⱼ` for every agent i, summed in double precision in
    /// ascending j.
    private func mix(_ vectors: [[Float]], _ weights: [[(agent: Int, weight: Double)]]) -> [[Float]] {
        weights.map { row in
            var sum = [Double](repeating: 0, count: vectors[0].count)
            for (j, c) in row {
                vectors[j].withUnsafeBufferPointer { v in
                    for k in sum.indices { sum[k] += c * Double(v[k]) }
                }
            }
            return sum.map { Float($0) }
        }
    }

    // MARK: Records

    /// The round's record, measured at w̄ on the monitor: U(w̄), the norm of
    /// ∇U(w̄) (for l1, of the minimum-norm subgradient), the disagreement
    /// (1/I)Σ‖wᵢ − w̄‖², test accuracy and the fraction of zeros in w̄.
    /// With l1, w̄ keeps only the weights that some agent's proximal step
    /// left non-zero (`sparse`: NEXT's ŵᵢ, DGD's wᵢ), so the zeros and the
    /// accuracy are those of the sparse model the agents agree on. The
    /// record's λ is the agents' mean τ (the damping of their local steps).
    private func measure(
        round: Int, weights: [[Float]], sparse: [[Float]]?, reference: DenseParameters?, seconds: Double, step: Double, tau: Double,
        cgIterations: Int = 0, bytesSent: Double = 0, phases: [String: Double]
    ) async throws -> IterationRecord {
        var phases = phases
        let watch = Stopwatch()
        let n = weights[0].count
        var average = [Double](repeating: 0, count: n)
        for w in weights { for k in 0..<n { average[k] += Double(w[k]) } }
        for k in 0..<n { average[k] /= Double(count) }
        let disagreement = weights.reduce(0.0) { total, w in total + zip(w, average).reduce(0.0) { $0 + pow2(Double($1.0) - $1.1) } }
        if let sparse {
            for k in 0..<n where sparse.allSatisfy({ $0[k] == 0 }) { average[k] = 0 }
        }
        let referenceGap = reference.map { reference in
            let norm = reference.values.reduce(0.0) { $0 + pow2(Double($1)) }.squareRoot()
            return weights.map { w in zip(w, reference.values).reduce(0.0) { $0 + pow2(Double($1.0) - Double($1.1)) }.squareRoot() / norm }
                .max() ?? 0
        }
        let cluster = monitor.cluster
        let mean = try DenseParameters(spec: cluster.grid.spec, values: average.map { Float($0) })
        try await cluster.write(.weights, mean)
        let loss = try await cluster.gradient(at: .weights, into: .gradient, shards: monitor.trainShards)
        let gradient = try await cluster.read(.gradient).values
        var penalty = 0.0
        var squaredNorm = 0.0
        for (w, g) in zip(mean.values, gradient) {
            let (w, g) = (Double(w), Double(g) * rowWeight)
            switch options.regularizer {
            case .l2:
                penalty += 0.5 * ridge * w * w
                squaredNorm += pow2(g + ridge * w)
            case .l1:
                let lambda = options.l1Strength
                penalty += lambda * abs(w)
                squaredNorm += pow2(w != 0 ? g + (w > 0 ? lambda : -lambda) : max(abs(g) - lambda, 0))
            }
        }
        let accuracy = try await monitor.testAccuracy(at: .weights)
        phases["measure", default: 0] += watch.seconds
        return IterationRecord(
            iteration: round, elapsedSeconds: seconds, objective: try checked(loss * rowWeight + penalty, "U(w̄)"),
            gradientNorm: try checked(squaredNorm.squareRoot(), "‖∇U(w̄)‖"), cgIterations: cgIterations, lambda: tau, step: step,
            lineSearchSteps: 0, testAccuracy: accuracy, outcome: round == 0 ? .start : .round, phaseSeconds: phases,
            disagreement: disagreement / Double(count), zeroFraction: Double(mean.values.count(where: { $0 == 0 })) / Double(n),
            bytesSent: bytesSent, referenceGap: referenceGap)
    }
}

/// `S_t(x) = sign(x)·max(|x| − t, 0)`, element-wise.
func softThreshold(_ x: [Float], _ t: Double) -> [Float] {
    x.map { v in
        let magnitude = abs(Double(v)) - t
        return magnitude > 0 ? Float(v > 0 ? magnitude : -magnitude) : 0
    }
}

private func pow2(_ x: Double) -> Double { x * x }
