"""``evaluate_defense``: naive vs adaptive vs black-box attacks on a wrapped model, honestly.

The verdict compares what a naive evaluation reports (plain PGD on the wrapper) with the
worst case over the adaptive white-box attack (BPDA / EOT through the wrapper) and the
black-box Square attack. A large gap means the defence masks gradients; only the worst case
counts as robustness. Detectors are scored by AUC against PGD examples of the base model and by
the success rate of a detector-aware adaptive attack; smoothing also gets its certified radii.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from bastion.defenses.sanitizers.adaptive import BPDA, EOT, DetectorAware
from bastion.defenses.sanitizers.calibrate import detection_auc

MASKING_GAP = 0.10  # naive minus worst-case robust accuracy that marks gradient masking


@dataclass(frozen=True)
class AttackBudget:
    """Attack strengths for one evaluation (set per assessment profile)."""

    steps: int = 20
    restarts: int = 1
    eot_samples: int = 8
    square_queries: int = 300
    cert_samples: int = 50
    cert_n: int = 200


def _correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 256) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(model(x[i : i + batch]).argmax(1) == y[i : i + batch])
    return torch.cat(out)


def evaluate_defense(
    wrapper: nn.Module, defense: dict[str, Any], x: np.ndarray, y: np.ndarray, eps: float,
    clip_min: float | None, clip_max: float | None, budget: AttackBudget = AttackBudget(), seed: int = 0,
) -> dict[str, Any]:
    """Robust accuracies of ``wrapper`` under naive, adaptive and black-box L∞ attacks at ``eps``."""
    from bastion.attacks.evasion import PGD, SquareAttack

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    xt = torch.from_numpy(np.asarray(x, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    n = len(xt)
    name = str(defense.get("name", getattr(wrapper, "bastion_defense", "unknown")))
    randomized = bool(defense.get("randomized", name == "randomized_smoothing"))
    differentiable = bool(defense.get("differentiable", name != "feature_squeezing"))
    pgd = PGD(eps=eps, steps=budget.steps, restarts=budget.restarts, clip_min=clip_min, clip_max=clip_max,
              seed=seed, batch_size=max(1, n))
    for p in wrapper.parameters():
        p.requires_grad_(False)
    m: dict[str, Any] = {"defense": name, "eps": eps, "samples": n}
    clean_ok = _correct(wrapper, xt, yt)
    try:
        naive_ok = _correct(wrapper, pgd(wrapper, xt, yt), yt)
    except RuntimeError as exc:  # no gradient at all: a naive evaluator sees no successful attack
        naive_ok = torch.ones_like(clean_ok)
        m["naive_attack_note"] = f"plain PGD found no gradient ({str(exc).splitlines()[0][:80]})"
    adaptive: nn.Module = wrapper
    method = "pgd"
    if randomized and hasattr(wrapper, "noisy_logits"):
        adaptive, method = EOT(wrapper, budget.eot_samples), f"eot{budget.eot_samples}-pgd"
    elif not differentiable and hasattr(wrapper, "sanitize"):
        adaptive, method = BPDA(wrapper), "bpda-pgd"
    adaptive_ok = _correct(wrapper, pgd(adaptive, xt, yt), yt)
    square = SquareAttack(eps=eps, n_queries=budget.square_queries, clip_min=clip_min, clip_max=clip_max,
                          seed=seed, batch_size=max(1, n))
    square_ok = _correct(wrapper, square(wrapper, xt, yt), yt)
    worst_ok = clean_ok & naive_ok & adaptive_ok & square_ok
    m.update({
        "clean_accuracy": float(clean_ok.float().mean()),
        "naive_robust_accuracy": float((clean_ok & naive_ok).float().mean()),
        "adaptive_robust_accuracy": float((clean_ok & adaptive_ok).float().mean()),
        "blackbox_robust_accuracy": float((clean_ok & square_ok).float().mean()),
        "robust_accuracy": float(worst_ok.float().mean()),
        "adaptive_attack": method,
    })
    base = getattr(wrapper, "base", None)
    if isinstance(base, nn.Module):
        base_ok = _correct(base, xt, yt)
        m["base_clean_accuracy"] = float(base_ok.float().mean())
        m["base_robust_accuracy"] = float((base_ok & _correct(base, pgd(base, xt, yt), yt)).float().mean())
    m["masking_gap"] = m["naive_robust_accuracy"] - m["robust_accuracy"]
    m["gradient_masking"] = bool(m["masking_gap"] >= MASKING_GAP)
    if hasattr(wrapper, "detection_score") and math.isfinite(float(getattr(wrapper, "threshold", math.inf))):
        m.update(_detector_metrics(wrapper, xt, yt, pgd, clean_ok))
    if name == "randomized_smoothing":
        m.update(_certificate_metrics(wrapper, x, y, eps, budget, seed))
    m["duration_s"] = time.perf_counter() - t0
    m["params"] = {"eps": eps, "norm": "linf", "steps": budget.steps, "restarts": budget.restarts,
                   "eot_samples": budget.eot_samples, "square_queries": budget.square_queries, "seed": seed,
                   "samples": n}
    return m


def _detector_metrics(wrapper: nn.Module, xt: torch.Tensor, yt: torch.Tensor, pgd: Any,
                      clean_ok: torch.Tensor) -> dict[str, Any]:
    classifier: nn.Module = getattr(wrapper, "base", wrapper)
    with torch.no_grad():
        s_clean = wrapper.detection_score(xt)  # type: ignore[operator]
    x_adv = pgd(classifier, xt, yt)
    fooled = clean_ok & ~_correct(classifier, x_adv, yt)
    thr = float(wrapper.threshold)  # type: ignore[arg-type]
    with torch.no_grad():
        s_adv = wrapper.detection_score(x_adv)  # type: ignore[operator]
    out: dict[str, Any] = {"detection_threshold": thr, "clean_flag_rate": float((s_clean > thr).float().mean())}
    if int(fooled.sum()) >= 2:
        out["detection_auc"] = detection_auc(s_clean.numpy(), s_adv[fooled].numpy())
        out["detection_rate"] = float((s_adv[fooled] > thr).float().mean())
    scorer: nn.Module = wrapper
    clf: nn.Module = wrapper
    if hasattr(wrapper, "sanitize") and wrapper.bastion_defense == "feature_squeezing":
        scorer = clf = BPDA(wrapper)
    aware = DetectorAware(clf, scorer, thr, scale=float(s_clean.std()) + 1e-6)
    aware.y = yt
    x_ad = pgd(aware, xt, yt)
    with torch.no_grad():
        undetected = wrapper.detection_score(x_ad) <= thr  # type: ignore[operator]
    evaded = clean_ok & ~_correct(wrapper, x_ad, yt) & undetected
    out["adaptive_evasion_rate"] = float(evaded.float().sum() / max(1, int(clean_ok.sum())))
    return out


def _certificate_metrics(wrapper: nn.Module, x: np.ndarray, y: np.ndarray, eps: float,
                         budget: AttackBudget, seed: int) -> dict[str, Any]:
    from bastion.defenses.sanitizers.smoothing import certify

    k = min(len(x), budget.cert_samples)
    cert = certify(wrapper, x[:k], n0=32, n=budget.cert_n, seed=seed)  # type: ignore[arg-type]
    l2_of_linf = eps * math.sqrt(float(np.prod(x.shape[1:])))
    radii = [0.0, 0.25, 0.5, 1.0]
    return {
        "certified_accuracy": {str(r): cert.certified_accuracy(y[:k], r) for r in radii},
        "certified_radius_mean": float(cert.radius.mean()),
        "certified_radius_median": float(np.median(cert.radius)),
        "abstain_rate": float((cert.prediction < 0).mean()),
        "certified_at_linf_eps_l2": l2_of_linf,
        "certified_accuracy_at_linf_eps": cert.certified_accuracy(y[:k], l2_of_linf),
        "certificate_params": {"samples": k, "n0": 32, "n": budget.cert_n, "alpha": 0.001,
                               "sigma": float(wrapper.sigma), "seed": seed},  # type: ignore[arg-type]
    }
