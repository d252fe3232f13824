import ArgumentParser
import Foundation
import NewtonCore
import NewtonDriver
import NewtonObservability
import NewtonRoles
import NewtonTraining
import NewtonTransport
import Synchronization

/// Reads a default from the environment, so containers can be configured by
/// flags or by `NEWTONPS_*` variables.
func environment(_ name: String, _ fallback: String) -> String {
    ProcessInfo.processInfo.environment[name] ?? fallback
}

/// A `host:port` option, checked when the command runs so that a bad
/// environment variable is an error message, not a crash.
func parseEndpoint(_ text: String, option: String) throws -> Endpoint {
    do { return try Endpoint(parsing: text) } catch {
        throw ValidationError("--\(option) (or its NEWTONPS_ variable): \(error)")
    }
}

/// `--token-file` and `--tls-*`: the cluster's shared secret and this
/// process's certificate, for every role and client.
struct SecurityOptions: ParsableArguments {
    @Option(
        help:
            "File holding the cluster token: required of every caller, and presented to every peer (env NEWTONPS_TOKEN_FILE; `newtonps cluster` writes one next to its store)."
    )
    var tokenFile = environment("NEWTONPS_TOKEN_FILE", "")
    @Option(help: "This process's TLS certificate (PEM; env NEWTONPS_TLS_CERT). With --tls-key and --tls-ca: mutual TLS.")
    var tlsCert = environment("NEWTONPS_TLS_CERT", "")
    @Option(help: "The private key of --tls-cert (PEM; env NEWTONPS_TLS_KEY).")
    var tlsKey = environment("NEWTONPS_TLS_KEY", "")
    @Option(help: "The cluster's CA certificate, which every peer's certificate must chain to (PEM; env NEWTONPS_TLS_CA).")
    var tlsCa = environment("NEWTONPS_TLS_CA", "")

    /// The token (nil without a file) and the TLS identity (nil without
    /// any `--tls-*`; all three or none).
    func load() throws -> ClusterCredentials {
        var token: ClusterToken?
        if !tokenFile.isEmpty {
            do { token = try ClusterToken(file: tokenFile) } catch { throw ValidationErrorText("--token-file: \(error)") }
        }
        let files = [tlsCert, tlsKey, tlsCa]
        guard files.contains(where: { !$0.isEmpty }) else { return ClusterCredentials(token: token, tls: nil) }
        guard files.allSatisfy({ !$0.isEmpty }) else {
            throw ValidationErrorText("TLS needs all three of --tls-cert, --tls-key and --tls-ca (or NEWTONPS_TLS_CERT/KEY/CA)")
        }
        do {
            return ClusterCredentials(token: token, tls: try TLSIdentity(certificate: tlsCert, key: tlsKey, ca: tlsCa))
        } catch { throw ValidationErrorText("TLS: \(error)") }
    }

    /// The credentials of a role that serves or joins a cluster; says on
    /// stderr what a missing token or certificate means for this role.
    func loadForRole(_ role: String) throws -> ClusterCredentials {
        let credentials = try load()
        if credentials.token == nil {
            let meaning =
                role == "worker"
                ? "a driver or server that requires a token will refuse this worker"
                : "every caller that can reach this process is let in"
            FileHandle.standardError.write(Data("newtonps \(role): no --token-file: \(meaning)\n".utf8))
        }
        if credentials.tls == nil {
            FileHandle.standardError.write(
                Data("newtonps \(role): no --tls-cert: traffic (the token included) crosses the network in plaintext\n".utf8))
        }
        return credentials
    }
}

/// `--data-root`: the one directory a driver or worker reads job data from.
struct DataRootOption: ParsableArguments {
    @Option(
        help:
            "Jobs' data paths must lie in this directory (relative paths are taken from it); symbolic links may not lead out (env NEWTONPS_DATA_ROOT)."
    )
    var dataRoot = environment("NEWTONPS_DATA_ROOT", "")

