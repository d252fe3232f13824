import Foundation
import NewtonCore
import NewtonDriver
import NewtonRoles
import NewtonTraining
import NewtonTransport
import Synchronization
import XCTest

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A test that starts real `newtonps` processes (the binary built beside
/// the tests) in a scratch directory of its own.
class ClusterTestCase: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("newtonps-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        BLAS.threads = 1  // the processes use one BLAS thread; so must the embedded reference
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    static let binary: URL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("newtonps")

    func startCluster(
        servers: Int, workers: Int, agents: Int = 0, dataRoot: String? = nil, serverArguments: [String] = [],
        workerArguments: [String] = []
    ) async throws -> LocalCluster {
        try await LocalCluster.start(
            binary: Self.binary, store: directory.appendingPathComponent("jobs.sqlite").path,
            servers: servers, workers: workers, agents: agents, dataRoot: dataRoot, serverArguments: serverArguments,
            workerArguments: workerArguments)
    }

    /// The records and final average model of the decentralised job `yaml`
    /// on agents in this process: what a run on agent processes must
    /// reproduce as doubles.
    func embeddedDecentralisedRun(_ yaml: String) async throws -> (records: [IterationRecord], model: [Float]) {
        let spec = try JobSpec.parse(yaml: yaml)
        let data = try spec.data.load()
        let network = try spec.network(for: data.train)
        let job = spec.trainingJob(network: network)
        let embedded = try await EmbeddedAgents(
            grid: try spec.grid(for: network, servers: 1), data: data, descriptor: spec.data, agents: job.decentralised.agents,
            serversPerAgent: 1, workersPerAgent: 1, monitorWorkers: 1, shardRows: spec.shardRows)
        let summary = try await job.run(
            agents: embedded.agents.map(\.coordinator), monitor: embedded.monitor.coordinator, jobID: "reference", data: spec.data)
        return (summary.records, try await embedded.monitor.coordinator.read(.weights).values)
    }

    /// The per-iteration objectives of the job `yaml` on an embedded cluster:
    /// what every cluster run of it must reproduce as doubles.
    func embeddedObjectives(_ yaml: String) async throws -> [Double] {
        let spec = try JobSpec.parse(yaml: yaml)
        let data = try spec.data.load()
        let network = try spec.network(for: data.train)
        let embedded = try await EmbeddedCluster(
            grid: try spec.grid(for: network, servers: 2), data: data, descriptor: spec.data, servers: 2, workers: 1,
            shardRows: spec.shardRows)
        return try await spec.trainingJob(network: network).run(on: embedded.coordinator, jobID: "reference", data: spec.data)
            .records.map(\.objective)
    }

    /// Submits `yaml` and follows it to its end.
    func runToEnd(_ client: DriverClient, _ yaml: String) async throws -> (JobInfo, [IterationRecord]) {
        let job = try await client.submit(yaml: yaml)
        return try await followToEnd(client, job.id)
    }

    /// Watches job `id` until it ends; returns its summary and records.
    func followToEnd(_ client: DriverClient, _ id: String) async throws -> (JobInfo, [IterationRecord]) {
        let end = Box<JobInfo>()
        try await client.watch(id) { event in
            if case .finished(let info) = event { end.set(info) }
        }
        let (info, _, records) = try await client.job(id)
        XCTAssertEqual(end.value?.state, info.state)
        return (info, records)
    }
}

/// A value set from a `@Sendable` callback and read afterwards.
final class Box<T: Sendable>: Sendable {
    private let stored = Mutex<T?>(nil)
    func set(_ value: T) { stored.withLock { $0 = value } }
    var value: T? { stored.withLock { $0 } }
}

/// A plain HTTP GET on loopback.
func httpGet(_ endpoint: Endpoint, _ path: String) async throws -> (status: Int, body: String) {
    let url = URL(string: "http://\(endpoint)\(path)")!
    let (data, response) = try await URLSession.shared.data(from: url)
    return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
}

/// Polls `condition` for up to `seconds`.
func eventually(seconds: Double = 10, _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if (try? await condition()) == true { return true }
        try await Task.sleep(for: .milliseconds(100))
    }
    return false
}

/// The sum of every sample of a Prometheus metric in `text` whose line
/// contains each of `labels` (label text such as `side="server"`).
func metric(_ text: String, _ name: String, labels: [String] = []) -> Double {
    text.split(separator: "\n").filter { $0.hasPrefix(name + " ") || $0.hasPrefix(name + "{") }
        .filter { line in labels.allSatisfy { line.contains($0) } }
        .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
}

/// Connects to `endpoint`, sends `bytes` and returns what comes back
/// within a second (at most 4 KiB).
func rawExchange(_ endpoint: Endpoint, _ bytes: [UInt8]) throws -> [UInt8] {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr(endpoint.host)
    address.sin_port = UInt16(endpoint.port).bigEndian
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0, send(descriptor, bytes, bytes.count, 0) == bytes.count else { throw CocoaError(.fileReadUnknown) }
    var timeout = timeval(tv_sec: 1, tv_usec: 0)
    setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var buffer = [UInt8](repeating: 0, count: 4096)
    let count = recv(descriptor, &buffer, buffer.count, 0)
    return count > 0 ? Array(buffer[..<count]) : []
}

/// A TCP socket on a free loopback port that accepts connections and never
/// answers: a peer that is up but dead.
final class ListeningSocket {
    let descriptor: Int32
    let port: Int

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(descriptor, 8) == 0 else {
            close(descriptor)
            throw CocoaError(.fileWriteUnknown)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        self.descriptor = descriptor
        self.port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// A port nothing listens on (bound, then released).
    static func freePort() throws -> Int {
        let socket = try ListeningSocket()
        return socket.port
    }

    deinit { close(descriptor) }
}
