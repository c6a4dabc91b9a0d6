"""The CI gate behind ``bastion ci --policy bastion-policy.yaml``: scan, verify, assess, decide.

One policy file says what a model must pass before it merges or ships; the gate runs the same
library calls as ``bastion model scan``, ``bastion model verify`` and ``bastion assess`` and
writes what pipelines read:

- ``bastion.sarif`` — SARIF 2.1.0 with one run per tool (the file scan, the assessment), for
  code-scanning uploads;
- ``junit.xml`` — one test case per gate and per assessment check, for CI dashboards;
- ``summary.md`` — a Markdown summary for a pull-request comment;
- ``gate.json`` — the decision and every gate's outcome; ``assessment/`` — the full reports.

Exit codes (``GateResult.exit_code``): 0 every gate passed · 1 a gate failed (a finding at or
above its threshold, an unsafe file, a signature that does not verify) · 2 the gate could not
decide (bad policy, unreadable model or data, a check that errored when ``errors: fail``).

Policy (paths relative to the policy file; unknown keys are refused)::

    model: models/digits.pt           # file or directory (required)
    data: data/digits.npz             # file, demo:NAME or dataset:NAME (needed by assess)
    scan: {fail_on: high}             # severity at which a scan finding fails the gate
    signature:                        # omit or required: false to skip
      required: true
      trusted_keys: [keys/release.pub]
      require_attestation: false
      max_attestation_age: 30d
    assess:
      profile: quick                  # quick | standard | thorough
      only: [evasion, supply_chain]   # check ids or prefixes (default: every check that applies)
      fail_on: high                   # global threshold
      thresholds: {privacy: medium}   # per check-id prefix, overriding fail_on
      options: {samples: 64}          # check options, as --option
      errors: fail                    # fail | warn: a check that errored
    waivers:                          # accepted risks: never silent, listed in every output
      - {finding: privacy.extraction.cheap, reason: "rate-limited endpoint", expires: 2027-06-30}
"""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from bastion.core.errors import ConfigError
from bastion.core.paths import atomic_write_text
from bastion.core.severity import Severity

GateStatus = Literal["pass", "fail", "error", "skipped"]
_TOP = {"model", "data", "label", "clip_min", "clip_max", "seed", "scan", "signature", "assess", "waivers"}
_SCAN = {"fail_on", "allow"}
_SIGNATURE = {"required", "trusted_keys", "require_attestation", "max_attestation_age", "max_severity"}
_ASSESS = {"profile", "only", "fail_on", "thresholds", "options", "errors", "enabled"}
_WAIVER = {"finding", "reason", "expires"}


@dataclass(frozen=True)
class Waiver:
    finding: str
    reason: str
    expires: date | None = None

    def active(self, today: date) -> bool:
        return self.expires is None or today <= self.expires


@dataclass
class GatePolicy:
    """A parsed, validated policy; ``base`` is the policy file's folder (relative paths resolve there)."""

    model: Path
    base: Path
    data: str | None = None
    label: str | None = None
    clip_min: float | None = None
    clip_max: float | None = None
    seed: int = 0
    scan_fail_on: Severity = Severity.HIGH
    scan_allow: list[str] = field(default_factory=list)
    signature_required: bool = False
    trusted_keys: list[Path] = field(default_factory=list)
    require_attestation: bool = False
    max_attestation_age: str | None = None
    signature_max_severity: Severity | None = None
    assess_enabled: bool = True
    profile: str = "quick"
    only: list[str] | None = None
    fail_on: Severity = Severity.HIGH
    thresholds: dict[str, Severity] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    errors_fail: bool = True
    waivers: list[Waiver] = field(default_factory=list)

    def threshold_for(self, check_id: str) -> Severity:
        """The most specific threshold whose prefix matches ``check_id`` (else ``fail_on``)."""
        best = ""
        for prefix in self.thresholds:
            if (check_id == prefix or check_id.startswith(prefix + ".") or check_id.startswith(prefix)) \
                    and len(prefix) > len(best):
                best = prefix
        return self.thresholds[best] if best else self.fail_on


def _keys(section: str, raw: Any, allowed: set[str]) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"policy: {section} must be a mapping")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"policy: unknown key {section + '.' if section else ''}{unknown[0]} "
                          f"(allowed: {', '.join(sorted(allowed))})")
    return raw


def _severity(where: str, value: Any) -> Severity:
    try:
        return Severity.parse(str(value))
    except (ValueError, KeyError, ConfigError):
        raise ConfigError(f"policy: {where}: {value!r} is not a severity (info, low, medium, high, critical)") from None


def _date(where: str, value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"policy: {where}: {value!r} is not a date (YYYY-MM-DD)") from None


