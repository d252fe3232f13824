/// The one error type of `NewtonCore`.
public typealias CoreError = ModuleError<CoreErrorCode>

/// What kind of problem a `CoreError` is.
public enum CoreErrorCode: String, ErrorCode {
    /// A data or model file does not follow its format.
    case malformedData = "malformed data"
    /// A file could not be opened, read or written.
    case io = "I/O error"
    /// Two pieces that must agree in size do not.
    case shapeMismatch = "shape mismatch"
    /// A caller passed a value outside what the operation accepts.
    case invalidArgument = "invalid argument"
    /// A NaN or an infinity showed up where finite numbers are required.
    case nonFinite = "non-finite value"

    public var description: String { rawValue }

    public var blame: ErrorBlame {
        switch self {
        case .malformedData, .shapeMismatch, .invalidArgument, .nonFinite: return .caller
        case .io: return .receiver
        }
    }
}
