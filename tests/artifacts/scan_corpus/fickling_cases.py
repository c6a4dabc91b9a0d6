"""Cases of fickling's test suite (test/test_bypasses.py, test/test_expansion_attack_analysis.py), regenerated.

Each opcode sequence follows the fickling test of the same name. The expansion attacks are written at
the size of the published files the tests reproduce (globalLaughs.pt: 9 layers x 9 DUPs;
billionLaughsAlt.pkl: 10 layers of 1 PUT + 9 GETs), not the 64-element miniatures fickling checks
with lowered thresholds.
"""

from __future__ import annotations

import marshal
import pickle
import struct
from pathlib import Path
from typing import Any

b: Any = None  # the helpers of _build.py, set by corpus._load() once this module is loaded


def _sbu(s: str) -> bytes:
    return b.u(s)


def cases(d: Path, marker: Path) -> list[Any]:
    w = b.Writer(d, "fickling", marker)
    p4, p5 = b"\x80\x04", b"\x80\x05"
    m = {
        "test_missing_pty_unsafe_imports_ghsa": p4 + b.glob("pty", "spawn") + _sbu("id") + b"\x85R" + _sbu("x") + b"b.",
        "test_missing_pty_unsafe_imports_pr": b"(cpty\nspawn\nS'id'\no.",
        "test_missing_marshal_and_types": p4 + b.glob("marshal", "loads") + b"\x94" + b"C"
        + bytes([len(marshal.dumps(compile("1", "x", "eval")))]) + marshal.dumps(compile("1", "x", "eval")) + b"\x85R\x94"
        + b.glob("types", "FunctionType") + b"\x94h\x01}\x86R\x94)R.",
        "test_missing_runpy": b.call("runpy", "run_path", ("/tmp/malicious.py",), 5),
        "test_missing_cprofile": b.call("cProfile", "run", (w.py,), 5),
        "test_missing_ctypes": p5 + b.glob("builtins", "getattr") + b.glob("ctypes", "CDLL") + _sbu("libc.so.6")
        + b"\x85R" + _sbu("system") + b"\x86R" + _sbu(w.cmd) + b"\x85R.",
        "test_missing_pydoc": p4 + b.glob("pydoc", "locate") + _sbu("os.system") + b"\x85R" + _sbu(w.cmd) + b"\x85R.",
        "test_missing_importlib": p4 + b.glob("builtins", "getattr") + b.glob("importlib", "import_module")
        + _sbu("os") + b"\x85R" + _sbu("system") + b"\x86R" + _sbu(w.cmd) + b"\x85R.",
        "test_missing_code": p4 + b.glob("builtins", "getattr") + b.glob("code", "InteractiveInterpreter") + b")R"
        + _sbu("runsource") + b"\x86R" + _sbu(w.py) + b"\x85R.",
        "test_missing_multiprocessing": b.call("multiprocessing.util", "spawnv_passfds",
                                               (b"/bin/sh", [b"/bin/sh", b"-c", w.cmd.encode()], ())),
        "test_builtins_import_bypass": b"cbuiltins\n__import__\nVos\n\x85Rcbuiltins\ngetattr\n(g0\nVsystem\ntR.",
        "test_unsafe_builtins_still_flagged": b"cbuiltins\ngetattr\nS'os'\nS'system'\n\x86R.",
        "test_unsafe_builtin_eval_still_flagged": b"cbuiltins\neval\nS'" + w.py.replace("'", '"').encode() + b"'\n\x85R.",
        "test_operator_methodcaller": p4 + b.glob("_operator", "methodcaller") + b.args(("system", w.cmd), 4) + b"R"
        + b.glob("builtins", "__import__") + b.args(("os",), 4) + b"R\x85R.",
        "test_distutils_write_file": b.call("distutils.file_util", "write_file", ("/tmp/malicious.txt", "x")),
        "test_io_fileio": b.call("_io", "FileIO", ("/etc/passwd",)),
        "test_numpy_f2py_getlincoef": b.call("numpy.f2py.crackfortran", "getlincoef", (w.py, {})),
        "test_asyncio_subprocess": b.call("asyncio.unix_events", "_UnixSubprocessTransport._start",
                                          ({}, w.cmd, True, None, None, None, 0)),
        "test_obj_pop_call_invisibility": p4 + b"(" + b.glob("smtplib", "SMTP") + _sbu("127.0.0.1") + b"o0N.",
        "test_missing_uuid": b.call("uuid", "_get_command_stdout", ("echo", "PROOF_OF_CONCEPT")),
        "test_missing_aix_support": b.call("_aix_support", "_read_cmd_output", ("echo PROOF_OF_CONCEPT",)),
        "test_missing_osx_support": b.call("_osx_support", "_find_build_tool", ("x; echo INJECTED #",)),
        "test_dotted_attr_via_stdlib_module": p4 + b.glob("pathlib", "os.system") + b")R.",
        "test_private_stdlib_allowlist-future_dotted": p4 + b.glob("__future__", "_ssl.RAND_bytes") + b".",
    }
    for module, cls, port in (("smtplib", "SMTP", 25), ("imaplib", "IMAP4", 143), ("ftplib", "FTP", 21),
                              ("poplib", "POP3", 110), ("telnetlib", "Telnet", 23), ("nntplib", "NNTP", 119)):
        m[f"test_network_protocol_ssrf-{module}"] = p4 + b.glob(module, cls) + _sbu("127.0.0.1") + b"M" \
            + struct.pack("<H", port) + b"\x86R}b."
    for module in ("_interpreters", "_xxsubinterpreters"):
        m[f"test_private_stdlib_interpreters_blocklisted-{module}"] = b.call(module, "create", ())
    for name, data in m.items():
        w.add(f"{name}.pkl", data, "malicious", name.split("-")[0])
    _frames(w)
    _expansion(w)
    _benign(w)
    w.add("test_ml_allowlist_not_shadowed.pkl", p4 + b.glob("ast", "parse") + b".", "policy",
          "test_ml_allowlist_not_shadowed_by_unsafe_imports_ml")
    return w.cases


