"""The input-range resolver: flag > sidecar > model metadata > inferred from data, stated everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn

from bastion.assess.target import build_target
from bastion.cli.main import main
from bastion.core.domain import InputRangeError, infer_range, resolve_range
from bastion.core.errors import ConfigError
from bastion.core.model import InputSpec
from bastion.defenses.specs import load_training_data
from bastion.models.loaders import TORCHSCRIPT_META, load_model

IMG = (4, 1, 8, 8)


# --- inference rules -----------------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(arrays(np.float32, IMG, elements=st.floats(0, 1, width=32)))
def test_image_data_within_unit_interval_is_zero_one(x: np.ndarray) -> None:
    r = infer_range(x, image=True)
    assert (r.clip_min, r.clip_max, r.source) == (0.0, 1.0, "inferred from data")


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, IMG, elements=st.integers(0, 255)).filter(lambda a: a.max() > 127))
def test_eight_bit_images_are_zero_255(x: np.ndarray) -> None:
    r = infer_range(x, image=True)
    assert (r.clip_min, r.clip_max) == (0.0, 255.0)
    assert "integer-valued" in r.detail


def test_symmetric_images_are_minus_one_one() -> None:
    x = np.random.default_rng(0).random(IMG).astype(np.float32) * 2 - 1
    r = infer_range(x, image=True)
    assert (r.clip_min, r.clip_max) == (-1.0, 1.0)


def test_standardised_images_are_refused_with_the_flags_to_pass() -> None:
    x = np.random.default_rng(0).standard_normal((50, 1, 28, 28)).astype(np.float32)
    with pytest.raises(InputRangeError, match="looks standardised") as info:
        infer_range(x, image=True)
    assert "--clip-min" in str(info.value) and "--clip-max" in str(info.value)


def test_ambiguous_small_integer_images_are_refused() -> None:
    x = np.random.default_rng(0).integers(0, 17, size=IMG).astype(np.float32)  # sklearn digits' raw 0..16
    with pytest.raises(InputRangeError, match="no pixel convention"):
        infer_range(x, image=True)


def test_tabular_data_is_unbounded_whatever_its_values() -> None:
    r = infer_range(np.random.default_rng(0).random((30, 5)), image=False)
    assert (r.clip_min, r.clip_max, r.detail) == (None, None, "tabular data")


def test_several_splits_are_read_together() -> None:
    a, b = np.zeros((3, 1, 4, 4)), np.full((3, 1, 4, 4), 200.0)
    assert infer_range([a, b], image=True).clip_max == 255.0


# --- precedence ----------------------------------------------------------------------------------------------

def test_precedence_flag_sidecar_model_data() -> None:
    data = np.random.default_rng(0).random(IMG)
    assert resolve_range(flag=(0, 1), sidecar=(0, 2), model=(0, 3), data=data, image=True).source == "flag"
    r = resolve_range(sidecar=(0, 2), model=(0, 3), data=data, image=True)
    assert (r.clip_max, r.source) == (2.0, "sidecar")
    r = resolve_range(model=(0, 3), data=data, image=True)
    assert (r.clip_max, r.source) == (3.0, "model")
    assert resolve_range(data=data, image=True).source == "inferred from data"


def test_one_flag_fills_in_the_other_bound_from_the_next_source() -> None:
    r = resolve_range(flag=(None, 5.0), sidecar=(0.0, 1.0))
    assert (r.clip_min, r.clip_max) == (0.0, 5.0)
    assert r.source == "clip_min: sidecar, clip_max: flag"


def test_empty_range_is_an_error() -> None:
    with pytest.raises(ConfigError, match="empty"):
        resolve_range(flag=(1.0, 0.0))


# --- loaders and targets -------------------------------------------------------------------------------------

def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 64, 3)).eval()


def _npz(path: Path, x: np.ndarray) -> Path:
    y = np.arange(len(x)) % 3
    np.savez(path, x=x.astype(np.float32), y=y)
    return path


def test_torchscript_extra_file_is_model_metadata(tmp_path: Path) -> None:
    p = tmp_path / "m.pt"
    meta = {"input_spec": {"shape": [1, 8, 8], "clip_min": -1, "clip_max": 1}}
    torch.jit.save(torch.jit.script(_net()), str(p), _extra_files={TORCHSCRIPT_META: json.dumps(meta)})
    spec = load_model(p, input_spec=InputSpec((1, 8, 8))).input_spec
    assert (spec.clip_min, spec.clip_max, spec.range_source) == (-1.0, 1.0, "model")
    (tmp_path / "m.bastion.json").write_text(json.dumps({"input_shape": [1, 8, 8], "clip_min": 0, "clip_max": 2}))
    spec = load_model(p).input_spec
    assert (spec.clip_max, spec.range_source) == (2.0, "sidecar"), "a sidecar beats the file's own metadata"
    spec = load_model(p, clip_min=0.0, clip_max=9.0).input_spec
    assert (spec.clip_max, spec.range_source) == (9.0, "flag")


def test_onnx_metadata_props_are_model_metadata(tmp_path: Path) -> None:
    p = tmp_path / "m.onnx"
    torch.onnx.export(_net(), (torch.rand(2, 1, 8, 8),), str(p), dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "n"}})
    m = onnx.load(str(p))
    onnx.helper.set_model_props(m, {"clip_min": "0", "clip_max": "255"})
    onnx.save(m, str(p))
    spec = load_model(p).input_spec
    assert (spec.clip_min, spec.clip_max, spec.range_source) == (0.0, 255.0, "model")


def test_no_sidecar_image_target_infers_and_says_so(tmp_path: Path) -> None:
    p = tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(_net()), str(p))
    data = _npz(tmp_path / "d.npz", np.random.default_rng(0).random((20, 1, 8, 8)))

    t = build_target(model=p, data=data)

    rng = t.describe()["input_range"]
    assert (rng["clip_min"], rng["clip_max"], rng["source"]) == (0.0, 1.0, "inferred from data")
    assert t.model.input_spec.range_source == "inferred from data"
    assert t.input_range().describe() == "input range [0, 1] (inferred from data)"


def test_standardised_target_without_flags_is_refused_then_accepted_with_flags(tmp_path: Path) -> None:
    p = tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(_net()), str(p))
    x = (np.random.default_rng(0).random((20, 1, 8, 8)) - 0.5) / 0.25
    data = _npz(tmp_path / "d.npz", x)
    with pytest.raises(InputRangeError, match="clip-min"):
        build_target(model=p, data=data)
    t = build_target(model=p, data=data, clip_min=-2.0, clip_max=2.0)
    assert t.input_range().source == "flag"


def test_training_data_range_is_resolved_too(tmp_path: Path) -> None:
    data = _npz(tmp_path / "d.npz", np.random.default_rng(0).integers(0, 256, (20, 1, 8, 8)))
    td = load_training_data(str(data))
    assert (td.clip_min, td.clip_max, td.range_source) == (0.0, 255.0, "inferred from data")
    assert load_training_data("demo:digits").range_source == "model"
    assert load_training_data(None, demo="digits", clip_min=0.0, clip_max=2.0).range_source == "flag"


# --- the CLI: text, JSON, dry run, and perturbations that stay in range --------------------------------------

def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def test_attack_evasion_stays_in_the_inferred_range_and_reports_it(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(_net()), str(p))
    rng = np.random.default_rng(1)
    x = rng.random((30, 1, 8, 8))
    x[:, :, :2] = rng.choice([0.0, 1.0], size=(30, 1, 2, 8))  # pixels at both ends: an unclipped attack leaves
    data = _npz(tmp_path / "d.npz", x)
    adv = tmp_path / "adv.npz"

    code, stdout, err = run_cli(["attack", "evasion", "--model", str(p), "--data", str(data), "--eps", "0.3",
                                 "--save-adv", str(adv), "--format", "json"], capsys)

    assert code == 0, err
    out = json.loads(stdout)
    assert out["input_range"]["source"] == "inferred from data"
    assert out["params"]["input_range"]["clip_max"] == 1.0
    x_adv = np.load(adv)["x_adv"]
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert np.abs(x_adv - np.load(adv)["x"]).max() > 0.01, "the attack moved something"


def test_assess_dry_run_shows_the_resolved_range_and_runs_nothing(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(_net()), str(p))
    data = _npz(tmp_path / "d.npz", np.random.default_rng(0).integers(0, 256, (20, 1, 8, 8)))

    code, stdout, err = run_cli(["assess", "--model", str(p), "--data", str(data), "--only", "evasion",
                                 "--dry-run", "--format", "json"], capsys)

    assert code == 0, err
    plan = json.loads(stdout)
    assert plan["input_range"]["clip_max"] == 255.0 and plan["input_range"]["source"] == "inferred from data"
    curve = next(c for c in plan["checks"] if c["id"] == "evasion.robustness_curve")
    assert curve["settings"]["reference_eps"] == pytest.approx(25.5)
    assert not (tmp_path / "rep").exists()
    code, stdout, _ = run_cli(["assess", "--model", str(p), "--data", str(data), "--dry-run"], capsys)
    assert code == 0 and "[0, 255] (inferred from data)" in stdout


def test_cli_conventions_version_short_help_and_only_prefix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bastion import __version__

    for args in (["--version"], ["version"]):
        code, stdout, _ = run_cli(args, capsys)
        assert code == 0 and stdout.strip() == f"bastion {__version__}"
    code, stdout, _ = run_cli(["attack", "evasion", "-h"], capsys)
    assert code == 0 and "--eps" in stdout
    p = tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(_net()), str(p))
    data = _npz(tmp_path / "d.npz", np.random.default_rng(0).random((20, 1, 8, 8)))
    code, stdout, _ = run_cli(["assess", "--model", str(p), "--data", str(data), "--only", "evasion.robust",
                               "--dry-run", "--format", "json"], capsys)
    assert code == 0 and [c["id"] for c in json.loads(stdout)["checks"]] == ["evasion.robustness_curve"]


def test_demo_data_is_one_spelling_everywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bastion.data.arrays import load_labelled
    from bastion.datasets.files import read_data_file

    a, b = read_data_file("demo:digits"), read_data_file("builtin:digits")
    assert a.path == b.path == "demo:digits" and a.sha256 == b.sha256 and a.sample_shape == (1, 8, 8)
    assert load_labelled("builtin:wine")[0].x_train is not None
    with pytest.raises(Exception, match="unknown demo data set"):
        read_data_file("demo:cifar")
    p = tmp_path / "m.pt"
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    torch.jit.save(torch.jit.script(net), str(p))
    code, stdout, err = run_cli(["assess", "--model", str(p), "--data", "demo:digits", "--dry-run", "--format", "json"],
                                capsys)
    assert code == 0, err
    plan = json.loads(stdout)
    assert plan["target"]["data_path"] == "demo:digits" and plan["input_range"]["clip_max"] == 1.0
