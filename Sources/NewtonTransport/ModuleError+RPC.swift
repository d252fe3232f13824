import GRPCCore
import NewtonCore

/// Every module's error answers a call with the status its code's blame
/// calls for; the message keeps the whole story, cause included.
extension ModuleError: RPCErrorConvertible {
    public var rpcErrorCode: RPCError.Code {
        switch code.blame {
        case .caller: return .invalidArgument
        case .notFound: return .notFound
        case .state: return .failedPrecondition
        case .incompatiblePeer: return .failedPrecondition
        case .unavailablePeer: return .unavailable
        case .receiver: return .internalError
        }
    }

    public var rpcErrorMessage: String { description }
}

extension RPCError {
    /// The status a handler answers with for any error: a module's error by
    /// its blame, anything else as internal with its description.
    public init(answering error: any Error) {
        if let error = error as? RPCError {
            self = error
        } else if let convertible = error as? any RPCErrorConvertible {
            self.init(convertible)
        } else {
            self.init(code: .internalError, message: "\(error)")
        }
    }
}
