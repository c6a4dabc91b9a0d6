"""Cases of modelscan's test suite (tests/test_modelscan.py fixtures), regenerated without TensorFlow.

Keras and TensorFlow files are rebuilt from their structure: ``.h5`` (``model_config`` attribute),
``.keras`` (zip with ``config.json``), SavedModel directories (``saved_model.pb`` with the graph
and function ops modelscan's ``MaliciousModule`` writes — ``ReadFile``/``WriteFile`` — and
``keras_metadata.pb`` with two ``Lambda`` layers). dill is not installed here, so the ``.dill``
variants are written as the plain pickles dill emits for these objects (dill subclasses pickle).
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

b: Any = None  # the helpers of _build.py, set by corpus._load() once this module is loaded

DENSE = {"class_name": "Dense", "config": {"name": "dense", "units": 1}}
LAMBDA = {"class_name": "Lambda", "config": {"name": "lambda", "function": ["4wEAAAAAAAAAAAAAAAEAAAADAAAA", None, None],
                                            "function_type": "lambda"}}
SAFE_TF_OPS = ["Placeholder", "VarHandleOp", "ReadVariableOp", "MatMul", "BiasAdd", "Identity", "SaveV2", "RestoreV2",
               "MergeV2Checkpoints", "StatefulPartitionedCall", "NoOp", "Const", "StringJoin", "ShardedFilename"]


def _model_config(layers: list[dict[str, Any]]) -> dict[str, Any]:
    return {"class_name": "Functional", "config": {"name": "model", "layers": layers}}


def cases(d: Path, marker: Path) -> list[Any]:
    w = b.Writer(d, "modelscan", marker)
    for p in (0, 3, 4):
        w.add(f"benign0_v{p}.pkl", pickle.dumps(["a", "b", "c"], protocol=p), "benign")
        w.add(f"malicious1_v{p}.pkl", b.call("builtins", "eval", (w.py,), p), "malicious")
        w.add(f"malicious2_v{p}.pkl", b.call("posix", "system", (w.cmd,), p), "malicious")
        w.add(f"benign0_v{p}.dill", pickle.dumps(["a", "b", "c"], protocol=p), "benign")
        w.add(f"malicious1_v{p}.dill", b.call("builtins", "eval", (w.py,), p), "malicious")
    w.add("malicious3.pkl", b.call("http.client", "HTTPSConnection", ("github.com",), 0), "malicious")
    w.add("malicious4.pickle", b.call("requests.api", "get", ("https://github.com",)), "malicious")
    w.add("malicious5.pickle", b.call("aiohttp.client", "ClientSession", ()), "malicious")
    w.add("malicious6.pkl", pickle.dumps(["a", "b", "c"]) + b.call("requests.api", "get", ("https://github.com",)),
          "malicious")
    w.add("malicious7.pkl", b.call("socket", "create_connection", (("github.com", 80),)), "malicious")
    w.add("malicious8.pkl", b.call("subprocess", "run", (["sh", "-c", w.cmd],)), "malicious")
    w.add("malicious9.pkl", b.call("sys", "exit", (0,)), "malicious")
    w.add("malicious10.pkl", b"(S'" + w.py.replace("'", '"').encode() + b"'\ni__builtin__\nexec\n.", "malicious")
    ctf = (b"Vos\np2\n0Vsystem\np3\n0Vtorch\np0\n0VLongStorage\np1\n0g2\ng3\n\x93(V" + w.cmd.encode()
           + b"\ntR.")
    w.add("malicious11.pkl", ctf, "malicious")
    inner = b"\x80\x05cos\nsystem\nV" + w.cmd.encode() + b"\n\x85R."
    w.add("malicious12.pkl", b"\x80\x05cpickle\nloads\nB" + len(inner).to_bytes(4, "little") + inner + b"\x85R0N.",
          "malicious")
    w.add("malicious13.pkl", b"\x80\x05cbuiltins\neval.__call__\nV" + w.py.encode() + b"\n\x85R.", "malicious")
    w.add("malicious14.pkl", ctf + b"\n\n\t\t", "malicious")
    w.add("malicious15.pkl", b"\x80\x04" + b.glob("bdb", "Bdb.run") + b"(" + b.glob("bdb", "Bdb") + b")\x81}bV"
          + w.py.encode() + b"\ntR.", "malicious")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("data.pkl", b.call("builtins", "eval", (w.py,)))
    w.add("test.zip", buf.getvalue(), "malicious")
    _torch_numpy(w)
    _keras_tf(w)
    return w.cases


def _torch_numpy(w: Any) -> None:
    import numpy as np
    import torch

    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    torch.save(net.state_dict(), w.path("safe_zip_pytorch.pt"))
    torch.save(net.state_dict(), w.path("safe_old_format_pytorch.pt"), _use_new_zipfile_serialization=False)
    w.add("safe_zip_pytorch.pt", None, "benign")
    w.add("safe_old_format_pytorch.pt", None, "benign")
    cmd = w.cmd

    class Payload:
        def __reduce__(self) -> Any:
            import os

            return os.system, (cmd,)

    torch.save({"state": net.state_dict(), "hook": Payload()}, w.path("unsafe_zip_pytorch.pt"))
    w.add("unsafe_zip_pytorch.pt", None, "malicious")
    w.add("bad_pytorch.pt", b"\211PNG\r\n\032\n", "unreadable", "bad_pytorch.pt (a PNG named .pt)")
    np.save(w.path("safe_numpy.npy"), [[1, 2, 3], [4, 5, 6]])
    w.add("safe_numpy.npy", None, "benign")
    # modelscan's generate_unsafe_pickle_file: exec injected in front of the pickled array
    array = pickle.dumps(np.array([[1, 2, 3], [4, 5, 6]]), protocol=4)
    w.add("unsafe_numpy.npy", array[:2] + b.glob("builtins", "exec") + b.args((w.py,), 4) + b"R0" + array[2:],
          "malicious")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("model.pkl", bytes(range(256)) * 4)
    locked = bytearray(buf.getvalue())
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        locked[locked.find(sig) + off] |= 0x1
    w.add("password_protected.zip", bytes(locked), "unreadable")


def _keras_tf(w: Any) -> None:
    import h5py

    from bastion.artifacts.scan.tensorflow import keras_metadata_bytes, saved_model_bytes

    for kind, layers in (("safe", [DENSE]), ("unsafe", [DENSE, LAMBDA, dict(LAMBDA, config={"name": "lambda_1"})])):
        cfg = json.dumps(_model_config(layers))
        with h5py.File(w.path(f"{kind}.h5"), "w") as h5:
            h5.attrs["model_config"] = cfg
            h5.attrs["keras_version"] = "2.15.0"
            h5.create_dataset("model_weights/dense/kernel", data=[[0.5]])
        w.add(f"{kind}.h5", None, "benign" if kind == "safe" else "malicious")
        with zipfile.ZipFile(w.path(f"{kind}.keras"), "w") as zf:
            zf.writestr("config.json", cfg)
            zf.writestr("metadata.json", json.dumps({"keras_version": "3.3.3"}))
            zf.writestr("model.weights.h5", b"")
        w.add(f"{kind}.keras", None, "benign" if kind == "safe" else "malicious")
        sm = w.path(f"saved_model_{kind}")
        (sm / "variables").mkdir(parents=True)
        (sm / "saved_model.pb").write_bytes(saved_model_bytes(SAFE_TF_OPS, ["MatMul", "Identity"], layers))
        (sm / "keras_metadata.pb").write_bytes(keras_metadata_bytes(layers))
        (sm / "fingerprint.pb").write_bytes(b"\x08\x81\x02\x10\x03")
        (sm / "variables" / "variables.data-00000-of-00001").write_bytes(bytes(range(64)))
        (sm / "variables" / "variables.index").write_bytes(b"\x00\x01" + bytes(30))
        w.add(f"saved_model_{kind}", None, "benign" if kind == "safe" else "malicious", f"keras SavedModel ({kind})")
    tf_dir = w.path("saved_model_tf_unsafe")  # modelscan's MaliciousModule: tf.io.read_file / write_file
    (tf_dir / "variables").mkdir(parents=True)
    (tf_dir / "saved_model.pb").write_bytes(saved_model_bytes(SAFE_TF_OPS, ["ReadFile", "WriteFile", "Identity"]))
    (tf_dir / "variables" / "variables.index").write_bytes(b"\x00\x01" + bytes(30))
    w.add("saved_model_tf_unsafe", None, "malicious", "tensorflow SavedModel with ReadFile/WriteFile")
    tf_safe = w.path("saved_model_tf_safe")
    (tf_safe / "variables").mkdir(parents=True)
    (tf_safe / "saved_model.pb").write_bytes(saved_model_bytes(SAFE_TF_OPS, ["MatMul", "Relu", "Identity"]))
    (tf_safe / "variables" / "variables.index").write_bytes(b"\x00\x01" + bytes(30))
    w.add("saved_model_tf_safe", None, "benign", "tensorflow SavedModel (dense model)")
