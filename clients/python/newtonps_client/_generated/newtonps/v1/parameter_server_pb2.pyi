from . import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AssignRequest(_message.Message):
    __slots__ = ("job_id", "grid", "blocks", "weights")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    GRID_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    grid: _common_pb2.PartitionGrid
    blocks: _containers.RepeatedScalarFieldContainer[int]
    weights: _containers.RepeatedCompositeFieldContainer[_common_pb2.Tensor]
    def __init__(self, job_id: _Optional[str] = ..., grid: _Optional[_Union[_common_pb2.PartitionGrid, _Mapping]] = ..., blocks: _Optional[_Iterable[int]] = ..., weights: _Optional[_Iterable[_Union[_common_pb2.Tensor, _Mapping]]] = ...) -> None: ...

class BlockTensors(_message.Message):
    __slots__ = ("blocks", "values")
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    blocks: _containers.RepeatedScalarFieldContainer[int]
    values: _containers.RepeatedCompositeFieldContainer[_common_pb2.Tensor]
    def __init__(self, blocks: _Optional[_Iterable[int]] = ..., values: _Optional[_Iterable[_Union[_common_pb2.Tensor, _Mapping]]] = ...) -> None: ...

class ReadRequest(_message.Message):
    __slots__ = ("vector", "blocks", "held_versions")
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    HELD_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    vector: str
    blocks: _containers.RepeatedScalarFieldContainer[int]
    held_versions: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, vector: _Optional[str] = ..., blocks: _Optional[_Iterable[int]] = ..., held_versions: _Optional[_Iterable[int]] = ...) -> None: ...

class ReadResponse(_message.Message):
    __slots__ = ("changed", "versions")
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    changed: BlockTensors
    versions: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, changed: _Optional[_Union[BlockTensors, _Mapping]] = ..., versions: _Optional[_Iterable[int]] = ...) -> None: ...

class WriteRequest(_message.Message):
    __slots__ = ("vector", "values")
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    vector: str
    values: BlockTensors
    def __init__(self, vector: _Optional[str] = ..., values: _Optional[_Union[BlockTensors, _Mapping]] = ...) -> None: ...

class VectorTerm(_message.Message):
    __slots__ = ("coefficient", "vector")
    COEFFICIENT_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    coefficient: float
    vector: str
    def __init__(self, coefficient: _Optional[float] = ..., vector: _Optional[str] = ...) -> None: ...

