import GRPCCore
import GRPCNIOTransportHTTP2Posix
import NewtonCore
import NewtonObservability
import NewtonProto
import NewtonRoles
import NewtonTraining

/// Serves an agent process's `AgentHost` as the `newtonps.v1.Agent` gRPC
/// service: `Start` and `Round` from the driver, `Exchange` from neighbours.
public struct AgentService: Newtonps_V1_Agent.SimpleServiceProtocol {
    public let host: AgentHost

    public init(host: AgentHost) {
        self.host = host
    }

    public func start(request: Newtonps_V1_AgentJob, context: ServerContext) async throws -> Newtonps_V1_AgentStarted {
        try await serve("Start", request) {
            var started = Newtonps_V1_AgentStarted()
            started.tau = try await host.start(request)
            return started
        }
    }

    public func round(request: Newtonps_V1_AgentRoundRequest, context: ServerContext) async throws -> Newtonps_V1_AgentRoundReport {
        try await serve("Round", request) { try await host.round(request) }
    }

    public func exchange(request: Newtonps_V1_ExchangeRequest, context: ServerContext) async throws -> Newtonps_V1_Empty {
        try await serve("Exchange", request) {
            try await host.deliver(request)
            return Newtonps_V1_Empty()
        }
    }

    private func serve<Request: TensorPayload, Response: TensorPayload>(
        _ method: String, _ request: Request, _ body: () async throws -> Response
    ) async throws -> Response {
        try await servedCall(role: "agent", method: method, request: request, body)
    }
}

/// What an agent process holds: the job it runs (one at a time; a new
/// `Start` replaces it), its cluster over the agent's rows, and the mailbox
/// its neighbours' messages land in.
public actor AgentHost {
    /// The job an agent runs now.
    private struct Job {
        let id: String
        let index: Int
        let run: DecentralisedRun
        let schedule: GraphSchedule
        let parameterCount: Int
        let agent: LocalAgent
        let mailbox: ExchangeMailbox
        let exchange: GRPCExchange
    }

    public let credentials: ClusterCredentials
    /// Where jobs' data paths must lie (nil: anywhere).
    public let dataRoot: DataRoot?
    /// Workers of the agent's own cluster.
    public let workers: Int
    public let metrics: AgentMetrics
    /// How long a round waits for its neighbours' messages.
    public let exchangeTimeout: Duration
    private var job: Job?

    public init(
        credentials: ClusterCredentials, dataRoot: DataRoot?, workers: Int, metrics: AgentMetrics = AgentMetrics(),
        exchangeTimeout: Duration = .seconds(600)
    ) {
        self.credentials = credentials
        self.dataRoot = dataRoot
        self.workers = workers
        self.metrics = metrics
        self.exchangeTimeout = exchangeTimeout
    }

    /// The id of the job the agent runs, if any.
    public var jobID: String? { job?.id }

    /// Takes on `request`'s share of a job, in place of the job it ran:
    /// loads the data, keeps the rows of its range, builds its cluster and
    /// starts at w⁰. Returns τᵢ. A request that does not fit leaves the old
    /// job as it was.
    func start(_ request: Newtonps_V1_AgentJob) async throws -> Double {
        let run = try DecentralisedRun(wire: request.settings)
        let index = Int(request.index)
        guard request.agents.count == run.options.agents, (0..<run.options.agents).contains(index) else {
            throw TransportError(
                .invalidRequest,
                "agent \(index) of a job for \(run.options.agents) agents was given \(request.agents.count) agent endpoints")
        }
        let endpoints = try request.agents.map { try Endpoint(parsing: $0) }
        let grid = try PartitionGrid(wire: request.grid)
        let descriptor = try DataDescriptor(wire: request.data)
        let data = try (dataRoot?.locate(descriptor) ?? descriptor).load()
        let rows = Int(clamping: request.rowLower)..<Int(clamping: max(request.rowLower, request.rowUpper))
        guard !rows.isEmpty, rows.upperBound <= data.train.rows, data.train.rows == run.totalRows else {
            throw TransportError(
                .invalidRequest,
                "agent \(index) was given rows \(request.rowLower)..<\(request.rowUpper) of a job with \(run.totalRows) rows; its data has \(data.train.rows)"
            )
        }
        let share = TrainingData(train: data.train.subset(rows), test: nil, scaler: data.scaler)
        let cluster = try await EmbeddedCluster(
            grid: grid, data: share, descriptor: descriptor, servers: 1, workers: workers, shardRows: Int(request.shardRows))
        let initial = try DenseParameters(spec: grid.spec, values: try request.initial.floats("the initial weights"))
        let mailbox = ExchangeMailbox()
        let exchange = try GRPCExchange(
            jobID: request.jobID, agent: index, endpoints: endpoints, credentials: credentials, mailbox: mailbox, metrics: metrics,
            timeout: exchangeTimeout)
        let agent = try LocalAgent(index: index, run: run, cluster: cluster.coordinator, exchange: exchange)
        job?.exchange.close()
        job = Job(
            id: request.jobID, index: index, run: run,
            schedule: try GraphSchedule(
                topology: run.options.topology, agents: run.options.agents, timeVarying: run.options.timeVarying, seed: run.seed),
            parameterCount: initial.count, agent: agent, mailbox: mailbox, exchange: exchange)
        return try await agent.start(runID: request.jobID, data: descriptor, initial: initial)
    }

    /// Runs a round of the current job.
    func round(_ request: Newtonps_V1_AgentRoundRequest) async throws -> Newtonps_V1_AgentRoundReport {
        let job = try current(request.jobID)
        guard request.round >= 1, request.round <= Int64(Int32.max), request.alpha > 0, request.alpha.isFinite else {
            throw TransportError(.invalidRequest, "round \(request.round) with step \(request.alpha) is not a round of a run")
        }
        let clock = ContinuousClock.now
        let report = try await job.agent.round(Int(request.round), alpha: request.alpha)
        metrics.recordRound(seconds: seconds(since: clock))
        var wire = Newtonps_V1_AgentRoundReport()
        wire.weights = WireTensor(report.weights)
        if let sparse = report.sparse { wire.sparse = WireTensor(sparse) }
        wire.cgIterations = Int32(report.cgIterations)
        wire.bytesSent = Int64(report.bytesSent)
        wire.phaseS = report.phaseSeconds
        return wire
    }

    /// Files a neighbour's vectors after checking they belong to this job,
    /// come from a neighbour of that round and have the weights' size.
    func deliver(_ request: Newtonps_V1_ExchangeRequest) async throws {
        let job = try current(request.jobID)
        let (round, sender) = (Int(clamping: request.round), Int(request.sender))
        guard round >= 1, job.schedule.graph(round: round).neighbours[job.index].contains(sender) else {
            throw TransportError(.invalidRequest, "agent \(sender) is not a neighbour of agent \(job.index) in round \(request.round)")
        }
        guard request.vectors.count == job.run.vectorsExchanged else {
            throw TransportError(
                .invalidRequest,
                "agent \(sender) sent \(request.vectors.count) vector(s) for round \(round); \(job.run.method.rawValue) exchanges \(job.run.vectorsExchanged)"
            )
        }
        let vectors = try request.vectors.enumerated().map { k, tensor in
            let what = "vector \(k) from agent \(sender) for round \(round)"
            let values = try tensor.floats(what)
            guard values.count == job.parameterCount else {
                throw TransportError(.invalidRequest, "\(what) has \(values.count) values; the network has \(job.parameterCount) weights")
            }
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw TransportError(.invalidRequest, "\(what) holds \(values[bad]) at index \(bad)")
            }
            return values
        }
        try await job.mailbox.deliver(round: round, from: sender, to: job.index, vectors: vectors)
    }

    private func current(_ id: String) throws -> Job {
        guard let job, job.id == id else {
            throw TransportError(.invalidRequest, "this agent runs \(job.map { "job \($0.id)" } ?? "no job"), not job \(id)")
        }
        return job
    }
}

