import GRPCCore
import GRPCNIOTransportHTTP2Posix
import NewtonCore
import NewtonProto
import NewtonRoles
import NewtonTraining

/// A parameter server in another process, reached over gRPC. Implements the
/// same `ParameterServer` protocol as the in-process `ServerCore`, so the
/// optimiser and workers cannot tell the difference.
public struct RemoteParameterServer: ParameterServer {
    /// Deadlines per kind of call.
    public struct Timeouts: Sendable {
        /// Vector programs, reads, writes, sums: small or streaming-speed work.
        public var standard: Duration = .seconds(120)
        /// A block-local CG solve can run for many iterations.
        public var solve: Duration = .seconds(3600)
        public init() {}
    }

    public let connection: GRPCConnection
    public let timeouts: Timeouts
    /// Whose calls these are in the metrics ("driver" or "worker").
    public let role: String
    private var client: Newtonps_V1_ParameterServer.Client<HTTP2ClientTransport.Posix> { .init(wrapping: connection.client) }

    public init(connection: GRPCConnection, role: String, timeouts: Timeouts = .init()) {
        self.connection = connection
        self.role = role
        self.timeouts = timeouts
    }

    private func call<Request: TensorPayload, Response: TensorPayload>(
        _ method: String, _ request: Request, timeout: Duration? = nil,
        _ body: (Newtonps_V1_ParameterServer.Client<HTTP2ClientTransport.Posix>, Request, CallOptions) async throws -> Response
    ) async throws -> Response {
        let client = self.client
        return try await remoteCall(
            role: role, peer: connection.endpoint, method: method, requestBytes: request.tensorBytes,
            timeout: timeout ?? timeouts.standard
        ) { options in
            try await body(client, request, options)
        }
    }

    public func assign(_ assignment: BlockAssignment) async throws {
        var request = Newtonps_V1_AssignRequest()
        request.jobID = assignment.jobID
        request.grid = assignment.grid.wire
        request.blocks = assignment.blocks.map(Int32.init)
        request.weights = assignment.weights.map { WireTensor($0) }
        _ = try await call("Assign", request) { try await $0.assign($1, options: $2) }
    }

    public func read(_ vector: VectorName, blocks: [Int], held: [UInt64]) async throws -> [VersionedBlock] {
        var request = Newtonps_V1_ReadRequest()
        request.vector = vector.rawValue
        request.blocks = blocks.map(Int32.init)
        request.heldVersions = held
        let response = try await call("Read", request) { try await $0.read($1, options: $2) }
        let what = "read of \(vector) from \(connection.endpoint)"
        let (sent, values) = try response.changed.decoded(what)
        guard response.versions.count == blocks.count else {
            throw TransportError(.remote, "\(what) answered \(response.versions.count) versions for \(blocks.count) blocks")
        }
        var byBlock = [Int: [Float]]()
        for (block, value) in zip(sent, values) {
            guard blocks.contains(block), byBlock.updateValue(value, forKey: block) == nil else {
                throw TransportError(.remote, "\(what) sent block \(block), asked \(blocks)")
            }
        }
        return try zip(blocks, response.versions).enumerated().map { i, pair in
            let (block, version) = pair
            let values = byBlock[block]
            guard values != nil || (!held.isEmpty && held[i] == version) else {
                throw TransportError(.remote, "\(what) left out block \(block), which the caller does not hold at version \(version)")
            }
            return VersionedBlock(version: version, values: values)
        }
    }

    public func write(_ vector: VectorName, blocks: [Int], values: [[Float]]) async throws {
        var request = Newtonps_V1_WriteRequest()
        request.vector = vector.rawValue
        request.values = Newtonps_V1_BlockTensors(blocks: blocks, values: values)
        _ = try await call("Write", request) { try await $0.write($1, options: $2) }
    }