    /// The root, or nil (any path) after saying so on stderr.
    func load(role: String) throws -> DataRoot? {
        guard !dataRoot.isEmpty else {
            FileHandle.standardError.write(Data("newtonps \(role): no --data-root: jobs may read any file this process can\n".utf8))
            return nil
        }
        do { return try DataRoot(dataRoot) } catch { throw ValidationErrorText("--data-root: \(error)") }
    }
}

/// `--driver`, shared by every command that talks to a driver.
struct DriverAddress: ParsableArguments {
    @Option(help: "The driver's gRPC address (env NEWTONPS_DRIVER).")
    var driver = environment("NEWTONPS_DRIVER", "127.0.0.1:7070")
    @OptionGroup var security: SecurityOptions

    var endpoint: Endpoint { get throws { try parseEndpoint(driver, option: "driver") } }

    /// Runs `body` with a client connected to the driver, then disconnects.
    /// A call the driver refuses for the token says so plainly.
    func withClient<T>(_ body: (DriverClient) async throws -> T) async throws -> T {
        let credentials = try security.load()
        let client = try DriverClient(driver: try endpoint, credentials: credentials)
        defer { client.close() }
        do {
            return try await body(client)
        } catch let error as TransportError where error.code == .unauthenticated {
            throw ValidationErrorText(
                "the driver at \(driver) refused the call: \(security.tokenFile.isEmpty ? "no token given" : "wrong token in \(security.tokenFile)"); give the cluster's token with --token-file or NEWTONPS_TOKEN_FILE"
            )
        } catch let error as TransportError where error.code == .unreachable && credentials.tls == nil {
            throw ValidationErrorText(
                "\(error) (if the driver uses TLS, give --tls-cert, --tls-key and --tls-ca or NEWTONPS_TLS_CERT/KEY/CA)")
        }
    }
}

struct DriverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "driver", abstract: "Run the driver: membership, job store, job runner.")
    @Option(help: "gRPC listen address (env NEWTONPS_LISTEN); loopback unless an address is given.")
    var listen = environment("NEWTONPS_LISTEN", "127.0.0.1:7070")
    @Option(help: "HTTP /healthz, /readyz, /metrics address (env NEWTONPS_HTTP); loopback unless an address is given.")
    var http = environment("NEWTONPS_HTTP", "127.0.0.1:9090")
    @Option(help: "SQLite job store (env NEWTONPS_STORE).")
    var store = environment("NEWTONPS_STORE", "newtonps-jobs.sqlite")
    @OptionGroup var security: SecurityOptions
    @OptionGroup var data: DataRootOption

    func run() async throws {
        BLAS.threads = 1
        try await DriverProcess.run(
            RoleAddresses(
                listen: try parseEndpoint(listen, option: "listen"), advertise: nil,
                http: try parseEndpoint(http, option: "http"), driver: nil), storePath: store,
            credentials: try security.loadForRole("driver"), dataRoot: try data.load(role: "driver"))
    }
}

struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "server", abstract: "Run a parameter server.")
    @Option(help: "gRPC listen address (env NEWTONPS_LISTEN); loopback unless an address is given.")
    var listen = environment("NEWTONPS_LISTEN", "127.0.0.1:7071")
    @Option(
        help:
            "Address others use to reach this server (env NEWTONPS_ADVERTISE; default: the listen address, or this host's name when listening on 0.0.0.0)."
    )
    var advertise = environment("NEWTONPS_ADVERTISE", "")
    @Option(help: "HTTP /healthz, /readyz, /metrics address (env NEWTONPS_HTTP); loopback unless an address is given.")
    var http = environment("NEWTONPS_HTTP", "127.0.0.1:9091")
    @OptionGroup var driver: DriverAddress
    @Option(help: "Straggler simulation: extra milliseconds per local CG iteration of block-diagonal solves.")
    var solveDelayMs = 0

    func run() async throws {
        BLAS.threads = 1
        try await ServerProcess.run(
            try listeningRoleAddresses(listen: listen, advertise: advertise, http: http, driver: driver),
            credentials: try driver.security.loadForRole("server"), options: .init(solveIterationDelay: .milliseconds(solveDelayMs)))
    }
}

