import Foundation
import NewtonTransport
import Synchronization

/// A whole cluster of real `newtonps` processes on one machine: a driver,
/// servers, workers and agents, each on ports the kernel picks, found from the
/// addresses each process announces. Used by `newtonps cluster` and by the
/// end-to-end tests.
public final class LocalCluster: Sendable {
    /// One started process and the addresses it announced.
    public struct Member: Sendable {
        public let role: String
        public let process: ManagedProcess
        public let grpc: Endpoint?
        public let http: Endpoint
    }

    /// The driver (a new process after `restartDriver`, on the same port).
    public var driver: Member { driverMember.withLock { $0 } }
    /// What a client presents: the cluster token and, with TLS, the
    /// `client` certificate.
    public let credentials: ClusterCredentials
    /// The file holding the token every process requires.
    public let tokenFile: String
    /// Where the CA and role certificates are (nil: plaintext).
    public let certificateDirectory: String?
    /// The driver's job store.
    public let store: String
    /// The directory the driver and workers read job data from (nil: anywhere).
    public let dataRoot: String?
    private let driverMember: Mutex<Member>
    private let others: Mutex<[Member]>
    private let binary: URL
    private let host: String
    private let environment: [String: String]

    public var members: [Member] { [driver] + others.withLock { $0 } }
    public var servers: [Member] { members.filter { $0.role == "server" } }
    public var workers: [Member] { members.filter { $0.role == "worker" } }
    public var agents: [Member] { members.filter { $0.role == "agent" } }

    /// Starts a driver (with its job store at `store`, on `driverPort`, 0 for
    /// any free port), then the servers, workers and agents on free ports. A fresh
    /// cluster token is written to `store` + ".token" and, with `tls`, a CA
    /// and role certificates to `store` + ".certs/"; every process requires
    /// them of its callers, so clients need the token and the `client`
    /// certificate (`credentials`).
    public static func start(
        binary: URL, host: String = "127.0.0.1", driverPort: Int = 0, store: String, servers: Int, workers: Int, agents: Int = 0,
        tls: Bool = true, dataRoot: String? = nil, serverArguments: [String] = [], workerArguments: [String] = [],
        environment: [String: String] = [:]
    ) async throws -> LocalCluster {
        let tokenFile = store + ".token"
        let token = try ClusterToken.generate(into: tokenFile)
        let certificates = tls ? store + ".certs" : nil
        if let certificates { try ClusterCertificates.make(in: certificates, hosts: [host]) }
        let credentials = ClusterCredentials(
            token: token, tls: try certificates.map { try ClusterCertificates.identity("client", in: $0) })
        let cluster = LocalCluster(
            driver: try await launchDriver(
                binary, host: host, port: driverPort, store: store,
                arguments: securityArguments("driver", tokenFile: tokenFile, certificates: certificates) + dataArguments(dataRoot),
                environment: environment),
            binary: binary, host: host, credentials: credentials, tokenFile: tokenFile, certificateDirectory: certificates,
            dataRoot: dataRoot, store: store, environment: environment)
        do {
            for _ in 0..<servers { try await cluster.addServer(arguments: serverArguments, environment: environment) }
            for _ in 0..<workers { try await cluster.addWorker(arguments: workerArguments, environment: environment) }
            for _ in 0..<agents { try await cluster.addAgent(environment: environment) }
        } catch {
            cluster.stop()
            throw error
        }
        return cluster
    }

    private init(
        driver: Member, binary: URL, host: String, credentials: ClusterCredentials, tokenFile: String,
        certificateDirectory: String?, dataRoot: String?, store: String, environment: [String: String]
    ) {
        self.dataRoot = dataRoot
        self.driverMember = Mutex(driver)
        self.credentials = credentials
        self.tokenFile = tokenFile
        self.certificateDirectory = certificateDirectory
        self.store = store
        self.others = Mutex([])
        self.binary = binary
        self.host = host
        self.environment = environment
    }

    /// The token and certificate flags for a process of `role`.
    private static func securityArguments(_ role: String, tokenFile: String, certificates: String?) -> [String] {
        ["--token-file", tokenFile]
            + (certificates.map {
                ["--tls-cert", "\($0)/\(role).pem", "--tls-key", "\($0)/\(role)-key.pem", "--tls-ca", "\($0)/ca.pem"]
            } ?? [])
    }

    private func securityArguments(_ role: String) -> [String] {
        Self.securityArguments(role, tokenFile: tokenFile, certificates: certificateDirectory)
    }

    private static func dataArguments(_ dataRoot: String?) -> [String] {
        dataRoot.map { ["--data-root", $0] } ?? []
    }

    private static func launchDriver(
        _ binary: URL, host: String, port: Int, store: String, arguments: [String], environment: [String: String]
    ) async throws -> Member {
        try await launch(
            binary, role: "driver", ["driver", "--listen", "\(host):\(port)", "--http", "\(host):0", "--store", store] + arguments,
            environment)
    }

    /// Stops the driver (with SIGKILL when `crash`, to play a crash; else
    /// SIGTERM) and starts a new one on the same port with the same store
    /// and credentials; the servers and workers find it again by themselves.
    @discardableResult
    public func restartDriver(crash: Bool) async throws -> Member {
        let old = driver
        if crash { old.process.kill() } else { old.process.terminate() }
        let new = try await Self.launchDriver(
            binary, host: host, port: old.grpc!.port, store: store,
            arguments: securityArguments("driver") + Self.dataArguments(dataRoot), environment: environment)
        driverMember.withLock { $0 = new }
        return new
    }

