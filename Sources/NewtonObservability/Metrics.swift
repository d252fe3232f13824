import CoreMetrics
import Foundation
import Prometheus
import Synchronization

/// The process-wide Prometheus registry that `/metrics` serves.
///
/// `registry()` bootstraps swift-metrics with a `PrometheusMetricsFactory`
/// over the same registry the first time it is called, so metrics made by
/// libraries through swift-metrics (Hummingbird's middleware, say) land next
/// to ours. Later calls, from any thread, return the same registry. If
/// something else bootstrapped swift-metrics first, that choice is kept and
/// only our own metrics (which write to the registry directly) are served.
public enum MetricsBootstrap {
    private static let shared: PrometheusCollectorRegistry = {
        let registry = PrometheusMetricsFactory.defaultRegistry
        if MetricsSystem.factory is NOOPMetricsHandler {
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        }
        return registry
    }()

    /// Bootstraps swift-metrics once per process and returns the shared registry.
    public static func registry() -> PrometheusCollectorRegistry {
        shared
    }
}

/// Counters and a latency histogram for every RPC, on either side.
///
/// Series: `newtonps_rpc_total{role,method,side,outcome}`,
/// `newtonps_rpc_seconds{role,method,side}` (histogram) and
/// `newtonps_rpc_bytes_total{role,method,side,direction}` with
/// `direction` = `sent` | `received` from the point of view of `side`.
public enum RPCMetrics {
    /// Which end of the call is recording.
    public enum Side: String, Sendable, CaseIterable {
        case client
        case server
    }

    /// Upper bounds of the latency buckets: from a loopback round trip
    /// (~30 µs) to a Jacobian push of tens of MB.
    public static let latencyBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30),
    ]

    // Computed: MetricNameDescriptor is not Sendable, so it cannot be a static let.
    static var totalName: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "newtonps", metricName: "rpc", unitName: "total",
            helpText: "RPCs finished, by role, method, side and outcome (ok or error).")
    }
    static var secondsName: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "newtonps", metricName: "rpc", unitName: "seconds",
            helpText: "RPC latency in seconds, by role, method and side.")
    }
    static var bytesName: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "newtonps", metricName: "rpc_bytes", unitName: "total",
            helpText:
                "Payload bytes of RPCs (float32 tensors and streamed data blocks; framing not counted), by role, method, side and direction (sent or received)."
        )
    }

    /// Records one finished RPC.
    ///
    /// - Parameters:
    ///   - role: the recording process's role (`driver`, `server`, `worker`).
    ///   - method: the RPC's name, e.g. `jacobianProduct`.
    ///   - side: `.client` for the caller, `.server` for the callee.
    ///   - requestBytes: bytes of the request message.
    ///   - responseBytes: bytes of the response message (0 if none arrived).
    ///   - seconds: wall time of the call; non-finite or negative values count as 0.
    ///   - failed: whether the call ended in an error.
    ///   - registry: where to record; the shared registry by default.
    public static func observe(
        role: String,
        method: String,
        side: Side,
        requestBytes: Int,
        responseBytes: Int,
        seconds: Double,
        failed: Bool,
        registry: PrometheusCollectorRegistry = MetricsBootstrap.registry()
    ) {
        let base = [("role", role), ("method", method), ("side", side.rawValue)]

        registry.makeCounter(
            descriptor: totalName, labels: base + [("outcome", failed ? "error" : "ok")]
        ).increment()

        registry.makeDurationHistogram(
            descriptor: secondsName, labels: base, buckets: latencyBuckets
        ).record(duration(seconds: seconds))

        let (sent, received) =
            side == .client
            ? (requestBytes, responseBytes) : (responseBytes, requestBytes)
        registry.makeCounter(descriptor: bytesName, labels: base + [("direction", "sent")])
            .increment(by: Int64(max(0, sent)))
        registry.makeCounter(descriptor: bytesName, labels: base + [("direction", "received")])
            .increment(by: Int64(max(0, received)))
        moved.add(max(0, sent) + max(0, received), ordering: .relaxed)
    }

    /// Payload bytes this process has sent and received in RPCs so far,
    /// whatever the registry: the driver's `IterationRecord.bytesMoved`
    /// is its growth over one iteration.
    public static var payloadBytesMoved: Int { moved.load(ordering: .relaxed) }
    private static let moved = Atomic<Int>(0)

    /// Seconds as a `Duration`, clamped to [0, 10⁶ s] so odd clocks cannot trap.
    static func duration(seconds: Double) -> Duration {
        guard seconds.isFinite, seconds > 0 else { return .zero }
        let nanoseconds = (min(seconds, 1e6) * 1e9).rounded()
        return .nanoseconds(Int64(nanoseconds))
    }
}

