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

/// `--token-file`: the cluster's shared secret, for every role and client.
struct TokenOptions: ParsableArguments {
    @Option(
        help:
            "File holding the cluster token: required of every caller, and presented to every peer (env NEWTONPS_TOKEN_FILE; `newtonps cluster` writes one next to its store)."
    )
    var tokenFile = environment("NEWTONPS_TOKEN_FILE", "")

    /// The token, or nil without a file.
    func load() throws -> ClusterToken? {
        guard !tokenFile.isEmpty else { return nil }
        do { return try ClusterToken(file: tokenFile) } catch { throw ValidationErrorText("--token-file: \(error)") }
    }

    /// The token for a role that serves or joins a cluster; without one,
    /// says on stderr what that means for this role.
    func loadForRole(_ role: String) throws -> ClusterToken? {
        let token = try load()
        if token == nil {
            let meaning =
                role == "worker"
                ? "a driver or server that requires a token will refuse this worker"
                : "every caller that can reach this process is let in"
            FileHandle.standardError.write(Data("newtonps \(role): no --token-file: \(meaning)\n".utf8))
        }
        return token
    }
}

/// `--driver`, shared by every command that talks to a driver.
struct DriverAddress: ParsableArguments {
    @Option(help: "The driver's gRPC address (env NEWTONPS_DRIVER).")
    var driver = environment("NEWTONPS_DRIVER", "127.0.0.1:7070")
    @OptionGroup var token: TokenOptions

    var endpoint: Endpoint { get throws { try parseEndpoint(driver, option: "driver") } }

    /// Runs `body` with a client connected to the driver, then disconnects.
    /// A call the driver refuses for the token says so plainly.
    func withClient<T>(_ body: (DriverClient) async throws -> T) async throws -> T {
        let client = try DriverClient(driver: try endpoint, token: try token.load())
        defer { client.close() }
        do {
            return try await body(client)
        } catch let error as TransportError where error.code == .unauthenticated {
            throw ValidationErrorText(
                "the driver at \(driver) refused the call: \(token.tokenFile.isEmpty ? "no token given" : "wrong token in \(token.tokenFile)"); give the cluster's token with --token-file or NEWTONPS_TOKEN_FILE"
            )
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
    @OptionGroup var token: TokenOptions

    func run() async throws {
        BLAS.threads = 1
        try await DriverProcess.run(
            RoleAddresses(
                listen: try parseEndpoint(listen, option: "listen"), advertise: nil,
                http: try parseEndpoint(http, option: "http"), driver: nil), storePath: store, token: try token.loadForRole("driver"))
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
        let listen = try parseEndpoint(self.listen, option: "listen")
        var advertised = advertise.isEmpty ? nil : try parseEndpoint(advertise, option: "advertise")
        if advertised == nil && listen.host == "0.0.0.0" && listen.port != 0 {
            advertised = Endpoint(host: ProcessInfo.processInfo.hostName, port: listen.port)
        }
        try await ServerProcess.run(
            RoleAddresses(
                listen: listen, advertise: advertised, http: try parseEndpoint(http, option: "http"),
                driver: try driver.endpoint),
            token: try driver.token.loadForRole("server"), options: .init(solveIterationDelay: .milliseconds(solveDelayMs)))
    }
}

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "worker", abstract: "Run a stateless worker.")
    @Option(help: "HTTP /healthz, /readyz, /metrics address (env NEWTONPS_HTTP); loopback unless an address is given.")
    var http = environment("NEWTONPS_HTTP", "127.0.0.1:9092")
    @OptionGroup var driver: DriverAddress
    @Option(help: "OpenBLAS threads (keep equal across workers for bit-identical results).")
    var blasThreads = 1

    func run() async throws {
        BLAS.threads = blasThreads
        try await WorkerProcess.run(
            RoleAddresses(
                listen: nil, advertise: nil, http: try parseEndpoint(http, option: "http"),
                driver: try driver.endpoint), token: try driver.token.loadForRole("worker"))
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
    static let configuration = CommandConfiguration(commandName: "export", abstract: "Save a finished job's model (safetensors).")
    @Argument var id: String
    @Option(help: "Output file.")
    var out: String
    @OptionGroup var driver: DriverAddress

    func run() async throws {
        let bytes = try await driver.withClient { try await $0.export(id) }
        // Decode first: never write something `evaluate` could not read.
        let model = try SavedModel.decode(Array(bytes), source: "job \(id)")
        try model.save(to: out)
        print("saved \(id)'s model (\(model.spec.layerSizes.map(String.init).joined(separator: "-"))) to \(out)")
    }
}

/// Prints a job's progress like `train` does until it ends; fails when the
/// job did not succeed.
func followJob(_ id: String, client: DriverClient, logJson: String?) async throws {
    let reporter = try ProgressReporter(jsonLog: logJson, quiet: false)
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
        abstract: "Start a driver, servers and workers as separate processes on this machine; Ctrl-C stops them all.")
    @Option var servers = 2
    @Option var workers = 2
    @Option(help: "Address to bind every process to.")
    var host = "127.0.0.1"
    @Option(help: "The driver's SQLite job store.")
    var store = "newtonps-jobs.sqlite"
    @Option(help: "The driver's gRPC port (0: any free port); the other processes take free ports.")
    var driverPort = 7070

    func run() async throws {
        let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let cluster = try await LocalCluster.start(
            binary: binary, host: host, driverPort: driverPort, store: store,
            servers: servers, workers: workers)
        for member in cluster.members {
            print("\(member.role) pid \(member.process.pid): \(member.grpc.map { "grpc \($0), " } ?? "")http \(member.http)")
        }
        print("cluster token: \(cluster.tokenFile)")
        print("submit jobs with: newtonps submit JOB.yaml --driver \(cluster.driver.grpc!) --token-file \(cluster.tokenFile)")
        try await waitForTerminationSignal()
        print("stopping…")
        cluster.stop()
    }
}
