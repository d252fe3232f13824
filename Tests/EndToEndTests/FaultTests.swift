import Foundation
import NewtonCore
import NewtonDriver
import NewtonTraining
import NewtonTransport
import XCTest

/// Faults played on real processes mid-job: a worker or a server killed, a
/// worker hung past its heartbeat, the driver killed and restarted. Every
/// job must end with the per-iteration objectives of the fault-free
/// (embedded) run, as doubles. Each test prints one `fault-table:` line.
final class FaultTests: ClusterTestCase {
    /// Long enough (a few hundred ms per iteration) for a fault to land mid-job.
    private func spec(maxIterations: Int = 10, extra: String = "") -> String {
        """
        name: fault
        synthetic: {train_rows: 6000, test_rows: 500, features: 32, classes: 4, seed: 5}
        layers: [32, 96, 96, 4]
        activation: tanh
        C: 1
        subsample: 0.2
        partitions: [2, 2, 2, 1]
        shard_rows: 300
        max_iterations: \(maxIterations)
        seed: 7
        \(extra)
        """
    }

    /// Polls job `id` until it has recorded `iteration`.
    private func waitForIteration(_ iteration: Int, of id: String, _ client: DriverClient) async throws {
        let reached = try await eventually(seconds: 120) { try await client.job(id).info.iterations >= iteration }
        XCTAssertTrue(reached, "job \(id) never reached iteration \(iteration)")
    }

    /// Once job `id` has recorded `iteration`, plays `fault`; returns the
    /// iteration it struck after and the time until the job recorded the next.
    private func strike(
        _ id: String, after iteration: Int, _ client: DriverClient, _ fault: () async throws -> Void
    ) async throws -> (at: Int, recovery: Duration) {
        try await waitForIteration(iteration, of: id, client)
        let at = try await client.job(id).info.iterations
        let clock = ContinuousClock.now
        try await fault()
        try await waitForIteration(at + 1, of: id, client)
        return (at, .now - clock)
    }

    /// Follows job `id` to its end, which must be success with the embedded
    /// run's objectives; returns whether they were identical, and the records.
    private func finishesIdentically(_ id: String, _ yaml: String, _ client: DriverClient) async throws -> (
        identical: Bool, records: [IterationRecord]
    ) {
        let (info, records) = try await followToEnd(client, id)
        XCTAssertEqual(info.state, "succeeded", info.error)
        let identical = try await records.map(\.objective) == embeddedObjectives(yaml)
        XCTAssertTrue(identical, "objectives differ from the fault-free run")
        return (identical, records)
    }

    private func report(_ scenario: String, identical: Bool, recovery: Duration?, _ detail: String) {
        let seconds = recovery.map { String(format: "%.2f s", Double($0.components.seconds) + Double($0.components.attoseconds) * 1e-18) }
        print(
            "fault-table: \(scenario) | \(detail) | identical objectives: \(identical ? "yes" : "NO") | time to recover: \(seconds ?? "-")")
    }

    /// A cluster of 2 servers and `workers` workers, a client, and the job submitted.
    private func startJob(workers: Int = 2) async throws -> (LocalCluster, DriverClient, id: String, yaml: String) {
        let cluster = try await startCluster(servers: 2, workers: workers)
        let client = try DriverClient(driver: cluster.driver.grpc!, credentials: cluster.credentials)
        let yaml = spec()
        return (cluster, client, try await client.submit(yaml: yaml).id, yaml)
    }

    func testAWorkerKilledMidJobCostsNothing() async throws {
        let (cluster, client, id, yaml) = try await startJob()
        defer { cluster.stop() }
        defer { client.close() }
        let (at, recovery) = try await strike(id, after: 2, client) { cluster.workers[0].process.kill() }
        let (identical, _) = try await finishesIdentically(id, yaml, client)
        report("worker kill -9 at iteration \(at)", identical: identical, recovery: recovery, "its shards re-run on the other worker")
    }

    func testAServerKilledMidJobIsReplacedAndTheJobResumesFromItsCheckpoint() async throws {
        let (cluster, client, id, yaml) = try await startJob()
        defer { cluster.stop() }
        defer { client.close() }
        let (at, recovery) = try await strike(id, after: 3, client) {
            cluster.servers[0].process.kill()
            try await cluster.addServer()
        }
        let (identical, records) = try await finishesIdentically(id, yaml, client)
        XCTAssertEqual(records.map(\.iteration), Array(0...10))
        let driverLog = cluster.driver.process.output
        XCTAssertTrue(driverLog.contains("restarting from the checkpoint of iteration"), driverLog)
        let metrics = try await httpGet(cluster.driver.http, "/metrics").body
        XCTAssertEqual(metric(metrics, "newtonps_job_recoveries_total"), 1, metrics)
        report(
            "server kill -9 at iteration \(at), replacement started", identical: identical, recovery: recovery,
            "driver restarts the job from its checkpoint on the live servers")
    }

