import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import NewtonCore
import NewtonDriver
import NewtonProto
import NewtonRoles
import NewtonTraining
import XCTest

@testable import NewtonTransport

/// Real processes on loopback: a driver, servers and workers started from the
/// built `newtonps` binary, driven through the job API.
final class ClusterProcessTests: ClusterTestCase {
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

    func testClusterMatchesEmbeddedRunWithOneTwoAndThreeWorkers() async throws {
        let cluster = try await startCluster(servers: 2, workers: 3)
        defer { cluster.stop() }
        let client = try DriverClient(driver: cluster.driver.grpc!, credentials: cluster.credentials)
        defer { client.close() }
        let reference = try await embeddedObjectives(spec())
        for workers in [2, 1, 3] {
            let (info, records) = try await runToEnd(client, spec(workers: workers))
            XCTAssertEqual(info.state, "succeeded", info.error)
            XCTAssertEqual(records.map(\.objective), reference, "\(workers) worker(s)")
        }
        // Products from R-operator passes on the workers agree too.
        let (rop, ropRecords) = try await runToEnd(client, spec(extra: "products: rop"))
        XCTAssertEqual(rop.state, "succeeded", rop.error)
        let ropReference = try await embeddedObjectives(spec(extra: "products: rop"))
        XCTAssertEqual(ropRecords.map(\.objective), ropReference)
        // So does progressive batching, whose samples are drawn on the driver.
        let progressive = "gradient_sample: 0.1\ngradient_sample_growth: 2"
        let (sampled, sampledRecords) = try await runToEnd(client, spec(extra: progressive))
        XCTAssertEqual(sampled.state, "succeeded", sampled.error)
        let sampledReference = try await embeddedObjectives(spec(extra: progressive))
        XCTAssertEqual(sampledRecords.map(\.objective), sampledReference)
        XCTAssertNotEqual(sampledReference, reference)

        // The trained model comes back through export.
        let exported = try await client.export(rop.id)
        let model = try SavedModel.decode(Array(exported.safetensors), source: "export")
        XCTAssertEqual(model.spec.layerSizes, [8, 12, 10, 3])
        XCTAssertEqual(exported.iteration, 5)
        XCTAssertEqual(exported.state, "succeeded")
    }

