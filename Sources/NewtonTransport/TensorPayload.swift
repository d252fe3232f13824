import NewtonProto

/// Messages whose float32 payload counts toward the tensor-bytes metrics
/// (the bytes that dominate the wire; other fields are a few dozen bytes).
public protocol TensorPayload {
    var tensorBytes: Int { get }
}

extension Newtonps_V1_Tensor: TensorPayload { public var tensorBytes: Int { data.count } }
extension Newtonps_V1_BlockTensors: TensorPayload { public var tensorBytes: Int { values.reduce(0) { $0 + $1.data.count } } }
extension Newtonps_V1_AssignRequest: TensorPayload { public var tensorBytes: Int { weights.reduce(0) { $0 + $1.data.count } } }
extension Newtonps_V1_ReadResponse: TensorPayload { public var tensorBytes: Int { changed.tensorBytes } }
extension Newtonps_V1_WriteRequest: TensorPayload { public var tensorBytes: Int { values.tensorBytes } }
extension Newtonps_V1_PushRequest: TensorPayload { public var tensorBytes: Int { values.tensorBytes } }
extension Newtonps_V1_PushJacobianRequest: TensorPayload {
    public var tensorBytes: Int {
        inputs.reduce(outputs.data.count) { $0 + $1.data.count }
            + packedSlices.reduce(0) { $0 + $1.keptColumns.count + $1.values.data.count }
    }
}
extension Newtonps_V1_JacobianTransposeRequest: TensorPayload { public var tensorBytes: Int { u.data.count } }
extension Newtonps_V1_ShardResult: TensorPayload { public var tensorBytes: Int { outputs.data.count } }
extension Newtonps_V1_TaskResult: TensorPayload { public var tensorBytes: Int { shards.reduce(0) { $0 + $1.tensorBytes } } }
extension Newtonps_V1_AgentJob: TensorPayload { public var tensorBytes: Int { initial.data.count } }
extension Newtonps_V1_AgentRoundReport: TensorPayload { public var tensorBytes: Int { weights.data.count + sparse.data.count } }
extension Newtonps_V1_ExchangeRequest: TensorPayload { public var tensorBytes: Int { vectors.reduce(0) { $0 + $1.data.count } } }
extension Newtonps_V1_ExportModelResponse: TensorPayload { public var tensorBytes: Int { safetensors.count } }

extension Newtonps_V1_Empty: TensorPayload { public var tensorBytes: Int { 0 } }
extension Newtonps_V1_ReadRequest: TensorPayload { public var tensorBytes: Int { 0 } }
extension Newtonps_V1_RunRequest: TensorPayload { public var tensorBytes: Int { 0 } }
extension Newtonps_V1_RunResponse: TensorPayload { public var tensorBytes: Int { 0 } }
extension Newtonps_V1_BeginSumRequest: TensorPayload { public var tensorBytes: Int { 0 } }
extension Newtonps_V1_FinishSumRequest: TensorPayload { public var tensorBytes: Int { 0 } }
extension Newtonps_V1_BeginJacobianRequest: TensorPayload { public var tensorBytes: Int { 0 } }
extension Newtonps_V1_JacobianProductRequest: TensorPayload { public var tensorBytes: Int { 0 } }
extension Newtonps_V1_BlockSolveRequest: TensorPayload { public var tensorBytes: Int { 0 } }
extension Newtonps_V1_BlockSolveReport: TensorPayload { public var tensorBytes: Int { 0 } }
extension Newtonps_V1_StopSolvesRequest: TensorPayload { public var tensorBytes: Int { 0 } }
extension Newtonps_V1_AgentStarted: TensorPayload { public var tensorBytes: Int { 0 } }
extension Newtonps_V1_AgentRoundRequest: TensorPayload { public var tensorBytes: Int { 0 } }
