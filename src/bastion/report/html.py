"""Self-contained HTML report: plain-words verdict first, then every check in detail.

Everything is inline (CSS, PNG artifacts as base64 ``data:`` URIs): no CDN, no scripts, so the
file opens offline and can be attached to a ticket. Rendered with Jinja2 (autoescaping on) from
``templates/report.html.j2``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from bastion.core.paths import atomic_write_text
from bastion.core.results import Assessment, CheckResult, Finding
from bastion.core.severity import Severity, Status
from bastion.report.compare import Comparison

SEVERITY_WORDS = {
    "critical": "Critical — exploitable now, with severe impact",
    "high": "High — an attacker can realistically exploit this",
    "medium": "Medium — a weakness worth fixing before deployment",
    "low": "Low — minor, or hard to exploit",
    "info": "Info — for the record",
}
GLOSSARY = [
    ("Accuracy under attack (robust accuracy)",
     "The share of test inputs the model still classifies correctly after an attacker changes each input "
     "slightly. Compare it with the normal (clean) accuracy: a big drop means small, often invisible, "
     "changes to an input can change the model's answer."),
    ("ε (epsilon), the perturbation budget",
     "How much the attacker may change each input value. For images in [0, 1], ε = 0.1 means each pixel "
     "may move by at most 10% of its range."),
    ("White-box / black-box",
     "A white-box attack uses the model's internals (gradients); a black-box attack only sends inputs and "
     "reads the answers, as an outside attacker of a deployed service would."),
    ("Gradient masking",
     "A model that only looks robust because its gradients are useless to attacks; black-box attacks still "
     "break it. Bastion flags it so a false sense of security is not reported as robustness."),
    ("Controls",
     "Ids in security frameworks (MITRE ATLAS, OWASP ML Top 10, NIST AI RMF, EU AI Act) that the finding "
     "relates to, for audit and compliance work."),
]


PREVIEW_CHARS = 120


def _rounded(v: Any, digits: int = 4) -> Any:
    """``v`` with every float rounded to ``digits`` significant digits (for display only)."""
    if isinstance(v, float):
        return v if v != v or v in (float("inf"), float("-inf")) else float(f"{v:.{digits}g}")
    if isinstance(v, dict):
        return {k: _rounded(x, digits) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_rounded(x, digits) for x in v]
    return v


def _fmt(v: Any) -> str:
    """A value for a table cell: 3 significant digits; lists/objects as a one-line preview."""
    if isinstance(v, bool) or v is None:
        return str(v).lower()
    if isinstance(v, float):
        if v != v:  # NaN
            return "n/a"
        return f"{v:.3g}"
    if isinstance(v, list | dict):
        text = json.dumps(_rounded(v), default=str)
        return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"
    return str(v)


def _folded(items: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(key, preview, full JSON or "")``: long values get their whole, rounded JSON behind a ``<details>``."""
    out = []
    for k, v in items.items():
        full = json.dumps(_rounded(v), indent=1, default=str) if isinstance(v, list | dict) else ""
        out.append((k, _fmt(v), full if len(full) > PREVIEW_CHARS or ("\n" in full and len(v) > 3) else ""))
    return out


def _images(res: CheckResult, out_dir: Path | None) -> list[dict[str, str]]:
    images = []
    names = sorted(set(res.artifacts) | set(res.artifact_paths))
    for name in names:
        if not name.lower().endswith(".png"):
            continue
        data = res.artifacts.get(name)
        if data is None and out_dir is not None:
            path = out_dir / res.artifact_paths[name]
            data = path.read_bytes() if path.is_file() else None
        if data:
            caption = name.rsplit(".", 1)[0].replace("_", " ")
            images.append({"name": name, "caption": caption, "src": "data:image/png;base64," + base64.b64encode(data).decode()})
    return images


def verdict_context(a: Assessment) -> dict[str, Any]:
    """The plain-words verdict box: level, headline, explanation, top actions."""
    s = a.summary()
    ms = a.max_severity
    n_checks = len(a.results)
    errors = [r for r in a.results if r.status == Status.ERROR]
    findings = sorted(a.findings, key=lambda f: f.severity.rank, reverse=True)
    if n_checks == 0:
        level, headline = "none", "Nothing was assessed: no check applied to this model and data."
        explain = "Pass labelled data, or choose another profile or check list (--only)."
    elif ms is None or ms <= Severity.LOW:
        level, headline = "ok", "No serious weaknesses were found by the checks that ran."
        explain = ("The attacks Bastion tried, at the strengths listed below, did not succeed enough to raise a "
                   "concern. This is evidence, not proof: stronger or different attacks may still succeed.")
    elif ms == Severity.MEDIUM:
        level, headline = "warn", "Weaknesses were found. Review them before this model is deployed."
        explain = "An attacker could exploit the issues below in some conditions. Each one lists the fix."
    else:
        level, headline = "bad", "Serious weaknesses were found. Do not deploy this model until they are addressed."
        explain = "An attacker can realistically exploit the issues below. Each one lists the command that fixes it."
    actions: list[str] = []
    for f in findings:
        if f.severity >= Severity.MEDIUM and f.recommendation and f.recommendation not in actions:
            actions.append(f.recommendation)
    return {
        "level": level, "headline": headline, "explain": explain, "engine_verdict": s["verdict"],
        "top": findings[:3], "actions": actions[:5], "errors": [r.check_id for r in errors],
        "counts": s["findings"], "statuses": s["checks"], "max_severity": s["max_severity"],
    }


_STATUS_ORDER = {"fail": 0, "error": 1, "warn": 2, "pass": 3, "skipped": 4}


