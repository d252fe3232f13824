import Foundation
import Hummingbird
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle
import Synchronization

/// Whether a process can take work now and, if not, why.
public struct Readiness: Sendable, Equatable {
    /// True when the process can serve its role.
    public var ready: Bool
    /// A short human-readable explanation, served as the `/readyz` body.
    public var reason: String

    /// A readiness state with an explanation.
    public init(ready: Bool, reason: String) {
        self.ready = ready
        self.reason = reason
    }

    /// Ready, with the reason "ready".
    public static let ready = Readiness(ready: true, reason: "ready")

    /// Not ready, for `reason` (e.g. "no driver connection yet").
    public static func notReady(_ reason: String) -> Readiness {
        Readiness(ready: false, reason: reason)
    }
}

/// A `Service` serving the operator endpoints of one process over HTTP/1.1:
///
/// - `GET /healthz`: 200 `ok` while the process runs (liveness);
/// - `GET /readyz`: 200 with the readiness reason when `readiness()` says
///   ready, 503 with the reason otherwise;
/// - `GET /metrics`: the registry in Prometheus text format 0.0.4;
/// - and the process's own `routes` (the driver's dashboard).
///
/// Run it in a `ServiceGroup` (once): it stops gracefully when the group
/// shuts down (SIGTERM, if the group traps it) or is cancelled. Pass port 0
/// to bind an ephemeral port and read it from `boundPort` or `onServerRunning`.
public struct HealthServer: Service, Sendable {
    /// The host or address to bind, e.g. `0.0.0.0` or `127.0.0.1`.
    public let host: String
    /// The requested port; 0 picks a free one.
    public let port: Int

    private let registry: PrometheusCollectorRegistry
    private let readiness: @Sendable () async -> Readiness
    private let routes: [HTTPRoute]
    private let onServerRunning: @Sendable (Int) async -> Void
    private let logger: Logger
    private let binding = PortBinding()

    /// Content type of `/metrics`: Prometheus text exposition format 0.0.4.
    public static let metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

    /// - Parameters:
    ///   - host: the address to bind.
    ///   - port: the port to bind, 0 for any free one.
    ///   - registry: what `/metrics` serves; the process-wide registry by default.
    ///   - logger: Hummingbird's logger (it logs the bound address at info).
    ///   - readiness: asked on every `/readyz`; ready by default.
    ///   - routes: further GET endpoints.
    ///   - onServerRunning: called once with the bound port when listening,
    ///     before `boundPort` returns.
    public init(
        host: String,
        port: Int,
        registry: PrometheusCollectorRegistry = MetricsBootstrap.registry(),
        logger: Logger = Logger(label: "newtonps.http"),
        readiness: @escaping @Sendable () async -> Readiness = { .ready },
        routes: [HTTPRoute] = [],
        onServerRunning: @escaping @Sendable (_ port: Int) async -> Void = { _ in }
    ) {
        self.host = host
        self.port = port
        self.registry = registry
        self.logger = logger
        self.readiness = readiness
        self.routes = routes
        self.onServerRunning = onServerRunning
    }

    /// The port actually bound, once the server listens. Throws if `run()`
    /// ended before binding (e.g. the port was taken) or the caller is cancelled.
    public var boundPort: Int {
        get async throws { try await binding.wait() }
    }

    /// Serves until graceful shutdown or cancellation.
    public func run() async throws {
        let binding = self.binding
        let onServerRunning = self.onServerRunning
        let logger = self.logger
        let app = Application(
            router: Self.router(registry: registry, readiness: readiness, routes: routes),
            configuration: ApplicationConfiguration(address: .hostname(host, port: port)),
            onServerRunning: { channel in
                guard let port = channel.localAddress?.port else {
                    logger.error("HTTP server has no local port", metadata: ["address": "\(String(describing: channel.localAddress))"])
                    return
                }
                await onServerRunning(port)
                binding.bind(port)
            },
            logger: logger
        )
        do {
            try await app.run()
            binding.finish(
                ObservabilityError(
                    .http, "HTTP server for \(host):\(port) stopped before it was listening"))
        } catch {
            binding.finish(
                ObservabilityError(
                    .http, "HTTP server for \(host):\(port) failed", cause: error))
            throw error
        }
    }

    static func router(
        registry: PrometheusCollectorRegistry,
        readiness: @escaping @Sendable () async -> Readiness,
        routes: [HTTPRoute] = []
    ) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.get("healthz") { _, _ -> Response in
            Self.text("ok\n", status: .ok)
        }
        router.get("readyz") { _, _ -> Response in
            let state = await readiness()
            return Self.text(state.reason + "\n", status: state.ready ? .ok : .serviceUnavailable)
        }
        router.get("metrics") { _, _ -> Response in
            Response(
                status: .ok,
                headers: [.contentType: Self.metricsContentType],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer()))
            )
        }
        for route in routes {
            router.get(RouterPath(route.path)) { request, _ -> Response in
                var query: [String: String] = [:]
                for (name, value) in request.uri.queryParameters { query[String(name)] = String(value) }
                let reply = await route.handle(
                    HTTPRoute.Request(query: query, authorization: request.headers[.authorization]))
                return Response(
                    status: HTTPResponse.Status(code: reply.status),
                    headers: [.contentType: reply.contentType, .cacheControl: "no-store"],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: reply.body)))
            }
        }
        return router
    }

    private static func text(_ body: String, status: HTTPResponse.Status) -> Response {
        Response(
            status: status,
            headers: [.contentType: "text/plain; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: body))
        )
    }
}

/// The bound port, once known, and the tasks waiting for it. Continuations
/// are resumed outside the lock.
private final class PortBinding: Sendable {
    private enum Phase {
        case waiting
        case bound(Int)
        case failed(ObservabilityError)
    }

    private struct State {
        var phase = Phase.waiting
        var waiters: [Int: CheckedContinuation<Int, any Error>] = [:]
        var nextWaiter = 0
    }

    private let state = Mutex(State())

    func bind(_ port: Int) {
        for waiter in resolve(.bound(port)) { waiter.resume(returning: port) }
    }

    /// Fails the waiters if the port was never bound; a bound port stays readable.
    func finish(_ error: ObservabilityError) {
        for waiter in resolve(.failed(error)) { waiter.resume(throwing: error) }
    }

    /// Moves from waiting to `phase` and hands back the waiters to resume.
    private func resolve(_ phase: Phase) -> [CheckedContinuation<Int, any Error>] {
        state.withLock { state in
            guard case .waiting = state.phase else { return [] }
            state.phase = phase
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
    }

    func wait() async throws -> Int {
        let id: Int = state.withLock { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int, any Error>) in
                let now: Result<Int, any Error>? = state.withLock { state in
                    switch state.phase {
                    case .bound(let port): return .success(port)
                    case .failed(let error): return .failure(error)
                    case .waiting:
                        if Task.isCancelled { return .failure(CancellationError()) }
                        state.waiters[id] = continuation
                        return nil
                    }
                }
                if let now { continuation.resume(with: now) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(throwing: CancellationError())
        }
    }
}
