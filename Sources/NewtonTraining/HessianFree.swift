import NewtonCore

/// Which system a Hessian-free step solves, and how.
public enum CurvatureSolver: String, Sendable, CaseIterable, Codable {
    /// CG on the damped Gauss-Newton matrix (positive definite).
    case gaussNewtonCG = "gn-cg"
    /// CG on the damped true Hessian; stops at a direction of negative
    /// curvature and keeps it.
    case hessianCG = "hessian-cg"
    /// BiCG-STAB on the damped true Hessian (tolerates indefiniteness).
    case bicgstab
}

/// How Hessian-free uses a direction of negative curvature p it found (unit
/// direction `ŝ = −sign(gᵀp) p/‖p‖`, length `τ = max(‖x‖, |κ|)`, κ the
/// undamped curvature `pᵀHp/‖p‖²`, x the Newton part).
public enum NegativeCurvatureStep: String, Sendable, CaseIterable, Codable {
    /// `d = x + τŝ`, one Armijo search along d (the paper's step).
    case combined
    /// The Newton part x is searched on its own (and alone drives λ); then,
    /// from where it landed, ŝ is searched from length τ, halving (at most
    /// four times) until the decrease is a share η of what the model
    /// `t gᵀŝ + ½t²κ` promises, doubling instead while f falls if τ was
    /// accepted at once. The default: it beat `combined` at 8 192 rows
    /// (README, Hessian-free table).
    case separate
}

/// The knobs of Hessian-free optimisation with negative curvature (He,
/// Mudigere, Smelyanskiy, Takáč) and Martens' practical extras.
public struct HessianFreeOptions: Sendable, Equatable {
    public var solver = CurvatureSolver.hessianCG
    /// Rows per gradient minibatch; nil for the full gradient.
    public var gradientBatch: Int?
    /// Rows per curvature minibatch (drawn fresh each iteration).
    public var curvatureBatch = 3000
    /// CG stops at pᵀ(H+λI)p ≤ ε‖p‖² (hessian-cg only).
    public var negativeCurvatureTolerance = 1e-10
    /// Start each solve from this fraction of the previous solution (0: from 0).
    public var warmStart = 0.95
    /// Keep CG iterates at ⌈1.3^j⌉ and take the best on the curvature batch.
    public var iterateBacktracking = true
    /// Martens' relative-progress stopping rule for CG.
    public var relativeProgressStop = true
    /// CG (not BiCG-STAB) preconditioned by Martens' diagonal
    /// `M = (diag(Σ_r ∇ξ_r²)/|batch| + μ)^0.75`, from the curvature batch.
    public var diagonalPreconditioner = false
    /// hessian-cg: at ‖∇f‖ below this, CG from −∇f cannot see the curvature,
    /// so a CG run from a random right-hand side probes for negative
    /// curvature (a first-order stationary point may be a saddle).
    public var saddleGradientNorm = 1e-6
    /// How a direction of negative curvature enters the step.
    public var negativeCurvatureStep = NegativeCurvatureStep.separate
    /// Measure what the negative-curvature part of a combined step buys (one
    /// more function evaluation per such iteration; free for `separate`).
    public var diagnostics = false

    public init() {}

    public var problems: [String] {
        var p = [String]()
        if let b = gradientBatch, b < 1 { p.append("gradient batch must be at least 1 row, got \(b)") }
        if curvatureBatch < 1 { p.append("curvature batch must be at least 1 row, got \(curvatureBatch)") }
        if !(saddleGradientNorm >= 0) { p.append("saddle gradient norm must be non-negative, got \(saddleGradientNorm)") }
        if !(negativeCurvatureTolerance >= 0) {
            p.append("negative-curvature tolerance must be non-negative, got \(negativeCurvatureTolerance)")
        }
        if !(warmStart >= 0 && warmStart <= 1) { p.append("warm start must be in [0, 1], got \(warmStart)") }
        return p
    }
}