/// The addresses of a process that listens and registers (a server, an
/// agent); with no --advertise, one listening on 0.0.0.0 advertises this
/// host's name.
func listeningRoleAddresses(listen: String, advertise: String, http: String, driver: DriverAddress) throws -> RoleAddresses {
    let listen = try parseEndpoint(listen, option: "listen")
    var advertised = advertise.isEmpty ? nil : try parseEndpoint(advertise, option: "advertise")
    if advertised == nil && listen.host == "0.0.0.0" && listen.port != 0 {
        advertised = Endpoint(host: ProcessInfo.processInfo.hostName, port: listen.port)
    }
    return RoleAddresses(listen: listen, advertise: advertised, http: try parseEndpoint(http, option: "http"), driver: try driver.endpoint)
}

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "worker", abstract: "Run a stateless worker.")
    @Option(help: "HTTP /healthz, /readyz, /metrics address (env NEWTONPS_HTTP); loopback unless an address is given.")
    var http = environment("NEWTONPS_HTTP", "127.0.0.1:9092")
    @OptionGroup var driver: DriverAddress
    @Option(help: "OpenBLAS threads (keep equal across workers for bit-identical results).")
    var blasThreads = 1
    @OptionGroup var data: DataRootOption
    @Option(help: "MiB of parsed data blocks the worker keeps (LRU); its data memory, whatever the data set's size.")
    var dataCacheMb = DataCatalog.defaultCacheBytes >> 20

    func validate() throws {
        guard (1...(1 << 20)).contains(dataCacheMb) else {
            throw ValidationErrorText("--data-cache-mb must be 1…1048576, got \(dataCacheMb)")
        }
    }

    func run() async throws {
        BLAS.threads = blasThreads
        try await WorkerProcess.run(
            RoleAddresses(
                listen: nil, advertise: nil, http: try parseEndpoint(http, option: "http"),
                driver: try driver.endpoint), credentials: try driver.security.loadForRole("worker"),
            dataRoot: try data.load(role: "worker"), cacheBytes: dataCacheMb << 20)
    }
}

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run an agent of decentralised (next, dgd) jobs: it holds a share of the rows and trades vectors with its neighbours.")
    @Option(help: "gRPC listen address (env NEWTONPS_LISTEN); loopback unless an address is given.")
    var listen = environment("NEWTONPS_LISTEN", "127.0.0.1:7073")
    @Option(
        help:
            "Address the driver and neighbours use to reach this agent (env NEWTONPS_ADVERTISE; default: the listen address, or this host's name when listening on 0.0.0.0)."
    )
    var advertise = environment("NEWTONPS_ADVERTISE", "")
    @Option(help: "HTTP /healthz, /readyz, /metrics address (env NEWTONPS_HTTP); loopback unless an address is given.")
    var http = environment("NEWTONPS_HTTP", "127.0.0.1:9093")
    @OptionGroup var driver: DriverAddress
    @OptionGroup var data: DataRootOption
    @Option(help: "Workers of the agent's own in-process cluster (results do not depend on it).")
    var workers = 1

    func run() async throws {
        BLAS.threads = 1
        try await AgentProcess.run(
            try listeningRoleAddresses(listen: listen, advertise: advertise, http: http, driver: driver),
            credentials: try driver.security.loadForRole("agent"), dataRoot: try data.load(role: "agent"), workers: workers)
    }
}

struct SubmitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "submit", abstract: "Submit a job spec (YAML) to the driver.")
    @Argument(help: "The job spec; keys mirror `newtonps train`'s flags (see docs/JOBS.md).")
    var spec: String
    @Flag(help: "Follow the job's progress until it ends.")
    var follow = false
    @Option(help: "With --follow: write one JSON record per iteration here.")
    var logJson: String?
    @OptionGroup var driver: DriverAddress

    func run() async throws {
        guard let data = FileManager.default.contents(atPath: spec) else { throw ValidationError("cannot read the job spec \(spec)") }
        try await driver.withClient { client in
            print("submitting \(spec) (the driver indexes data files it has no index of first)…")
            let job = try await client.submit(yaml: String(decoding: data, as: UTF8.self))
            print("submitted \(job.id) (\(job.state))")
            if follow { try await followJob(job.id, client: client, logJson: logJson) }
        }
    }
}

struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "jobs", abstract: "List the driver's jobs.")
    @OptionGroup var driver: DriverAddress

    func run() async throws {
        let jobs = try await driver.withClient { try await $0.jobs() }
        func column(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count), withPad: " ", startingAt: 0) }
        print(column("ID", 10), column("STATE", 10), column("ITER", 5), column("OBJECTIVE", 13), column("TEST ACC", 9), "NAME")
        for job in jobs {
            print(
                column(job.id, 10), column(job.state, 10), column(String(job.iterations), 5),
                column(job.objective.map { String(format: "%.6e", $0) } ?? "-", 13),
                column(job.testAccuracy.map { String(format: "%.2f%%", $0 * 100) } ?? "-", 9), job.name)
        }
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show one job: state, last iteration, spec.")
    @Argument var id: String
    @OptionGroup var driver: DriverAddress

    func run() async throws {
        let (job, spec, records) = try await driver.withClient { try await $0.job(id) }
        print(
            "job \(job.id) \(job.name.isEmpty ? "" : "(\(job.name)) ")is \(job.state); \(job.iterations) iterations; created \(job.createdAt), updated \(job.updatedAt)"
        )
        if !job.stopReason.isEmpty { print("stop: \(job.stopReason)") }
        if !job.error.isEmpty { print("error: \(job.error)") }
        if let last = records.last { print(ProgressReporter.format(last)) }
        print("spec:\n" + spec)
    }
}

struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "watch", abstract: "Follow a job's progress until it ends.")
    @Argument var id: String
    @Option(help: "Write one JSON record per iteration here.")
    var logJson: String?
    @OptionGroup var driver: DriverAddress

    func run() async throws {
        try await driver.withClient { try await followJob(id, client: $0, logJson: logJson) }
    }
}

struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cancel", abstract: "Cancel a queued or running job.")
    @Argument var id: String
    @OptionGroup var driver: DriverAddress

    func run() async throws {
        let job = try await driver.withClient { try await $0.cancel(id) }
        print("\(job.id) is \(job.state)")
    }
}

struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Save a job's model (safetensors): the final one, or the last checkpoint's for a job that did not finish.")
    @Argument var id: String
    @Option(help: "Output file.")
    var out: String
    @OptionGroup var driver: DriverAddress

    func run() async throws {
        let exported = try await driver.withClient { try await $0.export(id) }
        // Decode first: never write something `evaluate` could not read.
        let model = try SavedModel.decode(Array(exported.safetensors), source: "job \(id)")
        try model.save(to: out)
        let iteration = exported.iteration.map { "iteration \($0)" } ?? "its last iteration"
        print(
            "saved \(id)'s model (\(model.spec.layerSizes.map(String.init).joined(separator: "-"))) of \(iteration), job \(exported.state), to \(out)"
        )
    }
}

/// Prints a job's progress like `train` does until it ends; fails when the
/// job did not succeed.
func followJob(_ id: String, client: DriverClient, logJson: String?) async throws {
    // The budget, for the time left; the spec's data lie on the driver's machine.
    let budget = try? JobSpec.parse(yaml: try await client.job(id).specYAML, checkData: false).budget.maxIterations
    let reporter = try ProgressReporter(jsonLog: logJson, quiet: false, maxIterations: budget)
    let end = EndBox()
    try await client.watch(id) { event in
        switch event {
        case .record(let r): reporter.record(r)
        case .finished(let job): end.set(job)
        }
    }
    reporter.finish()
    guard let job = end.value else { throw ValidationErrorText("the driver closed the watch of \(id) before the job ended") }
    let accuracy = job.testAccuracy.map { String(format: "%.2f%%", $0 * 100) } ?? "n/a"
    print(
        "\(job.id) \(job.state) after \(job.iterations) iterations (stop: \(job.stopReason.isEmpty ? "-" : job.stopReason)), test accuracy \(accuracy)"
    )
    if job.state != "succeeded" { throw ValidationErrorText("job \(job.id) \(job.state)\(job.error.isEmpty ? "" : ": \(job.error)")") }
}

