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

/// The knobs of Hessian-free optimisation with negative curvature (He,
/// Mudigere, Smelyanskiy, Takáč) and Martens' practical extras.
public struct HessianFreeOptions: Sendable, Equatable {
    /// C in ‖θ‖²/(2·C·l), the same objective as every other method.
    public var regularization = 0.01
    public var solver = CurvatureSolver.hessianCG
    /// Rows per gradient minibatch; nil for the full gradient.
    public var gradientBatch: Int?
    /// Rows per curvature minibatch (drawn fresh each iteration).
    public var curvatureBatch = 3000
    /// The solver stops at ‖r‖ ≤ ξ‖∇f‖.
    public var cgTolerance = 0.1
    public var cgMaxIterations = 250
    /// Levenberg–Marquardt damping and the Armijo line search (as Newton-CG).
    public var step = StepControl()
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
    public var seed: UInt64 = 1

    public init() {}

    public var problems: [String] {
        var p = [String]()
        if !(regularization > 0) { p.append("regularization C must be positive, got \(regularization)") }
        if let b = gradientBatch, b < 1 { p.append("gradient batch must be at least 1 row, got \(b)") }
        if curvatureBatch < 1 { p.append("curvature batch must be at least 1 row, got \(curvatureBatch)") }
        if !(cgTolerance > 0 && cgTolerance < 1) { p.append("CG tolerance must be in (0, 1), got \(cgTolerance)") }
        if cgMaxIterations < 1 { p.append("CG max iterations must be at least 1, got \(cgMaxIterations)") }
        p += step.problems
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
/// 1. the gradient on a minibatch (or all rows) and a fresh curvature batch;
/// 2. solve `(A + μI) x = −g` with A = H (true Hessian, R-operator) or G,
///    μ = λ + 1/(C·l): CG warm-started from 0.95·x_prev, stopped by the
///    tolerance, Martens' relative progress rule or — on H — at a direction
///    p with pᵀ(H+μI)p ≤ ε‖p‖²; or BiCG-STAB;
///    optionally preconditioned by Martens' diagonal (empirical Fisher on the
///    curvature batch, damped, to the power 0.75);
/// 3. CG-iterate backtracking: of the iterates kept at ⌈1.3^j⌉, walk back
///    from the last while f on the curvature batch improves;
/// 4. **negative curvature**: when CG found such a p, the step is
///    `d = x + τ ŝ` with `ŝ = −sign(gᵀp) p/‖p‖` (a non-ascent direction
///    along which the quadratic model falls without bound) and
///    `τ = max(‖x‖, |κ|)`, `κ = pᵀHp/‖p‖²` the undamped curvature: near a
///    saddle the Newton part x is tiny but the negative curvature is not, so
///    the step still leaves it; the line search then shortens it as needed;
/// 5. Armijo backtracking on the gradient batch's f, then Levenberg–
///    Marquardt on ρ = actual / predicted with the predicted reduction
///    `αgᵀd + ½α²dᵀAd` (one more product); a non-negative prediction
///    counts as a bad fit (λ grows).
public struct HessianFree: Sendable {
    public let options: HessianFreeOptions
    public let objective: Objective

    public init(options: HessianFreeOptions, objective: Objective) throws {
        if let problem = options.problems.first { throw TrainingError(.invalidOptions, problem) }
        self.options = options
        self.objective = objective
    }

    private var cluster: ClusterCoordinator { objective.cluster }

    public func train(budget: TrainingBudget, observe: @escaping IterationObserver = { _ in }) async throws -> TrainingSummary {
        var runLog = RunLog(budget: budget, observe: observe)
        var phases = [String: Double]()
        var batch = gradientBatch(iteration: 0)
        var (f, gradientNorm) = try await timed("gradient", into: &phases) {
            try await objective.valueAndGradient(at: .weights, into: .gradient, on: batch)
        }
        runLog.emit(
            IterationRecord(
                iteration: 0, elapsedSeconds: runLog.seconds, objective: f, gradientNorm: gradientNorm,
                cgIterations: 0, lambda: options.step.initialLambda, step: 0, lineSearchSteps: 0,
                testAccuracy: try await objective.testAccuracy(at: .weights), outcome: .start, phaseSeconds: phases))
        var lambda = options.step.initialLambda
        var failures = 0
        var iteration = 0
        var havePrevious = false
        let solver = KrylovSolver(cluster: cluster)
        while true {
            if let reason = runLog.stopReason(after: iteration, gradientNorm: gradientNorm) { return runLog.summary(reason) }
            iteration += 1
            phases = [:]
            let curvatureRows = objective.sampleRows(options.curvatureBatch, seed: options.seed, stream: 2000 + UInt64(iteration))
            let curvatureBatch = objective.batch(curvatureRows)
            let kind: Curvature.Kind = options.solver == .gaussNewtonCG ? .gaussNewton(.rop) : .hessian
            let damping = lambda + objective.ridge
            let A = DampedOperator(
                curvature: Curvature(
                    cluster: cluster, kind: kind, shards: curvatureBatch.shards, outputs: [],
                    scale: 1 / Double(curvatureRows.count)), damping: damping)

            // Solve, backtrack over iterates, add negative curvature.
            var start: VectorName?
            if havePrevious && options.warmStart > 0 {
                try await cluster.run([.combine(target: .previousDirection, terms: [VectorTerm(options.warmStart, .previousDirection)])])
                start = .previousDirection
            }
            var inversePreconditioner: VectorName?
            if options.diagonalPreconditioner && options.solver != .bicgstab {
                try await timed("preconditioner", into: &phases) {
                    try await cluster.squaredGradientSum(at: .weights, into: .squaredGradient, shards: curvatureBatch.shards)
                    try await cluster.run([
                        .power(
                            target: .inversePreconditioner, source: .squaredGradient,
                            scale: 1 / Double(curvatureRows.count), shift: damping, exponent: -0.75)
                    ])
                }
                inversePreconditioner = .inversePreconditioner
            }
            let report = try await timed("solve", into: &phases) {
                switch options.solver {
                case .bicgstab:
                    return try await solver.bicgstab(
                        A, gradient: .gradient, gradientNorm: gradientNorm, tolerance: options.cgTolerance,
                        maxIterations: options.cgMaxIterations, start: start)
                case .gaussNewtonCG, .hessianCG:
                    return try await solver.conjugateGradient(
                        A, gradient: .gradient, gradientNorm: gradientNorm,
                        options: .init(
                            tolerance: options.cgTolerance, maxIterations: options.cgMaxIterations, start: start,
                            negativeCurvatureTolerance: options.solver == .hessianCG ? options.negativeCurvatureTolerance : nil,
                            relativeProgress: options.relativeProgressStop, keepIterates: options.iterateBacktracking,
                            inversePreconditioner: inversePreconditioner))
                }
            }
            try await cluster.run([.combine(target: .previousDirection, terms: [VectorTerm(1, .direction)])])
            havePrevious = true
            if report.keptIterates.count > 1 {
                try await timed("backtrack", into: &phases) { try await backtrack(report.keptIterates, on: curvatureBatch) }
            }
            var negativeCurvature = report.negativeCurvature
            if options.solver == .hessianCG && negativeCurvature == nil && gradientNorm <= options.saddleGradientNorm {
                negativeCurvature = try await timed("solve", into: &phases) {
                    try await probeNegativeCurvature(A, iteration: iteration, solver: solver)
                }
            }
            if let curvature = negativeCurvature {
                try await addNegativeCurvature(curvature: curvature - damping)
            }
            let dots = try await cluster.run([.dot(.gradient, .direction), .dot(.direction, .direction)])
            var gd = try checked(dots[0], "∇fᵀd")
            if gd > 0 {
                // An ascent direction (possible on an indefinite H): use −g.
                negativeCurvature = nil
                try await cluster.run([.combine(target: .direction, terms: [VectorTerm(-1 / damping, .gradient)])])
                gd = -gradientNorm * gradientNorm / damping
            }
            let dAd = try await timed("solve", into: &phases) { () -> Double in
                try await A.apply(.direction, into: .product)
                let d = try await cluster.run([.dot(.direction, .product), .dot(.direction, .direction)])
                return d[0] - lambda * d[1]
            }

            // Line search on the gradient batch, then damping.
            let search = try await timed("line_search", into: &phases) {
                try await options.step.search(objective, on: batch, from: f, slope: gd)
            }
            let usedLambda = lambda
            lambda = options.step.nextLambda(lambda, after: search, from: f, slope: gd, curvature: dAd)
            let outcome: IterationRecord.Outcome
            if search.value != nil {
                try await cluster.run([.combine(target: .weights, terms: [VectorTerm(1, .trial)])])
                failures = 0
                outcome = .accepted
            } else {
                failures += 1
                outcome = .lineSearchFailed
            }
            batch = gradientBatch(iteration: iteration)
            (f, gradientNorm) = try await timed("gradient", into: &phases) {
                try await objective.valueAndGradient(at: .weights, into: .gradient, on: batch)
            }
            let accuracy = try await timed("evaluate", into: &phases) { try await objective.testAccuracy(at: .weights) }
            runLog.emit(
                IterationRecord(
                    iteration: iteration, elapsedSeconds: runLog.seconds, objective: f, gradientNorm: gradientNorm,
                    cgIterations: report.iterations, lambda: usedLambda, step: search.step, lineSearchSteps: search.steps,
                    testAccuracy: accuracy, outcome: negativeCurvature != nil && outcome == .accepted ? .negativeCurvature : outcome,
                    phaseSeconds: phases))
            if failures >= options.step.maxLineSearchFailures { return runLog.summary(.stalled) }
        }
    }

    /// The gradient minibatch for an iteration (all rows without a batch size).
    private func gradientBatch(iteration: Int) -> Objective.Batch {
        guard let size = options.gradientBatch, size < objective.rows else { return objective.fullBatch }
        return objective.batch(objective.sampleRows(size, seed: options.seed, stream: 3000 + UInt64(iteration)))
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
        try await cluster.run([.combine(target: .direction, terms: [VectorTerm(1, best)])])
    }

    /// CG on `A x = u` for a random u drawn from the seed, with negative-
    /// curvature detection: returns the damped curvature of the direction it
    /// finds (left in `.negativeCurvature`), or nil.
    private func probeNegativeCurvature(_ A: DampedOperator, iteration: Int, solver: KrylovSolver) async throws -> Double? {
        var probe = DenseParameters(zeros: cluster.grid.spec)
        var rng = SeededGenerator(seed: options.seed, stream: 4000 + UInt64(iteration))
        for i in probe.values.indices { probe.values[i] = Float(rng.nextGaussian()) }
        try await cluster.write(.probe, probe)
        let norm = try await cluster.run([.dot(.probe, .probe)])[0].squareRoot()
        // The probe's own solution is not a step; keep the Newton part aside.
        try await cluster.run([.combine(target: .probeKept, terms: [VectorTerm(1, .direction)])])
        let report = try await solver.conjugateGradient(
            A, gradient: .probe, gradientNorm: norm,
            options: .init(
                tolerance: options.cgTolerance, maxIterations: options.cgMaxIterations,
                negativeCurvatureTolerance: options.negativeCurvatureTolerance))
        try await cluster.run([.combine(target: .direction, terms: [VectorTerm(1, .probeKept)])])
        return report.negativeCurvature
    }

    /// `d ← x + τ ŝ`, `ŝ = −sign(gᵀp) p/‖p‖`, `τ = max(‖x‖, |κ|)` for the
    /// undamped curvature `κ = pᵀHp/‖p‖²` of the direction found.
    private func addNegativeCurvature(curvature kappa: Double) async throws {
        let dots = try await cluster.run([
            .dot(.gradient, .negativeCurvature), .dot(.negativeCurvature, .negativeCurvature), .dot(.direction, .direction),
        ])
        let (gp, pp, xx) = (dots[0], dots[1], dots[2])
        guard pp > 0 else { return }
        let tau = max(xx.squareRoot(), abs(kappa))
        let sign: Double = gp > 0 ? -1 : 1
        try await cluster.run([
            .combine(
                target: .direction,
                terms: [
                    VectorTerm(1, .direction), VectorTerm(sign * tau / pp.squareRoot(), .negativeCurvature),
                ])
        ])
    }
}