/// Hessian-free optimisation with negative curvature. Each iteration:
///
/// 1. a fresh curvature batch (the gradient batch, or all rows, was drawn at
///    the end of the previous iteration);
/// 2. solve `(A + μI) x = −g` with A = H (true Hessian, R-operator) or G,
///    μ = λ + 1/(C·l): CG warm-started from 0.95·x_prev (from 0 after a
///    solve that stopped at negative curvature or broke down), stopped by the
///    tolerance, Martens' relative progress rule or — on H — at a direction
///    p with pᵀ(H+μI)p ≤ ε‖p‖²; or BiCG-STAB;
///    optionally preconditioned by Martens' diagonal (empirical Fisher on the
///    curvature batch, damped, to the power 0.75);
/// 3. CG-iterate backtracking: of the iterates kept at ⌈1.3^j⌉, walk back
///    from the last while f on the curvature batch improves;
/// 4. **negative curvature**: when CG found such a p (or, at a stationary
///    point, a probe from a random vector found one), `ŝ = −sign(gᵀp) p/‖p‖`
///    (a non-ascent direction along which the quadratic model falls without
///    bound) with length `τ = max(‖x‖, |κ|)`, `κ = pᵀHp/‖p‖²` the undamped
///    curvature: near a saddle the Newton part x is tiny but the negative
///    curvature is not. `combined` steps along `d = x + τŝ`; `separate`
///    steps along x first and searches ŝ afterwards (step 6);
/// 5. **fallback**: if d is still an ascent direction (`gᵀd > 0`, possible
///    on an indefinite H, e.g. after BiCG-STAB), it is replaced by the
///    damped gradient step `d = −g/μ` (a combined step drops ŝ);
/// 6. Armijo backtracking on the gradient batch's f, then Levenberg–
///    Marquardt on ρ = actual / predicted with the predicted reduction
///    `αgᵀd + ½α²dᵀAd` (one more product); a non-negative prediction
///    counts as a bad fit (λ grows). `separate` then searches `tŝ` from the
///    point reached, t = τ, τ/2, … (or 2τ, 4τ, … while τ itself passes),
///    until `f` falls by a share η of the model's `t gᵀŝ + ½t²κ`, and keeps
///    the point if it does;
/// 7. the next gradient batch, f and ∇f at the new point.
public struct HessianFree: Sendable {
    public let options: HessianFreeOptions
    public let secondOrder: SecondOrderOptions
    /// Seeds the minibatches and probes.
    public let seed: UInt64
    public let objective: Objective

    public init(options: HessianFreeOptions, secondOrder: SecondOrderOptions, seed: UInt64, objective: Objective) throws {
        if let problem = (secondOrder.problems + options.problems).first { throw TrainingError(.invalidOptions, problem) }
        self.options = options
        self.secondOrder = secondOrder
        self.seed = seed
        self.objective = objective
    }

    private var step: StepControl { secondOrder.step }

    /// Halvings allowed along ŝ: a τ that needs more is not worth its
    /// evaluations, the Newton part has already been taken.
    private static let negativeSearchSteps = 4

    private var cluster: ClusterCoordinator { objective.cluster }

