"""Evasion checks: the robustness curve, the worst case over an attack ensemble, gradient masking.

Severity from the measured drop at the reference budget (relative drop = (clean − robust) / clean):

=================  ===========================================================
relative drop      severity
=================  ===========================================================
≥ 0.5              high (critical when the drop is ≥ 0.5 already at 2% of the
                   data's range — an imperceptible budget)
0.2 – 0.5          medium
0.05 – 0.2         low
< 0.05             no finding (pass)
=================  ===========================================================

The eps grid follows the data's range (resolved by :mod:`bastion.core.domain`: flag, sidecar, model
metadata, else inferred from the data): ``(0.01, 0.02, 0.05, 0.1, 0.2, 0.3)`` × (clip_max − clip_min)
for bounded inputs (MNIST in [0, 1]: 0.01 … 0.3). Unbounded (tabular) inputs are attacked in per-feature
units — ``x = mean + std ⊙ z`` (``AffineInputAdapter``), so ε = 0.1 moves every feature by a tenth of
its own standard deviation (a raw ε would move a feature measured in hundreds by nothing and one
measured in tenths by a whole std); grid ``(0.02, 0.05, 0.1, 0.2, 0.5, 1.0)``. The option
``eps_unit=median-std`` restores one raw-unit scale (the median feature std). The reference budget is
0.1 × the scale. ``ctx.options`` may set
``eps`` (list), ``reference_eps``, ``norm``, ``samples`` and ``attack_batch_size`` (split each attack's
samples into batches the executor may run in parallel; see ``bastion.assess.executors.batches``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bastion.assess.executors.batches import batch_size_option
from bastion.assess.registry import CheckContext, Outcome, Profile, check, worst_status
from bastion.core.results import Finding
from bastion.core.severity import Severity
from bastion.core.target import Target

CONTROLS = [
    "mitre-atlas:AML.T0015",
    "mitre-atlas:AML.T0043",
    "owasp-ml:ML01:2023",
    "eu-ai-act:Art15(5)",
    "nist-ai-rmf:MEASURE-2.7",
]
GRID_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3)
UNBOUNDED_GRID_FRACTIONS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
REFERENCE_FRACTION = 0.1
IMPERCEPTIBLE_FRACTION = 0.02
SAMPLES = {"quick": 100, "standard": 200, "thorough": 500}
BLACK_BOX_SAMPLES = {"quick": 50, "standard": 100, "thorough": 200}
LABEL_ONLY_SAMPLES = {"quick": 10, "standard": 25, "thorough": 60}
PGD_STEPS = {"quick": 10, "standard": 20, "thorough": 40}
SQUARE_QUERIES = {"quick": 200, "standard": 500, "thorough": 2000}
HSJ_ITERS = {"quick": 10, "standard": 20, "thorough": 40}


@dataclass
class EvasionPlan:
    """What the evasion checks attack with on one target (all of it lands in ``params``)."""

    norm: str
    grid: list[float]
    reference_eps: float
    scale: float
    scale_unit: str
    samples: int
    x: np.ndarray
    y: np.ndarray
    clip_min: float | None
    clip_max: float | None
    white_box: bool
    label_only: bool
    profile: Profile
    seed: int
    batch_size: int | None = None  # ``attack_batch_size``: attacks split into batches the executor runs
    range_source: str = "unknown"
    view: Any = None  # unbounded inputs: an ``AffineInputAdapter`` whose unit is each feature's std

    @property
    def black_box_attack(self) -> str:
        return "hsj" if self.label_only else "square"

    def attack_steps(self, attack: str) -> int:
        if attack == "square":
            return SQUARE_QUERIES[self.profile]
        if attack == "hsj":
            return HSJ_ITERS[self.profile]
        return PGD_STEPS[self.profile]

    def range_text(self) -> str:
        """``input range [0, 1] (inferred from data)``, or the ε unit of an unbounded input."""
        if self.clip_min is not None and self.clip_max is not None:
            return f"input range [{self.clip_min:g}, {self.clip_max:g}] ({self.range_source})"
        if self.view is not None:
            return f"input unbounded ({self.range_source}): ε in units of each feature's std"
        return f"input unbounded ({self.range_source}): ε in units of the {self.scale_unit} {self.scale:.3g}"

    def params(self) -> dict[str, Any]:
        return {"norm": self.norm, "eps_grid": self.grid, "reference_eps": self.reference_eps,
                "eps_scale": self.scale, "eps_scale_unit": self.scale_unit, "samples": self.samples,
                "clip_min": self.clip_min, "clip_max": self.clip_max,
                "input_range": {"clip_min": self.clip_min, "clip_max": self.clip_max, "source": self.range_source},
                "white_box": self.white_box,
                "profile": self.profile, "seed": self.seed,
                **({"attack_batch_size": self.batch_size} if self.batch_size else {}),
                **({"feature_std": {"min": float(self.view.scale.min()), "median": float(np.median(self.view.scale)),
                                    "max": float(self.view.scale.max())}} if self.view is not None else {})}


def plan_for(target: Target, ctx: CheckContext) -> EvasionPlan:
    """Eps grid, reference budget, samples and attack sizes for ``target`` under ``ctx``."""
    x_all, y_all = target.data.eval_split()
    spec = target.model.input_spec
    white = target.is_white_box
    label_only = bool(getattr(target.model, "label_only", False))
    table = SAMPLES if white else (LABEL_ONLY_SAMPLES if label_only else BLACK_BOX_SAMPLES)
    n = min(len(x_all), int(ctx.option("samples", table[ctx.profile])))
    x, y = np.asarray(x_all[:n], dtype=np.float32), np.asarray(y_all[:n], dtype=np.int64)
    view = None
    if spec.clip_min is not None and spec.clip_max is not None:
        scale, unit, fractions = float(spec.clip_max - spec.clip_min), "input range", GRID_FRACTIONS
    elif ctx.option("eps_unit", "feature-std") == "median-std":  # the older single scale, kept as an option
        std = np.asarray(x_all, dtype=np.float64).reshape(len(x_all), -1).std(0)
        scale, unit, fractions = float(np.median(std)) or 1.0, "median feature std", UNBOUNDED_GRID_FRACTIONS
    else:  # every feature moves by ε of its own standard deviation
        from bastion.models.adapters import AffineInputAdapter

        flat = np.asarray(x_all, dtype=np.float64).reshape(len(x_all), -1)
        view = AffineInputAdapter(target.model, flat.mean(0), flat.std(0))
        scale, unit, fractions = 1.0, "per-feature std", UNBOUNDED_GRID_FRACTIONS
    grid = [round(f * scale, 6) for f in fractions]
    custom = ctx.option("eps")
    if custom is not None:
        grid = sorted(float(e) for e in (custom if isinstance(custom, list | tuple) else [custom]))
    ref = float(ctx.option("reference_eps", round(REFERENCE_FRACTION * scale, 6)))
    if custom is not None and ctx.option("reference_eps") is None:
        ref = grid[len(grid) // 2]
    if ref not in grid:
        grid = sorted([*grid, ref])
    return EvasionPlan(norm=str(ctx.option("norm", "linf")), grid=grid, reference_eps=ref, scale=scale,
                       scale_unit=unit, samples=n, x=x, y=y, clip_min=spec.clip_min, clip_max=spec.clip_max,
                       white_box=white, label_only=label_only, profile=ctx.profile, seed=ctx.seed,
                       batch_size=batch_size_option(ctx.options), range_source=target.input_range().source, view=view)


def severity_for(clean: float, robust: float) -> Severity | None:
    """Severity of a robust-accuracy drop (thresholds in the module docstring); None = no finding."""
    drop = (clean - robust) / clean if clean > 0 else 0.0
    if drop >= 0.5:
        return Severity.HIGH
    if drop >= 0.2:
        return Severity.MEDIUM
    if drop >= 0.05:
        return Severity.LOW
    return None


DEMO_ARCHITECTURES = {"digits": "digits-mlp", "mnist": "mnist-cnn", "breast-cancer": "tabular-mlp",
                      "breast-cancer-sklearn": "tabular-mlp"}


def harden_command(target: Target, plan: EvasionPlan) -> str:
    """The ``bastion harden adversarial-training`` call that addresses an evasion finding."""
    eps = f"--eps {plan.reference_eps:g}"
    if target.name.startswith("demo:"):
        demo = target.name.split(":", 1)[1]
        arch = DEMO_ARCHITECTURES.get(demo, "ARCH")
        return f"bastion harden adversarial-training --demo {demo} --model-spec {arch} {eps} --out robust.pt"
    data = target.data_path or "DATA"
    cmd = f"bastion harden adversarial-training --data {data} --model-spec ARCH {eps} --out robust.pt"
    return cmd if plan.norm == "linf" else cmd + " (adversarial training is L∞; use the L∞ budget that covers this L2 ball)"


def _applies(target: Target) -> bool:
    if target.metadata.task != "classification":
        return False
    try:
        x, _ = target.data.eval_split()
    except Exception:
        return False
    return len(x) > 0


def _attack(target: Target, plan: EvasionPlan, attack: str, eps: float, x: np.ndarray | None = None,
            y: np.ndarray | None = None, **kw: Any) -> Any:
    from bastion.assess.executors.batches import run_attack

    if attack == "pgd":
        kw.setdefault("early_stop", True)
    xs = plan.x if x is None else x
    model = target.model if plan.view is None else plan.view
    r = run_attack(model, xs if plan.view is None else plan.view.to_z(xs), plan.y if y is None else y, attack,
                   plan.norm, eps, steps=kw.pop("steps", plan.attack_steps(attack)), seed=plan.seed,
                   batch_size=plan.batch_size, **kw)
    if plan.view is not None:  # back to the model's own units
        r.x_adv = plan.view.to_x(r.x_adv)
    return r


def _curve_plan(target: Target, ctx: CheckContext) -> dict[str, Any]:
    plan = plan_for(target, ctx)
    attack = "pgd" if plan.white_box else plan.black_box_attack
    return {**plan.params(), "attack": attack, "steps": plan.attack_steps(attack)}


@check(id="evasion.robustness_curve",
       title="Robustness curve: accuracy under evasion attack across perturbation budgets", controls=CONTROLS,
       applies=_applies, plan=_curve_plan)
def robustness_curve_check(target: Target, ctx: CheckContext) -> Outcome:
    """Accuracy under attack across an eps grid: PGD (white-box) or Square/HopSkipJump (black-box)."""
    plan = plan_for(target, ctx)
    attack = "pgd" if plan.white_box else plan.black_box_attack
    curve: list[dict[str, Any]] = []
    at_ref = None
    clean = 0.0
    for i, eps in enumerate(plan.grid):
        r = _attack(target, plan, attack, eps)
        clean = r.clean_accuracy
        curve.append({"eps": eps, "robust_accuracy": r.robust_accuracy,
                      "attack_success_rate": r.attack_success_rate, "duration_s": round(r.duration_s, 3)})
        if eps == plan.reference_eps:
            at_ref = r
        ctx.progress(i + 1, len(plan.grid) + 1)
    assert at_ref is not None
    artifacts = _pictures(target, plan, attack, curve, clean, at_ref)
    ctx.progress(len(plan.grid) + 1, len(plan.grid) + 1)
    robust = at_ref.robust_accuracy
    findings = []
    sev = severity_for(clean, robust)
    if sev is not None:
        tiny = [p for p in curve if p["eps"] <= IMPERCEPTIBLE_FRACTION * plan.scale + 1e-12]
        if sev == Severity.HIGH and any(severity_for(clean, p["robust_accuracy"]) == Severity.HIGH for p in tiny):
            sev = Severity.CRITICAL
        findings.append(Finding(
            id="evasion.low_robustness", severity=sev,
            title=(f"Small input changes fool the model: accuracy falls from {clean:.0%} to {robust:.0%} "
                   f"under {attack.upper()} at ε = {plan.reference_eps:g} ({plan.norm})"),
            evidence={"clean_accuracy": clean, "robust_accuracy": robust, "attack": attack,
                      "reference_eps": plan.reference_eps, "norm": plan.norm, "samples": plan.samples,
                      "steps": plan.attack_steps(attack), "seed": plan.seed, "curve": curve},
            recommendation=harden_command(target, plan), controls=list(CONTROLS)))
    return Outcome(
        worst_status(findings),
        f"{attack}: accuracy {clean:.1%} → {robust:.1%} at ε={plan.reference_eps:g} ({plan.norm}, "
        f"{plan.samples} samples; {plan.range_text()})",
        metrics={"clean_accuracy": clean, "robust_accuracy": robust, "reference_eps": plan.reference_eps,
                 "attack": attack, "curve": curve},
        params={**plan.params(), "attack": attack, "steps": plan.attack_steps(attack), "attack_params": at_ref.params},
        findings=findings, artifacts=artifacts,
    )


def _pictures(target: Target, plan: EvasionPlan, attack: str, curve: list[dict[str, Any]], clean: float,
          at_ref: Any) -> dict[str, bytes]:
    from bastion.attacks.evasion.plots import gallery_png, robustness_curve_png

    label = "ε (L∞)" if plan.norm == "linf" else "ε (L2)"
    out = {"robustness_curve.png": robustness_curve_png(
        {attack.upper(): [(p["eps"], p["robust_accuracy"]) for p in curve]}, clean, plan.reference_eps,
        xlabel=label, title=f"{target.name}: accuracy under attack")}
    if target.metadata.data_kind == "image" and plan.x.ndim == 4:
        order = np.concatenate([np.flatnonzero(at_ref.success), np.flatnonzero(~at_ref.success)])[:8]
        lo = plan.clip_min if plan.clip_min is not None else float(plan.x.min())
        hi = plan.clip_max if plan.clip_max is not None else float(plan.x.max())
        out["adversarial_examples.png"] = gallery_png(
            plan.x[order], at_ref.x_adv[order], plan.y[order], at_ref.pred_adv[order],
            target.metadata.class_names, value_range=(lo, hi))
    return out


ENSEMBLES: dict[tuple[Profile, bool], list[tuple[str, dict[str, Any]]]] = {
    ("quick", True): [("pgd", {})],
    ("standard", True): [("pgd", {"restarts": 2}), ("apgd-ce", {"steps": 50})],
    ("thorough", True): [("apgd-ce", {"steps": 100}), ("apgd-dlr", {"steps": 100}), ("square", {})],
    ("quick", False): [("square", {})],
    ("standard", False): [("square", {})],
    ("thorough", False): [("square", {}), ("hsj", {})],
}


def _ensemble_plan(target: Target, ctx: CheckContext) -> dict[str, Any]:
    plan = plan_for(target, ctx)
    return {**plan.params(), "ensemble": [a for a, _ in ENSEMBLES[(ctx.profile, plan.white_box)]]}


@check(id="evasion.worst_case", title="Worst case over an evasion attack ensemble at the reference budget",
       controls=CONTROLS, applies=_applies, plan=_ensemble_plan)
def worst_case_check(target: Target, ctx: CheckContext) -> Outcome:
    """Per-sample worst case over an attack ensemble (``thorough`` = AutoAttack-style APGD-CE + APGD-DLR + Square)."""
    plan = plan_for(target, ctx)
    ensemble = [(a, kw) for a, kw in ENSEMBLES[(ctx.profile, plan.white_box)]
                if not (plan.label_only and a == "square")] or [("hsj", {})]
    eps = plan.reference_eps
    robust = np.ones(plan.samples, dtype=bool)
    per_attack: list[dict[str, Any]] = []
    clean = 0.0
    for i, (attack, kw) in enumerate(ensemble):
        idx = np.flatnonzero(robust)
        if idx.size == 0:
            per_attack.append({"attack": attack, "attacked": 0, "broken": 0, "skipped": "no robust samples left"})
            continue
        r = _attack(target, plan, attack, eps, plan.x[idx], plan.y[idx], **dict(kw))
        if i == 0:
            clean = r.clean_accuracy
            robust[idx[r.pred_clean != plan.y[idx]]] = False
        broken = idx[r.success]
        robust[broken] = False
        per_attack.append({"attack": attack, "attacked": int(idx.size), "broken": int(broken.size),
                           "params": r.params, "duration_s": round(r.duration_s, 3)})
        ctx.progress(i + 1, len(ensemble))
    worst = float(robust.mean())
    names = " + ".join(a.upper() for a, _ in ensemble)
    findings = []
    sev = severity_for(clean, worst)
    if sev is not None:
        findings.append(Finding(
            id="evasion.worst_case_robustness", severity=sev,
            title=f"Worst case over {names}: accuracy {clean:.0%} → {worst:.0%} at ε = {eps:g} ({plan.norm})",
            evidence={"clean_accuracy": clean, "robust_accuracy": worst, "ensemble": per_attack,
                      "reference_eps": eps, "norm": plan.norm, "samples": plan.samples, "seed": plan.seed},
            recommendation=harden_command(target, plan), controls=list(CONTROLS)))
    return Outcome(
        worst_status(findings),
        f"worst case of {names}: {clean:.1%} → {worst:.1%} at ε={eps:g} ({plan.samples} samples; "
        f"{plan.range_text()})",
        metrics={"clean_accuracy": clean, "robust_accuracy": worst, "reference_eps": eps,
                 "ensemble": [p["attack"] for p in per_attack], "per_attack": per_attack},
        params={**plan.params(), "ensemble": [{"attack": a, **kw} for a, kw in ensemble]},
        findings=findings,
    )


@check(id="evasion.gradient_masking", title="Reliability of the white-box evaluation (gradient masking)",
       controls=CONTROLS, applies=lambda target: _applies(target) and target.is_white_box)
def gradient_masking_check(target: Target, ctx: CheckContext) -> Outcome:
    """Reliability flags: is the white-box evaluation trustworthy, or does the model mask gradients?"""
    import torch

    from bastion.attacks.evasion.masking import diagnose_gradient_masking

    plan = plan_for(target, ctx)
    n = min(plan.samples, int(ctx.option("masking_samples", {"quick": 64, "standard": 100, "thorough": 200}[ctx.profile])))
    module = (target.model if plan.view is None else plan.view).module  # type: ignore[attr-defined,union-attr]
    xs = plan.x[:n] if plan.view is None else plan.view.to_z(plan.x[:n])
    rep = diagnose_gradient_masking(
        module, torch.from_numpy(xs), torch.from_numpy(plan.y[:n]), plan.reference_eps,
        plan.norm, plan.clip_min, plan.clip_max, steps=PGD_STEPS[ctx.profile],  # type: ignore[arg-type]
        square_queries=SQUARE_QUERIES[ctx.profile], seed=plan.seed, progress=ctx.progress)
    findings = []
    for flag in rep.flags:
        high = flag.severity == "high"
        title = (f"Gradient masking: {flag.title}. White-box robustness numbers for this model are not "
                 "trustworthy — its apparent robustness may be false") if high else flag.title
        rec = (f"bastion attack evasion --attack square --eps {plan.reference_eps:g} (black-box), then "
               f"{harden_command(target, plan)} instead of gradient obfuscation") if high else (
            "evaluate with expectation over transformation (average gradients over several forward passes); "
            f"{harden_command(target, plan)}")
        findings.append(Finding(id=f"evasion.gradient_masking.{flag.id}",
                                severity=Severity.HIGH if high else Severity.MEDIUM, title=title,
                                evidence={**flag.evidence, **rep.params}, recommendation=rec,
                                controls=list(CONTROLS)))
    verdict = "gradient masking suspected" if rep.masked else (
        "no sign of gradient masking" if not rep.flags else "minor reliability warnings")
    return Outcome(
        worst_status(findings), f"{verdict} ({len(rep.flags)} flag(s), {n} samples)",
        metrics={**rep.metrics, "gradient_masking": rep.masked, "flags": [f.id for f in rep.flags]},
        params={**plan.params(), **rep.params, "samples": n}, findings=findings,
    )
