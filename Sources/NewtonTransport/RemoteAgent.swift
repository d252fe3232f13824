import GRPCCore
import GRPCNIOTransportHTTP2Posix
import NewtonCore
import NewtonProto
import NewtonTraining
import Synchronization

/// An agent process as the driver's decentralised trainer drives it: `Start`
/// hands it its rows, the run's settings and w⁰; each `Round` returns its
/// weights for the records. Its iterates travel only to its neighbours.
public final class RemoteAgent: DecentralisedAgent {
    /// Deadlines of the driver's calls.
    public struct Timeouts: Sendable {
        /// Loading the data and the power iterations behind τ.
        public var start: Duration = .seconds(600)
        /// A round: the local step (a CG solve for the Gauss-Newton
        /// surrogate) and the wait for the neighbours.
        public var round: Duration = .seconds(3600)
        public init() {}
    }

    public let connection: GRPCConnection
    public let index: Int
    public let rowRange: Range<Int>
    public let timeouts: Timeouts
    /// Weights of the network.
    private let parameterCount: Int
    /// The job without its id, data and start (filled by `start`).
    private let assignment: Newtonps_V1_AgentJob
    /// The run id `start` was given, for the rounds.
    private let runID = Mutex<String?>(nil)
    private var client: Newtonps_V1_Agent.Client<HTTP2ClientTransport.Posix> { .init(wrapping: connection.client) }

    /// - Parameters:
    ///   - endpoints: every agent of the run, by index (this one's included).
    ///   - rows: the agent's training rows.
    public init(
        connection: GRPCConnection, index: Int, endpoints: [Endpoint], rows: Range<Int>, grid: PartitionGrid, shardRows: Int,
        run: DecentralisedRun, timeouts: Timeouts = .init()
    ) {
        self.connection = connection
        self.index = index
        self.rowRange = rows
        self.timeouts = timeouts
        self.parameterCount = DenseParameters(zeros: grid.spec).count
        var assignment = Newtonps_V1_AgentJob()
        assignment.index = Int32(index)
        assignment.agents = endpoints.map(\.description)
        assignment.grid = grid.wire
        assignment.rowLower = Int64(rows.lowerBound)
        assignment.rowUpper = Int64(rows.upperBound)
        assignment.shardRows = Int32(shardRows)
        assignment.settings = run.wire
        self.assignment = assignment
    }

    public var rows: Int { rowRange.count }

    public func start(runID: String, data: DataDescriptor, initial: DenseParameters) async throws -> Double {
        var request = assignment
        request.jobID = runID
        request.data = data.wire
        request.initial = WireTensor(initial.values)
        self.runID.withLock { $0 = runID }
        let client = self.client
        let started = try await remoteCall(
            role: "driver", peer: connection.endpoint, method: "Start", requestBytes: request.tensorBytes, timeout: timeouts.start
        ) { try await client.start(request, options: $0) }
        return started.tau
    }

    public func round(_ round: Int, alpha: Double) async throws -> AgentRoundReport {
        var request = Newtonps_V1_AgentRoundRequest()
        guard let runID = runID.withLock({ $0 }) else {
            throw TransportError(.invalidRequest, "agent \(index) at \(connection.endpoint) was asked for round \(round) before its start")
        }
        request.jobID = runID
        request.round = Int64(round)
        request.alpha = alpha
        let client = self.client
        let report = try await remoteCall(
            role: "driver", peer: connection.endpoint, method: "Round", requestBytes: 0, timeout: timeouts.round
        ) { try await client.round(request, options: $0) }
        let what = "agent \(index)'s report of round \(round)"
        let count = parameterCount
        let weights = try report.weights.floats("\(what): weights")
        let sparse = report.hasSparse ? try report.sparse.floats("\(what): sparse point") : nil
        guard weights.count == count, sparse.map({ $0.count == count }) ?? true else {
            throw TransportError(.invalidRequest, "\(what) has \(weights.count) weights; the network has \(count)")
        }
        return AgentRoundReport(
            weights: weights, sparse: sparse, cgIterations: Int(report.cgIterations), bytesSent: Int(clamping: report.bytesSent),
            phaseSeconds: report.phaseS)
    }
}

extension DecentralisedRun {
    public var wire: Newtonps_V1_DecentralisedSettings {
        var s = Newtonps_V1_DecentralisedSettings()
        s.method = method.rawValue
        s.agents = Int32(options.agents)
        s.topology = options.topology.description
        s.timeVarying = options.timeVarying?.text ?? ""
        s.surrogate = options.surrogate.rawValue
        if let tau = options.tau { s.tau = tau }
        s.regularizer = options.regularizer.rawValue
        s.l1Strength = options.l1Strength
        s.initialStep = options.initialStep
        s.stepDecay = options.stepDecay
        s.cgTolerance = secondOrder.cgTolerance
        s.cgMaxIterations = Int32(clamping: secondOrder.cgMaxIterations)
        s.subsample = newton.subsampleFraction
        s.products = newton.products.rawValue
        s.seed = seed
        s.totalRows = Int64(totalRows)
        s.regularization = regularization
        return s
    }

    /// The run `wire` describes; throws naming the first setting that is
    /// unknown or out of range.
    public init(wire s: Newtonps_V1_DecentralisedSettings) throws {
        func parsed<T>(_ value: T?, _ setting: String, _ text: String) throws -> T {
            guard let value else { throw TransportError(.invalidRequest, "unknown \(setting) '\(text)' in an agent's job") }
            return value
        }
        var options = DecentralisedOptions()
        options.agents = Int(s.agents)
        options.topology = try parsed(GraphTopology(text: s.topology), "graph", s.topology)
        options.timeVarying =
            s.timeVarying.isEmpty ? nil : try parsed(TimeVaryingGraph(text: s.timeVarying), "time-varying graph", s.timeVarying)
        options.surrogate = try parsed(Surrogate(rawValue: s.surrogate), "surrogate", s.surrogate)
        options.tau = s.hasTau ? s.tau : nil
        options.regularizer = try parsed(Regularizer(rawValue: s.regularizer), "regularizer", s.regularizer)
        options.l1Strength = s.l1Strength
        options.initialStep = s.initialStep
        options.stepDecay = s.stepDecay
        var secondOrder = SecondOrderOptions()
        secondOrder.cgTolerance = s.cgTolerance
        secondOrder.cgMaxIterations = Int(s.cgMaxIterations)
        var newton = NewtonOptions()
        newton.subsampleFraction = s.subsample
        newton.products = try parsed(ProductsMode(rawValue: s.products), "products mode", s.products)
        do {
            try self.init(
                method: try parsed(DecentralisedMethod(rawValue: s.method), "method", s.method), options: options,
                secondOrder: secondOrder, newton: newton, seed: s.seed, totalRows: Int(clamping: s.totalRows),
                regularization: s.regularization)
        } catch let error as TrainingError {
            throw TransportError(.invalidRequest, "an agent's job: \(error.message)")
        }
    }
}
