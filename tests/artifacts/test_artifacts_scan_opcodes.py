"""The pickle walker's opcode handlers, one at a time: what each does to the symbolic stack and memo,
which findings it raises, and that an opcode without a handler fails closed."""

from __future__ import annotations

import io
import pickle
import pickletools

import pytest

from bastion.artifacts.scan.pickle_scan import (
    _HANDLERS,
    MAX_DUP,
    FindingSink,
    PickleWalker,
    _Machine,
    scan_pickle_bytes,
)
from bastion.artifacts.scan.policy import default_policy
from bastion.artifacts.scan.symbolic import SymCall, SymGlobal, SymOpaque
from bastion.core.severity import Severity


def _walker() -> tuple[PickleWalker, _Machine]:
    return PickleWalker(default_policy(), FindingSink(), "m"), _Machine(io.BytesIO(b""))


def _codes(w: PickleWalker) -> dict[str, Severity]:
    return {f.code: f.severity for f in w.sink.as_list()}


def _global(w: PickleWalker, m: _Machine, module: str, name: str) -> None:
    m.stack += [module, name]
    w._step("STACK_GLOBAL", None, 0, m)


def test_every_opcode_but_stop_and_frame_has_a_handler() -> None:
    # STOP ends a walk and FRAME is followed by the walks themselves; everything else goes through _step
    assert set(_HANDLERS) == {op.name for op in pickletools.opcodes} - {"STOP", "FRAME"}


@pytest.mark.parametrize("name", ["STOP", "FRAME", "NO_SUCH_OPCODE"])
def test_an_opcode_without_a_handler_is_refused(name: str) -> None:
    w, m = _walker()
    with pytest.raises(ValueError, match=f"unhandled opcode {name}"):
        w._step(name, None, 0, m)


def test_an_unknown_opcode_byte_breaks_the_stream_and_is_never_a_pass() -> None:
    data = pickle.dumps([1, 2], protocol=4)
    findings, _ = scan_pickle_bytes(data[:-1] + b"\xff.", default_policy())
    assert [f.code for f in findings] == ["PICKLE_MALFORMED"]
    assert "unknown" in findings[0].message


@pytest.mark.parametrize("module,name", [(1, "system"), ("os", None), (SymOpaque("x"), "system")])
def test_stack_global_with_non_string_operands_is_a_dynamic_global(module: object, name: object) -> None:
    w, m = _walker()
    m.stack += [module, name]
    w._step("STACK_GLOBAL", None, 7, m)
    assert len(m.stack) == 1 and isinstance(m.stack[0], SymOpaque)
    assert _codes(w) == {"PICKLE_DYNAMIC_GLOBAL": Severity.HIGH}
    assert w.sink.as_list()[0].offset == 7


def test_stack_global_with_an_unimportable_name_breaks_the_stream() -> None:
    w, m = _walker()
    m.stack += ["os", "sys tem"]
    with pytest.raises(ValueError, match="not an importable name"):
        w._step("STACK_GLOBAL", None, 0, m)


def test_stack_global_pushes_the_global_and_records_it_as_referenced() -> None:
    w, m = _walker()
    _global(w, m, "os", "system")
    g = m.stack[-1]
    assert isinstance(g, SymGlobal) and (g.module, g.name) == ("os", "system")
    assert ("os", "system") in w.referenced


def test_memoize_then_get_returns_the_same_object() -> None:
    w, m = _walker()
    _global(w, m, "os", "system")
    g = m.stack[-1]
    w._step("MEMOIZE", None, 1, m)
    w._step("POP", None, 2, m)
    assert m.stack == []
    w._step("BINGET", 0, 3, m)
    assert m.stack == [g] and m.stack[0] is g


@pytest.mark.parametrize("put,get", [("PUT", "GET"), ("BINPUT", "BINGET"), ("LONG_BINPUT", "LONG_BINGET")])
def test_put_and_get_round_trip_by_index(put: str, get: str) -> None:
    w, m = _walker()
    obj = SymOpaque("x")
    m.stack.append(obj)
    w._step(put, "5" if put == "PUT" else 5, 0, m)  # protocol 0 PUT carries its index as text
    assert m.memo == {5: obj} and m.stack == [obj]
    w._step(get, "5" if get == "GET" else 5, 1, m)
    assert m.stack == [obj, obj]


def test_get_of_an_index_never_put_breaks_the_stream() -> None:
    w, m = _walker()
    with pytest.raises(KeyError):
        w._step("BINGET", 3, 0, m)


