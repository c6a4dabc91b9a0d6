"""Sanitisers: squeezing maths, BPDA beats naive PGD, smoothing certifies/abstains, export round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bastion.core.errors import InvalidInputError
from bastion.defenses.sanitizers import (
    ABSTAIN,
    FeatureSqueezing,
    LIDDetector,
    MahalanobisDetector,
    RandomizedSmoothing,
    calibrate_threshold,
    certify,
    defense_block,
    detection_auc,
    detection_scores,
    lid_mle,
    median_smooth,
    read_defense,
    reduce_bit_depth,
    save_model,
    smoothed_predict,
    split_penultimate,
    split_stages,
)
from bastion.defenses.sanitizers.adaptive import BPDA
from bastion.models.zoo import demo_target


@pytest.fixture(scope="module")
def digits():  # type: ignore[no-untyped-def]
    return demo_target("digits")


def test_bit_depth_and_median() -> None:
    x = torch.tensor([[0.0, 0.26, 0.74, 1.0]])
    assert reduce_bit_depth(x, 1, 0.0, 1.0).tolist() == [[0.0, 0.0, 1.0, 1.0]]
    img = torch.zeros(1, 1, 5, 5)
    img[0, 0, 2, 2] = 1.0  # a single hot pixel is removed by a 3x3 median
    assert float(median_smooth(img, 3).abs().sum()) == 0.0


def test_bpda_breaks_squeezing_more_than_naive_pgd(digits) -> None:  # type: ignore[no-untyped-def]
    from bastion.attacks.evasion import PGD

    base = digits.model.module
    fs = FeatureSqueezing(base, bit_depth=1, median_kernel=0)
    x = torch.from_numpy(digits.data.x_test[:80])
    y = torch.from_numpy(digits.data.y_test[:80])
    pgd = PGD(eps=0.15, steps=10, seed=0)

    def acc(xa: torch.Tensor) -> float:
        with torch.no_grad():
            return float((fs(xa).argmax(1) == y).float().mean())

    naive, bpda = acc(pgd(fs, x, y)), acc(pgd(BPDA(fs), x, y))
    assert bpda < naive - 0.1, (naive, bpda)


def _boundary_model() -> nn.Module:
    net = nn.Sequential(nn.Flatten(), nn.Linear(2, 2))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        net[1].bias.zero_()
    return net


def test_smoothing_certifies_far_points_and_abstains_on_the_boundary() -> None:
    rs = RandomizedSmoothing(_boundary_model(), sigma=0.5, n_samples=16)
    x = np.array([[3.0, 0.0], [0.0, 0.0]], dtype=np.float32)  # far in class 0 / exactly on the boundary
    cert = certify(rs, x, n0=32, n=400, seed=0)
    assert (cert.radius >= 0).all()
    assert cert.prediction[0] == 0 and cert.radius[0] > 0.5
    assert cert.prediction[1] == ABSTAIN and cert.radius[1] == 0.0
    assert smoothed_predict(rs, x, n=200, seed=0).tolist() == [0, ABSTAIN]


def test_mahalanobis_scores_noise_above_clean(digits) -> None:  # type: ignore[no-untyped-def]
    det = MahalanobisDetector.fit(digits.model.module, digits.data.x_train, digits.data.y_train, 10)
    thr = calibrate_threshold(det, digits.data.x_train[:300], fpr=0.05)
    noise = np.random.default_rng(0).random((100, 1, 8, 8), dtype=np.float32)
    assert np.median(detection_scores(det, noise)) > thr
    assert np.mean(detection_scores(det, digits.data.x_test[:200]) > thr) < 0.2


def test_split_penultimate_refuses_non_sequential_forward() -> None:
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x) + x)

    with pytest.raises(InvalidInputError, match="penultimate"):
        split_penultimate(Residual(), torch.randn(3, 4))


def test_lid_mle_recovers_the_dimension_of_uniform_data() -> None:
    # k-NN distances of points uniform in a d-dimensional cube: the MLE estimate is close to d
    g = torch.Generator().manual_seed(0)
    for d in (2, 8):
        ref = torch.rand(4000, d, generator=g)
        q = 0.25 + 0.5 * torch.rand(200, d, generator=g)  # away from the cube's faces
        est = lid_mle(torch.cdist(q, ref), k=20)
        assert abs(float(est.median()) - d) < 0.3 * d, (d, float(est.median()))


def test_lid_detector_separates_pgd_examples_and_keeps_logits(digits) -> None:  # type: ignore[no-untyped-def]
    from bastion.attacks.evasion import PGD

    base = digits.model.module
    x_tr, y_tr = digits.data.x_train, digits.data.y_train
    det = LIDDetector.fit(base, x_tr[:900], y_tr[:900], eps=0.1, k=20, n_reference=400, n_fit=400)
    assert len(det.stages) >= 3 and det.n_fit_adversarial >= 5
    thr = calibrate_threshold(det, x_tr[900:], fpr=0.05)
    x, y = torch.from_numpy(digits.data.x_test[:150]), torch.from_numpy(digits.data.y_test[:150])
    with torch.no_grad():
        assert torch.allclose(det(x), base(x))
    x_adv = PGD(eps=0.1, steps=20, seed=1)(base, x, y)
    with torch.no_grad():
        fooled = ((base(x_adv).argmax(1) != y) & (base(x).argmax(1) == y)).numpy()
    s_clean, s_adv = detection_scores(det, x.numpy()), detection_scores(det, x_adv.numpy())
    assert fooled.sum() > 20
    auc = detection_auc(s_clean, s_adv[fooled])
    assert auc > 0.75, auc
    assert (s_clean > thr).mean() < 0.2
    # the score is differentiable: the detector-aware adaptive attack gets a gradient
    xg = x[:4].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(det.detection_score(xg).sum(), xg)
    assert float(grad.abs().sum()) > 0


def test_split_stages_refuses_non_sequential_forward() -> None:
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.r, self.b = nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.r(self.a(x)) + x)

    with pytest.raises(InvalidInputError, match="plain stack"):
        split_stages(Residual(), torch.randn(3, 4))


@pytest.mark.parametrize("kind", ["feature_squeezing", "randomized_smoothing", "mahalanobis_detector", "lid_detector"])
def test_wrappers_export_as_torchscript_with_sidecar(kind: str, digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = digits.model.module
    wrapper: nn.Module
    if kind == "feature_squeezing":
        wrapper = FeatureSqueezing(base, bit_depth=3, median_kernel=2)
    elif kind == "randomized_smoothing":
        wrapper = RandomizedSmoothing(base, sigma=0.1, n_samples=4)
    elif kind == "lid_detector":
        wrapper = LIDDetector.fit(base, digits.data.x_train[:600], digits.data.y_train[:600], eps=0.1,
                                  n_reference=200, n_fit=200)
    else:
        wrapper = MahalanobisDetector.fit(base, digits.data.x_train, digits.data.y_train, 10)
    out = tmp_path / "m.pt"
    written = save_model(wrapper, out, digits.model.input_spec, 10, defense=defense_block(kind, {"k": 1}))
    loaded = torch.jit.load(str(out))
    assert loaded.bastion_defense == kind
    side = json.loads(written["sidecar"].read_text())
    assert side["input_spec"]["shape"] == [1, 8, 8] and side["defense"]["name"] == kind
    assert read_defense(out)["name"] == kind  # type: ignore[index]
    assert read_defense(None, loaded)["name"] == kind  # type: ignore[index]
    assert loaded(torch.from_numpy(digits.data.x_test[:4])).shape == (4, 10)
    from bastion.models.loaders import read_sidecar

    assert read_sidecar(out)["input_shape"] == [1, 8, 8]
