"""Adaptive re-assessment of a defended model (``defenses.adaptive``).

Runs when the model carries a Bastion defence (sidecar ``defense`` block or the module's
``bastion_defense`` attribute, see ``bastion harden``). The whole pipeline is attacked: plain
PGD (what a naive evaluation reports), BPDA through non-differentiable sanitisers, EOT through
randomised ones, and the black-box Square attack. Only the per-sample worst case counts.

Findings (thresholds):

- naive minus worst-case robust accuracy ≥ 0.10 → HIGH "masks gradients", never reported as robust;
- a detector bypassed by the detector-aware adaptive attack for ≥ 30% of inputs → HIGH;
- worst-case gain over the undefended base model < 0.05 → MEDIUM (no real robustness added);
- worst case ≥ 0.10 below the robust accuracy the training record claims → MEDIUM.

Randomised smoothing also reports certified L2 radii (Cohen et al. 2019). ``ctx.options``:
``reference_eps`` (else the defence's training eps, else 0.1 × the input range / feature std),
``samples``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from bastion.assess.registry import CheckContext, Outcome, check
from bastion.core.results import Finding
from bastion.core.severity import Severity, Status
from bastion.core.target import Target

CONTROLS = ["mitre-atlas:AML.T0015", "mitre-atlas:AML.T0043", "mitre-atlas:AML.M0003", "mitre-atlas:AML.M0015",
            "owasp-ml:ML01:2023", "nist-ai-rmf:MEASURE-2.7", "eu-ai-act:Art15(5)"]
SAMPLES = {"quick": 64, "standard": 128, "thorough": 400}


def _budget(profile: str) -> Any:
    from bastion.defenses.sanitizers.evaluate import AttackBudget

    if profile == "quick":
        return AttackBudget(steps=10, restarts=1, eot_samples=4, square_queries=100, cert_samples=20, cert_n=100)
    if profile == "thorough":
        return AttackBudget(steps=50, restarts=2, eot_samples=16, square_queries=1000, cert_samples=100, cert_n=1000)
    return AttackBudget(steps=20, restarts=1, eot_samples=8, square_queries=300, cert_samples=50, cert_n=256)


def _defense_of(target: Target) -> dict[str, Any] | None:
    from bastion.defenses.sanitizers.export import read_defense

    return read_defense(target.model_path, getattr(target.model, "module", None))


def _eps(target: Target, ctx: CheckContext, defense: dict[str, Any], x: np.ndarray) -> float:
    if ctx.option("reference_eps") is not None:
        return float(ctx.option("reference_eps"))
    trained = defense.get("params", {}).get("eps")
    if trained:
        return float(trained)
    spec = target.model.input_spec
    if spec.clip_min is not None and spec.clip_max is not None:
        return round(0.1 * float(spec.clip_max - spec.clip_min), 6)
    return round(0.1 * float(np.median(x.reshape(len(x), -1).std(0)) or 1.0), 6)


def _bar_png(m: dict[str, Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [("clean_accuracy", "clean"), ("base_robust_accuracy", "undefended\nbase (PGD)"),
            ("naive_robust_accuracy", "naive PGD\n(on wrapper)"), ("adaptive_robust_accuracy", m["adaptive_attack"]),
            ("blackbox_robust_accuracy", "Square\n(black-box)"), ("robust_accuracy", "worst case")]
    items = [(label, m[k]) for k, label in keys if k in m]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    colors = ["#7f8c8d"] + ["#c0392b" if lbl == "worst case" else "#2e86c1" for lbl, _ in items[1:]]
    ax.bar([lbl for lbl, _ in items], [v for _, v in items], color=colors)
    for i, (_, v) in enumerate(items):
        ax.text(i, v + 0.02, f"{v:.2f}", ha="center", fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"{m['defense']}: accuracy under attack at eps={m['eps']:g} (L∞)", fontsize=10)
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _training_claim(target: Target) -> float | None:
    if not target.model_path:
        return None
    p = Path(target.model_path)
    rec = p.with_name(p.name + ".training.json")
    if not rec.is_file():
        return None
    try:
        val = json.loads(rec.read_text(encoding="utf-8")).get("best_robust_accuracy")
    except (json.JSONDecodeError, OSError):
        return None
    return float(val) if isinstance(val, int | float) else None


def _defended(target: Target) -> bool:
    has_data = target.data.has_test or target.data.has_train
    return target.is_white_box and has_data and _defense_of(target) is not None


@check(id="defenses.adaptive", title="Defence re-assessed adaptively (BPDA / EOT / black-box)", controls=CONTROLS,
       applies=_defended)
def adaptive_defense_check(target: Target, ctx: CheckContext) -> Outcome:
    """Attack a defended model the way a defence-aware adversary would."""
    from bastion.defenses.sanitizers.evaluate import MASKING_GAP, evaluate_defense

    defense = _defense_of(target) or {}
    x_all, y_all = target.data.eval_split()
    n = min(len(x_all), int(ctx.option("samples", SAMPLES[ctx.profile])))
    x, y = np.asarray(x_all[:n], np.float32), np.asarray(y_all[:n], np.int64)
    eps = _eps(target, ctx, defense, x)
    spec = target.model.input_spec
    ctx.progress(0, 1)
    m = evaluate_defense(target.model.module, defense, x, y, eps, spec.clip_min, spec.clip_max,  # type: ignore[attr-defined]
                         _budget(ctx.profile), seed=ctx.seed)
    ctx.progress(1, 1)
    params = m.pop("params")
    params["profile"] = ctx.profile
    findings = _findings(m, target)
    sev = max((f.severity for f in findings), default=None)
    status = Status.FAIL if sev is not None and sev >= Severity.HIGH else (Status.WARN if findings else Status.PASS)
    masking = " — it MASKS GRADIENTS (not robust)" if m["gradient_masking"] else ""
    summary = (f"{m['defense']} at eps={eps:g}: clean {m['clean_accuracy']:.2f}, naive PGD "
               f"{m['naive_robust_accuracy']:.2f}, adaptive ({m['adaptive_attack']}) "
               f"{m['adaptive_robust_accuracy']:.2f}, black-box {m['blackbox_robust_accuracy']:.2f}, "
               f"worst case {m['robust_accuracy']:.2f}{masking}")
    m["masking_threshold"] = MASKING_GAP
    return Outcome(status, summary, m, params, findings, artifacts={"defense_adaptive.png": _bar_png(m)})


def _findings(m: dict[str, Any], target: Target) -> list[Finding]:
    name = m["defense"]
    out: list[Finding] = []
    ev: dict[str, Any] = {k: m[k] for k in ("eps", "samples", "clean_accuracy", "naive_robust_accuracy", "adaptive_robust_accuracy",
                            "blackbox_robust_accuracy", "robust_accuracy", "adaptive_attack") if k in m}
    if m["gradient_masking"]:
        out.append(Finding(
            "defenses.gradient_masking", Severity.HIGH,
            f"{name} only masks gradients: naive PGD reports {m['naive_robust_accuracy']:.0%} robust accuracy, "
            f"the adaptive worst case is {m['robust_accuracy']:.0%}",
            evidence=ev, controls=list(CONTROLS),
            recommendation="do not rely on this wrapper; train robustness in: bastion harden adversarial-training "
                           "--model-spec ARCH --data D --method pgd --eps E --out robust.pt"))
    if m.get("adaptive_evasion_rate", 0.0) >= 0.3:
        out.append(Finding(
            "defenses.detector_bypassed", Severity.HIGH,
            f"the {name} detector is bypassed by a detector-aware attack for {m['adaptive_evasion_rate']:.0%} "
            f"of inputs (AUC against naive PGD: {m.get('detection_auc', float('nan')):.2f})",
            evidence={**ev, **{k: m[k] for k in ("detection_auc", "detection_rate", "adaptive_evasion_rate",
                                                  "detection_threshold") if k in m}},
            controls=list(CONTROLS),
            recommendation="treat the detector as a tripwire, not a defence; combine with bastion harden "
                           "adversarial-training and gateway rate limits"))
    if "base_robust_accuracy" in m and m["robust_accuracy"] - m["base_robust_accuracy"] < 0.05:
        out.append(Finding(
            "defenses.no_gain", Severity.MEDIUM,
            f"{name} adds no real robustness: worst case {m['robust_accuracy']:.0%} vs undefended "
            f"{m['base_robust_accuracy']:.0%}", evidence=ev, controls=list(CONTROLS),
            recommendation="bastion harden adversarial-training --model-spec ARCH --data D --eps E --out robust.pt"))
    claim = _training_claim(target)
    if claim is not None:
        m["training_record_robust_accuracy"] = claim
        if m["robust_accuracy"] < claim - 0.10:
            out.append(Finding(
                "defenses.below_claim", Severity.MEDIUM,
                f"measured worst-case robust accuracy {m['robust_accuracy']:.0%} is below the "
                f"{claim:.0%} the training record claims (validation PGD)", evidence={**ev, "claimed": claim},
                controls=list(CONTROLS),
                recommendation="retrain with more PGD steps / restarts: bastion harden adversarial-training "
                               "--steps 10 --patience 3 ..."))
    return out

