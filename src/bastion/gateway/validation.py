"""Validate a predict body against a model's ``InputSpec`` before it reaches the model.

Problems are reported like FastAPI's own 422s — ``{"loc": ["body", "inputs", 3, 0, 5], "msg": …,
"type": …}`` — naming the exact element: wrong nesting or length, anything that is not a JSON number
(a boolean, a string or a null is refused at its own position, also inside a flat sample),
NaN/Infinity (Python's JSON parser accepts them; Bastion does not), a value outside the clip range or
beyond float32, or a batch larger than ``max_batch``.

Well-formed bodies take the fast path: ``orjson`` parses, numpy converts in one call, and a byte
search for ``true``/``false`` catches the booleans numpy would silently turn into 1.0/0.0. Only a
body that fails one of these is walked element by element to name the problem.

Examples:
    >>> from bastion.core.model import InputSpec
    >>> try:
    ...     parse_predict_body(b'{"inputs": [[0.5, 2.0]]}', InputSpec(shape=(2,), clip_min=0, clip_max=1))
    ... except InputProblem as problem:
    ...     print(problem.loc, problem.msg)
    ['body', 'inputs', 0, 1] value 2.0 is above the maximum 1.0
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import orjson

from bastion.core.errors import InvalidInputError
from bastion.core.model import InputSpec


class InputProblem(InvalidInputError):
    """One validation problem at ``loc`` (a FastAPI-style location)."""

    def __init__(self, loc: list[str | int], msg: str, kind: str) -> None:
        super().__init__(f"{'.'.join(str(x) for x in loc)}: {msg}")
        self.loc, self.msg, self.kind = loc, msg, kind

    def to_detail(self) -> list[dict[str, Any]]:
        return [{"loc": self.loc, "msg": self.msg, "type": self.kind}]


_JSON_TYPES = {bool: "a boolean", str: "a string", type(None): "null", dict: "an object", list: "a list"}


def _leaf_problem(v: Any, loc: list[str | int]) -> InputProblem | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        got = _JSON_TYPES.get(type(v), type(v).__name__)
        return InputProblem(loc, f"expected a number, got {got}", "type_error.number")
    if isinstance(v, int):
        try:
            float(v)
        except OverflowError:
            return InputProblem(loc, "integer is too large for a float", "value_error.range")
    return None


def _locate(value: Any, shape: tuple[int, ...], loc: list[str | int]) -> InputProblem | None:
    """Walk a nested list against ``shape``; the first structural or type problem, or ``None``."""
    if not shape:
        return _leaf_problem(value, loc)
    if not isinstance(value, list):
        return InputProblem(loc, f"expected a list of length {shape[0]}, got {type(value).__name__}",
                            "type_error.list")
    if len(value) != shape[0]:
        return InputProblem(loc, f"expected {shape[0]} elements, got {len(value)}", "value_error.shape")
    for i, v in enumerate(value):
        p = _locate(v, shape[1:], [*loc, i])
        if p is not None:
            return p
    return None


def _sample_problem(sample: Any, spec: InputSpec, loc: list[str | int]) -> InputProblem | None:
    """The first problem of one sample, read as shaped when its length fits the shape's first axis and as
    flat when it has ``n_features`` entries, so a bad element is named at its own position either way."""
    shape = tuple(spec.shape)
    flat_ok = len(shape) > 1 and isinstance(sample, list) and len(sample) == spec.n_features != shape[0]
    if flat_ok:
        return _locate(sample, (spec.n_features,), loc)
    problem = _locate(sample, shape, loc)
    if problem is None or problem.loc != loc or len(shape) == 1:
        return problem
    return InputProblem(loc, problem.msg + f" (each input must be shaped {list(shape)} "
                                           f"or flat with {spec.n_features} numbers)", problem.kind)


def _reject_constant(name: str) -> float:
    return float(name)  # NaN / Infinity become floats here and are located below


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:  # NaN/Infinity/1e400 are not JSON: parse them to floats so that their element can be named
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise InputProblem(["body"], f"body is not valid JSON: {exc}", "value_error.jsondecode") from None


def parse_predict_body(body: bytes, spec: InputSpec) -> np.ndarray:
    """The validated batch as float32 ``(n, *spec.shape)``; ``InputProblem`` names the first problem."""
    doc = _loads(body)
    if not isinstance(doc, dict):
        raise InputProblem(["body"], "body must be a JSON object with an 'inputs' list", "type_error.dict")
    extra = sorted(set(doc) - {"inputs"})
    if extra:
        raise InputProblem(["body", extra[0]], "unexpected field", "value_error.extra")
    if "inputs" not in doc:
        raise InputProblem(["body", "inputs"], "field required", "value_error.missing")
    inputs = doc["inputs"]
    if not isinstance(inputs, list):
        raise InputProblem(["body", "inputs"], "inputs must be a list (a batch)", "type_error.list")
    if not inputs:
        raise InputProblem(["body", "inputs"], "the batch is empty", "value_error.empty")
    if len(inputs) > spec.max_batch:
        raise InputProblem(["body", "inputs"], f"batch of {len(inputs)} exceeds the maximum {spec.max_batch}",
                           "value_error.max_batch")
    try:
        arr = np.asarray(inputs)
        # numpy turns booleans mixed with numbers into 1.0/0.0: a literal true/false sends the body to the walk
        ok = arr.dtype.kind in "iuf" and arr.shape[0] == len(inputs) and b"true" not in body \
            and b"false" not in body
    except (ValueError, TypeError, OverflowError):
        ok = False
    if ok and tuple(arr.shape[1:]) == tuple(spec.shape):
        pass
    elif ok and arr.ndim == 2 and arr.shape[1] == math.prod(spec.shape):
        arr = arr.reshape((len(inputs), *spec.shape))
    else:
        for i, sample in enumerate(inputs):
            problem = _sample_problem(sample, spec, ["body", "inputs", i])
            if problem is not None:
                raise problem
        raise InputProblem(["body", "inputs"], "inputs mix shapes", "value_error.shape")
    arr = arr.astype(np.float64, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        idx = [int(i) for i in np.argwhere(~finite)[0]]
        raise InputProblem(["body", "inputs", *idx], f"value {arr[tuple(idx)]} is not a finite number",
                           "value_error.finite")
    if spec.clip_min is not None and (arr < spec.clip_min).any():
        idx = [int(i) for i in np.argwhere(arr < spec.clip_min)[0]]
        raise InputProblem(["body", "inputs", *idx],
                           f"value {arr[tuple(idx)]} is below the minimum {float(spec.clip_min)}", "value_error.range")
    if spec.clip_max is not None and (arr > spec.clip_max).any():
        idx = [int(i) for i in np.argwhere(arr > spec.clip_max)[0]]
        raise InputProblem(["body", "inputs", *idx],
                           f"value {arr[tuple(idx)]} is above the maximum {float(spec.clip_max)}", "value_error.range")
    f32 = arr.astype(np.float32)
    if not np.isfinite(f32).all():
        idx = [int(i) for i in np.argwhere(~np.isfinite(f32))[0]]
        raise InputProblem(["body", "inputs", *idx], "value overflows float32", "value_error.float32")
    return np.ascontiguousarray(f32)
