import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import NewtonObservability
import NewtonProto

/// Transport settings for every newtonps gRPC connection. HTTP/2's default
/// 64 KiB window throttles megabyte tensors to tens of MiB/s; these values
/// follow the measurements in DESIGN.md (400–900 MiB/s on loopback).
public enum WireSettings {
    static let windowSize = 16 << 20
    static let maxFrameSize = 1 << 20
    /// The largest message to or from a parameter server: Jacobian slices and
    /// gradients of a shard can run to tens of MB.
    public static let maxMessageBytes = 512 << 20
    /// The largest request the driver accepts: job specs, membership and
    /// worker results (a task's subsample outputs, |S| × n_L floats).
    public static let maxDriverRequestBytes = 64 << 20
    /// The largest job spec `SubmitJob` accepts.
    public static let maxJobSpecBytes = 1 << 20
    /// Throws `.invalidRequest` naming the cap when `yaml` is over `maxJobSpecBytes`.
    public static func checkJobSpecSize(_ yaml: String) throws {
        let bytes = yaml.utf8.count
        guard bytes <= maxJobSpecBytes else {
            throw TransportError(
                .invalidRequest, "the job spec has \(bytes) bytes, over the cap of \(maxJobSpecBytes) (WireSettings.maxJobSpecBytes)")
        }
    }

    /// Concurrent streams one client connection may open on a server.
    public static let maxConcurrentStreams = 256

    static var client: HTTP2ClientTransport.Posix.Config {
        .defaults { config in
            config.http2.targetWindowSize = windowSize
            config.http2.maxFrameSize = maxFrameSize
            config.connection.flushCoalescing = nil
            // Pings find a dead peer on long-lived streams (worker sessions, watch).
            config.connection.keepalive = .init(time: .seconds(10), timeout: .seconds(5), allowWithoutCalls: true)
            config.backoff.initial = .milliseconds(100)
            config.backoff.max = .seconds(2)
        }
    }

    static func server(maxRequestBytes: Int) -> HTTP2ServerTransport.Posix.Config {
        .defaults { config in
            config.http2.maxConcurrentStreams = maxConcurrentStreams
            config.http2.targetWindowSize = windowSize
            config.http2.maxFrameSize = maxFrameSize
            config.connection.flushCoalescing = nil
            config.connection.keepalive = .init(
                time: .seconds(10), timeout: .seconds(5),
                clientBehavior: .init(minPingIntervalWithoutCalls: .seconds(5), allowWithoutCalls: true))
            config.rpc.maxRequestPayloadSize = maxRequestBytes
        }
    }

    /// Call options with a deadline: an unreachable or stalled peer gives an
    /// error when it passes, never a hang.
    static func options(timeout: Duration) -> CallOptions {
        var options = CallOptions.defaults
        options.timeout = timeout
        options.waitForReady = false
        options.maxRequestMessageBytes = maxMessageBytes
        options.maxResponseMessageBytes = maxMessageBytes
        return options
    }
}

/// A client connection to one peer, kept open until `close()`.
public final class GRPCConnection: Sendable {
    public let endpoint: Endpoint
    let client: GRPCClient<HTTP2ClientTransport.Posix>
    private let runner: Task<Void, Never>

    /// Connects to `endpoint` (over mutual TLS when the credentials hold a
    /// certificate), presenting their token with every call when given.
    public init(to endpoint: Endpoint, credentials: ClusterCredentials) throws {
        let transport = try HTTP2ClientTransport.Posix(
            target: Self.target(endpoint), transportSecurity: credentials.clientSecurity, config: WireSettings.client)
        let client = GRPCClient(
            transport: transport, interceptors: credentials.token.map { [PresentClusterToken(token: $0)] } ?? [])
        self.endpoint = endpoint
        self.client = client
        // The connection's I/O runs for the object's lifetime (until close());
        // a transport that fails is logged, and calls on it fail with it.
        self.runner = Task {
            do { try await client.runConnections() } catch {
                Logger(label: "newtonps.connection").error("connection to \(endpoint) failed: \(error)")
            }
        }
    }

    /// An address literal as such, so that TLS checks it against the
    /// certificate's IP addresses (TLS names hosts only by DNS name); any
    /// other host by DNS.
    private static func target(_ endpoint: Endpoint) -> any ResolvableTarget {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, endpoint.host, &v4) == 1 { return .ipv4(address: endpoint.host, port: endpoint.port) }
        if inet_pton(AF_INET6, endpoint.host, &v6) == 1 { return .ipv6(address: endpoint.host, port: endpoint.port) }
        return .dns(host: endpoint.host, port: endpoint.port)
    }

    /// Lets in-flight calls finish, then closes the connection.
    public func close() {
        client.beginGracefulShutdown()
    }

    deinit {
        client.beginGracefulShutdown()
    }
}

/// Runs one client call with a deadline, records its metrics, and turns any
/// failure into a `TransportError` that names the peer and the method.
func remoteCall<Response: TensorPayload>(
    role: String, peer: Endpoint, method: String, requestBytes: Int, timeout: Duration,
    _ body: (CallOptions) async throws -> Response
) async throws -> Response {
    let clock = ContinuousClock.now
    do {
        let response = try await body(WireSettings.options(timeout: timeout))
        RPCMetrics.observe(
            role: role, method: method, side: .client, requestBytes: requestBytes,
            responseBytes: response.tensorBytes, seconds: seconds(since: clock), failed: false)
        return response
    } catch {
        RPCMetrics.observe(
            role: role, method: method, side: .client, requestBytes: requestBytes,
            responseBytes: 0, seconds: seconds(since: clock), failed: true)
        throw TransportError(remoteFailure: error, peer: peer, method: method, timeout: timeout)
    }
}

extension TransportError {
    /// A failed call to `peer`: unreachable (deadline, connection refused) or
    /// an error the peer reported.
    init(remoteFailure error: any Error, peer: Endpoint, method: String, timeout: Duration) {
        guard let rpc = error as? RPCError else {
            self.init(.unreachable, "\(method) on \(peer) failed", cause: error)
            return
        }
        switch rpc.code {
        case .deadlineExceeded:
            self.init(.unreachable, "\(method) on \(peer) did not answer within its \(timeout) deadline")
        case .unavailable:
            self.init(.unreachable, "\(method) on \(peer): peer unavailable (\(rpc.message))")
        case .unauthenticated:
            self.init(.unauthenticated, "\(peer) refused \(method): \(rpc.message)")
        case .invalidArgument:
            self.init(.invalidRequest, "\(method) on \(peer) rejected the request: \(rpc.message)")
        case .failedPrecondition where method == "Register":
            self.init(.incompatible, "\(peer) refused registration: \(rpc.message)")
        default:
            self.init(.remote, "\(method) on \(peer) failed (\(rpc.code)): \(rpc.message)")
        }
    }
}