def parse_policy(raw: Any, base: Path) -> GatePolicy:
    """Validate a policy mapping (from YAML) into a ``GatePolicy``; every problem is a ``ConfigError``."""
    top = _keys("", raw, _TOP)
    if not top.get("model"):
        raise ConfigError("policy: 'model' (the model file to gate) is required")
    scan = _keys("scan", top.get("scan"), _SCAN)
    sig = _keys("signature", top.get("signature"), _SIGNATURE)
    ass = _keys("assess", top.get("assess"), _ASSESS)
    from bastion.assess.registry import PROFILES

    profile = str(ass.get("profile", "quick"))
    if profile not in PROFILES:
        raise ConfigError(f"policy: assess.profile {profile!r}: choose one of {', '.join(PROFILES)}")
    only = ass.get("only")
    if only is not None and (not isinstance(only, list) or not all(isinstance(o, str) for o in only)):
        raise ConfigError("policy: assess.only must be a list of check ids or prefixes")
    thresholds = _keys("assess.thresholds", ass.get("thresholds"), set(ass.get("thresholds") or {}))
    errors = str(ass.get("errors", "fail"))
    if errors not in ("fail", "warn"):
        raise ConfigError(f"policy: assess.errors {errors!r}: fail or warn")
    waivers_raw = top.get("waivers") or []
    if not isinstance(waivers_raw, list):
        raise ConfigError("policy: waivers must be a list")
    waivers = []
    for i, w in enumerate(waivers_raw):
        wk = _keys(f"waivers[{i}]", w, _WAIVER)
        if not wk.get("finding") or not str(wk.get("reason", "")).strip():
            raise ConfigError(f"policy: waivers[{i}] needs a finding id and a reason")
        waivers.append(Waiver(str(wk["finding"]), str(wk["reason"]), _date(f"waivers[{i}].expires", wk.get("expires"))))
    keys = sig.get("trusted_keys") or []
    if isinstance(keys, str):
        keys = [keys]
    required = bool(sig.get("required", bool(sig)))
    if required and not keys:
        raise ConfigError("policy: signature.required needs signature.trusted_keys (public keys)")
    options = ass.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError("policy: assess.options must be a mapping")
    return GatePolicy(
        model=base / str(top["model"]), base=base,
        data=_data_source(top.get("data"), base), label=top.get("label"),
        clip_min=top.get("clip_min"), clip_max=top.get("clip_max"), seed=int(top.get("seed", 0)),
        scan_fail_on=_severity("scan.fail_on", scan.get("fail_on", "high")), scan_allow=list(scan.get("allow") or []),
        signature_required=required, trusted_keys=[base / str(k) for k in keys],
        require_attestation=bool(sig.get("require_attestation", False)),
        max_attestation_age=sig.get("max_attestation_age"),
        signature_max_severity=_severity("signature.max_severity", sig["max_severity"]) if sig.get("max_severity")
        else None,
        assess_enabled=bool(ass.get("enabled", True)), profile=profile, only=only,
        fail_on=_severity("assess.fail_on", ass.get("fail_on", "high")),
        thresholds={k: _severity(f"assess.thresholds.{k}", v) for k, v in thresholds.items()},
        options=dict(options), errors_fail=errors == "fail", waivers=waivers,
    )


def _data_source(value: Any, base: Path) -> str | None:
    if value is None:
        return None
    text = str(value)
    if ":" in text.split("/")[0] and not Path(text).exists():  # demo:NAME, dataset:NAME
        return text
    return str(base / text)


def load_policy(path: str | Path) -> GatePolicy:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"policy file {p} not found")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"policy {p} is not valid YAML: {exc}") from None
    return parse_policy(raw, p.resolve().parent)


@dataclass
class Gate:
    name: str
    status: GateStatus
    detail: str
    findings: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class GateResult:
    policy: GatePolicy
    gates: list[Gate]
    scan_sarif: dict[str, Any] | None = None
    assessment: Any = None
    waived: list[dict[str, Any]] = field(default_factory=list)

    @property
    def verdict(self) -> Literal["pass", "fail", "error"]:
        if any(g.status == "error" for g in self.gates):
            return "error"
        return "fail" if any(g.status == "fail" for g in self.gates) else "pass"

    @property
    def exit_code(self) -> int:
        return {"pass": 0, "fail": 1, "error": 2}[self.verdict]

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "exit_code": self.exit_code, "model": str(self.policy.model),
                "gates": [{"name": g.name, "status": g.status, "detail": g.detail, "findings": g.findings,
                           "seconds": round(g.seconds, 2)} for g in self.gates],
                "waived": self.waived}


