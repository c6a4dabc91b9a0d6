"""PII detection (offline, decoys not reported) and anonymisation (k-anonymity, l-diversity, HMAC)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bastion.cli.main import build_app
from bastion.core.errors import ConfigError
from bastion.data.privacy.anonymize import AnonymizationPolicy, KAnonymity, anonymize, k_anonymize
from bastion.data.privacy.pii import PiiScanner, scan_dataframe
from bastion.data.privacy.synthetic import DECOY_CARDS, DECOY_IBANS, DECOY_SSNS, synthetic_people

runner = CliRunner()


@pytest.fixture(scope="module")
def scanner() -> PiiScanner:
    return PiiScanner()


@pytest.fixture(scope="module")
def people() -> tuple[pd.DataFrame, dict[str, set[int]]]:
    return synthetic_people(60)


def test_valid_entities_found_and_ssn_not_a_phone(scanner: PiiScanner) -> None:
    found = scanner.scan_text("SSN 536-22-8435, card 4111 1111 1111 1111, mail a.b@example.com, born 1984-02-03")
    kinds = [f["entity"] for f in found]
    assert kinds == ["US_SSN", "CREDIT_CARD", "EMAIL_ADDRESS", "DATE_OF_BIRTH"]
    assert "PHONE_NUMBER" not in [f["entity"] for f in scanner.scan_text("536-22-8435")]


@pytest.mark.parametrize("decoy", DECOY_CARDS + DECOY_SSNS + DECOY_IBANS)
def test_decoys_not_reported(scanner: PiiScanner, decoy: str) -> None:
    assert scanner.scan_text(f"reference {decoy} on file") == []


def test_scan_dataframe_per_column_and_cell(scanner: PiiScanner, people: tuple[pd.DataFrame, dict]) -> None:
    df, truth = people
    rep = scan_dataframe(df, scanner=scanner)
    cols = {c["column"]: c for c in rep["columns"]}
    assert set(cols["email"]["entities"]) == {"EMAIL_ADDRESS"}
    assert set(cols["birth_date"]["entities"]) == {"DATE_OF_BIRTH"}
    assert set(cols["ip"]["entities"]) == {"IP_ADDRESS"}
    assert set(cols["name"]["entities"]) == {"PERSON"}
    assert cols["notes"]["kind"] == "free_text"
    notes = cols["notes"]["entities"]
    for ent in ("CREDIT_CARD", "US_SSN", "IBAN_CODE"):  # exactly the valid ones, decoys excluded
        assert notes[ent]["rows"] == len(truth[ent])
    assert not cols["diagnosis"]["entities"] and not cols["customer_id"]["entities"]
    assert all("9" in s["value_shape"] or "x" in s["value_shape"] for s in rep["cell_samples"])


def test_k_anonymity_achieved_at_least_requested(people: tuple[pd.DataFrame, dict]) -> None:
    df, _ = synthetic_people(200, seed=3)
    for k in (3, 7):
        out, rep = k_anonymize(df, KAnonymity(quasi_identifiers=["age", "zip", "gender"], k=k,
                                              l_diversity={"sensitive": "diagnosis", "l": 2}))
        groups = out.groupby(["age", "zip", "gender"])
        assert rep["k_achieved"] >= k and groups.size().min() >= k
        assert groups["diagnosis"].nunique().min() >= 2 and rep["l_achieved"] >= 2
        assert 0.0 < rep["information_loss_ncp"] < 1.0


def test_policy_actions_and_keyed_pseudonyms(tmp_path: Path, people: tuple[pd.DataFrame, dict]) -> None:
    df, _ = people
    key = tmp_path / "pseudo.key"
    key.write_bytes(b"k1")
    os.chmod(key, 0o600)
    pol = AnonymizationPolicy.model_validate({
        "key_file": str(key),
        "columns": {"name": {"action": "drop"}, "email": {"action": "pseudonymize"},
                    "phone": {"action": "mask", "keep_last": 4}, "birth_date": {"action": "generalize", "date": "year"},
                    "notes": {"action": "redact"}},
    })
    out = anonymize(df, pol).data
    assert "name" not in out.columns
    assert out["email"].str.fullmatch(r"[0-9a-f]{32}").all() and out["email"].nunique() == df["email"].nunique()
    assert anonymize(df, pol).data["email"].equals(out["email"])  # deterministic: joins survive
    assert (out["phone"].str[-4:] == df["phone"].str[-4:]).all() and not out["phone"].str[:-4].str.contains(r"\d").any()
    assert out["birth_date"].str.fullmatch(r"\d{4}").all()
    assert not out["notes"].str.contains("4111 1111 1111 1111").any() and out["notes"].str.contains("<CREDIT_CARD>").any()
    os.chmod(key, 0o644)
    with pytest.raises(ConfigError, match="0600"):
        anonymize(df, pol)


def test_cli_pii_and_anonymize(tmp_path: Path, people: tuple[pd.DataFrame, dict]) -> None:
    df, _ = people
    csv = tmp_path / "people.csv"
    df.to_csv(csv, index=False)
    app = build_app()
    res = runner.invoke(app, ["data", "pii", str(csv), "--columns", "email,diagnosis", "--format", "json"])
    assert res.exit_code == 1, res.output
    assert json.loads(res.stdout)["pii_columns"] == ["email"]
    clean = runner.invoke(app, ["data", "pii", str(csv), "--columns", "diagnosis", "--format", "json"])
    assert clean.exit_code == 0
    policy = tmp_path / "policy.yaml"
    policy.write_text("columns:\n  name: {action: drop}\nk_anonymity:\n  quasi_identifiers: [age, gender]\n  k: 4\n")
    res = runner.invoke(app, ["data", "anonymize", str(csv), "--policy", str(policy), "--out", str(tmp_path / "o.csv"),
                              "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["k_anonymity"]["k_achieved"] >= 4
    assert pd.read_csv(tmp_path / "o.csv").groupby(["age", "gender"]).size().min() >= 4
