"""Supply-chain test corpus, generated once per session.

Malicious files cover every dangerous family and the published scanner bypasses; each payload
would only ``touch`` a marker file in the corpus directory, and the tests assert the marker
never appears. Benign files are ordinary torch / scikit-learn / numpy / ONNX / safetensors
artifacts that must raise nothing at high or above.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest


class _Reduce:
    """Pickles as ``func(*args)``: the classic __reduce__ payload."""

    def __init__(self, func: Callable[..., Any], *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return self.func, self.args


def _u(s: str) -> bytes:
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b  # SHORT_BINUNICODE


def _call_p4(module: str, name: str, arg: str) -> bytes:
    """Protocol-4 STACK_GLOBAL module/name called with one string argument."""
    return b"\x80\x04" + _u(module) + _u(name) + b"\x93" + _u(arg) + b"\x85R."


def _malicious(d: Path, marker: Path) -> dict[str, Path]:
    import cProfile
    import importlib
    import multiprocessing.util
    import pdb
    import pkgutil
    import runpy
    import socket
    import subprocess
    import timeit
    import webbrowser

    cmd = f"touch {marker}"
    py = f"import os; os.system({cmd!r})"
    out: dict[str, Path] = {}

    def dump(name: str, obj: Any, protocol: int = 4) -> None:
        out[name] = d / name
        out[name].write_bytes(pickle.dumps(obj, protocol=protocol))

    def raw(name: str, data: bytes) -> None:
        out[name] = d / name
        out[name].write_bytes(data)

    dump("os_system.pkl", _Reduce(os.system, cmd))
    dump("os_system_p0.pkl", _Reduce(os.system, cmd), protocol=0)
    dump("os_system_p2.pkl", _Reduce(os.system, cmd), protocol=2)
    dump("subprocess_popen.pkl", _Reduce(subprocess.Popen, ["touch", str(marker)]))
    dump("subprocess_check_output.pkl", _Reduce(subprocess.check_output, ["touch", str(marker)]))
    dump("builtins_eval.pkl", _Reduce(eval, py))
    dump("builtins_exec.pkl", _Reduce(exec, py))
    dump("builtins_import.pkl", _Reduce(__import__, "os"))
    dump("runpy_run_path.pkl", _Reduce(runpy.run_path, str(d / "x.py")))
    dump("importlib_import_module.pkl", _Reduce(importlib.import_module, "os"))
    dump("pkgutil_resolve_name.pkl", _Reduce(pkgutil.resolve_name, "os:system"))
    dump("timeit_timeit.pkl", _Reduce(timeit.timeit, py))
    dump("cprofile_run.pkl", _Reduce(cProfile.run, py))
    dump("pdb_run.pkl", _Reduce(pdb.run, py))
    dump("webbrowser_open.pkl", _Reduce(webbrowser.open, f"file://{marker}"))
    dump("socket_connection.pkl", _Reduce(socket.create_connection, ("127.0.0.1", 9)))
    dump("mp_spawnv_passfds.pkl", _Reduce(multiprocessing.util.spawnv_passfds, "/usr/bin/touch",
                                          ["touch", str(marker)], ()))
    raw("ctypes_cdll.pkl", _call_p4("ctypes", "CDLL", "libc.so.6"))
    # modelscan bypasses: attribute hops, dunder walks, memo-hidden names, runstring
    raw("numpy_runstring.pkl", b"cnumpy.testing._private.utils\nrunstring\n(V" + py.encode() + b"\n(dtR.")
    raw("torch_os_hop.pkl", _call_p4("torch", "os.system", cmd))
    raw("numpy_builtins_eval.pkl",
        b"\x80\x04" + _u("builtins") + _u("dict.get") + b"\x93" + _u("numpy") + _u("__builtins__") + b"\x93"
        + _u("eval") + b"\x86R" + _u(py) + b"\x85R.")
    raw("getattr_chain.pkl",
        b"\x80\x04" + _u("builtins") + _u("getattr") + b"\x93" + _u("builtins") + _u("__import__") + b"\x93"
        + _u("os") + b"\x85R" + _u("system") + b"\x86R" + _u(cmd) + b"\x85R.")
    raw("memo_hidden_global.pkl",
        b"\x80\x04" + _u("os") + b"\x94" + b"0" + b"h\x00" + _u("system") + b"\x93" + _u(cmd) + b"\x85R.")
    raw("inst_opcode.pkl", b"(V" + cmd.encode() + b"\nios\nsystem\n.")
    raw("obj_opcode.pkl", b"(cos\nsystem\nV" + cmd.encode() + b"\no.")
    raw("newobj_ex.pkl", b"\x80\x04" + _u("subprocess") + _u("Popen") + b"\x93" + _u("touch") + _u(str(marker))
        + b"\x86\x85}\x92.")
    raw("nested_loads.pkl", b"\x80\x04" + _u("pickle") + _u("loads") + b"\x93"
        + b"C" + bytes([len(pickle.dumps(_Reduce(os.system, cmd)))]) + pickle.dumps(_Reduce(os.system, cmd))
        + b"\x85R.")
    raw("payload_then_broken.pkl", pickle.dumps(_Reduce(os.system, cmd))[:-1] + b"\xff\xfe garbage")
    raw("unknown_callable.pkl", _call_p4("evil_pkg.hooks", "install", "x"))
    raw("build_on_class.pkl", b"\x80\x04" + _u("collections") + _u("OrderedDict") + b"\x93"
        + b"}" + _u("__reduce__") + b"N" + b"s" + b"b.")
    # containers and formats
    import joblib
    import torch

    torch.save({"w": torch.zeros(2), "hook": _Reduce(os.system, cmd)}, d / "torch_zip_evil.pt")
    out["torch_zip_evil.pt"] = d / "torch_zip_evil.pt"
    torch.save({"hook": _Reduce(os.system, cmd)}, d / "torch_legacy_evil.pt", _use_new_zipfile_serialization=False)
    out["torch_legacy_evil.pt"] = d / "torch_legacy_evil.pt"
    joblib.dump({"arr": np.zeros(10), "hook": _Reduce(os.system, cmd)}, d / "joblib_evil.joblib")
    out["joblib_evil.joblib"] = d / "joblib_evil.joblib"
    joblib.dump({"arr": np.zeros(10), "hook": _Reduce(os.system, cmd)}, d / "joblib_evil_z.joblib", compress=3)
    out["joblib_evil_z.joblib"] = d / "joblib_evil_z.joblib"
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = "ok", _Reduce(os.system, cmd)
    np.save(d / "object_array_evil.npy", arr, allow_pickle=True)
    out["object_array_evil.npy"] = d / "object_array_evil.npy"
    np.savez(d / "npz_evil.npz", a=np.zeros(3), b=arr)
    out["npz_evil.npz"] = d / "npz_evil.npz"
    with zipfile.ZipFile(d / "torchscript_evil.pt", "w") as zf:
        zf.writestr("m/code/__torch__/m.py", "def forward(self):\n  return 1\n")
        zf.writestr("m/constants.pkl", pickle.dumps(()))
        zf.writestr("m/data.pkl", pickle.dumps(_Reduce(os.system, cmd)))
    out["torchscript_evil.pt"] = d / "torchscript_evil.pt"
    with zipfile.ZipFile(d / "archive_evil.zip", "w") as zf:
        zf.writestr("model/readme.txt", "hello")
        zf.writestr("model/weights.pkl", pickle.dumps(_Reduce(os.system, cmd)))
    out["archive_evil.zip"] = d / "archive_evil.zip"
    with zipfile.ZipFile(d / "zip_traversal.zip", "w") as zf:
        zf.writestr("../../etc/cron.d/evil", "* * * * * root touch x\n")
    out["zip_traversal.zip"] = d / "zip_traversal.zip"
    with zipfile.ZipFile(d / "zip_bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (80 << 20))
    out["zip_bomb.zip"] = d / "zip_bomb.zip"
    with tarfile.open(d / "tar_evil.tar.gz", "w:gz") as tf:
        data = pickle.dumps(_Reduce(os.system, cmd))
        info = tarfile.TarInfo("pkg/model.pkl")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    out["tar_evil.tar.gz"] = d / "tar_evil.tar.gz"
    sub = d / "model_dir_evil" / "nested"
    sub.mkdir(parents=True)
    (sub / "blob.bin").write_bytes(pickle.dumps(_Reduce(os.system, cmd)))
    out["model_dir_evil"] = d / "model_dir_evil"
    # safetensors structure attacks
    hdr = json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}).encode()
    raw("st_overlap.safetensors", struct.pack("<Q", len(hdr)) + hdr + b"\0" * 12)
    hdr = json.dumps({"a": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}).encode()
    raw("st_out_of_bounds.safetensors", struct.pack("<Q", len(hdr)) + hdr + b"\0" * 16)
    raw("st_huge_header.safetensors", struct.pack("<Q", 1 << 40) + b'{"a": 1}')
    # onnx: external data escaping the directory, custom op domain
    import onnx
    from onnx import TensorProto, helper

    t = helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])
    t.data_location = TensorProto.EXTERNAL
    del t.float_data[:]
    t.external_data.add(key="location", value="../../../../etc/passwd")
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], [t])
    raw("onnx_external_escape.onnx", helper.make_model(g).SerializeToString())
    g2 = helper.make_graph([helper.make_node("Exploit", ["x"], ["y"], domain="evil.ops")], "g",
                           [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                           [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    m2 = helper.make_model(g2, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("evil.ops", 1)])
    raw("onnx_custom_domain.onnx", m2.SerializeToString())
    assert onnx.load_model_from_string(out["onnx_custom_domain.onnx"].read_bytes()).graph.node
    # keras: Lambda layers in .h5 and .keras
    import h5py

    cfg = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Dense", "config": {"units": 2}},
        {"class_name": "Lambda", "config": {"function": ["4wEAAAAAAAAA", None, None]}}]}}
    with h5py.File(d / "keras_lambda.h5", "w") as h5:
        h5.attrs["model_config"] = json.dumps(cfg)
    out["keras_lambda.h5"] = d / "keras_lambda.h5"
    with zipfile.ZipFile(d / "keras_lambda.keras", "w") as zf:
        zf.writestr("config.json", json.dumps(cfg))
        zf.writestr("metadata.json", "{}")
        zf.writestr("model.weights.h5", b"")
    out["keras_lambda.keras"] = d / "keras_lambda.keras"
    kcfg = {"class_name": "Functional", "config": {"layers": [
        {"module": "os", "class_name": "system", "config": {}, "registered_name": "system"}]}}
    with zipfile.ZipFile(d / "keras_module_os.keras", "w") as zf:
        zf.writestr("config.json", json.dumps(kcfg))
        zf.writestr("metadata.json", "{}")
    out["keras_module_os.keras"] = d / "keras_module_os.keras"
    return out


def _benign(d: Path) -> dict[str, Path]:
    import joblib
    import torch
    from safetensors.torch import save_file
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    out: dict[str, Path] = {}
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(2 * 6 * 6, 3), torch.nn.BatchNorm1d(3))
    x = torch.randn(2, 1, 8, 8)
    net.eval()
    for name, fn in {
        "state_dict.pt": lambda p: torch.save(net.state_dict(), p),
        "full_model.pt": lambda p: torch.save(net, p),
        "legacy_state_dict.pt": lambda p: torch.save(net.state_dict(), p, _use_new_zipfile_serialization=False),
        "optimizer.pt": lambda p: torch.save({"opt": torch.optim.Adam(net.parameters()).state_dict(),
                                              "epoch": 3, "model": net.state_dict()}, p),
        "torchscript.pt": lambda p: torch.jit.save(torch.jit.trace(net, x), p),
        "exported.pt2": lambda p: torch.export.save(torch.export.export(net, (x,)), p),
        "weights.safetensors": lambda p: save_file(net.state_dict(), p),
    }.items():
        fn(d / name)
        out[name] = d / name
    torch.onnx.export(net, (x,), d / "model.onnx", dynamo=False)
    out["model.onnx"] = d / "model.onnx"
    rng = np.random.RandomState(0)
    xs = np.c_[rng.rand(60, 3), rng.randint(0, 3, 60)]
    ys = (xs[:, 0] > 0.5).astype(int)
    ct = ColumnTransformer([("num", StandardScaler(), [0, 1, 2]), ("cat", OneHotEncoder(), [3])])
    gb = Pipeline([("ct", ct), ("gb", GradientBoostingClassifier(n_estimators=5, random_state=0))]).fit(xs, ys)
    rf = RandomForestClassifier(n_estimators=5, random_state=0).fit(xs, ys)
    lr = LogisticRegression().fit(xs, ys)
    joblib.dump(gb, d / "pipeline_gb.joblib")
    joblib.dump(rf, d / "random_forest.joblib", compress=3)
    joblib.dump(lr, d / "logreg_gz.joblib", compress=("gzip", 3))
    for n in ("pipeline_gb.joblib", "random_forest.joblib", "logreg_gz.joblib"):
        out[n] = d / n
    (d / "pipeline_gb.pkl").write_bytes(pickle.dumps(gb, protocol=5))
    out["pipeline_gb.pkl"] = d / "pipeline_gb.pkl"
    (d / "plain_p0.pkl").write_bytes(pickle.dumps({"a": [1, 2.5, "x"], "b": (None, True)}, protocol=0))
    out["plain_p0.pkl"] = d / "plain_p0.pkl"
    import argparse

    (d / "pipeline_gb_p2.pkl").write_bytes(pickle.dumps(gb, protocol=2))  # numpy data via _codecs.encode
    (d / "numpy_mix_p0.pkl").write_bytes(pickle.dumps({"x": rng.rand(3), "s": np.float32(1), "rs": rng,
                                                       "args": argparse.Namespace(lr=0.1)}, protocol=0))
    out["pipeline_gb_p2.pkl"], out["numpy_mix_p0.pkl"] = d / "pipeline_gb_p2.pkl", d / "numpy_mix_p0.pkl"
    np.save(d / "array.npy", rng.rand(4, 4))
    np.savez_compressed(d / "arrays.npz", a=rng.rand(3), b=np.arange(5))
    out["array.npy"], out["arrays.npz"] = d / "array.npy", d / "arrays.npz"
    return out


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """{"dir", "marker", "malicious": {name: path}, "benign": {name: path}}."""
    d = tmp_path_factory.mktemp("supply-chain-corpus")
    marker = d / "PWNED"
    mal = d / "malicious"
    ben = d / "benign"
    mal.mkdir()
    ben.mkdir()
    return {"dir": d, "marker": marker, "malicious": _malicious(mal, marker), "benign": _benign(ben)}


def _sibling(name: str) -> Any:
    """Import a helper module that sits beside this conftest (tests are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bastion_tests_{name}", Path(__file__).with_name(f"{name}.py"))
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def data_pickles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Real pandas/numpy/scikit-learn pickles (protocols 2-5, joblib) and gadgets abusing those libraries."""
    mod = _sibling("data_pickles")
    d = tmp_path_factory.mktemp("data-pickles")
    (d / "benign").mkdir()
    (d / "gadgets").mkdir()
    marker = d / "PWNED"
    return {"benign": mod.build_benign(d / "benign"), "gadgets": mod.build_gadgets(d / "gadgets", marker),
            "marker": marker}