def test_memoized_dangerous_global_is_still_caught_when_called() -> None:
    # os.system reaches REDUCE only through the memo
    data = (b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93\x94" b"0" b"h\x02\x8c\x04echo\x85R.")
    findings, _ = scan_pickle_bytes(data, default_policy())
    assert any(f.code == "PICKLE_DANGEROUS_CALL" and f.global_name == "os.system"
               and f.severity == Severity.CRITICAL for f in findings)


def test_reduce_on_a_dangerous_global_is_critical_and_pushes_the_call() -> None:
    w, m = _walker()
    _global(w, m, "os", "system")
    m.stack.append(("echo",))
    w._step("REDUCE", None, 9, m)
    call = m.stack[-1]
    assert isinstance(call, SymCall) and call.args == ("echo",)
    assert _codes(w) == {"PICKLE_DANGEROUS_CALL": Severity.CRITICAL}
    assert ("os", "system") in w.invoked


def test_reduce_on_an_unknown_global_is_high() -> None:
    w, m = _walker()
    _global(w, m, "mypkg.tools", "helper")
    m.stack.append(())
    w._step("REDUCE", None, 0, m)
    assert _codes(w) == {"PICKLE_UNKNOWN_CALL": Severity.HIGH}


def test_reduce_on_a_computed_object_is_an_indirect_call() -> None:
    w, m = _walker()
    m.stack += [SymOpaque("persistent"), ()]
    w._step("REDUCE", None, 0, m)
    assert _codes(w) == {"PICKLE_INDIRECT_CALL": Severity.HIGH}


def test_reduce_on_an_empty_stack_breaks_the_stream() -> None:
    w, m = _walker()
    with pytest.raises(IndexError):
        w._step("REDUCE", None, 0, m)


def test_inst_calls_the_global_with_the_items_above_the_mark() -> None:
    w, m = _walker()
    w._step("MARK", None, 0, m)
    m.stack.append("id")
    w._step("INST", "subprocess check_output", 1, m)
    assert len(m.stack) == 1 and m.stack[0].args == ("id",)
    assert _codes(w) == {"PICKLE_DANGEROUS_CALL": Severity.CRITICAL}


def test_mark_and_tuple_collect_the_items_above_the_mark() -> None:
    w, m = _walker()
    m.stack.append("below")
    w._step("MARK", None, 0, m)
    m.stack += [1, 2]
    w._step("TUPLE", None, 1, m)
    assert m.stack == ["below", (1, 2)] and m.stacks == []


@pytest.mark.parametrize("name,n", [("TUPLE1", 1), ("TUPLE2", 2), ("TUPLE3", 3)])
def test_tuple_n_takes_n_items_and_refuses_fewer(name: str, n: int) -> None:
    w, m = _walker()
    m.stack += list(range(n))
    w._step(name, None, 0, m)
    assert m.stack == [tuple(range(n))]
    w2, m2 = _walker()
    m2.stack += list(range(n - 1))
    with pytest.raises(IndexError, match="stack underflow"):
        w2._step(name, None, 0, m2)


def test_dict_and_setitems_pair_keys_with_values() -> None:
    w, m = _walker()
    w._step("MARK", None, 0, m)
    m.stack += ["a", 1]
    w._step("DICT", None, 1, m)
    w._step("MARK", None, 2, m)
    m.stack += ["b", 2, "c", 3]
    w._step("SETITEMS", None, 3, m)
    m.stack += ["d", 4]
    w._step("SETITEM", None, 4, m)
    assert m.stack == [{"a": 1, "b": 2, "c": 3, "d": 4}]


def test_append_and_appends_extend_a_list() -> None:
    w, m = _walker()
    w._step("EMPTY_LIST", None, 0, m)
    m.stack.append(1)
    w._step("APPEND", None, 1, m)
    w._step("MARK", None, 2, m)
    m.stack += [2, 3]
    w._step("APPENDS", None, 3, m)
    assert m.stack == [[1, 2, 3]]


def test_pop_without_items_above_the_mark_pops_the_mark() -> None:
    w, m = _walker()
    m.stack.append("kept")
    w._step("MARK", None, 0, m)
    w._step("POP", None, 1, m)
    assert m.stack == ["kept"] and m.stacks == []


def test_more_dups_than_cpython_writes_is_one_finding() -> None:
    w, m = _walker()
    m.stack.append(0)
    for i in range(MAX_DUP + 5):
        w._step("DUP", None, i, m)
    assert len(m.stack) == MAX_DUP + 6
    assert [(f.code, f.offset) for f in w.sink.as_list()] == [("PICKLE_DUP_EXPANSION", MAX_DUP)]


@pytest.mark.parametrize("name", ["EXT1", "EXT2", "EXT4"])
def test_extension_codes_are_reported(name: str) -> None:
    w, m = _walker()
    w._step(name, 42, 0, m)
    assert isinstance(m.stack[-1], SymOpaque)
    assert _codes(w) == {"PICKLE_EXTENSION_CODE": Severity.MEDIUM}


def test_persistent_ids_push_an_opaque_value() -> None:
    w, m = _walker()
    w._step("PERSID", "0", 0, m)
    m.stack.append("pid")
    w._step("BINPERSID", None, 1, m)
    assert [o.what for o in m.stack] == ["persistent", "persistent"]
    assert _codes(w) == {}


def test_build_on_a_global_is_class_patching() -> None:
    w, m = _walker()
    _global(w, m, "collections", "OrderedDict")
    m.stack.append({"x": 1})
    w._step("BUILD", None, 3, m)
    assert _codes(w)["PICKLE_BUILD_ON_GLOBAL"] == Severity.HIGH


def test_build_with_dunder_state_is_reported() -> None:
    w, m = _walker()
    m.stack += [SymOpaque("obj"), {"__class__": "x"}]
    w._step("BUILD", None, 0, m)
    assert _codes(w) == {"PICKLE_BUILD_DUNDER_STATE": Severity.HIGH}


def test_pushed_bytes_that_hold_a_pickle_are_walked() -> None:
    inner = pickle.dumps(SymOpaque, protocol=4)  # a global off the allowlist, referenced only
    w, m = _walker()
    w._step("BINBYTES", inner, 5, m)
    assert m.stack == [inner]
    assert any(f.code == "PICKLE_UNKNOWN_GLOBAL" and f.member == "m>nested@5" for f in w.sink.as_list())


@pytest.mark.parametrize("name", ["PROTO", "READONLY_BUFFER"])
def test_proto_and_readonly_buffer_change_nothing(name: str) -> None:
    w, m = _walker()
    m.stack.append(1)
    w._step(name, 4, 0, m)
    assert m.stack == [1] and m.memo == {} and _codes(w) == {}
