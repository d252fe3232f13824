import NewtonCore
import NewtonRoles
import NewtonTraining

/// `C: auto`: chooses C as LIBLINEAR's parameter search does, on one
/// held-out split instead of folds. A fifth of the training rows, drawn from
/// the job's seed, is held out; the job runs on the other rows once per
/// candidate C, with its own settings and budget, on an embedded cluster; the
/// C whose model classifies the held-out rows best wins (the smaller C on a
/// tie). The split and the runs depend on the spec and the data alone, so
/// `train` and a cluster driver choose the same C.
public struct RegularizationSearch: Sendable {
    /// The candidates: decades from the authors' default up.
    public static let candidates: [Double] = [0.01, 0.1, 1, 10, 100]
    /// The share of the training rows held out.
    public static let heldOutFraction = 0.2
    /// Fewer training rows than this leave too few to hold out.
    public static let minimumRows = 10

    /// One candidate's run.
    public struct Trial: Sendable, Equatable {
        public var regularization: Double
        /// nil when the run stopped on a non-finite value.
        public var heldOutAccuracy: Double?
        public var iterations: Int
    }

    public let spec: JobSpec
    public let network: NetworkSpec
    /// Workers of each candidate's embedded cluster.
    public let workers: Int

    public init(spec: JobSpec, network: NetworkSpec, workers: Int) {
        self.spec = spec
        self.network = network
        self.workers = workers
    }

    /// Runs every candidate on `data`'s training rows and returns the chosen
    /// C with every trial; `progress` sees each trial as it finishes.
    public func choose(from data: TrainingData, progress: (Trial) -> Void = { _ in }) async throws -> (
        regularization: Double, trials: [Trial]
    ) {
        let rows = data.train.rows
        guard rows >= Self.minimumRows else {
            throw DriverError(
                .invalidJob, "C: auto holds out a fifth of the training rows and needs at least \(Self.minimumRows); the data has \(rows)")
        }
        let heldOut = Objective.sampleRows(
            Int((Self.heldOutFraction * Double(rows)).rounded()), of: rows, seed: spec.seed, stream: 0xC5EA)
        let held = Set(heldOut)
        let split = TrainingData(
            train: data.train.subset((0..<rows).filter { !held.contains($0) }), test: data.train.subset(heldOut), scaler: data.scaler)
        let grid = try spec.grid(for: network, servers: 1)
        var trials = [Trial]()
        for c in Self.candidates {
            let cluster = try await EmbeddedCluster(
                grid: grid, data: split, descriptor: spec.data, servers: 1, workers: workers, shardRows: spec.shardRows)
            let trial: Trial
            do {
                let summary = try await spec.trainingJob(network: network, regularization: c)
                    .run(on: cluster.coordinator, jobID: "C-search", data: spec.data)
                trial = Trial(
                    regularization: c, heldOutAccuracy: summary.records.last?.testAccuracy,
                    iterations: summary.records.last?.iteration ?? 0)
            } catch let error as TrainingError where error.code == .nonFinite {
                trial = Trial(regularization: c, heldOutAccuracy: nil, iterations: 0)
            }
            trials.append(trial)
            progress(trial)
        }
        // The first (smallest) C of the best accuracy; the spec's C when every run failed.
        let best = trials.filter { $0.heldOutAccuracy != nil }.max {
            ($0.heldOutAccuracy!, $1.regularization) < ($1.heldOutAccuracy!, $0.regularization)
        }
        return (best?.regularization ?? spec.regularization, trials)
    }
}