def _finding_context(f: Finding) -> dict[str, Any]:
    """A finding with its evidence split: short values in a table, long lists/objects folded away."""
    simple = [(k, _fmt(v)) for k, v in f.evidence.items() if not isinstance(v, list | dict)]
    raw = {k: v for k, v in f.evidence.items() if isinstance(v, list | dict)}
    return {"severity": f.severity, "title": f.title, "evidence": simple,
            "raw_evidence": json.dumps(_rounded(raw), indent=1, default=str) if raw else "",
            "recommendation": f.recommendation, "controls": f.controls}


def _result_context(res: CheckResult, out_dir: Path | None) -> dict[str, Any]:
    raw = res.metrics.get("curve")
    is_robustness = isinstance(raw, list) and raw and all(
        isinstance(p, dict) and "eps" in p and "robust_accuracy" in p for p in raw)
    curve = raw if is_robustness else None
    scalars = [(k, _fmt(v)) for k, v in res.metrics.items() if not isinstance(v, list | dict)]
    complex_metrics = _folded({k: v for k, v in res.metrics.items()
                               if isinstance(v, list | dict) and not (k == "curve" and curve is not None)})
    return {
        "id": res.check_id, "title": res.title, "status": res.status.value, "summary": res.summary,
        "duration": f"{res.duration_s:.1f}", "error": res.error,
        "metrics": scalars, "complex_metrics": complex_metrics, "curve": curve,
        "params": _folded(res.params),
        "findings": [_finding_context(f) for f in sorted(res.findings, key=lambda f: f.severity.rank, reverse=True)],
        "worst": res.max_severity.value if res.max_severity else None,
        "images": _images(res, out_dir), "controls": res.controls,
    }


def bias_context(a: Assessment) -> dict[str, Any] | None:
    """Outcome bias (``fairness.group_metrics``) beside SHAP reliance on the same sensitive features
    (``explain.sensitive_features``) and the training data's representativeness, for one section."""
    by_id = {r.check_id: r for r in a.results}
    fair, shap, rep = (by_id.get(k) for k in ("fairness.group_metrics", "explain.sensitive_features",
                                                "data.representativeness"))
    if fair is None and shap is None:
        return None
    ctx: dict[str, Any] = {"fairness": None, "shap": None, "representativeness": None}
    if fair is not None and fair.metrics.get("by_group"):
        m = fair.metrics
        ci = m.get("ci95", {})
        ctx["fairness"] = {
            "status": fair.status.value, "worst": fair.max_severity.value if fair.max_severity else None,
            "columns": fair.params.get("sensitive_features", []), "groups": m["by_group"],
            "rows": [("selection-rate ratio (four-fifths rule: ≥ 0.80)", m["demographic_parity_ratio"],
                      ci.get("selection_rate", {}).get("ratio")),
                     ("selection-rate difference", m["demographic_parity_difference"],
                      ci.get("selection_rate", {}).get("difference")),
                     ("equalised-odds difference", m["equalized_odds_difference"], None),
                     ("TPR difference", None, ci.get("tpr", {}).get("difference")),
                     ("FPR difference", None, ci.get("fpr", {}).get("difference")),
                     ("accuracy difference", m["accuracy_difference"], ci.get("accuracy", {}).get("difference"))],
            "n_boot": fair.params.get("n_boot"), "samples": m.get("samples"),
        }
    if shap is not None and "sensitive_share" in shap.metrics:
        ctx["shap"] = {"status": shap.status.value, "share": shap.metrics["sensitive_share"],
                       "per_feature": shap.metrics.get("per_feature_share", {}), "rank": shap.metrics.get("rank", {})}
    if rep is not None:
        ctx["representativeness"] = {"status": rep.status.value, "summary": rep.summary}
    return ctx


def render_html(assessment: Assessment, out_dir: str | Path | None = None,
                comparison: Comparison | None = None) -> str:
    """The report as one self-contained HTML string."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("bastion.report", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = _fmt
    out = Path(out_dir) if out_dir is not None else None
    cmp_ctx = None
    if comparison is not None:
        cmp_ctx = {
            "before": comparison.before, "after": comparison.after,
            "metrics": [m.to_dict() for m in comparison.metrics], "findings": comparison.findings,
            "plots": [{"name": n, "src": "data:image/png;base64," + base64.b64encode(b).decode()}
                      for n, b in comparison.plots.items()],
        }
    t = assessment.target
    extra = (t.get("metadata") or {}).get("extra") or {}
    model_extra = extra.get("model_info") or {}
    return env.get_template("report.html.j2").render(
        loader_note=model_extra.get("white_box"), scan=extra.get("scan") or model_extra.get("scan"),
        a=assessment, target=t, verdict=verdict_context(assessment),
        results=[_result_context(r, out) for r in sorted(
            assessment.results,
            key=lambda r: (_STATUS_ORDER.get(r.status.value, 9), -(r.max_severity.rank if r.max_severity else -1),
                           r.check_id))],
        severity_words=SEVERITY_WORDS, glossary=GLOSSARY, comparison=cmp_ctx, bias=bias_context(assessment),
        fingerprints={k: v for k, v in t.get("fingerprints", {}).items()},
        env=assessment.environment,
    )


def write_html(assessment: Assessment, path: str | Path, out_dir: str | Path | None = None,
               comparison: Comparison | None = None) -> Path:
    """Write ``report.html`` atomically."""
    p = Path(path)
    atomic_write_text(p, render_html(assessment, out_dir if out_dir is not None else p.parent, comparison))
    return p
