import Foundation
import NewtonCore

/// How the Gauss-Newton product `Gv` is computed.
public enum ProductsMode: String, Sendable, CaseIterable, Codable {
    /// Jacobian slices of the subsample are cached on the block owners once
    /// per Newton iteration; a product exchanges `|S| × n_L` numbers per block.
    case jacobian
    /// No cache: every product is an R-operator pass on the workers.
    case rop
}

/// The knobs of subsampled Gauss-Newton Newton-CG (Wang et al. 2018), with
/// the defaults of the authors' code.
public struct NewtonOptions: Sendable, Equatable {
    /// |S| / l, the Gauss-Newton subsample drawn fresh each iteration.
    public var subsampleFraction = 0.05
    public var products = ProductsMode.jacobian
    /// Approximate G by its diagonal blocks; each block solves alone.
    public var blockDiagonal = false
    /// Block-diagonal mode: stop the direction search once this fraction of
    /// blocks has finished.
    public var stragglerCutoff = 1.0
    /// Progressive batching: f and ∇f are taken on a fresh sample of this
    /// fraction of the rows in the first iteration (1, the default: on every
    /// row, always)…
    public var gradientSampleFraction = 1.0
    /// …which grows by this factor each iteration until it covers every row.
    public var gradientSampleGrowth = 2.0

    public init() {}

    /// Every problem with these options, as messages naming the option.
    public var problems: [String] {
        var p = [String]()
        if !(subsampleFraction > 0 && subsampleFraction <= 1) { p.append("subsample fraction must be in (0, 1], got \(subsampleFraction)") }
        if blockDiagonal && products != .jacobian {
            p.append("block-diagonal mode needs the jacobian products mode (blocks solve from their cached slices)")
        }
        if !(stragglerCutoff > 0 && stragglerCutoff <= 1) { p.append("straggler cut-off must be in (0, 1], got \(stragglerCutoff)") }
        if !(gradientSampleFraction > 0 && gradientSampleFraction <= 1) {
            p.append("gradient sample fraction must be in (0, 1], got \(gradientSampleFraction)")
        }
        if !(gradientSampleGrowth > 1 && gradientSampleGrowth.isFinite) {
            p.append("gradient sample growth must be a finite factor above 1, got \(gradientSampleGrowth)")
        }
        return p
    }
}

/// Subsampled Gauss-Newton Newton-CG with Levenberg–Marquardt damping and an
/// Armijo backtracking line search. Each iteration:
///
/// 1. draw S (a fraction of the rows) and, in jacobian mode, cache its
///    Jacobian slices on the block owners;
/// 2. solve `(G + λI) d = −∇f` by CG from 0, with
///    `G = I/(C·l) + (1/|S|) Σ_{i∈S} J_iᵀ B_i J_i`, or, block-diagonally,
///    each diagonal block of G on its own;
/// 3. backtrack α = 1, ½, … until `f(θ+αd) ≤ f(θ) + η α ∇fᵀd`;
/// 4. update λ from ρ = actual / predicted reduction, where the prediction
///    `α∇fᵀd + ½α² dᵀGd` leaves λ out.
///
/// When the line search reaches its cap, θ stays, λ grows and the iteration
/// is recorded as `lineSearchFailed`; after `step.maxLineSearchFailures` in a row
/// the run stops as `stalled`.
///
/// With progressive batching (`gradientSampleFraction` < 1), f, ∇f and the
/// line search of an iteration use a fresh sample of the rows that grows
/// geometrically until it covers them all, as HF's gradient minibatch does:
/// a record then carries f and ‖∇f‖ at the new point on the next
/// iteration's sample.
public struct NewtonCG: Sendable {
    public let options: NewtonOptions
    public let secondOrder: SecondOrderOptions
    /// Seeds the subsamples.
    public let seed: UInt64
    public let objective: Objective

    public init(options: NewtonOptions, secondOrder: SecondOrderOptions, seed: UInt64, objective: Objective) throws {
        if let problem = (secondOrder.problems + options.problems).first { throw TrainingError(.invalidOptions, problem) }
        self.options = options
        self.secondOrder = secondOrder
        self.seed = seed
        self.objective = objective
    }

    private var step: StepControl { secondOrder.step }

    private var cluster: ClusterCoordinator { objective.cluster }