class VectorOp(_message.Message):
    __slots__ = ("combine", "fill", "dot", "adam", "multiply", "power")
    class Combine(_message.Message):
        __slots__ = ("target", "terms")
        TARGET_FIELD_NUMBER: _ClassVar[int]
        TERMS_FIELD_NUMBER: _ClassVar[int]
        target: str
        terms: _containers.RepeatedCompositeFieldContainer[VectorTerm]
        def __init__(self, target: _Optional[str] = ..., terms: _Optional[_Iterable[_Union[VectorTerm, _Mapping]]] = ...) -> None: ...
    class Fill(_message.Message):
        __slots__ = ("target", "value")
        TARGET_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        target: str
        value: float
        def __init__(self, target: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class Dot(_message.Message):
        __slots__ = ("a", "b")
        A_FIELD_NUMBER: _ClassVar[int]
        B_FIELD_NUMBER: _ClassVar[int]
        a: str
        b: str
        def __init__(self, a: _Optional[str] = ..., b: _Optional[str] = ...) -> None: ...
    class Adam(_message.Message):
        __slots__ = ("learning_rate", "beta1", "beta2", "epsilon", "step", "weights", "gradient", "first_moment", "second_moment")
        LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
        BETA1_FIELD_NUMBER: _ClassVar[int]
        BETA2_FIELD_NUMBER: _ClassVar[int]
        EPSILON_FIELD_NUMBER: _ClassVar[int]
        STEP_FIELD_NUMBER: _ClassVar[int]
        WEIGHTS_FIELD_NUMBER: _ClassVar[int]
        GRADIENT_FIELD_NUMBER: _ClassVar[int]
        FIRST_MOMENT_FIELD_NUMBER: _ClassVar[int]
        SECOND_MOMENT_FIELD_NUMBER: _ClassVar[int]
        learning_rate: float
        beta1: float
        beta2: float
        epsilon: float
        step: int
        weights: str
        gradient: str
        first_moment: str
        second_moment: str
        def __init__(self, learning_rate: _Optional[float] = ..., beta1: _Optional[float] = ..., beta2: _Optional[float] = ..., epsilon: _Optional[float] = ..., step: _Optional[int] = ..., weights: _Optional[str] = ..., gradient: _Optional[str] = ..., first_moment: _Optional[str] = ..., second_moment: _Optional[str] = ...) -> None: ...
    class Multiply(_message.Message):
        __slots__ = ("target", "a", "b")
        TARGET_FIELD_NUMBER: _ClassVar[int]
        A_FIELD_NUMBER: _ClassVar[int]
        B_FIELD_NUMBER: _ClassVar[int]
        target: str
        a: str
        b: str
        def __init__(self, target: _Optional[str] = ..., a: _Optional[str] = ..., b: _Optional[str] = ...) -> None: ...
    class Power(_message.Message):
        __slots__ = ("target", "source", "scale", "shift", "exponent")
        TARGET_FIELD_NUMBER: _ClassVar[int]
        SOURCE_FIELD_NUMBER: _ClassVar[int]
        SCALE_FIELD_NUMBER: _ClassVar[int]
        SHIFT_FIELD_NUMBER: _ClassVar[int]
        EXPONENT_FIELD_NUMBER: _ClassVar[int]
        target: str
        source: str
        scale: float
        shift: float
        exponent: float
        def __init__(self, target: _Optional[str] = ..., source: _Optional[str] = ..., scale: _Optional[float] = ..., shift: _Optional[float] = ..., exponent: _Optional[float] = ...) -> None: ...
    COMBINE_FIELD_NUMBER: _ClassVar[int]
    FILL_FIELD_NUMBER: _ClassVar[int]
    DOT_FIELD_NUMBER: _ClassVar[int]
    ADAM_FIELD_NUMBER: _ClassVar[int]
    MULTIPLY_FIELD_NUMBER: _ClassVar[int]
    POWER_FIELD_NUMBER: _ClassVar[int]
    combine: VectorOp.Combine
    fill: VectorOp.Fill
    dot: VectorOp.Dot
    adam: VectorOp.Adam
    multiply: VectorOp.Multiply
    power: VectorOp.Power
    def __init__(self, combine: _Optional[_Union[VectorOp.Combine, _Mapping]] = ..., fill: _Optional[_Union[VectorOp.Fill, _Mapping]] = ..., dot: _Optional[_Union[VectorOp.Dot, _Mapping]] = ..., adam: _Optional[_Union[VectorOp.Adam, _Mapping]] = ..., multiply: _Optional[_Union[VectorOp.Multiply, _Mapping]] = ..., power: _Optional[_Union[VectorOp.Power, _Mapping]] = ...) -> None: ...

class RunRequest(_message.Message):
    __slots__ = ("program",)
    PROGRAM_FIELD_NUMBER: _ClassVar[int]
    program: _containers.RepeatedCompositeFieldContainer[VectorOp]
    def __init__(self, program: _Optional[_Iterable[_Union[VectorOp, _Mapping]]] = ...) -> None: ...

class BlockDots(_message.Message):
    __slots__ = ("block", "values")
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    block: int
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, block: _Optional[int] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class RunResponse(_message.Message):
    __slots__ = ("blocks",)
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    blocks: _containers.RepeatedCompositeFieldContainer[BlockDots]
    def __init__(self, blocks: _Optional[_Iterable[_Union[BlockDots, _Mapping]]] = ...) -> None: ...

class BeginSumRequest(_message.Message):
    __slots__ = ("vector", "shards", "round")
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    vector: str
    shards: int
    round: int
    def __init__(self, vector: _Optional[str] = ..., shards: _Optional[int] = ..., round: _Optional[int] = ...) -> None: ...

class PushRequest(_message.Message):
    __slots__ = ("vector", "shard", "values", "job_id", "round")
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    vector: str
    shard: int
    values: BlockTensors
    job_id: str
    round: int
    def __init__(self, vector: _Optional[str] = ..., shard: _Optional[int] = ..., values: _Optional[_Union[BlockTensors, _Mapping]] = ..., job_id: _Optional[str] = ..., round: _Optional[int] = ...) -> None: ...

class FinishSumRequest(_message.Message):
    __slots__ = ("vector",)
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    vector: str
    def __init__(self, vector: _Optional[str] = ...) -> None: ...

class BeginJacobianRequest(_message.Message):
    __slots__ = ("rows", "round")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    rows: int
    round: int
    def __init__(self, rows: _Optional[int] = ..., round: _Optional[int] = ...) -> None: ...

class PushJacobianRequest(_message.Message):
    __slots__ = ("row_offset", "blocks", "inputs", "packed_slices", "outputs", "job_id", "round")
    ROW_OFFSET_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    PACKED_SLICES_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    row_offset: int
    blocks: _containers.RepeatedScalarFieldContainer[int]
    inputs: _containers.RepeatedCompositeFieldContainer[_common_pb2.Tensor]
    packed_slices: _containers.RepeatedCompositeFieldContainer[PackedSlice]
    outputs: _common_pb2.Tensor
    job_id: str
    round: int
    def __init__(self, row_offset: _Optional[int] = ..., blocks: _Optional[_Iterable[int]] = ..., inputs: _Optional[_Iterable[_Union[_common_pb2.Tensor, _Mapping]]] = ..., packed_slices: _Optional[_Iterable[_Union[PackedSlice, _Mapping]]] = ..., outputs: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., job_id: _Optional[str] = ..., round: _Optional[int] = ...) -> None: ...

class PackedSlice(_message.Message):
    __slots__ = ("kept_columns", "values")
    KEPT_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    kept_columns: bytes
    values: _common_pb2.Tensor
    def __init__(self, kept_columns: _Optional[bytes] = ..., values: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ...) -> None: ...

class JacobianProductRequest(_message.Message):
    __slots__ = ("vector", "first")
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    FIRST_FIELD_NUMBER: _ClassVar[int]
    vector: str
    first: _containers.RepeatedCompositeFieldContainer[VectorOp]
    def __init__(self, vector: _Optional[str] = ..., first: _Optional[_Iterable[_Union[VectorOp, _Mapping]]] = ...) -> None: ...

class JacobianTransposeRequest(_message.Message):
    __slots__ = ("u", "vector", "then")
    U_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    THEN_FIELD_NUMBER: _ClassVar[int]
    u: _common_pb2.Tensor
    vector: str
    then: _containers.RepeatedCompositeFieldContainer[VectorOp]
    def __init__(self, u: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., vector: _Optional[str] = ..., then: _Optional[_Iterable[_Union[VectorOp, _Mapping]]] = ...) -> None: ...

class BlockSolveRequest(_message.Message):
    __slots__ = ("block", "generation", "right_hand_side", "solution", "residual", "damping", "curvature_scale", "tolerance", "max_iterations")
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    RIGHT_HAND_SIDE_FIELD_NUMBER: _ClassVar[int]
    SOLUTION_FIELD_NUMBER: _ClassVar[int]
    RESIDUAL_FIELD_NUMBER: _ClassVar[int]
    DAMPING_FIELD_NUMBER: _ClassVar[int]
    CURVATURE_SCALE_FIELD_NUMBER: _ClassVar[int]
    TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    MAX_ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    block: int
    generation: int
    right_hand_side: str
    solution: str
    residual: str
    damping: float
    curvature_scale: float
    tolerance: float
    max_iterations: int
    def __init__(self, block: _Optional[int] = ..., generation: _Optional[int] = ..., right_hand_side: _Optional[str] = ..., solution: _Optional[str] = ..., residual: _Optional[str] = ..., damping: _Optional[float] = ..., curvature_scale: _Optional[float] = ..., tolerance: _Optional[float] = ..., max_iterations: _Optional[int] = ...) -> None: ...

class BlockSolveReport(_message.Message):
    __slots__ = ("block", "iterations", "outcome")
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    block: int
    iterations: int
    outcome: str
    def __init__(self, block: _Optional[int] = ..., iterations: _Optional[int] = ..., outcome: _Optional[str] = ...) -> None: ...

class StopSolvesRequest(_message.Message):
    __slots__ = ("generation",)
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    generation: int
    def __init__(self, generation: _Optional[int] = ...) -> None: ...
