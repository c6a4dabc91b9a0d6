"""Invariants of the output policies and the policy-wrapped adapter."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bastion.core.errors import ConfigError, InvalidInputError
from bastion.core.model import InputSpec, ModelAdapter
from bastion.defenses.output_policy import (
    POLICY_TYPES,
    OutputPolicy,
    OutputPolicyConfig,
    PolicyWrappedModel,
    measure_utility_cost,
)


def _simplex(raw: np.ndarray) -> np.ndarray:
    e = np.exp(raw - raw.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


probas = arrays(np.float64, st.tuples(st.integers(1, 8), st.integers(2, 7)),
                elements=st.floats(-8, 8, allow_nan=False)).map(_simplex)


@settings(max_examples=60, deadline=None)
@given(p=probas, k=st.integers(1, 8))
def test_top_k_keeps_exactly_k(p: np.ndarray, k: int) -> None:
    out = OutputPolicy.from_config({"type": "top_k", "k": k}).apply(p)
    assert out.probabilities is not None
    kept = min(k, p.shape[1])
    assert ((out.probabilities > 0).sum(axis=1) <= kept).all()
    # the kept values are the k largest, unchanged
    top = np.sort(p, axis=1)[:, ::-1][:, :kept]
    assert np.allclose(np.sort(out.probabilities, axis=1)[:, ::-1][:, :kept], top)
    assert (out.labels == p.argmax(axis=1)).all()


@settings(max_examples=60, deadline=None)
@given(p=probas, d=st.integers(0, 6))
def test_rounding_within_half_ulp(p: np.ndarray, d: int) -> None:
    out = OutputPolicy.from_config({"type": "rounding", "decimals": d}).apply(p)
    assert out.probabilities is not None
    assert np.abs(out.probabilities - p).max() <= 0.5 * 10.0**-d + 1e-12
    assert np.allclose(out.probabilities, np.round(out.probabilities, d))


@settings(max_examples=60, deadline=None)
@given(p=probas)
def test_label_only_hides_probabilities(p: np.ndarray) -> None:
    out = OutputPolicy.from_config({"type": "label_only"}).apply(p)
    assert out.probabilities is None
    assert (out.labels == p.argmax(axis=1)).all()


@settings(max_examples=60, deadline=None)
@given(p=probas, budget=st.floats(0.01, 2.0), seed=st.integers(0, 5))
def test_noise_and_poisoning_keep_label_and_simplex(p: np.ndarray, budget: float, seed: int) -> None:
    for cfg in ({"type": "noise", "noise_scale": 1.0, "seed": seed},
                {"type": "prediction_poisoning", "poisoning_budget": budget}):
        out = OutputPolicy.from_config(cfg).apply(p)
        q = out.probabilities
        assert q is not None
        assert np.allclose(q.sum(axis=1), 1.0) and (q >= 0).all()
        assert (q.argmax(axis=1) == p.argmax(axis=1)).all() or np.isclose(
            np.sort(p, axis=1)[:, -1], np.sort(p, axis=1)[:, -2]).any()
        if cfg["type"] == "prediction_poisoning":
            assert (np.abs(q - p).sum(axis=1) <= budget + 1e-9).all()


def test_poisoning_moves_mass_measurably() -> None:
    p = np.array([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2]])
    q = OutputPolicy.from_config({"type": "prediction_poisoning", "poisoning_budget": 0.4}).apply(p).probabilities
    assert q is not None
    assert np.abs(q - p).sum(axis=1).min() > 0.1
    assert q[0, 2] > p[0, 2]  # moved towards the least-likely class


def test_noise_is_seeded() -> None:
    p = _simplex(np.random.default_rng(0).normal(size=(5, 4)))
    a = OutputPolicy.from_config({"type": "noise", "seed": 3}).apply(p).probabilities
    b = OutputPolicy.from_config({"type": "noise", "seed": 3}).apply(p).probabilities
    c = OutputPolicy.from_config({"type": "noise", "seed": 4}).apply(p).probabilities
    assert a is not None and b is not None and c is not None
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("bad", [{"type": "blur"}, {"type": "top_k", "k": 0}, {"type": "rounding", "decimals": -1},
                                 {"type": "noise", "noise_scale": -1.0}, {"type": "none", "colour": 1}])
def test_bad_config_is_a_config_error(bad: dict) -> None:
    with pytest.raises(ConfigError):
        OutputPolicy.from_config(bad)


def test_bad_probabilities_rejected() -> None:
    with pytest.raises(InvalidInputError):
        OutputPolicy().apply(np.array([0.2, 0.8]))


class _Fixed:
    def __init__(self) -> None:
        self._spec = InputSpec(shape=(2,))

    @property
    def n_classes(self) -> int:
        return 3

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return _simplex(np.column_stack([x[:, 0], x[:, 1], -x[:, 0]]).astype(np.float64))


@pytest.mark.parametrize("ptype", POLICY_TYPES)
def test_wrapped_model_is_an_adapter_and_costs_are_measured(ptype: str) -> None:
    base = _Fixed()
    wrapped = PolicyWrappedModel(base, {"type": ptype, "k": 2})
    assert isinstance(wrapped, ModelAdapter)
    x = np.random.default_rng(1).normal(size=(50, 2)).astype(np.float32)
    q = wrapped.predict_proba(x)
    assert q.shape == (50, 3)
    if ptype == "label_only":
        assert set(np.unique(q)) <= {0.0, 1.0}
    y = base.predict_proba(x).argmax(axis=1)
    cost = measure_utility_cost(base, wrapped.policy, x, y)
    assert cost.accuracy_before == 1.0
    assert cost.accuracy_cost == pytest.approx(0.0)  # every policy here keeps the top-1 label
    assert (cost.mean_l1_distortion is None) == (ptype == "label_only")


def test_config_roundtrip() -> None:
    cfg = OutputPolicyConfig(type="noise", noise_scale=0.2, seed=7)
    assert OutputPolicy.from_config(cfg.to_dict()).config == cfg
