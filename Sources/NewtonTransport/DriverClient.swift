import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import NewtonProto
import NewtonTraining

/// A job as the driver reports it.
public struct JobInfo: Sendable, Equatable {
    public var id: String
    public var name: String
    public var state: String
    public var createdAt: String
    public var updatedAt: String
    public var iterations: Int
    public var objective: Double?
    public var testAccuracy: Double?
    public var stopReason: String
    public var error: String

    init(_ s: Newtonps_V1_JobSummary) {
        id = s.id
        name = s.name
        state = s.state
        createdAt = s.createdAt
        updatedAt = s.updatedAt
        iterations = Int(s.iterations)
        objective = s.hasObjective ? s.objective : nil
        testAccuracy = s.hasTestAccuracy ? s.testAccuracy : nil
        stopReason = s.stopReason
        error = s.error
    }

}

/// What `watch` yields: each iteration as it is recorded, then the end.
public enum JobEvent: Sendable {
    case record(IterationRecord)
    case finished(JobInfo)
}

/// The job API of a driver, for the CLI and for tests.
public final class DriverClient: Sendable {
    public let connection: GRPCConnection
    private let timeout: Duration
    private var client: Newtonps_V1_Driver.Client<HTTP2ClientTransport.Posix> { .init(wrapping: connection.client) }

    public init(driver: Endpoint, credentials: ClusterCredentials, timeout: Duration = .seconds(30)) throws {
        self.connection = try GRPCConnection(to: driver, credentials: credentials)
        self.timeout = timeout
    }

    public func close() { connection.close() }

    private func call<Response: TensorPayload>(
        _ method: String, timeout: Duration? = nil, _ body: (CallOptions) async throws -> Response
    ) async throws -> Response {
        try await remoteCall(
            role: "cli", peer: connection.endpoint, method: method, requestBytes: 0, timeout: timeout ?? self.timeout, body)
    }

    /// How long a submission may take: the driver indexes data files it has
    /// no index of before it answers (one streaming pass; seconds per GB).
    public static let submitTimeout = Duration.seconds(600)

    /// Submits a YAML job spec; a bad spec throws with every problem listed.
    /// One over `WireSettings.maxJobSpecBytes` is refused here, before it is sent.
    public func submit(yaml: String) async throws -> JobInfo {
        try WireSettings.checkJobSpecSize(yaml)
        var request = Newtonps_V1_SubmitJobRequest()
        request.specYaml = yaml
        return JobInfo(
            try await call("SubmitJob", timeout: max(timeout, Self.submitTimeout)) { try await client.submitJob(request, options: $0) }.job)
    }

    public func jobs() async throws -> [JobInfo] {
        try await call("ListJobs") { try await client.listJobs(Newtonps_V1_ListJobsRequest(), options: $0) }.jobs.map(JobInfo.init)
    }

    /// The job, its spec and its records so far.
    public func job(_ id: String) async throws -> (info: JobInfo, specYAML: String, records: [IterationRecord]) {
        var request = Newtonps_V1_JobRequest()
        request.jobID = id
        let response = try await call("GetJob") { try await client.getJob(request, options: $0) }
        return (JobInfo(response.job), response.specYaml, try response.records.map(IterationRecord.init(wire:)))
    }

    public func cancel(_ id: String) async throws -> JobInfo {
        var request = Newtonps_V1_JobRequest()
        request.jobID = id
        return JobInfo(try await call("CancelJob") { try await client.cancelJob(request, options: $0) })
    }

    /// A job's model as safetensors bytes (the final one, or the last
    /// checkpoint's for a job that did not finish), the iteration it is
    /// from (nil when not recorded) and the job's state.
    public func export(_ id: String) async throws -> (safetensors: Data, iteration: Int?, state: String) {
        var request = Newtonps_V1_JobRequest()
        request.jobID = id
        let response = try await call("ExportModel") { try await client.exportModel(request, options: $0) }
        return (response.safetensors, response.iteration >= 0 ? Int(response.iteration) : nil, response.state)
    }

    /// Calls `handle` for every recorded and future iteration, then for the
    /// job's end. The stream has no deadline: it lasts as long as the job.
    public func watch(_ id: String, _ handle: @escaping @Sendable (JobEvent) throws -> Void) async throws {
        var request = Newtonps_V1_JobRequest()
        request.jobID = id
        var options = CallOptions.defaults
        options.maxResponseMessageBytes = WireSettings.maxMessageBytes
        do {
            try await client.watchJob(request, options: options) { response in
                for try await event in response.messages {
                    switch event.kind {
                    case .record(let r): try handle(.record(try IterationRecord(wire: r)))
                    case .finished(let s): try handle(.finished(JobInfo(s)))
                    case nil: continue
                    }
                }
            }
        } catch let error as RPCError {
            throw TransportError(remoteFailure: error, peer: connection.endpoint, method: "WatchJob", timeout: .zero)
        }
    }
}

extension Newtonps_V1_SubmitJobResponse: TensorPayload { public var tensorBytes: Int { 0 } }
extension Newtonps_V1_ListJobsResponse: TensorPayload { public var tensorBytes: Int { 0 } }
extension Newtonps_V1_GetJobResponse: TensorPayload { public var tensorBytes: Int { 0 } }
extension Newtonps_V1_JobSummary: TensorPayload { public var tensorBytes: Int { 0 } }
