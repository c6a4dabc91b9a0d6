"""Explanations in the assessment, used for security (``explain.*``).

- ``explain.shap``: what the model relies on — SHAP (explainer chosen to fit the model) summary
  plot and a local SHAP + LIME explanation of one input (tabular), attribution heat maps (images).
- ``explain.sensitive_features``: share of total mean |SHAP| carried by the features declared in
  ``target.metadata.sensitive_features`` (and ``metadata.extra["proxy_features"]``). Severity:
  share ≥ 0.30 high, ≥ 0.15 medium, ≥ 0.05 low, else pass.
- ``explain.adversarial_attributions``: integrated-gradients maps of clean inputs vs their PGD
  adversarial examples (cosine similarity, top-10% overlap) — how an evasion changes what the
  model looks at.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bastion.assess.registry import CheckContext, Outcome, check, finding_if
from bastion.core.severity import Severity, Status
from bastion.core.target import Target

EXPLAIN_CONTROLS = ["nist-ai-rmf:MEASURE-2.9", "eu-ai-act:Art13"]
FAIRNESS_CONTROLS = ["nist-ai-rmf:MEASURE-2.11", "eu-ai-act:Art10(2)"]
SHIFT_CONTROLS = ["mitre-atlas:AML.T0015", "owasp-ml:ML01:2023", "nist-ai-rmf:MEASURE-2.9"]
ROWS = {"quick": 50, "standard": 100, "thorough": 300}
SENSITIVE_SEVERITY = ((0.30, Severity.HIGH), (0.15, Severity.MEDIUM), (0.05, Severity.LOW))


def _rows(target: Target, ctx: CheckContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = target.data.eval_split()
    n = min(len(x), int(ctx.option("explain_samples", ROWS[ctx.profile])))
    bg = target.data.x_train if target.data.x_train is not None else x
    return np.asarray(x[:n], np.float32), np.asarray(y[:n], np.int64), np.asarray(bg[:200], np.float32)


def _names(target: Target, n_features: int) -> list[str]:
    names = list(target.metadata.feature_names)
    return names if len(names) == n_features else [f"x{j}" for j in range(n_features)]


def _has_data(target: Target) -> bool:
    return target.data.has_test or target.data.has_train


def declared_features(target: Target) -> list[str]:
    """The sensitive features and their declared proxies (``metadata.extra["proxy_features"]``)."""
    proxies = target.metadata.extra.get("proxy_features", []) if target.metadata.extra else []
    return list(dict.fromkeys([*target.metadata.sensitive_features, *proxies]))


@check(id="explain.shap", title="What the model relies on (SHAP / LIME)", controls=EXPLAIN_CONTROLS,
       profiles=("standard", "thorough"), applies=_has_data)
def shap_check(target: Target, ctx: CheckContext) -> Outcome:
    from bastion import explain as xp

    x, _, bg = _rows(target, ctx)
    image = x.ndim >= 3
    if image and target.is_white_box:  # expected gradients on images: keep the CPU cost to seconds
        x, bg = x[:32], bg[:50]
    names = _names(target, int(np.prod(x.shape[1:])))
    exp = xp.explain_shap(target.model, x, bg, names, seed=ctx.seed)
    ctx.progress(1, 3)
    metrics: dict[str, Any] = {"method": exp.method, "output": exp.output, "samples": len(x),
                               "top_features": exp.top_features(10), "shap_s": round(exp.duration_s, 3)}
    artifacts: dict[str, bytes] = {}
    if image:
        maps = exp.values.reshape(x.shape)
        k = min(6, len(x))
        artifacts["shap_attribution_maps.png"] = xp.heatmap_png(
            np.concatenate([np.abs(maps).mean(0, keepdims=True), maps[:k]]),
            ["mean |SHAP|"] + [f"#{i} pred {exp.explained_class[i]}" for i in range(k)],
            f"SHAP ({exp.method}) attribution maps")
        lo = target.model.input_spec.clip_min
        lime_img = xp.explain_lime_image(target.model, x[0], target.metadata.class_names or None, num_samples=500,
                                      hide_value=0.0 if lo is None else float(lo), seed=ctx.seed)
        artifacts["local_lime_row0.png"] = xp.signed_map_png(
            x[0], lime_img.pop("weight_map"), f"row 0: LIME superpixels for class {lime_img['explained_class_name']}")
        metrics["local_row0"] = {"lime": {k: lime_img[k] for k in ("method", "segments", "score", "top_segments")}}
    else:
        artifacts["shap_summary.png"] = xp.summary_plot_png(exp, x)
        local = exp.local(0, 10)
        artifacts["local_shap_row0.png"] = xp.local_bar_png(
            local, f"row 0 (predicted class {exp.explained_class[0]}): SHAP, output = {exp.output}")
        lime = xp.explain_lime(target.model, x[0], bg, names, target.metadata.class_names or None,
                            num_samples=500, seed=ctx.seed)
        artifacts["local_lime_row0.png"] = xp.local_bar_png(
            [{"feature": w["rule"], "shap": w["weight"]} for w in lime["weights"]],
            f"row 0: LIME weights for class {lime['explained_class']}")
        metrics["local_row0"] = {"shap": local, "lime": lime["weights"]}
    ctx.progress(3, 3)
    top = ", ".join(f["feature"] for f in metrics["top_features"][:3])
    return Outcome(Status.PASS, f"SHAP ({exp.method}) on {len(x)} inputs; most influential: {top}", metrics,
                   params={"samples": len(x), "background": len(bg), "seed": ctx.seed, **exp.params},
                   artifacts=artifacts)


@check(id="explain.sensitive_features", title="Reliance on sensitive or proxy features", controls=FAIRNESS_CONTROLS,
       applies=lambda target: bool(declared_features(target)) and _has_data(target))
def sensitive_feature_check(target: Target, ctx: CheckContext) -> Outcome:
    from bastion.core.errors import InvalidInputError
    from bastion.explain import explain_shap

    x, _, bg = _rows(target, ctx)
    names = _names(target, int(np.prod(x.shape[1:])))
    declared = declared_features(target)
    missing = [f for f in declared if f not in names]
    if missing:
        raise InvalidInputError(f"sensitive/proxy features {missing} are not among the model's features")
    exp = explain_shap(target.model, x, bg, names, seed=ctx.seed)
    imp = exp.importance
    total = float(imp.sum()) or 1.0
    shares = {f: float(imp[names.index(f)] / total) for f in declared}
    share = float(sum(shares.values()))
    ranks = {f: int((imp > imp[names.index(f)]).sum()) + 1 for f in declared}
    metrics = {"sensitive_share": share, "per_feature_share": shares, "rank": ranks, "method": exp.method,
               "samples": len(x)}
    sev = next((s for thr, s in SENSITIVE_SEVERITY if share >= thr), None)
    findings = finding_if(
        sev, "explain.sensitive_reliance",
        f"the model relies on sensitive/proxy features: {share:.0%} of its attribution "
        f"({', '.join(f'{f} {v:.0%}' for f, v in shares.items())})",
        evidence={"share": share, "per_feature_share": shares, "rank": ranks, "method": exp.method,
                  "samples": len(x)},
        recommendation="review with bastion explain --model M --data D --format html; retrain without the "
                       "feature and its proxies, then re-run bastion assess",
        controls=FAIRNESS_CONTROLS)
    status = Status.PASS if sev is None else (Status.FAIL if sev >= Severity.HIGH else Status.WARN)
    return Outcome(status, f"sensitive/proxy features carry {share:.0%} of mean |SHAP|", metrics,
                   params={"samples": len(x), "seed": ctx.seed, "thresholds": [t for t, _ in SENSITIVE_SEVERITY]},
                   findings=findings)


@check(id="explain.adversarial_attributions", title="How evasion changes what the model looks at",
       controls=SHIFT_CONTROLS, profiles=("standard", "thorough"),
       applies=lambda target: target.is_white_box and _has_data(target))
def adversarial_attribution_check(target: Target, ctx: CheckContext) -> Outcome:
    import torch

    from bastion.attacks.evasion import PGD
    from bastion.explain import heatmap_png, saliency_maps

    x, y, _ = _rows(target, ctx)
    x, y = x[:64], y[:64]
    spec = target.model.input_spec
    if ctx.option("reference_eps") is not None:
        eps = float(ctx.option("reference_eps"))
    elif spec.clip_min is not None and spec.clip_max is not None:
        eps = 0.1 * float(spec.clip_max - spec.clip_min)
    else:
        eps = 0.1 * float(np.median(x.reshape(len(x), -1).std(0)) or 1.0)
    module = target.model.module  # type: ignore[attr-defined]
    x_adv = PGD(eps=eps, steps=20, clip_min=spec.clip_min, clip_max=spec.clip_max, seed=ctx.seed)(
        module, torch.from_numpy(x), torch.from_numpy(y)).numpy()
    a_clean = saliency_maps(module, x, y, steps=16).reshape(len(x), -1)
    a_adv = saliency_maps(module, x_adv, y, steps=16).reshape(len(x), -1)
    cos = (a_clean * a_adv).sum(1) / (np.linalg.norm(a_clean, axis=1) * np.linalg.norm(a_adv, axis=1) + 1e-12)
    k = max(1, a_clean.shape[1] // 10)
    top_c, top_a = np.argsort(-a_clean, 1)[:, :k], np.argsort(-a_adv, 1)[:, :k]
    overlap = np.array([len(set(a) & set(b)) / k for a, b in zip(top_c, top_a, strict=True)])
    with torch.no_grad():
        fooled = module(torch.from_numpy(x_adv)).argmax(1).numpy() != y
    metrics = {"cosine_similarity_mean": float(cos.mean()), "top10pct_overlap_mean": float(overlap.mean()),
               "cosine_similarity_fooled": float(cos[fooled].mean()) if fooled.any() else None,
               "fooled_fraction": float(fooled.mean()), "samples": len(x), "eps": eps}
    artifacts: dict[str, bytes] = {}
    if x.ndim >= 3:
        idx = list(np.flatnonzero(fooled)[:4]) or list(range(min(4, len(x))))
        maps = np.concatenate([x[idx], a_clean[idx].reshape(-1, *x.shape[1:]), x_adv[idx],
                               a_adv[idx].reshape(-1, *x.shape[1:])])
        titles = ([f"clean #{i}" for i in idx] + [f"IG clean #{i}" for i in idx] + [f"adv #{i}" for i in idx]
                  + [f"IG adv #{i}" for i in idx])
        artifacts["attributions_clean_vs_adversarial.png"] = heatmap_png(
            maps, titles, f"integrated gradients, clean vs PGD eps={eps:g}", cols=len(idx))
    return Outcome(Status.PASS,
                   f"attributions of PGD examples (eps={eps:g}) keep {metrics['cosine_similarity_mean']:.2f} "
                   f"cosine similarity and {metrics['top10pct_overlap_mean']:.0%} top-10% overlap with clean ones",
                   metrics, params={"eps": eps, "norm": "linf", "steps": 20, "ig_steps": 16, "samples": len(x),
                                    "seed": ctx.seed},
                   artifacts=artifacts)
