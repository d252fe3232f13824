/// A GET endpoint a process serves beside `/healthz`, `/readyz` and
/// `/metrics` (the driver's dashboard and its JSON), without depending on
/// the HTTP server's types.
public struct HTTPRoute: Sendable {
    /// What a handler sees of a request.
    public struct Request: Sendable {
        /// The query string's parameters (the last value of a repeated name).
        public var query: [String: String]
        /// The `Authorization` header, if any.
        public var authorization: String?

        public init(query: [String: String] = [:], authorization: String? = nil) {
            self.query = query
            self.authorization = authorization
        }
    }

    /// What a handler answers.
    public struct Reply: Sendable {
        public var status: Int
        public var contentType: String
        public var body: [UInt8]

        public init(status: Int = 200, contentType: String, body: [UInt8]) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }

        /// A plain-text reply, e.g. an error message.
        public static func text(_ text: String, status: Int) -> Reply {
            Reply(status: status, contentType: "text/plain; charset=utf-8", body: Array(text.utf8))
        }
    }

    /// The path, without a leading slash ("" is the root).
    public let path: String
    public let handle: @Sendable (Request) async -> Reply

    public init(_ path: String, handle: @escaping @Sendable (Request) async -> Reply) {
        self.path = path
        self.handle = handle
    }
}
