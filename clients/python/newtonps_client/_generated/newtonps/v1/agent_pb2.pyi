from . import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DecentralisedSettings(_message.Message):
    __slots__ = ("method", "agents", "topology", "time_varying", "surrogate", "tau", "regularizer", "l1_strength", "initial_step", "step_decay", "cg_tolerance", "cg_max_iterations", "subsample", "products", "seed", "total_rows", "regularization")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    TOPOLOGY_FIELD_NUMBER: _ClassVar[int]
    TIME_VARYING_FIELD_NUMBER: _ClassVar[int]
    SURROGATE_FIELD_NUMBER: _ClassVar[int]
    TAU_FIELD_NUMBER: _ClassVar[int]
    REGULARIZER_FIELD_NUMBER: _ClassVar[int]
    L1_STRENGTH_FIELD_NUMBER: _ClassVar[int]
    INITIAL_STEP_FIELD_NUMBER: _ClassVar[int]
    STEP_DECAY_FIELD_NUMBER: _ClassVar[int]
    CG_TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    CG_MAX_ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    SUBSAMPLE_FIELD_NUMBER: _ClassVar[int]
    PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ROWS_FIELD_NUMBER: _ClassVar[int]
    REGULARIZATION_FIELD_NUMBER: _ClassVar[int]
    method: str
    agents: int
    topology: str
    time_varying: str
    surrogate: str
    tau: float
    regularizer: str
    l1_strength: float
    initial_step: float
    step_decay: float
    cg_tolerance: float
    cg_max_iterations: int
    subsample: float
    products: str
    seed: int
    total_rows: int
    regularization: float
    def __init__(self, method: _Optional[str] = ..., agents: _Optional[int] = ..., topology: _Optional[str] = ..., time_varying: _Optional[str] = ..., surrogate: _Optional[str] = ..., tau: _Optional[float] = ..., regularizer: _Optional[str] = ..., l1_strength: _Optional[float] = ..., initial_step: _Optional[float] = ..., step_decay: _Optional[float] = ..., cg_tolerance: _Optional[float] = ..., cg_max_iterations: _Optional[int] = ..., subsample: _Optional[float] = ..., products: _Optional[str] = ..., seed: _Optional[int] = ..., total_rows: _Optional[int] = ..., regularization: _Optional[float] = ...) -> None: ...

class AgentJob(_message.Message):
    __slots__ = ("job_id", "index", "agents", "grid", "data", "row_lower", "row_upper", "shard_rows", "settings", "initial")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    GRID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ROW_LOWER_FIELD_NUMBER: _ClassVar[int]
    ROW_UPPER_FIELD_NUMBER: _ClassVar[int]
    SHARD_ROWS_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    INITIAL_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    index: int
    agents: _containers.RepeatedScalarFieldContainer[str]
    grid: _common_pb2.PartitionGrid
    data: _common_pb2.DataDescriptor
    row_lower: int
    row_upper: int
    shard_rows: int
    settings: DecentralisedSettings
    initial: _common_pb2.Tensor
    def __init__(self, job_id: _Optional[str] = ..., index: _Optional[int] = ..., agents: _Optional[_Iterable[str]] = ..., grid: _Optional[_Union[_common_pb2.PartitionGrid, _Mapping]] = ..., data: _Optional[_Union[_common_pb2.DataDescriptor, _Mapping]] = ..., row_lower: _Optional[int] = ..., row_upper: _Optional[int] = ..., shard_rows: _Optional[int] = ..., settings: _Optional[_Union[DecentralisedSettings, _Mapping]] = ..., initial: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ...) -> None: ...

class AgentStarted(_message.Message):
    __slots__ = ("tau",)
    TAU_FIELD_NUMBER: _ClassVar[int]
    tau: float
    def __init__(self, tau: _Optional[float] = ...) -> None: ...

class AgentRoundRequest(_message.Message):
    __slots__ = ("job_id", "round", "alpha")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    round: int
    alpha: float
    def __init__(self, job_id: _Optional[str] = ..., round: _Optional[int] = ..., alpha: _Optional[float] = ...) -> None: ...

class AgentRoundReport(_message.Message):
    __slots__ = ("weights", "sparse", "cg_iterations", "bytes_sent", "phase_s")
    class PhaseSEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    SPARSE_FIELD_NUMBER: _ClassVar[int]
    CG_ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    PHASE_S_FIELD_NUMBER: _ClassVar[int]
    weights: _common_pb2.Tensor
    sparse: _common_pb2.Tensor
    cg_iterations: int
    bytes_sent: int
    phase_s: _containers.ScalarMap[str, float]
    def __init__(self, weights: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., sparse: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., cg_iterations: _Optional[int] = ..., bytes_sent: _Optional[int] = ..., phase_s: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ExchangeRequest(_message.Message):
    __slots__ = ("job_id", "round", "sender", "vectors")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    round: int
    sender: int
    vectors: _containers.RepeatedCompositeFieldContainer[_common_pb2.Tensor]
    def __init__(self, job_id: _Optional[str] = ..., round: _Optional[int] = ..., sender: _Optional[int] = ..., vectors: _Optional[_Iterable[_Union[_common_pb2.Tensor, _Mapping]]] = ...) -> None: ...
