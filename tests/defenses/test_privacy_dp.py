"""DP-SGD training: the privacy statement's ε is the accountant's, files are written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from torch import nn

from bastion.core.errors import ConfigError
from bastion.defenses.dp import DPConfig, read_privacy_statement, save_dp_model, train_dp
from bastion.defenses.dp.statement import privacy_statement_path


@pytest.fixture(scope="module")
def tiny_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 8)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def test_statement_epsilon_matches_the_accountant(tiny_data: tuple[np.ndarray, np.ndarray]) -> None:
    from opacus.accountants.utils import get_noise_multiplier

    x, y = tiny_data
    cfg = DPConfig(epsilon=2.0, epochs=3, batch_size=100, lr=0.5, momentum=0.0, accountant="rdp")
    r = train_dp(nn.Sequential(nn.Linear(8, 2)), x, y, cfg)
    s = r.statement
    assert s.epsilon <= 2.0 + 1e-6 and s.epsilon > 1.5
    assert s.sample_rate == pytest.approx(100 / 400)
    sigma = get_noise_multiplier(target_epsilon=2.0, target_delta=1e-5, sample_rate=0.25, epochs=3,
                                 accountant="rdp")
    assert s.noise_multiplier == pytest.approx(sigma, rel=1e-6)
    from opacus.accountants import RDPAccountant

    acc = RDPAccountant()
    acc.history = [(s.noise_multiplier, s.sample_rate, s.steps)]
    assert acc.get_epsilon(1e-5) == pytest.approx(s.epsilon, rel=1e-6)
    assert r.train_accuracy > 0.7


def test_save_writes_model_sidecar_and_statement(tmp_path: Path, tiny_data: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = tiny_data
    r = train_dp(nn.Sequential(nn.Linear(8, 2)), x, y, DPConfig(epsilon=5.0, epochs=1, batch_size=100))
    out = tmp_path / "m.pt"
    paths = save_dp_model(r.module, out, (8,), 2, r.statement)
    assert out.is_file() and Path(paths["sidecar"]).name == "m.pt.bastion.json"
    assert json.loads(Path(paths["sidecar"]).read_text())["input_shape"] == [8]
    stmt = read_privacy_statement(out)
    assert stmt is not None and stmt.epsilon == r.statement.epsilon
    assert privacy_statement_path(out).name == "m.pt.privacy.json"
    assert read_privacy_statement(tmp_path / "other.pt") is None


def test_ema_releases_the_average_of_the_iterates(tiny_data: tuple[np.ndarray, np.ndarray]) -> None:
    import torch

    x, y = tiny_data
    cfg = DPConfig(epsilon=3.0, epochs=3, batch_size=100, lr=0.5, seed=1, seed_noise=True)
    runs = {}
    for ema in (None, 0.9):
        torch.manual_seed(0)
        runs[ema] = train_dp(nn.Sequential(nn.Linear(8, 2)), x, y, DPConfig(**{**cfg.__dict__, "ema_decay": ema}))
    last, avg = runs[None], runs[0.9]
    # same privacy accounting (post-processing), same sampling and noise, different released weights
    assert avg.statement.epsilon == last.statement.epsilon and avg.statement.extra["ema_decay"] == 0.9
    w_last, w_avg = (next(r.module.parameters()).detach().numpy() for r in (last, avg))
    assert not np.allclose(w_last, w_avg) and np.isfinite(w_avg).all()
    assert avg.train_accuracy > 0.7


def test_noise_is_fresh_unless_asked_to_be_reproducible(tiny_data: tuple[np.ndarray, np.ndarray]) -> None:
    """A known --seed must not reveal the noise: by default sampling and noise come from OS entropy."""
    import torch

    x, y = tiny_data

    def weights(seed_noise: bool) -> tuple[np.ndarray, dict]:
        torch.manual_seed(0)  # same initial weights every time
        r = train_dp(nn.Sequential(nn.Linear(8, 2)), x, y,
                     DPConfig(epsilon=3.0, epochs=2, batch_size=100, lr=0.5, seed=7, seed_noise=seed_noise))
        return next(r.module.parameters()).detach().numpy().copy(), r.statement.extra

    # same --seed and same global torch seed, yet different batches and noise
    fresh_a, extra = weights(False)
    fresh_b, _ = weights(False)
    assert not np.allclose(fresh_a, fresh_b) and "OS entropy" in extra["noise_rng"]
    rep_a, extra_rep = weights(True)
    rep_b, _ = weights(True)
    assert np.array_equal(rep_a, rep_b) and "no privacy against anyone who knows the seed" in extra_rep["noise_rng"]


@pytest.mark.parametrize("bad", [{"epsilon": 0.0}, {"epsilon": 1.0, "delta": 1.5}, {"epsilon": 1.0, "epochs": 0},
                                 {"epsilon": 1.0, "ema_decay": 1.0}])
def test_bad_dp_config(bad: dict) -> None:
    with pytest.raises(ConfigError):
        DPConfig(**bad)
