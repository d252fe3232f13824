import NewtonCore

/// Loads each job's data once per process and hands the same in-memory
/// copy to every worker that asks for it.
///
/// With a data root, every file path a job names must lie inside it (see
/// `DataRoot`). Loading runs off the actor, so a slow file holds up only
/// the callers that want that data, and each caller waits at most
/// `loadTimeout`.
public actor DataCatalog {
    public nonisolated let root: DataRoot?
    public nonisolated let loadTimeout: Duration
    private var loaded: [DataDescriptor: TrainingData] = [:]
    private var loading: [DataDescriptor: Task<TrainingData, any Error>] = [:]

    /// - Parameter root: nil lets jobs read any file the process can.
    public init(root: DataRoot? = nil, loadTimeout: Duration = .seconds(600)) {
        self.root = root
        self.loadTimeout = loadTimeout
    }

    /// Makes already loaded data available under its descriptor.
    public func register(_ data: TrainingData, for descriptor: DataDescriptor) {
        loaded[descriptor] = data
    }

    /// The data described, loading it on first use.
    public func data(for descriptor: DataDescriptor) async throws -> TrainingData {
        if let data = loaded[descriptor] { return data }
        let located: DataDescriptor
        do { located = try root?.locate(descriptor) ?? descriptor } catch {
            throw RoleError(.data, "the job's data is not readable here", cause: error)
        }
        let load =
            loading[descriptor]
            ?? Task.detached {
                do { return try located.load() } catch { throw RoleError(.data, "cannot load the job's data", cause: error) }
            }
        loading[descriptor] = load
        let timeout = loadTimeout
        defer { loading[descriptor] = nil }
        let data = try await withThrowingTaskGroup(of: TrainingData.self) { group in
            group.addTask { try await load.value }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw RoleError(.data, "loading the job's data took longer than \(timeout) (DataCatalog.loadTimeout)")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
        loaded[descriptor] = data
        return data
    }
}
