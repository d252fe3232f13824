import NewtonCore

/// The one error type of `NewtonTransport`.
public typealias TransportError = ModuleError<TransportErrorCode>

/// What kind of problem a `TransportError` is.
public enum TransportErrorCode: String, ErrorCode {
    /// A message or address that does not decode or does not fit its shapes.
    case invalidRequest = "invalid request"
    /// A peer did not answer in time or could not be reached.
    case unreachable = "peer unreachable"
    /// A peer answered with an error of its own.
    case remote = "remote failure"
    /// A peer speaks an incompatible protocol or version.
    case incompatible = "incompatible peer"
    /// A peer refused the call for want of the cluster token.
    case unauthenticated

    public var description: String { rawValue }

    public var blame: ErrorBlame {
        switch self {
        case .invalidRequest, .unauthenticated: return .caller
        case .unreachable: return .unavailablePeer
        case .remote: return .receiver
        case .incompatible: return .incompatiblePeer
        }
    }
}
