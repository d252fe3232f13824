import NewtonCore

/// What happened in one iteration (a Newton step, or an epoch of a
/// first-order method). Iteration 0 describes the starting point.
public struct IterationRecord: Sendable, Codable, Equatable {
    public enum Outcome: String, Sendable, Codable {
        case start
        /// The line search accepted a step.
        case accepted
        /// The line search accepted a step that included a direction of
        /// negative curvature (Hessian-free).
        case negativeCurvature = "negative-curvature"
        /// The line search hit its cap; θ is unchanged and λ was raised.
        case lineSearchFailed = "line-search-failed"
        /// A first-order epoch.
        case epoch
        /// A round of a decentralised method.
        case round
    }

    public var iteration: Int
    public var elapsedSeconds: Double
    public var objective: Double
    public var gradientNorm: Double
    public var cgIterations: Int
    public var lambda: Double
    public var step: Double
    public var lineSearchSteps: Int
    public var testAccuracy: Double?
    public var outcome: Outcome
    /// Seconds spent in each phase of this iteration.
    public var phaseSeconds: [String: Double]
    /// Hessian-free: what the step did with curvature (nil for other trainers
    /// and for records that came over the wire).
    public var curvatureStep: CurvatureStepRecord?
    /// Decentralised methods: (1/I)Σᵢ‖wᵢ − w̄‖² over the agents' weights.
    public var disagreement: Double?
    /// Decentralised methods: the fraction of zero entries in w̄.
    public var zeroFraction: Double?
    /// Decentralised methods: bytes each agent sent its neighbours in the
    /// round, averaged over agents.
    public var bytesSent: Double?
    /// Decentralised methods given a reference model w* (an optimum):
    /// maxᵢ ‖wᵢ − w*‖/‖w*‖ over the agents.
    public var referenceGap: Double?
    /// Cluster jobs: RPC payload bytes the driver sent and received since
    /// the previous record (tensors, tasks, data blocks; framing not counted).
    public var bytesMoved: Double?

    public init(
        iteration: Int, elapsedSeconds: Double, objective: Double, gradientNorm: Double, cgIterations: Int,
        lambda: Double, step: Double, lineSearchSteps: Int, testAccuracy: Double?, outcome: Outcome,
        phaseSeconds: [String: Double], curvatureStep: CurvatureStepRecord? = nil, disagreement: Double? = nil,
        zeroFraction: Double? = nil, bytesSent: Double? = nil, referenceGap: Double? = nil,
        bytesMoved: Double? = nil
    ) {
        self.iteration = iteration
        self.elapsedSeconds = elapsedSeconds
        self.objective = objective
        self.gradientNorm = gradientNorm
        self.cgIterations = cgIterations
        self.lambda = lambda
        self.step = step
        self.lineSearchSteps = lineSearchSteps
        self.testAccuracy = testAccuracy
        self.outcome = outcome
        self.phaseSeconds = phaseSeconds
        self.curvatureStep = curvatureStep
        self.disagreement = disagreement
        self.zeroFraction = zeroFraction
        self.bytesSent = bytesSent
        self.referenceGap = referenceGap
        self.bytesMoved = bytesMoved
    }

    enum CodingKeys: String, CodingKey {
        case iteration, objective, lambda, step, outcome, disagreement
        case elapsedSeconds = "elapsed_s"
        case gradientNorm = "grad_norm"
        case cgIterations = "cg_iterations"
        case lineSearchSteps = "line_search_steps"
        case testAccuracy = "test_accuracy"
        case phaseSeconds = "phase_s"
        case curvatureStep = "curvature_step"
        case zeroFraction = "zero_fraction"
        case bytesSent = "bytes_sent"
        case referenceGap = "reference_gap"
        case bytesMoved = "bytes_moved"
    }
}

/// What one Hessian-free step did with curvature: the diagnostics that say
/// whether the negative-curvature part earns its place.
public struct CurvatureStepRecord: Sendable, Codable, Equatable {
    /// How the solve ended (`converged`, `negative-curvature`, `breakdown`, …).
    public var solveOutcome: String
    /// ‖x‖ of the Newton part (the solver's solution after backtracking).
    public var newtonNorm: Double
    /// κ = pᵀHp/‖p‖², the undamped curvature of the direction of negative
    /// curvature, when one was found and used.
    public var curvature: Double?
    /// The length τ first tried along the unit direction ŝ.
    public var negativeStepTried: Double?
    /// The length accepted along ŝ (0 when the search along ŝ found nothing).
    public var negativeStepTaken: Double?
    /// The share of the iteration's decrease in f that the negative-curvature
    /// part bought, `(f(θ+αx) − f_new) / (f − f_new)`; nil when no negative
    /// curvature was used or the combined step ran without diagnostics.
    public var negativeShare: Double?