/// The driver's view of training and of the cluster, as gauges and counters.
///
/// Series: `newtonps_objective`, `newtonps_lambda`, `newtonps_test_accuracy`,
/// `newtonps_grad_norm` (gauges, last iteration), `newtonps_newton_iterations_total`,
/// `newtonps_cg_iterations_total`, `newtonps_job_recoveries_total` (counters), `newtonps_jobs{state}`,
/// `newtonps_live_servers`, `newtonps_live_workers`, `newtonps_live_agents`
/// and, for decentralised jobs, `newtonps_disagreement` (gauges).
/// The series are unlabelled (one run at a time per driver); several
/// `TrainingMetrics` over one registry share them.
public final class TrainingMetrics: Sendable {
    private let registry: PrometheusCollectorRegistry
    private let objective: Prometheus.Gauge
    private let lambda: Prometheus.Gauge
    private let testAccuracy: Prometheus.Gauge
    private let gradientNorm: Prometheus.Gauge
    private let newtonIterations: Prometheus.Counter
    private let cgIterations: Prometheus.Counter
    private let liveServers: Prometheus.Gauge
    private let liveWorkers: Prometheus.Gauge
    private let liveAgents: Prometheus.Gauge
    private let disagreement: Prometheus.Gauge
    private let recoveries: Prometheus.Counter
    /// The `state` labels reported so far.
    private let jobStates = Mutex(Set<String>())

    private static func name(_ metric: String, _ unit: String = "", _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "newtonps", metricName: metric, unitName: unit, helpText: help)
    }

    static var jobsName: MetricNameDescriptor { name("jobs", "", "Jobs in the driver's store, by state.") }

    /// Registers (or finds) the series in `registry`.
    public init(registry: PrometheusCollectorRegistry = MetricsBootstrap.registry()) {
        self.registry = registry
        objective = registry.makeGauge(descriptor: Self.name("objective", "", "Objective f(θ) after the last iteration."))
        lambda = registry.makeGauge(descriptor: Self.name("lambda", "", "Levenberg-Marquardt damping λ after the last iteration."))
        testAccuracy = registry.makeGauge(
            descriptor: Self.name("test_accuracy", "", "Test-set accuracy (0…1) at the last evaluated iteration."))
        gradientNorm = registry.makeGauge(descriptor: Self.name("grad_norm", "", "‖∇f(θ)‖ after the last iteration."))
        newtonIterations = registry.makeCounter(
            descriptor: Self.name("newton_iterations", "total", "Outer (Newton or first-order) iterations completed."))
        cgIterations = registry.makeCounter(descriptor: Self.name("cg_iterations", "total", "Conjugate-gradient iterations run."))
        liveServers = registry.makeGauge(descriptor: Self.name("live_servers", "", "Parameter servers registered and alive."))
        liveWorkers = registry.makeGauge(descriptor: Self.name("live_workers", "", "Workers registered and alive."))
        liveAgents = registry.makeGauge(descriptor: Self.name("live_agents", "", "Agents (of decentralised jobs) registered and alive."))
        disagreement = registry.makeGauge(
            descriptor: Self.name("disagreement", "", "Decentralised jobs: (1/I)·Σ‖wᵢ − w̄‖² after the last round."))
        recoveries = registry.makeCounter(
            descriptor: Self.name("job_recoveries", "total", "Times a job restarted from its last checkpoint after a cluster failure."))
    }

    /// Records one iteration's outcome.
    ///
    /// - Parameters:
    ///   - testAccuracy: nil leaves the gauge at its last value.
    ///   - countsAsIteration: false for the record of the starting point
    ///     (iteration 0), which sets the gauges but is not an iteration.
    public func recordIteration(
        objective: Double,
        gradientNorm: Double,
        cgIterations: Int,
        lambda: Double,
        testAccuracy: Double?,
        disagreement: Double? = nil,
        countsAsIteration: Bool = true
    ) {
        self.objective.set(to: objective)
        self.gradientNorm.set(to: gradientNorm)
        self.lambda.set(to: lambda)
        if let testAccuracy { self.testAccuracy.set(to: testAccuracy) }
        if let disagreement { self.disagreement.set(to: disagreement) }
        if cgIterations > 0 { self.cgIterations.increment(by: Int64(cgIterations)) }
        if countsAsIteration { newtonIterations.increment() }
    }

    /// Sets `newtonps_jobs{state}` for every state given; states reported
    /// before but missing now drop to 0.
    public func setJobCounts(_ counts: [String: Int]) {
        let stale: Set<String> = jobStates.withLock { states in
            defer { states.formUnion(counts.keys) }
            return states.subtracting(counts.keys)
        }
        for (state, count) in counts { jobsGauge(state).set(to: Double(count)) }
        for state in stale { jobsGauge(state).set(to: 0) }
    }

    /// Sets `newtonps_jobs{state}` for one state.
    public func setJobCount(_ count: Int, state: String) {
        _ = jobStates.withLock { $0.insert(state) }
        jobsGauge(state).set(to: Double(count))
    }

    /// Counts a job restarted from its checkpoint after a cluster failure.
    public func recordRecovery() {
        recoveries.increment()
    }

    /// Sets the number of live parameter servers.
    public func setLiveServers(_ count: Int) {
        liveServers.set(to: Double(count))
    }

    /// Sets the number of live workers.
    public func setLiveWorkers(_ count: Int) {
        liveWorkers.set(to: Double(count))
    }

    /// Sets the number of live agents.
    public func setLiveAgents(_ count: Int) {
        liveAgents.set(to: Double(count))
    }

    private func jobsGauge(_ state: String) -> Prometheus.Gauge {
        registry.makeGauge(descriptor: Self.jobsName, labels: [("state", state)])
    }
}
