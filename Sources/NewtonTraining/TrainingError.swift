import NewtonCore

/// The one error type of `NewtonTraining`.
public typealias TrainingError = ModuleError<TrainingErrorCode>

/// What kind of problem a `TrainingError` is.
public enum TrainingErrorCode: String, ErrorCode {
    /// An option or job setting is out of range or inconsistent.
    case invalidOptions = "invalid options"
    /// A server or worker failed, or answered something inconsistent.
    case clusterFailure = "cluster failure"
    /// The objective, gradient or a solver scalar became NaN or infinite.
    case nonFinite = "non-finite value"
    /// The run was cancelled.
    case cancelled
    /// A stored checkpoint cannot be read or does not fit the job.
    case invalidCheckpoint = "invalid checkpoint"
    /// A neighbour's message is stale, repeated or does not fit the run.
    case invalidExchange = "invalid exchange"

    public var description: String { rawValue }

    public var blame: ErrorBlame {
        switch self {
        case .invalidOptions, .invalidExchange: return .caller
        case .clusterFailure, .nonFinite, .cancelled, .invalidCheckpoint: return .receiver
        }
    }
}