    public func run(_ program: [VectorOp]) async throws -> [BlockDots] {
        var request = Newtonps_V1_RunRequest()
        request.program = program.map(\.wire)
        return try await call("Run", request) { try await $0.run($1, options: $2) }.dots
    }

    public func beginSum(into vector: VectorName, shards: Int, round: Int) async throws {
        var request = Newtonps_V1_BeginSumRequest()
        request.vector = vector.rawValue
        request.shards = Int32(shards)
        request.round = UInt64(round)
        _ = try await call("BeginSum", request) { try await $0.beginSum($1, options: $2) }
    }

    public func push(into vector: VectorName, round: PushRound, shard: Int, blocks: [Int], values: [[Float]]) async throws {
        var request = Newtonps_V1_PushRequest()
        request.vector = vector.rawValue
        request.jobID = round.job
        request.round = UInt64(round.round)
        request.shard = Int32(shard)
        request.values = Newtonps_V1_BlockTensors(blocks: blocks, values: values)
        _ = try await call("Push", request) { try await $0.push($1, options: $2) }
    }

    public func finishSum(into vector: VectorName) async throws {
        var request = Newtonps_V1_FinishSumRequest()
        request.vector = vector.rawValue
        _ = try await call("FinishSum", request) { try await $0.finishSum($1, options: $2) }
    }

    public func beginJacobian(rows: Int, round: Int) async throws {
        var request = Newtonps_V1_BeginJacobianRequest()
        request.rows = Int32(rows)
        request.round = UInt64(round)
        _ = try await call("BeginJacobian", request) { try await $0.beginJacobian($1, options: $2) }
    }

    public func pushJacobian(round: PushRound, rowOffset: Int, blocks: [Int], inputs: [[Float]], slices: [SliceShare], outputs: [Float])
        async throws
    {
        var request = Newtonps_V1_PushJacobianRequest()
        request.jobID = round.job
        request.round = UInt64(round.round)
        request.rowOffset = Int32(rowOffset)
        request.blocks = blocks.map(Int32.init)
        request.inputs = inputs.map { WireTensor($0) }
        request.packedSlices = slices.map { Newtonps_V1_PackedSlice($0.packed) }
        request.outputs = WireTensor(outputs)
        _ = try await call("PushJacobian", request) { try await $0.pushJacobian($1, options: $2) }
    }

    public func jacobianProduct(of vector: VectorName, first program: [VectorOp]) async throws -> [(block: Int, values: [Float])] {
        var request = Newtonps_V1_JacobianProductRequest()
        request.vector = vector.rawValue
        request.first = program.map(\.wire)
        let response = try await call("JacobianProduct", request) { try await $0.jacobianProduct($1, options: $2) }
        let (blocks, values) = try response.decoded("J_b v_b from \(connection.endpoint)")
        return Array(zip(blocks, values)).map { (block: $0.0, values: $0.1) }
    }

    public func jacobianTransposeProduct(_ u: [Float], into vector: VectorName, then program: [VectorOp]) async throws -> [BlockDots] {
        var request = Newtonps_V1_JacobianTransposeRequest()
        request.u = WireTensor(u)
        request.vector = vector.rawValue
        request.then = program.map(\.wire)
        return try await call("JacobianTransposeProduct", request) { try await $0.jacobianTransposeProduct($1, options: $2) }.dots
    }

    public func solveDiagonalBlock(_ request: BlockSolveRequest) async throws -> BlockSolveReport {
        let report = try await call("SolveDiagonalBlock", request.wire, timeout: timeouts.solve) {
            try await $0.solveDiagonalBlock($1, options: $2)
        }
        return try BlockSolveReport(wire: report)
    }

    public func stopDiagonalSolves(generation: Int) async throws {
        var request = Newtonps_V1_StopSolvesRequest()
        request.generation = Int64(generation)
        _ = try await call("StopDiagonalSolves", request) { try await $0.stopDiagonalSolves($1, options: $2) }
    }
}