    func testAHungWorkerIsDroppedRejoinsAndChangesNothing() async throws {
        let (cluster, client, id, yaml) = try await startJob()
        defer { cluster.stop() }
        defer { client.close() }
        let hung = cluster.workers[0]
        let (at, recovery) = try await strike(id, after: 2, client) { hung.process.send(SIGSTOP) }
        // 4 s after the SIGSTOP, past three heartbeats: the driver has ended the hung worker's session.
        try await Task.sleep(until: ContinuousClock.now - recovery + .seconds(4))
        hung.process.send(SIGCONT)
        // Resumed, it notices its session is gone and joins again.
        let rejoined = try await eventually(seconds: 30) {
            metric(try await httpGet(cluster.driver.http, "/metrics").body, "newtonps_live_workers") == 2
        }
        XCTAssertTrue(rejoined, "the resumed worker did not join again")
        let (identical, _) = try await finishesIdentically(id, yaml, client)
        // Pushes the woken worker made for rounds already over, refused by the servers.
        var refused = 0.0
        for server in cluster.servers {
            let text = try await httpGet(server.http, "/metrics").body
            refused += metric(text, "newtonps_rpc_total", labels: ["method=\"Push", "side=\"server\"", "outcome=\"error\""])
        }
        report(
            "worker SIGSTOP at iteration \(at) for 4 s, then SIGCONT", identical: identical, recovery: recovery,
            "session ended after 3 missed heartbeats, shards re-run elsewhere; the worker rejoins; \(Int(refused)) late push(es) refused")
    }

    func testADriverKilledMidJobResumesItsJobsAfterRestart() async throws {
        var (cluster, client, id, yaml) = try await startJob()
        defer { cluster.stop() }
        let queued = try await client.submit(yaml: spec(maxIterations: 3))
        try await waitForIteration(3, of: id, client)
        let at = try await client.job(id).info.iterations
        let clock = ContinuousClock.now
        client.close()
        try await cluster.restartDriver(crash: true)
        client = try DriverClient(driver: cluster.driver.grpc!, credentials: cluster.credentials)
        defer { client.close() }
        let queuedState = try await client.job(queued.id).info.state
        XCTAssertEqual(queuedState, "queued")
        try await waitForIteration(at + 1, of: id, client)
        let recovery = ContinuousClock.now - clock
        let (identical, records) = try await finishesIdentically(id, yaml, client)
        XCTAssertEqual(records.map(\.iteration), Array(0...10))
        let (next, nextRecords) = try await followToEnd(client, queued.id)
        XCTAssertEqual(next.state, "succeeded", next.error)
        XCTAssertEqual(nextRecords.count, 4)
        report(
            "driver kill -9 at iteration \(at), restarted", identical: identical, recovery: recovery,
            "running job resumes from its checkpoint once peers re-register; queued job runs next")
    }

    func testAWorkerJoiningMidJobTakesWork() async throws {
        let (cluster, client, id, yaml) = try await startJob(workers: 1)
        defer { cluster.stop() }
        defer { client.close() }
        try await waitForIteration(2, of: id, client)
        let joined = try await cluster.addWorker()
        let (identical, _) = try await finishesIdentically(id, yaml, client)
        let calls = metric(try await httpGet(joined.http, "/metrics").body, "newtonps_rpc_total")
        XCTAssertGreaterThan(calls, 0, "the worker that joined did no work")
        report(
            "a worker started mid-job", identical: identical, recovery: nil, "admitted at the next heartbeat; \(Int(calls)) RPCs from it")
    }

    func testACancelledJobKeepsItsLastCheckpointForExport() async throws {
        let cluster = try await startCluster(servers: 1, workers: 1)
        defer { cluster.stop() }
        let client = try DriverClient(driver: cluster.driver.grpc!, credentials: cluster.credentials)
        defer { client.close() }
        let job = try await client.submit(yaml: spec(maxIterations: 200))
        try await waitForIteration(2, of: job.id, client)
        _ = try await client.cancel(job.id)
        let (info, records) = try await followToEnd(client, job.id)
        XCTAssertEqual(info.state, "cancelled")
        let exported = try await client.export(job.id)
        XCTAssertEqual(exported.state, "cancelled")
        let iteration = try XCTUnwrap(exported.iteration)
        XCTAssertGreaterThanOrEqual(iteration, 2)
        XCTAssertLessThanOrEqual(iteration, records.last!.iteration)
        let model = try SavedModel.decode(Array(exported.safetensors), source: "export")
        XCTAssertEqual(model.spec.layerSizes, [32, 96, 96, 4])
    }
}
