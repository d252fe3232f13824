import NewtonCore

/// Loads each job's data once per process and hands the same in-memory
/// copy to every worker that asks for it.
public actor DataCatalog {
    private var loaded: [DataDescriptor: TrainingData] = [:]

    public init() {}

    /// Makes already loaded data available under its descriptor.
    public func register(_ data: TrainingData, for descriptor: DataDescriptor) {
        loaded[descriptor] = data
    }

    /// The data described, loading it on first use.
    public func data(for descriptor: DataDescriptor) throws -> TrainingData {
        if let data = loaded[descriptor] { return data }
        do {
            let data = try descriptor.load()
            loaded[descriptor] = data
            return data
        } catch {
            throw RoleError(.data, "cannot load the job's data", cause: error)
        }
    }
}
