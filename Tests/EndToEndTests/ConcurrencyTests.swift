import Foundation
import NewtonDriver
import NewtonTransport
import Synchronization
import XCTest

/// Many clients at once on one driver, each on its own TLS connection:
/// every call must succeed; latencies are printed as `concurrency:` lines.
final class ConcurrencyTests: ClusterTestCase {
    private static let clients = 100

    func testAHundredClientsSubmitListAndWatchAtOnce() async throws {
        let cluster = try await startCluster(servers: 1, workers: 1)
        defer { cluster.stop() }
        let spec = """
            synthetic: {train_rows: 50, test_rows: 10, features: 4, classes: 3, seed: 1}
            layers: [4, 3]
            max_iterations: 0
            shard_rows: 50
            """
        let latencies = Latencies()
        let credentials = cluster.credentials
        let driver = cluster.driver.grpc!
        let finished = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<Self.clients {
                group.addTask {
                    let client = try DriverClient(driver: driver, credentials: credentials)
                    defer { client.close() }
                    let job = try await latencies.timed("submit") { try await client.submit(yaml: spec) }
                    _ = try await latencies.timed("list") { try await client.jobs() }
                    _ = try await latencies.timed("get") { try await client.job(job.id) }
                    let end = Box<JobInfo>()
                    try await latencies.timed("watch to the job's end") {
                        try await client.watch(job.id) { event in
                            if case .finished(let info) = event { end.set(info) }
                        }
                    }
                    return end.value?.state ?? "no end event"
                }
            }
            var states = [String]()
            for try await state in group { states.append(state) }
            return states
        }
        XCTAssertEqual(finished.count, Self.clients)
        XCTAssertEqual(Set(finished), ["succeeded"])
        for (kind, values) in latencies.all.sorted(by: { $0.key < $1.key }) {
            let sorted = values.sorted()
            func percentile(_ p: Double) -> String {
                let d = sorted[min(sorted.count - 1, Int((p * Double(sorted.count)).rounded(.up)) - 1)]
                return String(format: "%.1f ms", Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) * 1e-15)
            }
            XCTAssertEqual(values.count, Self.clients, kind)
            print("concurrency: \(Self.clients) clients, \(kind): p50 \(percentile(0.5)), p99 \(percentile(0.99)), 0 failures")
        }
    }
}

/// Call latencies by kind, recorded from many tasks.
private final class Latencies: Sendable {
    private let stored = Mutex([String: [Duration]]())

    var all: [String: [Duration]] { stored.withLock { $0 } }

    func timed<T>(_ kind: String, _ body: () async throws -> T) async throws -> T {
        let clock = ContinuousClock.now
        let value = try await body()
        let elapsed = ContinuousClock.now - clock
        stored.withLock { $0[kind, default: []].append(elapsed) }
        return value
    }
}
