"""Schema inference, validation (pandera) and row anomaly scoring (IsolationForest) for tables.

- ``infer_schema(df)``: types, ranges, categories, nullability, uniqueness → a JSON-able dict.
- ``validate(df, schema)``: a pandera ``DataFrameSchema`` built from it, run lazily, so every
  violation is listed with its row and column.
- ``score_anomalies(df, reference)``: IsolationForest scores; the top rows with the features
  that make them extreme (robust z-scores against the reference, unseen or rare categories).

Examples:
    >>> schema = infer_schema(pd.DataFrame({"age": [30, 41], "sex": ["F", "M"]}))
    >>> schema["columns"]["age"]["min"], schema["columns"]["sex"]["categories"]
    (30, ['F', 'M'])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bastion.core.errors import InvalidInputError

SCHEMA_VERSION = 1
MAX_CATEGORIES = 50


def _kind(s: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(s):
        return "bool"
    if pd.api.types.is_integer_dtype(s):
        return "int"
    if pd.api.types.is_float_dtype(s):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(s):
        return "datetime"
    return "string"


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def infer_schema(df: pd.DataFrame, max_categories: int = MAX_CATEGORIES) -> dict[str, Any]:
    """Infer a schema: per column kind, nullability, uniqueness, numeric range, categories."""
    cols: dict[str, Any] = {}
    for name in df.columns:
        s = df[name]
        kind = _kind(s)
        non_null = s.dropna()
        col: dict[str, Any] = {
            "kind": kind,
            "nullable": bool(s.isna().any()),
            "unique": bool(non_null.is_unique and len(non_null) == len(s)),
        }
        if kind in ("int", "float") and len(non_null):
            col["min"], col["max"] = _plain(non_null.min()), _plain(non_null.max())
            if kind == "float":
                col["min"], col["max"] = float(col["min"]), float(col["max"])
        elif kind == "string":
            n_unique = non_null.astype(str).nunique()
            if 0 < n_unique <= max_categories and n_unique < max(2, len(non_null) // 2):
                col["categories"] = sorted(non_null.astype(str).unique().tolist())
            lengths = non_null.astype(str).str.len()
            if len(lengths):
                col["max_length"] = int(lengths.max())
        cols[str(name)] = col
    return {"schema_version": SCHEMA_VERSION, "n_rows": len(df), "columns": cols}


def _pandera_schema(schema: dict[str, Any]) -> Any:
    import pandera.pandas as pa

    columns = {}
    for name, c in schema["columns"].items():
        checks = []
        if "min" in c:
            checks.append(pa.Check.ge(c["min"], name="min"))
        if "max" in c:
            checks.append(pa.Check.le(c["max"], name="max"))
        if "categories" in c:
            checks.append(pa.Check.isin(c["categories"], name="categories"))
        dtype = {"int": "int64", "float": "float64", "bool": "bool", "datetime": "datetime64[ns]"}.get(c["kind"])
        columns[name] = pa.Column(
            dtype, checks=checks, nullable=bool(c.get("nullable", True)), unique=bool(c.get("unique", False)),
            coerce=c["kind"] in ("float",), required=True, name=name,
        )
    return pa.DataFrameSchema(columns, strict=True, name="bastion")


def validate(df: pd.DataFrame, schema: dict[str, Any], max_violations: int = 1000) -> dict[str, Any]:
    """Every violation of ``schema`` with its row (0-based data row) and column."""
    import pandera.errors as pe

    if schema.get("schema_version") != SCHEMA_VERSION or "columns" not in schema:
        raise InvalidInputError("not a Bastion schema.json (create one with: bastion data profile REF --out schema.json)")
    try:
        _pandera_schema(schema).validate(df, lazy=True)
        violations: list[dict[str, Any]] = []
    except pe.SchemaErrors as exc:
        fc = exc.failure_cases
        violations = []
        for rec in fc.to_dict("records"):
            idx = rec.get("index")
            violations.append({
                "row": None if idx is None or pd.isna(idx) else int(idx),
                "column": rec.get("column") if isinstance(rec.get("column"), str) else None,
                "check": str(rec.get("check")),
                "value": None if pd.isna(rec.get("failure_case")) else str(rec.get("failure_case")),
            })
    by_check: dict[str, int] = {}
    for v in violations:
        key = f"{v['column']}:{v['check']}"
        by_check[key] = by_check.get(key, 0) + 1
    return {
        "ok": not violations,
        "n_violations": len(violations),
        "rows_with_violations": len({v["row"] for v in violations if v["row"] is not None}),
        "by_check": by_check,
        "violations": violations[:max_violations],
    }


# ----------------------------------------------------------------------------- anomalies
def _encode(df: pd.DataFrame, ref: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Numeric matrix for IsolationForest: numbers as is, categories as their reference frequency.

    Identifier-like columns (unique integers, mostly-unique strings) are left out.
    """
    names: list[str] = []
    a_cols, r_cols = [], []
    for c in ref.columns:
        if c not in df.columns:
            continue
        nunique = ref[c].nunique(dropna=True)
        if len(ref) >= 20 and nunique > 0.5 * len(ref) and (
            not pd.api.types.is_numeric_dtype(ref[c]) or (pd.api.types.is_integer_dtype(ref[c]) and ref[c].is_unique)
        ):
            continue  # identifiers and free text: every value is "rare", which says nothing
        if pd.api.types.is_numeric_dtype(ref[c]) and pd.api.types.is_numeric_dtype(df[c]):
            med = float(ref[c].median()) if ref[c].notna().any() else 0.0
            a_cols.append(df[c].astype(float).fillna(med).to_numpy())
            r_cols.append(ref[c].astype(float).fillna(med).to_numpy())
        else:
            freq = ref[c].astype(str).value_counts(normalize=True)
            a_cols.append(df[c].astype(str).map(freq).fillna(0.0).to_numpy(dtype=float))
            r_cols.append(ref[c].astype(str).map(freq).fillna(0.0).to_numpy(dtype=float))
        names.append(str(c))
    if not names:
        raise InvalidInputError("no columns in common with the reference")
    return np.column_stack(a_cols), np.column_stack(r_cols), names


