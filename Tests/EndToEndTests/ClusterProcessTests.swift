import Foundation
import NewtonCore
import NewtonDriver
import NewtonRoles
import NewtonTraining
import NewtonTransport
import XCTest

/// Real processes on loopback: a driver, servers and workers started from the
/// built `newtonps` binary, driven through the job API.
final class ClusterProcessTests: XCTestCase {
    private var directory: URL!

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

    private func startCluster(servers: Int, workers: Int, serverArguments: [String] = []) async throws -> LocalCluster {
        try await LocalCluster.start(
            binary: Self.binary, store: directory.appendingPathComponent("jobs.sqlite").path,
            servers: servers, workers: workers, serverArguments: serverArguments)
    }

    /// A job on synthetic data every process can regenerate from the seed.
    private func spec(workers: Int? = nil, extra: String = "") -> String {
        """
        name: e2e
        synthetic: {train_rows: 600, test_rows: 200, features: 8, classes: 3, seed: 11}
        scaling: standard
        layers: [8, 12, 10, 3]
        activation: tanh
        C: 1
        subsample: 0.2
        partitions: [2, 2, 2, 1]
        shard_rows: 64
        max_iterations: 5
        seed: 3
        \(workers.map { "workers: \($0)" } ?? "")
        \(extra)
        """
    }

    /// The same job on the embedded cluster.
    private func embeddedObjectives(options: (inout NewtonOptions) -> Void = { _ in }) async throws -> [Double] {
        let descriptor = DataDescriptor(
            source: .synthetic(trainRows: 600, testRows: 200, features: 8, classes: 3, seed: 11), scaling: .standardize)
        let network = try NetworkSpec(layerSizes: [8, 12, 10, 3], activations: [.tanh], loss: .crossEntropy)
        let grid = try PartitionGrid(spec: network, partitions: [2, 2, 2, 1])
        let embedded = try await EmbeddedCluster(
            grid: grid, data: try descriptor.load(), descriptor: descriptor, servers: 2, workers: 1, shardRows: 64)
        var newton = NewtonOptions()
        newton.subsampleFraction = 0.2
        options(&newton)
        let job = TrainingJob(
            network: network, optimizer: .newton, regularization: 1, newton: newton, budget: TrainingBudget(maxIterations: 5), seed: 3)
        return try await job.run(on: embedded.coordinator, jobID: "reference", data: descriptor).records.map(\.objective)
    }

    private func runToEnd(_ client: DriverClient, _ yaml: String) async throws -> (JobInfo, [IterationRecord]) {
        let job = try await client.submit(yaml: yaml)
        let end = Box<JobInfo>()
        try await client.watch(job.id) { event in
            if case .finished(let info) = event { end.set(info) }
        }
        let (info, _, records) = try await client.job(job.id)
        XCTAssertEqual(end.value?.state, info.state)
        return (info, records)
    }

    func testClusterMatchesEmbeddedRunWithOneTwoAndThreeWorkers() async throws {
        let cluster = try await startCluster(servers: 2, workers: 3)
        defer { cluster.stop() }
        let client = try DriverClient(driver: cluster.driver.grpc!, token: cluster.token)
        defer { client.close() }
        let reference = try await embeddedObjectives()
        for workers in [2, 1, 3] {
            let (info, records) = try await runToEnd(client, spec(workers: workers))
            XCTAssertEqual(info.state, "succeeded", info.error)
            XCTAssertEqual(records.map(\.objective), reference, "\(workers) worker(s)")
        }
        // Products from R-operator passes on the workers agree too.
        let (rop, ropRecords) = try await runToEnd(client, spec(extra: "products: rop"))
        XCTAssertEqual(rop.state, "succeeded", rop.error)
        let ropReference = try await embeddedObjectives { $0.products = .rop }
        XCTAssertEqual(ropRecords.map(\.objective), ropReference)

        // The trained model comes back through export.
        let bytes = try await client.export(rop.id)
        let model = try SavedModel.decode(Array(bytes), source: "export")
        XCTAssertEqual(model.spec.layerSizes, [8, 12, 10, 3])
    }

    func testJobStoreSurvivesDriverRestartAndBadSpecsAreRejected() async throws {
        let store = directory.appendingPathComponent("jobs.sqlite").path
        var cluster: LocalCluster? = try await startCluster(servers: 1, workers: 1)
        var client = try DriverClient(driver: cluster!.driver.grpc!, token: cluster!.token)
        let (done, _) = try await runToEnd(client, spec())
        XCTAssertEqual(done.state, "succeeded", done.error)

        do {
            _ = try await client.submit(
                yaml: "max_iterations: -3\nlamda: 2\nsynthetic: {train_rows: 10, test_rows: 0, features: 2, classes: 2, seed: 1}\n")
            XCTFail("a bad spec was accepted")
        } catch {
            let message = "\(error)"
            XCTAssertTrue(message.contains("lamda"), message)
            XCTAssertTrue(message.contains("max_iterations"), message)
        }
        client.close()
        cluster!.stop()
        cluster = nil

        let restarted = try await LocalCluster.start(binary: Self.binary, store: store, servers: 0, workers: 0)
        defer { restarted.stop() }
        client = try DriverClient(driver: restarted.driver.grpc!, token: restarted.token)
        defer { client.close() }
        let jobs = try await client.jobs()
        XCTAssertEqual(jobs.map(\.id), [done.id])
        XCTAssertEqual(jobs.first?.state, "succeeded")
        XCTAssertEqual(jobs.first?.iterations, 5)
        let (_, _, records) = try await client.job(done.id)
        XCTAssertEqual(records.count, 6)
    }

