import Foundation

/// A `host:port` address of a peer.
public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port`: IPv6 hosts go in brackets (`[::1]:7070`), an
    /// empty host means every interface (`:9090` is `0.0.0.0:9090`).
    public init(parsing text: String) throws {
        let bad = TransportError(.invalidRequest, "'\(text)' is not a host:port address (e.g. 127.0.0.1:7070)")
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let colon = trimmed.lastIndex(of: ":"), let port = Int(trimmed[trimmed.index(after: colon)...]),
            (0...65535).contains(port)
        else { throw bad }
        var host = String(trimmed[..<colon])
        if host.hasPrefix("[") {
            guard host.hasSuffix("]"), host.count > 2 else { throw bad }
            host = String(host.dropFirst().dropLast())
        } else if host.contains(":") {
            throw bad
        }
        self.init(host: host.isEmpty ? "0.0.0.0" : host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
