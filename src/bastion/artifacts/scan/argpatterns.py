"""Argument patterns for ``conditional`` allowlist entries: when a call of a listed callable is safe.

A conditional callable is harmless to reference, and harmless to call only with the arguments
named by its pattern. The static walk checks the symbolic arguments (``check_call``); the
restricted unpickler checks the real ones (``runtime_guard``) — the same rule twice.

Patterns:

``literal_args``
    every argument is a constant or a tuple/list/dict of constants (``len([])``, ``max(1, 2)``,
    ``pyarrow.lib.type_for_alias("large_string")``): no object whose methods could run.
``allowlisted_attribute``
    ``getattr(<global>, "<name>")`` where ``module:Class.name`` is itself an exact ``safe`` entry
    (pickle writes classmethod reconstructors this way, e.g. ``zoneinfo.ZoneInfo._unpickle``);
    the result is that attribute, judged like any global when it is called.
``allowlisted_function``
    ``functools.partial(<safe global>)`` and a ``BUILD`` state ``(func, args, kwds, namespace)``
    whose ``func`` is a safe global too (``partial.__setstate__`` replaces the function): calling
    the partial later calls only an allowlisted function.
``arrow_array_data``
    ``pyarrow.lib._restore_array((type, length, null_count, offset, buffers, children, dictionary))``
    for a primitive, boolean or string/binary type named by ``type_for_alias`` (or a
    ``timestamp``/``duration`` type), with buffers made by
    ``py_buffer`` over literal bytes that are large enough for ``offset + length`` values (string
    offsets read from the literal bytes: non-decreasing and inside the data buffer). pyarrow does not
    validate these buffers when it unpickles, so a short buffer would be read out of bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bastion.artifacts.scan.symbolic import SymCall, SymGlobal, is_literal

if TYPE_CHECKING:
    from bastion.artifacts.scan.policy import Policy

# bytes per value for fixed-width arrow types; "bits" = bit-packed booleans; ("offsets", w) = var-size
_ARROW_LAYOUT: dict[str, int | str | tuple[str, int]] = {
    "int8": 1, "int16": 2, "int32": 4, "int64": 8, "i1": 1, "i2": 2, "i4": 4, "i8": 8,
    "uint8": 1, "uint16": 2, "uint32": 4, "uint64": 8, "u1": 1, "u2": 2, "u4": 4, "u8": 8,
    "float16": 2, "halffloat": 2, "f2": 2, "float32": 4, "float": 4, "f4": 4, "float64": 8, "double": 8, "f8": 8,
    "date32": 4, "date64": 8, "date32[day]": 4, "date64[ms]": 8,
    "bool": "bits", "boolean": "bits",
    "string": ("offsets", 4), "str": ("offsets", 4), "utf8": ("offsets", 4), "binary": ("offsets", 4),
    "large_string": ("offsets", 8), "large_str": ("offsets", 8), "large_utf8": ("offsets", 8),
    "large_binary": ("offsets", 8),
    **{f"{kind}[{unit}]": 8 for kind in ("timestamp", "duration") for unit in ("s", "ms", "us", "ns")},
    "time32[s]": 4, "time32[ms]": 4, "time64[us]": 8, "time64[ns]": 8,
}


@dataclass
class CallCheck:
    """Outcome of a conditional call: ``problem`` is None when the arguments match the pattern."""

    problem: str | None = None
    result: Any = None  # for allowlisted_attribute: the SymGlobal the call evaluates to


def check_call(pattern: str, func: SymGlobal, args: Any, kwargs: Any, policy: Policy) -> CallCheck:
    """Check the symbolic arguments of a call of the conditional global ``func``."""
    if not isinstance(args, tuple):
        return CallCheck(f"arguments of {func.dotted} are not a tuple")
    if kwargs:
        return CallCheck(f"{func.dotted} is called with keyword arguments")
    if pattern == "literal_args":
        if is_literal(args):
            return CallCheck()
        return CallCheck(f"{func.dotted} is allowed on literal arguments only (here an argument is an object "
                         "built by the pickle)")
    if pattern == "allowlisted_attribute":
        return _attribute(func, args, policy)
    if pattern == "arrow_array_data":
        return CallCheck(_arrow_array_data(args, policy))
    if pattern == "allowlisted_function":
        if len(args) == 1:
            return CallCheck(_safe_function(func, args[0], policy))
        return CallCheck(f"{func.dotted} is allowed only as partial(<allowlisted function>)")
    return CallCheck(f"unknown argument pattern {pattern!r} for {func.dotted}")


def check_build(pattern: str, func: SymGlobal, state: Any, policy: Policy) -> str | None:
    """Check the ``BUILD`` state of an object made by a conditional call (None = fine)."""
    if pattern != "allowlisted_function":
        return None
    if not isinstance(state, tuple) or len(state) != 4 or not isinstance(state[1], tuple) \
            or not isinstance(state[2], dict | type(None)):
        return f"{func.dotted} state is not (func, args, kwds, namespace)"
    return _safe_function(func, state[0], policy)


def _safe_function(func: SymGlobal, target: Any, policy: Policy) -> str | None:
    from bastion.artifacts.scan.policy import GlobalKind

    if not isinstance(target, SymGlobal):
        return f"{func.dotted} wraps a computed object, not an allowlisted function"
    decision = policy.classify(target.module, target.name)
    if decision.kind != GlobalKind.SAFE:
        return (f"{func.dotted} wraps {target.dotted}, which is not on the allowlist "
                f"({decision.reason or decision.kind.value})")
    return None


def _attribute(func: SymGlobal, args: tuple[Any, ...], policy: Policy) -> CallCheck:
    from bastion.artifacts.scan.policy import GlobalKind

    if len(args) != 2 or not isinstance(args[0], SymGlobal) or not isinstance(args[1], str):
        return CallCheck(f"{func.dotted} is allowed only as getattr(<allowlisted class>, '<name>')")
    owner, attr = args
    dotted = f"{owner.name}.{attr}"
    decision = policy.classify(owner.module, dotted)
    if decision.kind != GlobalKind.SAFE:
        return CallCheck(f"{func.dotted}({owner.dotted}, {attr!r}) reaches {owner.module}.{dotted}, "
                         f"which is not on the allowlist ({decision.reason or decision.kind.value})")
    return CallCheck(result=SymGlobal(owner.module, dotted, owner.offset))


def _is_global(v: Any, policy: Policy, entry: str) -> bool:
    return isinstance(v, SymGlobal) and ":".join(policy.normalise(v.module, v.name)) == entry


def _literal_call(v: Any, policy: Policy, entry: str, kinds: tuple[type, ...]) -> Any:
    if (isinstance(v, SymCall) and _is_global(v.func, policy, entry) and isinstance(v.args, tuple)
            and len(v.args) == 1 and isinstance(v.args[0], kinds)):
        return v.args[0]
    return None


def _arrow_array_data(args: tuple[Any, ...], policy: Policy) -> str | None:
    if len(args) != 1 or not isinstance(args[0], tuple) or len(args[0]) != 7:
        return "pyarrow.lib._restore_array expects one 7-tuple of array data"
    typ, length, null_count, offset, buffers, children, dictionary = args[0]
    alias = _literal_call(typ, policy, "pyarrow.lib:type_for_alias", (str,))
    layout = _ARROW_LAYOUT.get(alias) if isinstance(alias, str) else None
    if layout is None and isinstance(typ, SymCall) and is_literal(typ.args) and any(
            _is_global(typ.func, policy, f"pyarrow.lib:{t}") for t in ("timestamp", "duration")):
        alias, layout = typ.func.name, 8  # 64-bit integers whatever the unit and time zone
    if layout is None:
        return "arrow array of a type whose buffers the scanner cannot check (only primitive and string types)"
    ints = (length, null_count, offset)
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ints) or length < 0 or offset < 0 \
            or not -1 <= null_count <= length:
        return f"arrow array with invalid length/null_count/offset {ints}"
    if children != [] or dictionary is not None or not isinstance(buffers, list):
        return "arrow array of a primitive type with child arrays or a dictionary"
    raw: list[bytes | None] = []
    for b in buffers:
        data = _literal_call(b, policy, "pyarrow.lib:py_buffer", (bytes, bytearray))
        if data is None and b is not None:
            return "arrow buffer that is not py_buffer over literal bytes"
        raw.append(None if data is None else bytes(data))
    end = offset + length
    want_n = 3 if isinstance(layout, tuple) else 2
    if len(raw) != want_n:
        return f"arrow {alias} array with {len(raw)} buffers (expected {want_n})"
    if raw[0] is not None and len(raw[0]) < (end + 7) // 8:
        return f"arrow validity bitmap of {len(raw[0])} bytes for {end} values"
    if isinstance(layout, tuple):
        return _check_offsets(alias, raw[1], raw[2], offset, length, layout[1])
    need = (end + 7) // 8 if layout == "bits" else end * int(layout)
    if raw[1] is None or len(raw[1]) < need:
        return f"arrow {alias} data buffer shorter than {need} bytes for {end} values"
    return None


def _check_offsets(alias: str, offsets: bytes | None, data: bytes | None, offset: int, length: int,
                   width: int) -> str | None:
    if offsets is None or len(offsets) < (offset + length + 1) * width:
        return f"arrow {alias} offsets buffer too short for {offset + length} values"
    import numpy as np

    vals = np.frombuffer(offsets, dtype=f"<i{width}", count=length + 1, offset=offset * width)
    size = len(data) if data is not None else 0
    if vals[0] < 0 or vals[-1] > size or bool((np.diff(vals) < 0).any()):
        return f"arrow {alias} offsets are decreasing or point outside the {size}-byte data buffer"
    return None


# -- the same rules on real objects, for the restricted unpickler ---------------------------------
_PLAIN = (str, bytes, bytearray, int, float, bool, type(None))


def _plain(v: Any, depth: int = 0) -> bool:
    if type(v) in _PLAIN:
        return True
    if depth > 32:
        return False
    if type(v) in (tuple, list):
        return all(_plain(x, depth + 1) for x in v)
    if type(v) is dict:
        return all(_plain(k, depth + 1) and _plain(x, depth + 1) for k, x in v.items())
    return False


def runtime_guard(pattern: str, func: Any, entry: str, policy: Policy) -> Any:
    """A wrapper that calls ``func`` only when its real arguments match ``pattern`` (else raises)."""
    from bastion.artifacts.scan.policy import GlobalKind
    from bastion.core.errors import UnsafeArtifactError

    def guarded(*args: Any, **kwargs: Any) -> Any:
        if kwargs:
            raise UnsafeArtifactError(f"refused {entry} with keyword arguments")
        if pattern == "literal_args" and _plain(args):
            return func(*args)
        if pattern == "allowlisted_function" and len(args) == 1 and callable(args[0]) and policy.classify(
                getattr(args[0], "__module__", "") or "", getattr(args[0], "__qualname__", "")).kind == GlobalKind.SAFE:
            return func(*args)
        if pattern == "allowlisted_attribute" and len(args) == 2 and isinstance(args[0], type) \
                and isinstance(args[1], str):
            owner, attr = args
            decision = policy.classify(owner.__module__, f"{owner.__qualname__}.{attr}")
            if decision.kind == GlobalKind.SAFE:
                return func(owner, attr)
        raise UnsafeArtifactError(f"refused {entry}: its arguments do not match the pattern {pattern!r}")

    return guarded
