"""PII detection in tables, fully offline, with Microsoft Presidio's recognizers.

Presidio normally loads a spaCy model (a download); here it runs on a blank spaCy English
tokenizer (``BlankSpacyNlpEngine``), and the e-mail recognizer's ``tldextract`` is rebuilt
with ``suffix_list_urls=()`` so it never fetches the public-suffix list. Validation stays
Presidio's: Luhn for credit cards, the mod-97 checksum for IBANs, the SSA rules for US SSNs
(no 000/666/9xx area, no 00 group, no 0000 serial), so decoys are not reported.

Entities: ``EMAIL_ADDRESS``, ``PHONE_NUMBER``, ``CREDIT_CARD``, ``IBAN_CODE``, ``US_SSN``,
``IP_ADDRESS``, ``DATE_OF_BIRTH`` (a date with birth context in the cell or the column name),
``DATE_TIME`` and ``PERSON`` (only from a column named like a person's name: a blank pipeline
has no NER model).

Examples:
    >>> scanner = PiiScanner()                                   # doctest: +SKIP
    >>> scanner.scan_text("SSN 536-22-8435")[0]["entity"]         # doctest: +SKIP
    'US_SSN'
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS", "DATE_TIME")
_BIRTH_CONTEXT = re.compile(r"\b(born|birth|dob|d\.o\.b|birthday|geboren|né|nee)\b", re.IGNORECASE)
_BIRTH_COLUMN = re.compile(r"(birth|dob|bday)", re.IGNORECASE)
_NAME_COLUMN = re.compile(r"^(full_?name|name|first_?name|last_?name|surname|given_?name|customer_?name|patient_?name)$",
                          re.IGNORECASE)
_PRIORITY = {"CREDIT_CARD": 5, "IBAN_CODE": 5, "US_SSN": 4, "EMAIL_ADDRESS": 4, "IP_ADDRESS": 3, "PHONE_NUMBER": 2,
             "DATE_TIME": 1}


def _blank_engine() -> Any:
    import spacy
    from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine

    class BlankSpacyNlpEngine(NlpEngine):
        """Tokens and lower-cased lemmas from ``spacy.blank('en')``: no model download, no NER."""

        def __init__(self) -> None:
            self.nlp: Any = None

        def load(self) -> None:
            self.nlp = spacy.blank("en")

        def is_loaded(self) -> bool:
            return self.nlp is not None

        def process_text(self, text: str, language: str) -> NlpArtifacts:
            doc = self.nlp(text)
            return NlpArtifacts([], doc, [t.idx for t in doc], [t.lower_ for t in doc], self, language)

        def process_batch(  # type: ignore[override]
            self, texts: Iterable[str], language: str, batch_size: int = 1, n_process: int = 1, **kwargs: Any
        ) -> Iterator[tuple[str, NlpArtifacts]]:
            for t in texts:
                yield t, self.process_text(t, language)

        def is_stopword(self, word: str, language: str) -> bool:
            return bool(self.nlp.vocab[word].is_stop)

        def is_punct(self, word: str, language: str) -> bool:
            return bool(self.nlp.vocab[word].is_punct)

        def get_supported_entities(self) -> list[str]:
            return []

        def get_supported_languages(self) -> list[str]:
            return ["en"]

    engine = BlankSpacyNlpEngine()
    engine.load()
    return engine


def _offline_tldextract() -> None:
    """Point Presidio's e-mail recognizer at a tldextract that uses only its bundled snapshot."""
    import presidio_analyzer.predefined_recognizers.generic.email_recognizer as email_rec
    import tldextract

    if not isinstance(email_rec.tldextract, types.SimpleNamespace):
        extractor = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
        email_rec.tldextract = types.SimpleNamespace(extract=extractor)  # type: ignore[assignment]