/// An agent's exchange across processes: one `Exchange` RPC per neighbour
/// (concurrently), then the neighbours' messages from its own mailbox, which
/// `AgentHost.deliver` fills.
final class GRPCExchange: AgentExchange {
    let jobID: String
    let agent: Int
    let endpoints: [Endpoint]
    let mailbox: ExchangeMailbox
    let metrics: AgentMetrics
    let timeout: Duration
    /// One connection per agent, opened up front and closed with the job.
    private let connections: [GRPCConnection]

    init(
        jobID: String, agent: Int, endpoints: [Endpoint], credentials: ClusterCredentials, mailbox: ExchangeMailbox,
        metrics: AgentMetrics, timeout: Duration
    ) throws {
        self.jobID = jobID
        self.agent = agent
        self.endpoints = endpoints
        self.mailbox = mailbox
        self.metrics = metrics
        self.timeout = timeout
        self.connections = try endpoints.map { try GRPCConnection(to: $0, credentials: credentials) }
    }

    func close() {
        for connection in connections { connection.close() }
    }

    func exchange(round: Int, vectors: [[Float]], with neighbours: [Int]) async throws -> [Int: [[Float]]] {
        var request = Newtonps_V1_ExchangeRequest()
        request.jobID = jobID
        request.round = Int64(round)
        request.sender = Int32(agent)
        request.vectors = vectors.map { WireTensor($0) }
        let message = request
        try await withThrowingTaskGroup(of: Void.self) { group in
            for j in neighbours {
                let connection = connections[j]
                group.addTask {
                    let client = Newtonps_V1_Agent.Client(wrapping: connection.client)
                    _ = try await remoteCall(
                        role: "agent", peer: connection.endpoint, method: "Exchange", requestBytes: message.tensorBytes,
                        timeout: self.timeout
                    ) { try await client.exchange(message, options: $0) }
                    self.metrics.recordSent(message.tensorBytes, to: j)
                }
            }
            try await group.waitForAll()
        }
        return try await withThrowingTaskGroup(of: [Int: [[Float]]].self) { group in
            group.addTask { try await self.mailbox.collect(round: round, for: self.agent, from: neighbours) }
            group.addTask {
                try await Task.sleep(for: self.timeout)
                throw TransportError(
                    .unreachable, "agent \(self.agent) waited \(self.timeout) for its neighbours \(neighbours)' vectors of round \(round)")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }
}
