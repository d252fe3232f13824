/// The one error type of `NewtonTraining`: a code, a message naming what went
/// wrong and where (which option, block, shard or peer), and the cause.
public struct TrainingError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// An option or job setting is out of range or inconsistent.
        public static let invalidOptions = Code("invalid options")
        /// A server or worker failed, or answered something inconsistent.
        public static let clusterFailure = Code("cluster failure")
        /// The objective, gradient or a solver scalar became NaN or infinite.
        public static let nonFinite = Code("non-finite value")
        /// The run was cancelled.
        public static let cancelled = Code("cancelled")
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
