"""Each backdoor detector on a small case where it must fire, and the combination that ranks them."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.data.poisoning.activations import class_outlier_test, spectral_signature_scores, spectre_scores
from bastion.data.poisoning.combine import benjamini_hochberg, class_suspicion, robust_z, stouffer_p
from bastion.data.poisoning.reference import fit_reference
from bastion.data.poisoning.strip import strip_entropy


@pytest.fixture(scope="module")
def planted() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Activations of 3 classes x 150; 24 samples of class 1 shifted along one direction (a backdoor's signature)."""
    rng = np.random.default_rng(0)
    reps = rng.normal(size=(450, 12))
    y = np.repeat([0, 1, 2], 150)
    bad = np.zeros(450, dtype=bool)
    bad[150:174] = True
    reps[bad, 0] += 8.0
    return reps, y, bad


def _top_precision(score: np.ndarray, bad: np.ndarray, among: np.ndarray) -> float:
    """Share of the poisoned among the class's top-|poisoned| scores (scores are per class)."""
    top = np.argsort(-score[among])[: int(bad.sum())]
    return float(bad[among][top].mean())


@pytest.mark.parametrize("detector", ["spectral", "spectre", "class_outlier"])
def test_activation_detectors_rank_the_planted_samples_first(detector: str, planted: tuple) -> None:
    reps, y, bad = planted
    if detector == "spectral":
        score = spectral_signature_scores(reps, y)
    elif detector == "spectre":
        score = spectre_scores(reps, y, seed=0)
    else:
        score = class_outlier_test(reps, y, seed=0).distance
    assert _top_precision(score, bad, y == 1) >= 0.8


def test_class_outlier_test_names_the_class_with_a_p_value(planted: tuple) -> None:
    reps, y, _ = planted
    p = class_outlier_test(reps, y, seed=0).p_values()
    assert p[1] < 1e-6 and p[0] > 0.01 and p[2] > 0.01


def test_strip_entropy_is_zero_for_a_trigger_that_fixes_the_prediction() -> None:
    def model(xb: np.ndarray) -> np.ndarray:  # says class 0 whenever feature 0 is high, else uncertain
        p = np.full((len(xb), 2), 0.5)
        p[xb[:, 0] > 5] = [1.0, 0.0]
        return p

    x = np.zeros((20, 3))
    x[:5, 0] = 10.0
    ent = strip_entropy(model, x, np.random.default_rng(0).normal(size=(50, 3)), n_overlays=4)
    assert ent[:5].max() < 1e-6 and ent[5:].min() > 0.5


def test_loss_dynamics_a_dirty_label_shortcut_is_learned_first() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    y = (x[:, 1] + 0.5 * x[:, 2] > 0).astype(np.int64)  # a task with a margin to learn
    bad = np.zeros(300, dtype=bool)
    bad[rng.choice(np.flatnonzero(y == 0), 15, replace=False)] = True
    x[bad, 5] = 8.0  # trigger feature, relabelled to 1
    y[bad] = 1
    trace = fit_reference(x, y, 2, seed=0, epochs=3).loss_trace
    assert trace.shape == (3, 300)
    early = trace[:1].mean(0)
    # poisoned samples are not learned slower than the task: median early loss at or below the clean one
    assert np.median(early[bad]) <= np.median(early[~bad]) * 1.5


def test_combination_calibrated_on_clean_scores_and_strong_on_planted() -> None:
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(5), 200)
    z = {m: robust_z(rng.normal(size=1000), y) for m in ("a", "b", "c")}
    p = stouffer_p(z, {"a": 1.0, "b": 1.0, "c": 0.5})
    # null: p-values near uniform, BH at 5 % flags (almost) nothing
    assert 0.03 < float(np.mean(p < 0.05)) < 0.08
    assert benjamini_hochberg(p, 0.05).sum() <= 2
    for m in z:
        z[m][:20] += 6.0  # 20 samples of class 0 outlying in every method
    p = stouffer_p(z, {"a": 1.0, "b": 1.0, "c": 0.5})
    hit = benjamini_hochberg(p, 0.05, among=y == 0)
    assert hit[:20].all() and hit[20:].sum() <= 2
    cls = {c["class"]: c["p_value"] for c in class_suspicion(z, y)}
    assert cls[0] < 1e-6 and min(cls[c] for c in range(1, 5)) > 0.01
