"""Policy-driven anonymisation of tables, with k-anonymity / l-diversity (Mondrian).

Policy YAML::

    key_file: pseudo.key          # or key_env: BASTION_PSEUDO_KEY (HMAC key for pseudonymise)
    columns:
      name:       {action: drop}
      email:      {action: pseudonymize}          # HMAC-SHA256(key, value): joins still work
      phone:      {action: mask, keep_last: 4}
      notes:      {action: redact}                # Presidio entities → <ENTITY>
      birth_date: {action: generalize, date: year}  # year | month
      zip:        {action: generalize, zip_digits: 3}
      income:     {action: generalize, bins: [0, 20000, 50000, 100000]}
    k_anonymity:
      quasi_identifiers: [age, zip, gender]
      k: 5
      l_diversity: {sensitive: diagnosis, l: 2}

Mondrian (LeFevre et al. 2006, "Mondrian Multidimensional K-Anonymity") splits the rows on
the quasi-identifier with the widest normalised range at its median while both halves keep
≥ k rows (and ≥ l distinct sensitive values); each final partition's quasi-identifiers are
replaced by their range (numbers) or value set (categories). Information loss is the
normalised certainty penalty (NCP, 0 = untouched, 1 = fully generalised).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bastion.core.errors import ConfigError, InvalidInputError
from bastion.core.inputfile import read_input_file

Action = Literal["keep", "drop", "mask", "redact", "pseudonymize", "generalize"]


class ColumnRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Action
    keep_last: int = 0
    mask_char: str = "*"
    bins: list[float] | None = None
    date: Literal["year", "month"] | None = None
    zip_digits: int | None = None
    entities: list[str] | None = None


class LDiversity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sensitive: str
    l: int = Field(2, ge=1)  # noqa: E741 - the field's name in the literature


class KAnonymity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quasi_identifiers: list[str]
    k: int = Field(ge=1)
    l_diversity: LDiversity | None = None


class AnonymizationPolicy(BaseModel):
    """The policy file, validated (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")
    key_file: str | None = None
    key_env: str | None = None
    columns: dict[str, ColumnRule] = Field(default_factory=dict)
    k_anonymity: KAnonymity | None = None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AnonymizationPolicy:
        import yaml

        p = Path(path)
        if not p.is_file():
            raise InvalidInputError(f"policy {p} not found")
        try:
            raw = yaml.safe_load(p.read_text("utf-8")) or {}
            return cls.model_validate(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"policy {p} is not valid YAML: {exc}") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ConfigError(f"policy {p}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None

    def key(self, base: Path | None = None) -> bytes:
        """The pseudonymisation key: from a 0600 file or an environment variable."""
        if self.key_env:
            val = os.environ.get(self.key_env)
            if not val:
                raise ConfigError(f"policy key_env {self.key_env} is not set")
            return val.encode()
        if self.key_file:
            p = Path(self.key_file)
            if not p.is_absolute() and base is not None:
                p = base / p
            return read_input_file(p, "pseudonymisation key file", lambda data, _: data.strip(), private=True,
                                   missing_error=ConfigError, hint=f"create one with: bastion data keygen --out {p}")
        raise ConfigError("the policy pseudonymises a column but names no key_file or key_env")


@dataclass
class AnonymizationResult:
    data: pd.DataFrame
    report: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- column actions
def pseudonymize(values: pd.Series, key: bytes) -> pd.Series:
    """Keyed HMAC-SHA256 (hex, first 32 chars): the same value maps to the same token."""
    return values.map(lambda v: v if pd.isna(v) else hmac.new(key, str(v).encode(), hashlib.sha256).hexdigest()[:32])


def mask(values: pd.Series, keep_last: int = 0, char: str = "*") -> pd.Series:
    """Replace letters and digits by ``char``, keeping the last ``keep_last`` of them (separators stay)."""
    def m(v: Any) -> Any:
        if pd.isna(v):
            return v
        s = str(v)
        alnum = [i for i, ch in enumerate(s) if ch.isascii() and ch.isalnum()]
        cut = alnum[-keep_last] if 0 < keep_last <= len(alnum) else (0 if keep_last else len(s))
        return re.sub(r"[A-Za-z0-9]", char, s[:cut]) + s[cut:]
    return values.map(m)


def redact(values: pd.Series, entities: list[str] | None = None, column: str = "") -> pd.Series:
    """Replace every PII entity Presidio finds in the text with ``<ENTITY>`` (only ``entities`` if given)."""
    from bastion.data.privacy.pii import ENTITIES, PiiScanner

    wanted = set(entities or ())
    unknown = wanted - set(ENTITIES) - {"DATE_OF_BIRTH"}
    if unknown:
        raise ConfigError(f"column {column}: redact names unknown entities {sorted(unknown)}; "
                          f"known: {sorted({*ENTITIES, 'DATE_OF_BIRTH'})}")
    presidio = tuple(sorted({"DATE_TIME" if e == "DATE_OF_BIRTH" else e for e in wanted})) if wanted else ENTITIES
    scanner = PiiScanner(entities=presidio)

    def r(v: Any) -> Any:
        if pd.isna(v):
            return v
        s = str(v)
        found = [f for f in scanner.scan_text(s, column=column) if not wanted or f["entity"] in wanted]
        for f in sorted(found, key=lambda f: -f["start"]):
            s = s[: f["start"]] + f"<{f['entity']}>" + s[f["end"] :]
        return s
    return values.map(r)


# strictest first: a column holding several entity types gets the first one's rule
SUGGESTED_RULES: dict[str, dict[str, Any]] = {
    "US_SSN": {"action": "drop"},
    "STREET_ADDRESS": {"action": "drop"},
    "CREDIT_CARD": {"action": "mask", "keep_last": 4},
    "IBAN_CODE": {"action": "mask", "keep_last": 4},
    "EMAIL_ADDRESS": {"action": "pseudonymize"},
    "PERSON": {"action": "pseudonymize"},
    "PHONE_NUMBER": {"action": "mask", "keep_last": 4},
    "IP_ADDRESS": {"action": "pseudonymize"},
    "DATE_OF_BIRTH": {"action": "generalize", "date": "year"},
}
SUGGESTED_KEY_ENV = "BASTION_PSEUDO_KEY"


def suggest_policy(columns: list[dict[str, Any]]) -> dict[str, Any]:
    """An anonymisation policy for the PII columns of a scan (``scan_dataframe(...)["columns"]``).

    Only columns with a PII verdict get a rule; sporadic matches never do. Free text is redacted
    (only the entity types found in it); structured columns get the rule of their strictest entity
    (``SUGGESTED_RULES``). The result validates as an :class:`AnonymizationPolicy`.
    """
    rules: dict[str, dict[str, Any]] = {}
    for c in columns:
        ents = list(c.get("entities") or {})
        if not c.get("contains_pii") or not ents:
            continue
        if c.get("kind") == "free_text":
            rules[c["column"]] = {"action": "redact", "entities": sorted(ents)}
        else:
            strictest = min(ents, key=lambda e: list(SUGGESTED_RULES).index(e) if e in SUGGESTED_RULES else 99)
            rules[c["column"]] = dict(SUGGESTED_RULES.get(strictest, {"action": "redact", "entities": ents}))
    policy: dict[str, Any] = {"columns": rules}
    if any(r["action"] == "pseudonymize" for r in rules.values()):
        policy = {"key_env": SUGGESTED_KEY_ENV, **policy}
    return policy


def policy_yaml(policy: dict[str, Any], source: str = "") -> str:
    """A suggested policy as YAML that ``bastion data anonymize --policy`` reads (validated first)."""
    import yaml

    AnonymizationPolicy.model_validate(policy)
    head = (f"# suggested by `bastion data pii` for {source}: PII columns only (sporadic matches get no rule).\n"
            "# Review before use; quasi-identifiers (age, zip, gender …) need a k_anonymity section of your own.\n")
    if "key_env" in policy:
        head += f"# pseudonymize needs a secret key: export {policy['key_env']}=... (or use key_file: a 0600 file)\n"
    return head + yaml.safe_dump(policy, sort_keys=False, allow_unicode=True)


def generalize(values: pd.Series, rule: ColumnRule, column: str) -> pd.Series:
    if rule.bins:
        nums = pd.to_numeric(values, errors="coerce")
        cut = pd.cut(nums, bins=rule.bins, include_lowest=True, right=False)
        return cut.astype(str).where(nums.notna(), other=np.nan)
    if rule.date:
        dates = pd.to_datetime(values, errors="coerce")
        fmt = "%Y" if rule.date == "year" else "%Y-%m"
        return dates.dt.strftime(fmt).where(dates.notna(), other=np.nan)
    if rule.zip_digits is not None:
        d = rule.zip_digits
        return values.map(lambda v: v if pd.isna(v) else str(v)[:d] + "*" * max(0, len(str(v)) - d))
    raise ConfigError(f"column {column}: generalize needs bins, date or zip_digits")


# ----------------------------------------------------------------------------- Mondrian
def _span(df: pd.DataFrame, col: str, numeric: bool) -> float:
    s = df[col]
    return float(s.max() - s.min()) if numeric else float(s.nunique() - 1)


def _allowed(part: pd.DataFrame, k: int, sensitive: str | None, l_div: int) -> bool:
    return len(part) >= k and (sensitive is None or part[sensitive].nunique() >= l_div)


def mondrian_partitions(
    df: pd.DataFrame, qis: list[str], k: int, sensitive: str | None = None, l_div: int = 1
) -> list[np.ndarray]:
    """Row-index partitions of ``df`` that each hold ≥ k rows (and ≥ l sensitive values)."""
    numeric = {c: pd.api.types.is_numeric_dtype(df[c]) for c in qis}
    full = {c: max(_span(df, c, numeric[c]), 1e-12) for c in qis}
    done: list[np.ndarray] = []
    todo = [df.index.to_numpy()]
    while todo:
        idx = todo.pop()
        part = df.loc[idx]
        order = sorted(qis, key=lambda c: -_span(part, c, numeric[c]) / full[c])
        for col in order:
            if _span(part, col, numeric[col]) == 0:
                continue
            if numeric[col]:
                vals = part[col].to_numpy(dtype=float)
                med = float(np.median(vals))
                left_mask = vals <= med if (vals < med).sum() == 0 else vals < med
            else:
                cats = sorted(part[col].astype(str).unique())
                counts = part[col].astype(str).value_counts()
                cum = np.cumsum([counts[c] for c in cats])
                cut = int(np.searchsorted(cum, len(part) / 2))
                left_set = set(cats[: max(1, min(cut + 1, len(cats) - 1))])
                left_mask = part[col].astype(str).isin(left_set).to_numpy()
            lhs, rhs = part.loc[left_mask], part.loc[~left_mask]
            if len(rhs) and _allowed(lhs, k, sensitive, l_div) and _allowed(rhs, k, sensitive, l_div):
                todo.extend([lhs.index.to_numpy(), rhs.index.to_numpy()])
                break
        else:
            done.append(idx)
    return done


def k_anonymize(df: pd.DataFrame, cfg: KAnonymity) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Generalise the quasi-identifiers with Mondrian; report achieved k, l and information loss."""
    qis = cfg.quasi_identifiers
    missing = [c for c in qis if c not in df.columns]
    sens = cfg.l_diversity.sensitive if cfg.l_diversity else None
    if sens is not None and sens not in df.columns:
        missing.append(sens)
    if missing:
        raise ConfigError(f"k_anonymity names column(s) not in the data: {', '.join(missing)}")
    l_div = cfg.l_diversity.l if cfg.l_diversity else 1
    work = df.reset_index(drop=True).copy()
    for c in qis:  # numeric QIs (also numbers read as text) stay numeric, everything else categorical text
        nums = pd.to_numeric(work[c], errors="coerce")
        if pd.api.types.is_numeric_dtype(work[c]) or (work[c].notna().any() and nums.notna().eq(work[c].notna()).all()):
            work[c] = nums
        else:
            work[c] = work[c].astype(str)
    if not _allowed(work, cfg.k, sens, l_div):
        raise InvalidInputError(f"the table ({len(work)} rows) cannot satisfy k={cfg.k}, l={l_div} even as one group")
    parts = mondrian_partitions(work, qis, cfg.k, sens, l_div)
    numeric = {c: pd.api.types.is_numeric_dtype(work[c]) for c in qis}
    full = {c: max(_span(work, c, numeric[c]), 1e-12) for c in qis}
    out = work.copy()
    for c in qis:
        out[c] = out[c].astype(object)
    ncp_total = 0.0
    for idx in parts:
        part = work.loc[idx]
        for c in qis:
            if numeric[c]:
                lo, hi = part[c].min(), part[c].max()
                label = f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"
            else:
                cats = sorted(part[c].unique())
                label = "|".join(cats) if len(cats) <= 4 else f"{cats[0]}..{cats[-1]}"  # contiguous in sort order
            out.loc[idx, c] = label
            ncp_total += len(idx) * (_span(part, c, numeric[c]) / full[c] if full[c] > 1e-12 else 0.0)
    sizes = [len(p) for p in parts]
    report = {
        "quasi_identifiers": qis, "k_requested": cfg.k, "k_achieved": int(min(sizes)),
        "equivalence_classes": len(parts), "mean_class_size": round(float(np.mean(sizes)), 2),
        "information_loss_ncp": round(ncp_total / (len(work) * len(qis)), 4),
    }
    if sens is not None:
        report["sensitive"] = sens
        report["l_requested"] = l_div
        report["l_achieved"] = int(min(work.loc[p, sens].nunique() for p in parts))
    return out, report


def anonymize(df: pd.DataFrame, policy: AnonymizationPolicy, base: Path | None = None) -> AnonymizationResult:
    """Apply the policy column by column, then k-anonymity / l-diversity if asked."""
    out = df.copy()
    missing = [c for c in policy.columns if c not in out.columns]
    if missing:
        raise ConfigError(f"policy names column(s) not in the data: {', '.join(missing)}")
    actions: dict[str, str] = {}
    key = policy.key(base) if any(r.action == "pseudonymize" for r in policy.columns.values()) else b""
    for col, rule in policy.columns.items():
        actions[col] = rule.action
        if rule.action == "drop":
            out = out.drop(columns=[col])
        elif rule.action == "mask":
            out[col] = mask(out[col], rule.keep_last, rule.mask_char)
        elif rule.action == "redact":
            out[col] = redact(out[col], rule.entities, column=col)
        elif rule.action == "pseudonymize":
            out[col] = pseudonymize(out[col], key)
        elif rule.action == "generalize":
            out[col] = generalize(out[col], rule, col)
    report: dict[str, Any] = {"rows": len(out), "columns_in": len(df.columns), "columns_out": len(out.columns),
                              "actions": actions}
    if policy.k_anonymity is not None:
        dropped = [c for c in policy.k_anonymity.quasi_identifiers if actions.get(c) == "drop"]
        if dropped:
            raise ConfigError(f"quasi-identifier(s) {', '.join(dropped)} are dropped by the policy")
        out, report["k_anonymity"] = k_anonymize(out, policy.k_anonymity)
    return AnonymizationResult(out, report)
