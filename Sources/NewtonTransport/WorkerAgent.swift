import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import NewtonCore
import NewtonProto
import NewtonRoles
import NewtonTraining
import Synchronization

/// The worker process's loop: registers with the driver, opens a task
/// session, and answers each request with a `WorkerCore` that pulls from and
/// pushes to the job's servers over gRPC. Reconnects when the session breaks.
public final class WorkerAgent: Sendable {
    public let link: DriverLink
    private let catalog: DataCatalog
    private let job = Mutex<(core: WorkerCore, connections: [GRPCConnection])?>(nil)
    private let sessionOpen = Mutex(false)
    private let logger = Logger(label: "newtonps.worker")

    /// - Parameter catalog: where the worker reads jobs' data.
    public init(link: DriverLink, catalog: DataCatalog) {
        self.link = link
        self.catalog = catalog
    }

    /// True while a task session with the driver is open.
    public var isConnected: Bool { sessionOpen.withLock { $0 } }

    /// Serves the driver until cancelled: register, open a session, and
    /// heartbeat while it lasts; when either ends, start over. A driver that
    /// refuses this worker's version ends the loop with that error.
    public func run() async throws {
        defer { releaseJob() }
        while !Task.isCancelled {
            do {
                let peerID = try await link.register()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await self.link.heartbeat() }
                    group.addTask { try await self.session(peerID) }
                    try await group.next()
                    group.cancelAll()
                }
            } catch let error as TransportError where error.code == .incompatible {
                throw error
            } catch  where !Task.isCancelled {
                logger.warning("session with the driver at \(link.driver) ended: \(error); reconnecting")
            }
            sessionOpen.withLock { $0 = false }
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    private func session(_ peerID: String) async throws {
        let (outgoing, out) = AsyncStream.makeStream(of: Newtonps_V1_WorkerMessage.self)
        var hello = Newtonps_V1_WorkerMessage()
        hello.hello.peerID = peerID
        out.yield(hello)
        var options = CallOptions.defaults
        options.maxRequestMessageBytes = WireSettings.maxMessageBytes
        options.maxResponseMessageBytes = WireSettings.maxMessageBytes
        try await link.client.workerSession(
            options: options,
            requestProducer: { writer in
                for await message in outgoing { try await writer.write(message) }
            },
            onResponse: { response in
                self.sessionOpen.withLock { $0 = true }
                defer { out.finish() }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for try await message in response.messages {
                        group.addTask {
                            var reply = Newtonps_V1_WorkerMessage()
                            reply.result = await self.handle(message)
                            out.yield(reply)
                        }
                    }
                }
            })
    }

    /// Runs one request; failures become the result's error text.
    private func handle(_ message: Newtonps_V1_DriverMessage) async -> Newtonps_V1_TaskResult {
        var result = Newtonps_V1_TaskResult()
        result.requestID = message.requestID
        do {
            switch message.kind {
            case .prepare(let wire):
                try await prepare(wire)
            case .task(let wire):
                let task = try WorkerTask(wire: wire)
                guard let core = job.withLock({ $0?.core }) else {
                    throw TransportError(.invalidRequest, "task before any job was prepared")
                }
                result.shards = try await core.run(task).map(\.wire)
            case nil:
                throw TransportError(.invalidRequest, "a driver message with no request")
            }
        } catch {
            result.error = "\(error)"
        }
        return result
    }

    private func prepare(_ wire: Newtonps_V1_WorkerJob) async throws {
        let grid = try PartitionGrid(wire: wire.grid)
        let endpoints = try wire.servers.map(Endpoint.init(parsing:))
        let ownership = wire.ownership.map(Int.init)
        guard ownership.count == grid.blocks.count, ownership.allSatisfy({ $0 >= 0 && $0 < endpoints.count }) else {
            throw TransportError(
                .invalidRequest,
                "job \(wire.jobID): ownership \(ownership) does not map \(grid.blocks.count) blocks to \(endpoints.count) servers")
        }
        let indexed =
            wire.indexedData.isEmpty
            ? nil : try IndexedData(encoded: Array(wire.indexedData), source: "job \(wire.jobID)'s data index from the driver")
        let job = WorkerJob(
            jobID: wire.jobID, grid: grid, ownership: ownership, data: try DataDescriptor(wire: wire.data), indexed: indexed)
        releaseJob()
        let connections = try endpoints.map { try GRPCConnection(to: $0, credentials: link.credentials) }
        let servers: [any ParameterServer] = connections.map { RemoteParameterServer(connection: $0, role: "worker") }
        let core = WorkerCore(catalog: catalog, servers: { _ in servers })
        self.job.withLock { $0 = (core, connections) }
        try await core.prepare(job)
    }

    private func releaseJob() {
        let previous = job.withLock { j in
            defer { j = nil }
            return j
        }
        for c in previous?.connections ?? [] { c.close() }
    }
}
