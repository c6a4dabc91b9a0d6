"""PII detection in text cells, fully offline, with Microsoft Presidio's recognizers.

Presidio normally loads a spaCy model (a download); here it runs on a blank spaCy English
tokenizer (``BlankSpacyNlpEngine``), and the e-mail recognizer's ``tldextract`` is rebuilt
with ``suffix_list_urls=()`` so it never fetches the public-suffix list. Validation stays
Presidio's: Luhn for credit cards, the mod-97 checksum for IBANs, the SSA rules for US SSNs
(no 000/666/9xx area, no 00 group, no 0000 serial), so decoys are not reported.

On top of Presidio, each match must look like what it claims to be in its cell:

- ``PHONE_NUMBER`` needs phone formatting (``+44 20 7946 0958``, ``0044 …``, ``(555) 123-4567``,
  ``415-555-0134``, a national ``0`` trunk prefix with digit groups such as ``020 7946 0958``),
  a phone-like column name (``phone``, ``mobile``, ``tel`` …) or a phone word just before it in
  free text (``call 4155551234``); a bare run of digits, a date and a number glued into a code
  (``ORD-2024-118273``, ``SKU-1234-5678``) are not phone numbers.
- ``CREDIT_CARD`` right after ``+`` is an international phone number that happens to pass Luhn.
- ``IP_ADDRESS`` right after ``v``/``version``/``build``/``release`` or in a column named like a
  version is a version number (``1.2.33.144``).

Entities: ``EMAIL_ADDRESS``, ``PHONE_NUMBER``, ``CREDIT_CARD``, ``IBAN_CODE``, ``US_SSN``,
``IP_ADDRESS``, ``STREET_ADDRESS`` (a Presidio pattern recognizer for US/UK, German and French
street forms), ``DATE_OF_BIRTH`` (a date with birth context in the cell or the column name),
``DATE_TIME`` (any other date; not personal data on its own) and ``PERSON`` (only from a column
named like a person's name: a blank pipeline has no NER model). Column-level decisions (share
thresholds, sporadic matches) live in :mod:`bastion.data.privacy.pii_columns`.

Examples:
    >>> scanner = PiiScanner()                                   # doctest: +SKIP
    >>> scanner.scan_text("SSN 536-22-8435")[0]["entity"]         # doctest: +SKIP
    'US_SSN'
    >>> scanner.scan_text("ORD-2024-118273")                      # doctest: +SKIP
    []
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS", "STREET_ADDRESS",
            "DATE_TIME")
_BIRTH_CONTEXT = re.compile(r"\b(born|birth|dob|d\.o\.b|birthday|geboren|né|nee)\b\.?(?:\W+\w+){0,2}\W*$", re.IGNORECASE)
_BIRTH_COLUMN = re.compile(r"(birth|dob|bday)", re.IGNORECASE)
_PRIORITY = {"CREDIT_CARD": 5, "IBAN_CODE": 5, "US_SSN": 4, "EMAIL_ADDRESS": 4, "IP_ADDRESS": 3, "STREET_ADDRESS": 3,
             "PHONE_NUMBER": 2, "DATE_TIME": 1}

# --- cell-level rules (see the module docstring)
PHONE_COLUMN = re.compile(r"phone|telephone|(?:^|[_\W])(?:tel|mobile|cell|fax|msisdn)(?:[_\W]|$)", re.IGNORECASE)
VERSION_COLUMN = re.compile(r"version|(?:^|[_\W])(?:ver|build|release|rel|firmware|fw|rev)(?:[_\W]|$)", re.IGNORECASE)
_PHONE_WORD = re.compile(r"\b(phone|phoned|tel|telephone|mobile|cell|call|called|fax|whatsapp|sms)\b(?:\W+\w+){0,2}\W*$",
                         re.IGNORECASE)
_VERSION_WORD = re.compile(r"\b(?:v|version|ver|build|release|firmware|fw|rev|patch|patched|upgrade|upgraded|update|"
                           r"updated|install|installed)\b(?:\W+\w+){0,3}\W*$", re.IGNORECASE)
_GLUED_BEFORE = re.compile(r"[A-Za-z0-9_][-_/#.]?$")
_GLUED_AFTER = re.compile(r"^[-_/#.]?[A-Za-z0-9_]")
_DATE_SHAPE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}")
_MAY_HOLD_ENTITY = re.compile(r"[\d@]")

_STREET_SUFFIX = (r"(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Dr|Boulevard|Blvd|Way|Court|Ct|Place|Pl|Terrace|"
                  r"Close|Crescent|Square|Sq|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Row|Gardens|Grove|Mews|Walk)")
STREET_PATTERNS = (  # (name, regex, score); matched case-sensitively: street names are capitalised
    ("street_en", rf"\b\d{{1,5}}[A-Z]?,?\s+(?:[A-Z][A-Za-z'\-]*\.?\s+){{1,3}}{_STREET_SUFFIX}\b\.?", 0.5),
    ("street_de", r"\b(?:[A-ZÄÖÜ][a-zäöüß]+(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|ufer)|[A-ZÄÖÜ][a-zäöüß]+"
                  r"[ \-](?:Straße|Strasse|Str\.|Weg|Gasse|Platz|Allee|Ring|Damm|Ufer))\s+\d{1,4}\s?[a-z]?\b", 0.5),
    ("street_fr", r"\b\d{1,4}(?:\s?(?:bis|ter))?,?\s+(?:rue|avenue|boulevard|bd|place|chemin|allée|impasse|quai|cours)"
                  r"\s+(?:(?:de|du|des|la|le)\s+|[ld]')*[A-ZÉÈ][\w'\-]+(?:\s+[A-ZÉÈ][\w'\-]+){0,3}", 0.5),
)
_MONTH = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|Jun(?:e)?|Jul(?:y)?|Aug(?:ust)?|"
          r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)")
DATE_WORD_PATTERNS = (  # dates with month names, which Presidio's DateRecognizer does not cover
    ("date_d_month_y", rf"\b\d{{1,2}}(?:st|nd|rd|th)?[ \-]{_MONTH}\.?,?[ \-]\d{{4}}\b", 0.6),
    ("date_month_d_y", rf"\b{_MONTH}\.? \d{{1,2}}(?:st|nd|rd|th)?,? \d{{4}}\b", 0.6),
)


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


def phone_formatted(span: str) -> bool:
    """Whether a phone-number match carries phone formatting (not a bare run of digits)."""
    if re.search(r"\(\d{1,5}\)", span):
        return True
    s = span.replace("(", " ").replace(")", " ").strip()  # phonenumbers may keep an opening "(" of the text
    if s.startswith("+") or re.match(r"00[1-9]", s):
        return True
    groups = [g for g in re.split(r"[\s.\-/]+", s) if g]
    if len(groups) < 2 or not all(g.isdigit() for g in groups):
        return False
    lengths = [len(g) for g in groups]
    if lengths in ([3, 3, 4], [1, 3, 3, 4]):  # North American 415-555-0134, 1 415 555 0134
        return True
    return groups[0].startswith("0") and 9 <= sum(lengths) <= 12  # national trunk prefix: 020 7946 0958


def cell_rule(entity: str, text: str, start: int, end: int, column: str = "") -> str | None:
    """Why a Presidio match is not what it claims to be in this cell (``None``: keep it)."""
    before, after, span = text[:start], text[end:], text[start:end]
    if entity == "PHONE_NUMBER":
        if _GLUED_BEFORE.search(before) or _GLUED_AFTER.match(after):
            return "part of a code or reference (e.g. ORD-2024-118273)"
        if _DATE_SHAPE.fullmatch(span.strip()):
            return "a date"
        if not (phone_formatted(span) or PHONE_COLUMN.search(column) or _PHONE_WORD.search(before[-30:])):
            return "digits without phone formatting"
    elif entity == "DATE_TIME" and re.match(r"\.\d", after):
        return "part of a longer dotted number (a version)"
    elif entity == "CREDIT_CARD" and before.endswith("+"):
        return "an international phone number (leading +)"
    elif entity == "IP_ADDRESS" and (VERSION_COLUMN.search(column) or _VERSION_WORD.search(before[-40:])):
        return "a version number"
    return None


@dataclass
class PiiScanner:
    """Presidio analyzer on a blank pipeline with only the recognizers Bastion reports."""

    min_score: float = 0.4
    entities: tuple[str, ...] = ENTITIES
    _analyzer: Any = field(default=None, init=False, repr=False)

    def analyzer(self) -> Any:
        if self._analyzer is None:
            from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
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
            registry.add_recognizer(PatternRecognizer(
                supported_entity="STREET_ADDRESS", name="StreetAddressRecognizer",
                patterns=[Pattern(*p) for p in STREET_PATTERNS], global_regex_flags=re.MULTILINE,
                context=["address", "street", "ship", "shipping", "deliver", "delivery", "lives", "billing"]))
            registry.add_recognizer(PatternRecognizer(
                supported_entity="DATE_TIME", name="MonthNameDateRecognizer",
                patterns=[Pattern(*p) for p in DATE_WORD_PATTERNS], global_regex_flags=re.MULTILINE))
            self._analyzer = AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=["en"])
        return self._analyzer

    def scan_cell(self, text: str, column: str = "") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``(kept, dropped)`` matches in one cell; each dropped match names the rule that dropped it."""
        if not text or not text.strip() or not _MAY_HOLD_ENTITY.search(text):
            return [], []
        results = self.analyzer().analyze(text, language="en", entities=list(self.entities))
        dropped: list[dict[str, Any]] = []
        candidates = []
        for r in results:
            if r.score < self.min_score:
                continue
            why = cell_rule(r.entity_type, text, r.start, r.end, column)
            if why is None:
                candidates.append(r)
            else:
                dropped.append({"entity": r.entity_type, "reason": why})
        candidates.sort(key=lambda r: (-_PRIORITY.get(r.entity_type, 0), -r.score, r.start))
        kept: list[Any] = []
        for r in candidates:  # overlaps: the validated, more specific entity wins
            if all(r.end <= k.start or r.start >= k.end for k in kept):
                kept.append(r)
        out = []
        for r in sorted(kept, key=lambda r: r.start):
            entity = r.entity_type
            if entity == "DATE_TIME" and (_BIRTH_COLUMN.search(column) or _BIRTH_CONTEXT.search(text[max(0, r.start - 40) : r.start])):
                entity = "DATE_OF_BIRTH"
            out.append({"entity": entity, "start": r.start, "end": r.end, "score": round(float(r.score), 3)})
        return out, dropped

    def scan_text(self, text: str, column: str = "") -> list[dict[str, Any]]:
        """Entities in one cell, overlaps resolved (the validated, more specific entity wins)."""
        return self.scan_cell(text, column)[0]


def mask_value(text: str) -> str:
    """Show only the shape of a value in reports: letters → x, digits → 9 (keeps separators)."""
    return re.sub(r"[A-Za-z]", "x", re.sub(r"\d", "9", text))


def scan_dataframe(
    df: pd.DataFrame, columns: list[str] | None = None, sample: int = 500, seed: int = 0,
    scanner: PiiScanner | None = None, max_samples: int = 20, thresholds: Any = None,
) -> dict[str, Any]:
    """Per-column PII verdicts (share thresholds, sporadic matches) and per-cell samples.

    ``thresholds`` is a :class:`bastion.data.privacy.pii_columns.PiiThresholds` (default: the
    documented defaults). See :func:`bastion.data.privacy.pii_columns.scan_columns`.
    """
    from bastion.data.privacy.pii_columns import scan_columns

    return scan_columns(df, columns, sample=sample, seed=seed, scanner=scanner or PiiScanner(),
                        max_samples=max_samples, thresholds=thresholds)
