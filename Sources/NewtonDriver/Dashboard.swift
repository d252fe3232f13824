import Foundation
import NewtonCore
import NewtonObservability
import NewtonTraining
import NewtonTransport
import Synchronization

/// The driver's web dashboard on its HTTP port: the page at `/` and the
/// JSON it polls.
///
/// - `GET /api/jobs`: every job with its state and latest numbers;
/// - `GET /api/records?job=ID&after=N`: the job's records after iteration
///   N (all of them without `after`), as `--log-json` writes them;
/// - `GET /api/cluster`: every registered server, worker and agent, live or
///   silent, with the seconds since it was last heard from.
///
/// With a cluster token the JSON needs `Authorization: Bearer TOKEN` (the
/// page reads the token from its URL's `#token=` fragment, which browsers
/// never send, and keeps it for the tab); the page itself holds no data.
final class Dashboard: Sendable {
    let store: JobStore
    let membership: Membership
    let token: ClusterToken?
    /// Optimizer and iteration budget of each job, read once from its spec.
    private let budgets = Mutex([String: JobBudget]())

    init(store: JobStore, membership: Membership, token: ClusterToken?) {
        self.store = store
        self.membership = membership
        self.token = token
    }

    var routes: [HTTPRoute] {
        [
            HTTPRoute("") { _ in HTTPRoute.Reply(contentType: "text/html; charset=utf-8", body: Array(DashboardPage.html.utf8)) },
            HTTPRoute("api/jobs") { request in await self.authorized(request) { try self.jobs() } },
            HTTPRoute("api/records") { request in await self.authorized(request) { try self.records(request.query) } },
            HTTPRoute("api/cluster") { request in await self.authorized(request) { await self.cluster() } },
        ]
    }

    /// Answers with `body()` as JSON if the request carries the token; a
    /// caller's mistake is a 400 or 404 naming it, a store failure a 500.
    private func authorized(_ request: HTTPRoute.Request, _ body: () async throws -> some Encodable) async -> HTTPRoute.Reply {
        if let token, !token.accepts(request.authorization ?? "") {
            return .text("the dashboard's API needs the cluster token: open the page as http://HOST:PORT/#token=TOKEN\n", status: 401)
        }
        do {
            return HTTPRoute.Reply(contentType: "application/json", body: Array(try Self.encoder.encode(try await body())))
        } catch let error as DriverError {
            let status =
                switch error.code.blame {
                case .caller: 400
                case .notFound: 404
                default: 500
                }
            return .text(error.description + "\n", status: status)
        } catch {
            return .text("\(error)\n", status: 500)
        }
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return encoder
    }()

    private func jobs() throws -> JobList {
        JobList(jobs: try store.list().map(view))
    }

    private func records(_ query: [String: String]) throws -> JobRecords {
        guard let id = query["job"] else { throw DriverError(.invalidRequest, "/api/records needs ?job=ID") }
        let after: Int?
        switch query["after"] {
        case nil: after = nil
        case let text?:
            guard let number = Int(text) else { throw DriverError(.invalidRequest, "after=\(text) is not an iteration number") }
            after = number
        }
        guard let job = try store.job(id: id) else { throw DriverError(.notFound, "no job \(id)") }
        let records = try store.records(job: id)
        return JobRecords(job: view(job), records: after.map { after in records.filter { $0.iteration > after } } ?? records)
    }

    private func cluster() async -> ClusterView {
        ClusterView(
            members: await membership.roster().map { member in
                let (seconds, attoseconds) = member.silentFor.components
                return ClusterView.Member(
                    id: member.peer.id, role: member.peer.role, endpoint: member.peer.endpoint?.description,
                    http: member.peer.httpEndpoint, live: member.live,
                    secondsSinceHeartbeat: Double(seconds) + Double(attoseconds) * 1e-18)
            })
    }

    private func view(_ job: JobRow) -> JobView {
        let budget = budget(job)
        return JobView(
            id: job.id, name: job.name, state: job.state.rawValue, optimizer: budget?.optimizer,
            maxIterations: budget?.maxIterations, iterations: job.iterations, objective: job.objective,
            testAccuracy: job.testAccuracy, createdAt: job.createdAt.timeIntervalSince1970, stopReason: job.stopReason,
            error: job.error)
    }

    private func budget(_ job: JobRow) -> JobBudget? {
        if let known = budgets.withLock({ $0[job.id] }) { return known }
        guard let spec = try? JobSpec.parse(yaml: job.specYAML, checkData: false) else { return nil }
        let budget = JobBudget(optimizer: spec.optimizer.rawValue, maxIterations: spec.budget.maxIterations)
        budgets.withLock { $0[job.id] = budget }
        return budget
    }
}

private struct JobBudget: Sendable {
    var optimizer: String
    var maxIterations: Int
}

private struct JobList: Encodable {
    var jobs: [JobView]
}

private struct JobRecords: Encodable {
    var job: JobView
    var records: [IterationRecord]
}

private struct JobView: Encodable {
    var id, name, state: String
    var optimizer: String?
    var maxIterations: Int?
    var iterations: Int
    var objective, testAccuracy: Double?
    /// Seconds since 1970.
    var createdAt: Double
    var stopReason, error: String?

    enum CodingKeys: String, CodingKey {
        case id, name, state, optimizer, iterations, objective, error
        case maxIterations = "max_iterations"
        case testAccuracy = "test_accuracy"
        case createdAt = "created_at"
        case stopReason = "stop_reason"
    }
}

private struct ClusterView: Encodable {
    struct Member: Encodable {
        var id, role: String
        var endpoint: String?
        var http: String
        var live: Bool
        var secondsSinceHeartbeat: Double

        enum CodingKeys: String, CodingKey {
            case id, role, endpoint, http, live
            case secondsSinceHeartbeat = "seconds_since_heartbeat"
        }
    }
    var members: [Member]
}
