import NewtonCore

/// NEXT or DGD over agents that each own a cluster (`LocalAgent`, in this
/// process or in an agent process): the agent's servers hold its copy of the
/// weights and its optimiser vectors, its workers hold its rows. Agents
/// exchange vectors only with their neighbours in the round's graph; the
/// trainer starts the rounds and collects each agent's weights after it,
/// and `monitor` (a cluster over every row) measures the average model w̄
/// for the records. Nothing the trainer sees feeds back into the iterates.
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
    public let run: DecentralisedRun
    /// In agent order; each runs its own steps and exchanges.
    public let agents: [any DecentralisedAgent]
    /// Every training row and the test rows, for the records at w̄.
    public let monitor: Objective

    /// Power iterations behind each agent's default τ.
    public static let powerIterations = 12

    public init(run: DecentralisedRun, agents: [any DecentralisedAgent], monitor: Objective) throws {
        guard agents.count == run.options.agents else {
            throw TrainingError(.invalidOptions, "the run is for \(run.options.agents) agents but \(agents.count) were given")
        }
        let agentRows = agents.map(\.rows)
        guard agentRows.reduce(0, +) == monitor.rows, monitor.rows == run.totalRows, agentRows.allSatisfy({ $0 > 0 }) else {
            throw TrainingError(
                .invalidOptions,
                "the agents hold \(agentRows) rows (\(agentRows.reduce(0, +)) in all); each needs some and together the monitor's \(monitor.rows)"
            )
        }
        self.run = run
        self.agents = agents
        self.monitor = monitor
    }

    private var count: Int { agents.count }
    private var options: DecentralisedOptions { run.options }

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
            try await forEachAgent { _, agent in try await agent.start(runID: jobID, data: data, initial: initial) }
        }
        let meanTau = taus.reduce(0, +) / Double(count)
        var record = try await measure(
            round: 0, weights: Array(repeating: initial.values, count: count), sparse: nil, reference: reference,
            seconds: runLog.seconds, step: options.initialStep, tau: meanTau, phases: phases)
        runLog.emit(record)
        var alpha = options.initialStep
        var round = 0
        while true {
            if let reason = runLog.stopReason(after: round, gradientNorm: record.gradientNorm) { return runLog.summary(reason) }
            round += 1
            alpha *= 1 - options.stepDecay * alpha
            let (step, thisRound) = (alpha, round)
            let reports = try await forEachAgent { _, agent in try await agent.round(thisRound, alpha: step) }
            // A phase lasts as long as its slowest agent's.
            let phases = reports.reduce(into: [String: Double]()) { phases, report in
                phases.merge(report.phaseSeconds, uniquingKeysWith: max)
            }
            let sparse = reports.compactMap(\.sparse)
            record = try await measure(
                round: round, weights: reports.map(\.weights), sparse: sparse.isEmpty ? nil : sparse, reference: reference,
                seconds: runLog.seconds, step: step, tau: meanTau, cgIterations: reports.map(\.cgIterations).max() ?? 0,
                bytesSent: Double(reports.reduce(0) { $0 + $1.bytesSent }) / Double(count), phases: phases)
            runLog.emit(record)
        }
    }

    /// Runs `body` for every agent concurrently; results in agent order.
    private func forEachAgent<T: Sendable>(_ body: @escaping @Sendable (Int, any DecentralisedAgent) async throws -> T) async throws -> [T]
    {
        try await withThrowingTaskGroup(of: (Int, T).self) { group in
            for (i, agent) in agents.enumerated() { group.addTask { (i, try await body(i, agent)) } }
            var results = [T?](repeating: nil, count: agents.count)
            for try await (i, value) in group { results[i] = value }
            return results.map { $0! }
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
            let (w, g) = (Double(w), Double(g) * run.rowWeight)
            switch options.regularizer {
            case .l2:
                penalty += 0.5 * run.ridge * w * w
                squaredNorm += pow2(g + run.ridge * w)
            case .l1:
                let lambda = options.l1Strength
                penalty += lambda * abs(w)
                squaredNorm += pow2(w != 0 ? g + (w > 0 ? lambda : -lambda) : max(abs(g) - lambda, 0))
            }
        }
        let accuracy = try await monitor.testAccuracy(at: .weights)
        phases["measure", default: 0] += watch.seconds
        return IterationRecord(
            iteration: round, elapsedSeconds: seconds, objective: try checked(loss * run.rowWeight + penalty, "U(w̄)"),
            gradientNorm: try checked(squaredNorm.squareRoot(), "‖∇U(w̄)‖"), cgIterations: cgIterations, lambda: tau, step: step,
            lineSearchSteps: 0, testAccuracy: accuracy, outcome: round == 0 ? .start : .round, phaseSeconds: phases,
            disagreement: disagreement / Double(count), zeroFraction: Double(mean.values.count(where: { $0 == 0 })) / Double(n),
            bytesSent: bytesSent, referenceGap: referenceGap)
    }
}

private func pow2(_ x: Double) -> Double { x * x }
