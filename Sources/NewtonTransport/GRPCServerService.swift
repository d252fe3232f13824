import GRPCCore
import GRPCNIOTransportHTTP2Posix
import ServiceLifecycle

/// A gRPC server on `listen`, run as a lifecycle `Service` (graceful
/// shutdown lets in-flight calls finish).
public struct GRPCServerService: Service {
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    let transport: HTTP2ServerTransport.Posix

    /// - Parameters:
    ///   - maxRequestBytes: the largest request any of `services` accepts; a
    ///     larger one is refused before it is read whole.
    ///   - credentials: with a certificate, connections are mutual TLS (a
    ///     client without a certificate from the cluster's CA is refused in
    ///     the handshake); with a token, every call must carry it
    ///     (`unauthenticated` otherwise).
    public init(listen: Endpoint, services: [any RegistrableRPCService], maxRequestBytes: Int, credentials: ClusterCredentials) {
        let config = WireSettings.server(maxRequestBytes: maxRequestBytes)
        let security = credentials.serverSecurity
        transport =
            listen.host.contains(":")
            ? HTTP2ServerTransport.Posix(
                address: .ipv6(host: listen.host, port: listen.port), transportSecurity: security, config: config)
            : HTTP2ServerTransport.Posix(
                address: .ipv4(host: listen.host, port: listen.port), transportSecurity: security, config: config)
        server = GRPCServer(
            transport: transport, services: services,
            interceptors: credentials.token.map { [RequireClusterToken(token: $0)] } ?? [])
    }

    /// The port the server listens on (waits until it does).
    public var boundPort: Int {
        get async throws {
            let address = try await transport.listeningAddress
            if let v4 = address.ipv4 { return v4.port }
            if let v6 = address.ipv6 { return v6.port }
            throw TransportError(.invalidRequest, "gRPC server is not listening on an IP address")
        }
    }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.serve()
        } onGracefulShutdown: {
            server.beginGracefulShutdown()
        }
    }
}
