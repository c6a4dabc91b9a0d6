"""Invariants of every evasion attack on a tiny model: ‖δ‖ ≤ ε, clip range, real successes, mode restored."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from bastion.attacks.evasion import (
    APGD,
    ATTACK_NAMES,
    FGSM,
    PGD,
    HopSkipJump,
    SquareAttack,
    make_attack,
    run_evasion,
)
from bastion.attacks.evasion.base import dlr_loss, project
from bastion.core.errors import InvalidInputError
from bastion.core.model import InputSpec
from bastion.models.adapters import SklearnAdapter, TorchAdapter


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))


MODEL = tiny_model()
SHAPE = (1, 3, 4)

ATTACK_FACTORIES = {
    "fgsm": lambda eps, norm, lo, hi: FGSM(eps, norm, clip_min=lo, clip_max=hi),
    "pgd": lambda eps, norm, lo, hi: PGD(eps, norm, steps=5, clip_min=lo, clip_max=hi),
    "apgd-ce": lambda eps, norm, lo, hi: APGD(eps, norm, steps=6, clip_min=lo, clip_max=hi),
    "apgd-dlr": lambda eps, norm, lo, hi: APGD(eps, norm, steps=6, loss="dlr", clip_min=lo, clip_max=hi),
    "square": lambda eps, norm, lo, hi: SquareAttack(eps, norm, n_queries=15, clip_min=lo, clip_max=hi),
    "hsj": lambda eps, norm, lo, hi: HopSkipJump(eps, norm, max_iter=2, max_eval=20, init_eval=5,
                                                 init_size=10, clip_min=lo, clip_max=hi),
}


@pytest.mark.parametrize("name", sorted(ATTACK_FACTORIES))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    eps=st.floats(0.0, 2.0),
    norm=st.sampled_from(["linf", "l2"]),
    bounded=st.booleans(),
    seed=st.integers(0, 2**16),
    n=st.integers(1, 6),
)
def test_perturbation_within_eps_and_clip_range(name: str, eps: float, norm: str, bounded: bool, seed: int,
                                                 n: int) -> None:
    # Arrange
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((n, *SHAPE), generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    lo, hi = (0.0, 1.0) if bounded else (None, None)
    attack = ATTACK_FACTORIES[name](eps, norm, lo, hi)
    # Act
    x_adv = attack(MODEL, x, y)
    # Assert
    assert x_adv.shape == x.shape
    delta = (x_adv - x).reshape(n, -1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert bool((size <= eps * (1 + 1e-5) + 1e-6).all()), (size, eps)
    if bounded:
        assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert torch.isfinite(x_adv).all()


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_reported_success_is_really_misclassified(name: str) -> None:
    adapter = TorchAdapter(tiny_model(1), InputSpec(shape=SHAPE, clip_min=0.0, clip_max=1.0), n_classes=3)
    g = torch.Generator().manual_seed(3)
    x = torch.rand((40, *SHAPE), generator=g).numpy()
    y = adapter.predict_proba(x).argmax(1)  # all correct on clean data
    y[:4] = (y[:4] + 1) % 3  # four clean errors: never counted as successes
    steps = {"square": 60, "hsj": 3}.get(name, 10)
    r = run_evasion(adapter, x, y, name, "linf", 0.3, steps=steps, seed=0)
    pred_adv = adapter.predict_proba(r.x_adv).argmax(1)
    assert np.array_equal(pred_adv, r.pred_adv)
    assert np.all(pred_adv[r.success] != y[r.success])
    assert not r.success[:4].any()
    assert r.robust_accuracy == pytest.approx(float((pred_adv == y).mean()))
    assert r.clean_accuracy == pytest.approx(0.9)
    assert r.robust_accuracy <= r.clean_accuracy
    assert np.abs(r.x_adv - x).max() <= 0.3 + 1e-6


def test_model_mode_and_requires_grad_restored_even_on_error() -> None:
    model = tiny_model(2)
    model.train()
    for p in model.parameters():
        p.requires_grad_(True)
    PGD(0.1, steps=2)(model, torch.rand(3, *SHAPE), torch.tensor([0, 1, 2]))
    assert model.training and all(p.requires_grad for p in model.parameters())
    with pytest.raises(InvalidInputError):
        PGD(0.1, steps=2)(model, torch.rand(3, *SHAPE), torch.tensor([0, 1]))
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())  # gradients only w.r.t. the input


def test_attacks_are_seeded() -> None:
    x, y = torch.rand(8, *SHAPE), torch.randint(0, 3, (8,))
    for a, b in [(PGD(0.2, seed=5), PGD(0.2, seed=5)), (SquareAttack(0.2, n_queries=20, seed=5),
                                                       SquareAttack(0.2, n_queries=20, seed=5))]:
        assert torch.equal(a(MODEL, x, y), b(MODEL, x, y))


def test_attack_works_on_a_model_with_randomness_in_forward() -> None:
    class Noisy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = tiny_model(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x + 0.01 * torch.randn_like(x))

    x, y = torch.rand(6, *SHAPE), torch.randint(0, 3, (6,))
    x_adv = APGD(0.2, steps=5)(Noisy(), x, y)
    assert (x_adv - x).abs().max() <= 0.2 + 1e-6


def test_projection_and_dlr_loss() -> None:
    d = torch.tensor([[3.0, 4.0]])
    assert torch.allclose(project(d, "l2", 1.0).norm(), torch.tensor(1.0))
    assert torch.equal(project(d, "linf", 1.0), torch.tensor([[1.0, 1.0]]))
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 5.0, 1.0]])
    loss = dlr_loss(logits, torch.tensor([0, 0]))
    assert loss[0] == pytest.approx(-(3 - 1) / (3 - 0))  # correct: negative
    assert loss[1] == pytest.approx((5 - 0) / (5 - 0))  # already wrong: positive


def test_bad_arguments_raise_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="norm"):
        PGD(0.1, norm="l1")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="eps"):
        make_attack("pgd", "linf", -1.0)
    with pytest.raises(InvalidInputError, match="unknown attack"):
        make_attack("cw", "linf", 0.1)
    with pytest.raises(InvalidInputError, match="clip_min"):
        FGSM(0.1, clip_min=1.0, clip_max=0.0)


def test_white_box_attack_on_black_box_model_suggests_square_or_hsj() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.random((30, 4)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    model = SklearnAdapter(LogisticRegression().fit(x, y), InputSpec(shape=(4,), clip_min=0.0, clip_max=1.0))
    with pytest.raises(InvalidInputError, match="square"):
        run_evasion(model, x, y, "pgd", "linf", 0.1)
    r = run_evasion(model, x, y, "square", "linf", 0.5, steps=50)
    assert r.robust_accuracy < r.clean_accuracy


def test_run_evasion_rejects_bad_labels() -> None:
    adapter = TorchAdapter(tiny_model(), InputSpec(shape=SHAPE, clip_min=0.0, clip_max=1.0), n_classes=3)
    x = np.random.default_rng(0).random((5, *SHAPE)).astype(np.float32)
    with pytest.raises(InvalidInputError, match="labels"):
        run_evasion(adapter, x, np.array([0, 1, 2, 3, 0]), "fgsm", "linf", 0.1)
    with pytest.raises(InvalidInputError, match="labels"):
        run_evasion(adapter, x, np.array([0, 1]), "fgsm", "linf", 0.1)
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        run_evasion(adapter, x, np.array([0, 1, 2, 1, 0]), "fgsm", "linf", 0.1)
