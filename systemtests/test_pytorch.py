"""A model exported from the cluster with the Python client runs in PyTorch and
scores on the Fashion-MNIST test set what `newtonps evaluate` says.

The file (Sources/NewtonCore/Model/SavedModel.swift) holds `layers.{i}.weight`
([out, in], PyTorch's layout), `layers.{i}.bias`, and the feature scaler
fitted on the training set as the tensors `scaler.offset` and
`scaler.factor` (x' = (x − offset) · factor, in float32); the metadata names
the layers, hidden activations, loss, scaling and classes. `evaluate` reads
the test IDX files (uint8 pixels as floats, no /255), applies that scaler
and takes the first maximal output as the prediction.
"""

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import load_file  # noqa: E402

from conftest import DATASET  # noqa: E402
from newtonps_client import read_safetensors_header  # noqa: E402

ACTIVATIONS = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}


def read_idx(directory: Path, stem: str) -> np.ndarray:
    """An IDX file (`stem` or `stem.gz`, gzip by its magic bytes) as an array."""
    path = next(p for p in (directory / stem, directory / f"{stem}.gz") if p.exists())
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    zero, kind, dimensions = struct.unpack(">HBB", raw[:4])
    assert zero == 0 and kind == 0x08, f"{path}: only unsigned-byte IDX files are expected here"
    shape = struct.unpack(f">{dimensions}I", raw[4 : 4 + 4 * dimensions])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dimensions).reshape(shape)


def model_from(path: Path):
    """The safetensors file as an nn.Sequential, its scaler and its metadata."""
    metadata = read_safetensors_header(path)["__metadata__"]
    tensors = load_file(str(path))
    layers = [int(n) for n in metadata["layers"].split(",")]
    activations = metadata["activations"].split(",") if metadata["activations"] else []
    assert len(activations) == len(layers) - 2
    modules, state = [], {}
    for i, (n_in, n_out) in enumerate(zip(layers, layers[1:])):
        state[f"{len(modules)}.weight"] = tensors[f"layers.{i}.weight"]
        state[f"{len(modules)}.bias"] = tensors[f"layers.{i}.bias"]
        assert tensors[f"layers.{i}.weight"].shape == (n_out, n_in)
        modules.append(torch.nn.Linear(n_in, n_out))
        if i < len(activations):
            modules.append(ACTIVATIONS[activations[i]]())
    model = torch.nn.Sequential(*modules)
    model.load_state_dict(state, strict=True)
    scaler = {name: tensors[f"scaler.{name}"].numpy() for name in ("offset", "factor")}
    assert {n for n in tensors} == {f"layers.{i}.{p}" for i in range(len(layers) - 1) for p in ("weight", "bias")} | {
        "scaler.offset", "scaler.factor"}
    return model.eval(), scaler, metadata


@pytest.fixture(scope="module")
def exported(cluster, finished_job, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "model.safetensors"
    with cluster.client() as client:
        client.export(finished_job.id, path)
    return path


def test_the_model_file_describes_the_job(exported):
    metadata = read_safetensors_header(exported)["__metadata__"]
    assert metadata == {
        "format": "newtonps-mlp-v1",
        "layers": "784,32,10",
        "activations": "relu",
        "loss": "cross-entropy",
        "scaling": "standard",
        "classes": "\n".join(str(k) for k in range(10)),
    }


def test_the_scaler_is_the_training_sets_standardisation(exported):
    _, scaler, _ = model_from(exported)
    train = read_idx(DATASET, "train-images-idx3-ubyte").reshape(60000, -1).astype(np.float64)
    mean, std = train.mean(axis=0), train.std(axis=0)
    np.testing.assert_allclose(scaler["offset"], mean.astype(np.float32), rtol=1e-6, atol=1e-6)
    constant = train.min(axis=0) == train.max(axis=0)
    expected = np.where(constant, 0, 1 / np.where(constant, 1, std)).astype(np.float32)
    np.testing.assert_allclose(scaler["factor"], expected, rtol=1e-6)


def test_pytorch_accuracy_equals_newtonps_evaluate(cluster, exported, record_property):
    model, scaler, metadata = model_from(exported)
    images = read_idx(DATASET, "t10k-images-idx3-ubyte")
    labels = read_idx(DATASET, "t10k-labels-idx1-ubyte")
    rows = images.shape[0]
    # Exactly evaluate's float32 arithmetic: (x − offset) · factor, each op rounded to float32.
    x = (images.reshape(rows, -1).astype(np.float32) - scaler["offset"]) * scaler["factor"]
    class_of = {name: k for k, name in enumerate(metadata["classes"].split("\n"))}
    y = np.array([class_of[str(int(label))] for label in labels])

    with torch.no_grad():
        outputs = model(torch.from_numpy(x))
        outputs64 = model.double()(torch.from_numpy(x).double())
    correct = int((outputs.argmax(dim=1).numpy() == y).sum())
    correct64 = int((outputs64.argmax(dim=1).numpy() == y).sum())
    mean_loss = float(torch.nn.functional.cross_entropy(outputs64, torch.from_numpy(y)))

    evaluated = json.loads(cluster.cli("evaluate", "--model", exported, "--data", DATASET))
    evaluated_correct = round(evaluated["accuracy"] * evaluated["rows"])
    record_property("pytorch_correct_float32", correct)
    record_property("pytorch_correct_float64", correct64)
    record_property("evaluate_correct", evaluated_correct)
    print(
        f"\nFashion-MNIST test set, {rows} rows: newtonps evaluate {evaluated_correct} correct "
        f"(accuracy {evaluated['accuracy']}, mean loss {evaluated['mean_loss']}); PyTorch float32 {correct}, "
        f"float64 {correct64} (mean loss {mean_loss})"
    )
    assert evaluated["rows"] == rows
    # Same count; one row either way is allowed for a near-tie that float32
    # GEMMs with different summation orders (OpenBLAS vs PyTorch) break apart.
    assert abs(correct - evaluated_correct) <= 1, (correct, evaluated_correct)
    assert mean_loss == pytest.approx(evaluated["mean_loss"], rel=1e-5)
