import Foundation
import Logging
import NewtonCore
import NewtonObservability
import NewtonProto
import NewtonRoles
import NewtonTraining
import NewtonTransport
import ServiceLifecycle
import Synchronization

/// Runs submitted jobs one at a time on the registered servers and workers
/// (decentralised jobs on the registered agents), recording every iteration,
/// checkpoints and the final model in the job store, and restarting a job
/// from its last checkpoint when a server, every worker or an agent is lost.
///
/// A long-lived service: jobs run as child tasks of `run()`. A graceful
/// shutdown cancels the running job at once, starts no queued one, and
/// leaves the job `running` in the store (resumed at the next start);
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
    private let credentials: ClusterCredentials
    private let logger = Logger(label: "newtonps.driver.jobs")
    private var queue: [String] = []
    /// Wakes `run()` when a job is queued.
    private let (queued, queuedContinuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    /// The running job and the signal that cancels it.
    private var running: (id: String, cancel: AsyncStream<Void>.Continuation)?
    private var cancelRequested = false
    /// The data index of the running attempt, by its cluster job id: what
    /// workers that stream the data may read.
    private var attemptData: (clusterJobID: String, data: IndexedData)?
    /// The C each `C: auto` job's search chose, so a restarted attempt does
    /// not search again (the search is deterministic, so only time is saved).
    private var searchedRegularizations: [String: Double] = [:]

    public init(
        store: JobStore, membership: Membership, catalog: DataCatalog, events: JobEvents, metrics: TrainingMetrics,
        credentials: ClusterCredentials, clusterWait: Duration = .seconds(60)
    ) {
        self.credentials = credentials
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

    /// Runs a job to its end. A cluster failure (a server or every worker
    /// lost) does not end it: after the failed peers' heartbeats lapse, the
    /// job restarts from its last checkpoint on the servers and workers then
    /// live, up to `maxRecoveries` times in a row without a new checkpoint.
    private func execute(_ id: String) async {
        var attempt = 0
        var recoveries = 0
        var progressMark: Int?
        // The failure that made the last restart, for the job's error if it ends failed.
        var restartedAfter: (any Error)?
        while true {
            attempt += 1
            do {
                try await runAttempt(id, attempt: attempt)
                break
            } catch {
                if Task.isCancelled && !cancelRequested { return }
                let checkpoint = try? store.checkpoint(job: id)?.iteration
                if checkpoint != progressMark { (recoveries, progressMark) = (0, checkpoint) }
                if !cancelRequested, Self.isRecoverable(error), recoveries < Self.maxRecoveries {
                    recoveries += 1
                    restartedAfter = error
                    metrics.recordRecovery()
                    logger.warning(
                        "job \(id): \(error); restarting from \(checkpoint.map { "the checkpoint of iteration \($0)" } ?? "the start") (recovery \(recoveries) of \(Self.maxRecoveries))"
                    )
                    // Let the failed peers' heartbeats lapse so they are not chosen again.
                    try? await Task.sleep(for: membership.heartbeatInterval * 3 + .milliseconds(500))
                    if !cancelRequested && !Task.isCancelled { continue }
                    if !cancelRequested { return }
                }
                let cancelled = cancelRequested
                do {
                    try store.finish(
                        id: id, state: cancelled ? .cancelled : .failed, stopReason: cancelled ? StopReason.cancelled.rawValue : nil,
                        error: cancelled ? nil : "\(error)\(restartedAfter.map { " (restarted after: \($0))" } ?? "")")
                } catch let storeError {
                    logger.error("job \(id) ended (\(error)) but its state could not be stored: \(storeError)")
                }
                break
            }
        }
        // Shutting down: the job stays running, for the next driver to resume.
        if Task.isCancelled && !cancelRequested { return }
        if let row = try? store.job(id: id) { events.finish(row.wire) }
    }

    /// Restarts in a row, without a new checkpoint in between, before a
    /// job fails.
    static let maxRecoveries = 3

    /// Failures a restart from the checkpoint can get past: lost peers.
    private static func isRecoverable(_ error: any Error) -> Bool {
        if let error = error as? TrainingError { return error.code == .clusterFailure }
        if let error = error as? TransportError { return error.code == .unreachable }
        return false
    }

    /// One run of a job on the cluster live now, from its last checkpoint
    /// (or the start). Returns normally once the job is finished, or left
    /// `running` for the next driver when shutting down.
    private func runAttempt(_ id: String, attempt: Int) async throws {
        var connections = [GRPCConnection]()
        defer {
            for c in connections { c.close() }
        }
        guard let row = try store.job(id: id) else { throw DriverError(.store, "job \(id) vanished from the store") }
        try store.setState(id: id, state: .running, stopReason: nil, error: nil)
        let spec = try JobSpec.parse(yaml: row.specYAML, dataRoot: catalog.root)
        let data = try await catalog.summary(for: spec.data)
        let network = try spec.network(features: data.columns, classes: data.classNames.count)
        if spec.optimizer.decentralised != nil {
            // Each agent runs one server of its own.
            let grid = try spec.grid(for: network, servers: 1)
            try await runOnAgents(id, runID: "\(id).\(attempt)", spec: spec, grid: grid, classNames: data.classNames)
            return
        }
        let indexed = try await catalog.indexedData(for: spec.data, access: spec.dataAccess)
        let resume = try storedCheckpoint(of: id)
        let (servers, workers) = try await awaitCluster(spec)
        let grid = try spec.grid(for: network, servers: servers.count)
        connections = try servers.map { try GRPCConnection(to: $0.endpoint!, credentials: credentials) }
        let remoteServers: [any ParameterServer] = connections.map { RemoteParameterServer(connection: $0, role: "driver") }
        let endpoints = servers.map { $0.endpoint! }
        let remoteWorkers: [any Worker] = workers.map { RemoteWorker(session: $0.session, serverEndpoints: endpoints) }
        let coordinator = try ClusterCoordinator(
            grid: grid, servers: remoteServers, workers: remoteWorkers, shardRows: spec.shardRows,
            trainRows: data.trainRows, testRows: data.testRows, indexedData: indexed)
        let store = self.store
        let classNames = data.classNames
        let scaler = data.scaler
        let checkpoints =
            spec.checkpointEvery > 0
            ? CheckpointPolicy(every: spec.checkpointEvery) { checkpoint in
                try store.saveCheckpoint(
                    job: id, iteration: checkpoint.state.iteration,
                    model: SavedModel(parameters: checkpoint.weights, classNames: classNames, scaler: scaler).encoded(),
                    optimizerState: checkpoint.encodedOptimizerState())
            } : nil
        // The attempt number keeps pushes from an earlier attempt's workers
        // out of this one's sums.
        let clusterJobID = "\(id).\(attempt)"
        attemptData = indexed.map { (clusterJobID, $0) }
        defer { attemptData = nil }
        let trainingJob = spec.trainingJob(
            network: network, regularization: try await searchedRegularization(id, spec: spec, network: network))
        let observe = recordObserver(job: id)
        let summary = try await withThrowingTaskGroup(of: TrainingSummary?.self) { group in
            group.addTask {
                try await trainingJob.run(
                    on: coordinator, jobID: clusterJobID, data: spec.data, resume: resume, checkpoints: checkpoints, observe: observe)
            }
            group.addTask {
                await self.admitJoiningWorkers(
                    to: coordinator, jobID: clusterJobID, data: spec.data, serverEndpoints: endpoints, wanted: spec.workers)
                return nil
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let summary = result { return summary }
            }
            throw DriverError(.store, "job \(id) ended without a summary")
        }
        if summary.stopReason == .cancelled && !cancelRequested { return }
        try finish(
            id, summary, model: SavedModel(parameters: try await coordinator.read(.weights), classNames: classNames, scaler: scaler),
            iteration: summary.records.last?.iteration ?? resume?.state.iteration ?? 0)
    }

    /// Stores, publishes and counts each record of job `id` as it is made,
    /// with the RPC payload bytes the driver moved since the previous one.
    private func recordObserver(job id: String) -> IterationObserver {
        let (store, events, metrics, logger) = (self.store, self.events, self.metrics, self.logger)
        let movedBefore = Mutex(RPCMetrics.payloadBytesMoved)
        return { made in
            var record = made
            let moved = RPCMetrics.payloadBytesMoved
            record.bytesMoved = Double(
                movedBefore.withLock { before in
                    defer { before = moved }
                    return moved - before
                })
            do { try store.append(record, job: id) } catch {
                logger.error("job \(id): iteration \(record.iteration) could not be stored: \(error)")
            }
            metrics.record(record)
            events.publish(record, job: id)
        }
    }

    /// Ends job `id` after its run returned: succeeded (or cancelled), with
    /// `model`, the weights of `iteration`.
    private func finish(_ id: String, _ summary: TrainingSummary, model: SavedModel, iteration: Int) throws {
        try store.finish(
            id: id, state: summary.stopReason == .cancelled ? .cancelled : .succeeded, stopReason: summary.stopReason.rawValue,
            error: nil, model: (model.encoded(), iteration))
    }

    /// With `C: auto`, the C the held-out search chooses, run on an embedded
    /// cluster in this process over its own copy of the data (logged with
    /// every trial) once per job; otherwise nil (the spec's C).
    private func searchedRegularization(_ id: String, spec: JobSpec, network: NetworkSpec) async throws -> Double? {
        guard spec.searchesRegularization else { return nil }
        if let chosen = searchedRegularizations[id] { return chosen }
        let loaded = try (catalog.root?.locate(spec.data) ?? spec.data).load()
        let (chosen, trials) = try await RegularizationSearch(
            spec: spec, network: network, workers: ProcessInfo.processInfo.activeProcessorCount
        ).choose(from: loaded)
        let tried = trials.map { "C = \($0.regularization): \($0.heldOutAccuracy.map { "\($0)" } ?? "diverged")" }
        logger.info("job \(id): C: auto chose C = \(chosen) by held-out accuracy (\(tried.joined(separator: ", ")))")
        searchedRegularizations[id] = chosen
        return chosen
    }

    /// One run of a decentralised job (next, dgd) on the live agents, from
    /// the start (agents keep no checkpoints): each agent gets its share of
    /// the rows, the run's settings and w⁰, and the driver starts every
    /// round. After each round it reads the agents' weights and measures
    /// their average on a monitor cluster in this process over every row
    /// (the records and the final model); it never sends weights back.
    private func runOnAgents(_ id: String, runID: String, spec: JobSpec, grid: PartitionGrid, classNames: [String]) async throws {
        let trainingJob = spec.trainingJob(network: grid.spec)
        let peers = try await awaitAgents(trainingJob.decentralised.agents)
        // The lost attempt's records stay until this one can start.
        try store.discardRecords(job: id, after: nil)
        let loaded = try (catalog.root?.locate(spec.data) ?? spec.data).load()
        let monitor = try await EmbeddedCluster(
            grid: grid, data: loaded, descriptor: spec.data, servers: 1, workers: ProcessInfo.processInfo.activeProcessorCount,
            shardRows: spec.shardRows)
        let run = try trainingJob.decentralisedRun(totalRows: loaded.train.rows)
        let endpoints = peers.map { $0.endpoint! }
        let connections = try endpoints.map { try GRPCConnection(to: $0, credentials: credentials) }
        defer {
            for c in connections { c.close() }
        }
        let agents = connections.enumerated().map { i, connection in
            RemoteAgent(
                connection: connection, index: i, endpoints: endpoints,
                rows: EmbeddedAgents.rows(of: i, agents: peers.count, rows: loaded.train.rows), grid: grid, shardRows: spec.shardRows,
                run: run)
        }
        logger.info("job \(id): \(run.method.rawValue) on agents \(endpoints.map(\.description).joined(separator: ", "))")
        let summary = try await trainingJob.run(
            agents: agents, monitor: monitor.coordinator, jobID: runID, data: spec.data, observe: recordObserver(job: id))
        if summary.stopReason == .cancelled && !cancelRequested { return }
        try finish(
            id, summary,
            model: SavedModel(parameters: try await monitor.coordinator.read(.weights), classNames: classNames, scaler: loaded.scaler),
            iteration: summary.records.last?.iteration ?? 0)
    }

    /// Waits until `count` agents are live and returns the first `count`.
    private func awaitAgents(_ count: Int) async throws -> [Membership.Peer] {
        let deadline = ContinuousClock.now + clusterWait
        while true {
            let agents = await membership.liveAgents()
            if agents.count >= count { return Array(agents.prefix(count)) }
            if ContinuousClock.now >= deadline {
                throw DriverError(.unreachable, "job needs \(count) agent(s); after \(clusterWait) only \(agents.count) are live")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// The data index of the attempt running as `clusterJobID` (the job id
    /// workers are given), for serving its blocks; nil when no such attempt runs.
    public func indexedData(ofClusterJob clusterJobID: String) -> IndexedData? {
        attemptData.flatMap { $0.clusterJobID == clusterJobID ? $0.data : nil }
    }

    /// While a job runs, gives it the workers that register after it
    /// started (new ones, or ones that hung and came back), up to `wanted`
    /// workers with an open session (all of them for nil).
    private func admitJoiningWorkers(
        to coordinator: ClusterCoordinator, jobID: String, data: DataDescriptor, serverEndpoints: [Endpoint], wanted: Int?
    ) async {
        var seen = Set(coordinator.workers.compactMap { ($0 as? RemoteWorker)?.session.peerID })
        while !Task.isCancelled {
            try? await Task.sleep(for: membership.heartbeatInterval)
            for (peer, session) in await membership.liveWorkers() where !seen.contains(peer.id) {
                let open = coordinator.workers.filter { ($0 as? RemoteWorker)?.session.isClosed == false }.count
                if let wanted, open >= wanted { break }
                seen.insert(peer.id)
                do {
                    try await coordinator.admit(
                        RemoteWorker(session: session, serverEndpoints: serverEndpoints), jobID: jobID, data: data)
                    logger.info("job \(jobID): worker \(peer.id) joined")
                } catch {
                    logger.warning("job \(jobID): worker \(peer.id) could not join: \(error)")
                }
            }
        }
    }

    /// The job's last checkpoint, its later records forgotten (the resumed
    /// run records them again); nil, with every record forgotten, when the
    /// job has none.
    private func storedCheckpoint(of id: String) throws -> Checkpoint? {
        let stored = try store.checkpoint(job: id)
        try store.discardRecords(job: id, after: stored?.iteration)
        return try stored.map {
            let source = "job \(id)'s checkpoint of iteration \($0.iteration)"
            return try Checkpoint(
                weights: SavedModel.decode($0.model, source: source).parameters, optimizerState: $0.optimizerState, source: source)
        }
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
