"""Column-level PII verdicts on the seeded corpus of :mod:`bastion.data.privacy.pii_corpus` (issue 15, item 4).

Every true PII column must be found with the right entity type, no look-alike column (amounts,
order references, SKUs, numeric ZIPs, timestamps, floats, integer ids, UUIDs, versions, user
agents, barcodes …) may be a PII column (sporadic matches are allowed), free-text columns must
be reported as PII in free text, and ``anonymize`` suggestions go to PII columns only.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bastion.cli.main import build_app
from bastion.data.privacy.anonymize import AnonymizationPolicy, anonymize
from bastion.data.privacy.pii import PiiScanner, scan_dataframe
from bastion.data.privacy.pii_columns import PRECISE_ENTITIES, PiiThresholds
from bastion.data.privacy.pii_corpus import (
    FAMILIES,
    US_AREAS,
    CorpusTable,
    card_number,
    fresh_table,
    order_ref,
)

# ----------------------------------------------------------------------------- the checks
TABLES = [("tuning", 0), ("tuning", 1), ("fresh", 101), ("fresh", 202), ("holdout", 500), ("holdout", 501)]
KEPT_KEYS = {"rows_total", "rows_scanned", "columns", "pii_columns", "entity_counts", "cell_samples", "params"}
KEPT_COLUMN_KEYS = {"column", "kind", "rows_scanned", "entities", "contains_pii"}
KEPT_ENTITY_KEYS = {"count", "rows", "row_share", "mean_score", "max_score"}


@pytest.fixture(scope="module")
def scanner() -> PiiScanner:
    return PiiScanner()


def build(family: str, seed: int) -> CorpusTable:
    return FAMILIES[family](seed)


def free_text_required(truth: dict[str, set[int]], th: PiiThresholds) -> set[str]:
    """Entities planted often enough that the documented free-text rule must report them."""
    return {e for e, rows in truth.items() if len(rows) >= (1 if e in PRECISE_ENTITIES else th.free_text_min_rows)}


@pytest.mark.parametrize(("family", "seed"), TABLES)
def test_corpus_column_verdicts(scanner: PiiScanner, family: str, seed: int) -> None:
    table = build(family, seed)
    rep = scan_dataframe(table.df, scanner=scanner)
    cols = {c["column"]: c for c in rep["columns"]}
    wrong = {}
    for name, expected in table.expected.items():
        c, got = cols[name], set(cols[name]["entities"])
        if name in table.notes_truth:  # free text: PII inside some rows
            truth = table.notes_truth[name]
            ok = c["kind"] == "free_text" and c["verdict"] == "pii_in_free_text" and (
                free_text_required(truth, PiiThresholds()) <= got <= set(truth))
            for ent in set(truth) & got & PRECISE_ENTITIES:  # validated types: exactly the planted rows
                ok = ok and c["entities"][ent]["rows"] == len(truth[ent])
        else:
            ok = got == expected and c["contains_pii"] == bool(expected)
        if not ok:
            wrong[name] = {"expected": sorted(expected), "entities": c["entities"], "sporadic": c["sporadic"]}
    assert not wrong, wrong
    pii_cols = [n for n, e in table.expected.items() if e]
    assert rep["pii_columns"] == pii_cols
    assert set(rep["anonymize_suggestions"]["columns"]) == set(pii_cols)  # look-alikes never get a rule
    assert not set(rep["sporadic_columns"]) & set(pii_cols)


def test_cli_json_keys_exit_code_and_suggested_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = fresh_table(303, n=60)
    csv = tmp_path / "customers.csv"
    table.df.to_csv(csv, index=False)
    policy = tmp_path / "policy.yaml"
    app = build_app()
    res = CliRunner().invoke(app, ["data", "pii", str(csv), "--format", "json", "--suggest-policy", str(policy)])
    assert res.exit_code == 1, res.output
    rep = json.loads(res.stdout)
    assert KEPT_KEYS | {"sporadic_columns", "anonymize_suggestions", "data"} <= set(rep)
    pii_cols = [n for n, e in table.expected.items() if e]
    assert rep["pii_columns"] == pii_cols
    for c in rep["columns"]:
        assert KEPT_COLUMN_KEYS | {"sporadic", "verdict", "numeric", "ignored"} <= set(c)
        for e in c["entities"].values():
            assert KEPT_ENTITY_KEYS | {"share", "threshold", "rule"} <= set(e)
            assert e["share"] >= e["threshold"]
    assert rep["params"]["thresholds"]["column_share"] == 0.5
    pol = AnonymizationPolicy.load(policy)
    assert set(pol.columns) == set(pii_cols)
    monkeypatch.setenv("BASTION_PSEUDO_KEY", "corpus-test-key")
    out = anonymize(pd.read_csv(csv, dtype=str), pol, base=tmp_path).data
    for name in pii_cols:
        if name in out.columns:
            assert not (out[name].astype(str) == table.df[name].astype(str)).all(), name
    for name in (n for n, e in table.expected.items() if not e):
        assert out[name].equals(pd.read_csv(csv, dtype=str)[name]), name  # look-alikes untouched


def test_sporadic_matches_never_fail_or_get_a_rule(tmp_path: Path) -> None:
    rng = random.Random(7)
    refs = [order_ref(rng) for _ in range(95)] + [card_number(rng) for _ in range(5)]  # 5 % valid cards
    df = pd.DataFrame({"payment_ref": refs, "amount": [round(rng.uniform(1, 9999), 2) for _ in range(100)],
                       "device_id": [rng.randint(10**9, 10**10 - 1) for _ in range(100)]})
    csv = tmp_path / "orders.csv"
    df.to_csv(csv, index=False)
    res = CliRunner().invoke(build_app(), ["data", "pii", str(csv)])
    assert res.exit_code == 0, res.output
    assert "sporadic, low confidence" in res.output and "CREDIT_CARD 5/100" in res.output
    rep = scan_dataframe(df)
    assert rep["pii_columns"] == [] and rep["sporadic_columns"] == ["payment_ref"]
    assert rep["anonymize_suggestions"] == {"columns": {}} and rep["entity_counts"] == {}
    assert rep["sporadic_counts"] == {"CREDIT_CARD": 5}


def test_numeric_columns_are_phones_only_when_named_so(scanner: PiiScanner) -> None:
    rng = random.Random(3)
    digits = [int(f"{rng.choice(US_AREAS)}{rng.randint(201, 989)}{rng.randint(1000, 9999)}") for _ in range(40)]
    df = pd.DataFrame({"mobile_phone": digits, "device_id": digits, "amount": [d / 100 for d in digits]})
    cols = {c["column"]: c for c in scan_dataframe(df, scanner=scanner)["columns"]}
    assert set(cols["mobile_phone"]["entities"]) == {"PHONE_NUMBER"}
    assert cols["device_id"]["verdict"] == "none" and cols["device_id"]["numeric"]
    assert cols["amount"]["verdict"] == "none" and "non-integral" in next(iter(cols["amount"]["ignored"]))
