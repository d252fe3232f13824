import Foundation
import GRPCCore
import NewtonCore
import NewtonProto
import NewtonRoles
import NewtonTraining
import NewtonTransport

/// The driver's gRPC service: membership, the worker task streams and the
/// job API (submit, list, get, watch, cancel, export).
public struct DriverService: Newtonps_V1_Driver.SimpleServiceProtocol {
    public let membership: Membership
    public let runner: JobRunner
    public let store: JobStore
    public let events: JobEvents
    public let catalog: DataCatalog

    public init(membership: Membership, runner: JobRunner, store: JobStore, events: JobEvents, catalog: DataCatalog) {
        self.membership = membership
        self.runner = runner
        self.store = store
        self.events = events
        self.catalog = catalog
    }

    // MARK: Membership

    public func register(request: Newtonps_V1_RegisterRequest, context: ServerContext) async throws -> Newtonps_V1_RegisterResponse {
        var response = Newtonps_V1_RegisterResponse()
        response.peerID = try await membership.register(request.peer)
        response.heartbeatIntervalMs = Int32(
            membership.heartbeatInterval.components.seconds * 1000
                + membership.heartbeatInterval.components.attoseconds / 1_000_000_000_000_000)
        response.driverVersion = NewtonPSVersion.version
        return response
    }

    public func heartbeat(request: Newtonps_V1_HeartbeatRequest, context: ServerContext) async throws -> Newtonps_V1_HeartbeatResponse {
        var response = Newtonps_V1_HeartbeatResponse()
        response.known = await membership.heartbeat(request.peerID)
        return response
    }