/// The last job summary seen by a watch callback.
final class EndBox: Sendable {
    private let job = Mutex<JobInfo?>(nil)
    func set(_ j: JobInfo) { job.withLock { $0 = j } }
    var value: JobInfo? { job.withLock { $0 } }
}

struct LocalClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract:
            "Start a driver, servers, workers and agents as separate processes on this machine, with a fresh token and certificates; Ctrl-C stops them all."
    )
    @Option var servers = 2
    @Option var workers = 2
    @Option(help: "Agents, for decentralised (next, dgd) jobs.")
    var agents = 0
    @Option(help: "Address to bind every process to.")
    var host = "127.0.0.1"
    @Option(help: "The driver's SQLite job store.")
    var store = "newtonps-jobs.sqlite"
    @Option(help: "The driver's gRPC port (0: any free port); the other processes take free ports.")
    var driverPort = 7070
    @Flag(inversion: .prefixedNo, help: "Mutual TLS between all processes, with certificates made in STORE.certs/.")
    var tls = true

    func run() async throws {
        let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let cluster = try await LocalCluster.start(
            binary: binary, host: host, driverPort: driverPort, store: store, servers: servers, workers: workers, agents: agents,
            tls: tls)
        for member in cluster.members {
            print("\(member.role) pid \(member.process.pid): \(member.grpc.map { "grpc \($0), " } ?? "")http \(member.http)")
        }
        print("cluster token: \(cluster.tokenFile)")
        print("dashboard: http://\(cluster.driver.http)/#token=TOKEN (TOKEN: the contents of \(cluster.tokenFile))")
        var flags = "--driver \(cluster.driver.grpc!) --token-file \(cluster.tokenFile)"
        if let certificates = cluster.certificateDirectory {
            print("certificates: \(certificates) (mutual TLS; clients use client.pem)")
            flags += " --tls-cert \(certificates)/client.pem --tls-key \(certificates)/client-key.pem --tls-ca \(certificates)/ca.pem"
        }
        print("submit jobs with: newtonps submit JOB.yaml \(flags)")
        try await waitForTerminationSignal()
        print("stopping…")
        cluster.stop()
    }
}

struct CertificatesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs",
        abstract: "Make a cluster CA and a certificate per role (driver, server, worker, agent, client) for mutual TLS.",
        discussion: """
            Writes ca.pem, ca-key.pem and ROLE.pem, ROLE-key.pem for each role into --out (keys readable by their \
            owner only). Every certificate names the --hosts given and localhost/127.0.0.1, and serves as both a \
            server and a client certificate. Give each process its role's files: --tls-cert ROLE.pem \
            --tls-key ROLE-key.pem --tls-ca ca.pem. Keep ca-key.pem offline: whoever holds it can join the cluster.
            """)
    @Option(help: "Directory to write the files to (created if needed).")
    var out: String
    @Option(help: "Comma-separated DNS names or IP addresses the processes are reached at (e.g. compose service names).")
    var hosts = ""
    @Option(help: "Days the certificates are valid.")
    var days = 365
    @Flag(help: "Also write a fresh cluster token to OUT/token (owner-readable only).")
    var token = false
    @Flag(help: "Delete ca-key.pem once the certificates are signed (no process needs it).")
    var discardCaKey = false

    func run() throws {
        let names = hosts.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        do {
            try ClusterCertificates.make(in: out, hosts: names, days: days)
            if token { _ = try ClusterToken.generate(into: "\(out)/token") }
            if discardCaKey { try FileManager.default.removeItem(atPath: "\(out)/ca-key.pem") }
        } catch { throw ValidationErrorText("\(error)") }
        let all = ClusterCertificates.loopbackHosts + names.filter { !ClusterCertificates.loopbackHosts.contains($0) }
        print(
            "wrote ca.pem\(discardCaKey ? " (its key deleted)" : "") and \(ClusterCertificates.roles.joined(separator: ", ")) certificates to \(out), for \(all.joined(separator: ", "))\(token ? ", and a cluster token" : "")"
        )
    }
}
