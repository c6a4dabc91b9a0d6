"""Model extraction: equation solving, learning-based extraction, query budgets, output policies."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from bastion.attacks.extraction import (
    BudgetedModel,
    ExtractionConfig,
    extract_softmax_regression,
    run_extraction,
)
from bastion.core.errors import InvalidInputError, QueryBudgetExceeded
from bastion.core.model import InputSpec
from bastion.defenses.output_policy import PolicyWrappedModel
from bastion.models.adapters import SklearnAdapter, TorchAdapter
from bastion.models.zoo import TrainConfig, train_classifier


@pytest.fixture(scope="module")
def digits_lr() -> dict:
    from bastion.datasets import load_demo_data

    d = load_demo_data("digits").splits
    assert d.x_train is not None and d.x_test is not None
    est = LogisticRegression(max_iter=500).fit(d.x_train.reshape(len(d.x_train), -1), d.y_train)
    return {"victim": SklearnAdapter(est, InputSpec((1, 8, 8), clip_min=0.0, clip_max=1.0)), "splits": d}


def test_equation_solving_recovers_softmax_regression(digits_lr: dict) -> None:
    d = digits_lr["splits"]
    r = extract_softmax_regression(digits_lr["victim"], eval_x=d.x_test)
    assert r.queries <= 650
    assert r.exact and r.agreement is not None and r.agreement >= 0.999
    assert r.to_dict()["n_parameters"] == 650


def test_equation_solving_refuses_rounded_outputs(digits_lr: dict) -> None:
    rounded = PolicyWrappedModel(digits_lr["victim"], {"type": "rounding", "decimals": 1})
    with pytest.raises(InvalidInputError, match="zero probabilities"):
        extract_softmax_regression(rounded)
    with pytest.raises(InvalidInputError, match="d \\+ 1"):
        extract_softmax_regression(digits_lr["victim"], n_queries=10)


@pytest.fixture(scope="module")
def tiny_victim() -> dict:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(800, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > x[:, 2] + 0.5).astype(np.int64) + (x[:, 3] > 0.7)
    net = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3))
    torch.manual_seed(0)
    train_classifier(net, x[:400], y[:400], TrainConfig(epochs=30, batch_size=32, lr=3e-3), seed=0)
    return {"victim": TorchAdapter(net, InputSpec((6,), clip_min=0.0, clip_max=1.0), 3), "x": x, "y": y}


def test_learning_extraction_of_a_tiny_victim(tiny_victim: dict) -> None:
    v, x, y = tiny_victim["victim"], tiny_victim["x"], tiny_victim["y"]
    cfg = ExtractionConfig(schedule=(50, 600), epochs=20, min_steps=600)
    r = run_extraction(v, x[400:600], 600, x[600:], y[600:], cfg)
    assert [p.queries for p in r.curve] == [50, 600]
    assert r.loss_used == "logit"
    assert r.fidelity >= 0.9
    assert r.curve[-1].fidelity >= r.curve[0].fidelity - 0.02
    assert r.curve_png().startswith(b"\x89PNG")


def test_query_budget_enforced(tiny_victim: dict) -> None:
    v, x = tiny_victim["victim"], tiny_victim["x"]
    budgeted = BudgetedModel(v, 100)
    budgeted.predict_proba(x[:60])
    with pytest.raises(QueryBudgetExceeded):
        budgeted.predict_proba(x[:60])
    assert budgeted.used == 60
    # the victim's own budget stops the attacker's curve early, without crashing
    cfg = ExtractionConfig(schedule=(50, 150), epochs=5, min_steps=20)
    r = run_extraction(BudgetedModel(v, 120), x[400:600], 150, x[600:], None, cfg,
                       eval_victim_labels=v.predict_proba(x[600:]).argmax(1))
    assert r.stopped_by_budget and r.queries_used <= 120
    assert r.curve[-1].queries == r.queries_used


def test_label_only_policy_forces_hard_labels_and_costs_fidelity(tiny_victim: dict) -> None:
    v, x, y = tiny_victim["victim"], tiny_victim["x"], tiny_victim["y"]
    cfg = ExtractionConfig(schedule=(100,), epochs=20, min_steps=300)
    plain = run_extraction(v, x[400:600], 100, x[600:], y[600:], cfg)
    hidden = run_extraction(PolicyWrappedModel(v, {"type": "label_only"}), x[400:600], 100, x[600:], y[600:], cfg)
    assert hidden.loss_used == "hard"
    assert hidden.fidelity <= plain.fidelity + 0.05


def test_random_queries_need_no_attacker_data(tiny_victim: dict) -> None:
    v, x = tiny_victim["victim"], tiny_victim["x"]
    r = run_extraction(v, None, 300, x[600:], None, ExtractionConfig(strategy="random", schedule=(300,), epochs=10))
    assert r.params["attacker_pool"] == 0 and 0.0 <= r.fidelity <= 1.0
