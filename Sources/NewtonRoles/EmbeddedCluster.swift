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
