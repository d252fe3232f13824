/// Who a failure is down to, so that a transport can answer with the right
/// status for any module's error without knowing its codes.
public enum ErrorBlame: Sendable {
    /// The request or input is wrong; asking again unchanged fails again.
    case caller
    /// The thing asked for does not exist.
    case notFound
    /// The request is fine but the receiver's state does not allow it now.
    case state
    /// A peer speaks another protocol or version.
    case incompatiblePeer
    /// A peer could not be reached or did not answer in time.
    case unavailablePeer
    /// Anything else: the receiver failed.
    case receiver
}

/// The codes of one module's error type.
public protocol ErrorCode: Hashable, Sendable, CustomStringConvertible {
    var blame: ErrorBlame { get }
}

/// The shape of every module's one error type: a code to branch on, a message
/// that names the problem and where it is (file, line, block, shard, peer,
/// option), and an optional underlying cause.
public struct ModuleError<ModuleCode: ErrorCode>: Error, CustomStringConvertible, Sendable {
    /// The module's codes (`CoreError.Code` is `CoreErrorCode`).
    public typealias Code = ModuleCode

    public var code: Code
    public var message: String
    public var cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        if let cause { return "\(message): \(cause)" }
        return message
    }
}
