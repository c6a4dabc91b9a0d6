"""``bastion ci``: the gate a pipeline runs — scan, signature, assessment thresholds, waivers — with SARIF
(checked against a closed schema of the SARIF 2.1.0 objects, written from the OASIS standard), JUnit XML and a Markdown summary; the GitHub composite action
and the pre-commit hook run their own commands here (no network)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path

import jsonschema
import pytest
import yaml

from bastion.assess.gate import load_policy, parse_policy, run_gate

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# The SARIF 2.1.0 objects Bastion writes, from the OASIS standard (sarif-v2.1.0-errata01-os, §3): required
# properties and value sets as the standard gives them, and every object closed to properties the standard
# does not define (custom data belongs in "properties" bags). The official schema file is not shipped
# (content fetched from other repositories stays out of this one); this schema is written from the
# standard's text for the objects Bastion writes.
_MSG = {"type": "object", "anyOf": [{"required": ["text"]}, {"required": ["id"]}],
        "properties": {"text": {"type": "string"}, "markdown": {"type": "string"}, "id": {"type": "string"},
                       "arguments": {"type": "array"}, "properties": {"type": "object"}},
        "additionalProperties": False}
_BAG = {"type": "object"}
_LEVEL = {"enum": ["none", "note", "warning", "error"]}
_LOCATION = {"type": "object", "additionalProperties": False, "properties": {
    "id": {"type": "integer"}, "message": _MSG, "annotations": {"type": "array"}, "relationships": {"type": "array"},
    "properties": _BAG,
    "physicalLocation": {"type": "object", "additionalProperties": False, "properties": {
        "artifactLocation": {"type": "object", "additionalProperties": False, "properties": {
            "uri": {"type": "string"}, "uriBaseId": {"type": "string"}, "index": {"type": "integer"},
            "description": _MSG, "properties": _BAG}},
        "region": {"type": "object"}, "contextRegion": {"type": "object"}, "address": {"type": "object"},
        "properties": _BAG}},
    "logicalLocations": {"type": "array", "items": {"type": "object", "additionalProperties": False, "properties": {
        "name": {"type": "string"}, "index": {"type": "integer"}, "fullyQualifiedName": {"type": "string"},
        "decoratedName": {"type": "string"}, "parentIndex": {"type": "integer"}, "kind": {"type": "string"},
        "properties": _BAG}}}}}
_DESCRIPTOR = {"type": "object", "required": ["id"], "additionalProperties": False, "properties": {
    "id": {"type": "string"}, "deprecatedIds": {"type": "array"}, "guid": {"type": "string"},
    "name": {"type": "string"}, "shortDescription": _MSG, "fullDescription": _MSG,
    "messageStrings": {"type": "object"}, "helpUri": {"type": "string"}, "help": _MSG,
    "defaultConfiguration": {"type": "object", "additionalProperties": False, "properties": {
        "enabled": {"type": "boolean"}, "level": _LEVEL, "rank": {"type": "number"}, "parameters": _BAG,
        "properties": _BAG}},
    "relationships": {"type": "array"}, "properties": _BAG}}
_RESULT = {"type": "object", "required": ["message"], "additionalProperties": False, "properties": {
    "ruleId": {"type": "string"}, "ruleIndex": {"type": "integer", "minimum": -1}, "rule": {"type": "object"},
    "kind": {"enum": ["notApplicable", "pass", "fail", "review", "open", "informational"]}, "level": _LEVEL,
    "message": _MSG, "locations": {"type": "array", "items": _LOCATION},
    "partialFingerprints": {"type": "object", "additionalProperties": {"type": "string"}},
    "fingerprints": {"type": "object", "additionalProperties": {"type": "string"}},
    "relatedLocations": {"type": "array"}, "suppressions": {"type": "array"}, "baselineState": {"type": "string"},
    "rank": {"type": "number"}, "guid": {"type": "string"}, "properties": _BAG}}
SARIF_2_1_0 = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object", "required": ["version", "runs"], "additionalProperties": False,
    "properties": {
        "$schema": {"type": "string", "format": "uri"}, "version": {"const": "2.1.0"}, "properties": _BAG,
        "inlineExternalProperties": {"type": "array"},
        "runs": {"type": "array", "items": {
            "type": "object", "required": ["tool"], "additionalProperties": False, "properties": {
                "tool": {"type": "object", "required": ["driver"], "additionalProperties": False, "properties": {
                    "driver": {"type": "object", "required": ["name"], "additionalProperties": False, "properties": {
                        "name": {"type": "string"}, "fullName": {"type": "string"}, "version": {"type": "string"},
                        "semanticVersion": {"type": "string"}, "informationUri": {"type": "string"},
                        "organization": {"type": "string"}, "rules": {"type": "array", "items": _DESCRIPTOR},
                        "notifications": {"type": "array", "items": _DESCRIPTOR}, "properties": _BAG}},
                    "extensions": {"type": "array"}, "properties": _BAG}},
                "invocations": {"type": "array", "items": {
                    "type": "object", "required": ["executionSuccessful"], "additionalProperties": False,
                    "properties": {
                        "executionSuccessful": {"type": "boolean"}, "commandLine": {"type": "string"},
                        "exitCode": {"type": "integer"}, "startTimeUtc": {"type": "string"},
                        "endTimeUtc": {"type": "string"}, "properties": _BAG,
                        "toolExecutionNotifications": {"type": "array", "items": {
                            "type": "object", "required": ["message"], "additionalProperties": False,
                            "properties": {"message": _MSG, "level": _LEVEL, "descriptor": {"type": "object"},
                                           "locations": {"type": "array"}, "properties": _BAG}}}}}},
                "results": {"type": "array", "items": _RESULT},
                "artifacts": {"type": "array"}, "originalUriBaseIds": {"type": "object"},
                "automationDetails": {"type": "object"}, "properties": _BAG}}}}}

def _valid_sarif(doc: object) -> None:
    """Valid under the schema of the SARIF 2.1.0 objects above (the official schema file is not shipped:
    fetched repository content stays out of this repository)."""
    jsonschema.validate(doc, SARIF_2_1_0)


def _tour(tmp: Path) -> Path:
    from bastion.demos.tour import write_tour

    write_tour(tmp / "t")
    return tmp / "t"


@pytest.fixture(scope="module")
def tour(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tour(tmp_path_factory.mktemp("gate"))


def _sign(model: Path, key: Path) -> None:
    from bastion.artifacts.signing import sign_model

    sign_model(model, key)


def test_the_schemas_refuse_what_sarif_does_not_allow() -> None:
    ok = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"message": {"text": "m"}}]}]}
    _valid_sarif(ok)
    for bad in ({"version": "2.0.0", "runs": []},
                {"version": "2.1.0", "runs": [{"tool": {"driver": {}}}]},
                {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"level": "high",
                                                                                              "message": {"text": "m"}}]}]},
                {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"message": {"text": "m"},
                                                                                              "severity": "x"}]}]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, SARIF_2_1_0)


def test_example_policy_is_the_one_the_tour_writes() -> None:
    from bastion.demos.tour import POLICY

    assert (ROOT / "examples" / "bastion-policy.yaml").read_text() == POLICY


def test_unsigned_then_signed_model_with_findings_waivers_and_every_output(tour: Path, tmp_path: Path) -> None:
    work = tmp_path / "w"
    shutil.copytree(tour, work)
    policy = load_policy(work / "bastion-policy.yaml")
    r = run_gate(policy, work / "ci", today=date(2026, 12, 1))
    gates = {g.name: g for g in r.gates}
    assert r.exit_code == 1 and gates["scan"].status == "pass" and gates["signature"].status == "fail"
    assert "not signed" in gates["signature"].detail
    _sign(work / "digits.pt", work / "keys" / "release")
    r = run_gate(load_policy(work / "bastion-policy.yaml"), work / "ci", today=date(2026, 12, 1))
    gates = {g.name: g for g in r.gates}
    assert gates["signature"].status == "pass" and gates["assess:supply_chain.signature"].status == "pass"
    # the undefended demo CNN loses most of its accuracy at eps=0.1: a real, high finding blocks the merge
    assert gates["assess:evasion.robustness_curve"].status == "fail" and r.exit_code == 1
    assert [w["id"] for w in r.waived] == ["evasion.worst_case_robustness"]
    sarif = json.loads((work / "ci" / "bastion.sarif").read_text())
    _valid_sarif(sarif)
    _valid_sarif(json.loads((work / "ci" / "assessment" / "assessment.sarif").read_text()))
    assert [run["tool"]["driver"]["name"] for run in sarif["runs"]] == ["bastion-model-scan", "Bastion"]
    assert any(res["ruleId"] == "evasion.low_robustness" for res in sarif["runs"][1]["results"])
    suite = ET.parse(work / "ci" / "junit.xml").getroot().find("testsuite")
    assert suite is not None and int(suite.get("tests", 0)) == len(r.gates)
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed == ["assess:evasion.robustness_curve"]
    md = (work / "ci" / "summary.md").read_text()
    assert "❌ FAIL" in md and "What blocks the merge" in md and "evasion.low_robustness" in md
    assert "Waived (accepted risks)" in md and "2027-06-30" in md
    # once the waiver expires, the finding blocks again and says why
    r = run_gate(load_policy(work / "bastion-policy.yaml"), work / "ci2", today=date(2027, 7, 1))
    g = {g.name: g for g in r.gates}["assess:evasion.worst_case"]
    assert g.status == "fail" and not r.waived


def test_a_malicious_file_stops_the_gate_before_anything_loads_it(tour: Path, tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(f"model: {tour / 'suspicious' / 'evil.pt'}\ndata: {tour / 'digits.npz'}\n")
    r = run_gate(load_policy(tmp_path / "p.yaml"), tmp_path / "ci")
    assert r.exit_code == 1 and [g.status for g in r.gates] == ["fail", "skipped", "skipped"]
    assert any(f["id"] == "PICKLE_DANGEROUS_CALL" for f in r.gates[0].findings)
    assert not (tour / "PWNED-if-this-exists").exists()
    sarif = json.loads((tmp_path / "ci" / "bastion.sarif").read_text())
    _valid_sarif(sarif)
    assert any(res["ruleId"] == "PICKLE_DANGEROUS_CALL" for res in sarif["runs"][0]["results"])


@pytest.mark.parametrize("text, error", [
    ("data: x.npz\n", "'model'"),
    ("model: m.pt\nassess: {profil: quick}\n", "assess.profil"),
    ("model: m.pt\nassess: {profile: fast}\n", "assess.profile"),
    ("model: m.pt\nsignature: {required: true}\n", "trusted_keys"),
    ("model: m.pt\nassess: {thresholds: {evasion: severe}}\n", "not a severity"),
    ("model: m.pt\nwaivers: [{finding: x}]\n", "reason"),
    ("model: m.pt\nwaivers: [{finding: x, reason: y, expires: soon}]\n", "YYYY-MM-DD"),
])
def test_bad_policies_are_refused_by_name(text: str, error: str) -> None:
    from bastion.core.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(error)):
        parse_policy(yaml.safe_load(text), Path("."))


def test_thresholds_take_the_most_specific_prefix() -> None:
    from bastion.core.severity import Severity

    p = parse_policy({"model": "m.pt", "assess": {"fail_on": "high", "thresholds": {
        "privacy": "medium", "privacy.membership": "low"}}}, Path("."))
    assert p.threshold_for("privacy.membership") == Severity.LOW
    assert p.threshold_for("privacy.extraction") == Severity.MEDIUM
    assert p.threshold_for("evasion.worst_case") == Severity.HIGH


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("BASTION_GATEWAY_CONFIG", "BASTION_DB_URL")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["BASTION_HOME"] = str(home)
    return env


def _expand(text: str, inputs: dict[str, str]) -> str:
    text = re.sub(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", lambda m: inputs[m.group(1)], text)
    return text.replace("${{ github.action_path }}", str(ROOT))


def test_github_action_runs_its_own_steps(tour: Path, tmp_path: Path) -> None:
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    inputs = {k: str(v.get("default", "")) for k, v in action["inputs"].items()}
    inputs |= {"install": "false", "policy": "bastion-policy.yaml", "out": "gate-out"}
    work = tmp_path / "repo"
    shutil.copytree(tour, work)
    ran = 0
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs"
    for step in action["runs"]["steps"]:
        cond = step.get("if")
        if cond is not None and _expand("${{ inputs.install }}", inputs) == "false" and "inputs.install" in cond:
            continue  # the install steps need the network; bastion is on PATH here
        assert "run" in step, step
        res = subprocess.run(["bash", "-c", _expand(step["run"], inputs)], cwd=work, capture_output=True, text=True,
                             env={**_env(tmp_path / "home"), "GITHUB_STEP_SUMMARY": str(summary),
                                  "GITHUB_OUTPUT": str(outputs)}, timeout=600)
        ran += 1
    assert ran == 1
    assert res.returncode == 1, res.stdout + res.stderr  # unsigned demo model: the signature gate fails
    assert "verdict=fail" in outputs.read_text()
    assert "Bastion gate" in summary.read_text()
    _valid_sarif(json.loads((work / "gate-out" / "bastion.sarif").read_text()))
    # the gate's assessment is kept with the others: bastion history lists it as a ci run
    from bastion.assess.history import runs

    stored = runs("digits.pt", db_url=f"sqlite:///{tmp_path / 'home' / 'bastion.db'}")
    assert [r.source for r in stored] == ["ci"] and stored[0].model_sha256 and stored[0].catalog_version


def test_pre_commit_hook_runs_its_entry_on_matching_files(tour: Path, tmp_path: Path) -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "bastion-model-scan")
    files = re.compile(hook["files"])
    clean = [p for p in ("digits.pt", "digits-v2.pt", "digits.npz") if files.search(p)]
    assert clean == ["digits.pt", "digits-v2.pt", "digits.npz"] and not files.search("README.md")
    env = _env(tmp_path / "home")
    ok = subprocess.run([*hook["entry"].split(), *clean], cwd=tour, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = subprocess.run([*hook["entry"].split(), *clean, "suspicious/evil.pt"], cwd=tour, env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "os.system" in bad.stdout


def test_cli_exit_codes(tour: Path, tmp_path: Path) -> None:
    env = _env(tmp_path / "home")
    res = subprocess.run([str(BIN / "bastion"), "ci", "--policy", str(tmp_path / "none.yaml")], env=env,
                         capture_output=True, text=True)
    assert res.returncode == 2 and "not found" in res.stderr
    (tmp_path / "p.yaml").write_text(f"model: {tour / 'digits.pt'}\nassess: {{enabled: false}}\n")
    res = subprocess.run([str(BIN / "bastion"), "ci", "--policy", str(tmp_path / "p.yaml"), "--out",
                          str(tmp_path / "o"), "--format", "json"], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert '"verdict": "pass"' in res.stdout