    /// Runs from the weights already on the servers; with `resume`, continues
    /// after that checkpoint (whose vectors are already on the servers).
    public func train(
        budget: TrainingBudget, resume: Checkpoint.State? = nil, checkpoints: CheckpointPolicy? = nil,
        observe: @escaping IterationObserver = { _ in }
    ) async throws -> TrainingSummary {
        var runLog = RunLog(budget: budget, observe: observe, checkpoints: checkpoints, resuming: resume)
        var phases = [String: Double]()
        var iteration = resume?.iteration ?? 0
        var batch = gradientBatch(iteration: iteration)
        var (f, gradientNorm) = try await timed("gradient", into: &phases) {
            try await objective.valueAndGradient(at: .weights, into: .gradient, on: batch)
        }
        var lambda = resume?.lambda ?? step.initialLambda
        var failures = resume?.lineSearchFailures ?? 0
        // Every iteration leaves its solution as the next one's warm start.
        var havePrevious = iteration > 0
        if resume == nil {
            let start = IterationRecord(
                iteration: 0, elapsedSeconds: runLog.seconds, objective: f, gradientNorm: gradientNorm,
                cgIterations: 0, lambda: lambda, step: 0, lineSearchSteps: 0,
                testAccuracy: try await objective.testAccuracy(at: .weights), outcome: .start, phaseSeconds: phases)
            runLog.emit(start)
            try await runLog.checkpoint(after: start, lambda: lambda, from: cluster)
        }
        while true {
            if let reason = runLog.stopReason(after: iteration, gradientNorm: gradientNorm) { return runLog.summary(reason) }
            iteration += 1
            phases = [:]

            // 1. Curvature batch and the damped operator.
            let curvatureRows = objective.sampleRows(options.curvatureBatch, seed: seed, stream: 2000 + UInt64(iteration))
            let curvatureBatch = objective.batch(curvatureRows)
            let kind: Curvature.Kind =
                options.solver == .gaussNewtonCG
                ? .gaussNewtonByROperator(shards: curvatureBatch.shards) : .hessian(shards: curvatureBatch.shards)
            let damping = lambda + objective.ridge
            let A = DampedOperator(
                curvature: Curvature(cluster: cluster, kind: kind, scale: 1 / Double(curvatureRows.count)), damping: damping)
            let space = ServerVectorSpace(cluster: cluster, operator: A)

            // 2. Solve.
            var start: VectorName?
            if havePrevious && options.warmStart > 0 {
                let kept = try await cluster.run([
                    .scale(.previousDirection, by: options.warmStart), .dot(.previousDirection, .previousDirection),
                ])
                if kept[0] > 0 { start = .previousDirection }
            }
            let inversePreconditioner =
                options.solver == .bicgstab ? nil : try await preconditioner(on: curvatureBatch, damping: damping, phases: &phases)
            var iterates = KeptIterates(keep: options.iterateBacktracking, stopOnRelativeProgress: options.relativeProgressStop)
            let report = try await timed("solve", into: &phases) {
                switch options.solver {
                case .bicgstab:
                    return try await BiCGSTAB(tolerance: secondOrder.cgTolerance, maxIterations: secondOrder.cgMaxIterations)
                        .solve(in: space, rhs: .gradient, gradientNorm: gradientNorm, start: start)
                case .gaussNewtonCG, .hessianCG:
                    let cg = ConjugateGradient(
                        tolerance: secondOrder.cgTolerance, maxIterations: secondOrder.cgMaxIterations,
                        curvature: options.solver == .hessianCG
                            ? .stopAtNegative(tolerance: options.negativeCurvatureTolerance) : .positiveDefinite,
                        inversePreconditioner: inversePreconditioner)
                    let report = try await cg.solve(in: space, rhs: .gradient, gradientNorm: gradientNorm, start: start) {
                        try await iterates.observe($0, in: space)
                    }
                    try await iterates.finish(after: report.iterations, in: space)
                    return report
                }
            }
            // A solve cut short by indefiniteness leaves x where the warm start
            // put it, possibly far off on this batch: no start for the next.
            let cutShort = report.outcome == .negativeCurvature || report.outcome == .breakdown
            try await cluster.run([cutShort ? .fill(target: .previousDirection, value: 0) : .copy(.direction, to: .previousDirection)])
            havePrevious = true

            // 3. Backtrack over the kept iterates.
            if iterates.names.count > 1 {
                try await timed("backtrack", into: &phases) { try await backtrack(iterates.names, on: curvatureBatch) }
            }

            // 4. Negative curvature, from CG or from a probe at a stationary point.
            var negativeCurvature = report.negativeCurvature
            if options.solver == .hessianCG && negativeCurvature == nil && gradientNorm <= options.saddleGradientNorm {
                negativeCurvature = try await timed("solve", into: &phases) {
                    try await probeNegativeCurvature(space, iteration: iteration)
                }
            }
            var negative: NegativeDirection?
            if let curvature = negativeCurvature { negative = try await negativeDirection(curvature: curvature - damping) }
            var curvatureStep = CurvatureStepRecord(
                solveOutcome: report.outcome.rawValue, newtonNorm: negative?.newtonNorm ?? 0, curvature: negative?.curvature,
                negativeStepTried: negative?.length)
            let combined = options.negativeCurvatureStep == .combined ? negative : nil
            if let combined {
                if options.diagnostics { try await cluster.run([.copy(.direction, to: .newtonPart)]) }
                try await cluster.run([.axpy(combined.coefficient(length: combined.length), .negativeCurvature, .direction)])
            }

            // 5. Fallback to the damped gradient step if d ascends.
            let dots = try await cluster.run([.dot(.gradient, .direction), .dot(.direction, .direction)])
            if negative == nil { curvatureStep.newtonNorm = dots[1].squareRoot() }
            var gd = try checked(dots[0], "∇fᵀd")
            var combinedUsed = combined != nil
            if gd > 0 {
                combinedUsed = false
                try await cluster.run([.combine(target: .direction, terms: [VectorTerm(-1 / damping, .gradient)])])
                gd = -gradientNorm * gradientNorm / damping
            }
            let dAd = try await timed("solve", into: &phases) { () -> Double in
                let d = try await A.apply(
                    .direction, into: .product, first: [], then: [.dot(.direction, .product), .dot(.direction, .direction)])
                return d[0] - lambda * d[1]
            }

            // 6. Line search on the gradient batch, then damping; with the
            //    separate step, a second search along ŝ from where it landed.
            var search = try await timed("line_search", into: &phases) {
                try await step.search(objective, on: batch, from: f, slope: gd)
            }
            let usedLambda = lambda
            lambda = step.nextLambda(lambda, after: search, from: f, slope: gd, curvature: dAd)
            if combinedUsed, options.diagnostics, let value = search.value {
                curvatureStep.negativeStepTaken = search.step * (combined?.length ?? 0)
                curvatureStep.negativeShare = try await shareOfDecrease(from: f, to: value, step: search.step, on: batch)
            }
            if search.value != nil { try await cluster.run([.copy(.trial, to: .weights)]) }
            var negativeUsed = combinedUsed && search.value != nil
            if let negative, options.negativeCurvatureStep == .separate {
                let landed = search.value ?? f
                let alongS = try await timed("line_search", into: &phases) {
                    try await searchAlong(negative, from: landed, on: batch)
                }
                search.steps += alongS.steps
                curvatureStep.negativeStepTaken = alongS.step * negative.length
                if let value = alongS.value {
                    try await cluster.run([.copy(.trial, to: .weights)])
                    curvatureStep.negativeShare = (landed - value) / (f - value)
                    search.value = value
                    negativeUsed = true
                }
            }
            let outcome: IterationRecord.Outcome
            if search.value != nil {
                failures = 0
                outcome = negativeUsed ? .negativeCurvature : .accepted
            } else {
                failures += 1
                outcome = .lineSearchFailed
            }

            // 7. The next gradient batch at the new point.
            batch = gradientBatch(iteration: iteration)
            (f, gradientNorm) = try await timed("gradient", into: &phases) {
                try await objective.valueAndGradient(at: .weights, into: .gradient, on: batch)
            }
            let accuracy = try await timed("evaluate", into: &phases) { try await objective.testAccuracy(at: .weights) }
            let record = IterationRecord(
                iteration: iteration, elapsedSeconds: runLog.seconds, objective: f, gradientNorm: gradientNorm,
                cgIterations: report.iterations, lambda: usedLambda, step: search.step, lineSearchSteps: search.steps,
                testAccuracy: accuracy, outcome: outcome, phaseSeconds: phases,
                curvatureStep: options.solver == .gaussNewtonCG ? nil : curvatureStep)
            runLog.emit(record)
            try await runLog.checkpoint(
                after: record, lambda: lambda, lineSearchFailures: failures, optimizerVectors: [.previousDirection], from: cluster)
            if failures >= step.maxLineSearchFailures { return runLog.summary(.stalled) }
        }
    }