    /// Data in files: one worker reads its blocks from the files, the other
    /// cannot see them (its data root is elsewhere) and streams them from
    /// the driver; the objectives are the in-memory run's either way, and
    /// `data_access: local` fails naming the worker that cannot read.
    func testWorkersReadOrStreamTheirBlocksWithTheObjectivesOfAnInMemoryRun() async throws {
        let data = directory.appendingPathComponent("data").path
        let elsewhere = directory.appendingPathComponent("elsewhere").path
        for path in [data, elsewhere] { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        var generator = SyntheticData.Generator(features: 8, classes: 3, seed: 11)
        try generator.write(3000, as: .libsvm, to: data + "/train.svm")
        try generator.write(500, as: .libsvm, to: data + "/test.svm")
        func spec(_ access: DataAccess) -> String {
            """
            train: \(data)/train.svm
            test: \(data)/test.svm
            format: libsvm
            data_access: \(access.rawValue)
            scaling: standard
            layers: [8, 12, 3]
            activation: tanh
            C: 1
            subsample: 0.2
            shard_rows: 200
            max_iterations: 4
            seed: 3
            """
        }
        let cluster = try await startCluster(servers: 2, workers: 1, workerArguments: ["--data-root", elsewhere, "--data-cache-mb", "1"])
        defer { cluster.stop() }
        let streaming = cluster.workers[0]
        let local = try await cluster.addWorker(arguments: ["--data-cache-mb", "1"])
        let client = try DriverClient(driver: cluster.driver.grpc!, credentials: cluster.credentials)
        defer { client.close() }

        let reference = try await embeddedObjectives(spec(.auto))
        let (info, records) = try await runToEnd(client, spec(.auto) + "\nworkers: 2")
        XCTAssertEqual(info.state, "succeeded", info.error)
        XCTAssertEqual(records.map(\.objective), reference)
        let streamed = try await httpGet(streaming.http, "/metrics").body
        let read = try await httpGet(local.http, "/metrics").body
        let blockBytes = ["method=\"ReadDataBlock\"", "direction=\"received\""]
        XCTAssertGreaterThan(metric(streamed, "newtonps_rpc_bytes_total", labels: blockBytes), 0, streamed)
        XCTAssertEqual(metric(read, "newtonps_rpc_bytes_total", labels: blockBytes), 0, read)

        let (refused, _) = try await runToEnd(client, spec(.local) + "\nworkers: 2")
        XCTAssertEqual(refused.state, "failed")
        XCTAssertTrue(refused.error.contains("data_access local: cannot read the job's train data here"), refused.error)
    }

    /// `newtonps cluster` killed by SIGKILL cannot stop its processes; they
    /// notice that their parent is gone and stop by themselves.
    func testClusterProcessesStopWhenTheirParentIsKilled() async throws {
        let parent = try ManagedProcess(
            Self.binary,
            [
                "cluster", "--servers", "1", "--workers", "1", "--driver-port", "0", "--store",
                directory.appendingPathComponent("jobs.sqlite").path,
            ])
        let deadline = ContinuousClock.now + .seconds(60)
        while !parent.output.contains("submit jobs with") {
            guard parent.isRunning, ContinuousClock.now < deadline else { return XCTFail("no cluster:\n\(parent.output)") }
            try await Task.sleep(for: .milliseconds(50))
        }
        let children = parent.output.split(separator: "\n").compactMap { line -> pid_t? in
            let words = line.split(separator: " ")
            return words.count > 2 && words[1] == "pid" ? pid_t(words[2].dropLast()) : nil
        }
        XCTAssertEqual(children.count, 3, parent.output)
        parent.kill()
        let stopBy = ContinuousClock.now + .seconds(20)
        while children.contains(where: Self.isAlive), ContinuousClock.now < stopBy { try await Task.sleep(for: .milliseconds(100)) }
        for child in children where Self.isAlive(child) {
            XCTFail("process \(child) outlived its parent")
            kill(child, SIGKILL)
        }
    }

    /// Whether `pid` runs (a zombie waiting for a reaper does not).
    private static func isAlive(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let state = stat.split(separator: ")").last?.split(separator: " ").first
        else { return false }
        return state != "Z" && state != "X"
    }

    func testJobStoreSurvivesDriverRestartAndBadSpecsAreRejected() async throws {
        let store = directory.appendingPathComponent("jobs.sqlite").path
        var cluster: LocalCluster? = try await startCluster(servers: 1, workers: 1)
        var client = try DriverClient(driver: cluster!.driver.grpc!, credentials: cluster!.credentials)
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
        client = try DriverClient(driver: restarted.driver.grpc!, credentials: restarted.credentials)
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
        let client = try DriverClient(driver: cluster.driver.grpc!, credentials: cluster.credentials)
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
        let client = try DriverClient(driver: cluster.driver.grpc!, credentials: cluster.credentials)
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
    /// and the parameter servers refuse a caller without it or with another,
    /// even one holding a good certificate.
    func testCallsWithoutTheClusterTokenAreRefused() async throws {
        let cluster = try await startCluster(servers: 1, workers: 0)
        defer { cluster.stop() }
        let wrongFile = directory.appendingPathComponent("wrong.token").path
        for token in [nil, try ClusterToken.generate(into: wrongFile)] {
            let credentials = ClusterCredentials(token: token, tls: cluster.credentials.tls)
            let client = try DriverClient(driver: cluster.driver.grpc!, credentials: credentials)
            defer { client.close() }
            do {
                _ = try await client.submit(yaml: spec())
                XCTFail("a job was accepted without the cluster token")
            } catch let error as TransportError {
                XCTAssertEqual(error.code, .unauthenticated, "\(error)")
            }
            let link = try DriverLink(
                driver: cluster.driver.grpc!, credentials: credentials, role: "worker", endpoint: nil, httpEndpoint: "-")
            let connection = try GRPCConnection(to: cluster.servers[0].grpc!, credentials: credentials)
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
        let client = try DriverClient(driver: cluster.driver.grpc!, credentials: cluster.credentials)
        defer { client.close() }
        let jobs = try await client.jobs()
        XCTAssertEqual(jobs.count, 0)

        // The CLI says what is wrong and what to do.
        let certificates = cluster.certificateDirectory!
        let cli = try ManagedProcess(
            Self.binary,
            [
                "jobs", "--driver", cluster.driver.grpc!.description, "--tls-cert", "\(certificates)/client.pem",
                "--tls-key", "\(certificates)/client-key.pem", "--tls-ca", "\(certificates)/ca.pem",
            ])
        while cli.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        XCTAssertNotEqual(cli.exitStatus, 0)
        XCTAssertTrue(cli.output.contains("refused the call: no token given"), cli.output)
    }

    /// Every role speaks only mutual TLS: a plaintext caller, a TLS caller
    /// without a certificate and one whose certificate comes from another
    /// CA are all refused in the handshake, token or not; the bytes a
    /// plaintext HTTP/2 client gets back are a TLS alert, not HTTP/2.
    func testEveryRoleSpeaksOnlyMutualTLS() async throws {
        let cluster = try await startCluster(servers: 1, workers: 0)
        defer { cluster.stop() }
        let otherCA = directory.appendingPathComponent("other-ca").path
        try ClusterCertificates.make(in: otherCA, hosts: [])
        let strangers: [(String, ClusterCredentials)] = [
            ("plaintext", ClusterCredentials(token: cluster.credentials.token, tls: nil)),
            (
                "a certificate from another CA",
                ClusterCredentials(
                    token: cluster.credentials.token, tls: try ClusterCertificates.identity("client", in: otherCA))
            ),
        ]
        for (who, credentials) in strangers {
            for peer in [cluster.driver.grpc!, cluster.servers[0].grpc!] {
                let connection = try GRPCConnection(to: peer, credentials: credentials)
                defer { connection.close() }
                var timeouts = RemoteParameterServer.Timeouts()
                timeouts.standard = .seconds(5)
                do {
                    _ = try await RemoteParameterServer(connection: connection, role: "test", timeouts: timeouts).run([])
                    XCTFail("\(peer) answered \(who)")
                } catch let error as TransportError {
                    XCTAssertEqual(error.code, .unreachable, "\(who) → \(peer): \(error)")
                }
            }
        }
        // TLS that trusts the cluster's CA but shows no certificate of its own.
        let ca = cluster.certificateDirectory! + "/ca.pem"
        for peer in [cluster.driver.grpc!, cluster.servers[0].grpc!] {
            let transport = try HTTP2ClientTransport.Posix(
                target: .ipv4(address: peer.host, port: peer.port),
                transportSecurity: .tls { $0.trustRoots = .certificates([.file(path: ca, format: .pem)]) }, config: .defaults)
            let client = GRPCClient(transport: transport, interceptors: [PresentClusterToken(token: cluster.credentials.token!)])
            let running = Task { try? await client.runConnections() }
            defer {
                client.beginGracefulShutdown()
                running.cancel()
            }
            var options = CallOptions.defaults
            options.timeout = .seconds(5)
            do {
                _ = try await Newtonps_V1_Driver.Client(wrapping: client).listJobs(.init(), options: options)
                XCTFail("\(peer) answered a client without a certificate")
            } catch let error as RPCError {
                XCTAssertEqual(error.code, .unavailable, "no client certificate → \(peer): \(error)")
            }
        }
        for peer in [cluster.driver.grpc!, cluster.servers[0].grpc!] {
            let reply = try rawExchange(peer, Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8))
            // A TLS record of type alert (21), or nothing at all; never an HTTP/2 frame.
            XCTAssertTrue(reply.isEmpty || reply[0] == 21, "\(peer) answered plaintext HTTP/2 with \(reply.prefix(16))")
        }
        // With the cluster's certificates and token, the same calls succeed.
        let client = try DriverClient(driver: cluster.driver.grpc!, credentials: cluster.credentials)
        defer { client.close() }
        let jobs = try await client.jobs()
        XCTAssertEqual(jobs.count, 0)
    }

    func testCallToADeadPeerFailsWithinItsDeadline() async throws {
        let listener = try ListeningSocket()  // a port that accepts TCP but never speaks HTTP/2
        let connection = try GRPCConnection(to: Endpoint(host: "127.0.0.1", port: listener.port), credentials: .open)
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

        let closed = try GRPCConnection(to: Endpoint(host: "127.0.0.1", port: try ListeningSocket.freePort()), credentials: .open)
        defer { closed.close() }
        do {
            _ = try await RemoteParameterServer(connection: closed, role: "test", timeouts: timeouts).run([])
            XCTFail("a closed port answered")
        } catch let error as TransportError {
            XCTAssertEqual(error.code, .unreachable, "\(error)")
        }
    }
}
