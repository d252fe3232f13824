import Dispatch
import Foundation
import Logging
import Prometheus
import ServiceLifecycle
import XCTest

@testable import NewtonObservability

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

final class HealthServerTests: XCTestCase {
    private var quietLogger: Logger {
        var logger = Logger(label: "newtonps.test.http")
        logger.logLevel = .warning
        return logger
    }

    func testEndpointsServeHealthReadinessAndMetrics() async throws {
        let registry = MetricsBootstrap.registry()
        RPCMetrics.observe(
            role: "test", method: "healthServerProbe", side: .client,
            requestBytes: 100, responseBytes: 40, seconds: 0.003, failed: false)
        let flag = ReadinessFlag(.notReady("waiting for the driver"))
        let reported = PortBox()
        let server = HealthServer(
            host: "127.0.0.1", port: 0, registry: registry, logger: quietLogger,
            readiness: { await flag.value }, onServerRunning: { port in reported.set(port) })

        try await withRunningGroup(server) { port in
            XCTAssertGreaterThan(port, 0)
            XCTAssertEqual(reported.get(), port, "onServerRunning reports the bound port")

            let health = try await httpGet(port: port, path: "/healthz")
            XCTAssertEqual(health.status, 200)
            XCTAssertEqual(health.body, "ok\n")

            let notReady = try await httpGet(port: port, path: "/readyz")
            XCTAssertEqual(notReady.status, 503)
            XCTAssertTrue(notReady.body.contains("waiting for the driver"), notReady.body)

            await flag.set(.ready)
            let ready = try await httpGet(port: port, path: "/readyz")
            XCTAssertEqual(ready.status, 200)
            XCTAssertEqual(ready.body, "ready\n")

            let metrics = try await httpGet(port: port, path: "/metrics")
            XCTAssertEqual(metrics.status, 200)
            XCTAssertEqual(metrics.headers["content-type"], HealthServer.metricsContentType)
            XCTAssertTrue(metrics.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") ?? false)
            let line = metrics.body.split(separator: "\n").first {
                $0.hasPrefix("newtonps_rpc_total{") && $0.contains("method=\"healthServerProbe\"")
                    && $0.contains("outcome=\"ok\"")
            }
            XCTAssertNotNil(line, metrics.body)
            XCTAssertTrue(line?.hasSuffix(" 1") ?? false, String(line ?? ""))
            XCTAssertTrue(metrics.body.contains("# TYPE newtonps_rpc_seconds histogram"), metrics.body)

            let missing = try await httpGet(port: port, path: "/nothing")
            XCTAssertEqual(missing.status, 404)
        }
    }

    func testProcessRoutesSeeTheQueryAndTheAuthorization() async throws {
        let echo = HTTPRoute("api/echo") { request in
            let query = request.query.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "&")
            return .text("\(query) \(request.authorization ?? "-")\n", status: request.authorization == nil ? 401 : 200)
        }
        let root = HTTPRoute("") { _ in HTTPRoute.Reply(contentType: "text/html", body: Array("<p>root</p>".utf8)) }
        let server = HealthServer(host: "127.0.0.1", port: 0, logger: quietLogger, routes: [echo, root])

        try await withRunningGroup(server) { port in
            let page = try await httpGet(port: port, path: "/")
            XCTAssertEqual(page.status, 200)
            XCTAssertEqual(page.headers["content-type"], "text/html")
            XCTAssertEqual(page.body, "<p>root</p>")

            let refused = try await httpGet(port: port, path: "/api/echo?job=job-1&after=3")
            XCTAssertEqual(refused.status, 401)
            XCTAssertEqual(refused.body, "after=3&job=job-1 -\n")
            XCTAssertEqual(refused.headers["cache-control"], "no-store")

            let allowed = try await httpGet(port: port, path: "/api/echo?job=job-2", authorization: "Bearer abc")
            XCTAssertEqual(allowed.status, 200)
            XCTAssertEqual(allowed.body, "job=job-2 Bearer abc\n")

            let health = try await httpGet(port: port, path: "/healthz")
            XCTAssertEqual(health.body, "ok\n", "the operator endpoints stay")
        }
    }

    func testServerIsGoneAfterGracefulShutdown() async throws {
        let server = HealthServer(host: "127.0.0.1", port: 0, logger: quietLogger)
        let port = try await withRunningGroup(server) { port in
            let health = try await httpGet(port: port, path: "/healthz")
            XCTAssertEqual(health.status, 200)
            return port
        }
        // The bound port stays readable after the run; the socket is closed.
        let again = try await withTimeout(5) { try await server.boundPort }
        XCTAssertEqual(again, port)
        do {
            _ = try await httpGet(port: port, path: "/healthz")
            XCTFail("the server still answers on port \(port) after shutdown")
        } catch {}
    }