    /// The gradient minibatch for an iteration (all rows without a batch size).
    private func gradientBatch(iteration: Int) -> Objective.Batch {
        guard let size = options.gradientBatch, size < objective.rows else { return objective.fullBatch }
        return objective.batch(objective.sampleRows(size, seed: seed, stream: 3000 + UInt64(iteration)))
    }

    /// Martens' diagonal preconditioner `M⁻¹ = (diag(Σ_r ∇ξ_r²)/|batch| + μ)^−0.75`
    /// on the curvature batch, when asked for.
    private func preconditioner(on batch: Objective.Batch, damping: Double, phases: inout [String: Double]) async throws -> VectorName? {
        guard options.diagonalPreconditioner else { return nil }
        try await timed("preconditioner", into: &phases) {
            try await cluster.squaredGradientSum(at: .weights, into: .squaredGradient, shards: batch.shards)
            try await cluster.run([
                .power(
                    target: .inversePreconditioner, source: .squaredGradient,
                    scale: 1 / Double(batch.rows), shift: damping, exponent: -0.75)
            ])
        }
        return .inversePreconditioner
    }

    /// Walks back from the last kept CG iterate while f(θ + x) on the
    /// curvature batch improves, and leaves the best in `.direction`.
    private func backtrack(_ iterates: [VectorName], on batch: Objective.Batch) async throws {
        func value(_ x: VectorName) async throws -> Double {
            try await cluster.run([.combine(target: .trial, terms: [VectorTerm(1, .weights), VectorTerm(1, x)])])
            return try await objective.value(at: .trial, on: batch)
        }
        var best = iterates[iterates.count - 1]
        var bestValue = try await value(best)
        for candidate in iterates.dropLast().reversed() {
            let v = try await value(candidate)
            guard v < bestValue else { break }
            (best, bestValue) = (candidate, v)
        }
        try await cluster.run([.copy(best, to: .direction)])
    }

