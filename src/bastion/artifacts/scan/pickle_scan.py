"""Static pickle analysis: a symbolic walk over ``pickletools.genops`` — nothing is ever unpickled.

The walk keeps a symbolic stack and memo, so ``STACK_GLOBAL`` arguments that come from the
memo, calls (``REDUCE``/``INST``/``OBJ``/``NEWOBJ``/``NEWOBJ_EX``) and ``BUILD`` targets are
resolved exactly as ``pickle.load`` would resolve them. Every global goes through the shared
``Policy``: dangerous → critical, unknown and invoked → high, unknown and only referenced →
medium. Nested pickles (``pickle.loads(b"...")`` arguments, pickles embedded in bytes, joblib's
object arrays) are walked too; a stream that breaks before ``STOP`` is a finding, not a pass.
Joblib's raw array bytes that sit between opcodes are skipped using the wrapper's shape and dtype.
"""

from __future__ import annotations

import io
import pickletools
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from bastion.artifacts.scan.argpatterns import check_build, check_call
from bastion.artifacts.scan.frames import FrameViolation, SkippedStream, opcode_violations
from bastion.artifacts.scan.policy import GlobalKind, Policy
from bastion.artifacts.scan.report import ScanFinding
from bastion.artifacts.scan.symbolic import SymCall, SymGlobal, SymOpaque, literal
from bastion.core.severity import Severity

MAX_NESTING = 4
MAX_EXPANDED_NODES = 10_000_000
MAX_CONTAINER_DEPTH = 1000
MAX_DUP = 64  # CPython's pickler never writes DUP
IN_MEMORY_LIMIT = 64 << 20
_LOADS_FAMILY = {"loads", "load", "_loads", "_load"}


class _Mark:
    __slots__ = ()


_MARK = _Mark()


class _Machine:
    """What the opcodes act on during one walk: the stack, the stacks saved at each MARK, the memo and
    the stream (BUILD of a joblib array wrapper reads past the array's bytes)."""

    __slots__ = ("fh", "memo", "stack", "stacks")

    def __init__(self, fh: IO[bytes]) -> None:
        self.stack: list[Any] = []
        self.stacks: list[list[Any]] = []
        self.memo: dict[Any, Any] = {}
        self.fh = fh
# BUILD state keys that re-point an object's class or protocol hooks (object.__setattr__ in a
# __setstate__, e.g. pandas' NDFrame, would set them as given)
_DUNDER_STATE = "attribute names of the form __x__ in BUILD state"


@dataclass
class FindingSink:
    """Collects findings, merging repeats of the same code and global (keeps the first offset)."""

    findings: dict[tuple[str, str | None, str], ScanFinding] = field(default_factory=dict)

    def add(self, finding: ScanFinding) -> None:
        key = (finding.code, finding.global_name, finding.member)
        old = self.findings.get(key)
        if old is None:
            self.findings[key] = finding
        else:
            old.count += 1

    def extend(self, items: list[ScanFinding]) -> None:
        for f in items:
            self.add(f)

    def as_list(self) -> list[ScanFinding]:
        return sorted(self.findings.values(), key=lambda f: (-f.severity.rank, f.member, f.offset or 0))


