"""Column-level PII decisions: a column is an entity type only when a clear share of its values are.

A per-cell match is evidence about one value; a column verdict needs more. For each column
(non-empty values of a random ``sample`` of rows) and each entity type, ``share`` is the
fraction of values with at least one match, and the column is reported as that entity when:

- **structured column** (mean ≤ 5 words per value): ``share ≥ 0.5``. Checksum-validated types
  (``CREDIT_CARD``: Luhn, ``IBAN_CODE``: mod-97) need ``share ≥ 0.25`` and at least 3 rows: a
  random digit string of card length passes Luhn 1 time in 10 and an IBAN-shaped string passes
  mod-97 about 1 time in 97, so 25 % is 2.5× (cards) to 24× (IBANs) what chance produces.
  A *mixed* column (e-mail or phone, say) where ≥ 50 % of values hold some PII reports every
  entity that reaches 10 %.
- **free-text column** (mean > 5 words per value): PII sits inside some rows, so the rule counts
  rows, not a share: one row for the precise types (``CREDIT_CARD``, ``IBAN_CODE``, ``US_SSN``,
  ``EMAIL_ADDRESS``: checksums, SSA rules or a full address with a known TLD), two rows for the
  others (``PHONE_NUMBER``, ``IP_ADDRESS``, ``STREET_ADDRESS``, ``DATE_OF_BIRTH``).

Matches below the threshold are listed as ``sporadic`` (low confidence): they never make a PII
column, an ``anonymize`` suggestion or a failing exit code. ``DATE_TIME`` without birth context
is not personal on its own and is listed under ``ignored`` with the cell rules' drops.

Numbers: in a numeric column (a numeric dtype, or ≥ 95 % of values plain numbers such as
``2602.55``) a value with a fractional part is never PII and is not scanned; integral values are
scanned as integers (a card number stored as a number is still a card), but digits carry no phone
formatting, so a numeric column is a phone column only when its name says so (``phone``,
``mobile``, ``tel`` …). IPv4-shaped values in a structured column whose first component is ≤ 9 in
≥ 90 % of ≥ 10 matches are version numbers (``1.2.33.144``), not addresses.
"""

from __future__ import annotations

import numbers
import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from bastion.data.privacy.pii import PiiScanner, mask_value

CHECKSUM_ENTITIES = frozenset({"CREDIT_CARD", "IBAN_CODE"})
PRECISE_ENTITIES = frozenset({"CREDIT_CARD", "IBAN_CODE", "US_SSN", "EMAIL_ADDRESS"})
NOT_PERSONAL = frozenset({"DATE_TIME"})
NAME_COLUMN = re.compile(r"^(?:(?:full|first|last|middle|given|family|customer|client|patient|contact|account[_\s-]?holder|"
                         r"card[_\s-]?holder|employee|member|guest|passenger)[_\s-]?)?name$|^(?:surname|forename)$", re.IGNORECASE)
_NAME_VALUE = re.compile(r"[^\W\d_]+(?:(?:[ '\-.]+|, ?)[^\W\d_]+)*\.?")  # "Ana Silva", "O'Brien, J."
_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class PiiThresholds:
    """The shares and row counts that turn cell matches into a column verdict (module docstring)."""

    column_share: float = 0.5
    checksum_share: float = 0.25
    checksum_min_rows: int = 3
    mixed_share: float = 0.5
    mixed_entity_share: float = 0.1
    free_text_words: float = 5.0
    free_text_prose: float = 0.5
    free_text_min_rows: int = 2
    numeric_share: float = 0.95
    version_share: float = 0.9
    version_min_rows: int = 5


def _prepared(series: pd.Series, th: PiiThresholds) -> tuple[pd.Series, bool, int]:
    """Non-empty values as text, whether the column is numeric, and how many fractional numbers were skipped."""
    s = series.dropna()
    numeric_dtype = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
    text = s.astype(str).str.strip()
    text = text[text != ""]
    numeric = numeric_dtype or bool(len(text) and text.str.fullmatch(_PLAIN_NUMBER).mean() >= th.numeric_share)
    if not numeric:
        return text, False, 0
    nums = pd.to_numeric(s if numeric_dtype else text, errors="coerce").reindex(text.index)
    integral = nums.notna() & (nums % 1 == 0) & (nums.abs() < 1e19)
    kept = text[integral | nums.isna()]  # a non-number in a numeric-like column is scanned as text
    if numeric_dtype:
        kept = nums[integral].map(lambda v: str(int(v)))
    return kept, True, int((~integral & nums.notna()).sum())