def score_anomalies(
    df: pd.DataFrame, reference: pd.DataFrame | None = None, top: int = 20, seed: int = 0,
    contamination: float = 0.01,
) -> dict[str, Any]:
    """IsolationForest anomaly scores (higher = more anomalous) and the top rows with reasons."""
    from sklearn.ensemble import IsolationForest

    ref = df if reference is None else reference
    if len(ref) < 10:
        raise InvalidInputError(f"need at least 10 reference rows to score anomalies, got {len(ref)}")
    x, xr, names = _encode(df, ref)
    forest = IsolationForest(n_estimators=200, random_state=seed, contamination=contamination)
    forest.fit(xr)
    scores = -forest.score_samples(x)  # higher = more anomalous
    med = np.median(xr, axis=0)
    mad = np.median(np.abs(xr - med), axis=0) * 1.4826
    std = xr.std(axis=0)
    scale = np.where(mad > 1e-12, mad, np.where(std > 1e-12, std, 1.0))
    z = (x - med) / scale
    numeric = np.array([pd.api.types.is_numeric_dtype(ref[c]) for c in names])
    max_z = np.where(numeric[None, :], np.abs(z), 0.0).max(axis=1)
    lo, hi = xr.min(axis=0), xr.max(axis=0)
    out_of_range = (numeric[None, :] & ((x < lo) | (x > hi)))
    unseen = ((x == 0.0) & ~numeric[None, :]).any(axis=1) | out_of_range.any(axis=1)
    iso = scores.copy()
    # IsolationForest cannot isolate values beyond the reference range any better than the
    # range's edge, so out-of-range values, extreme robust z-scores and unseen categories add to it.
    scores = iso + 0.1 * np.log1p(np.clip(max_z - 3.0, 0.0, None)) + 0.2 * unseen
    is_outlier = (forest.predict(x) == -1) | (max_z > 6.0) | unseen
    order = np.argsort(-scores)[:top]
    rows = []
    for i in order:
        reasons = []
        for j in np.argsort(-np.abs(z[i]))[:3]:
            c = names[j]
            if not pd.api.types.is_numeric_dtype(ref[c]):
                if x[i, j] == 0.0:
                    reasons.append({"feature": c, "value": str(df[c].iloc[i]), "why": "category never seen in reference"})
                elif x[i, j] < 0.01:
                    reasons.append({"feature": c, "value": str(df[c].iloc[i]), "why": f"rare category ({x[i, j]:.2%})"})
                continue
            if out_of_range[i, j]:
                reasons.append({"feature": c, "value": _plain(df[c].iloc[i]), "robust_z": round(float(z[i, j]), 2),
                                "why": f"outside the reference range [{_plain(lo[j]):g}, {_plain(hi[j]):g}]"})
            elif abs(z[i, j]) >= 3:
                direction = "high" if z[i, j] > 0 else "low"
                reasons.append({"feature": c, "value": _plain(df[c].iloc[i]), "robust_z": round(float(z[i, j]), 2),
                                "why": f"extremely {direction} ({abs(z[i, j]):.1f} robust SDs from the median)"})
        rows.append({"row": int(i), "score": round(float(scores[i]), 4), "isolation_score": round(float(iso[i]), 4),
                     "outlier": bool(is_outlier[i]), "reasons": reasons})
    return {
        "n_rows": len(df),
        "n_outliers": int(is_outlier.sum()),
        "outlier_share": round(float(is_outlier.mean()), 4),
        "top": rows,
        "params": {"method": "isolation_forest", "n_estimators": 200, "seed": seed,
                   "reference": "self" if reference is None else "given", "contamination": contamination},
    }
