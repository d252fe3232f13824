import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import NewtonCore
import NewtonProto
import Synchronization

/// A peer's membership in the cluster: registers with the driver (with the
/// version check), heartbeats, and registers again whenever the driver has
/// forgotten it (for example after a driver restart).
public final class DriverLink: Sendable {
    public let driver: Endpoint
    public let connection: GRPCConnection
    /// What this peer presents to the driver and to servers.
    public let credentials: ClusterCredentials
    private let info: Newtonps_V1_PeerInfo
    private let state = Mutex<(peerID: String?, interval: Duration)>((nil, .seconds(1)))
    private let timeout: Duration = .seconds(5)

    /// - Parameters:
    ///   - role: "server" or "worker".
    ///   - endpoint: where a server serves gRPC (nil for workers).
    public init(driver: Endpoint, credentials: ClusterCredentials, role: String, endpoint: Endpoint?, httpEndpoint: String) throws {
        self.driver = driver
        self.credentials = credentials
        self.connection = try GRPCConnection(to: driver, credentials: credentials)
        var info = Newtonps_V1_PeerInfo()
        info.role = role
        info.endpoint = endpoint?.description ?? ""
        info.httpEndpoint = httpEndpoint
        info.version = NewtonPSVersion.version
        info.protocol = NewtonPSVersion.wireProtocol
        self.info = info
    }

    var client: Newtonps_V1_Driver.Client<HTTP2ClientTransport.Posix> { .init(wrapping: connection.client) }

    /// The id the driver gave this peer, once registered.
    public var peerID: String? { state.withLock { $0.peerID } }

    /// Registers, retrying while the driver is unreachable; an incompatible
    /// version is final and thrown.
    @discardableResult
    public func register() async throws -> String {
        var request = Newtonps_V1_RegisterRequest()
        request.peer = info
        var delay = Duration.milliseconds(100)
        var attempts = 0
        while true {
            do {
                let response = try await remoteCall(role: info.role, peer: driver, method: "Register", requestBytes: 0, timeout: timeout) {
                    try await client.register(request, options: $0)
                }
                let interval = Duration.milliseconds(max(50, Int(response.heartbeatIntervalMs)))
                state.withLock { $0 = (response.peerID, interval) }
                return response.peerID
            } catch let error as TransportError where error.code == .unreachable {
                // Said once, then every ~30 s: a wrong certificate looks like this too.
                if attempts % 15 == 0 {
                    Logger(label: "newtonps.link").warning("cannot register with the driver: \(error); retrying")
                }
                attempts += 1
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(2))
            }
        }
    }

    /// Heartbeats until cancelled. When the driver no longer knows this peer
    /// (it restarted), a server registers again; a worker's heartbeat throws,
    /// so that its session ends and registers afresh with a new session.
    public func heartbeat() async throws {
        while !Task.isCancelled {
            let (id, interval) = state.withLock { ($0.peerID, $0.interval) }
            try await Task.sleep(for: interval)
            guard let id else { continue }
            var request = Newtonps_V1_HeartbeatRequest()
            request.peerID = id
            let known = try? await remoteCall(role: info.role, peer: driver, method: "Heartbeat", requestBytes: 0, timeout: timeout) {
                try await client.heartbeat(request, options: $0)
            }.known
            guard known == false, state.withLock({ $0.peerID == id }) else { continue }
            if info.role == "worker" {
                throw TransportError(.unreachable, "the driver at \(driver) no longer knows worker \(id)")
            }
            try await register()
        }
    }
}

extension DriverLink {
    /// Block `block` of the `split` data of the running job attempt `job`,
    /// streamed from the driver in pieces: the block's bytes of each file.
    public func readDataBlock(job: String, split: DataSplit, block: Int) async throws -> [[UInt8]] {
        var request = Newtonps_V1_DataBlockRequest()
        request.jobID = job
        request.split = split.rawValue
        request.block = Int32(block)
        let driver = self.driver
        return try await remoteCall(role: "worker", peer: driver, method: "ReadDataBlock", requestBytes: 0, timeout: .seconds(300)) {
            options in
            try await client.readDataBlock(request, options: options) { response in
                var files = [[UInt8]]()
                for try await chunk in response.messages {
                    let file = Int(chunk.file)
                    guard file == files.count - 1 || file == files.count, file < 16 else {
                        throw TransportError(
                            .invalidRequest, "ReadDataBlock from \(driver): a piece of file \(file) after \(files.count) files")
                    }
                    if file == files.count { files.append([]) }
                    files[file] += chunk.content
                }
                return StreamedBlock(files: files)
            }
        }.files
    }
}

/// A data block as it came from the driver; its bytes count as payload.
private struct StreamedBlock: TensorPayload {
    var files: [[UInt8]]
    var tensorBytes: Int { files.reduce(0) { $0 + $1.count } }
}

extension Newtonps_V1_RegisterResponse: TensorPayload { public var tensorBytes: Int { 0 } }
extension Newtonps_V1_HeartbeatResponse: TensorPayload { public var tensorBytes: Int { 0 } }
