from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Tensor(_message.Message):
    __slots__ = ("shape", "data")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NetworkSpec(_message.Message):
    __slots__ = ("layer_sizes", "hidden_activations", "loss")
    LAYER_SIZES_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_ACTIVATIONS_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    layer_sizes: _containers.RepeatedScalarFieldContainer[int]
    hidden_activations: _containers.RepeatedScalarFieldContainer[str]
    loss: str
    def __init__(self, layer_sizes: _Optional[_Iterable[int]] = ..., hidden_activations: _Optional[_Iterable[str]] = ..., loss: _Optional[str] = ...) -> None: ...

class GroupSizes(_message.Message):
    __slots__ = ("sizes",)
    SIZES_FIELD_NUMBER: _ClassVar[int]
    sizes: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, sizes: _Optional[_Iterable[int]] = ...) -> None: ...

class PartitionGrid(_message.Message):
    __slots__ = ("network", "group_sizes")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    GROUP_SIZES_FIELD_NUMBER: _ClassVar[int]
    network: NetworkSpec
    group_sizes: _containers.RepeatedCompositeFieldContainer[GroupSizes]
    def __init__(self, network: _Optional[_Union[NetworkSpec, _Mapping]] = ..., group_sizes: _Optional[_Iterable[_Union[GroupSizes, _Mapping]]] = ...) -> None: ...

class DataDescriptor(_message.Message):
    __slots__ = ("files", "synthetic", "scaling")
    FILES_FIELD_NUMBER: _ClassVar[int]
    SYNTHETIC_FIELD_NUMBER: _ClassVar[int]
    SCALING_FIELD_NUMBER: _ClassVar[int]
    files: FileData
    synthetic: SyntheticData
    scaling: str
    def __init__(self, files: _Optional[_Union[FileData, _Mapping]] = ..., synthetic: _Optional[_Union[SyntheticData, _Mapping]] = ..., scaling: _Optional[str] = ...) -> None: ...

class FileData(_message.Message):
    __slots__ = ("format", "train", "test", "csv_label_column", "csv_header")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    TRAIN_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    CSV_LABEL_COLUMN_FIELD_NUMBER: _ClassVar[int]
    CSV_HEADER_FIELD_NUMBER: _ClassVar[int]
    format: str
    train: str
    test: str
    csv_label_column: int
    csv_header: bool
    def __init__(self, format: _Optional[str] = ..., train: _Optional[str] = ..., test: _Optional[str] = ..., csv_label_column: _Optional[int] = ..., csv_header: _Optional[bool] = ...) -> None: ...

class SyntheticData(_message.Message):
    __slots__ = ("train_rows", "test_rows", "features", "classes", "seed")
    TRAIN_ROWS_FIELD_NUMBER: _ClassVar[int]
    TEST_ROWS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    train_rows: int
    test_rows: int
    features: int
    classes: int
    seed: int
    def __init__(self, train_rows: _Optional[int] = ..., test_rows: _Optional[int] = ..., features: _Optional[int] = ..., classes: _Optional[int] = ..., seed: _Optional[int] = ...) -> None: ...