class PickleWalker:
    """Walk one pickle stream symbolically; findings go to ``sink``."""

    def __init__(self, policy: Policy, sink: FindingSink, member: str = "", depth: int = 0) -> None:
        self.policy = policy
        self.sink = sink
        self.member = member
        self.depth = depth
        self.referenced: dict[tuple[str, str], SymGlobal] = {}
        self.invoked: set[tuple[str, str]] = set()
        self.pending: list[SymCall] = []
        self.n_ops = 0
        self.n_dup = 0
        self._sizes: dict[int, tuple[Any, int, int]] = {}
        self.frame_violations: list[FrameViolation] = []
        self.cuts: set[int] = set()
        self._flagged_expansion = self._flagged_depth = False

    # -- findings ---------------------------------------------------------------------------
    def _global_finding(self, g: SymGlobal, invoked: bool, offset: int) -> None:
        decision = self.policy.classify(g.module, g.name)
        if decision.kind == GlobalKind.SAFE:
            return
        if decision.kind == GlobalKind.DANGEROUS:
            code = "PICKLE_DANGEROUS_CALL" if invoked else "PICKLE_DANGEROUS_GLOBAL"
            verb = "calls" if invoked else "references"
            self.sink.add(ScanFinding(
                Severity.CRITICAL, code, f"pickle {verb} {g.dotted}: {decision.reason}",
                self.member, offset, g.dotted, module=g.module, name=g.name,
            ))
        elif invoked:
            self.sink.add(ScanFinding(
                Severity.HIGH, "PICKLE_UNKNOWN_CALL",
                f"pickle calls {g.dotted}, which is not on the allowlist (allow it with --allow "
                f"{g.module}:{g.name} only if you trust it)", self.member, offset, g.dotted, module=g.module, name=g.name,
            ))

    def _invoke(self, func: Any, args: Any, offset: int, newobj: bool = False, kwargs: Any = None) -> Any:
        if isinstance(func, SymGlobal):
            key = (func.module, func.name)
            self.invoked.add(key)
            decision = self.policy.classify(func.module, func.name)
            if newobj and args == () and decision.kind == GlobalKind.UNKNOWN:
                # cls.__new__(cls) of an unknown class: judged at BUILD (a torch nn.Module subclass is medium)
                call = SymCall(func, args, offset)
                self.pending.append(call)
                return call
            if decision.kind == GlobalKind.CONDITIONAL:
                checked = check_call(decision.reason, func, args, kwargs, self.policy)
                if checked.problem is not None:
                    self._conditional_finding(func, checked.problem, offset)
                elif checked.result is not None:
                    self._class_arguments(func, args, kwargs, offset)
                    return checked.result
            else:
                self._global_finding(func, True, offset)
                folded = _fold_constant(self.policy, func, args)
                if folded is not None:
                    if len(folded) > 3 and folded[0] == 0x80 and folded[1] <= 5:
                        self._nested(bytes(folded), offset, strict=True)
                    return folded
            self._class_arguments(func, args, kwargs, offset)
            self._maybe_nested_loads(func, args, offset)
        else:
            self.sink.add(ScanFinding(
                Severity.HIGH, "PICKLE_INDIRECT_CALL",
                "pickle calls a computed object (result of another call or a non-global value)",
                self.member, offset, None,
            ))
        return SymCall(func, args, offset)

    def _conditional_finding(self, g: SymGlobal, problem: str, offset: int) -> None:
        dangerous = g.name.split(".")[-1] in self.policy.dangerous_names
        self.sink.add(ScanFinding(
            Severity.CRITICAL if dangerous else Severity.HIGH,
            "PICKLE_DANGEROUS_CALL" if dangerous else "PICKLE_CALL_ARGUMENTS", f"pickle calls {problem}",
            self.member, offset, g.dotted, module=g.module, name=g.name,
        ))

    def _class_arguments(self, func: SymGlobal, args: Any, kwargs: Any, offset: int) -> None:
        """A global passed straight to a call may be instantiated or called by it (copyreg._reconstructor,
        pandas' _new_Index, Cython's __pyx_unpickle_*): judge it as called, not merely referenced."""
        values = list(args) if isinstance(args, tuple) else []
        if isinstance(kwargs, dict):
            values += list(kwargs.values())
        for v in values:
            if not isinstance(v, SymGlobal) or (v.module, v.name) in self.invoked:
                continue
            decision = self.policy.classify(v.module, v.name)
            if decision.kind in (GlobalKind.SAFE, GlobalKind.DANGEROUS):
                continue  # a dangerous global is critical wherever it appears (reported at the end)
            self.invoked.add((v.module, v.name))
            if decision.kind == GlobalKind.UNKNOWN:
                self.sink.add(ScanFinding(
                    Severity.HIGH, "PICKLE_UNKNOWN_CALL",
                    f"pickle passes {v.dotted} (not on the allowlist) to {func.dotted}, which may instantiate "
                    f"or call it (allow it with --allow {v.module}:{v.name} only if you trust it)",
                    self.member, offset, v.dotted, module=v.module, name=v.name,
                ))
            elif decision.kind == GlobalKind.CONDITIONAL:
                self._conditional_finding(v, f"{v.dotted} through {func.dotted}, with arguments the scanner cannot "
                                             "see", offset)

    def _maybe_nested_loads(self, func: SymGlobal, args: Any, offset: int) -> None:
        if func.name.split(".")[-1] not in _LOADS_FAMILY or not isinstance(args, tuple) or not args:
            return
        payload = args[0]
        if isinstance(payload, bytes | bytearray):
            self._nested(bytes(payload), offset, strict=False)

    def _nested(self, data: bytes, offset: int, strict: bool) -> None:
        if self.depth >= MAX_NESTING:
            self.sink.add(ScanFinding(Severity.HIGH, "PICKLE_NESTING_TOO_DEEP",
                                      f"pickles nested more than {MAX_NESTING} levels", self.member, offset))
            return
        inner_sink = FindingSink()
        walker = PickleWalker(self.policy, inner_sink, _join(self.member, f"nested@{offset}"), self.depth + 1)
        ok, end = walker.walk(io.BytesIO(data))
        findings = inner_sink.as_list()
        if strict and (not ok or end != len(data)):
            return  # bytes that merely start like a pickle
        self.sink.extend(findings)

    # -- the walk ---------------------------------------------------------------------------
    def walk(self, fh: IO[bytes]) -> tuple[bool, int]:
        """Walk one pickle from the current position. Returns (reached STOP, end offset).

        FRAMEs are followed as ``_pickle.c`` follows them (``frames``): a read that breaks the
        framing is a high finding, and the reading ``pickle.load(file)`` would make of it is walked too.
        """
        start = fh.tell()
        ok, end = self._walk_ops(fh)
        for v in self.frame_violations[:2]:
            self.sink.add(ScanFinding(
                Severity.HIGH, "PICKLE_FRAME_VIOLATION",
                f"a {v.kind} at offset {v.start} runs past the FRAME ending at {v.frame_end}: pickle.load on a "
                "file reads the bytes after the frame instead, so the scanner walked both readings",
                self.member, v.start,
            ))
            if v.frame_end > v.start and self.depth < MAX_NESTING and _seekable(fh):
                alt = SkippedStream(fh, v.start, v.frame_end)
                alt.seek(start)
                walker = PickleWalker(self.policy, self.sink, _join(self.member, f"frame-skip@{v.start}"),
                                      self.depth + 1)
                walker.cuts = self.cuts | {v.start}
                walker.walk(alt)  # type: ignore[arg-type]
                fh.seek(end)
        self.frame_violations = []
        return ok, end

    def _broken(self, exc: BaseException, pos: int, n: int) -> tuple[bool, int]:
        self.n_ops += n
        self._finish()
        self.sink.add(ScanFinding(
            Severity.MEDIUM, "PICKLE_MALFORMED",
            f"pickle stream is broken after offset {pos} ({type(exc).__name__}: {str(exc)[:120]}); "
            "a loader would have executed everything before this point",
            self.member, pos,
        ))
        return False, pos

    def _frame_passed(self, fh: IO[bytes], frame_end: int, op_start: int, op_end: int, next_start: int) -> None:
        """The walk reached ``frame_end``: did the last opcode, or a skip after it, reach past it?"""
        if op_end <= frame_end:
            if op_end < frame_end < next_start:  # raw bytes skipped (joblib arrays) across the frame's end
                self.frame_violations.append(FrameViolation("skip", op_end, frame_end))
            return
        if _seekable(fh):
            self.frame_violations += opcode_violations(fh, op_start, frame_end, frozenset(self.cuts))
        else:
            self.frame_violations.append(FrameViolation("read", op_start, frame_end))

    def _walk_ops(self, fh: IO[bytes]) -> tuple[bool, int]:
        if isinstance(fh, io.BytesIO):
            return self._walk_buffer(fh)
        m = _Machine(fh)
        stack, memo = m.stack, m.memo
        pos = fh.tell()
        n = 0
        push_arg, memo_put, memo_get = _PUSH_ARG, _MEMO_PUT, _MEMO_GET
        frame_end = _NO_FRAME
        op_end = pos  # end of the last opcode handled outside the hot path (a joblib skip may follow it)
        try:
            # the hot opcodes (pushes and memo traffic, ~80% of a checkpoint) are handled inline
            for op, arg, at in pickletools.genops(fh):
                pos_ = at if at is not None else pos
                if pos_ >= frame_end:  # the last opcode, or a skip after it, reached the frame's end
                    self._frame_passed(fh, frame_end, pos, op_end if op_end > pos else pos_, pos_)
                    frame_end = _NO_FRAME
                pos = pos_
                n += 1
                name = op.name
                if name in push_arg:
                    if arg.__class__ is bytes and len(arg) > 3 and arg[0] == 0x80 and arg[1] <= 5:
                        self._nested(arg, pos, strict=True)
                    stack.append(arg)
                elif name in memo_put:
                    memo[arg] = stack[-1]
                elif name in memo_get:
                    stack.append(memo[arg])
                elif name == "MEMOIZE":
                    memo[len(memo)] = stack[-1]
                elif name == "STOP":
                    self.n_ops += n
                    self._finish()
                    return True, fh.tell()
                elif name == "FRAME":
                    here = fh.tell()
                    if frame_end != _NO_FRAME:
                        self.frame_violations.append(FrameViolation("frame inside a frame", pos, frame_end))
                    frame_end = here + int(arg or 0)
                    for cut in self.cuts:  # a reading that already left its frame at a cut (see walk)
                        if here <= cut < frame_end:
                            frame_end = cut
                else:
                    op_end = fh.tell()  # before any joblib array skip inside _step
                    self._step(name, arg, pos, m)
        except _BROKEN as exc:
            return self._broken(exc, pos, n)
        self.n_ops += n
        self._finish()
        self.sink.add(ScanFinding(Severity.MEDIUM, "PICKLE_MALFORMED", "pickle stream ends without STOP",
                                  self.member, pos))
        return False, pos

    def _walk_buffer(self, fh: io.BytesIO) -> tuple[bool, int]:
        """The same walk over an in-memory stream, decoding the hot opcodes inline (about 2.5x faster
        than ``pickletools.genops``); every other opcode is read by pickletools' own argument reader."""
        m = _Machine(fh)
        stack, stacks, memo = m.stack, m.stacks, m.memo
        mv = fh.getbuffer()
        size = len(mv)
        i = pos = fh.tell()
        n = 0
        frame_end = _NO_FRAME
        op_end = pos
        frm = int.from_bytes
        try:
            while True:
                if i >= frame_end:
                    self._frame_passed(fh, frame_end, pos, op_end if op_end > pos else i, i)
                    frame_end = _NO_FRAME
                if i >= size:
                    raise ValueError("pickle exhausted before seeing STOP")
                pos = i
                n += 1
                c = mv[i]
                if c == 0x4B:  # BININT1
                    stack.append(mv[i + 1])
                    i += 2
                elif c == 0x71:  # BINPUT
                    memo[mv[i + 1]] = stack[-1]
                    i += 2
                elif c == 0x94:  # MEMOIZE
                    memo[len(memo)] = stack[-1]
                    i += 1
                elif c == 0x68:  # BINGET
                    stack.append(memo[mv[i + 1]])
                    i += 2
                elif c == 0x4A:  # BININT
                    stack.append(_INT4(mv, i + 1)[0])
                    i += 5
                elif c == 0x4D:  # BININT2
                    stack.append(_UINT2(mv, i + 1)[0])
                    i += 3
                elif c in _FIXED_INT:
                    width, signed = _FIXED_INT[c]
                    if i + 1 + width > size:
                        raise ValueError(f"truncated {width}-byte argument at {i}")
                    v = frm(mv[i + 1:i + 1 + width], "little", signed=signed)
                    i += 1 + width
                    if c == 0x4A or c == 0x4D:  # BININT, BININT2
                        stack.append(v)
                    elif c == 0x72:  # LONG_BINPUT
                        memo[v] = stack[-1]
                    else:  # LONG_BINGET
                        stack.append(memo[v])
                elif c in _COUNTED:
                    width, text = _COUNTED[c]
                    start = i + 1 + width
                    end = start + frm(mv[i + 1:start], "little")
                    if start > size or end > size:
                        raise ValueError(f"truncated string or bytes at {i}")
                    if text:
                        stack.append(str(mv[start:end], "utf-8", "surrogatepass"))
                    else:
                        data = bytes(mv[start:end])
                        if len(data) > 3 and data[0] == 0x80 and data[1] <= 5:
                            self._nested(data, pos, strict=True)
                        stack.append(data)
                    i = end
                elif c in _CONSTS:
                    stack.append(_CONSTS[c]())
                    i += 1
                elif c == 0x28:  # MARK
                    stacks.append(stack[:])
                    stack.clear()
                    i += 1
                elif c == 0x2E:  # STOP
                    self.n_ops += n
                    self._finish()
                    fh.seek(i + 1)
                    return True, i + 1
                else:
                    op = _OPCODES.get(c)
                    if op is None:
                        raise ValueError(f"at position {i}, opcode {bytes([c])!r} unknown")
                    fh.seek(i + 1)
                    arg = op.arg.reader(fh) if op.arg is not None else None
                    name = op.name
                    if name in _PUSH_ARG:
                        if arg.__class__ is bytes and len(arg) > 3 and arg[0] == 0x80 and arg[1] <= 5:
                            self._nested(arg, pos, strict=True)
                        stack.append(arg)
                    elif name == "FRAME":
                        here = fh.tell()
                        if frame_end != _NO_FRAME:
                            self.frame_violations.append(FrameViolation("frame inside a frame", pos, frame_end))
                        frame_end = here + int(arg or 0)
                        for cut in self.cuts:
                            if here <= cut < frame_end:
                                frame_end = cut
                    elif name in _MEMO_PUT:
                        memo[arg] = stack[-1]
                    elif name in _MEMO_GET:
                        stack.append(memo[arg])
                    else:
                        op_end = fh.tell()  # before any joblib array skip inside _step
                        self._step(name, arg, pos, m)
                    i = fh.tell()
        except _BROKEN as exc:
            fh.seek(pos)
            return self._broken(exc, pos, n)
        finally:
            del mv

    # -- expansion (billion laughs) and nesting depth -----------------------------------------
    def _measure(self, container: Any, items: Any, pos: int, grow: bool = False) -> None:
        """Record how many nodes a full walk of ``container`` visits (shared references counted each
        time, as copying, printing or serialising it would) and how deep it nests.

        ``_sizes`` keeps every measured container alive, so an ``id`` is never reused for another object."""
        sizes = self._sizes
        hit = sizes.get(id(container)) if grow else None
        size, depth = (hit[1], hit[2]) if hit is not None else (1, 1)
        if sizes.keys().isdisjoint(map(id, items)):  # only scalars and unmeasured objects: one node each
            size += len(items)
            depth = max(depth, 1)
        else:
            for item in items:
                h = sizes.get(id(item))
                size += h[1] if h is not None else 1
                depth = max(depth, (h[2] if h is not None else 0) + 1)
        sizes[id(container)] = (container, size, depth)
        if size > MAX_EXPANDED_NODES and size > 1000 * (self.n_ops + 1) and not self._flagged_expansion:
            self._flagged_expansion = True
            self.sink.add(ScanFinding(
                Severity.HIGH, "PICKLE_EXPANSION",
                f"shared references expand to more than {MAX_EXPANDED_NODES:,} objects from a small stream "
                "(memo/DUP 'billion laughs'): anything that copies, prints or serialises the result exhausts memory",
                self.member, pos,
            ))
        if depth > MAX_CONTAINER_DEPTH and not self._flagged_depth:
            self._flagged_depth = True
            self.sink.add(ScanFinding(
                Severity.HIGH, "PICKLE_DEEP_NESTING",
                f"containers nested more than {MAX_CONTAINER_DEPTH} levels deep: recursion limits and stack "
                "overflows in anything that walks the result", self.member, pos,
            ))

    def _finish(self) -> None:
        for call in self.pending:
            self._global_finding(call.func, True, call.offset)
        self.pending = []
        for key, g in self.referenced.items():
            if key not in self.invoked:
                decision = self.policy.classify(g.module, g.name)
                if decision.kind == GlobalKind.DANGEROUS:
                    self._global_finding(g, False, g.offset)
                elif decision.kind == GlobalKind.UNKNOWN:
                    self.sink.add(ScanFinding(
                        Severity.MEDIUM, "PICKLE_UNKNOWN_GLOBAL",
                        f"pickle references {g.dotted} (not on the allowlist) without calling it",
                        self.member, g.offset, g.dotted, module=g.module, name=g.name,
                    ))
        self.referenced = {}

    def _pop_mark(self, stack: list[Any], stacks: list[list[Any]]) -> list[Any]:
        items = stack[:]
        stack.clear()
        stack.extend(stacks.pop())
        return items

    def _make_global(self, module: Any, name: Any, pos: int) -> Any:
        if not isinstance(module, str) or not isinstance(name, str):
            self.sink.add(ScanFinding(Severity.HIGH, "PICKLE_DYNAMIC_GLOBAL",
                                      "STACK_GLOBAL with a non-string module or name", self.member, pos))
            return SymOpaque("global")
        if not _valid_dotted(module) or not _valid_dotted(name):
            # find_class would fail to import it: nothing runs, but the stream is broken here
            raise ValueError(f"global {module[:40]!r}.{name[:40]!r} is not an importable name")
        g = SymGlobal(module, name, pos)
        self.referenced.setdefault((module, name), g)
        return g

    def _step(self, name: str, arg: Any, pos: int, m: _Machine) -> None:
        """Apply one opcode that the walks do not handle inline, through ``_HANDLERS``. An opcode without
        a handler fails closed: the stream is reported broken at ``pos`` (``_BROKEN``), never skipped."""
        handler = _HANDLERS.get(name)
        if handler is None:  # every opcode of protocols 0-5 but STOP and FRAME (handled by the walks) has one
            raise ValueError(f"unhandled opcode {name}")
        handler(self, m, name, arg, pos)

    # -- opcode handlers (``_HANDLERS``): each does to the symbolic state what pickle.load does ------
    def _push_new(self, m: _Machine, new: Any, items: Any, pos: int) -> None:
        self._measure(new, items, pos)
        m.stack.append(new)

    def _op_push_arg(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        if isinstance(arg, bytes | bytearray) and len(arg) > 3 and arg[0] == 0x80 and arg[1] <= 5:
            self._nested(bytes(arg), pos, strict=True)
        m.stack.append(arg)

    def _op_push_const(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        m.stack.append(_PUSH_CONST[name]())

    def _op_mark(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        m.stacks.append(m.stack[:])
        m.stack.clear()

    def _op_tuple(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        items = self._pop_mark(m.stack, m.stacks)
        self._push_new(m, tuple(items), items, pos)

    def _op_list(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        items = self._pop_mark(m.stack, m.stacks)
        self._push_new(m, items, items, pos)

    def _op_frozenset(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        items = self._pop_mark(m.stack, m.stacks)
        self._push_new(m, SymOpaque("frozenset"), items, pos)

    def _op_tuple_n(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        n = int(name[-1])  # TUPLE1, TUPLE2, TUPLE3
        items = m.stack[-n:]
        if len(items) != n:
            raise IndexError("stack underflow")
        del m.stack[-n:]
        self._push_new(m, tuple(items), items, pos)

    def _op_dict(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        items = self._pop_mark(m.stack, m.stacks)
        self._push_new(m, _pairs(items), items, pos)

    def _op_append(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        v = m.stack.pop()
        self._measure(m.stack[-1], (v,), pos, grow=True)
        if isinstance(m.stack[-1], list):
            m.stack[-1].append(v)

    def _op_appends(self, m: _Machine, name: str, arg: Any, pos: int) -> None:  # APPENDS, ADDITEMS
        items = self._pop_mark(m.stack, m.stacks)
        self._measure(m.stack[-1], items, pos, grow=True)
        if isinstance(m.stack[-1], list):
            m.stack[-1].extend(items)

    def _op_setitem(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        v = m.stack.pop()
        k = m.stack.pop()
        self._measure(m.stack[-1], (k, v), pos, grow=True)
        _setitem(m.stack[-1], k, v)

    def _op_setitems(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        items = self._pop_mark(m.stack, m.stacks)
        target = m.stack[-1]
        self._measure(target, items, pos, grow=True)
        for k, v in zip(items[::2], items[1::2], strict=False):
            _setitem(target, k, v)

    def _op_pop(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        if m.stack:
            m.stack.pop()
        else:  # POP with nothing above the mark pops the mark (as _pickle.c does)
            self._pop_mark(m.stack, m.stacks)

    def _op_pop_mark(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        self._pop_mark(m.stack, m.stacks)

    def _op_dup(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        self.n_dup += 1
        if self.n_dup == MAX_DUP + 1:
            self.sink.add(ScanFinding(
                Severity.HIGH, "PICKLE_DUP_EXPANSION",
                f"more than {MAX_DUP} DUP opcodes (CPython's pickler writes none): stack expansion",
                self.member, pos))
        m.stack.append(m.stack[-1])

    def _op_put(self, m: _Machine, name: str, arg: Any, pos: int) -> None:  # PUT, BINPUT, LONG_BINPUT
        m.memo[int(arg)] = m.stack[-1]

    def _op_memoize(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        m.memo[len(m.memo)] = m.stack[-1]

    def _op_get(self, m: _Machine, name: str, arg: Any, pos: int) -> None:  # GET, BINGET, LONG_BINGET
        m.stack.append(m.memo[int(arg)])

    def _op_global(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        module, _, gname = str(arg).partition(" ")
        m.stack.append(self._make_global(module, gname, pos))

    def _op_inst(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        module, _, gname = str(arg).partition(" ")
        g = self._make_global(module, gname, pos)
        m.stack.append(self._invoke(g, tuple(self._pop_mark(m.stack, m.stacks)), pos))

    def _op_stack_global(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        gname = m.stack.pop()
        module = m.stack.pop()
        m.stack.append(self._make_global(module, gname, pos))

    def _op_reduce(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        args = m.stack.pop()
        func = m.stack.pop()
        m.stack.append(self._invoke(func, args, pos))

    def _op_newobj(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        args = m.stack.pop()
        cls = m.stack.pop()
        m.stack.append(self._invoke(cls, args, pos, newobj=True))

    def _op_newobj_ex(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        kwargs = m.stack.pop()
        args = m.stack.pop()
        cls = m.stack.pop()
        m.stack.append(self._invoke(cls, args, pos, newobj=kwargs == {}, kwargs=kwargs))

    def _op_obj(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        items = self._pop_mark(m.stack, m.stacks)
        m.stack.append(self._invoke(items[0], tuple(items[1:]), pos))

    def _op_build(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        state = m.stack.pop()
        self._build(m.stack[-1], state, pos, m.fh)

    def _op_persid(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        m.stack.append(SymOpaque("persistent"))

    def _op_binpersid(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        m.stack.pop()
        m.stack.append(SymOpaque("persistent"))

    def _op_ext(self, m: _Machine, name: str, arg: Any, pos: int) -> None:  # EXT1, EXT2, EXT4
        self.sink.add(ScanFinding(Severity.MEDIUM, "PICKLE_EXTENSION_CODE",
                                  f"pickle uses copyreg extension code {arg}", self.member, pos))
        m.stack.append(SymOpaque("ext"))

    def _op_next_buffer(self, m: _Machine, name: str, arg: Any, pos: int) -> None:
        m.stack.append(SymOpaque("buffer"))

    def _op_nothing(self, m: _Machine, name: str, arg: Any, pos: int) -> None:  # PROTO, READONLY_BUFFER
        pass

    def _build(self, obj: Any, state: Any, pos: int, fh: IO[bytes]) -> None:
        self._dunder_state(state, pos)
        if isinstance(obj, SymGlobal):
            self.sink.add(ScanFinding(
                Severity.HIGH, "PICKLE_BUILD_ON_GLOBAL",
                f"BUILD sets attributes on {obj.dotted} itself (class/function patching)",
                self.member, pos, obj.dotted, module=obj.module, name=obj.name,
            ))
            return
        if isinstance(obj, SymCall):
            obj.state = state
            f = obj.func
            if isinstance(f, SymGlobal):
                decision = self.policy.classify(f.module, f.name)
                problem = check_build(decision.reason, f, state, self.policy) \
                    if decision.kind == GlobalKind.CONDITIONAL else None
                if problem is not None:
                    self._conditional_finding(f, problem, pos)
            if obj in self.pending and isinstance(state, dict) and {"_parameters", "_modules"} <= set(state):
                self.pending.remove(obj)
                g = obj.func
                self.sink.add(ScanFinding(
                    Severity.MEDIUM, "PICKLE_CUSTOM_MODULE",
                    f"full-model save of custom torch module class {g.dotted}: loading imports {g.module} "
                    f"(allow it with --allow {g.module}:{g.name} if it is your code)",
                    self.member, obj.offset, g.dotted, module=g.module, name=g.name,
                ))
                return
            f = obj.func
            if isinstance(f, SymGlobal) and f.name == "NumpyArrayWrapper" and "joblib" in f.module:
                self._skip_joblib_array(state, pos, fh)

    def _dunder_state(self, state: Any, pos: int) -> None:
        dicts = [state] if isinstance(state, dict) else [
            d for d in state if isinstance(d, dict)] if isinstance(state, tuple) else []
        keys = sorted({k for d in dicts for k in d if isinstance(k, str) and k.startswith("__") and k.endswith("__")})
        if keys:
            self.sink.add(ScanFinding(
                Severity.HIGH, "PICKLE_BUILD_DUNDER_STATE",
                f"BUILD sets {', '.join(keys[:5])} on an object: {_DUNDER_STATE} can re-point its class "
                "or protocol hooks", self.member, pos,
            ))

    def _skip_joblib_array(self, state: Any, pos: int, fh: IO[bytes]) -> None:
        """Joblib writes array bytes (or a nested pickle for object arrays) right after BUILD."""
        import numpy as np

        st = state if isinstance(state, dict) else {}
        shape = literal(st.get("shape"))
        dtype_val = st.get("dtype")
        descr = None
        if isinstance(dtype_val, SymCall) and isinstance(dtype_val.args, tuple) and dtype_val.args:
            descr = literal(dtype_val.args[0])
        try:
            dtype = np.dtype(descr) if isinstance(descr, str) and len(descr) < 64 else None
        except TypeError:
            dtype = None
        if dtype is None or not isinstance(shape, tuple) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise ValueError("joblib array wrapper without a readable shape/dtype")
        if dtype.hasobject:
            sink_before = len(self.sink.findings)
            walker = PickleWalker(self.policy, self.sink, _join(self.member, f"joblib-object-array@{fh.tell()}"),
                                  self.depth + 1)
            ok, _ = walker.walk(fh)
            if not ok and len(self.sink.findings) == sink_before:
                raise ValueError("broken object-array pickle inside joblib file")
            return
        count = 1
        for s in shape:
            count *= s
        if st.get("numpy_array_alignment_bytes") is not None:
            pad = fh.read(1)
            if len(pad) != 1:
                raise EOFError("joblib padding byte missing")
            fh.seek(pad[0], io.SEEK_CUR)
        fh.seek(count * dtype.itemsize, io.SEEK_CUR)


def _fold_constant(policy: Policy, func: SymGlobal, args: Any) -> bytes | bytearray | None:
    """Protocols 0-2 write bytes as ``_codecs.encode(str, "latin1")`` (and bytearrays around that):
    evaluate those two pure constructors so later checks see the literal bytes."""
    if not isinstance(args, tuple) or not args:
        return None
    entry = ":".join(policy.normalise(func.module, func.name))
    if entry in ("_codecs:encode", "codecs:encode") and len(args) == 2 and isinstance(args[0], str) \
            and args[1] in ("latin1", "latin-1", "iso-8859-1"):
        try:
            return args[0].encode("latin-1")
        except UnicodeEncodeError:
            return None
    if entry == "builtins:bytearray" and len(args) == 1 and isinstance(args[0], bytes | bytearray):
        return bytearray(args[0])
    return None


_NO_FRAME = 1 << 62
# what a malformed stream raises in the walk (a finding, never a crashed scan)
_BROKEN = (ValueError, EOFError, IndexError, KeyError, TypeError, OverflowError, MemoryError, UnicodeDecodeError,
           RecursionError, struct.error)
_OPCODES = {ord(o.code): o for o in pickletools.opcodes}
_INT4 = struct.Struct("<i").unpack_from
_UINT2 = struct.Struct("<H").unpack_from
_FIXED_INT = {0x4A: (4, True), 0x4D: (2, False), 0x72: (4, False), 0x6A: (4, False)}  # BININT BININT2 LONG_BINPUT/GET
_COUNTED = {0x8C: (1, True), 0x58: (4, True), 0x43: (1, False), 0x42: (4, False)}  # SHORT_/BINUNICODE, SHORT_/BINBYTES
_CONSTS: dict[int, Any] = {0x4E: lambda: None, 0x88: lambda: True, 0x89: lambda: False, 0x5D: list, 0x7D: dict,
                           0x29: tuple}


def _seekable(fh: IO[bytes]) -> bool:
    try:
        return bool(fh.seekable())
    except (AttributeError, ValueError):
        return False


def _valid_dotted(text: str) -> bool:
    return bool(text) and len(text) < 512 and all(part.isidentifier() for part in text.split("."))


def _join(member: str, inner: str) -> str:
    return f"{member}>{inner}" if member else inner


def _pairs(items: list[Any]) -> dict[Any, Any]:
    d: dict[Any, Any] = {}
    for k, v in zip(items[::2], items[1::2], strict=False):
        _setitem(d, k, v)
    return d


def _setitem(target: Any, k: Any, v: Any) -> None:
    if isinstance(target, dict):
        try:
            target[k] = v
        except TypeError:  # unhashable symbolic key
            pass


_PUSH_ARG = {
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
    "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE",
    "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8",
}
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}
_PUSH_CONST: dict[str, Any] = {
    "NONE": lambda: None,
    "NEWTRUE": lambda: True,
    "NEWFALSE": lambda: False,
    "EMPTY_LIST": list,
    "EMPTY_DICT": dict,
    "EMPTY_TUPLE": tuple,
    "EMPTY_SET": list,
}
_W = PickleWalker
# opcode name -> handler, for every opcode of protocols 0-5 but STOP and FRAME (the walks end and frame
# themselves); _step refuses a name missing here (fail closed)
_HANDLERS: dict[str, Callable[[PickleWalker, _Machine, str, Any, int], None]] = {
    **dict.fromkeys(_PUSH_ARG, _W._op_push_arg),
    **dict.fromkeys(_PUSH_CONST, _W._op_push_const),
    **dict.fromkeys(_MEMO_PUT, _W._op_put),
    **dict.fromkeys(_MEMO_GET, _W._op_get),
    **dict.fromkeys(("TUPLE1", "TUPLE2", "TUPLE3"), _W._op_tuple_n),
    **dict.fromkeys(("APPENDS", "ADDITEMS"), _W._op_appends),
    **dict.fromkeys(("EXT1", "EXT2", "EXT4"), _W._op_ext),
    **dict.fromkeys(("PROTO", "READONLY_BUFFER"), _W._op_nothing),
    "MARK": _W._op_mark, "TUPLE": _W._op_tuple, "LIST": _W._op_list, "FROZENSET": _W._op_frozenset,
    "DICT": _W._op_dict, "APPEND": _W._op_append, "SETITEM": _W._op_setitem, "SETITEMS": _W._op_setitems,
    "POP": _W._op_pop, "POP_MARK": _W._op_pop_mark, "DUP": _W._op_dup, "MEMOIZE": _W._op_memoize,
    "GLOBAL": _W._op_global, "INST": _W._op_inst, "STACK_GLOBAL": _W._op_stack_global, "REDUCE": _W._op_reduce,
    "NEWOBJ": _W._op_newobj, "NEWOBJ_EX": _W._op_newobj_ex, "OBJ": _W._op_obj, "BUILD": _W._op_build,
    "PERSID": _W._op_persid, "BINPERSID": _W._op_binpersid, "NEXT_BUFFER": _W._op_next_buffer,
}


def scan_pickle_bytes(data: bytes, policy: Policy, member: str = "") -> tuple[list[ScanFinding], int]:
    """Scan a pickle held in memory. Returns (findings, opcodes walked)."""
    return scan_pickle_stream(io.BytesIO(data), policy, member, total=len(data))


def scan_pickle_stream(fh: IO[bytes], policy: Policy, member: str = "", total: int | None = None,
                       max_pickles: int = 16) -> tuple[list[ScanFinding], int]:
    """Scan every pickle in a stream (pickles may follow each other, e.g. legacy ``torch.save``).

    A seekable file of up to ``IN_MEMORY_LIMIT`` bytes is read into memory first: the in-memory walk
    decodes the common opcodes inline."""
    if not isinstance(fh, io.BytesIO) and _seekable(fh):
        start = fh.tell()
        end = fh.seek(0, io.SEEK_END)
        if end <= IN_MEMORY_LIMIT:
            fh.seek(0)
            fh = io.BytesIO(fh.read())
        fh.seek(start)
    sink = FindingSink()
    n_ops = 0
    for i in range(max_pickles):
        start = fh.tell()
        if i > 0:
            head = fh.read(2)
            fh.seek(start)
            if not head:
                break
            # a following pickle must start with PROTO (protocol 2+) or a plausible protocol-0/1 opcode
            if head[0] != 0x80 or head[1:2] not in (b"\x02", b"\x03", b"\x04", b"\x05"):
                if total is None or fh.seek(0, io.SEEK_END) > start:
                    sink.add(ScanFinding(Severity.LOW, "PICKLE_TRAILING_DATA",
                                         f"non-pickle data after the pickle stream at offset {start}",
                                         member, start))
                break
        walker = PickleWalker(policy, sink, member)
        ok, _ = walker.walk(fh)
        n_ops += walker.n_ops
        if not ok:
            break
    return sink.as_list(), n_ops
