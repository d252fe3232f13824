import NewtonProto

/// Messages whose float32 payload counts toward the tensor-bytes metrics
/// (the bytes that dominate the wire; other fields are a few dozen bytes).
protocol TensorPayload {
    var tensorBytes: Int { get }
}

extension Newtonps_V1_Tensor: TensorPayload { var tensorBytes: Int { data.count } }
extension Newtonps_V1_BlockTensors: TensorPayload { var tensorBytes: Int { values.reduce(0) { $0 + $1.data.count } } }
extension Newtonps_V1_AssignRequest: TensorPayload { var tensorBytes: Int { weights.reduce(0) { $0 + $1.data.count } } }
extension Newtonps_V1_WriteRequest: TensorPayload { var tensorBytes: Int { values.tensorBytes } }
extension Newtonps_V1_PushRequest: TensorPayload { var tensorBytes: Int { values.tensorBytes } }
extension Newtonps_V1_PushJacobianRequest: TensorPayload {
    var tensorBytes: Int { (inputs + slices).reduce(outputs.data.count) { $0 + $1.data.count } }
}
extension Newtonps_V1_JacobianTransposeRequest: TensorPayload { var tensorBytes: Int { u.data.count } }
extension Newtonps_V1_ShardResult: TensorPayload { var tensorBytes: Int { outputs.data.count } }
extension Newtonps_V1_TaskResult: TensorPayload { var tensorBytes: Int { shards.reduce(0) { $0 + $1.tensorBytes } } }
extension Newtonps_V1_ExportModelResponse: TensorPayload { var tensorBytes: Int { safetensors.count } }

extension Newtonps_V1_Empty: TensorPayload { var tensorBytes: Int { 0 } }
extension Newtonps_V1_ReadRequest: TensorPayload { var tensorBytes: Int { 0 } }
extension Newtonps_V1_RunRequest: TensorPayload { var tensorBytes: Int { 0 } }
extension Newtonps_V1_RunResponse: TensorPayload { var tensorBytes: Int { 0 } }
extension Newtonps_V1_BeginSumRequest: TensorPayload { var tensorBytes: Int { 0 } }
extension Newtonps_V1_FinishSumRequest: TensorPayload { var tensorBytes: Int { 0 } }
extension Newtonps_V1_BeginJacobianRequest: TensorPayload { var tensorBytes: Int { 0 } }
extension Newtonps_V1_JacobianProductRequest: TensorPayload { var tensorBytes: Int { 0 } }
extension Newtonps_V1_BlockSolveRequest: TensorPayload { var tensorBytes: Int { 0 } }
extension Newtonps_V1_BlockSolveReport: TensorPayload { var tensorBytes: Int { 0 } }
extension Newtonps_V1_StopSolvesRequest: TensorPayload { var tensorBytes: Int { 0 } }
