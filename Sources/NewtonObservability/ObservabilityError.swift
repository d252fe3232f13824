import NewtonCore

/// The one error type of `NewtonObservability`.
public typealias ObservabilityError = ModuleError<ObservabilityErrorCode>

/// What kind of problem an `ObservabilityError` is.
public enum ObservabilityErrorCode: String, ErrorCode {
    /// The HTTP server could not bind or stopped before it was listening.
    case http = "HTTP server"

    public var description: String { rawValue }

    public var blame: ErrorBlame { .receiver }
}
