"""Test models for the sandbox: each misbehaves in one way when predicting (numpy only, fast to start).

The gateway's ``sandbox.loader`` points here in tests; the behaviour is picked by the model's file
name (``socket.pt``, ``write.pt``, ``memory.pt``, ``hang.pt``, ``crash.pt``, ``benign.pt``; ``picky.pt``
fails only on inputs whose first value is above 0.9).
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from bastion.core.model import InputSpec


class HostileModel:
    def __init__(self, behaviour: str, spec: InputSpec, n_classes: int = 10) -> None:
        self.behaviour = behaviour
        self._spec = spec
        self._n = n_classes
        self.model_file = None

    @property
    def n_classes(self) -> int:
        return self._n

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        b = self.behaviour
        if b == "socket":
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.connect(("127.0.0.1", 5432))
        elif b == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect("/var/run/postgresql/.s.PGSQL.5432")
        elif b == "write":
            with open(os.path.join(os.path.dirname(self.model_file or "/tmp/x"), "stolen.txt"), "w") as fh:
                fh.write("exfiltrated")
        elif b == "writetmp":
            with open("/tmp/bastion-sandbox-escape.txt", "w") as fh:
                fh.write("exfiltrated")
        elif b == "memory":
            hog = np.ones((1 << 33,), dtype=np.uint8)  # 8 GiB
            return hog[:1]
        elif b == "hang":
            time.sleep(3600)
        elif b == "crash":
            os.kill(os.getpid(), 9)
        elif b == "picky" and (x.reshape(len(x), -1)[:, 0] > 0.9).any():
            raise ValueError("this model refuses inputs whose first value is above 0.9")
        flat = x.reshape(len(x), -1)
        logits = np.stack([flat.mean(axis=1) * (k + 1) for k in range(self._n)], axis=1)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def load(path: str, spec: dict[str, Any] | None) -> Any:
    """Hostile models by file name; anything else through Bastion's default loader."""
    stem = Path(path).stem
    if stem in {"socket", "unix", "write", "writetmp", "memory", "hang", "crash", "benign", "picky"}:
        m = HostileModel(stem, InputSpec.from_dict(spec) if spec else InputSpec(shape=(1, 8, 8), clip_min=0.0,
                                                                                 clip_max=1.0))
        m.model_file = path  # type: ignore[assignment]
        return m
    from bastion.gateway.sandbox.loading import load_registered_model

    return load_registered_model(path, spec)
