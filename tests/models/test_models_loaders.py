"""Every loader round-trips: the loaded adapter answers like the original model."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bastion.core.errors import (
    BastionError,
    ConfigError,
    InvalidInputError,
    UnsafeArtifactError,
    UnsupportedFormatError,
)
from bastion.core.model import InputSpec
from bastion.models.adapters import SklearnAdapter, TorchAdapter
from bastion.models.loaders import OnnxAdapter, detect_format, load_model, load_skops, model_info

SPEC = InputSpec((1, 8, 8), clip_min=0.0, clip_max=1.0)


@pytest.mark.parametrize("fmt", ["torchscript", "torch-export", "onnx"])
def test_torch_formats_round_trip(fmt: str, saved_models: dict[str, Path], tiny_cnn: nn.Module) -> None:
    x = torch.rand(7, 1, 8, 8)
    with torch.no_grad():
        expected = torch.softmax(tiny_cnn(x), 1).numpy()

    model = load_model(saved_models[fmt], input_spec=InputSpec((1, 8, 8)), clip_min=0.0, clip_max=1.0)

    assert detect_format(saved_models[fmt]) == fmt
    assert isinstance(model, TorchAdapter), "all three formats give white-box access"
    np.testing.assert_allclose(model.predict_proba(x.numpy()), expected, atol=1e-5)
    info = model_info(model)
    assert info.format == fmt and info.sha256 and len(info.sha256) == 64
    assert info.extra["scan"]["verdict"] == "safe"
    assert model.input_spec.clip_min == 0.0 and model.input_spec.clip_max == 1.0
    assert model.n_classes == 3


def test_onnx_and_pt2_know_their_input_shape(saved_models: dict[str, Path]) -> None:
    for fmt in ("onnx", "torch-export"):
        assert load_model(saved_models[fmt]).input_spec.shape == (1, 8, 8)
    with pytest.raises(ConfigError, match="input shape"):
        load_model(saved_models["torchscript"])  # TorchScript carries no shape: needs data or a sidecar


def test_sidecar_gives_spec_and_range(saved_models: dict[str, Path], tmp_path: Path) -> None:
    model_file = tmp_path / "cnn.pt"
    model_file.write_bytes(saved_models["torchscript"].read_bytes())
    (tmp_path / "cnn.bastion.json").write_text(json.dumps({"input_shape": [1, 8, 8], "clip_min": 0, "clip_max": 1}))

    model = load_model(model_file)

    assert model.input_spec == InputSpec((1, 8, 8), clip_min=0.0, clip_max=1.0, range_source="sidecar")
    assert model_info(model).extra["sidecar"].endswith("cnn.bastion.json")


def test_static_batch_export_runs_any_batch(tiny_cnn: nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "static.pt2"
    torch.export.save(torch.export.export(tiny_cnn, (torch.rand(4, 1, 8, 8),)), str(path))
    x = torch.rand(10, 1, 8, 8)

    model = load_model(path)

    with torch.no_grad():
        np.testing.assert_allclose(model.predict_proba(x.numpy()), torch.softmax(tiny_cnn(x), 1).numpy(), atol=1e-5)


def test_probability_outputs_become_logits(tmp_path: Path) -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 4), nn.Softmax(dim=1)).eval()
    path = tmp_path / "softmax.pt"
    torch.jit.save(torch.jit.script(net), str(path))
    x = torch.rand(5, 1, 8, 8)

    model = load_model(path, input_spec=SPEC)

    assert isinstance(model, TorchAdapter)
    np.testing.assert_allclose(model.predict_proba(x.numpy()), net(x).detach().numpy(), atol=1e-5)
    assert "probabilities" in model.info["outputs"]


def test_skops_round_trip_and_allowlist(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_breast_cancer(return_X_y=True)
    est = make_pipeline(StandardScaler(), GradientBoostingClassifier(n_estimators=10, random_state=0)).fit(x, y)
    path = tmp_path / "gb.skops"
    sio.dump(est, path)

    model = load_model(path)

    assert isinstance(model, SklearnAdapter) and model_info(model).format == "skops"
    assert model.input_spec.shape == (30,)
    np.testing.assert_allclose(model.predict_proba(x[:9].astype(np.float32)), est.predict_proba(x[:9].astype(np.float32)))


def test_skops_with_a_function_outside_the_allowlist_is_refused(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    x = np.random.default_rng(0).normal(size=(30, 3))
    est = make_pipeline(FunctionTransformer(np.sort), LogisticRegression()).fit(x, np.arange(30) % 2)
    path = tmp_path / "odd.skops"
    sio.dump(est, path)

    with pytest.raises(UnsafeArtifactError, match=r"allowlist: numpy\.sort"):
        load_model(path)
    assert isinstance(load_skops(path, trusted_types=["numpy.sort"]).steps[1][1], LogisticRegression)


def test_joblib_goes_through_the_restricted_loader(tmp_path: Path) -> None:
    import joblib
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(1).normal(size=(40, 5)).astype(np.float32)
    est = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    path = tmp_path / "lr.joblib"
    joblib.dump(est, path)

    model = load_model(path)

    assert isinstance(model, SklearnAdapter) and model_info(model).format == "joblib"
    np.testing.assert_allclose(model.predict_proba(x), est.predict_proba(x))


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_never_loaded(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(_Payload(marker)))

    with pytest.raises(UnsafeArtifactError):
        load_model(path)

    assert not marker.exists()


@pytest.mark.parametrize(
    ("name", "content", "error", "message"),
    [
        ("missing.pt", None, InvalidInputError, "does not exist"),
        ("model.xyz", b"hello world", UnsupportedFormatError, "cannot tell the model format"),
        ("model.zip", b"PK\x03\x04garbage", UnsupportedFormatError, "zip"),
        ("model.onnx", b"\x08\x07not really onnx", BastionError, "onnx"),
    ],
)
def test_bad_model_files(tmp_path: Path, name: str, content: bytes | None, error: type, message: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=f"(?i){message}"):
        load_model(path, input_spec=SPEC)


@pytest.mark.parametrize("legacy", [False, True])
def test_torch_save_checkpoint_is_explained(tmp_path: Path, legacy: bool) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save(nn.Linear(2, 2).state_dict(), path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(UnsupportedFormatError, match=r"torch\.save"):
        load_model(path, input_spec=InputSpec((2,)))


def test_safetensors_weights_are_explained(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({"w": torch.zeros(2, 2)}, str(path))
    with pytest.raises(UnsupportedFormatError, match="weights only"):
        load_model(path, input_spec=InputSpec((2,)))


def test_query_budget_needs_an_endpoint(saved_models: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="endpoint"):
        load_model(saved_models["onnx"], query_budget=10)


def test_black_box_onnx_when_white_box_is_off(saved_models: dict[str, Path]) -> None:
    model = load_model(saved_models["onnx"], white_box=False)
    assert isinstance(model, OnnxAdapter)
    assert model.predict_proba(np.zeros((3, 1, 8, 8), dtype=np.float32)).shape == (3, 3)