@dataclass
class PiiScanner:
    """Presidio analyzer on a blank pipeline with only the recognizers Bastion reports."""

    min_score: float = 0.4
    entities: tuple[str, ...] = ENTITIES
    _analyzer: Any = field(default=None, init=False, repr=False)

    def analyzer(self) -> Any:
        if self._analyzer is None:
            from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
            from presidio_analyzer.predefined_recognizers import (
                CreditCardRecognizer,
                DateRecognizer,
                EmailRecognizer,
                IbanRecognizer,
                IpRecognizer,
                PhoneRecognizer,
                UsSsnRecognizer,
            )

            _offline_tldextract()
            engine = _blank_engine()
            registry = RecognizerRegistry(supported_languages=["en"])
            for rec in (CreditCardRecognizer, DateRecognizer, EmailRecognizer, IbanRecognizer, IpRecognizer,
                        PhoneRecognizer, UsSsnRecognizer):
                registry.add_recognizer(rec())
            self._analyzer = AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=["en"])
        return self._analyzer

    def scan_text(self, text: str, column: str = "") -> list[dict[str, Any]]:
        """Entities in one cell, overlaps resolved (the validated, more specific entity wins)."""
        if not text or not text.strip():
            return []
        results = self.analyzer().analyze(text, language="en", entities=list(self.entities))
        results = [r for r in results if r.score >= self.min_score]
        results.sort(key=lambda r: (-_PRIORITY.get(r.entity_type, 0), -r.score, r.start))
        kept: list[Any] = []
        for r in results:
            if all(r.end <= k.start or r.start >= k.end for k in kept):
                kept.append(r)
        out = []
        for r in sorted(kept, key=lambda r: r.start):
            entity = r.entity_type
            if entity == "DATE_TIME" and (_BIRTH_COLUMN.search(column) or _BIRTH_CONTEXT.search(text[max(0, r.start - 30) : r.start])):
                entity = "DATE_OF_BIRTH"
            out.append({"entity": entity, "start": r.start, "end": r.end, "score": round(float(r.score), 3)})
        return out


def mask_value(text: str) -> str:
    """Show only the shape of a value in reports: letters → x, digits → 9 (keeps separators)."""
    return re.sub(r"[A-Za-z]", "x", re.sub(r"\d", "9", text))


def scan_dataframe(
    df: pd.DataFrame, columns: list[str] | None = None, sample: int = 500, seed: int = 0,
    scanner: PiiScanner | None = None, max_samples: int = 20,
) -> dict[str, Any]:
    """Per-column and per-cell PII findings over up to ``sample`` rows per column.

    Structured columns (short values) and free-text columns are both scanned cell by cell.
    """
    from bastion.core.errors import InvalidInputError

    sc = scanner or PiiScanner()
    cols = columns or [str(c) for c in df.columns]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InvalidInputError(f"column(s) {', '.join(missing)} not in the data; it has {', '.join(map(str, df.columns))}")
    rows = df if len(df) <= sample else df.sample(sample, random_state=seed).sort_index()
    report_cols: list[dict[str, Any]] = []
    cells: list[dict[str, Any]] = []
    for col in cols:
        values = rows[col].dropna().astype(str)
        words = float(values.map(lambda v: len(v.split())).mean()) if len(values) else 0.0
        kind = "free_text" if words and words > 5 else "structured"
        ents: dict[str, dict[str, Any]] = {}
        cache: dict[str, list[dict[str, Any]]] = {}
        for idx, val in values.items():
            found = cache.get(val)
            if found is None:
                found = cache[val] = sc.scan_text(val, column=col)
            if not found and _NAME_COLUMN.match(col) and re.fullmatch(r"[^\W\d_]+(?:[ '\-.][^\W\d_]+)*", val.strip()):
                found = [{"entity": "PERSON", "start": 0, "end": len(val), "score": 0.6, "via": "column_name"}]
            for f in found:
                e = ents.setdefault(f["entity"], {"count": 0, "rows": 0, "scores": []})
                e["count"] += 1
                e["scores"].append(f["score"])
                if len(cells) < max_samples * max(1, len(cols)):
                    cells.append({"row": int(idx) if isinstance(idx, int) else str(idx), "column": col, "entity": f["entity"],
                                  "score": f["score"], "value_shape": mask_value(val[f["start"] : f["end"]])})
            for ent in {f["entity"] for f in found}:
                ents[ent]["rows"] += 1
        n = len(values)
        summary = {
            ent: {"count": e["count"], "rows": e["rows"], "row_share": round(e["rows"] / max(n, 1), 4),
                  "mean_score": round(sum(e["scores"]) / len(e["scores"]), 3), "max_score": max(e["scores"])}
            for ent, e in sorted(ents.items())
        }
        report_cols.append({"column": col, "kind": kind, "rows_scanned": n, "entities": summary,
                            "contains_pii": bool(summary)})
    totals: dict[str, int] = {}
    for c in report_cols:
        for ent, e in c["entities"].items():
            totals[ent] = totals.get(ent, 0) + int(e["count"])
    return {
        "rows_total": len(df),
        "rows_scanned": len(rows),
        "columns": report_cols,
        "pii_columns": [c["column"] for c in report_cols if c["contains_pii"]],
        "entity_counts": totals,
        "cell_samples": cells,
        "params": {"sample": sample, "seed": seed, "min_score": sc.min_score, "engine": "presidio+spacy.blank(en)"},
    }
