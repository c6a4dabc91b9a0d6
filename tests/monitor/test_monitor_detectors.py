"""Drift and extraction detectors: exact statistics, calibrated false alarms, real detections."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sstats

from bastion.core import predict_labels
from bastion.core.errors import InvalidInputError
from bastion.models.zoo import demo_target
from bastion.monitor.drift import DriftConfig, DriftDetector, ReferenceProfile, StreamingDrift, batch_drift
from bastion.monitor.extraction import ExtractionMonitor
from bastion.monitor.stats import KSReference


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(20, 120), st.booleans())
def test_ks_matches_scipy_with_ties(seed: int, m: int, ties: bool) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(200, 3))
    win = rng.normal(0.2, 1.3, size=(m, 3))
    if ties:
        ref, win = np.round(ref), np.round(win)
    ours = KSReference(ref).statistic(win)
    theirs = [sstats.ks_2samp(ref[:, j], win[:, j]).statistic for j in range(3)]
    assert np.allclose(ours, theirs)


@pytest.fixture(scope="module")
def gaussian_world():
    rng = np.random.default_rng(1)
    cov = np.eye(12) * 0.6 + 0.4
    ref = rng.multivariate_normal(np.zeros(12), cov, size=1500)
    det = DriftDetector(ReferenceProfile(ref), DriftConfig(window=200, test_every=50, ert=5000, n_bootstrap=400))
    return rng, cov, det


def test_streaming_drift_is_quiet_on_clean_data_and_fast_on_a_half_sigma_shift(gaussian_world) -> None:
    rng, cov, det = gaussian_world
    stream = StreamingDrift(det)
    alarms = sum(bool(r and r.drift) for r in (stream.update(rng.multivariate_normal(np.zeros(12), cov, 1))
                                                for _ in range(5000)))
    assert alarms <= 2  # calibrated to one false alarm per 5,000 samples
    shift = np.zeros(12)
    shift[:3] = 0.5 * np.sqrt(np.diag(cov))[:3]
    delays = []
    for _ in range(2):
        stream = StreamingDrift(det)
        for _ in range(300):
            stream.update(rng.multivariate_normal(np.zeros(12), cov, 1))
        for i in range(1, 1001):
            r = stream.update(rng.multivariate_normal(shift, cov, 1))
            if r is not None and r.drift:
                delays.append(i)
                break
    assert len(delays) == 2 and max(delays) <= 500


def test_batch_drift_names_the_shifted_features(gaussian_world) -> None:
    rng, cov, _ = gaussian_world
    ref = rng.multivariate_normal(np.zeros(12), cov, size=800)
    cur = rng.multivariate_normal(np.zeros(12), cov, size=400)
    cur[:, 7] += 1.0
    rep = batch_drift(ref, cur, DriftConfig(n_bootstrap=300))
    assert rep["drift"] and rep["features"][0]["feature"] == "f7"
    with pytest.raises(InvalidInputError, match="at least 100"):
        ReferenceProfile(ref[:20])


def test_state_merges_across_replicas(gaussian_world) -> None:
    rng, cov, det = gaussian_world
    a, b = StreamingDrift(det), StreamingDrift(det)
    for _ in range(120):
        a.update(rng.multivariate_normal(np.zeros(12), cov, 1))
        b.update(rng.multivariate_normal(np.zeros(12), cov, 1))
    a.merge(b.state())
    assert len(a.window) == 200 and a.seen == 240


def test_prada_and_coverage_flag_extractors_not_honest_clients() -> None:
    t = demo_target("digits")
    xr, xt = t.data.x_train, t.data.x_test
    mon = ExtractionMonitor(xr)
    rng = np.random.default_rng(0)
    for c in range(3):
        for i in range(0, 400, 4):
            x = xt[rng.integers(0, len(xt), 4)]
            assert mon.observe(f"honest{c}", x, predict_labels(t.model, x)) is None
    noise = rng.random((400, 1, 8, 8)).astype(np.float32)
    flags = [mon.observe("random", noise[i:i + 4], predict_labels(t.model, noise[i:i + 4])) for i in range(0, 400, 4)]
    flag = next(f for f in flags if f)
    assert flag["signal"] == "input_coverage" and flag["queries"] <= 1000
    seeds = xr[:10]
    synth = np.clip(seeds[rng.integers(0, 10, 400)] + 0.05 * np.sign(rng.normal(size=(400, 1, 8, 8))), 0, 1)
    synth = synth.astype(np.float32)
    flags = [mon.observe("synth", synth[i:i + 4], predict_labels(t.model, synth[i:i + 4])) for i in range(0, 400, 4)]
    assert any(f and f["signal"] == "prada" for f in flags)
    assert all(mon.client_summary(f"honest{c}")["flagged"] is None for c in range(3))
