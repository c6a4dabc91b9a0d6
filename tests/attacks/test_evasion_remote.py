"""Black-box evasion of a remote, query-budgeted endpoint (served in-process through httpx.MockTransport)."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
import torch

from bastion.attacks.evasion import run_evasion
from bastion.core.errors import QueryBudgetExceeded
from bastion.models.remote import RemoteAdapter
from bastion.models.zoo import demo_target


def endpoint(label_only: bool = False) -> tuple[httpx.MockTransport, RemoteAdapter, np.ndarray, np.ndarray]:
    target = demo_target("digits")
    module = target.model.module  # type: ignore[attr-defined]

    def handler(request: httpx.Request) -> httpx.Response:
        x = torch.tensor(json.loads(request.content)["inputs"], dtype=torch.float32)
        with torch.inference_mode():
            p = torch.softmax(module(x), 1)
        body = {"predictions": p.argmax(1).tolist()} if label_only else {"probabilities": p.tolist()}
        return httpx.Response(200, json=body)

    transport = httpx.MockTransport(handler)
    x, y = target.data.eval_split()
    return transport, RemoteAdapter("http://127.0.0.1:9/predict", target.model.input_spec, n_classes=10,
                                    transport=transport), x[:30], y[:30]


def test_square_on_endpoint_counts_queries() -> None:
    _, remote, x, y = endpoint()
    r = run_evasion(remote, x, y, "square", "linf", 0.2, steps=60)
    assert r.robust_accuracy < r.clean_accuracy
    assert r.queries is not None and 0 < r.queries <= remote.queries_used
    assert np.abs(r.x_adv - x).max() <= 0.2 + 1e-6


def test_budget_runs_out_mid_attack_and_results_stay_honest() -> None:
    _, remote, x, y = endpoint()
    remote.query_budget = 600  # clean pass (30) + ~19 iterations, then the budget stops the search
    r = run_evasion(remote, x, y, "square", "linf", 0.05, steps=500)
    assert r.params["budget_exhausted"] is True
    assert remote.queries_used <= 600
    truth = demo_target("digits").model.predict_proba(r.x_adv).argmax(1)
    assert np.all(truth[r.success] != y[r.success])  # every reported success is real
    assert r.robust_accuracy <= r.clean_accuracy


def test_budget_too_small_for_clean_predictions_is_a_clear_error() -> None:
    _, remote, x, y = endpoint()
    remote.query_budget = 10
    with pytest.raises(QueryBudgetExceeded, match="budget"):
        run_evasion(remote, x, y, "square", "linf", 0.2, steps=10)


def test_hsj_on_label_only_endpoint() -> None:
    _, remote, x, y = endpoint(label_only=True)
    r = run_evasion(remote, x[:6], y[:6], "hsj", "l2", 2.0, steps=5)
    assert remote.label_only is True
    assert r.robust_accuracy < r.clean_accuracy
