import Foundation
import NewtonObservability
import NewtonProto
import NewtonTraining
import NewtonTransport
import XCTest

@testable import NewtonDriver

final class DashboardTests: XCTestCase {
    private var directory = ""

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("dashboard-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try FileManager.default.removeItem(atPath: directory)
    }

    private func record(_ iteration: Int) -> IterationRecord {
        IterationRecord(
            iteration: iteration, elapsedSeconds: Double(iteration), objective: 1 / Double(iteration + 3), gradientNorm: 0.1,
            cgIterations: iteration * 2, lambda: 0.5, step: 1, lineSearchSteps: 1, testAccuracy: iteration == 1 ? 0.75 : nil,
            outcome: iteration == 0 ? .start : .accepted, phaseSeconds: [:], bytesMoved: Double(1000 * iteration))
    }

    private func get(_ dashboard: Dashboard, _ path: String, query: [String: String] = [:], authorization: String? = nil) async
        -> HTTPRoute.Reply
    {
        let route = dashboard.routes.first { $0.path == path }!
        return await route.handle(HTTPRoute.Request(query: query, authorization: authorization))
    }

    private func json(_ reply: HTTPRoute.Reply) throws -> [String: Any] {
        XCTAssertEqual(reply.contentType, "application/json", String(decoding: reply.body, as: UTF8.self))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any])
    }

    func testJobsRecordsAndClusterAsJSON() async throws {
        let store = try JobStore(path: "\(directory)/jobs.sqlite")
        let job = try store.create(
            specYAML: "synthetic: {train_rows: 100, features: 4, classes: 2}\noptimizer: adam\nmax_iterations: 7\n", name: "small")
        for iteration in 0...2 { try store.append(record(iteration), job: job.id) }
        let membership = Membership()
        var peer = Newtonps_V1_PeerInfo()
        (peer.role, peer.endpoint, peer.httpEndpoint) = ("server", "127.0.0.1:7071", "127.0.0.1:9091")
        (peer.version, peer.protocol) = (NewtonPSVersion.version, NewtonPSVersion.wireProtocol)
        let serverID = try await membership.register(peer)
        let dashboard = Dashboard(store: store, membership: membership, token: nil)

        let page = await get(dashboard, "")
        XCTAssertTrue(String(decoding: page.body, as: UTF8.self).contains("<title>newtonps</title>"))

        let jobsReply = await get(dashboard, "api/jobs")
        let jobs = try XCTUnwrap(try json(jobsReply)["jobs"] as? [[String: Any]])
        XCTAssertEqual(jobs.count, 1)
        XCTAssertEqual(jobs[0]["id"] as? String, job.id)
        XCTAssertEqual(jobs[0]["state"] as? String, "queued")
        XCTAssertEqual(jobs[0]["optimizer"] as? String, "adam")
        XCTAssertEqual(jobs[0]["max_iterations"] as? Int, 7)
        XCTAssertEqual(jobs[0]["iterations"] as? Int, 2)

        // The records after iteration 0, as the store holds them.
        let answer = await get(dashboard, "api/records", query: ["job": job.id, "after": "0"])
        struct Records: Decodable { var records: [IterationRecord] }
        XCTAssertEqual(try JSONDecoder().decode(Records.self, from: Data(answer.body)).records, [record(1), record(2)])

        let clusterReply = await get(dashboard, "api/cluster")
        let members = try XCTUnwrap(try json(clusterReply)["members"] as? [[String: Any]])
        XCTAssertEqual(members.count, 1)
        XCTAssertEqual(members[0]["id"] as? String, serverID)
        XCTAssertEqual(members[0]["http"] as? String, "127.0.0.1:9091")
        XCTAssertEqual(members[0]["live"] as? Bool, true)

        let unknown = await get(dashboard, "api/records", query: ["job": "job-9999"])
        XCTAssertEqual(unknown.status, 404)
        XCTAssertTrue(String(decoding: unknown.body, as: UTF8.self).contains("job-9999"))
        let badAfter = await get(dashboard, "api/records", query: ["job": job.id, "after": "soon"])
        XCTAssertEqual(badAfter.status, 400)
        XCTAssertTrue(String(decoding: badAfter.body, as: UTF8.self).contains("after=soon"))
        let noJob = await get(dashboard, "api/records")
        XCTAssertEqual(noJob.status, 400)
    }

    func testTheAPINeedsTheClusterTokenButThePageDoesNot() async throws {
        let store = try JobStore(path: "\(directory)/jobs.sqlite")
        let token = try ClusterToken.generate(into: "\(directory)/token")
        let secret = try String(contentsOfFile: "\(directory)/token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let dashboard = Dashboard(store: store, membership: Membership(), token: token)

        let page = await get(dashboard, "")
        XCTAssertEqual(page.status, 200)
        for path in ["api/jobs", "api/cluster", "api/records"] {
            for authorization in [nil, "Bearer not-the-token-at-all", secret] {
                let reply = await get(dashboard, path, authorization: authorization)
                XCTAssertEqual(reply.status, 401, "\(path) with \(authorization ?? "no header")")
                XCTAssertTrue(String(decoding: reply.body, as: UTF8.self).contains("#token="))
            }
        }
        let authorized = await get(dashboard, "api/jobs", authorization: "Bearer \(secret)")
        XCTAssertEqual(authorized.status, 200)
    }
}