    public func workerSession(
        request: RPCAsyncSequence<Newtonps_V1_WorkerMessage, any Error>,
        response: RPCWriter<Newtonps_V1_DriverMessage>, context: ServerContext
    ) async throws {
        var messages = request.makeAsyncIterator()
        guard let first = try await messages.next(), case .hello(let hello) = first.kind else {
            throw DriverError(.invalidRequest, "a worker session must start with a hello naming the registered worker")
        }
        let session = WorkerSession(peerID: hello.peerID)
        try await membership.attach(session)
        // Handed to the reading task; not touched here again.
        nonisolated(unsafe) var answers = messages
        do {
            // Whichever side ends first ends the call: the worker closing its
            // stream, or the driver closing the session (e.g. the worker
            // stopped heartbeating), which the worker sees as the call failing.
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await message in session.messages { try await response.write(message) }
                    throw session.closeReason ?? DriverError(.unreachable, "worker \(hello.peerID)'s session was closed")
                }
                group.addTask {
                    while let message = try await answers.next() {
                        if case .result(let result) = message.kind { session.receive(result) }
                    }
                    session.close(DriverError(.unreachable, "worker \(hello.peerID) ended its session"))
                }
                try await group.next()
                group.cancelAll()
            }
        } catch {
            session.close(DriverError(.unreachable, "worker \(hello.peerID)'s session broke", cause: error))
            await membership.detach(session)
            throw error
        }
        await membership.detach(session)
    }

    /// Streams one block of the running attempt's data to a worker that
    /// cannot read the files, in pieces of at most `dataChunkBytes`.
    public func readDataBlock(
        request: Newtonps_V1_DataBlockRequest, response: RPCWriter<Newtonps_V1_DataChunk>, context: ServerContext
    ) async throws {
        guard let split = DataSplit(rawValue: request.split) else {
            throw DriverError(.invalidRequest, "ReadDataBlock: unknown split '\(request.split)' (train or test)")
        }
        guard let data = await runner.indexedData(ofClusterJob: request.jobID) else {
            throw DriverError(.state, "ReadDataBlock: no running job attempt '\(request.jobID)' has data in files")
        }
        guard let index = data.index(of: split) else {
            throw DriverError(.invalidRequest, "ReadDataBlock: job attempt '\(request.jobID)' has no \(split.rawValue) set")
        }
        let content = try await catalog.content(ofBlock: Int(request.block), in: index)
        for (file, bytes) in content.enumerated() {
            var start = 0
            repeat {
                let end = min(start + Self.dataChunkBytes, bytes.count)
                var chunk = Newtonps_V1_DataChunk()
                chunk.file = Int32(file)
                chunk.content = Data(bytes[start..<end])
                try await response.write(chunk)
                start = end
            } while start < bytes.count
        }
    }

    /// The largest piece of a data block in one message.
    public static let dataChunkBytes = 1 << 20

    // MARK: Jobs

    public func submitJob(request: Newtonps_V1_SubmitJobRequest, context: ServerContext) async throws -> Newtonps_V1_SubmitJobResponse {
        try WireSettings.checkJobSpecSize(request.specYaml)
        let spec = try JobSpec.parse(yaml: request.specYaml, dataRoot: catalog.root)
        // Checks that need the data: the layers against its shape, the rows against the agents.
        let data = try await catalog.summary(for: spec.data)
        let agents = spec.optimizer.decentralised == nil ? nil : spec.decentralised.agents
        if let agents, data.trainRows < agents {
            throw DriverError(
                .invalidJob, "invalid job spec:\nagents: \(data.trainRows) training rows cannot be shared by \(agents) agents")
        }
        let network = try spec.network(features: data.columns, classes: data.classNames.count)
        _ = try spec.grid(for: network, servers: 1)
        // A caller that gave up while the data loaded must not get a job.
        try Task.checkCancellation()
        let row = try store.create(specYAML: request.specYaml, name: spec.name ?? "")
        await runner.enqueue(row.id)
        var response = Newtonps_V1_SubmitJobResponse()
        response.job = row.wire
        return response
    }

    public func listJobs(request: Newtonps_V1_ListJobsRequest, context: ServerContext) async throws -> Newtonps_V1_ListJobsResponse {
        var response = Newtonps_V1_ListJobsResponse()
        response.jobs = try store.list().map(\.wire)
        return response
    }

    public func getJob(request: Newtonps_V1_JobRequest, context: ServerContext) async throws -> Newtonps_V1_GetJobResponse {
        let row = try job(request.jobID)
        var response = Newtonps_V1_GetJobResponse()
        response.job = row.wire
        response.specYaml = row.specYAML
        response.records = try store.records(job: row.id).map(\.wire)
        return response
    }

    public func watchJob(request: Newtonps_V1_JobRequest, response: RPCWriter<Newtonps_V1_WatchEvent>, context: ServerContext) async throws
    {
        // Subscribe before reading the store so no record falls in between.
        let live = events.subscribe(request.jobID)
        let row = try job(request.jobID)
        var sent = -1
        for record in try store.records(job: row.id) {
            var event = Newtonps_V1_WatchEvent()
            event.record = record.wire
            try await response.write(event)
            sent = record.iteration
        }
        if row.state.isFinal {
            var event = Newtonps_V1_WatchEvent()
            event.finished = row.wire
            try await response.write(event)
            return
        }
        for await event in live {
            if case .record(let record) = event.kind, Int(record.iteration) <= sent { continue }
            try await response.write(event)
        }
    }

    public func cancelJob(request: Newtonps_V1_JobRequest, context: ServerContext) async throws -> Newtonps_V1_JobSummary {
        let row = try job(request.jobID)
        if !row.state.isFinal {
            try await runner.cancel(row.id)
        }
        return try job(request.jobID).wire
    }

    public func exportModel(request: Newtonps_V1_JobRequest, context: ServerContext) async throws -> Newtonps_V1_ExportModelResponse {
        let row = try job(request.jobID)
        guard let model = try store.model(job: row.id) else {
            throw DriverError(.state, "job \(row.id) is \(row.state.rawValue) and has no model or checkpoint yet")
        }
        var response = Newtonps_V1_ExportModelResponse()
        response.safetensors = Data(model.bytes)
        response.iteration = Int32(clamping: model.iteration ?? -1)
        response.state = row.state.rawValue
        return response
    }

    private func job(_ id: String) throws -> JobRow {
        guard let row = try store.job(id: id) else {
            throw DriverError(.notFound, "no job '\(id)'")
        }
        return row
    }
}

extension JobState {
    /// True once the job will not change any more.
    var isFinal: Bool { self == .succeeded || self == .failed || self == .cancelled }
}
