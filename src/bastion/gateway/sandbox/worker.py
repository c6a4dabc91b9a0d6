"""The model worker process: confine, load, then answer predict frames on its pipes.

Started by ``WorkerPool`` as ``python -m bastion.gateway.sandbox.worker``. The first frame on
stdin is the init (loader, model directory, file name, input spec, limits). The worker answers
``ready`` (with the confinement layers applied) or ``fatal``, then serves ``predict`` and
``describe`` frames one at a time. A model error becomes an ``ok: false`` reply; only a crash,
a signal or a hang (handled by the pool) ends the worker.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path
from typing import Any


def _load(loader: str, path: str, spec: dict[str, Any] | None) -> Any:
    mod_name, _, fn_name = loader.partition(":")
    fn = getattr(importlib.import_module(mod_name), fn_name)
    return fn(path, spec)


def main() -> int:
    # stdout carries frames only: anything the model prints goes to stderr.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    in_fd = 0
    import bastion
    from bastion.gateway.sandbox.protocol import (
        FrameError,
        FrameReader,
        array_payload,
        read_array,
        write_frame,
    )

    reader = FrameReader(in_fd)
    init, _ = reader.read()
    for p in init.get("sys_path", []):
        sys.path.insert(0, p)
    try:
        from bastion.gateway.sandbox.confine import confine

        conf = confine(Path(init["model_dir"]), network=init.get("network", "auto"),
                       memory_mb=int(init["memory_mb"]), cpu_s=int(init["cpu_s"]), nofile=int(init["nofile"]),
                       drop_privileges=bool(init.get("drop_privileges", True)))
        threads = int(init.get("threads", 1))
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import numpy as np

        model_path = str(Path(conf.model_path) / init["file_name"])
        model = _load(init["loader"], model_path, init.get("input_spec"))
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
        spec = model.input_spec
        write_frame(out_fd, {"op": "ready", "layers": conf.layers, "skipped": conf.skipped,
                             "input_spec": spec.to_dict(), "n_classes": int(model.n_classes), "pid": os.getpid(),
                             "model_path": model_path, "bastion_path": str(Path(bastion.__file__).parent)})
    except Exception as exc:
        write_frame(out_fd, {"op": "fatal", "error": type(exc).__name__, "message": str(exc)[:2000]})
        return 3

    while True:
        try:
            header, plen, _ = reader.read_header()
            op = header.get("op")
            if op == "predict":  # the input batch goes straight from the pipe into its array
                x = read_array(reader, plen, header.get("shape", [0]), np.float32, None)
            else:
                reader.skip(plen, None)
        except FrameError:
            return 0
        if op == "predict":
            try:
                proba = np.ascontiguousarray(model.predict_proba(x), dtype=np.float64)
                if proba.ndim != 2 or proba.shape[0] != x.shape[0]:
                    raise ValueError(f"model returned shape {proba.shape} for a batch of {x.shape[0]}")
                write_frame(out_fd, {"ok": True, "shape": list(proba.shape)}, array_payload(proba))
            except MemoryError:
                write_frame(out_fd, {"ok": False, "error": "MemoryError",
                                     "message": "the model exceeded the worker's memory limit"})
            except Exception as exc:
                tb = traceback.format_exc(limit=3)
                sys.stderr.write(tb)
                write_frame(out_fd, {"ok": False, "error": type(exc).__name__, "message": str(exc)[:500]})
        elif op == "ping":
            write_frame(out_fd, {"ok": True})
        else:
            write_frame(out_fd, {"ok": False, "error": "ProtocolError", "message": f"unknown op {op!r}"})


if __name__ == "__main__":
    sys.exit(main())
