import NewtonProto
import NewtonTransport

/// The peers that have registered with the driver and still heartbeat.
public actor Membership {
    public struct Peer: Sendable {
        public var id: String
        public var role: String
        public var endpoint: Endpoint?
        public var httpEndpoint: String
        public var lastSeen: ContinuousClock.Instant
    }

    /// How often peers are told to heartbeat; a peer silent for three
    /// intervals is no longer live.
    public let heartbeatInterval: Duration
    private var peers: [String: Peer] = [:]
    private var order: [String] = []
    private var sessions: [String: WorkerSession] = [:]
    private var counter = 0

    public init(heartbeatInterval: Duration = .seconds(1)) {
        self.heartbeatInterval = heartbeatInterval
    }

    /// Admits a peer after the version check; returns its id.
    func register(_ info: Newtonps_V1_PeerInfo) throws -> String {
        if let problem = NewtonPSVersion.incompatibility(version: info.version, wireProtocol: info.protocol) {
            throw DriverError(
                .incompatible, "\(info.role) at \(info.endpoint.isEmpty ? info.httpEndpoint : info.endpoint) refused: \(problem)")
        }
        let endpoint: Endpoint?
        switch info.role {
        case "server", "agent":
            endpoint = try Endpoint(parsing: info.endpoint)
            // A server or agent that restarts on the same address replaces its old entry.
            if let old = peers.values.first(where: { $0.role == info.role && $0.endpoint == endpoint }) {
                peers[old.id] = nil
                order.removeAll { $0 == old.id }
            }
        case "worker":
            endpoint = nil
        default:
            throw DriverError(.invalidRequest, "unknown role '\(info.role)' (expected server, worker or agent)")
        }
        counter += 1
        // The random part keeps a caller from guessing another peer's id (and
        // so its heartbeats or its worker session).
        let id = "\(info.role)-\(counter)-\(String(UInt64.random(in: .min ... .max), radix: 16))"
        peers[id] = Peer(id: id, role: info.role, endpoint: endpoint, httpEndpoint: info.httpEndpoint, lastSeen: .now)
        order.append(id)
        return id
    }

    /// Records a heartbeat; false when the peer is unknown (it must register again).
    func heartbeat(_ id: String) -> Bool {
        guard peers[id] != nil else { return false }
        peers[id]!.lastSeen = .now
        return true
    }

    func attach(_ session: WorkerSession) throws {
        guard peers[session.peerID]?.role == "worker" else {
            throw DriverError(.invalidRequest, "worker session for unknown worker '\(session.peerID)'; register first")
        }
        sessions[session.peerID]?.close(DriverError(.unreachable, "worker \(session.peerID) opened a new session"))
        sessions[session.peerID] = session
        peers[session.peerID]!.lastSeen = .now
    }

    func detach(_ session: WorkerSession) {
        if sessions[session.peerID] === session { sessions[session.peerID] = nil }
    }

    private func isLive(_ peer: Peer) -> Bool {
        ContinuousClock.now - peer.lastSeen < heartbeatInterval * 3
    }

    /// Live servers in registration order.
    public func liveServers() -> [Peer] { live("server") }

    /// Live agents (of decentralised jobs) in registration order.
    public func liveAgents() -> [Peer] { live("agent") }

    private func live(_ role: String) -> [Peer] {
        order.compactMap { peers[$0] }.filter { $0.role == role && isLive($0) }
    }

    /// Live workers with an open session, in registration order.
    func liveWorkers() -> [(peer: Peer, session: WorkerSession)] {
        order.compactMap { id in
            guard let peer = peers[id], peer.role == "worker", isLive(peer), let session = sessions[id], !session.isClosed else {
                return nil
            }
            return (peer, session)
        }
    }

    /// Ends the sessions of workers that stopped heartbeating, failing their
    /// pending requests so the coordinator moves the work elsewhere, and
    /// forgets those workers: if one wakes up, its heartbeat is refused and
    /// it registers again afresh.
    func closeSilentSessions() {
        for (id, session) in sessions {
            guard let peer = peers[id], !isLive(peer) else { continue }
            session.close(DriverError(.unreachable, "worker \(id) stopped heartbeating"))
            sessions[id] = nil
            peers[id] = nil
            order.removeAll { $0 == id }
        }
    }

    /// Every registered peer in registration order, whether it is live
    /// (heartbeating; a worker also with an open session) and how long ago
    /// it was last heard from.
    public func roster() -> [(peer: Peer, live: Bool, silentFor: Duration)] {
        let now = ContinuousClock.now
        return order.compactMap { id in
            guard let peer = peers[id] else { return nil }
            let live = isLive(peer) && (peer.role != "worker" || sessions[id].map { !$0.isClosed } == true)
            return (peer, live, now - peer.lastSeen)
        }
    }

    /// Counts of live servers, workers and agents (for readiness and metrics).
    public func counts() -> (servers: Int, workers: Int, agents: Int) {
        (liveServers().count, liveWorkers().count, liveAgents().count)
    }
}