    public init(
        solveOutcome: String, newtonNorm: Double, curvature: Double? = nil, negativeStepTried: Double? = nil,
        negativeStepTaken: Double? = nil, negativeShare: Double? = nil
    ) {
        self.solveOutcome = solveOutcome
        self.newtonNorm = newtonNorm
        self.curvature = curvature
        self.negativeStepTried = negativeStepTried
        self.negativeStepTaken = negativeStepTaken
        self.negativeShare = negativeShare
    }

    enum CodingKeys: String, CodingKey {
        case curvature
        case solveOutcome = "solve_outcome"
        case newtonNorm = "newton_norm"
        case negativeStepTried = "nc_step_tried"
        case negativeStepTaken = "nc_step"
        case negativeShare = "nc_share"
    }
}

/// Why a run ended.
public enum StopReason: String, Sendable, Codable {
    case iterationLimit = "iteration-limit"
    case timeLimit = "time-limit"
    case converged
    /// The line search failed several times in a row.
    case stalled
    case cancelled
}

/// The end of a run.
public struct TrainingSummary: Sendable {
    public var records: [IterationRecord]
    public var stopReason: StopReason
    public var seconds: Double
}

/// How long a run may go on.
public struct TrainingBudget: Sendable, Equatable {
    public var maxIterations: Int
    /// Wall-clock seconds; nil for no limit.
    public var timeLimit: Double?
    /// Stop once ‖∇f‖ ≤ this fraction of its initial value (0 disables).
    public var gradientTolerance: Double

    public init(maxIterations: Int, timeLimit: Double? = nil, gradientTolerance: Double = 0) {
        self.maxIterations = maxIterations
        self.timeLimit = timeLimit
        self.gradientTolerance = gradientTolerance
    }
}

/// Receives each record as soon as it is made.
public typealias IterationObserver = @Sendable (IterationRecord) -> Void

/// What every trainer keeps while it runs: the clock, the records (each
/// handed to the observer as it is made), the budget's stop rules and the
/// checkpoints. A resumed run starts where its checkpoint left off.
struct RunLog {
    let clock = Stopwatch()
    let budget: TrainingBudget
    let observe: IterationObserver
    let checkpoints: CheckpointPolicy?
    /// Seconds taken before this process resumed the run.
    private let secondsBefore: Double
    private(set) var records: [IterationRecord] = []
    /// ‖∇f‖ at iteration 0.
    private(set) var initialGradientNorm: Double?

    init(budget: TrainingBudget, observe: @escaping IterationObserver, checkpoints: CheckpointPolicy?, resuming: Checkpoint.State?) {
        self.budget = budget
        self.observe = observe
        self.checkpoints = checkpoints
        self.secondsBefore = resuming?.elapsedSeconds ?? 0
        self.initialGradientNorm = resuming?.initialGradientNorm
    }

    var seconds: Double { secondsBefore + clock.seconds }

    mutating func emit(_ record: IterationRecord) {
        if record.iteration == 0 { initialGradientNorm = record.gradientNorm }
        records.append(record)
        observe(record)
    }

    /// After `record` was emitted: when a checkpoint is due, reads the
    /// weights and `optimizerVectors` from the cluster and saves them with
    /// the run's scalars.
    func checkpoint(
        after record: IterationRecord, lambda: Double = 0, lineSearchFailures: Int = 0, minibatchSteps: Int = 0,
        optimizerVectors: [VectorName] = [], from cluster: ClusterCoordinator
    ) async throws {
        guard let checkpoints, record.iteration % checkpoints.every == 0 else { return }
        let state = Checkpoint.State(
            iteration: record.iteration, elapsedSeconds: record.elapsedSeconds, initialGradientNorm: initialGradientNorm ?? 0,
            lambda: lambda, lineSearchFailures: lineSearchFailures, minibatchSteps: minibatchSteps)
        var vectors = [VectorName: DenseParameters]()
        for name in optimizerVectors { vectors[name] = try await cluster.read(name) }
        try await checkpoints.save(Checkpoint(state: state, weights: try await cluster.read(.weights), optimizerVectors: vectors))
    }

    /// Why the run ends now, after `iteration` iterations at gradient norm
    /// `gradientNorm`; nil to go on.
    func stopReason(after iteration: Int, gradientNorm: Double) -> StopReason? {
        if iteration >= budget.maxIterations { return .iterationLimit }
        if let limit = budget.timeLimit, seconds >= limit { return .timeLimit }
        if budget.gradientTolerance > 0, let initial = initialGradientNorm, gradientNorm <= budget.gradientTolerance * initial {
            return .converged
        }
        if Task.isCancelled { return .cancelled }
        return nil
    }

    func summary(_ reason: StopReason) -> TrainingSummary {
        TrainingSummary(records: records, stopReason: reason, seconds: seconds)
    }
}

/// A wall clock for elapsed times and per-phase timings.
struct Stopwatch {
    private let start = ContinuousClock.now
    var seconds: Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }
}

/// Times `body` and adds the seconds to `phases[name]`.
func timed<T>(
    _ name: String, into phases: inout [String: Double], isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T
) async rethrows -> T {
    let watch = Stopwatch()
    let result = try await body()
    phases[name, default: 0] += watch.seconds
    return result
}
