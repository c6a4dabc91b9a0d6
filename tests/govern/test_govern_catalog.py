"""The control catalog: schema, references checked against MITRE ATLAS 5.6.0, and every control id used by
any registered check or finding is known."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bastion.core.errors import ConfigError, RegistryError
from bastion.govern.catalog import (
    FrameworkRef,
    control_for_check,
    controls_for_ref,
    is_known_ref,
    known_framework_refs,
    load_catalog,
    resolve,
)
from bastion.govern.catalog.loader import _read, parse_catalog

CAPABILITIES = {
    "evasion", "poisoning", "privacy", "extraction", "supply-chain", "data-integrity", "pii", "monitoring",
    "audit-logging", "access-control", "incident-response", "human-oversight", "training", "explainability",
    "differential-privacy", "federated-learning", "encrypted-inference", "governance", "hardening",
}
OWASP_TITLES = {
    "ML01:2023": "Input Manipulation Attack", "ML02:2023": "Data Poisoning Attack",
    "ML03:2023": "Model Inversion Attack", "ML04:2023": "Membership Inference Attack",
    "ML05:2023": "Model Theft", "ML06:2023": "AI Supply Chain Attacks", "ML07:2023": "Transfer Learning Attack",
    "ML08:2023": "Model Skewing", "ML09:2023": "Output Integrity Attack", "ML10:2023": "Model Poisoning",
}


@pytest.fixture(scope="module")
def atlas(shared_dir: Path) -> dict[str, dict]:
    doc = yaml.safe_load((shared_dir / "data" / "mitre-atlas" / "ATLAS.yaml").read_text())
    assert doc["version"] == "5.6.0"
    matrix = doc["matrices"][0]
    out = {t["id"]: {**t, "kind": "sub-technique" if "subtechnique-of" in t else "technique"}
           for t in matrix["techniques"]}
    out.update({m["id"]: {**m, "kind": "mitigation"} for m in matrix["mitigations"]})
    return out


def test_catalog_loads_and_covers_every_capability() -> None:
    cat = load_catalog()
    assert {c.capability for c in cat.controls} >= CAPABILITIES
    assert cat.framework_versions["mitre-atlas"] == "5.6.0"
    for control in cat.controls:
        assert control.mappings, control.id
        assert control.checks or control.evidence, control.id


def test_every_atlas_item_exists_at_5_6_0_with_its_name_and_kind(atlas: dict[str, dict]) -> None:
    items = [i for i in load_catalog().items if i.framework == "mitre-atlas"]
    assert len(items) > 40
    for item in items:
        assert item.id in atlas, f"{item.id} is not in ATLAS 5.6.0"
        assert atlas[item.id]["name"] == item.title, item.id
        assert atlas[item.id]["kind"] == item.kind, item.id
        if item.parent:
            assert atlas[item.id]["subtechnique-of"] == item.parent


def test_every_atlas_mapping_exists(atlas: dict[str, dict]) -> None:
    refs = [m.parsed for c in load_catalog().controls for m in c.mappings if m.parsed.framework == "mitre-atlas"]
    assert refs
    for ref in refs:
        assert ref.version == "5.6.0"
        assert ref.item in atlas, f"{ref} not in ATLAS"


def test_owasp_ids_and_titles_are_the_2023_list() -> None:
    items = {i.id: i.title for i in load_catalog().items if i.framework == "owasp-ml"}
    assert items == OWASP_TITLES


def test_nist_has_all_72_subcategories() -> None:
    items = [i for i in load_catalog().items if i.framework == "nist-ai-rmf"]
    assert len(items) == 72
    by_function = {f: sum(i.id.startswith(f + "-") for i in items) for f in ("GOVERN", "MAP", "MEASURE", "MANAGE")}
    assert by_function == {"GOVERN": 19, "MAP": 18, "MEASURE": 22, "MANAGE": 13}


@pytest.mark.parametrize(
    ("text", "framework", "item", "version"),
    [
        ("mitre-atlas:AML.T0015@5.6.0", "mitre-atlas", "AML.T0015", "5.6.0"),
        ("mitre-atlas:AML.T0024.002", "mitre-atlas", "AML.T0024.002", None),
        ("owasp-ml:ML01:2023", "owasp-ml", "ML01:2023", None),
        ("nist-ai-rmf:MEASURE-2.7@1.0", "nist-ai-rmf", "MEASURE-2.7", "1.0"),
        ("eu-ai-act:Art15(5)@2024/1689", "eu-ai-act", "Art15(5)", "2024/1689"),
        ("eu-ai-act:Art5(1)(c)", "eu-ai-act", "Art5(1)(c)", None),
        ("gdpr:Art35", "gdpr", "Art35", None),
    ],
)
def test_framework_refs_parse(text: str, framework: str, item: str, version: str | None) -> None:
    ref = FrameworkRef.parse(text)
    assert (ref.framework, ref.item, ref.version) == (framework, item, version)
    assert resolve(text).item.id == item


@pytest.mark.parametrize("bad", ["atlas:AML.T0015", "mitre-atlas:T0015", "owasp-ml:ML11:2023", "nist-ai-rmf:MEASURE2.7"])
def test_malformed_refs_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError):
        FrameworkRef.parse(bad)


def test_unknown_or_wrong_version_refs_are_refused() -> None:
    with pytest.raises(RegistryError):
        resolve("mitre-atlas:AML.T0015@4.0.0")
    with pytest.raises(RegistryError):
        resolve("mitre-atlas:AML.T0051")  # an LLM technique the catalog does not cite
    assert not is_known_ref("mitre-atlas:AML.T9999")
    assert is_known_ref("BC-EV-01")
    assert is_known_ref("nist-ai-rmf:MEASURE-2.7")


def test_control_for_check_and_back() -> None:
    ev = control_for_check("evasion.pgd_linf")
    assert ev is not None and ev.id == "BC-EV-01"
    assert control_for_check("monitor.extraction").id == "BC-MO-02"  # exact beats prefix
    assert control_for_check("no.such.check") is None
    assert {c.id for c in controls_for_ref("owasp-ml:ML04:2023")} >= {"BC-PR-01", "BC-DP-01"}


def test_schema_rejects_broken_catalogs() -> None:
    controls, frameworks = _read("controls.yaml"), _read("frameworks.yaml")
    dup = {**controls, "controls": controls["controls"] + [controls["controls"][0]]}
    with pytest.raises(ConfigError, match="defined twice"):
        parse_catalog(dup, frameworks)
    first = dict(controls["controls"][0])
    first["mappings"] = ["relatedMatch mitre-atlas:AML.T0015@5.0.1"]
    with pytest.raises(ConfigError, match="pinned"):
        parse_catalog({**controls, "controls": [first]}, frameworks)
    first["mappings"] = ["sameAs mitre-atlas:AML.T0015@5.6.0"]
    with pytest.raises(ConfigError):
        parse_catalog({**controls, "controls": [first]}, frameworks)


def test_every_registered_check_uses_known_controls() -> None:
    from bastion.assess.registry import load_checks

    unknown = {
        f"{cid}: {ref}"
        for cid, check in load_checks().items()
        for ref in check.controls
        if not is_known_ref(ref)
    }
    assert not unknown, f"control ids not in the catalog: {sorted(unknown)}"
    assert "mitre-atlas:AML.T0015" in known_framework_refs()


def test_every_registered_check_is_evidence_for_a_control() -> None:
    from bastion.assess.registry import load_checks

    orphans = sorted(cid for cid in load_checks() if control_for_check(cid) is None)
    assert not orphans, f"checks that no catalog control takes as evidence: {orphans}"


@pytest.mark.slow
def test_findings_of_a_quick_demo_run_use_known_controls(tmp_path: Path) -> None:
    from dataclasses import replace

    from bastion.assess.registry import CheckContext, checks_for
    from bastion.core.target import DataSplits
    from bastion.models.zoo import demo_target

    full = demo_target("digits")
    d = full.data
    assert d.x_train is not None and d.y_train is not None and d.x_test is not None and d.y_test is not None
    # a small slice keeps every check fast; what is checked is the control ids they emit
    target = replace(full, data=DataSplits(x_train=d.x_train[:240], y_train=d.y_train[:240],
                                           x_test=d.x_test[:120], y_test=d.y_test[:120]))
    ctx = CheckContext(profile="quick", seed=0, out_dir=tmp_path, options={"samples": 32, "extraction_budget": 200,
                                                                           "n_reference": 8, "time_budget": 20})
    used: set[str] = set()
    for check in checks_for(target, "quick"):
        try:
            result = check.run(target, ctx)
        except Exception:  # a crashing check is the runner's business, not the catalog's
            continue
        used.update(result.controls)
        used.update(ref for f in result.findings for ref in f.controls)
    unknown = sorted(ref for ref in used if not is_known_ref(ref))
    assert not unknown, f"findings use control ids missing from the catalog: {unknown}"