def _verdicts(kind: str, n: int, stats: dict[str, dict[str, Any]], union_rows: int,
              th: PiiThresholds) -> dict[str, dict[str, Any]]:
    """For each entity: the share it reached, the threshold it needed and whether it passed."""
    out: dict[str, dict[str, Any]] = {}
    mixed = kind == "structured" and union_rows / max(n, 1) >= th.mixed_share
    for ent, e in stats.items():
        share = e["rows"] / max(n, 1)
        if kind == "free_text":
            need = 1 if ent in PRECISE_ENTITIES else th.free_text_min_rows
            v = {"threshold": 0.0, "min_rows": need, "rule": f"free text: in >= {need} row(s)"}
            v["passed"] = e["rows"] >= need
        elif ent in CHECKSUM_ENTITIES and e["rows"] >= th.checksum_min_rows:
            v = {"threshold": th.checksum_share, "min_rows": th.checksum_min_rows,
                 "rule": f"checksum-validated: share >= {th.checksum_share}", "passed": share >= th.checksum_share}
        else:
            v = {"threshold": th.column_share, "min_rows": 1, "rule": f"share >= {th.column_share}",
                 "passed": share >= th.column_share}
        if not v["passed"] and mixed and share >= th.mixed_entity_share:
            v = {"threshold": th.mixed_entity_share, "min_rows": 1, "passed": True,
                 "rule": f"mixed column: PII in >= {th.mixed_share} of values, this entity >= {th.mixed_entity_share}"}
        out[ent] = {"share": round(share, 4), **v}
    return out


def _is_free_text(values: pd.Series, th: PiiThresholds) -> bool:
    """Prose: more than ``free_text_words`` words per value on average, mostly lower-case words."""
    tokens = [t for v in values for t in v.split()]
    if not len(values) or len(tokens) / len(values) <= th.free_text_words:
        return False
    prose = sum(1 for t in tokens if t[0].islower() and t.rstrip(",.;:!?").isalpha())
    return prose / len(tokens) >= th.free_text_prose


def _versions_not_ips(first_components: list[int], th: PiiThresholds) -> bool:
    small = sum(1 for c in first_components if c <= 9)
    return len(first_components) >= th.version_min_rows and small >= th.version_share * len(first_components)


