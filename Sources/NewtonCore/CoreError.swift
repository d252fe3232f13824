/// The one error type of `NewtonCore`: a code to branch on, a message that names
/// the problem and where it is (file, line, byte offset, layer, block), and an
/// optional underlying cause.
public struct CoreError: Error, CustomStringConvertible, Sendable {
    /// What kind of problem this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// A data or model file does not follow its format.
        public static let malformedData = Code("malformed data")
        /// A file could not be opened, read or written.
        public static let io = Code("I/O error")
        /// Two pieces that must agree in size do not.
        public static let shapeMismatch = Code("shape mismatch")
        /// A caller passed a value outside what the operation accepts.
        public static let invalidArgument = Code("invalid argument")
        /// A NaN or an infinity showed up where finite numbers are required.
        public static let nonFinite = Code("non-finite value")
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
        if let cause { return "\(message) (\(cause))" }
        return message
    }
}
