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


def test_config_rejects_bad_new_options() -> None:
    for bad in ({"bf16": "fp8"}, {"lr_schedule": "step"}, {"budget_clock": "gpu"}, {"augment_shift": -1}):
        with pytest.raises(ConfigError):
            AdversarialTrainingConfig(**bad)  # type: ignore[arg-type]


def test_random_shift_translates_each_image_within_the_margin() -> None:
    x = torch.zeros(16, 1, 10, 10)
    x[:, :, 4:6, 4:6] = 1.0  # a blob away from the borders: shifting by <= 2 keeps it whole
    out = trainer_mod.random_shift(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.equal(out.sum((1, 2, 3)), x.sum((1, 2, 3)))
    ys, xs = [], []
    for img in out[:, 0]:
        r, c = (img > 0).nonzero()[0].tolist()
        ys.append(r - 4)
        xs.append(c - 4)
    assert all(-2 <= v <= 2 for v in ys + xs) and len(set(zip(ys, xs, strict=True))) > 3
    assert trainer_mod.random_shift(torch.ones(3, 5), 2, torch.Generator()).shape == (3, 5)  # not images: unchanged


def test_bf16_attack_stays_in_the_eps_ball_and_trains() -> None:
    from bastion.defenses.adversarial import pgd_perturb

    data = load_demo_data("digits")
    assert data.splits.x_train is not None and data.splits.y_train is not None
    net = build_architecture("digits-mlp", data.input_shape, 10)
    x = torch.from_numpy(data.splits.x_train[:64])
    y = torch.from_numpy(data.splits.y_train[:64])
    xa = pgd_perturb(net, x, y, 0.1, 3, bf16=True, generator=torch.Generator().manual_seed(0))
    assert xa.dtype == torch.float32 and float((xa - x).abs().max()) <= 0.1 + 1e-6
    assert float(xa.min()) >= 0.0 and float(xa.max()) <= 1.0
    cfg = AdversarialTrainingConfig(method="pgd", eps=0.1, epochs=2, train_steps=2, bf16="attack", augment_shift=1,
                                    lr_schedule="onecycle", budget_clock="cpu", val_samples=60)
    _, record = adversarial_train(net, data.splits.x_train[:400], data.splits.y_train[:400], cfg)
    d = record.to_dict()
    assert d["cpu_s"] > 0 and d["cores"] >= 1 and d["dedicated_equivalent_s"] <= d["cpu_s"]
    assert all(e["cpu_s"] > 0 and e["lr"] is not None for e in d["curve"])


class _EpochClock:
    """A budget clock that advances 0.125 s per finished epoch: budget decisions are exact and the test
    does not depend on how busy the machine is."""

    cores = 1

    def __init__(self) -> None:
        self.t = 0.0

    def tick(self, *_: object) -> None:
        self.t += 0.125

    def wall(self) -> float:
        return self.t

    def cpu(self) -> float:
        return self.t

    def budget(self) -> float:
        return self.t


def test_cpu_budget_anneals_the_learning_rate_before_stopping() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.random((200, 4), dtype=np.float32), rng.integers(0, 2, 200)
    cfg = AdversarialTrainingConfig(method="pgd", eps=0.1, epochs=1000, train_steps=1, clip_min=None, clip_max=None,
                                    val_fraction=0.2, batch_size=20, time_budget_s=1.5, budget_clock="cpu",
                                    anneal_to_budget=True)
    clock = _EpochClock()
    _, record = adversarial_train(build_architecture("tabular-mlp", (4,), 2), x, y, cfg, on_epoch=clock.tick,
                                  clock=clock)
    # after epoch k, 0.125·k s are used and the next epoch is estimated at 0.125 s: 12 epochs fit in 1.5 s
    assert len(record.epochs) == 12 and record.events[-1]["event"] == "time_budget"
    assert record.events[-1]["clock"] == "cpu" and record.events[-1]["used_s"] == 1.5
    assert record.epochs[0].lr is not None and record.epochs[-1].lr is not None
    assert record.epochs[-1].lr < 0.2 * cfg.lr < record.epochs[0].lr  # cosine followed the budget, not epochs=1000
