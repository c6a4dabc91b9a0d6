"""The privacy checks through the registry: metrics, plots, controls, and the DP-claim finding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from bastion.assess.checks.privacy import EXTRACTION_CONTROLS, INVERSION_CONTROLS, MEMBERSHIP_CONTROLS
from bastion.assess.registry import CheckContext, get_check
from bastion.core.errors import ConfigError
from bastion.core.model import InputSpec
from bastion.core.severity import Severity, Status
from bastion.core.target import DataSplits, Target
from bastion.models.zoo import demo_target


def test_atlas_ids_exist(shared_dir: Path) -> None:
    atlas = yaml.safe_load((shared_dir / "data/mitre-atlas/ATLAS.yaml").read_text())
    ids = {t["id"] for m in atlas["matrices"] for t in m.get("techniques", [])}
    for ctl in {*MEMBERSHIP_CONTROLS, *EXTRACTION_CONTROLS, *INVERSION_CONTROLS}:
        if ctl.startswith("mitre-atlas:"):
            assert ctl.split(":", 1)[1] in ids


@pytest.mark.parametrize("check_id", ["privacy.membership", "privacy.extraction"])
def test_quick_checks_on_the_digits_demo(check_id: str) -> None:
    target = demo_target("digits")
    check = get_check(check_id)
    assert check.applies(target)
    res = check.run(target, CheckContext(profile="quick", options={"extraction_budget": 300, "n_reference": 8,
                                                                       "time_budget": 20}))
    key = "auc" if check_id == "privacy.membership" else "fidelity"
    assert 0.0 <= res.metrics[key] <= 1.0
    assert res.artifacts and all(b.startswith(b"\x89PNG") for b in res.artifacts.values())
    assert res.controls and all(f.controls for f in res.findings)
    json.dumps(res.to_dict())  # plain JSON


class _Memoriser:
    """Answers members with certainty and everything else uniformly: a perfect membership leak."""

    def __init__(self, members: np.ndarray, labels: np.ndarray) -> None:
        self._known = {m.tobytes(): int(y) for m, y in zip(members, labels, strict=True)}
        self._spec = InputSpec((4,))

    @property
    def n_classes(self) -> int:
        return 2

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        out = np.full((len(x), 2), 0.5)
        for i, row in enumerate(np.asarray(x, dtype=np.float32)):
            y = self._known.get(row.tobytes())
            if y is not None:
                out[i] = 0.01
                out[i, y] = 0.99
        return out


def test_dp_claim_violation_is_critical(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1200, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model_path = tmp_path / "m.pt"
    model_path.write_bytes(b"not read by the check")
    (tmp_path / "m.pt.privacy.json").write_text(json.dumps({
        "epsilon": 0.5, "delta": 1e-5, "target_epsilon": 0.5, "noise_multiplier": 3.0, "max_grad_norm": 1.0,
        "sample_rate": 0.1, "epochs": 1, "steps": 10, "dataset_size": 200, "accountant": "prv"}))
    target = Target("leaky", _Memoriser(x[:200], y[:200]),
                    DataSplits(x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:]),
                    model_path=str(model_path))
    res = get_check("privacy.membership").run(target, CheckContext(profile="quick", options={"n_reference": 8,
                                                                                             "time_budget": 20}))
    assert res.metrics["claimed_epsilon"] == 0.5
    assert res.metrics["empirical_epsilon_lower_bound"] > 0.5
    assert res.status == Status.FAIL
    assert any(f.id == "privacy.membership.dp_claim_violated" and f.severity == Severity.CRITICAL
               for f in res.findings)
    assert all("bastion harden dp" in f.recommendation for f in res.findings)


def test_thorough_membership_runs_online_lira_without_population() -> None:
    import torch
    from torch import nn

    from bastion.models.adapters import TorchAdapter
    from bastion.models.zoo import TrainConfig, train_classifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 10)).astype(np.float32)
    y = ((x[:, 0] + 0.8 * rng.normal(size=600)) > 0).astype(np.int64)
    torch.manual_seed(0)
    # the proxy reference models' architecture and recipe (10-256-2, Adam 1e-3, 30 epochs, batch 64)
    net = train_classifier(nn.Sequential(nn.Flatten(), nn.Linear(10, 256), nn.ReLU(), nn.Linear(256, 2)),
                           x[:150], y[:150], TrainConfig(epochs=30, batch_size=64, lr=1e-3), seed=0)
    target = Target("overfit", TorchAdapter(net, InputSpec((10,)), 2),
                    DataSplits(x_train=x[:150], y_train=y[:150], x_test=x[150:300], y_test=y[150:300]))
    res = get_check("privacy.membership").run(target, CheckContext(profile="thorough", options={"n_reference": 8}))
    assert set(res.metrics["by_method"]) == {"loss", "confidence", "lira"}
    assert res.params["reference_mode"] == "online" and res.params["n_reference"] == 8
    assert res.params["population"] is None  # online LiRA keeps every non-member for scoring
    lira, loss = res.metrics["by_method"]["lira"], res.metrics["by_method"]["loss"]
    assert lira["auc"] > 0.6 and lira["auc"] > loss["auc"]
    with pytest.raises(ConfigError):
        get_check("privacy.membership").run(target, CheckContext(profile="thorough",
                                                                 options={"reference_mode": "sideways"}))
