import NewtonCore

/// The one error type of `NewtonDriver`.
public typealias DriverError = ModuleError<DriverErrorCode>

/// What kind of problem a `DriverError` is.
public enum DriverErrorCode: String, ErrorCode {
    /// A submitted job spec has problems (the message lists all of them).
    case invalidJob = "invalid job"
    /// A request names something that does not exist or does not fit.
    case invalidRequest = "invalid request"
    /// No job has the id asked for.
    case notFound = "not found"
    /// The job is not in a state that allows the request.
    case state = "wrong state"
    /// A peer speaks an incompatible protocol or version.
    case incompatible = "incompatible peer"
    /// A peer or the cluster a job needs is not there.
    case unreachable = "peer unreachable"
    /// A worker answered with an error of its own.
    case remote = "remote failure"
    /// The driver's job store could not be opened, read or written.
    case store = "job store"

    public var description: String { rawValue }

    public var blame: ErrorBlame {
        switch self {
        case .invalidJob, .invalidRequest: return .caller
        case .notFound: return .notFound
        case .state: return .state
        case .incompatible: return .incompatiblePeer
        case .unreachable: return .unavailablePeer
        case .remote, .store: return .receiver
        }
    }
}