def _scan_gate(policy: GatePolicy) -> tuple[Gate, dict[str, Any] | None]:
    from bastion.artifacts.scan import scan_path

    report = scan_path([policy.model], allow=policy.scan_allow or None)  # type: ignore[arg-type]
    verdict, reason = report.verdict_and_reason
    bad = report.worst(policy.scan_fail_on)
    findings = [{"id": x.code, "severity": x.severity.value, "title": x.message, "where": f"{f.path} {x.location}"}
                for f, x in report.findings]
    if bad:
        status: GateStatus = "fail"
    elif verdict in ("error", "unscanned"):
        status = "error" if verdict == "error" else "fail"
    else:
        status = "pass"
    detail = f"verdict {verdict}: {reason}; fail at {policy.scan_fail_on.value} or above"
    return Gate("scan", status, detail, findings, report.duration_s), report.to_sarif()


def _signature_gate(policy: GatePolicy) -> Gate:
    from bastion.artifacts.keys import public_path_for
    from bastion.artifacts.signing import parse_age, verify_model
    from bastion.core.errors import SignatureError

    if not policy.signature_required:
        return Gate("signature", "skipped", "not required by the policy")
    age = parse_age(policy.max_attestation_age) if policy.max_attestation_age else None
    problems = []
    for key in policy.trusted_keys:
        try:
            res = verify_model(policy.model, public_path_for(key), require_attestation=policy.require_attestation,
                               max_severity=policy.signature_max_severity, max_attestation_age=age)
        except SignatureError as exc:
            problems.append(f"{key.name}: {exc}")
            continue
        return Gate("signature", "pass", f"verified with {key.name}: digest {res.model_digest[:16]}…, "
                                         f"key id {res.key_id[:16]}…")
    return Gate("signature", "fail", "does not verify with any trusted key: " + "; ".join(problems))


def _assess_gate(policy: GatePolicy, out_dir: Path, executor: Any, progress: bool,
                 today: date) -> tuple[list[Gate], Any, list[dict[str, Any]]]:
    from bastion.assess.runner import run_assessment
    from bastion.assess.target import build_target
    from bastion.report import write_reports

    if not policy.assess_enabled:
        return [Gate("assess", "skipped", "assess.enabled is false")], None, []
    if policy.data is None:
        raise ConfigError("policy: 'data' is needed to assess the model (a file, demo:NAME or dataset:NAME), "
                          "or set assess.enabled: false")
    target = build_target(model=policy.model, data=policy.data, label=policy.label,
                          clip_min=policy.clip_min, clip_max=policy.clip_max, seed=policy.seed)
    options = dict(policy.options)
    if policy.trusted_keys:  # the signature check verifies with the policy's key, as the signature gate does
        options.setdefault("public_key", str(policy.trusted_keys[0]))
    assessment = run_assessment(target, profile=policy.profile, seed=policy.seed,  # type: ignore[arg-type]
                                out_dir=out_dir / "assessment", only=policy.only, options=options,
                                executor=executor, progress=progress)
    write_reports(assessment, out_dir / "assessment")
    gates: list[Gate] = []
    waived: list[dict[str, Any]] = []
    active = {w.finding: w for w in policy.waivers if w.active(today)}
    expired = {w.finding: w for w in policy.waivers if not w.active(today)}
    for res in assessment.results:
        limit = policy.threshold_for(res.check_id)
        blocking, shown = [], []
        for f in res.findings:
            item = {"id": f.id, "severity": f.severity.value, "title": f.title, "fix": f.recommendation}
            shown.append(item)
            if f.severity < limit:
                continue
            if f.id in active:
                w = active[f.id]
                waived.append({**item, "check": res.check_id, "reason": w.reason,
                               "expires": w.expires.isoformat() if w.expires else None})
                continue
            if f.id in expired:
                item["note"] = f"waiver expired {expired[f.id].expires}"
            blocking.append(item)
        if res.status == "error":
            status: GateStatus = "error" if policy.errors_fail else "pass"
            detail = f"check errored: {res.error}"
        elif res.status == "skipped":
            status, detail = "skipped", res.summary or "skipped"
        elif blocking:
            worst = max(Severity.parse(b["severity"]) for b in blocking)
            status, detail = "fail", f"{len(blocking)} finding(s) at or above {limit.value} (worst {worst.value}): {res.summary}"
        else:
            status, detail = "pass", f"{res.summary} (threshold {limit.value})"
        gates.append(Gate(f"assess:{res.check_id}", status, detail, shown, res.duration_s))
    if not assessment.results:
        gates.append(Gate("assess", "error", "no check applied to this model and data"))
    return gates, assessment, waived