    func testEveryRoleServesHealthReadinessAndMetricsThatMove() async throws {
        let cluster = try await startCluster(servers: 1, workers: 1)
        defer { cluster.stop() }
        for member in cluster.members {
            let health = try await httpGet(member.http, "/healthz")
            XCTAssertEqual(health.status, 200, member.role)
            let ready = try await eventually { try await httpGet(member.http, "/readyz").status == 200 }
            XCTAssertTrue(ready, "\(member.role) never became ready")
            let metrics = try await httpGet(member.http, "/metrics")
            XCTAssertEqual(metrics.status, 200, member.role)
        }
        let before = try await httpGet(cluster.driver.http, "/metrics").body
        let client = try DriverClient(driver: cluster.driver.grpc!, token: cluster.token)
        defer { client.close() }
        _ = try await runToEnd(client, spec())
        let after = try await httpGet(cluster.driver.http, "/metrics").body
        XCTAssertGreaterThan(metric(after, "newtonps_newton_iterations_total"), metric(before, "newtonps_newton_iterations_total"))
        XCTAssertTrue(after.contains("newtonps_objective"), after)
        let server = try await httpGet(cluster.servers[0].http, "/metrics").body
        XCTAssertTrue(server.contains("JacobianProduct"), server)
    }

    /// A server slowed on purpose: with a cut-off of one half the direction
    /// search ends without it, and the job still finishes.
    func testStragglerCutoffAcrossProcesses() async throws {
        let cluster = try await startCluster(servers: 1, workers: 1)
        defer { cluster.stop() }
        try await cluster.addServer(arguments: ["--solve-delay-ms", "200"])
        let client = try DriverClient(driver: cluster.driver.grpc!, token: cluster.token)
        defer { client.close() }
        let clock = ContinuousClock.now
        let (info, records) = try await runToEnd(
            client, spec(extra: "servers: 2\nblock_diagonal: true\nstraggler_cutoff: 0.5\ncg_tolerance: 0.01"))
        XCTAssertEqual(info.state, "succeeded", info.error)
        XCTAssertLessThan(records.last!.objective, records.first!.objective)
        // Without the cut-off the slow server's blocks alone would take
        // iterations × CG steps × 200 ms, far beyond this bound.
        XCTAssertLessThan(ContinuousClock.now - clock, .seconds(30))
    }

    /// Every process requires the cluster token: the job API, registration
    /// and the parameter servers refuse a caller without it or with another.
    func testCallsWithoutTheClusterTokenAreRefused() async throws {
        let cluster = try await startCluster(servers: 1, workers: 0)
        defer { cluster.stop() }
        let wrongFile = directory.appendingPathComponent("wrong.token").path
        for token in [nil, try ClusterToken.generate(into: wrongFile)] {
            let client = try DriverClient(driver: cluster.driver.grpc!, token: token)
            defer { client.close() }
            do {
                _ = try await client.submit(yaml: spec())
                XCTFail("a job was accepted without the cluster token")
            } catch let error as TransportError {
                XCTAssertEqual(error.code, .unauthenticated, "\(error)")
            }
            let link = try DriverLink(driver: cluster.driver.grpc!, token: token, role: "worker", endpoint: nil, httpEndpoint: "-")
            let connection = try GRPCConnection(to: cluster.servers[0].grpc!, token: token)
            defer { connection.close() }
            for (what, call) in [
                ("registration", { _ = try await link.register() }),
                ("a parameter-server call", { _ = try await RemoteParameterServer(connection: connection, role: "test").run([]) }),
            ] as [(String, () async throws -> Void)] {
                do {
                    try await call()
                    XCTFail("\(what) was accepted without the cluster token")
                } catch let error as TransportError {
                    XCTAssertEqual(error.code, .unauthenticated, "\(what): \(error)")
                }
            }
        }
        let client = try DriverClient(driver: cluster.driver.grpc!, token: cluster.token)
        defer { client.close() }
        let jobs = try await client.jobs()
        XCTAssertEqual(jobs.count, 0)

        // The CLI says what is wrong and what to do.
        let cli = try ManagedProcess(Self.binary, ["jobs", "--driver", cluster.driver.grpc!.description])
        while cli.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        XCTAssertNotEqual(cli.exitStatus, 0)
        XCTAssertTrue(cli.output.contains("refused the call: no token given"), cli.output)
    }

    func testCallToADeadPeerFailsWithinItsDeadline() async throws {
        let listener = try ListeningSocket()  // a port that accepts TCP but never speaks HTTP/2
        let connection = try GRPCConnection(to: Endpoint(host: "127.0.0.1", port: listener.port), token: nil)
        defer { connection.close() }
        var timeouts = RemoteParameterServer.Timeouts()
        timeouts.standard = .milliseconds(500)
        let server = RemoteParameterServer(connection: connection, role: "test", timeouts: timeouts)
        let clock = ContinuousClock.now
        do {
            _ = try await server.read(.weights, blocks: [0])
            XCTFail("a dead peer answered")
        } catch let error as TransportError {
            XCTAssertEqual(error.code, .unreachable, "\(error)")
        }
        XCTAssertLessThan(ContinuousClock.now - clock, .seconds(3))

        let closed = try GRPCConnection(to: Endpoint(host: "127.0.0.1", port: try ListeningSocket.freePort()), token: nil)
        defer { closed.close() }
        do {
            _ = try await RemoteParameterServer(connection: closed, role: "test", timeouts: timeouts).run([])
            XCTFail("a closed port answered")
        } catch let error as TransportError {
            XCTAssertEqual(error.code, .unreachable, "\(error)")
        }
    }
}
