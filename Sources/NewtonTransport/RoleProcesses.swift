import Foundation
import GRPCCore
import Logging
import NewtonCore
import NewtonObservability
import NewtonRoles
import NewtonTraining
import ServiceLifecycle
import Synchronization

/// Where a role process listens and whom it talks to.
public struct RoleAddresses: Sendable {
    /// gRPC listen address (driver and server).
    public var listen: Endpoint?
    /// The address other processes use to reach this server (default: `listen`,
    /// with the bound port when `listen` asks for port 0).
    public var advertise: Endpoint?
    /// HTTP health and metrics address.
    public var http: Endpoint
    /// The driver (server and worker).
    public var driver: Endpoint?

    public init(listen: Endpoint?, advertise: Endpoint?, http: Endpoint, driver: Endpoint?) {
        self.listen = listen
        self.advertise = advertise
        self.http = http
        self.driver = driver
    }
}

/// Runs a role's services until SIGTERM or SIGINT, then shuts them down
/// gracefully; streams that would outlive that (worker sessions, watches)
/// are cut after 10 seconds.
public func runServices(_ services: [any Service], label: String) async throws {
    let logger = Logger(label: "newtonps.\(label)")
    var configuration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
    configuration.maximumGracefulShutdownDuration = .seconds(10)
    try await ServiceGroup(configuration: configuration).run()
}

/// Prints a line and flushes it at once, so supervisors and tests see
/// addresses as soon as they are bound.
public func announce(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// A service made from a closure (registration loops and the like).
public struct TaskService: Service {
    let body: @Sendable () async throws -> Void

    public init(_ body: @escaping @Sendable () async throws -> Void) { self.body = body }

    public func run() async throws {
        try await cancelWhenGracefulShutdown { try await body() }
    }
}

/// `newtonps server`: a parameter server process.
public enum ServerProcess {
    /// - Parameter credentials: required of every caller, and presented to the driver.
    public static func run(_ addresses: RoleAddresses, credentials: ClusterCredentials, options: ServerCore.Options = .init())
        async throws
    {
        try await runListeningRole(
            "server", addresses, credentials: credentials, service: ParameterServerService(core: ServerCore(options: options)))
    }
}

/// `newtonps worker`: a stateless worker process.
public enum WorkerProcess {
    /// - Parameters:
    ///   - credentials: presented to the driver and the servers.
    ///   - dataRoot: where jobs' data paths must lie (nil: anywhere).
    ///   - cacheBytes: the most parsed data blocks the worker holds.
    public static func run(
        _ addresses: RoleAddresses, credentials: ClusterCredentials, dataRoot: DataRoot?, cacheBytes: Int = DataCatalog.defaultCacheBytes
    ) async throws {
        guard let driver = addresses.driver else { throw TransportError(.invalidRequest, "a worker needs --driver") }
        let agent = Mutex<WorkerAgent?>(nil)
        let health = HealthServer(
            host: addresses.http.host, port: addresses.http.port,
            readiness: {
                agent.withLock { $0 }?.isConnected == true ? .ready : .notReady("no task session with the driver at \(driver)")
            },
            onServerRunning: { announce("http listening on \(addresses.http.host):\($0)") })
        let work = TaskService {
            let link = try DriverLink(
                driver: driver, credentials: credentials, role: "worker", endpoint: nil,
                httpEndpoint: try await boundHTTPEndpoint(addresses, health))
            let catalog = DataCatalog(
                root: dataRoot, cacheBytes: cacheBytes,
                fetchBlock: { job, split, block in try await link.readDataBlock(job: job, split: split, block: block) })
            let worker = WorkerAgent(link: link, catalog: catalog)
            agent.withLock { $0 = worker }
            announce("worker connecting to driver \(driver)")
            try await worker.run()
        }
        try await runServices([work, health], label: "worker")
    }
}

/// `newtonps agent`: an agent of decentralised jobs. It computes on a
/// cluster of its own (one server, `workers` workers, in process) over the
/// rows the driver gives it, and trades vectors with its neighbours.
public enum AgentProcess {
    /// - Parameters:
    ///   - credentials: required of every caller (the driver, neighbours),
    ///     and presented to the driver and to neighbours.
    ///   - dataRoot: where jobs' data paths must lie (nil: anywhere).
    public static func run(_ addresses: RoleAddresses, credentials: ClusterCredentials, dataRoot: DataRoot?, workers: Int) async throws {
        guard workers >= 1 else { throw TransportError(.invalidRequest, "an agent needs at least one worker, got \(workers)") }
        try await runListeningRole(
            "agent", addresses, credentials: credentials,
            service: AgentService(host: AgentHost(credentials: credentials, dataRoot: dataRoot, workers: workers)))
    }
}

/// Runs a role that serves `service` over gRPC and registers with the
/// driver as `role` with its advertised address (servers, agents), with
/// /readyz ready once registered, until SIGTERM or SIGINT.
private func runListeningRole(
    _ role: String, _ addresses: RoleAddresses, credentials: ClusterCredentials, service: any RegistrableRPCService
) async throws {
    guard let listen = addresses.listen, let driver = addresses.driver else {
        throw TransportError(.invalidRequest, "the \(role) needs --listen and --driver")
    }
    let grpc = GRPCServerService(
        listen: listen, services: [service], maxRequestBytes: WireSettings.maxMessageBytes, credentials: credentials)
    let registered = Mutex(false)
    let health = HealthServer(
        host: addresses.http.host, port: addresses.http.port,
        readiness: { registered.withLock { $0 } ? .ready : .notReady("not registered with the driver at \(driver)") },
        onServerRunning: { announce("http listening on \(addresses.http.host):\($0)") })
    let membership = TaskService {
        let port = try await grpc.boundPort
        let advertised = try advertisedEndpoint(addresses, listen: listen, bound: port, role: role)
        announce("\(role) listening on \(listen.host):\(port), advertised as \(advertised)")
        let link = try DriverLink(
            driver: driver, credentials: credentials, role: role, endpoint: advertised,
            httpEndpoint: try await boundHTTPEndpoint(addresses, health))
        let id = try await link.register()
        registered.withLock { $0 = true }
        announce("registered with driver \(driver) as \(id)")
        try await link.heartbeat()
    }
    try await runServices([grpc, health, membership], label: role)
}

/// The HTTP address a role tells the driver (for the dashboard): the
/// `--http` host with the port actually bound.
private func boundHTTPEndpoint(_ addresses: RoleAddresses, _ health: HealthServer) async throws -> String {
    Endpoint(host: addresses.http.host, port: try await health.boundPort).description
}

/// The address a server or agent tells the driver: `--advertise`, or the
/// listen host with the bound port; refused when it is a wildcard that
/// other hosts cannot reach.
private func advertisedEndpoint(_ addresses: RoleAddresses, listen: Endpoint, bound port: Int, role: String) throws -> Endpoint {
    let advertised = addresses.advertise ?? Endpoint(host: listen.host, port: port)
    guard !["0.0.0.0", "::"].contains(advertised.host) else {
        throw TransportError(
            .invalidRequest,
            "\(role) listens on \(listen.host) and would advertise \(advertised), which other hosts cannot reach; give --advertise HOST:PORT"
        )
    }
    return advertised
}

/// Returns when the process receives SIGTERM or SIGINT.
public func waitForTerminationSignal() async throws {
    try await runServices([SignalWaiter()], label: "cluster")
}

/// A service that only waits for the group's graceful shutdown.
private struct SignalWaiter: Service {
    func run() async throws {
        try? await gracefulShutdown()
    }
}
