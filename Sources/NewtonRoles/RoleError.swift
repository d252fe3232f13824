import NewtonCore

/// The one error type of `NewtonRoles`.
public typealias RoleError = ModuleError<RoleErrorCode>

/// What kind of problem a `RoleError` is.
public enum RoleErrorCode: String, ErrorCode {
    /// A request that does not fit the receiver's state or the job's shapes.
    case invalidRequest = "invalid request"
    /// A local computation produced a value it cannot continue from.
    case numerical = "numerical failure"
    /// Data for a job could not be loaded.
    case data = "data unavailable"

    public var description: String { rawValue }

    public var blame: ErrorBlame {
        switch self {
        case .invalidRequest, .data: return .caller
        case .numerical: return .receiver
        }
    }
}