    /// CG on `A x = −u` for a random u drawn from the seed, stopping at negative
    /// curvature: returns the damped curvature of the direction it finds
    /// (left in `.negativeCurvature`), or nil.
    private func probeNegativeCurvature(_ space: some KrylovSpace, iteration: Int) async throws -> Double? {
        var probe = DenseParameters(zeros: cluster.grid.spec)
        var rng = SeededGenerator(seed: seed, stream: 4000 + UInt64(iteration))
        for i in probe.values.indices { probe.values[i] = Float(rng.nextGaussian()) }
        try await cluster.write(.probe, probe)
        let norm = try await cluster.run([.dot(.probe, .probe)])[0].squareRoot()
        // The probe's own solution is not a step; keep the Newton part aside.
        try await cluster.run([.copy(.direction, to: .newtonPart)])
        let report = try await ConjugateGradient(
            tolerance: secondOrder.cgTolerance, maxIterations: secondOrder.cgMaxIterations,
            curvature: .stopAtNegative(tolerance: options.negativeCurvatureTolerance)
        ).solve(in: space, rhs: .probe, gradientNorm: norm)
        try await cluster.run([.copy(.newtonPart, to: .direction)])
        return report.negativeCurvature
    }

    /// The unit direction `ŝ = −sign(gᵀp) p/‖p‖` of the negative curvature p
    /// in `.negativeCurvature` (undamped curvature κ) and its first length
    /// `τ = max(‖x‖, |κ|)`: near a saddle the Newton part x is tiny but the
    /// negative curvature is not. Nil when p is zero.
    private func negativeDirection(curvature kappa: Double) async throws -> NegativeDirection? {
        let dots = try await cluster.run([
            .dot(.gradient, .negativeCurvature), .dot(.negativeCurvature, .negativeCurvature), .dot(.direction, .direction),
        ])
        let (gp, pp, xx) = (dots[0], dots[1], dots[2])
        guard pp > 0 else { return nil }
        let sign: Double = gp > 0 ? -1 : 1
        return NegativeDirection(
            sign: sign, norm: pp.squareRoot(), slope: sign * gp / pp.squareRoot(), curvature: kappa,
            length: max(xx.squareRoot(), abs(kappa)), newtonNorm: xx.squareRoot())
    }

    /// Searches along `t ŝ` from the current weights (value `f`), t = τ, τ/2, …,
    /// for `f(θ + tŝ) ≤ f + η(t gᵀŝ + ½t²κ)`, and when τ passes at once tries
    /// 2τ, 4τ, … while f keeps falling; the accepted point is left in `.trial`.
    private func searchAlong(_ negative: NegativeDirection, from f: Double, on batch: Objective.Batch) async throws
        -> StepControl.Search
    {
        let tau = negative.length
        try await cluster.run([
            .combine(target: .direction, terms: [VectorTerm(negative.coefficient(length: tau), .negativeCurvature)])
        ])
        let (slope, curvature) = (tau * negative.slope, tau * tau * negative.curvature)
        var shortening = step
        shortening.maxLineSearchSteps = min(step.maxLineSearchSteps, Self.negativeSearchSteps)
        var search = try await shortening.search(objective, on: batch, from: f, slope: slope, curvature: curvature)
        guard var best = search.value, search.steps == 1 else { return search }
        // τ itself was good enough: double it while f keeps falling enough.
        var alpha = 1.0
        for _ in 0..<step.maxLineSearchSteps {
            alpha *= 2
            search.steps += 1
            try await cluster.run([.combine(target: .trial, terms: [VectorTerm(1, .weights), VectorTerm(alpha, .direction)])])
            let value = try await objective.value(at: .trial, on: batch)
            guard value < best, value <= f + step.armijo * alpha * slope + step.armijo * 0.5 * alpha * alpha * curvature else {
                alpha /= 2
                try await cluster.run([.combine(target: .trial, terms: [VectorTerm(1, .weights), VectorTerm(alpha, .direction)])])
                break
            }
            best = value
        }
        search.value = best
        search.step = alpha
        return search
    }

