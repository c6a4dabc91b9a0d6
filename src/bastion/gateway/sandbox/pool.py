"""A pool of confined model workers with per-request timeouts and restart on crash or hang."""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bastion.gateway.sandbox.protocol import FrameError, FrameReader, FrameTimeout, write_frame

worker_log = logging.getLogger("bastion.gateway.worker")


class SandboxError(Exception):
    """Base of sandbox failures; ``status`` is the HTTP status the gateway answers with."""

    status = 502
    reason = "sandbox_error"


class ModelFailure(SandboxError):
    """The model raised (e.g. a blocked socket, a refused write, MemoryError)."""

    reason = "model_error"


class SandboxCrash(SandboxError):
    """The worker died (signal, CPU limit, abort); it is restarted."""

    reason = "worker_crashed"


class SandboxTimeout(SandboxError):
    """The model did not answer within the per-request timeout; the worker is killed and restarted."""

    status = 504
    reason = "timeout"


class PoolBusy(SandboxError):
    """No worker became free (or started) in time."""

    status = 503
    reason = "no_worker"


@dataclass(frozen=True)
class WorkerSpec:
    """How to start a worker for one model version."""

    model_dir: Path
    file_name: str
    input_spec: dict[str, Any] | None = None
    loader: str = "bastion.gateway.sandbox.loading:load_registered_model"
    memory_mb: int = 4096
    cpu_s: int = 3600
    nofile: int = 64
    network: str = "auto"
    drop_privileges: bool = True
    threads: int = 1
    sys_path: tuple[str, ...] = ()
    start_timeout_s: float = 120.0

    def init_frame(self) -> dict[str, Any]:
        return {"op": "init", "model_dir": str(self.model_dir), "file_name": self.file_name,
                "input_spec": self.input_spec, "loader": self.loader, "memory_mb": self.memory_mb,
                "cpu_s": self.cpu_s, "nofile": self.nofile, "network": self.network,
                "drop_privileges": self.drop_privileges, "threads": self.threads, "sys_path": list(self.sys_path)}


def _worker_env(threads: int) -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV", "TZ")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONUNBUFFERED": "1", "HOME": "/nonexistent"})
    return env


def _drain_stderr(proc: subprocess.Popen[bytes], model: str) -> None:
    """Forward a worker's stderr (model prints, tracebacks) to the gateway log, line by line."""
    assert proc.stderr is not None
    for raw in iter(proc.stderr.readline, b""):
        line = raw[:2000].decode("utf-8", "replace").rstrip()
        if line:
            worker_log.warning("%s", line, extra={"event": {"worker_pid": proc.pid, "model_file": model}})
    proc.stderr.close()


@dataclass
class SandboxWorker:
    """One worker process."""

    spec: WorkerSpec
    proc: subprocess.Popen[bytes] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    reader: FrameReader | None = None

    def start(self) -> SandboxWorker:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bastion.gateway.sandbox.worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True, env=_worker_env(self.spec.threads),
            cwd="/",
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        threading.Thread(target=_drain_stderr, args=(self.proc, self.spec.file_name), daemon=True,
                         name="bastion-worker-stderr").start()
        self.reader = FrameReader(self.proc.stdout.fileno())
        try:
            write_frame(self.proc.stdin.fileno(), self.spec.init_frame())
            header, _ = self.reader.read(timeout=self.spec.start_timeout_s)
        except (FrameError, FrameTimeout, OSError) as exc:
            self.kill()
            raise SandboxCrash(f"model worker failed to start: {type(exc).__name__} {exc}".strip()) from None
        if header.get("op") != "ready":
            self.kill()
            raise ModelFailure(f"model worker could not load the model: {header.get('error')}: "
                               f"{header.get('message')}")
        self.info = header
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass
        for fh in (self.proc.stdin, self.proc.stdout):  # stderr is closed by its drain thread
            if fh is not None:
                fh.close()

    def predict(self, x: np.ndarray, timeout: float) -> np.ndarray:
        assert self.proc is not None and self.proc.stdin is not None and self.reader is not None
        x = np.ascontiguousarray(x, dtype=np.float32)
        try:
            write_frame(self.proc.stdin.fileno(), {"op": "predict", "shape": list(x.shape)}, x.tobytes())
            header, payload = self.reader.read(timeout=timeout)
        except FrameTimeout:
            self.kill()
            raise SandboxTimeout(f"the model did not answer within {timeout:g} s; its worker was restarted") from None
        except (FrameError, OSError):
            code = self.proc.wait(timeout=5) if self.proc.poll() is None else self.proc.returncode
            self.kill()
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            raise SandboxCrash(f"the model worker died ({how}); it was restarted") from None
        if not header.get("ok"):
            raise ModelFailure(f"the model failed: {header.get('error')}: {header.get('message')}")
        return np.frombuffer(payload, dtype=np.float64).reshape(header["shape"])


class WorkerPool:
    """``size`` workers for one model version; a failed worker is replaced in the background."""

    def __init__(self, spec: WorkerSpec, size: int = 1) -> None:
        self.spec = spec
        self.size = size
        self._idle: queue.Queue[SandboxWorker] = queue.Queue()
        self._all: list[SandboxWorker] = []
        self._lock = threading.Lock()
        self._closed = False
        self.restarts = 0
        self.last_start_error: str | None = None

    def start(self) -> WorkerPool:
        """Start every worker (in parallel); raise if none starts."""
        errors: list[Exception] = []

        def _one() -> None:
            try:
                self._add(SandboxWorker(self.spec).start())
            except SandboxError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=_one) for _ in range(self.size)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors and len(errors) == self.size:
            raise errors[0]
        return self

    @property
    def info(self) -> dict[str, Any]:
        with self._lock:
            for w in self._all:
                if w.info:
                    return w.info
        return {}

    def _add(self, w: SandboxWorker) -> None:
        with self._lock:
            if self._closed:
                w.kill()
                return
            self._all.append(w)
        self._idle.put(w)

    def _replace(self, dead: SandboxWorker) -> None:
        with self._lock:
            if dead in self._all:
                self._all.remove(dead)
            self.restarts += 1
            if self._closed:
                return

        def _restart() -> None:
            for attempt in range(3):
                try:
                    self._add(SandboxWorker(self.spec).start())
                    return
                except SandboxError as exc:
                    self.last_start_error = str(exc)
                    time.sleep(0.5 * (attempt + 1))

        threading.Thread(target=_restart, name="bastion-worker-restart", daemon=True).start()

    def predict(self, x: np.ndarray, timeout: float) -> np.ndarray:
        """Class probabilities for ``x`` from a free worker (``SandboxError`` on failure)."""
        try:
            worker = self._idle.get(timeout=max(timeout, self.spec.start_timeout_s if not self._all else timeout))
        except queue.Empty:
            raise PoolBusy("no model worker became free in time") from None
        try:
            out = worker.predict(x, timeout)
        except (SandboxTimeout, SandboxCrash):
            self._replace(worker)
            raise
        except BaseException:
            if worker.alive:
                self._idle.put(worker)
            else:
                self._replace(worker)
            raise
        self._idle.put(worker)
        return out

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = list(self._all)
            self._all.clear()
        for w in workers:
            w.kill()
