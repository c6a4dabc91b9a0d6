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


@pytest.mark.parametrize(("text", "column", "expected"), [
    ("ORD-2024-118273", "", []),                      # a code, not a phone
    ("SKU-1234-5678", "", []),
    ("4155551234", "", []),                           # bare digits
    ("4155551234", "mobile_phone", ["PHONE_NUMBER"]),  # … unless the column says phone
    ("call me on 4155551234 tonight", "", ["PHONE_NUMBER"]),
    ("+44 20 7946 0958", "", ["PHONE_NUMBER"]),
    ("(415) 555-0134", "", ["PHONE_NUMBER"]),
    ("Ana Silva (415-555-0134)", "", ["PHONE_NUMBER"]),
    ("+4915112345678", "", ["PHONE_NUMBER"]),         # passes Luhn, but a leading + is a phone
    ("03.02.1984", "", ["DATE_TIME"]),                # a date, not a phone
    ("upgraded to 1.2.33.144 today", "", []),         # a version, not an IP
    ("1.2.33.144", "app_version", []),
    ("login from 81.2.69.160", "", ["IP_ADDRESS"]),
    ("ships to 221B Baker Street, London", "", ["STREET_ADDRESS"]),
    ("Hauptstraße 12, 10115 Berlin", "", ["STREET_ADDRESS"]),
    ("born 3 Feb 1984", "", ["DATE_OF_BIRTH"]),
])
def test_cell_rules(scanner: PiiScanner, text: str, column: str, expected: list[str]) -> None:
    assert [f["entity"] for f in scanner.scan_text(text, column=column)] == expected


def _verdict(df: pd.DataFrame, scanner: PiiScanner) -> dict[str, tuple[str, set[str], set[str]]]:
    rep = scan_dataframe(df, scanner=scanner)
    return {c["column"]: (c["verdict"], set(c["entities"]), set(c["sporadic"])) for c in rep["columns"]}


def test_share_thresholds_at_their_boundaries(scanner: PiiScanner) -> None:
    emails = [f"user{i}@example.org" for i in range(100)]
    cards = ["4111 1111 1111 1111", "5500 0000 0000 0004", "3400 000000 00009"] * 9
    refs = [f"ORD-2024-{100000 + i}" for i in range(100)]
    df = pd.DataFrame({
        "half_email": emails[:50] + refs[:50],      # share 0.50: a column finding
        "under_half": emails[:49] + refs[:51],      # share 0.49: sporadic
        "cards_25": cards[:25] + refs[:75],         # checksum-validated: 0.25 is enough
        "cards_24": cards[:24] + refs[:76],
    })
    v = _verdict(df, scanner)
    assert v["half_email"] == ("pii", {"EMAIL_ADDRESS"}, set())
    assert v["under_half"] == ("sporadic", set(), {"EMAIL_ADDRESS"})
    assert v["cards_25"] == ("pii", {"CREDIT_CARD"}, set())
    assert v["cards_24"] == ("sporadic", set(), {"CREDIT_CARD"})


def test_free_text_rules_and_mixed_columns(scanner: PiiScanner) -> None:
    prose = ["the parcel arrived late and the customer was not happy about it"] * 60
    one_card = [*prose[:59], "the customer paid with card 4111 1111 1111 1111 at the desk today"]
    one_phone = [*prose[:59], "the customer asked us to call back on (415) 555-0134 after lunch"]
    two_phones = prose[:58] + ["the customer asked us to call back on (415) 555-0134 after lunch"] * 2
    contact = [f"user{i}@example.org" for i in range(30)] + [f"+44 20 7946 0{100 + i}" for i in range(25)] + ["-"] * 5
    v = _verdict(pd.DataFrame({"a": one_card, "b": one_phone, "c": two_phones, "contact": contact}), scanner)
    assert v["a"] == ("pii_in_free_text", {"CREDIT_CARD"}, set())   # precise types: one row
    assert v["b"] == ("sporadic", set(), {"PHONE_NUMBER"})           # others: two rows
    assert v["c"] == ("pii_in_free_text", {"PHONE_NUMBER"}, set())
    assert v["contact"] == ("pii", {"EMAIL_ADDRESS", "PHONE_NUMBER"}, set())  # 55 % PII, 50 % + 42 %


def test_redact_keeps_to_the_entities_asked(people: tuple[pd.DataFrame, dict]) -> None:
    from bastion.data.privacy.anonymize import redact

    notes = pd.Series(["born 1984-02-03, visited 2024-05-01, card 4111 1111 1111 1111"])
    assert redact(notes, ["DATE_OF_BIRTH"])[0] == "born <DATE_OF_BIRTH>, visited 2024-05-01, card 4111 1111 1111 1111"
    with pytest.raises(ConfigError, match="unknown entities"):
        redact(notes, ["PASSPORT"], column="notes")


def test_scanning_stays_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("PII scanning tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)  # a DNS lookup is already a network access
    df = pd.DataFrame({"email": ["ana@example.co.uk", "li@mail.example.org"], "amount": [2602.55, 18.2]})
    rep = scan_dataframe(df, scanner=PiiScanner())  # a fresh analyzer: tldextract built under the block
    assert rep["pii_columns"] == ["email"]


def test_anonymize_keeps_untouched_cells_as_written(tmp_path: Path) -> None:
    csv = tmp_path / "c.csv"
    csv.write_text("name,postcode,phone,age\nAna Silva,02134,+4915112345678,34\nLi Wei,00501,+441234567890,51\n")
    policy = tmp_path / "p.yaml"
    policy.write_text("columns:\n  name: {action: drop}\n  phone: {action: mask, keep_last: 4}\n"
                      "k_anonymity:\n  quasi_identifiers: [age]\n  k: 2\n")
    out = tmp_path / "o.csv"
    res = runner.invoke(build_app(), ["data", "anonymize", str(csv), "--policy", str(policy), "--out", str(out)])
    assert res.exit_code == 0, res.output
    got = pd.read_csv(out, dtype=str)
    assert got["postcode"].tolist() == ["02134", "00501"]          # no int parse: leading zeros survive
    assert got["phone"].tolist() == ["+*********5678", "+********7890"]
    assert got["age"].tolist() == ["34-51", "34-51"]               # numbers read as text are still numeric QIs
