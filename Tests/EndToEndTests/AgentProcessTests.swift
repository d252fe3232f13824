import Foundation
import NewtonCore
import NewtonDriver
import NewtonTraining
import NewtonTransport
import XCTest

/// Decentralised jobs on agent processes: a driver and agents on loopback,
/// the agents trading vectors only with their neighbours. Every run must
/// reproduce the embedded one (all agents in one process) as doubles.
final class AgentProcessTests: ClusterTestCase {
    /// NEXT with the Gauss-Newton surrogate on a time-varying graph of 4 agents.
    private func nextSpec(rounds: Int = 6) -> String {
        """
        name: next
        synthetic: {train_rows: 2400, test_rows: 300, features: 12, classes: 3, seed: 4}
        layers: [12, 20, 3]
        optimizer: next
        agents: 4
        graph: erdos-renyi:0.6
        time_varying: "0.5:2"
        surrogate: gauss-newton
        subsample: 0.5
        shard_rows: 200
        max_iterations: \(rounds)
        seed: 3
        """
    }

    /// DGD with ℓ1 on a ring of 4 agents.
    private let dgdSpec = """
        name: dgd
        synthetic: {train_rows: 2400, test_rows: 300, features: 12, classes: 3, seed: 4}
        layers: [12, 20, 3]
        optimizer: dgd
        agents: 4
        graph: ring
        regularizer: l1
        l1: 0.05
        shard_rows: 200
        max_iterations: 5
        seed: 3
        """

    /// Every number a record holds apart from times.
    private func numbers(_ records: [IterationRecord]) -> [[Double?]] {
        records.map {
            [
                Double($0.iteration), $0.objective, $0.gradientNorm, $0.disagreement, $0.testAccuracy, $0.zeroFraction, $0.bytesSent,
                Double($0.cgIterations), $0.lambda, $0.step,
            ]
        }
    }

    func testAgentProcessesReproduceTheEmbeddedRunAsDoublesAndReportTheirRounds() async throws {
        let cluster = try await startCluster(servers: 0, workers: 0, agents: 4)
        defer { cluster.stop() }
        let client = try DriverClient(driver: cluster.driver.grpc!, credentials: cluster.credentials)
        defer { client.close() }
        for member in cluster.agents {
            let ready = try await eventually { try await httpGet(member.http, "/readyz").status == 200 }
            XCTAssertTrue(ready, "agent at \(member.http) never became ready")
        }
        var bytesInRecords = 0.0
        for yaml in [nextSpec(), dgdSpec] {
            let (info, records) = try await runToEnd(client, yaml)
            XCTAssertEqual(info.state, "succeeded", info.error)
            let reference = try await embeddedDecentralisedRun(yaml)
            XCTAssertEqual(numbers(records), numbers(reference.records), "records differ from the embedded run")
            let exported = try await client.export(info.id)
            let model = try SavedModel.decode([UInt8](exported.safetensors), source: "job \(info.id)'s model")
            XCTAssertEqual(model.parameters.values, reference.model, "the saved model is not the embedded run's w̄")
            XCTAssertEqual(exported.iteration, records.last?.iteration)
            bytesInRecords += records.reduce(0) { $0 + ($1.bytesSent ?? 0) } * 4
            if yaml == dgdSpec { XCTAssertGreaterThan(records.last?.zeroFraction ?? 0, 0, "l1 made no zeros") }
            print("agents-table: \(info.name) | \(records.count - 1) rounds | U \(records.last!.objective) | identical to embedded")
        }
        // Each agent counts what it sent each neighbour; together, what the records say.
        var bytesSent = 0.0
        for member in cluster.agents {
            let text = try await httpGet(member.http, "/metrics").body
            XCTAssertEqual(metric(text, "newtonps_agent_rounds_total"), 11, text)
            XCTAssertTrue(text.contains("newtonps_agent_round_seconds"), text)
            XCTAssertGreaterThan(metric(text, "newtonps_rpc_total", labels: ["method=\"Exchange\"", "side=\"server\""]), 0, text)
            bytesSent += metric(text, "newtonps_agent_bytes_sent_total")
        }
        XCTAssertEqual(bytesSent, bytesInRecords)
        // The driver refreshes its live-peer gauges once a second; a fast job ends sooner.
        let counted = try await eventually(seconds: 10) {
            metric(try await httpGet(cluster.driver.http, "/metrics").body, "newtonps_live_agents") == 4
        }
        XCTAssertTrue(counted, "newtonps_live_agents did not reach 4")
        let driver = try await httpGet(cluster.driver.http, "/metrics").body
        XCTAssertTrue(driver.contains("newtonps_disagreement "), driver)
    }

    func testAnAgentKilledMidJobIsReplacedAndTheJobRunsAgainFromTheStart() async throws {
        let cluster = try await startCluster(servers: 0, workers: 0, agents: 4)
        defer { cluster.stop() }
        let client = try DriverClient(driver: cluster.driver.grpc!, credentials: cluster.credentials)
        defer { client.close() }
        let yaml = nextSpec(rounds: 30)
        let id = try await client.submit(yaml: yaml).id
        let started = try await eventually(seconds: 120) { try await client.job(id).info.iterations >= 3 }
        XCTAssertTrue(started, "the job never reached round 3")
        let clock = ContinuousClock.now
        cluster.agents[1].process.kill()
        try await cluster.addAgent()
        let (info, records) = try await followToEnd(client, id)
        XCTAssertEqual(info.state, "succeeded", info.error)
        let reference = try await embeddedDecentralisedRun(yaml)
        XCTAssertEqual(numbers(records), numbers(reference.records), "the restarted run differs from the embedded one")
        let driverLog = cluster.driver.process.output
        XCTAssertTrue(driverLog.contains("restarting from the start"), driverLog)
        print(
            "agents-table: agent kill -9 at round 3, replacement started | job ran again from the start in \(ContinuousClock.now - clock) | identical to embedded"
        )
    }
}