    func testServiceGroupCancellationStopsTheServer() async throws {
        let server = HealthServer(host: "127.0.0.1", port: 0, logger: quietLogger)
        let group = ServiceGroup(services: [server], logger: quietLogger)
        let run = Task { try await group.run() }
        let port: Int
        do {
            port = try await withTimeout(20) { try await server.boundPort }
            let health = try await httpGet(port: port, path: "/healthz")
            XCTAssertEqual(health.status, 200)
        } catch {
            run.cancel()
            _ = await run.result
            throw error
        }
        run.cancel()
        _ = try await withTimeout(20) { await run.result }
        do {
            _ = try await httpGet(port: port, path: "/healthz")
            XCTFail("the server still answers after cancellation")
        } catch {}
    }

    func testBoundPortThrowsWhenThePortIsTaken() async throws {
        let first = HealthServer(host: "127.0.0.1", port: 0, logger: quietLogger)
        try await withRunningGroup(first) { port in
            let second = HealthServer(host: "127.0.0.1", port: port, logger: quietLogger)
            let group = ServiceGroup(services: [second], logger: self.quietLogger)
            let run = Task { try await group.run() }
            let waited = await Result(catching: { try await withTimeout(20) { try await second.boundPort } })
            switch waited {
            case .success(let bound):
                XCTFail("a second server bound port \(bound), which is taken")
                run.cancel()
            case .failure(let error as ObservabilityError):
                XCTAssertTrue(error.description.contains("127.0.0.1:\(port)"), error.description)
            case .failure(let error):
                XCTFail("expected a ObservabilityError, got \(error)")
                run.cancel()
            }
            let result = await run.result
            if case .success = result { XCTFail("the group ran although its server could not bind") }
        }
    }

    func testBoundPortWaiterCanBeCancelled() async throws {
        let server = HealthServer(host: "127.0.0.1", port: 0, logger: quietLogger)
        let waiter = Task { try await server.boundPort }  // never run: only cancellation ends it
        try await Task.sleep(for: .milliseconds(50))
        waiter.cancel()
        let result = await waiter.result
        guard case .failure(let error) = result else {
            return XCTFail("boundPort returned without a running server")
        }
        XCTAssertTrue(error is CancellationError, "\(error)")
    }

    // MARK: - Helpers

    /// Runs `server` in a `ServiceGroup`, hands `body` the bound port and
    /// always shuts the group down and waits for it, also when `body` throws.
    @discardableResult
    private func withRunningGroup<T: Sendable>(
        _ server: HealthServer,
        _ body: (Int) async throws -> T
    ) async throws -> T {
        let group = ServiceGroup(services: [server], logger: quietLogger)
        let run = Task { try await group.run() }
        let outcome: Result<T, any Error>
        do {
            let port = try await withTimeout(20) { try await server.boundPort }
            outcome = .success(try await body(port))
        } catch {
            outcome = .failure(error)
        }
        await group.triggerGracefulShutdown()
        do {
            try await withTimeout(20) { try await run.value }
        } catch {
            run.cancel()  // never leave the server running
            _ = await run.result
            throw error
        }
        return try outcome.get()
    }
}

final class ObservabilityMetricsTests: XCTestCase {
    func testRPCMetricsSeriesAndDirections() {
        let registry = PrometheusCollectorRegistry()
        RPCMetrics.observe(
            role: "server", method: "jacobianProduct", side: .server,
            requestBytes: 1000, responseBytes: 24, seconds: 0.0004, failed: false, registry: registry)
        RPCMetrics.observe(
            role: "server", method: "jacobianProduct", side: .server,
            requestBytes: 1000, responseBytes: 0, seconds: .nan, failed: true, registry: registry)
        let text = registry.emitToString()
        let labels = #"role="server",method="jacobianProduct",side="server""#
        XCTAssertTrue(text.contains("newtonps_rpc_total{\(labels),outcome=\"ok\"} 1"), text)
        XCTAssertTrue(text.contains("newtonps_rpc_total{\(labels),outcome=\"error\"} 1"), text)
        // Server side: the request was received, the response sent.
        XCTAssertTrue(text.contains("newtonps_rpc_bytes_total{\(labels),direction=\"received\"} 2000"), text)
        XCTAssertTrue(text.contains("newtonps_rpc_bytes_total{\(labels),direction=\"sent\"} 24"), text)
        XCTAssertTrue(text.contains("newtonps_rpc_seconds_count{\(labels)} 2"), text)
        XCTAssertTrue(text.contains("# HELP newtonps_rpc_total "), text)
    }

