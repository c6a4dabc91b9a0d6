"""Validate a predict body against a model's ``InputSpec`` before it reaches the model.

Problems are reported like FastAPI's own 422s — ``{"loc": ["body", "inputs", 3, 0, 5], "msg": …,
"type": …}`` — naming the exact element: wrong nesting or length, a non-number, NaN/Infinity
(Python's JSON parser accepts them; Bastion does not), a value outside the clip range, or a batch
larger than ``max_batch``.

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
from typing import Any

import numpy as np

from bastion.core.errors import InvalidInputError
from bastion.core.model import InputSpec


class InputProblem(InvalidInputError):
    """One validation problem at ``loc`` (a FastAPI-style location)."""

    def __init__(self, loc: list[str | int], msg: str, kind: str) -> None:
        super().__init__(f"{'.'.join(str(x) for x in loc)}: {msg}")
        self.loc, self.msg, self.kind = loc, msg, kind

    def to_detail(self) -> list[dict[str, Any]]:
        return [{"loc": self.loc, "msg": self.msg, "type": self.kind}]


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _locate(value: Any, shape: tuple[int, ...], loc: list[str | int]) -> InputProblem | None:
    """Walk a nested list against ``shape``; the first structural problem, or ``None``."""
    if not shape:
        if not _number(value):
            return InputProblem(loc, f"expected a number, got {type(value).__name__}", "type_error.number")
        return None
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
    first = _locate(sample, tuple(spec.shape), loc)
    if first is None:
        return None
    if spec.n_features != (spec.shape[0] if len(spec.shape) == 1 else -1):
        flat = _locate(sample, (spec.n_features,), loc)
        if flat is None:
            return None
    return InputProblem(first.loc, first.msg + f" (each input must be shaped {list(spec.shape)} "
                                                f"or flat with {spec.n_features} numbers)", first.kind)


def _reject_constant(name: str) -> float:
    return float(name)  # NaN / Infinity become floats here and are located below


def parse_predict_body(body: bytes, spec: InputSpec) -> np.ndarray:
    """The validated batch as float32 ``(n, *spec.shape)``; ``InputProblem`` names the first problem."""
    try:
        doc = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise InputProblem(["body"], f"body is not valid JSON: {exc}", "value_error.jsondecode") from None
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
        ok = arr.dtype.kind in "iuf" and arr.shape[0] == len(inputs)
    except (ValueError, TypeError, OverflowError):
        ok = False
    if ok and tuple(arr.shape[1:]) == tuple(spec.shape):
        pass
    elif ok and arr.ndim == 2 and arr.shape[1] == spec.n_features:
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
