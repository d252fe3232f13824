import Prometheus

/// An agent process's view of its decentralised rounds.
///
/// Series: `newtonps_agent_rounds_total` (counter),
/// `newtonps_agent_round_seconds` (gauge, the last round's wall time) and
/// `newtonps_agent_bytes_sent_total{neighbour}` (counter, float32 payload
/// sent to each neighbour, by its agent index). The disagreement needs every
/// agent's weights, so the driver exports it (`newtonps_disagreement`).
public final class AgentMetrics: Sendable {
    private let registry: PrometheusCollectorRegistry
    private let rounds: Prometheus.Counter
    private let roundSeconds: Prometheus.Gauge

    static var bytesSentName: MetricNameDescriptor {
        MetricNameDescriptor(
            namespace: "newtonps", metricName: "agent_bytes_sent", unitName: "total",
            helpText: "Float32 payload bytes this agent sent to each neighbour (by agent index).")
    }

    /// Registers (or finds) the series in `registry`.
    public init(registry: PrometheusCollectorRegistry = MetricsBootstrap.registry()) {
        self.registry = registry
        rounds = registry.makeCounter(
            descriptor: MetricNameDescriptor(
                namespace: "newtonps", metricName: "agent_rounds", unitName: "total", helpText: "Rounds this agent has finished."))
        roundSeconds = registry.makeGauge(
            descriptor: MetricNameDescriptor(
                namespace: "newtonps", metricName: "agent_round_seconds", unitName: "",
                helpText: "Wall time of this agent's last round, its exchange included."))
    }

    /// Records a finished round.
    public func recordRound(seconds: Double) {
        rounds.increment()
        roundSeconds.set(to: seconds)
    }

    /// Counts `bytes` sent to neighbour `agent`.
    public func recordSent(_ bytes: Int, to agent: Int) {
        registry.makeCounter(descriptor: Self.bytesSentName, labels: [("neighbour", String(agent))]).increment(by: Int64(bytes))
    }
}
