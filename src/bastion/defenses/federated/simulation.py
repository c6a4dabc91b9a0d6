"""Run a federated training simulation (Flower on Ray) and turn the result into a Bastion model.

The Flower simulation runs in a child process in its own process group, so a hung client or a
stuck Ray worker cannot hang the caller: the parent follows the rounds as they finish
(``rounds.jsonl``), stops everything after ``timeout_s`` and raises a ``BastionError`` that
names the failing client instead of hanging silently.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bastion.core.errors import BastionError, InvalidInputError
from bastion.core.target import DataSplits
from bastion.defenses.federated.config import FederatedConfig
from bastion.defenses.federated.privacy import privacy_statement


class FederatedError(BastionError):
    """A federated run failed: a client raised, or the simulation did not finish in time."""


@dataclass
class FederatedResult:
    module: nn.Module
    history: list[dict[str, Any]]
    record: dict[str, Any]
    duration_s: float = 0.0
    partition: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}


def run_federated(
    cfg: FederatedConfig,
    data: DataSplits,
    on_round: Callable[[dict[str, Any]], None] | None = None,
) -> FederatedResult:
    """Train ``cfg.arch`` across ``cfg.clients`` simulated clients; returns the global model."""
    from bastion.defenses.federated.flower_app import build_module, set_weights

    cfg.validate()
    if not (data.has_train and data.has_test):
        raise InvalidInputError("federated training needs x_train/y_train and x_test/y_test")
    assert data.x_train is not None and data.y_train is not None and data.x_test is not None and data.y_test is not None
    with tempfile.TemporaryDirectory(prefix="bastion-fl-") as tmp:
        work = Path(tmp)
        data_path = work / "data.npz"
        np.savez(data_path, x_train=np.asarray(data.x_train, np.float32), y_train=np.asarray(data.y_train, np.int64),
                 x_test=np.asarray(data.x_test, np.float32), y_test=np.asarray(data.y_test, np.int64))
        t0 = time.monotonic()
        (work / "config.json").write_text(json.dumps(cfg.to_dict()))
        log = (work / "child.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "bastion.defenses.federated.flower_app", str(work / "config.json"),
             str(data_path), str(work)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        seen = 0
        history: list[dict[str, Any]] = []
        try:
            while True:
                time.sleep(0.5)
                history = _read_rounds(work / "rounds.jsonl")
                for row in history[seen:]:
                    if on_round is not None and row["round"] > 0:
                        on_round(row)
                seen = len(history)
                failures = work / "failures.json"
                if failures.exists():
                    info = json.loads(failures.read_text())
                    raise FederatedError(f"federated round {info['round']} failed: " + "; ".join(info["failures"]))
                if proc.poll() is not None:
                    break
                if time.monotonic() - t0 > cfg.timeout_s:
                    raise FederatedError(
                        f"federated simulation did not finish within {cfg.timeout_s:.0f} s "
                        f"(last completed round: {history[-1]['round'] if history else 'none'}); stopped it"
                    )
        finally:
            _stop(proc)
            log.close()
        if not (work / "done.json").exists() or not (work / "weights.npz").exists():
            tail = (work / "child.log").read_text(errors="replace")[-1500:]
            raise FederatedError(
                f"federated simulation exited with code {proc.returncode} before finishing its rounds:\n{tail}")
        x_shape = tuple(int(s) for s in np.asarray(data.x_train).shape[1:])
        n_classes = int(max(np.max(data.y_train), np.max(data.y_test)) + 1)
        module = build_module(cfg, x_shape, n_classes)
        with np.load(work / "weights.npz", allow_pickle=False) as z:
            set_weights(module, [z[f"arr_{i}"] for i in range(len(z.files))])
        module.eval()
        part = json.loads((work / "partition.json").read_text())
    duration = time.monotonic() - t0
    record = {
        "kind": "federated",
        "framework": "flower (simulation, ray backend)",
        "config": cfg.to_dict(),
        "partition": part,
        "privacy": privacy_statement(cfg),
        "rounds": history,
        "final_accuracy": history[-1]["accuracy"] if history else None,
        "final_backdoor_success": history[-1]["backdoor_success"] if history else None,
        "duration_s": round(duration, 2),
    }
    return FederatedResult(module, history, record, duration, part)


def _read_rounds(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the child and everything in its process group (Ray workers included)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=5)
            break
        except subprocess.TimeoutExpired:
            continue


def save_federated_model(result: FederatedResult, out: str | Path, input_shape: tuple[int, ...],
                         clip: tuple[float | None, float | None], n_classes: int) -> Path:
    """TorchScript model + ``.bastion.json`` sidecar (input spec) + training record JSON."""
    from bastion.core.paths import atomic_write_text

    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.jit.save(torch.jit.script(result.module), str(tmp))
    os.replace(tmp, path)
    sidecar = {"input_shape": list(input_shape), "clip_min": clip[0], "clip_max": clip[1], "n_classes": n_classes}
    atomic_write_text(path.with_name(path.name + ".bastion.json"), json.dumps(sidecar, indent=2))
    atomic_write_text(path.with_name(path.name + ".training.json"), json.dumps(result.record, indent=2))
    return path