    /// `(f(θ+αx) − f_new) / (f − f_new)` for the Newton part x kept in
    /// `.newtonPart`: the share of the decrease a combined step's negative
    /// curvature bought. Costs one evaluation on the batch.
    private func shareOfDecrease(from f: Double, to value: Double, step alpha: Double, on batch: Objective.Batch) async throws
        -> Double
    {
        try await cluster.run([.combine(target: .newtonPart, terms: [VectorTerm(1, .weights), VectorTerm(alpha, .newtonPart)])])
        let newtonOnly = try await objective.value(at: .newtonPart, on: batch)
        return (newtonOnly - value) / (f - value)
    }
}

/// A direction of negative curvature as a step uses it: `ŝ = sign · p/‖p‖`
/// with p in `.negativeCurvature`.
private struct NegativeDirection {
    var sign: Double
    var norm: Double
    /// gᵀŝ ≤ 0.
    var slope: Double
    /// κ = pᵀHp/‖p‖² < 0, undamped.
    var curvature: Double
    /// τ, the first length tried.
    var length: Double
    /// ‖x‖ of the Newton part when the direction was found.
    var newtonNorm: Double

    /// The coefficient on p that makes `t ŝ`.
    func coefficient(length t: Double) -> Double { sign * t / norm }
}

/// Martens' (2010) extras on a CG run: the iterates at iterations ⌈1.3^j⌉
/// (and the last) kept for backtracking, and the relative-progress stop —
/// at iteration i > k = max(10, ⌈0.1 i⌉) once `(φ_i − φ_{i−k}) / φ_i < k · 5e-4`.
private struct KeptIterates {
    let keep: Bool
    let stopOnRelativeProgress: Bool
    /// The kept iterates, in CG order.
    private(set) var names: [VectorName] = []
    /// φ(x_i), i = 1, 2, …
    private var models: [Double] = []
    private static let keepAt = Set((0..<40).map { Int(pow13($0).rounded(.up)) })

    init(keep: Bool, stopOnRelativeProgress: Bool) {
        self.keep = keep
        self.stopOnRelativeProgress = stopOnRelativeProgress
    }

    /// Keeps the iterate if it is due; true to stop CG.
    mutating func observe(_ progress: ConjugateGradient.Progress, in space: some KrylovSpace) async throws -> Bool {
        models.append(progress.model)
        if keep && Self.keepAt.contains(progress.iteration) { try await keepCurrent(in: space) }
        guard stopOnRelativeProgress else { return false }
        let i = models.count
        let k = max(10, Int((0.1 * Double(i)).rounded(.up)))
        return i > k && models[i - 1] < 0 && (models[i - 1] - models[i - 1 - k]) / models[i - 1] < Double(k) * 5e-4
    }

    /// Keeps the final iterate unless it was kept already.
    mutating func finish(after iterations: Int, in space: some KrylovSpace) async throws {
        if keep && (names.isEmpty || !Self.keepAt.contains(iterations)) { try await keepCurrent(in: space) }
    }

    private mutating func keepCurrent(in space: some KrylovSpace) async throws {
        let name = VectorName.cgIterate(names.count)
        _ = try await space.run([.copy(.direction, to: name)])
        names.append(name)
    }
}

/// 1.3^j, the spacing of kept CG iterates (Martens 2010).
private func pow13(_ j: Int) -> Double {
    var x = 1.0
    for _ in 0..<j { x *= 1.3 }
    return x
}
