"""Privacy and model-theft checks: membership, inversion, attribute inference, extraction.

Each check runs the attack from ``bastion.attacks`` on the target and reports the measured
numbers with their parameters. ``privacy.membership`` also reads the DP privacy statement beside
the model (``MODEL.privacy.json``) and puts the claimed ε next to the measured TPR at 0.1 % FPR
and the empirical ε lower bound; an empirical bound above the claim is a critical finding.

Membership (every profile): the strongest attack the model's answers allow — online LiRA with
reference models that clone the target's architecture, a training recipe fitted to the target, and
as many models as the profile's time budget affords (quick 60 s, standard 180 s, thorough 600 s;
``label_only`` when the model answers labels only) — next to the LOSS threshold (standard and
thorough add the confidence attack). The best attack by TPR@1%FPR decides the severity, but only a
reference-model attack can decide a *pass*: when none could run (a label-only model, a budget too
small, ``membership_method`` forcing loss/confidence…) and nothing leaks, the check warns that the
result is inconclusive and says why. Extraction: quick = 1k queries, standard adds a 100/1k curve,
thorough a 10k-query one; standard adds inversion. Options: ``membership_method`` (force one of
loss/confidence/label_only/lira/rmia), ``reference_mode`` (online/offline, default online),
``n_reference`` (default: from the budget), ``time_budget`` (seconds), ``extraction_budget``,
``extraction_policy`` (an output policy config to measure its effect), ``sensitive`` (column for
``privacy.attribute``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from bastion.assess.registry import CheckContext, Outcome, check, finding_if, status_for_severity
from bastion.core.errors import ConfigError, InvalidInputError
from bastion.core.results import Finding
from bastion.core.severity import Severity, Status
from bastion.core.target import Target

if TYPE_CHECKING:
    from bastion.attacks.inference.membership import MembershipConfig, MembershipMethod, MembershipResult
    from bastion.core.model import ModelAdapter

MEMBERSHIP_CONTROLS = ["mitre-atlas:AML.T0024.000", "owasp-ml:ML04:2023", "nist-ai-rmf:MEASURE-2.10",
                       "eu-ai-act:Art15(5)", "gdpr:Art32"]
INVERSION_CONTROLS = ["mitre-atlas:AML.T0024.001", "owasp-ml:ML03:2023", "nist-ai-rmf:MEASURE-2.10",
                      "eu-ai-act:Art15(5)", "gdpr:Art32"]
EXTRACTION_CONTROLS = ["mitre-atlas:AML.T0024.002", "owasp-ml:ML05:2023", "nist-ai-rmf:MEASURE-2.7",
                       "eu-ai-act:Art15(5)"]


@dataclass
class MembershipSplit:
    x_members: np.ndarray
    y_members: np.ndarray
    x_nonmembers: np.ndarray
    y_nonmembers: np.ndarray
    x_pop: np.ndarray | None = None
    y_pop: np.ndarray | None = None
    params: dict[str, Any] = field(default_factory=dict)


def membership_split(target: Target, max_records: int, needs_population: bool, seed: int = 0) -> MembershipSplit:
    """Members = training set, non-members = test set (balanced, at most ``max_records`` each).

    When a reference-model attack needs population data and the target has no ``x_pop``, half
    of the non-members become the attacker's population (recorded in ``params``).
    """
    d = target.data
    if not d.has_train or not d.has_test:
        raise InvalidInputError("membership inference needs members (x_train/y_train) and non-members "
                                "(x_test/y_test) in the data")
    assert d.x_train is not None and d.y_train is not None and d.x_test is not None and d.y_test is not None
    rng = np.random.default_rng(seed)
    xt, yt = d.x_test, d.y_test
    xp, yp = d.x_pop, d.y_pop
    source = "x_pop" if xp is not None else None
    if needs_population and xp is None:
        perm = rng.permutation(len(xt))
        half = len(xt) // 2
        xp, yp = xt[perm[:half]], yt[perm[:half]]
        xt, yt = xt[perm[half:]], yt[perm[half:]]
        source = "half of x_test (no x_pop in the data)"
    n_non = min(len(xt), max_records)
    n_mem = min(len(d.x_train), max_records)
    mi = rng.permutation(len(d.x_train))[:n_mem]
    ni = rng.permutation(len(xt))[:n_non]
    return MembershipSplit(d.x_train[mi], d.y_train[mi], xt[ni], yt[ni], xp, yp,
                           {"population": source, "max_records": max_records})


def target_membership(target: Target, cfg: MembershipConfig, *, auto_method: bool = False, max_records: int = 2000,
                      factory: Callable[[], Any] | None = None, victim: ModelAdapter | None = None,
                      progress: Callable[[float, float], None] | None = None) -> MembershipResult:
    """The library call behind ``bastion attack membership``: split the target's data, pick the attack, run it.

    ``auto_method``: replace ``cfg.method`` by :func:`default_method` (online LiRA when the model returns
    scores, ``label_only`` when it answers labels only) and record why. Online LiRA's reference models
    train on the target's training-set size of candidates (at most half of them) unless ``cfg`` sets it.
    ``victim`` attacks another view of the model (e.g. behind an output policy).
    """
    from bastion.attacks.inference.membership import default_method, online_set_size, run_membership

    model = victim or target.model
    reason = None
    if auto_method:
        probe = target.data.x_train if target.data.x_train is not None else target.data.eval_split()[0]
        method, reason = default_method(model, probe)
        cfg = replace(cfg, method=method)
    split = membership_split(target, max_records, needs_population=cfg.needs_population, seed=cfg.seed)
    if cfg.method == "lira" and cfg.reference_mode == "online" and cfg.reference_set_size is None:
        n_train = len(target.data.x_train) if target.data.x_train is not None else len(split.x_members)
        cfg = replace(cfg, reference_set_size=online_set_size(n_train, len(split.x_members) + len(split.x_nonmembers)))
    r = run_membership(model, split.x_members, split.y_members, split.x_nonmembers, split.y_nonmembers, cfg,
                       split.x_pop, split.y_pop, reference_factory=factory, progress=progress)
    r.params.update(split.params, method_choice=f"default: {reason}" if reason else "given")
    return r


def extraction_split(target: Target, seed: int = 0) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """(attacker pool, evaluation inputs, evaluation labels); the pool never overlaps the evaluation set.

    With ``x_pop`` the attacker holds it and fidelity is measured on the test split; otherwise the
    attacker holds the test split and fidelity is measured on the victim's training data, which
    the attacker never sees. With one split only, it is halved.
    """
    d = target.data
    if d.x_pop is not None:
        ev_x, ev_y = d.eval_split()
        return d.x_pop, ev_x, ev_y
    if d.x_test is not None and d.x_train is not None:
        return d.x_test, d.x_train, d.y_train
    ev_x, ev_y = d.eval_split()
    perm = np.random.default_rng(seed).permutation(len(ev_x))
    half = len(ev_x) // 2
    if half < 1:
        return None, ev_x, ev_y
    return ev_x[perm[:half]], ev_x[perm[half:]], ev_y[perm[half:]]


def _membership_severity(auc: float, tpr1: float | None) -> Severity | None:
    t = tpr1 or 0.0
    if auc >= 0.70 or t >= 0.10:
        return Severity.HIGH
    if auc >= 0.60 or t >= 0.03:
        return Severity.MEDIUM
    if auc >= 0.55:
        return Severity.LOW
    return None


def _dp_command(target: Target) -> str:
    data = target.data_path or "DATA.npz"
    arch = {"image": "mnist-cnn", "tabular": "tabular-mlp"}.get(target.metadata.data_kind, "ARCH")
    if target.name == "demo:digits":
        arch = "digits-mlp"
    return f"bastion harden dp --model-spec {arch} --data {data} --epsilon 3 --delta 1e-5 --out model-dp.pt"


MEMBERSHIP_BUDGET_S = {"quick": 60.0, "standard": 180.0, "thorough": 600.0}
MEMBERSHIP_BASELINES: dict[str, list[MembershipMethod]] = {"quick": ["loss"], "standard": ["loss", "confidence"], "thorough": ["loss", "confidence"]}


@check(id="privacy.membership",
       title="Membership inference (reference-model LiRA on a clone of the target, LOSS/confidence baselines)",
       controls=MEMBERSHIP_CONTROLS, applies=lambda target: target.data.has_train and target.data.has_test)
def membership_check(target: Target, ctx: CheckContext) -> Outcome:
    """Membership inference with TPR at low FPR, next to the claimed DP ε when there is one."""
    from bastion.attacks.inference.membership import MEMBERSHIP_METHODS, MembershipConfig
    from bastion.attacks.inference.metrics import roc_plots_png
    from bastion.core.errors import BastionError
    from bastion.defenses.dp import read_privacy_statement

    forced = ctx.option("membership_method")
    if forced is not None and forced not in MEMBERSHIP_METHODS:
        raise ConfigError(f"unknown membership_method {forced!r}; choose one of {', '.join(MEMBERSHIP_METHODS)}")
    mode = str(ctx.option("reference_mode", "online"))
    if mode not in ("online", "offline"):
        raise ConfigError(f"unknown reference_mode {mode!r}; choose online or offline")
    n_ref = ctx.option("n_reference")
    budget = float(ctx.option("time_budget", MEMBERSHIP_BUDGET_S[ctx.profile]))
    base = MembershipConfig(method=forced or "lira", n_reference=None if n_ref is None else int(n_ref),
                            time_budget_s=budget, reference_mode=mode, seed=ctx.seed)  # type: ignore[arg-type]
    max_records = int(ctx.option("max_records", 2000))
    runs: list[tuple[Any, bool]] = [(base, forced is None)]
    if forced is None:
        runs += [(replace(base, method=m), False) for m in MEMBERSHIP_BASELINES[ctx.profile]]
    per: dict[str, Any] = {}
    results = []
    inconclusive: list[str] = []
    for i, (cfg, auto) in enumerate(runs):
        try:
            r = target_membership(target, cfg, auto_method=auto, max_records=max_records)
        except BastionError as exc:
            if not cfg.uses_reference_models:
                raise
            inconclusive.append(f"the reference-model attack could not run: {exc}")
            continue
        per[r.method] = {k: v for k, v in r.metrics.to_dict().items() if k != "notes"}
        results.append(r)
        ctx.progress(i + 1, len(runs))
    if not results:
        raise InvalidInputError("no membership attack could run: " + "; ".join(inconclusive))
    best = max(results, key=lambda r: (r.metrics.tpr_at_1pct_fpr or 0.0, r.metrics.auc))
    ref = next((r for r in results if r.method in ("lira", "rmia")), None)
    if ref is None and not inconclusive:
        inconclusive.append(f"only {', '.join(r.method for r in results)} ran: threshold attacks miss most of what "
                            "reference-model attacks find, so they cannot show the absence of leakage")
    stmt = read_privacy_statement(target.model_path)
    m = best.metrics
    metrics: dict[str, Any] = {
        "auc": m.auc, "tpr_at_1pct_fpr": m.tpr_at_1pct_fpr, "tpr_at_0_1pct_fpr": m.tpr_at_0_1pct_fpr,
        "balanced_accuracy": m.balanced_accuracy,
        "empirical_epsilon_lower_bound": m.empirical_epsilon_lower_bound,
        "claimed_epsilon": None if stmt is None else stmt.epsilon,
        "claimed_delta": None if stmt is None else stmt.delta,
        "best_method": best.method, "by_method": per, "notes": m.notes,
        "conclusive": ref is not None, "inconclusive_reason": "; ".join(inconclusive) or None,
    }
    params: dict[str, Any] = {"methods": [r.method for r in results], "time_budget_s": budget,
                              "reference_mode": mode if ref is not None else None, "seed": ctx.seed,
                              "n_members": m.n_members, "n_nonmembers": m.n_nonmembers,
                              "epsilon_bound": "95% Clopper-Pearson, delta=1e-5"}
    if ref is not None:
        params.update({k: ref.params[k] for k in ("n_reference", "n_reference_source", "reference_arch",
                                                 "clone_unavailable", "reference_recipe", "recipe_source",
                                                 "fit_match", "measured_model_epoch_s", "method_choice",
                                                 "population") if k in ref.params})
    findings: list[Finding] = []
    sev = _membership_severity(m.auc, m.tpr_at_1pct_fpr)
    evidence = {k: metrics[k] for k in ("auc", "tpr_at_1pct_fpr", "tpr_at_0_1pct_fpr",
                                        "empirical_epsilon_lower_bound", "claimed_epsilon", "best_method")}
    if sev is not None:
        findings.append(Finding(
            "privacy.membership.leak", sev,
            f"training-set membership is inferable ({best.method}: AUC {m.auc:.3f}, "
            f"TPR@1%FPR {m.tpr_at_1pct_fpr if m.tpr_at_1pct_fpr is not None else 'n/a'})",
            evidence, f"retrain with differential privacy: `{_dp_command(target)}`; serve labels only "
            "(output policy label_only) where probabilities are not needed", list(MEMBERSHIP_CONTROLS)))
    if stmt is not None and m.empirical_epsilon_lower_bound > stmt.epsilon:
        sev = Severity.CRITICAL
        findings.append(Finding(
            "privacy.membership.dp_claim_violated", Severity.CRITICAL,
            f"measured ε lower bound {m.empirical_epsilon_lower_bound:.2f} exceeds the claimed ε {stmt.epsilon:.2f}",
            evidence, "audit the DP training pipeline (sampling, clipping, accountant) and retrain: "
            f"`{_dp_command(target)}`", list(MEMBERSHIP_CONTROLS)))
    status = status_for_severity(sev)
    claim = f", claimed ε {stmt.epsilon:.2f}" if stmt else ""
    summary = (f"{best.method}: AUC {m.auc:.3f}, TPR@1%FPR "
               f"{'n/a' if m.tpr_at_1pct_fpr is None else f'{m.tpr_at_1pct_fpr:.3f}'}, "
               f"empirical ε ≥ {m.empirical_epsilon_lower_bound:.2f}{claim}")
    if status == Status.PASS and ref is None:
        status = Status.WARN
        summary = f"inconclusive ({summary}): {metrics['inconclusive_reason']}"
        findings.append(Finding(
            "privacy.membership.inconclusive", Severity.INFO,
            "membership leakage not established either way: no reference-model attack ran",
            {"reason": metrics["inconclusive_reason"], **evidence},
            "run the check with a reference-model attack: `bastion assess --option time_budget=300` (or "
            "`bastion attack membership --time-budget 300`)", list(MEMBERSHIP_CONTROLS)))
    return Outcome(status, summary, metrics, params, findings,
                   roc_plots_png(best.member_scores, best.nonmember_scores, f"membership ({best.method})"))


def _has_eval_split(target: Target) -> bool:
    try:
        target.data.eval_split()
    except InvalidInputError:
        return False
    return True


@check(id="privacy.extraction", title="Model extraction (Knockoff/Copycat surrogate, fidelity vs queries)",
       controls=EXTRACTION_CONTROLS, applies=_has_eval_split)
def extraction_check(target: Target, ctx: CheckContext) -> Outcome:
    """How many queries it takes to steal the model (fidelity vs queries), optionally behind a policy."""
    from bastion.attacks.extraction import ExtractionConfig, run_extraction
    from bastion.defenses.output_policy import PolicyWrappedModel

    default_budget = {"quick": 500, "standard": 1000, "thorough": 10000}[ctx.profile]
    budget = int(ctx.option("extraction_budget", default_budget))
    schedule = {"quick": (budget,), "standard": (100, budget), "thorough": (100, 1000, budget)}[ctx.profile]
    epochs = {"quick": 5, "standard": 20, "thorough": 30}[ctx.profile]
    cfg = ExtractionConfig(schedule=schedule, epochs=epochs, seed=ctx.seed)
    pool, ev_x, ev_y = extraction_split(target, ctx.seed)
    r = run_extraction(target.model, pool, budget, ev_x, ev_y, cfg)
    metrics: dict[str, Any] = {
        "fidelity": r.fidelity, "accuracy": r.curve[-1].accuracy if r.curve else None,
        "victim_accuracy": r.victim_accuracy, "fidelity_at_1k": r.fidelity_at(1000),
        "fidelity_at_10k": r.fidelity_at(10000) if budget >= 10000 else None,
        "queries_used": r.queries_used, "curve": [p.to_dict() for p in r.curve],
    }
    artifacts = {"extraction_curve.png": r.curve_png(f"extraction of {target.name}")}
    policy_cfg = ctx.option("extraction_policy")
    if policy_cfg:
        victim = PolicyWrappedModel(target.model, policy_cfg)
        rp = run_extraction(victim, pool, budget, ev_x, ev_y, cfg)
        metrics["policy"] = victim.policy.config.to_dict()
        metrics["fidelity_with_policy"] = rp.fidelity
        metrics["fidelity_drop"] = r.fidelity - rp.fidelity
        artifacts["extraction_curve_policy.png"] = rp.curve_png(f"extraction behind {victim.policy.type}")
    params = {**{k: v for k, v in r.params.items() if k != "schedule"}, "schedule": list(r.params["schedule"])}
    sev = Severity.HIGH if r.fidelity >= 0.9 else Severity.MEDIUM if r.fidelity >= 0.7 else None
    findings = finding_if(
        sev, "privacy.extraction.cheap",
        f"a surrogate agrees with the model on {r.fidelity:.1%} of inputs after {r.queries_used} queries",
        {"fidelity": r.fidelity, "queries": r.queries_used, "victim_accuracy": r.victim_accuracy},
        "serve through the gateway with a per-client query budget and an output policy "
        "(label_only, top_k or prediction_poisoning: bastion.defenses.output_policy); measure it with "
        "`bastion attack extraction --policy prediction_poisoning`", EXTRACTION_CONTROLS)
    return Outcome(status_for_severity(sev), f"fidelity {r.fidelity:.3f} after {r.queries_used} queries",
                   metrics, params, findings, artifacts)


@check(id="privacy.inversion", title="Model inversion (class reconstructions vs a no-model baseline)",
       controls=INVERSION_CONTROLS, profiles=("standard", "thorough"),
       applies=lambda target: target.is_white_box and len(target.model.input_spec.shape) == 3
       and target.data.has_train)
def inversion_check(target: Target, ctx: CheckContext) -> Outcome:
    """Class-representative reconstruction from a white-box image model."""
    from bastion.attacks.inference.inversion import run_inversion

    d = target.data
    assert d.x_train is not None and d.y_train is not None
    steps = {"quick": 50, "standard": 100, "thorough": 300}[ctx.profile]
    r = run_inversion(target.model, d.x_train, d.y_train, prior=d.x_test, steps=steps, seed=ctx.seed)
    gain = r.inversion_accuracy - r.baseline_accuracy
    sev = Severity.MEDIUM if gain >= 0.5 else Severity.LOW if gain >= 0.2 else None
    findings = finding_if(
        sev, "privacy.inversion.reconstructs_classes",
        f"inverted class images match {r.inversion_accuracy:.0%} of private class means "
        f"(baseline without the model: {r.baseline_accuracy:.0%})",
        {k: v for k, v in r.to_dict().items() if k != "params"},
        f"keep the model black-box and return labels or rounded scores; train with DP: `{_dp_command(target)}`",
        INVERSION_CONTROLS)
    return Outcome(status_for_severity(sev),
                   f"inversion accuracy {r.inversion_accuracy:.2f} vs baseline {r.baseline_accuracy:.2f}",
                   {k: v for k, v in r.to_dict().items() if k != "params"}, r.params, findings,
                   {"inversion.png": r.grid_png()})


def _sensitive_column(target: Target, ctx: CheckContext) -> int:
    names = target.metadata.feature_names
    sens = target.metadata.sensitive_features
    want = ctx.option("sensitive") or (sens[0] if sens else None)
    if want is None:
        return 0
    if isinstance(want, int) or str(want).isdigit():
        return int(want)
    if want not in names:
        raise ConfigError(f"sensitive feature {want!r} is not a column of the data")
    return names.index(want)

@check(id="privacy.attribute", title="Attribute inference of sensitive columns (vs a no-model baseline)",
       controls=INVERSION_CONTROLS, profiles=("standard", "thorough"),
       applies=lambda target: target.metadata.data_kind == "tabular" and target.data.has_train
       and target.data.has_test)
def attribute_check(target: Target, ctx: CheckContext) -> Outcome:
    """Attribute inference of a named sensitive column (tabular)."""
    from bastion.attacks.inference.attribute import run_attribute_inference

    d = target.data
    assert d.x_train is not None and d.y_train is not None and d.x_test is not None and d.y_test is not None
    col = _sensitive_column(target, ctx)
    xa, ya = (d.x_pop, d.y_pop) if d.x_pop is not None and d.y_pop is not None else (d.x_test, d.y_test)
    r = run_attribute_inference(target.model, d.x_train, d.y_train, xa, ya, col, 2, ctx.seed)
    sev = Severity.MEDIUM if r.advantage >= 0.10 else Severity.LOW if r.advantage >= 0.03 else None
    names = target.metadata.feature_names
    metrics = {k: v for k, v in r.to_dict().items() if k != "params"}
    metrics["sensitive_name"] = names[col] if col < len(names) else str(col)
    findings = finding_if(
        sev, "privacy.attribute.leak",
        f"the model's answers raise inference of {metrics['sensitive_name']} from "
        f"{r.baseline_accuracy:.1%} to {r.attack_accuracy:.1%}", metrics,
        f"train with DP (`{_dp_command(target)}`) or drop the column from the model's inputs",
        INVERSION_CONTROLS)
    return Outcome(status_for_severity(sev),
                   f"{metrics['sensitive_name']}: attack {r.attack_accuracy:.3f} vs baseline {r.baseline_accuracy:.3f}",
                   metrics, r.params, findings)