    func testTrainingMetrics() {
        let registry = PrometheusCollectorRegistry()
        let metrics = TrainingMetrics(registry: registry)
        metrics.recordIteration(
            objective: 2.5, gradientNorm: 1.25, cgIterations: 0, lambda: 1, testAccuracy: 0.125,
            countsAsIteration: false)
        metrics.recordIteration(
            objective: 0.75, gradientNorm: 0.5, cgIterations: 12, lambda: 0.5, testAccuracy: nil)
        metrics.recordIteration(
            objective: 0.5, gradientNorm: 0.25, cgIterations: 7, lambda: 0.75, testAccuracy: 0.875)
        metrics.setLiveServers(2)
        metrics.setLiveWorkers(3)
        metrics.setJobCounts(["running": 1, "queued": 4])
        metrics.setJobCounts(["running": 1, "done": 1])
        let text = registry.emitToString()
        for expected in [
            "newtonps_objective 0.5", "newtonps_grad_norm 0.25", "newtonps_lambda 0.75",
            "newtonps_test_accuracy 0.875", "newtonps_newton_iterations_total 2",
            "newtonps_cg_iterations_total 19", "newtonps_live_servers 2.0", "newtonps_live_workers 3.0",
            #"newtonps_jobs{state="queued"} 0.0"#, #"newtonps_jobs{state="done"} 1.0"#,
            #"newtonps_jobs{state="running"} 1.0"#,
        ] {
            XCTAssertTrue(
                text.split(separator: "\n").contains { $0 == expected || $0.hasPrefix(expected + ".0") }
                    || text.contains(expected + "\n"),
                "missing '\(expected)' in\n\(text)")
        }
    }

    func testBootstrapIsIdempotent() async {
        let registries = await withTaskGroup(of: ObjectIdentifier.self) { group in
            for _ in 0..<8 { group.addTask { ObjectIdentifier(MetricsBootstrap.registry()) } }
            return await group.reduce(into: Set<ObjectIdentifier>()) { $0.insert($1) }
        }
        XCTAssertEqual(registries.count, 1)
    }

    func testDurationClamping() {
        XCTAssertEqual(RPCMetrics.duration(seconds: -1), .zero)
        XCTAssertEqual(RPCMetrics.duration(seconds: .infinity), .zero)
        XCTAssertEqual(RPCMetrics.duration(seconds: 0.0015), .microseconds(1500))
        XCTAssertEqual(RPCMetrics.duration(seconds: 1e300), .seconds(1_000_000))
    }
}

// MARK: - Test support

private actor ReadinessFlag {
    private(set) var value: Readiness
    init(_ value: Readiness) { self.value = value }
    func set(_ value: Readiness) { self.value = value }
}

private final class PortBox: @unchecked Sendable {
    private let lock = NSLock()
    private var port: Int?
    func set(_ port: Int) { lock.withLock { self.port = port } }
    func get() -> Int? { lock.withLock { port } }
}

private struct TimedOut: Error, CustomStringConvertible {
    var seconds: Double
    var description: String { "timed out after \(seconds) s" }
}

/// Runs `operation`, failing with `TimedOut` after `seconds`.
private func withTimeout<T: Sendable>(
    _ seconds: Double,
    _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            throw TimedOut(seconds: seconds)
        }
        defer { group.cancelAll() }
        guard let first = try await group.next() else { throw TimedOut(seconds: seconds) }
        return first
    }
}

extension Result where Failure == any Error {
    /// `Result(catching:)` for async bodies.
    fileprivate init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}

private struct HTTPReply: Sendable {
    var status: Int
    var headers: [String: String]
    var body: String
}

private struct SocketError: Error, CustomStringConvertible {
    var description: String
}

/// A one-shot HTTP/1.1 GET to 127.0.0.1 over a plain socket (`Connection: close`),
/// run off the cooperative pool, with 10 s socket timeouts.
private func httpGet(port: Int, path: String, authorization: String? = nil) async throws -> HTTPReply {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try blockingGet(port: port, path: path, authorization: authorization) })
        }
    }
}

private func blockingGet(port: Int, path: String, authorization: String?) throws -> HTTPReply {
    #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
    #endif
    guard fd >= 0 else { throw SocketError(description: "socket: errno \(errno)") }
    defer { close(fd) }

    var timeout = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))

    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr = in_addr(s_addr: inet_addr("127.0.0.1"))
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else { throw SocketError(description: "connect to port \(port): errno \(errno)") }

    let header = authorization.map { "Authorization: \($0)\r\n" } ?? ""
    let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n\(header)Connection: close\r\n\r\n".utf8)
    var written = 0
    while written < request.count {
        let n = request[written...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { throw SocketError(description: "send: errno \(errno)") }
        written += n
    }

    var response: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 16384)
    while true {
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n == 0 { break }
        guard n > 0 else { throw SocketError(description: "recv: errno \(errno)") }
        response.append(contentsOf: chunk[0..<n])
    }

    let text = String(decoding: response, as: UTF8.self)
    guard let split = text.range(of: "\r\n\r\n") else {
        throw SocketError(description: "no header end in \(text.debugDescription)")
    }
    let headLines = text[..<split.lowerBound].components(separatedBy: "\r\n")
    let statusParts = headLines.first?.split(separator: " ") ?? []
    guard statusParts.count >= 2, let status = Int(statusParts[1]) else {
        throw SocketError(description: "bad status line in \(text.debugDescription)")
    }
    var headers: [String: String] = [:]
    for line in headLines.dropFirst() {
        guard let colon = line.firstIndex(of: ":") else { continue }
        let name = line[..<colon].lowercased()
        headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    return HTTPReply(status: status, headers: headers, body: String(text[split.upperBound...]))
}
