"""Adversarial training: robustness improves, catastrophic overfitting is caught, records are complete."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bastion.core.errors import ConfigError
from bastion.datasets import load_demo_data
from bastion.defenses.adversarial import (
    AdversarialTrainingConfig,
    adversarial_train,
    detect_catastrophic_overfitting,
    robust_accuracy_pgd,
)
from bastion.defenses.adversarial import trainer as trainer_mod
from bastion.models.zoo import build_architecture, demo_target


def test_adversarial_training_beats_undefended_model_under_same_pgd() -> None:
    data = load_demo_data("digits")
    assert data.splits.x_train is not None and data.splits.y_train is not None
    x_test = torch.from_numpy(data.splits.x_test[:200])  # type: ignore[index]
    y_test = torch.from_numpy(data.splits.y_test[:200])  # type: ignore[index]
    cfg = AdversarialTrainingConfig(method="trades", eps=0.1, epochs=8, batch_size=64, train_steps=3, lr=2e-3, seed=0)
    undefended = demo_target("digits").model.module  # type: ignore[attr-defined]
    before = robust_accuracy_pgd(undefended, x_test, y_test, cfg, steps=10)

    net = build_architecture("digits-mlp", data.input_shape, 10)
    x_train, y_train = data.splits.x_train, data.splits.y_train
    net, record = adversarial_train(net, x_train, y_train, cfg, architecture="digits-mlp")
    after = robust_accuracy_pgd(net, x_test, y_test, cfg, steps=10)

    assert after > before + 0.1, (before, after)
    assert record.best_epoch is not None and len(record.epochs) == 8
    d = record.to_dict()
    assert d["config"]["method"] == "trades" and d["curve"][0]["robust_accuracy"] >= 0.0


@pytest.mark.parametrize(
    ("history", "fires"),
    [([0.10, 0.22, 0.08], True), ([0.5, 0.6, 0.35], True), ([0.2, 0.21, 0.19], False), ([0.3], False),
     ([0.02, 0.04, 0.0], False)],
)
def test_catastrophic_overfitting_detector(history: list[float], fires: bool) -> None:
    assert detect_catastrophic_overfitting(history) is fires


def test_fast_mode_falls_back_to_pgd_on_synthetic_collapse(monkeypatch: pytest.MonkeyPatch) -> None:
    # Validation PGD accuracy rises then collapses, as in Wong et al.'s catastrophic overfitting.
    fake_pgd = iter([0.20, 0.25, 0.02, 0.26, 0.27, 0.28])
    real = trainer_mod.robust_accuracy_pgd

    def fake(module, x, y, cfg, steps, random_start=True, batch=250, seed=0):  # type: ignore[no-untyped-def]
        if steps == 1:
            return real(module, x, y, cfg, steps, random_start=random_start)
        return next(fake_pgd)

    monkeypatch.setattr(trainer_mod, "robust_accuracy_pgd", fake)
    rng = np.random.default_rng(0)
    x = rng.random((80, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 10, 80)
    cfg = AdversarialTrainingConfig(method="fast", eps=0.1, epochs=5, batch_size=32, val_fraction=0.25)
    _, record = adversarial_train(build_architecture("digits-mlp", (1, 8, 8), 10), x, y, cfg)

    assert record.catastrophic_overfitting
    assert record.events[0]["event"] == "catastrophic_overfitting" and record.events[0]["epoch"] == 3
    assert [e.method for e in record.epochs] == ["fast", "fast", "fast", "pgd", "pgd"]


def test_fast_mode_stops_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    seq = iter([0.3, 0.3, 0.05, 0.5, 0.4, 0.4])  # (pgd, fgsm) per epoch
    monkeypatch.setattr(trainer_mod, "robust_accuracy_pgd", lambda *a, **k: next(seq))
    rng = np.random.default_rng(1)
    x, y = rng.random((40, 4), dtype=np.float32), rng.integers(0, 2, 40)
    cfg = AdversarialTrainingConfig(method="fast", eps=0.1, epochs=4, co_fallback="stop", clip_min=None,
                                    clip_max=None, val_fraction=0.25)
    _, record = adversarial_train(build_architecture("tabular-mlp", (4,), 2), x, y, cfg)
    assert record.catastrophic_overfitting and len(record.epochs) == 2


def test_early_stopping_keeps_best_robust_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    seq = iter([0.3, 0.3, 0.25, 0.3, 0.28, 0.3])  # (pgd, fgsm) per epoch
    monkeypatch.setattr(trainer_mod, "robust_accuracy_pgd", lambda *a, **k: next(seq))
    rng = np.random.default_rng(2)
    x, y = rng.random((40, 4), dtype=np.float32), rng.integers(0, 2, 40)
    cfg = AdversarialTrainingConfig(method="pgd", eps=0.1, epochs=10, patience=2, train_steps=2, clip_min=None,
                                    clip_max=None, val_fraction=0.25)
    _, record = adversarial_train(build_architecture("tabular-mlp", (4,), 2), x, y, cfg)
    assert record.stopped_early and len(record.epochs) == 3
    assert record.best_epoch == 1 and record.best_robust_accuracy == pytest.approx(0.3)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ConfigError):
        AdversarialTrainingConfig(method="magic")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        AdversarialTrainingConfig(eps=0.0)
    assert AdversarialTrainingConfig(eps=0.3, eps_ramp_epochs=3).eps_at(0) == pytest.approx(0.1)


def test_time_budget_stops_before_overrunning() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.random((40, 4), dtype=np.float32), rng.integers(0, 2, 40)
    cfg = AdversarialTrainingConfig(method="pgd", eps=0.1, epochs=50, train_steps=1, clip_min=None, clip_max=None,
                                    val_fraction=0.25, time_budget_s=0.0)
    _, record = adversarial_train(build_architecture("tabular-mlp", (4,), 2), x, y, cfg)
    assert len(record.epochs) == 1 and record.stopped_early
    assert record.events[-1]["event"] == "time_budget"
