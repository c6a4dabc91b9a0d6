"""Saliency maps: shapes, completeness of integrated gradients, a trigger patch lights up."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bastion.core.errors import InvalidInputError
from bastion.explain import saliency_maps


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3))


def test_integrated_gradients_completeness() -> None:
    net = _net()
    x = np.random.default_rng(0).random((5, 1, 4, 4), dtype=np.float32)
    y = np.array([0, 1, 2, 0, 1])
    attr = saliency_maps(net, x, y, steps=128, absolute=False)
    with torch.no_grad():
        lx = net(torch.from_numpy(x)).gather(1, torch.from_numpy(y).view(-1, 1)).squeeze(1)
        l0 = net(torch.zeros_like(torch.from_numpy(x))).gather(1, torch.from_numpy(y).view(-1, 1)).squeeze(1)
    np.testing.assert_allclose(attr.reshape(5, -1).sum(1), (lx - l0).numpy(), rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("method", ["integrated_gradients", "gradient", "gradient_x_input"])
def test_shape_and_nonnegative(method: str) -> None:
    x = np.random.default_rng(1).random((3, 1, 4, 4), dtype=np.float32)
    attr = saliency_maps(_net(), x, None, method=method)  # type: ignore[arg-type]
    assert attr.shape == x.shape
    assert (attr >= 0).all()


def test_trigger_patch_dominates_attribution() -> None:
    # A linear "backdoored" model whose class 1 score is driven by one corner pixel.
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 2, bias=False))
    with torch.no_grad():
        net[1].weight.zero_()
        net[1].weight[1, 15] = 10.0
        net[1].weight[0, :] = 0.1
    x = np.full((2, 1, 4, 4), 0.3, dtype=np.float32)
    x[:, 0, 3, 3] = 1.0
    attr = saliency_maps(net, x, np.array([1, 1]))
    assert np.all(attr.reshape(2, -1).argmax(1) == 15)


def test_rejects_black_box_and_bad_batch() -> None:
    with pytest.raises(InvalidInputError):
        saliency_maps(object(), np.zeros((1, 4), dtype=np.float32))
    with pytest.raises(InvalidInputError):
        saliency_maps(_net(), np.zeros((16,), dtype=np.float32))