def run_gate(policy: GatePolicy, out_dir: str | Path, executor: Any = None, progress: bool = False,
             today: date | None = None) -> GateResult:
    """Run every gate of ``policy`` and write the CI outputs into ``out_dir``.

    A scan that finds the file unsafe stops the gate before anything loads the model.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    day = today or datetime.now(UTC).date()
    if not policy.model.exists():
        raise ConfigError(f"policy: model {policy.model} not found")
    scan, scan_sarif = _scan_gate(policy)
    gates = [scan]
    result = GateResult(policy, gates, scan_sarif)
    if scan.status != "pass":
        gates.append(Gate("signature", "skipped", "the scan did not pass: nothing else is loaded"))
        gates.append(Gate("assess", "skipped", "the scan did not pass: the model is not loaded"))
    else:
        t0 = time.perf_counter()
        sig = _signature_gate(policy)
        sig.seconds = time.perf_counter() - t0
        gates.append(sig)
        assess_gates, result.assessment, result.waived = _assess_gate(policy, out, executor, progress, day)
        gates.extend(assess_gates)
    write_outputs(result, out)
    return result


def to_sarif(result: GateResult) -> dict[str, Any]:
    """One SARIF 2.1.0 log: the scan's run and the assessment's run."""
    from bastion.report.sarif import SARIF_SCHEMA
    from bastion.report.sarif import to_sarif as assessment_sarif

    runs: list[dict[str, Any]] = []
    if result.scan_sarif:
        runs.extend(result.scan_sarif["runs"])
    if result.assessment is not None:
        runs.extend(assessment_sarif(result.assessment)["runs"])
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": runs}


def to_junit(result: GateResult) -> str:
    """JUnit XML: one ``testsuite`` (``bastion``), one ``testcase`` per gate."""
    suite = ET.Element("testsuite", name="bastion", tests=str(len(result.gates)),
                       failures=str(sum(g.status == "fail" for g in result.gates)),
                       errors=str(sum(g.status == "error" for g in result.gates)),
                       skipped=str(sum(g.status == "skipped" for g in result.gates)),
                       time=f"{sum(g.seconds for g in result.gates):.3f}")
    for g in result.gates:
        case = ET.SubElement(suite, "testcase", classname="bastion." + g.name.split(":")[0], name=g.name,
                             time=f"{g.seconds:.3f}")
        if g.status in ("fail", "error"):
            el = ET.SubElement(case, "failure" if g.status == "fail" else "error", message=g.detail[:500])
            el.text = "\n".join(f"{f['severity']}: {f['id']}: {f['title']}" for f in g.findings) or g.detail
        elif g.status == "skipped":
            ET.SubElement(case, "skipped", message=g.detail[:500])
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(result: GateResult) -> str:
    """A pull-request comment: the decision, a row per gate, the blocking findings and the waivers."""
    icon = {"pass": "✅", "fail": "❌", "error": "⚠️", "skipped": "⏭️"}
    lines = [f"## Bastion gate: {icon[result.verdict]} {result.verdict.upper()} — `{result.policy.model.name}`", "",
             "| gate | status | detail |", "|---|---|---|"]
    lines += [f"| `{g.name}` | {icon[g.status]} {g.status} | {_md(g.detail)} |" for g in result.gates]
    blocking = [(g, f) for g in result.gates if g.status == "fail" for f in g.findings
                if g.name == "scan" or Severity.parse(f["severity"]) >= result.policy.threshold_for(g.name[7:])]
    if blocking:
        lines += ["", "### What blocks the merge", "", "| severity | finding | what | fix |", "|---|---|---|---|"]
        lines += [f"| {f['severity']} | `{f['id']}` | {_md(f['title'])} | {_md(f.get('fix') or '')} |"
                  for _, f in blocking]
    if result.waived:
        lines += ["", "### Waived (accepted risks)", "", "| finding | reason | expires |", "|---|---|---|"]
        lines += [f"| `{w['id']}` ({w['severity']}) | {_md(w['reason'])} | {w['expires'] or 'never'} |"
                  for w in result.waived]
    if result.assessment is not None:
        a = result.assessment
        lines += ["", f"Profile `{a.profile}`, seed {a.seed}; full report: `assessment/report.html`. "
                      "Figures are measurements with the attack settings in the report — evidence, not a guarantee."]
    return "\n".join(lines) + "\n"


def write_outputs(result: GateResult, out: Path) -> dict[str, Path]:
    paths = {"sarif": out / "bastion.sarif", "junit": out / "junit.xml", "markdown": out / "summary.md",
             "json": out / "gate.json"}
    atomic_write_text(paths["sarif"], json.dumps(to_sarif(result), indent=2, default=str) + "\n")
    atomic_write_text(paths["junit"], to_junit(result))
    atomic_write_text(paths["markdown"], to_markdown(result))
    atomic_write_text(paths["json"], json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    return paths


__all__ = ["Gate", "GatePolicy", "GateResult", "Waiver", "load_policy", "parse_policy", "run_gate", "to_junit",
           "to_markdown", "to_sarif", "write_outputs"]
