import Foundation
import Logging
import NewtonCore
import NewtonObservability
import NewtonProto
import NewtonRoles
import NewtonTraining
import NewtonTransport
import ServiceLifecycle

/// Runs submitted jobs one at a time on the registered servers and workers,
/// recording every iteration and the final model in the job store.
///
/// A long-lived service: jobs run as child tasks of `run()`. A graceful
/// shutdown cancels the running job at once, starts no queued one, and
/// leaves the job `running` in the store (recovered at the next start);
/// `cancel(_:)` ends a job as `cancelled`.
public actor JobRunner: Service {
    public let store: JobStore
    public let membership: Membership
    public let catalog: DataCatalog
    public let events: JobEvents
    public let metrics: TrainingMetrics
    /// How long a job waits for the servers and workers it asks for.
    public let clusterWait: Duration
    /// Presented to the servers.
    private let token: ClusterToken?
    private let logger = Logger(label: "newtonps.driver.jobs")
    private var queue: [String] = []
    /// Wakes `run()` when a job is queued.
    private let (queued, queuedContinuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    /// The running job and the signal that cancels it.
    private var running: (id: String, cancel: AsyncStream<Void>.Continuation)?
    private var cancelRequested = false

    public init(
        store: JobStore, membership: Membership, catalog: DataCatalog, events: JobEvents, metrics: TrainingMetrics,
        token: ClusterToken?, clusterWait: Duration = .seconds(60)
    ) {
        self.token = token
        self.store = store
        self.metrics = metrics
        self.membership = membership
        self.catalog = catalog
        self.events = events
        self.clusterWait = clusterWait
    }

    /// Runs queued jobs, one at a time, until graceful shutdown.
    public func run() async {
        for await _ in queued.cancelOnGracefulShutdown() {
            while !Task.isShuttingDownGracefully, !Task.isCancelled, !queue.isEmpty {
                await runToEnd(queue.removeFirst())
            }
        }
    }

    /// Queues a stored job.
    public func enqueue(_ id: String) {
        queue.append(id)
        queuedContinuation.yield()
    }

    /// Cancels a queued job at once, or a running one at its next iteration.
    public func cancel(_ id: String) throws {
        if let index = queue.firstIndex(of: id) {
            queue.remove(at: index)
            try store.setState(id: id, state: .cancelled, stopReason: StopReason.cancelled.rawValue, error: nil)
            if let row = try store.job(id: id) { events.finish(row.wire) }
        } else if let running, running.id == id {
            cancelRequested = true
            running.cancel.yield()
        }
    }

    /// Runs one job beside watchers for its cancellation and for a graceful
    /// shutdown; whichever ends first cancels the others.
    private func runToEnd(_ id: String) async {
        let (cancellation, cancel) = AsyncStream<Void>.makeStream()
        running = (id, cancel)
        cancelRequested = false
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.execute(id) }
            group.addTask {
                for await _ in cancellation { return }
            }
            group.addTask { try? await gracefulShutdown() }
            await group.next()
            group.cancelAll()
        }
        running = nil
    }

    private func execute(_ id: String) async {
        var connections = [GRPCConnection]()
        defer {
            for c in connections { c.close() }
        }
        do {
            guard let row = try store.job(id: id) else { throw DriverError(.store, "job \(id) vanished from the store") }
            try store.setState(id: id, state: .running, stopReason: nil, error: nil)
            let spec = try JobSpec.parse(yaml: row.specYAML)
            let data = try await catalog.data(for: spec.data)
            let network = try spec.network(for: data.train)
            let grid = try spec.grid(for: network)
            let (servers, workers) = try await awaitCluster(spec)
            connections = try servers.map { try GRPCConnection(to: $0.endpoint!, token: token) }
            let remoteServers: [any ParameterServer] = connections.map { RemoteParameterServer(connection: $0, role: "driver") }
            let endpoints = servers.map { $0.endpoint! }
            let remoteWorkers: [any Worker] = workers.map { RemoteWorker(session: $0.session, serverEndpoints: endpoints) }
            let coordinator = try ClusterCoordinator(
                grid: grid, servers: remoteServers, workers: remoteWorkers, shardRows: spec.shardRows,
                trainRows: data.train.rows, testRows: data.test?.rows ?? 0)
            let store = self.store
            let events = self.events
            let metrics = self.metrics
            let logger = self.logger
            let summary = try await spec.trainingJob(network: network).run(on: coordinator, jobID: id, data: spec.data) { record in
                do { try store.append(record, job: id) } catch {
                    logger.error("job \(id): iteration \(record.iteration) could not be stored: \(error)")
                }
                metrics.record(record)
                events.publish(record, job: id)
            }
            // Shutting down: the job stays running, for the next start to recover.
            if summary.stopReason == .cancelled && !cancelRequested { return }
            let weights = try await coordinator.read(.weights)
            try store.saveModel(
                job: id, bytes: SavedModel(parameters: weights, classNames: data.train.classNames, scaler: data.scaler).encoded())
            let state: JobState = summary.stopReason == .cancelled ? .cancelled : .succeeded
            try store.setState(id: id, state: state, stopReason: summary.stopReason.rawValue, error: nil)
        } catch {
            if Task.isCancelled && !cancelRequested { return }
            let cancelled = cancelRequested
            do {
                try store.setState(
                    id: id, state: cancelled ? .cancelled : .failed,
                    stopReason: cancelled ? StopReason.cancelled.rawValue : nil,
                    error: cancelled ? nil : "\(error)")
            } catch let storeError {
                logger.error("job \(id) ended (\(error)) but its state could not be stored: \(storeError)")
            }
        }
        if let row = try? store.job(id: id) { events.finish(row.wire) }
    }

    /// Waits until the servers and workers the job asks for are live; with
    /// no count given, takes every live one (at least one of each).
    private func awaitCluster(_ spec: JobSpec) async throws -> ([Membership.Peer], [(peer: Membership.Peer, session: WorkerSession)]) {
        let deadline = ContinuousClock.now + clusterWait
        while true {
            let servers = await membership.liveServers()
            let workers = await membership.liveWorkers()
            let needServers = spec.servers ?? max(1, servers.count)
            let needWorkers = spec.workers ?? max(1, workers.count)
            if servers.count >= needServers && workers.count >= needWorkers {
                return (Array(servers.prefix(needServers)), Array(workers.prefix(needWorkers)))
            }
            if ContinuousClock.now >= deadline {
                throw DriverError(
                    .unreachable,
                    "job needs \(needServers) server(s) and \(needWorkers) worker(s); after \(clusterWait) only \(servers.count) and \(workers.count) are live"
                )
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}

extension JobRow {
    var wire: Newtonps_V1_JobSummary {
        var s = Newtonps_V1_JobSummary()
        s.id = id
        s.name = name
        s.state = state.rawValue
        s.createdAt = createdAt.formatted(.iso8601)
        s.updatedAt = updatedAt.formatted(.iso8601)
        s.iterations = Int32(iterations)
        if let objective { s.objective = objective }
        if let testAccuracy { s.testAccuracy = testAccuracy }
        s.stopReason = stopReason ?? ""
        s.error = error ?? ""
        return s
    }
}