def _scan_column(col: str, values: pd.Series, numeric: bool, fractional: int, sc: PiiScanner, th: PiiThresholds,
                 max_samples: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One column's verdict; ``fractional`` non-integral numbers were left out of ``values`` (never PII)."""
    kind = "free_text" if not numeric and _is_free_text(values, th) else "structured"
    stats: dict[str, dict[str, Any]] = {}
    ignored: Counter[str] = Counter()
    if fractional:
        ignored["non-integral numbers (amounts, measurements): never PII"] = fractional
    first_octets: list[int] = []
    union: set[Any] = set()
    hits: list[tuple[Any, str, dict[str, Any]]] = []
    cache: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    for idx, val in values.items():
        if val not in cache:
            cache[val] = sc.scan_cell(val, column=col)
        found, dropped = cache[val]
        if not found and NAME_COLUMN.match(col) and _NAME_VALUE.fullmatch(val):
            found = [{"entity": "PERSON", "start": 0, "end": len(val), "score": 0.6, "via": "column_name"}]
        for reason in {f"{d['entity']}: {d['reason']}" for d in dropped}:
            ignored[reason] += 1
        for f in found:
            if f["entity"] in NOT_PERSONAL:
                continue
            e = stats.setdefault(f["entity"], {"count": 0, "rows": 0, "scores": []})
            e["count"] += 1
            e["scores"].append(f["score"])
            hits.append((idx, val, f))
            span = val[f["start"] : f["end"]]
            if f["entity"] == "IP_ADDRESS" and re.fullmatch(r"\d+\.\d+\.\d+\.\d+(?:/\d+)?", span):
                first_octets.append(int(span.split(".")[0]))
        row_ents = {f["entity"] for f in found}
        for ent in row_ents - NOT_PERSONAL:
            stats[ent]["rows"] += 1
        if row_ents - NOT_PERSONAL:
            union.add(idx)
        if "DATE_TIME" in row_ents:
            ignored["DATE_TIME: a date or time without birth context (not personal on its own)"] += 1
    if "IP_ADDRESS" in stats and _versions_not_ips(first_octets, th):
        ignored["IP_ADDRESS: a version number (first component <= 9 in most values)"] += stats.pop("IP_ADDRESS")["rows"]
        union = {i for i, _, f in hits if f["entity"] != "IP_ADDRESS"}
        hits = [h for h in hits if h[2]["entity"] != "IP_ADDRESS"]
    n = len(values) + fractional
    verdicts = _verdicts(kind, n, stats, len(union), th)
    entities: dict[str, Any] = {}
    sporadic: dict[str, Any] = {}
    for ent, e in sorted(stats.items()):
        v = verdicts[ent]
        summary = {"count": e["count"], "rows": e["rows"], "row_share": v["share"], "share": v["share"],
                   "threshold": v["threshold"], "min_rows": v["min_rows"], "rule": v["rule"],
                   "mean_score": round(sum(e["scores"]) / len(e["scores"]), 3), "max_score": max(e["scores"])}
        (entities if v["passed"] else sporadic)[ent] = summary
    verdict = ("pii_in_free_text" if kind == "free_text" else "pii") if entities else ("sporadic" if sporadic else "none")
    report = {"column": col, "kind": kind, "numeric": numeric, "rows_scanned": n, "entities": entities,
              "sporadic": sporadic, "ignored": dict(ignored), "contains_pii": bool(entities), "verdict": verdict}
    cells = [{"row": int(idx) if isinstance(idx, numbers.Integral) else str(idx), "column": col, "entity": f["entity"],
              "score": f["score"], "value_shape": mask_value(val[f["start"] : f["end"]]),
              "sporadic": f["entity"] not in entities} for idx, val, f in hits[:max_samples]]
    return report, cells


def scan_columns(
    df: pd.DataFrame, columns: list[str] | None = None, sample: int = 500, seed: int = 0,
    scanner: PiiScanner | None = None, max_samples: int = 20, thresholds: PiiThresholds | None = None,
) -> dict[str, Any]:
    """Scan up to ``sample`` rows; per column: entities (PII verdicts), sporadic matches, ignored matches.

    Examples:
        >>> rep = scan_columns(pd.DataFrame({"amount": [2602.55, 18.2], "email": ["a@x.org", "b@y.com"]}))  # doctest: +SKIP
        >>> rep["pii_columns"], rep["columns"][0]["verdict"]   # doctest: +SKIP
        (['email'], 'none')
    """
    from bastion.core.errors import InvalidInputError
    from bastion.data.privacy.anonymize import suggest_policy

    sc = scanner or PiiScanner()
    th = thresholds or PiiThresholds()
    cols = columns or [str(c) for c in df.columns]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InvalidInputError(f"column(s) {', '.join(missing)} not in the data; it has {', '.join(map(str, df.columns))}")
    if sample < 1:
        raise InvalidInputError(f"sample must be >= 1 row, got {sample}")
    rows = df if len(df) <= sample else df.sample(sample, random_state=seed).sort_index()
    report_cols: list[dict[str, Any]] = []
    cells: list[dict[str, Any]] = []
    for col in cols:
        values, numeric, fractional = _prepared(rows[col], th)
        rep, col_cells = _scan_column(col, values, numeric, fractional, sc, th, max_samples)
        report_cols.append(rep)
        cells.extend(col_cells)
    totals: Counter[str] = Counter()
    sporadic_totals: Counter[str] = Counter()
    for c in report_cols:
        totals.update({ent: int(e["count"]) for ent, e in c["entities"].items()})
        sporadic_totals.update({ent: int(e["count"]) for ent, e in c["sporadic"].items()})
    return {
        "rows_total": len(df),
        "rows_scanned": len(rows),
        "columns": report_cols,
        "pii_columns": [c["column"] for c in report_cols if c["contains_pii"]],
        "sporadic_columns": [c["column"] for c in report_cols if c["verdict"] == "sporadic"],
        "entity_counts": dict(totals),
        "sporadic_counts": dict(sporadic_totals),
        "cell_samples": cells,
        "anonymize_suggestions": suggest_policy(report_cols),
        "params": {"sample": sample, "seed": seed, "min_score": sc.min_score, "engine": "presidio+spacy.blank(en)",
                   "thresholds": asdict(th)},
    }
