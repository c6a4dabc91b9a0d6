"""``privacy.membership``: a reference-model attack decides a pass; loss or confidence alone never does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bastion.assess.registry import CheckContext, get_check
from bastion.core.model import InputSpec
from bastion.core.severity import Status
from bastion.core.target import DataSplits, Target
from bastion.models.adapters import TorchAdapter


@pytest.fixture(scope="module")
def private() -> Target:
    """A linear model on 1,000 members of a Gaussian problem: it generalises, nothing to infer."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 2))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(net(torch.from_numpy(x[:1000])), torch.from_numpy(y[:1000])).backward()
        opt.step()
    return Target("private", TorchAdapter(net, InputSpec((5,)), 2),
                  DataSplits(x_train=x[:1000], y_train=y[:1000], x_test=x[1000:], y_test=y[1000:]))


def test_reference_attack_decides_the_pass(private: Target) -> None:
    res = get_check("privacy.membership").run(private, CheckContext(profile="quick", options={"n_reference": 8}))
    assert res.status == Status.PASS and res.metrics["conclusive"] is True
    assert set(res.metrics["by_method"]) == {"lira", "loss"}
    assert res.params["reference_arch"] == "clone:module" and res.params["n_reference"] == 8
    assert res.params["time_budget_s"] == 60.0 and "reference_recipe" in res.params


@pytest.mark.parametrize(("options", "reason"), [
    ({"membership_method": "loss"}, "only loss ran"),
    ({"membership_method": "confidence"}, "only confidence ran"),
    ({"time_budget": 2}, "could not run: time budget 2.0 s is below the minimum"),
])
def test_loss_or_confidence_alone_never_pass(private: Target, options: dict, reason: str) -> None:
    res = get_check("privacy.membership").run(private, CheckContext(profile="quick", options=options))
    assert res.status == Status.WARN and res.metrics["conclusive"] is False
    assert reason in res.metrics["inconclusive_reason"] and res.summary.startswith("inconclusive")
    assert [f.id for f in res.findings] == ["privacy.membership.inconclusive"]