    @discardableResult
    public func addServer(arguments: [String] = [], environment: [String: String] = [:]) async throws -> Member {
        let member = try await Self.launch(
            binary, role: "server",
            ["server", "--listen", "\(host):0", "--http", "\(host):0", "--driver", driver.grpc!.description]
                + securityArguments("server") + arguments, environment)
        others.withLock { $0.append(member) }
        return member
    }

    @discardableResult
    public func addWorker(arguments: [String] = [], environment: [String: String] = [:]) async throws -> Member {
        let member = try await Self.launch(
            binary, role: "worker",
            ["worker", "--http", "\(host):0", "--driver", driver.grpc!.description] + securityArguments("worker")
                + Self.dataArguments(dataRoot) + arguments, environment)
        others.withLock { $0.append(member) }
        return member
    }

    @discardableResult
    public func addAgent(arguments: [String] = [], environment: [String: String] = [:]) async throws -> Member {
        let member = try await Self.launch(
            binary, role: "agent",
            ["agent", "--listen", "\(host):0", "--http", "\(host):0", "--driver", driver.grpc!.description]
                + securityArguments("agent") + Self.dataArguments(dataRoot) + arguments, environment)
        others.withLock { $0.append(member) }
        return member
    }

    /// Sends SIGTERM to every process (agents and workers first, driver last) and waits.
    public func stop() {
        for member in members.reversed() { member.process.terminate() }
    }

    /// Starts one process and waits for the addresses it announces.
    private static func launch(_ binary: URL, role: String, _ arguments: [String], _ environment: [String: String]) async throws -> Member {
        let process = try ManagedProcess(binary, arguments, environment: environment)
        var grpc: Endpoint?
        var http: Endpoint?
        let deadline = ContinuousClock.now + .seconds(60)
        while http == nil || (grpc == nil && role != "worker") {
            guard ContinuousClock.now < deadline else {
                process.terminate()
                throw DriverError(.unreachable, "\(role) did not announce its addresses within 60 s; output:\n\(process.output)")
            }
            guard process.isRunning else {
                throw DriverError(.unreachable, "\(role) exited with status \(process.exitStatus ?? -1); output:\n\(process.output)")
            }
            for line in process.output.split(separator: "\n") {
                if line.hasPrefix("http listening on "), http == nil {
                    http = try Endpoint(parsing: String(line.dropFirst("http listening on ".count)))
                }
                if line.hasPrefix("\(role) listening on "), grpc == nil {
                    let rest = line.dropFirst("\(role) listening on ".count)
                    grpc = try Endpoint(parsing: String(rest.prefix { $0 != "," }))
                }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        return Member(role: role, process: process, grpc: grpc, http: http!)
    }
}

/// A child process whose combined output is collected, terminated with
/// SIGTERM (then SIGKILL if it lingers) when asked or when dropped. A
/// `newtonps` child also stops by itself when its parent dies without
/// stopping it (`stopWithParent`).
public final class ManagedProcess: Sendable {
    private let process: Process
    private let collected = OutputBuffer()

    /// The environment variable that tells a child its parent's pid.
    public static let parentVariable = "NEWTONPS_PARENT_PID"

    public init(_ binary: URL, _ arguments: [String], environment: [String: String] = [:]) throws {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            .merging([Self.parentVariable: String(getpid())]) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let collected = self.collected
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                return
            }
            collected.append(data)
        }
        do { try process.run() } catch {
            throw DriverError(.invalidRequest, "cannot start \(binary.path)", cause: error)
        }
        self.process = process
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }
    public var exitStatus: Int32? { process.isRunning ? nil : process.terminationStatus }
    /// Everything the process printed so far (stdout and stderr).
    public var output: String { collected.text }

    /// SIGTERM, then SIGKILL after `grace`; returns once the process is gone.
    public func terminate(grace: Duration = .seconds(10)) {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = ContinuousClock.now + grace
        while process.isRunning && ContinuousClock.now < deadline { usleep(20_000) }
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// Kills the process at once (to play a crash).
    public func kill() {
        guard process.isRunning else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Sends `signal` (e.g. SIGSTOP to play a hang, SIGCONT to end it).
    public func send(_ signal: Int32) {
        guard process.isRunning else { return }
        Foundation.kill(process.processIdentifier, signal)
    }

    deinit { terminate(grace: .seconds(2)) }

    /// Called at the start of every `newtonps` process: in one that a
    /// `ManagedProcess` started, a thread checks every 200 ms that the
    /// parent is still there. Once it is gone (killed by a signal, so it
    /// could not stop its children) the process sends itself SIGTERM and
    /// shuts down as if stopped, and exits after 15 s if it has not by then.
    /// Without the variable (compose, a shell) it does nothing.
    public static func stopWithParent() {
        guard let value = ProcessInfo.processInfo.environment[parentVariable], let parent = pid_t(value) else { return }
        Thread.detachNewThread {
            while getppid() == parent { usleep(200_000) }
            Foundation.kill(getpid(), SIGTERM)
            sleep(15)
            _exit(1)
        }
    }
}

/// Text collected from a pipe's handler thread.
private final class OutputBuffer: Sendable {
    private let storage = Mutex("")
    func append(_ data: Data) { storage.withLock { $0 += String(decoding: data, as: UTF8.self) } }
    var text: String { storage.withLock { $0 } }
}
