import GRPCCore
import NewtonCore
import NewtonObservability
import NewtonProto
import NewtonRoles
import NewtonTraining

/// Serves a `ServerCore` as the `newtonps.v1.ParameterServer` gRPC service.
/// Every request is decoded and checked before it reaches the core; failures
/// go back as gRPC statuses whose message names the problem.
public struct ParameterServerService: Newtonps_V1_ParameterServer.SimpleServiceProtocol {
    public let core: ServerCore

    public init(core: ServerCore) {
        self.core = core
    }

    public func assign(request: Newtonps_V1_AssignRequest, context: ServerContext) async throws -> Newtonps_V1_Empty {
        try await serve("Assign", request, context) {
            guard request.blocks.count == request.weights.count else {
                throw TransportError(
                    .invalidRequest, "assignment lists \(request.blocks.count) blocks and \(request.weights.count) weight tensors")
            }
            let weights = try request.weights.enumerated().map { try $1.floats("weights of block \(request.blocks[$0])") }
            try await core.assign(
                BlockAssignment(
                    jobID: request.jobID, grid: try PartitionGrid(wire: request.grid),
                    blocks: request.blocks.map(Int.init), weights: weights))
            return Newtonps_V1_Empty()
        }
    }

    public func read(request: Newtonps_V1_ReadRequest, context: ServerContext) async throws -> Newtonps_V1_ReadResponse {
        try await serve("Read", request, context) {
            let blocks = request.blocks.map(Int.init)
            let answers = try await core.read(try VectorName(wire: request.vector), blocks: blocks, held: request.heldVersions)
            let changed = zip(blocks, answers).compactMap { block, answer in answer.values.map { (block, $0) } }
            var response = Newtonps_V1_ReadResponse()
            response.changed = Newtonps_V1_BlockTensors(blocks: changed.map(\.0), values: changed.map(\.1))
            response.versions = answers.map(\.version)
            return response
        }
    }

    public func write(request: Newtonps_V1_WriteRequest, context: ServerContext) async throws -> Newtonps_V1_Empty {
        try await serve("Write", request, context) {
            let (blocks, values) = try request.values.decoded("write of \(request.vector)")
            try await core.write(try VectorName(wire: request.vector), blocks: blocks, values: values)
            return Newtonps_V1_Empty()
        }
    }

    public func run(request: Newtonps_V1_RunRequest, context: ServerContext) async throws -> Newtonps_V1_RunResponse {
        try await serve("Run", request, context) {
            Newtonps_V1_RunResponse(try await core.run(try request.program.map(VectorOp.init(wire:))))
        }
    }

    public func beginSum(request: Newtonps_V1_BeginSumRequest, context: ServerContext) async throws -> Newtonps_V1_Empty {
        try await serve("BeginSum", request, context) {
            try await core.beginSum(
                into: try VectorName(wire: request.vector), shards: Int(request.shards), round: Int(clamping: request.round))
            return Newtonps_V1_Empty()
        }
    }

    public func push(request: Newtonps_V1_PushRequest, context: ServerContext) async throws -> Newtonps_V1_Empty {
        try await serve("Push", request, context) {
            let (blocks, values) = try request.values.decoded("push of shard \(request.shard) into \(request.vector)")
            try await core.push(
                into: try VectorName(wire: request.vector), round: PushRound(job: request.jobID, round: Int(clamping: request.round)),
                shard: Int(request.shard), blocks: blocks, values: values)
            return Newtonps_V1_Empty()
        }
    }

    public func finishSum(request: Newtonps_V1_FinishSumRequest, context: ServerContext) async throws -> Newtonps_V1_Empty {
        try await serve("FinishSum", request, context) {
            try await core.finishSum(into: try VectorName(wire: request.vector))
            return Newtonps_V1_Empty()
        }
    }

    public func beginJacobian(request: Newtonps_V1_BeginJacobianRequest, context: ServerContext) async throws -> Newtonps_V1_Empty {
        try await serve("BeginJacobian", request, context) {
            try await core.beginJacobian(rows: Int(request.rows), round: Int(clamping: request.round))
            return Newtonps_V1_Empty()
        }
    }

    public func pushJacobian(request: Newtonps_V1_PushJacobianRequest, context: ServerContext) async throws -> Newtonps_V1_Empty {
        try await serve("PushJacobian", request, context) {
            let what = "Jacobian push at row \(request.rowOffset)"
            try await core.pushJacobian(
                round: PushRound(job: request.jobID, round: Int(clamping: request.round)), rowOffset: Int(request.rowOffset),
                blocks: request.blocks.map(Int.init),
                inputs: try request.inputs.map { try $0.floats("\(what), inputs") },
                slices: try request.packedSlices.map { .packed(try $0.decoded("\(what), slices")) },
                outputs: try request.outputs.floats("\(what), outputs"))
            return Newtonps_V1_Empty()
        }
    }

    public func jacobianProduct(request: Newtonps_V1_JacobianProductRequest, context: ServerContext) async throws
        -> Newtonps_V1_BlockTensors
    {
        try await serve("JacobianProduct", request, context) {
            let products = try await core.jacobianProduct(
                of: try VectorName(wire: request.vector), first: try request.first.map(VectorOp.init(wire:)))
            return Newtonps_V1_BlockTensors(blocks: products.map(\.block), values: products.map(\.values))
        }
    }

    public func jacobianTransposeProduct(request: Newtonps_V1_JacobianTransposeRequest, context: ServerContext) async throws
        -> Newtonps_V1_RunResponse
    {
        try await serve("JacobianTransposeProduct", request, context) {
            Newtonps_V1_RunResponse(
                try await core.jacobianTransposeProduct(
                    try request.u.floats("u"), into: try VectorName(wire: request.vector), then: try request.then.map(VectorOp.init(wire:)))
            )
        }
    }

    public func solveDiagonalBlock(request: Newtonps_V1_BlockSolveRequest, context: ServerContext) async throws
        -> Newtonps_V1_BlockSolveReport
    {
        try await serve("SolveDiagonalBlock", request, context) {
            try await core.solveDiagonalBlock(try BlockSolveRequest(wire: request)).wire
        }
    }

    public func stopDiagonalSolves(request: Newtonps_V1_StopSolvesRequest, context: ServerContext) async throws -> Newtonps_V1_Empty {
        try await serve("StopDiagonalSolves", request, context) {
            core.stopDiagonalSolves(generation: Int(request.generation))
            return Newtonps_V1_Empty()
        }
    }

    private func serve<Request: TensorPayload, Response: TensorPayload>(
        _ method: String, _ request: Request, _ context: ServerContext, _ body: () async throws -> Response
    ) async throws -> Response {
        try await servedCall(role: "server", method: method, request: request, body)
    }
}

/// Runs one handler of a service: records its metrics as `role`'s and
/// turns any error into the status its blame calls for.
func servedCall<Request: TensorPayload, Response: TensorPayload>(
    role: String, method: String, request: Request, _ body: () async throws -> Response
) async throws -> Response {
    let clock = ContinuousClock.now
    do {
        let response = try await body()
        RPCMetrics.observe(
            role: role, method: method, side: .server, requestBytes: request.tensorBytes,
            responseBytes: response.tensorBytes, seconds: seconds(since: clock), failed: false)
        return response
    } catch {
        RPCMetrics.observe(
            role: role, method: method, side: .server, requestBytes: request.tensorBytes,
            responseBytes: 0, seconds: seconds(since: clock), failed: true)
        throw RPCError(answering: error)
    }
}

/// Seconds from `start` to now.
public func seconds(since start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}
