"""``assessment.json``: writing, reading and validating against the published JSON Schema.

The schema lives in the package (``bastion/report/schema/assessment.schema.json``, JSON Schema
draft 2020-12); ``schema_version`` in every document names the version it follows.
"""

from __future__ import annotations

import json
import math
import os
from enum import Enum
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from bastion.core.errors import InvalidInputError
from bastion.core.paths import atomic_write_text
from bastion.core.results import SCHEMA_VERSION, Assessment

SCHEMA_RESOURCE = "schema/assessment.schema.json"


@lru_cache(maxsize=1)
def assessment_schema() -> dict[str, Any]:
    """The assessment JSON Schema (draft 2020-12) shipped with Bastion."""
    text = resources.files("bastion.report").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def schema_errors(doc: dict[str, Any]) -> list[str]:
    """Every schema violation in ``doc`` as ``path: message`` (empty when valid)."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(assessment_schema())
    return [
        f"{'/'.join(str(p) for p in err.absolute_path) or '(root)'}: {err.message}"
        for err in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


def result_schema_errors(result: dict[str, Any]) -> list[str]:
    """Schema violations of one check result (``CheckResult.to_dict()``), as ``path: message``."""
    from jsonschema import Draft202012Validator

    schema = assessment_schema()
    sub = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": "#/$defs/result"}
    doc = json.loads(dumps(result))
    return [
        f"{'/'.join(str(p) for p in err.absolute_path) or '(root)'}: {err.message}"
        for err in Draft202012Validator(sub).iter_errors(doc)
    ]


def validate_assessment(doc: dict[str, Any], strict: bool = True) -> list[str]:
    """Validate ``doc``; with ``strict`` raise ``InvalidInputError`` listing the problems."""
    errors = schema_errors(doc)
    if errors and strict:
        raise InvalidInputError("assessment does not match the schema: " + "; ".join(errors[:5]))
    return errors


def _default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Enum):
        return o.value
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def _finite(o: Any) -> Any:
    """Replace NaN/inf floats by ``None`` (JSON has no NaN)."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_finite(v) for v in o]
    return o


def dumps(obj: Any, indent: int | None = 2) -> str:
    """Strict JSON (numpy/enum aware; NaN/inf become null)."""
    return json.dumps(_finite(json.loads(json.dumps(obj, default=_default))), indent=indent, allow_nan=False)


def assessment_json(assessment: Assessment) -> str:
    """The assessment as a JSON document (numpy-safe, no NaN)."""
    return dumps(assessment.to_dict(), indent=2) + "\n"


def write_json(assessment: Assessment, path: str | Path) -> Path:
    """Validate and write ``assessment.json`` atomically."""
    text = assessment_json(assessment)
    validate_assessment(json.loads(text))
    p = Path(path)
    atomic_write_text(p, text)
    return p


def read_assessment_doc(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an ``assessment.json`` (or a directory holding one) as a JSON object, checked against the
    published schema: the one reader every command uses (``load_assessment`` for an ``Assessment``)."""
    p = Path(path)
    if p.is_dir():
        p = p / "assessment.json"
    if not p.is_file():
        raise InvalidInputError(f"no assessment at {p}; run `bastion assess … --out DIR` first")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{p} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidInputError(f"{p} does not hold a JSON object")
    major = str(doc.get("schema_version", "")).split(".")[0]
    if major != SCHEMA_VERSION.split(".")[0]:
        raise InvalidInputError(f"{p} has schema_version {doc.get('schema_version')!r}; this Bastion reads {SCHEMA_VERSION}")
    try:
        validate_assessment(doc)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{p}: {exc}") from None
    return doc


def load_assessment(path: str | os.PathLike[str]) -> Assessment:
    """Read an ``assessment.json`` (or a directory holding one) back into an ``Assessment`` (schema-checked)."""
    return Assessment.from_dict(read_assessment_doc(path))
