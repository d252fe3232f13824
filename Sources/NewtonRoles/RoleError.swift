/// The one error type of `NewtonCluster`: a code, a message naming the
/// problem and the peer, block or shard involved, and the cause.
public struct ClusterError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// A request that does not fit the receiver's state or the job's shapes.
        public static let invalidRequest = Code("invalid request")
        /// A local computation produced a value it cannot continue from.
        public static let numerical = Code("numerical failure")
        /// Data for a job could not be loaded.
        public static let data = Code("data unavailable")
        /// A peer did not answer in time or could not be reached.
        public static let unreachable = Code("peer unreachable")
        /// A peer answered with an error of its own.
        public static let remote = Code("remote failure")
        /// A submitted job spec has problems (the message lists all of them).
        public static let invalidJob = Code("invalid job")
        /// The driver's job store could not be opened, read or written.
        public static let store = Code("job store")
        /// A peer speaks an incompatible protocol or version.
        public static let incompatible = Code("incompatible peer")
    }

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
