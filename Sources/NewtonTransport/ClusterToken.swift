import Foundation
import GRPCCore

/// The cluster's shared secret: the bearer token the job API requires of
/// people and scripts, and that roles present to each other; it is what
/// keeps a stranger from registering as a server or worker. Without TLS
/// (`ClusterCredentials.tls`) it crosses the network in the clear.
public struct ClusterToken: Sendable {
    /// At least this many characters: a token is a secret, not a password.
    public static let minimumLength = 16
    let value: String

    /// Reads the token from `path` (surrounding white space ignored).
    public init(file path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TransportError(.invalidRequest, "cannot read the token file \(path)")
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.count >= Self.minimumLength, text.unicodeScalars.allSatisfy({ (0x21..<0x7F).contains($0.value) }) else {
            throw TransportError(
                .invalidRequest,
                "the token in \(path) must be at least \(Self.minimumLength) printable ASCII characters without spaces")
        }
        value = text
    }

    /// Writes a fresh random token (32 bytes, hex) to `path`, readable by
    /// its owner only from before the first byte is written, and returns it.
    public static func generate(into path: String) throws -> ClusterToken {
        var generator = SystemRandomNumberGenerator()
        let hex = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        try writeFile(Array((hex + "\n").utf8), to: path, mode: 0o600)
        return try ClusterToken(file: path)
    }

    /// The `authorization` metadata value that carries the token.
    var header: String { "Bearer \(value)" }

    /// Whether `header` (an `authorization` value) carries this token;
    /// compares in time independent of where the two differ.
    public func accepts(_ header: String) -> Bool {
        let given = Array(header.utf8)
        let expected = Array(self.header.utf8)
        guard given.count == expected.count else { return false }
        return zip(given, expected).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

/// Refuses every call that does not carry the cluster token.
struct RequireClusterToken: ServerInterceptor {
    let token: ClusterToken

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        guard let header = request.metadata[stringValues: "authorization"].first(where: { _ in true }), token.accepts(header) else {
            throw RPCError(
                code: .unauthenticated,
                message: "\(context.descriptor.fullyQualifiedMethod) needs the cluster's bearer token (--token-file or NEWTONPS_TOKEN_FILE)"
            )
        }
        return try await next(request, context)
    }
}

/// Sends the cluster token with every call.
struct PresentClusterToken: ClientInterceptor {
    let token: ClusterToken

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingClientRequest<Input>, context: ClientContext,
        next: (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>
    ) async throws -> StreamingClientResponse<Output> {
        var request = request
        request.metadata.addString(token.header, forKey: "authorization")
        return try await next(request, context)
    }
}
