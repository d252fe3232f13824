import NewtonCore
import NewtonTraining

/// A whole cluster in one process: servers and workers are `ServerCore` and
/// `WorkerCore` instances called directly, with no serialisation. It runs
/// the same optimiser code as the networked cluster.
public struct EmbeddedCluster: Sendable {
    public let coordinator: ClusterCoordinator
    public let servers: [ServerCore]

    /// Builds the cluster for already loaded data (registered under
    /// `descriptor` so workers find it without reading files again).
    public init(
        grid: PartitionGrid, data: TrainingData, descriptor: DataDescriptor,
        servers serverCount: Int, workers workerCount: Int, shardRows: Int,
        serverOptions: ServerCore.Options = .init()
    ) async throws {
        guard serverCount >= 1, workerCount >= 1 else {
            throw RoleError(
                .invalidRequest, "an embedded cluster needs at least one server and one worker, got \(serverCount) and \(workerCount)")
        }
        let catalog = DataCatalog()
        await catalog.register(data, for: descriptor)
        let servers = (0..<serverCount).map { _ in ServerCore(options: serverOptions) }
        let workers = (0..<workerCount).map { _ in
            WorkerCore(catalog: catalog, servers: { _ in servers })
        }
        self.servers = servers
        self.coordinator = try ClusterCoordinator(
            grid: grid, servers: servers, workers: workers, shardRows: shardRows,
            trainRows: data.train.rows, testRows: data.test?.rows ?? 0)
    }
}

/// A decentralised run in one process: one embedded cluster per agent, each
/// holding an equal contiguous share of the training rows (agent i gets rows
/// ⌊i·l/I⌋ ..< ⌊(i+1)·l/I⌋), and a monitor cluster over every row and the
/// test set, which measures the average model for the records.
public struct EmbeddedAgents: Sendable {
    public let agents: [EmbeddedCluster]
    public let monitor: EmbeddedCluster

    public init(
        grid: PartitionGrid, data: TrainingData, descriptor: DataDescriptor, agents agentCount: Int,
        serversPerAgent: Int, workersPerAgent: Int, monitorWorkers: Int, shardRows: Int
    ) async throws {
        let rows = data.train.rows
        guard agentCount >= 1, agentCount <= rows else {
            throw RoleError(.invalidRequest, "\(rows) training rows cannot be shared by \(agentCount) agents (each needs at least one)")
        }
        var agents = [EmbeddedCluster]()
        for i in 0..<agentCount {
            let share = TrainingData(
                train: data.train.subset(Self.rows(of: i, agents: agentCount, rows: rows)), test: nil, scaler: data.scaler)
            agents.append(
                try await EmbeddedCluster(
                    grid: grid, data: share, descriptor: descriptor, servers: serversPerAgent, workers: workersPerAgent,
                    shardRows: shardRows))
        }
        self.agents = agents
        self.monitor = try await EmbeddedCluster(
            grid: grid, data: data, descriptor: descriptor, servers: 1, workers: monitorWorkers, shardRows: shardRows)
    }

    /// Agent i's share of `rows` training rows: ⌊i·l/I⌋ ..< ⌊(i+1)·l/I⌋.
    public static func rows(of agent: Int, agents: Int, rows: Int) -> Range<Int> {
        rows * agent / agents..<rows * (agent + 1) / agents
    }
}
