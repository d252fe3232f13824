import NewtonCore
import NewtonObservability
import NewtonRoles
import NewtonTransport
import ServiceLifecycle

/// `newtonps driver`: membership, the job store, the job runner, and the
/// dashboard on the HTTP port.
public enum DriverProcess {
    /// - Parameter credentials: required of every caller (job API and
    ///   peers), and presented to the servers.
    /// - Parameter dataRoot: where jobs' data paths must lie (nil: anywhere).
    public static func run(_ addresses: RoleAddresses, storePath: String, credentials: ClusterCredentials, dataRoot: DataRoot?)
        async throws
    {
        guard let listen = addresses.listen else { throw DriverError(.invalidRequest, "a driver needs --listen") }
        let store = try JobStore(path: storePath)
        let membership = Membership()
        // The driver reads only indexes; those it cannot store beside the data go beside the job store.
        let storeDirectory = storePath.lastIndex(of: "/").map { String(storePath[..<$0]) } ?? "."
        let catalog = DataCatalog(root: dataRoot, indexDirectory: storeDirectory.isEmpty ? "/" : storeDirectory)
        let events = JobEvents()
        let metrics = TrainingMetrics()
        let runner = JobRunner(
            store: store, membership: membership, catalog: catalog, events: events, metrics: metrics, credentials: credentials)
        for (id, wasRunning) in try store.requeueAfterRestart() {
            if wasRunning { announce("job \(id) was running when the driver stopped; it resumes from its last checkpoint") }
            await runner.enqueue(id)
        }
        let service = DriverService(membership: membership, runner: runner, store: store, events: events, catalog: catalog)
        let grpc = GRPCServerService(
            listen: listen, services: [service], maxRequestBytes: WireSettings.maxDriverRequestBytes, credentials: credentials)
        let health = HealthServer(
            host: addresses.http.host, port: addresses.http.port,
            readiness: {
                let (servers, workers, agents) = await membership.counts()
                metrics.setLiveServers(servers)
                metrics.setLiveWorkers(workers)
                metrics.setLiveAgents(agents)
                // A driver with agents only runs decentralised jobs.
                if (servers == 0 || workers == 0) && agents == 0 {
                    return .notReady(
                        "job store open; cluster incomplete: \(servers) server(s), \(workers) worker(s), \(agents) agent(s) live")
                }
                return .ready
            },
            routes: Dashboard(store: store, membership: membership, token: credentials.token).routes,
            onServerRunning: { announce("http listening on \(addresses.http.host):\($0)") })
        let started = TaskService {
            announce("driver listening on \(listen.host):\(try await grpc.boundPort), store \(storePath)")
            // Keep the live-peer gauges current between scrapes of /readyz.
            while !Task.isCancelled {
                let (servers, workers, agents) = await membership.counts()
                metrics.setLiveServers(servers)
                metrics.setLiveWorkers(workers)
                metrics.setLiveAgents(agents)
                if let jobs = try? store.list() {
                    metrics.setJobCounts(Dictionary(jobs.map { ($0.state.rawValue, 1) }, uniquingKeysWith: +))
                }
                await membership.closeSilentSessions()
                try await Task.sleep(for: .seconds(1))
            }
        }
        try await runServices([grpc, health, runner, started], label: "driver")
    }
}