    /// Runs from the weights already on the servers; with `resume`, continues
    /// after that checkpoint (whose weights are already on the servers).
    public func train(
        budget: TrainingBudget, resume: Checkpoint.State? = nil, checkpoints: CheckpointPolicy? = nil,
        observe: @escaping IterationObserver = { _ in }
    ) async throws -> TrainingSummary {
        var runLog = RunLog(budget: budget, observe: observe, checkpoints: checkpoints, resuming: resume)
        var phases = [String: Double]()
        var iteration = resume?.iteration ?? 0
        var batch = gradientBatch(iteration: iteration + 1)
        var (f, gradientNorm) = try await timed("gradient", into: &phases) {
            try await objective.valueAndGradient(at: .weights, into: .gradient, on: batch)
        }
        var lambda = resume?.lambda ?? step.initialLambda
        var failures = resume?.lineSearchFailures ?? 0
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

            // 1. Subsample and curvature.
            let subsample = drawSubsample(iteration: iteration)
            let kind: Curvature.Kind =
                options.products == .jacobian
                ? .cachedJacobian(
                    outputs: try await timed("jacobian", into: &phases) { try await cluster.cacheJacobian(at: .weights, rows: subsample) })
                : .gaussNewtonByROperator(shards: cluster.shards(.train, rows: subsample))
            let curvature = Curvature(cluster: cluster, kind: kind, scale: 1 / Double(subsample.count))

            // 2. Direction.
            let damping = lambda + objective.ridge
            let solve = try await timed("solve", into: &phases) {
                options.blockDiagonal
                    ? try await blockDiagonalDirection(
                        curvature: curvature, damping: damping, gradientNorm: gradientNorm, iteration: iteration)
                    : try await conjugateGradientDirection(curvature: curvature, damping: damping, gradientNorm: gradientNorm)
            }
            // dᵀ(G + λI)d = −gᵀd − rᵀd, so dᵀGd = −gᵀd − rᵀd − λ‖d‖².
            let dots = try await cluster.run([.dot(.gradient, .direction), .dot(.residual, .direction), .dot(.direction, .direction)])
            let gd = try checked(dots[0], "∇fᵀd")
            let dGd = -gd - dots[1] - lambda * dots[2]

            // 3. Line search, 4. damping and the new point. Once every row
            // counts, the next gradient is on the same rows, so the first
            // trial computes it.
            let search = try await timed("line_search", into: &phases) {
                try await step.search(objective, on: batch, from: f, slope: gd, firstTrialGradient: batch == nil ? .trialGradient : nil)
            }
            let usedLambda = lambda
            lambda = step.nextLambda(lambda, after: search, from: f, slope: gd, curvature: dGd)
            let outcome: IterationRecord.Outcome = search.value == nil ? .lineSearchFailed : .accepted
            failures = search.value == nil ? failures + 1 : 0
            let sampled = batch != nil
            batch = gradientBatch(iteration: iteration + 1)
            if let value = search.value, let trialGradientNorm = search.gradientNorm {
                // α = 1 was taken and its pass already left ∇f: the same numbers, one pass fewer.
                try await cluster.run([.copy(.trial, to: .weights), .copy(.trialGradient, to: .gradient)])
                (f, gradientNorm) = (value, trialGradientNorm)
            } else if search.value != nil || sampled {
                // f and ∇f at the new point, or on the next iteration's sample.
                if search.value != nil { try await cluster.run([.copy(.trial, to: .weights)]) }
                (f, gradientNorm) = try await timed("gradient", into: &phases) {
                    try await objective.valueAndGradient(at: .weights, into: .gradient, on: batch)
                }
            }
            let accuracy = try await timed("evaluate", into: &phases) { try await objective.testAccuracy(at: .weights) }
            let record = IterationRecord(
                iteration: iteration, elapsedSeconds: runLog.seconds, objective: f, gradientNorm: gradientNorm,
                cgIterations: solve, lambda: usedLambda, step: search.step, lineSearchSteps: search.steps,
                testAccuracy: accuracy, outcome: outcome, phaseSeconds: phases)
            runLog.emit(record)
            try await runLog.checkpoint(after: record, lambda: lambda, lineSearchFailures: failures, from: cluster)
            if failures >= step.maxLineSearchFailures { return runLog.summary(.stalled) }
        }
    }

    /// S for an iteration: `⌈fraction · l⌉` distinct rows, sorted, drawn from
    /// the seed and the iteration number alone.
    func drawSubsample(iteration: Int) -> [Int] {
        objective.sampleRows(
            Int((options.subsampleFraction * Double(objective.rows)).rounded(.up)),
            seed: seed, stream: 1000 + UInt64(iteration))
    }

    /// The rows f and ∇f are taken on in an iteration: nil for every row,
    /// else `⌈fraction · growth^(iteration−1) · l⌉` rows drawn from the seed
    /// and the iteration number alone.
    func gradientBatch(iteration: Int) -> Objective.Batch? {
        let fraction = options.gradientSampleFraction * pow(options.gradientSampleGrowth, Double(iteration - 1))
        guard fraction < 1 else { return nil }
        let rows = Int((fraction * Double(objective.rows)).rounded(.up))
        guard rows < objective.rows else { return nil }
        return objective.batch(objective.sampleRows(rows, seed: seed, stream: 3000 + UInt64(iteration)))
    }

    /// CG on `(G + λI) d = −g` from d = 0; leaves d in `.direction` and the
    /// residual in `.residual`; returns the iterations taken.
    private func conjugateGradientDirection(curvature: Curvature, damping: Double, gradientNorm: Double) async throws -> Int {
        let space = ServerVectorSpace(cluster: cluster, operator: DampedOperator(curvature: curvature, damping: damping))
        return try await ConjugateGradient(tolerance: secondOrder.cgTolerance, maxIterations: secondOrder.cgMaxIterations)
            .solve(in: space, rhs: .gradient, gradientNorm: gradientNorm).iterations
    }

    /// Each diagonal block solves `(G_bb + λI) d_b = −g_b` on its owner;
    /// returns the largest number of CG iterations any block took.
    private func blockDiagonalDirection(curvature: Curvature, damping: Double, gradientNorm: Double, iteration: Int) async throws -> Int {
        let template = BlockSolveRequest(
            block: 0, generation: iteration, rightHandSide: .gradient, solution: .direction, residual: .residual,
            damping: damping, curvatureScale: curvature.scale, tolerance: secondOrder.cgTolerance,
            maxIterations: secondOrder.cgMaxIterations)
        let reports = try await cluster.solveDiagonalBlocks(template, cutoff: options.stragglerCutoff)
        return reports.map(\.iterations).max() ?? 0
    }
}