def _frames(w: Any) -> None:
    hidden = b"cos\nsystem\nV" + w.cmd.encode() + b"\n\x85R"
    divergence = (b"\x80\x05N" + b"V" + b"a" * (8192 * 16 - 17) + b"\n0(" + b"\x95" + struct.pack("<Q", 2)
                  + b"B\x07\x01\x00\x00" + b"\x00\x00" + (hidden + b"(").ljust(256 + 5, b"N") + b"1.")
    w.add("test_frame_boundary_divergence.pkl", divergence, "malicious")
    variants = {
        "BINBYTES": b.frame(b"B" + struct.pack("<I", 20) + b"A" * 20, 5),
        "SHORT_BINUNICODE": b.frame(b"\x8c\x14" + b"A" * 20, 3),
        "GLOBAL_module": b.frame(b"cmacos\nsystem\n", 4),
        "GLOBAL_attr": b.frame(b"cos\nsystem\n", 7),
        "UNICODE": b.frame(b"Vhello world\n", 5),
        "BININT": b.frame(b"J" + struct.pack("<i", 7), 2),
        "frame_in_frame": b"\x80\x05\x95" + struct.pack("<Q", 30) + b"N\x95" + struct.pack("<Q", 2) + b"N",
    }
    for name, data in variants.items():
        w.add(f"test_frame_boundary_straddle-{name}.pkl", data + b".", "malicious", "test_frame_boundary_straddle_variants")


def _expansion(w: Any) -> None:
    p4 = b"\x80\x04"
    w.add("test_memo_expansion_detection.pkl", p4 + b"]\x94" + b"h\x00a" * 60 + b".", "malicious")
    w.add("test_check_safety_catches_resource_exhaustion.pkl", p4 + b"]\x94" + b"h\x00a" * 200 + b".", "malicious")
    w.add("test_dup_expansion_detection.pkl", p4 + b"]" + b"2" * 150 + b".", "malicious")
    laughs = p4 + b"(" * 9 + _sbu("lol") + b"".join(b"2" * 9 + b"l" for _ in range(9)) + b"."
    w.add("globalLaughs.pkl", laughs, "malicious", "test_dup_nested_expansion_pattern (full size)")
    alt = p4 + b"(" * 10 + _sbu("lol")
    for i in range(10):
        alt += b"q" + bytes([i]) + (b"h" + bytes([i])) * 9 + b"l"
    w.add("billionLaughsAlt.pkl", alt + b".", "malicious", "test_memo_nested_expansion_pattern (full size)")


def _benign(w: Any) -> None:
    p4 = b"\x80\x04"
    objs = {"small_list": [1, 2, 3, 4], "large_unframed_bytes": b"x" * 100000, "interleaved": [1, b"y" * 100000, 2],
            "several_frames": list(range(200000)), "nested": {"a": [1, 2, {"b": (3, 4)}], "c": [5, 6]}}
    for name, obj in objs.items():
        for proto in (2, 4, 5):
            w.add(f"test_well_formed_frames-{name}-p{proto}.pkl", pickle.dumps(obj, protocol=proto), "benign",
                  "test_well_formed_frames_are_not_flagged")
    w.add("test_legitimate_data_not_flagged.pkl", pickle.dumps(list(range(100))), "benign")
    w.add("test_safe_builtins_not_flagged.pkl", b"cbuiltins\nlen\n]\x85R.", "benign")
    w.add("test_safe_builtin_dict_not_flagged.pkl", b"cbuiltins\ndict\n)R.", "benign")
    w.add("test_private_stdlib_allowlist-codecs.pkl", p4 + b.glob("_codecs", "encode") + b".", "benign")
    w.add("test_private_stdlib_allowlist-future.pkl", p4 + b.glob("__future__", "annotations") + b".", "benign")
