from . import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PeerInfo(_message.Message):
    __slots__ = ("role", "endpoint", "http_endpoint", "version", "protocol")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    HTTP_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    role: str
    endpoint: str
    http_endpoint: str
    version: str
    protocol: str
    def __init__(self, role: _Optional[str] = ..., endpoint: _Optional[str] = ..., http_endpoint: _Optional[str] = ..., version: _Optional[str] = ..., protocol: _Optional[str] = ...) -> None: ...

class RegisterRequest(_message.Message):
    __slots__ = ("peer",)
    PEER_FIELD_NUMBER: _ClassVar[int]
    peer: PeerInfo
    def __init__(self, peer: _Optional[_Union[PeerInfo, _Mapping]] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("peer_id", "heartbeat_interval_ms", "driver_version")
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    DRIVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    peer_id: str
    heartbeat_interval_ms: int
    driver_version: str
    def __init__(self, peer_id: _Optional[str] = ..., heartbeat_interval_ms: _Optional[int] = ..., driver_version: _Optional[str] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("peer_id",)
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    peer_id: str
    def __init__(self, peer_id: _Optional[str] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("known",)
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    known: bool
    def __init__(self, known: _Optional[bool] = ...) -> None: ...

class Range(_message.Message):
    __slots__ = ("lower", "upper")
    LOWER_FIELD_NUMBER: _ClassVar[int]
    UPPER_FIELD_NUMBER: _ClassVar[int]
    lower: int
    upper: int
    def __init__(self, lower: _Optional[int] = ..., upper: _Optional[int] = ...) -> None: ...

class Indices(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, values: _Optional[_Iterable[int]] = ...) -> None: ...

class RowShard(_message.Message):
    __slots__ = ("index", "split", "range", "indices", "offset")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    INDICES_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    index: int
    split: str
    range: Range
    indices: Indices
    offset: int
    def __init__(self, index: _Optional[int] = ..., split: _Optional[str] = ..., range: _Optional[_Union[Range, _Mapping]] = ..., indices: _Optional[_Union[Indices, _Mapping]] = ..., offset: _Optional[int] = ...) -> None: ...

class WorkerJob(_message.Message):
    __slots__ = ("job_id", "grid", "ownership", "servers", "data", "indexed_data")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    GRID_FIELD_NUMBER: _ClassVar[int]
    OWNERSHIP_FIELD_NUMBER: _ClassVar[int]
    SERVERS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    INDEXED_DATA_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    grid: _common_pb2.PartitionGrid
    ownership: _containers.RepeatedScalarFieldContainer[int]
    servers: _containers.RepeatedScalarFieldContainer[str]
    data: _common_pb2.DataDescriptor
    indexed_data: bytes
    def __init__(self, job_id: _Optional[str] = ..., grid: _Optional[_Union[_common_pb2.PartitionGrid, _Mapping]] = ..., ownership: _Optional[_Iterable[int]] = ..., servers: _Optional[_Iterable[str]] = ..., data: _Optional[_Union[_common_pb2.DataDescriptor, _Mapping]] = ..., indexed_data: _Optional[bytes] = ...) -> None: ...

class DataBlockRequest(_message.Message):
    __slots__ = ("job_id", "split", "block")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    split: str
    block: int
    def __init__(self, job_id: _Optional[str] = ..., split: _Optional[str] = ..., block: _Optional[int] = ...) -> None: ...

class DataChunk(_message.Message):
    __slots__ = ("file", "content")
    FILE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    file: int
    content: bytes
    def __init__(self, file: _Optional[int] = ..., content: _Optional[bytes] = ...) -> None: ...

class WorkerTask(_message.Message):
    __slots__ = ("evaluate", "gradient", "gauss_newton", "jacobian", "hessian", "squared_gradient", "shards", "round", "shards_per_push")
    class Evaluate(_message.Message):
        __slots__ = ("point",)
        POINT_FIELD_NUMBER: _ClassVar[int]
        point: str
        def __init__(self, point: _Optional[str] = ...) -> None: ...
    class Gradient(_message.Message):
        __slots__ = ("point", "into")
        POINT_FIELD_NUMBER: _ClassVar[int]
        INTO_FIELD_NUMBER: _ClassVar[int]
        point: str
        into: str
        def __init__(self, point: _Optional[str] = ..., into: _Optional[str] = ...) -> None: ...
    class GaussNewton(_message.Message):
        __slots__ = ("point", "direction", "into")
        POINT_FIELD_NUMBER: _ClassVar[int]
        DIRECTION_FIELD_NUMBER: _ClassVar[int]
        INTO_FIELD_NUMBER: _ClassVar[int]
        point: str
        direction: str
        into: str
        def __init__(self, point: _Optional[str] = ..., direction: _Optional[str] = ..., into: _Optional[str] = ...) -> None: ...
    class Jacobian(_message.Message):
        __slots__ = ("point",)
        POINT_FIELD_NUMBER: _ClassVar[int]
        point: str
        def __init__(self, point: _Optional[str] = ...) -> None: ...
    class Hessian(_message.Message):
        __slots__ = ("point", "direction", "into")
        POINT_FIELD_NUMBER: _ClassVar[int]
        DIRECTION_FIELD_NUMBER: _ClassVar[int]
        INTO_FIELD_NUMBER: _ClassVar[int]
        point: str
        direction: str
        into: str
        def __init__(self, point: _Optional[str] = ..., direction: _Optional[str] = ..., into: _Optional[str] = ...) -> None: ...
    class SquaredGradient(_message.Message):
        __slots__ = ("point", "into")
        POINT_FIELD_NUMBER: _ClassVar[int]
        INTO_FIELD_NUMBER: _ClassVar[int]
        point: str
        into: str
        def __init__(self, point: _Optional[str] = ..., into: _Optional[str] = ...) -> None: ...
    EVALUATE_FIELD_NUMBER: _ClassVar[int]
    GRADIENT_FIELD_NUMBER: _ClassVar[int]
    GAUSS_NEWTON_FIELD_NUMBER: _ClassVar[int]
    JACOBIAN_FIELD_NUMBER: _ClassVar[int]
    HESSIAN_FIELD_NUMBER: _ClassVar[int]
    SQUARED_GRADIENT_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SHARDS_PER_PUSH_FIELD_NUMBER: _ClassVar[int]
    evaluate: WorkerTask.Evaluate
    gradient: WorkerTask.Gradient
    gauss_newton: WorkerTask.GaussNewton
    jacobian: WorkerTask.Jacobian
    hessian: WorkerTask.Hessian
    squared_gradient: WorkerTask.SquaredGradient
    shards: _containers.RepeatedCompositeFieldContainer[RowShard]
    round: int
    shards_per_push: int
    def __init__(self, evaluate: _Optional[_Union[WorkerTask.Evaluate, _Mapping]] = ..., gradient: _Optional[_Union[WorkerTask.Gradient, _Mapping]] = ..., gauss_newton: _Optional[_Union[WorkerTask.GaussNewton, _Mapping]] = ..., jacobian: _Optional[_Union[WorkerTask.Jacobian, _Mapping]] = ..., hessian: _Optional[_Union[WorkerTask.Hessian, _Mapping]] = ..., squared_gradient: _Optional[_Union[WorkerTask.SquaredGradient, _Mapping]] = ..., shards: _Optional[_Iterable[_Union[RowShard, _Mapping]]] = ..., round: _Optional[int] = ..., shards_per_push: _Optional[int] = ...) -> None: ...

class ShardResult(_message.Message):
    __slots__ = ("shard", "loss", "correct", "outputs")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    shard: int
    loss: float
    correct: int
    outputs: _common_pb2.Tensor
    def __init__(self, shard: _Optional[int] = ..., loss: _Optional[float] = ..., correct: _Optional[int] = ..., outputs: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ...) -> None: ...

class WorkerHello(_message.Message):
    __slots__ = ("peer_id",)
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    peer_id: str
    def __init__(self, peer_id: _Optional[str] = ...) -> None: ...

class TaskResult(_message.Message):
    __slots__ = ("request_id", "shards", "error")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    shards: _containers.RepeatedCompositeFieldContainer[ShardResult]
    error: str
    def __init__(self, request_id: _Optional[int] = ..., shards: _Optional[_Iterable[_Union[ShardResult, _Mapping]]] = ..., error: _Optional[str] = ...) -> None: ...

class WorkerMessage(_message.Message):
    __slots__ = ("hello", "result")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    hello: WorkerHello
    result: TaskResult
    def __init__(self, hello: _Optional[_Union[WorkerHello, _Mapping]] = ..., result: _Optional[_Union[TaskResult, _Mapping]] = ...) -> None: ...

class DriverMessage(_message.Message):
    __slots__ = ("request_id", "prepare", "task")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PREPARE_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    prepare: WorkerJob
    task: WorkerTask
    def __init__(self, request_id: _Optional[int] = ..., prepare: _Optional[_Union[WorkerJob, _Mapping]] = ..., task: _Optional[_Union[WorkerTask, _Mapping]] = ...) -> None: ...

class IterationRecord(_message.Message):
    __slots__ = ("iteration", "elapsed_s", "objective", "grad_norm", "cg_iterations", "step", "line_search_steps", "test_accuracy", "outcome", "phase_s", "disagreement", "zero_fraction", "bytes_sent", "reference_gap", "bytes_moved")
    class PhaseSEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_S_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    GRAD_NORM_FIELD_NUMBER: _ClassVar[int]
    CG_ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    LAMBDA_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    LINE_SEARCH_STEPS_FIELD_NUMBER: _ClassVar[int]
    TEST_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    PHASE_S_FIELD_NUMBER: _ClassVar[int]
    DISAGREEMENT_FIELD_NUMBER: _ClassVar[int]
    ZERO_FRACTION_FIELD_NUMBER: _ClassVar[int]
    BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_GAP_FIELD_NUMBER: _ClassVar[int]
    BYTES_MOVED_FIELD_NUMBER: _ClassVar[int]
    iteration: int
    elapsed_s: float
    objective: float
    grad_norm: float
    cg_iterations: int
    step: float
    line_search_steps: int
    test_accuracy: float
    outcome: str
    phase_s: _containers.ScalarMap[str, float]
    disagreement: float
    zero_fraction: float
    bytes_sent: float
    reference_gap: float
    bytes_moved: float
    def __init__(self, iteration: _Optional[int] = ..., elapsed_s: _Optional[float] = ..., objective: _Optional[float] = ..., grad_norm: _Optional[float] = ..., cg_iterations: _Optional[int] = ..., step: _Optional[float] = ..., line_search_steps: _Optional[int] = ..., test_accuracy: _Optional[float] = ..., outcome: _Optional[str] = ..., phase_s: _Optional[_Mapping[str, float]] = ..., disagreement: _Optional[float] = ..., zero_fraction: _Optional[float] = ..., bytes_sent: _Optional[float] = ..., reference_gap: _Optional[float] = ..., bytes_moved: _Optional[float] = ..., **kwargs) -> None: ...

class JobSummary(_message.Message):
    __slots__ = ("id", "name", "state", "created_at", "updated_at", "iterations", "objective", "test_accuracy", "stop_reason", "error")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    TEST_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    state: str
    created_at: str
    updated_at: str
    iterations: int
    objective: float
    test_accuracy: float
    stop_reason: str
    error: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., state: _Optional[str] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ..., iterations: _Optional[int] = ..., objective: _Optional[float] = ..., test_accuracy: _Optional[float] = ..., stop_reason: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("spec_yaml",)
    SPEC_YAML_FIELD_NUMBER: _ClassVar[int]
    spec_yaml: str
    def __init__(self, spec_yaml: _Optional[str] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: JobSummary
    def __init__(self, job: _Optional[_Union[JobSummary, _Mapping]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[JobSummary]
    def __init__(self, jobs: _Optional[_Iterable[_Union[JobSummary, _Mapping]]] = ...) -> None: ...

class JobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetJobResponse(_message.Message):
    __slots__ = ("job", "spec_yaml", "records")
    JOB_FIELD_NUMBER: _ClassVar[int]
    SPEC_YAML_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    job: JobSummary
    spec_yaml: str
    records: _containers.RepeatedCompositeFieldContainer[IterationRecord]
    def __init__(self, job: _Optional[_Union[JobSummary, _Mapping]] = ..., spec_yaml: _Optional[str] = ..., records: _Optional[_Iterable[_Union[IterationRecord, _Mapping]]] = ...) -> None: ...

class WatchEvent(_message.Message):
    __slots__ = ("record", "finished")
    RECORD_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    record: IterationRecord
    finished: JobSummary
    def __init__(self, record: _Optional[_Union[IterationRecord, _Mapping]] = ..., finished: _Optional[_Union[JobSummary, _Mapping]] = ...) -> None: ...

class ExportModelResponse(_message.Message):
    __slots__ = ("safetensors", "iteration", "state")
    SAFETENSORS_FIELD_NUMBER: _ClassVar[int]
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    safetensors: bytes
    iteration: int
    state: str
    def __init__(self, safetensors: _Optional[bytes] = ..., iteration: _Optional[int] = ..., state: _Optional[str] = ...) -> None: ...
