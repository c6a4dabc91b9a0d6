"""A pool of confined model workers with per-request timeouts and restart on crash or hang.

Two ways in. ``predict`` (blocking, any thread) takes a free worker, sends the batch and waits.
``apredict`` (the gateway's event loop) never blocks: the worker's pipes are watched by the loop,
and requests that arrive while every worker is busy wait in a queue; when a worker comes free it
takes every queued request of its model version together, up to ``max_batch`` samples, as one
batch (``batching``), and each request gets its own rows back. No request waits for a batch to
fill. If a batch of several requests fails inside the model, each request is retried alone, so one
bad input fails only its own request; a worker that crashes or hangs fails the requests it held.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bastion.gateway.sandbox.protocol import (
    AsyncFrameReader,
    FrameError,
    FrameReader,
    FrameTimeout,
    advance,
    array_payload,
    frame_parts,
    read_array,
    write_frame,
)

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


def _nonblocking(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)


def _write_all(fd: int, parts: list[Any], deadline: float) -> None:
    """Write to a non-blocking pipe, waiting (until ``deadline``) while it is full."""
    views = [memoryview(p).cast("B") for p in parts if len(p)]
    while views:
        try:
            n = os.writev(fd, views)
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [fd], [], left)[1]:
                raise FrameTimeout() from None
            continue
        views = advance(views, n)


Done = Callable[[np.ndarray | None, "SandboxError | None"], None]


@dataclass
class SandboxWorker:
    """One worker process."""

    spec: WorkerSpec
    proc: subprocess.Popen[bytes] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    reader: FrameReader | None = None
    areader: AsyncFrameReader | None = None

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
        self.areader = AsyncFrameReader(self.proc.stdout.fileno())
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
        _nonblocking(self.proc.stdin.fileno())  # a worker that stops reading can never block the gateway
        _nonblocking(self.proc.stdout.fileno())
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is None:
            return
        loop = self._loop
        if loop is not None:
            if running_loop() is loop:
                self._unwatch()
            elif not loop.is_closed():
                loop.call_soon_threadsafe(self._unwatch)
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass
        for fh in (self.proc.stdin, self.proc.stdout):  # stderr is closed by its drain thread
            if fh is not None:
                try:
                    fh.close()
                except OSError:
                    pass

    def _crash(self) -> SandboxCrash:
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=5) if self.proc.poll() is None else self.proc.returncode
        except subprocess.TimeoutExpired:
            code = None
        self.kill()
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return SandboxCrash(f"the model worker died ({how}); it was restarted")

    @staticmethod
    def _result(header: dict[str, Any], proba: np.ndarray | None) -> np.ndarray:
        if not header.get("ok"):
            raise ModelFailure(f"the model failed: {header.get('error')}: {header.get('message')}")
        if proba is None or proba.dtype != np.float64 or proba.ndim != 2:
            raise ModelFailure("the model worker sent a malformed answer")
        return proba

    def predict(self, x: np.ndarray, timeout: float) -> np.ndarray:
        """Blocking round trip (any thread)."""
        assert self.proc is not None and self.proc.stdin is not None and self.reader is not None
        x = np.ascontiguousarray(x, dtype=np.float32)
        deadline = time.monotonic() + timeout
        try:
            _write_all(self.proc.stdin.fileno(), frame_parts({"op": "predict", "shape": list(x.shape)},
                                                             array_payload(x)), deadline)
            header, plen, _ = self.reader.read_header(max(deadline - time.monotonic(), 0.0))
            shape = header.get("shape")
            proba = None
            if plen and isinstance(shape, list):
                proba = read_array(self.reader, plen, shape, np.float64, deadline)
            else:
                self.reader.skip(plen, deadline)
        except FrameTimeout:
            self.kill()
            raise SandboxTimeout(f"the model did not answer within {timeout:g} s; its worker was restarted") from None
        except (FrameError, OSError, ValueError, TypeError):
            raise self._crash() from None
        return self._result(header, proba)

    def begin(self, x: np.ndarray, timeout: float, loop: asyncio.AbstractEventLoop, done: Done) -> None:
        """Start a round trip from the event loop; ``done(result, error)`` is called on the loop exactly once.

        The worker's stdout stays registered with the loop while the worker lives (one ``epoll_ctl`` per
        worker, not per request); its stdin is non-blocking, and a frame the pipe cannot take at once is
        finished when the loop says the pipe is writable."""
        assert self.proc is not None and self.proc.stdin is not None and self.areader is not None
        x = np.ascontiguousarray(x, dtype=np.float32)
        out_fd = self.proc.stdin.fileno()
        pending = advance([memoryview(p).cast("B") for p in frame_parts(
            {"op": "predict", "shape": list(x.shape)}, array_payload(x))], 0)

        def finish(result: np.ndarray | None, err: SandboxError | None) -> None:
            if self._done is None:
                return
            self._done = None
            timer.cancel()
            if pending:
                loop.remove_writer(out_fd)
            done(result, err)

        def on_timeout() -> None:
            self._unwatch()
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
            loop.run_in_executor(None, self.kill)
            finish(None, SandboxTimeout(f"the model did not answer within {timeout:g} s; its worker was restarted"))

        def push() -> bool:
            """Write what the pipe takes now; False if the worker is gone."""
            nonlocal pending
            try:
                pending = advance(pending, os.writev(out_fd, pending))
            except BlockingIOError:
                pass
            except OSError:
                self._crashed(loop)
                return False
            return True

        def on_writable() -> None:
            if push() and not pending:
                loop.remove_writer(out_fd)

        self._done = finish
        if self._loop is not loop:
            self._watch(loop)
        timer = loop.call_later(timeout, on_timeout)
        if push() and pending:
            loop.add_writer(out_fd, on_writable)

    _done: Callable[[np.ndarray | None, SandboxError | None], None] | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.areader is not None
        self._unwatch()
        self._loop = loop
        loop.add_reader(self.areader.fd, self._on_readable, loop)

    def _unwatch(self) -> None:
        if self._loop is not None and self.areader is not None:
            try:
                self._loop.remove_reader(self.areader.fd)
            except (ValueError, OSError, RuntimeError):  # fd already closed, loop closed
                pass
        self._loop = None

    def _on_readable(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            got = self.areader.feed() if self.areader is not None else None
        except (FrameError, OSError, ValueError, TypeError):
            self._crashed(loop)
            return
        if got is None:
            return
        finish = self._done
        if finish is None:  # a frame nobody asked for: the worker is not following the protocol
            self._crashed(loop)
            return
        header, proba = got
        try:
            finish(self._result(header, proba if header.get("shape") is not None else None), None)
        except ModelFailure as exc:
            finish(None, exc)

    def _crashed(self, loop: asyncio.AbstractEventLoop) -> None:
        self._unwatch()
        finish = self._done
        fut = loop.run_in_executor(None, self._crash)  # reaping may wait for the process: off the loop

        def report(f: asyncio.Future[SandboxCrash]) -> None:
            if finish is not None:
                finish(None, f.result() if f.exception() is None else SandboxCrash(
                    "the model worker died; it was restarted"))

        fut.add_done_callback(report)


@dataclass
class _Job:
    x: np.ndarray
    future: asyncio.Future[np.ndarray]
    timeout: float
    solo: bool = False
    timer: asyncio.TimerHandle | None = None


class WorkerPool:
    """``size`` workers for one model version; a failed worker is replaced in the background."""

    def __init__(self, spec: WorkerSpec, size: int = 1, *, batching: bool = True, max_batch: int = 256) -> None:
        self.spec = spec
        self.size = size
        self.batching = batching
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._idle: list[SandboxWorker] = []
        self._all: list[SandboxWorker] = []
        self._closed = False
        self._jobs: deque[_Job] = deque()  # event-loop side only
        self._loop: asyncio.AbstractEventLoop | None = None
        self.restarts = 0
        self.batches = 0
        self.batched_requests = 0
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
        with self._cond:
            for w in self._all:
                if w.info:
                    return w.info
        return {}

    def _add(self, w: SandboxWorker) -> None:
        with self._cond:
            if self._closed:
                w.kill()
                return
            self._all.append(w)
        self._release(w)

    def _release(self, w: SandboxWorker) -> None:
        with self._cond:
            if self._closed:
                return
            self._idle.append(w)
            self._cond.notify()
        loop = self._loop
        if loop is not None and self._jobs:
            try:
                if running_loop() is loop:
                    self._dispatch()
                else:
                    loop.call_soon_threadsafe(self._dispatch)
            except RuntimeError:  # the loop is closed
                pass

    def _replace(self, dead: SandboxWorker) -> None:
        with self._cond:
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

    # ------------------------------------------------------------------ blocking
    def predict(self, x: np.ndarray, timeout: float) -> np.ndarray:
        """Class probabilities for ``x`` from a free worker (``SandboxError`` on failure); blocks."""
        wait = timeout if self._all else max(timeout, self.spec.start_timeout_s)
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._idle) or self._closed, timeout=wait) or self._closed:
                raise PoolBusy("no model worker became free in time")
            worker = self._idle.pop()
        try:
            out = worker.predict(x, timeout)
        except (SandboxTimeout, SandboxCrash):
            self._replace(worker)
            raise
        except BaseException:
            if worker.alive:
                self._release(worker)
            else:
                self._replace(worker)
            raise
        self._release(worker)
        return out

    # ------------------------------------------------------------------ event loop
    async def apredict(self, x: np.ndarray, timeout: float) -> np.ndarray:
        """Like ``predict``, from the event loop, without blocking it (queued and batched while workers are busy)."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        job = _Job(np.ascontiguousarray(x, dtype=np.float32), loop.create_future(), timeout)
        self._jobs.append(job)
        self._dispatch()
        if not job.future.done():
            wait = timeout if self._all else max(timeout, self.spec.start_timeout_s)
            job.timer = loop.call_later(wait, self._expire, job)
        try:
            return await job.future
        finally:
            if job.timer is not None:
                job.timer.cancel()

    def _expire(self, job: _Job) -> None:
        try:
            self._jobs.remove(job)
        except ValueError:
            return  # already with a worker: the worker's own timeout applies
        if not job.future.done():
            job.future.set_exception(PoolBusy("no model worker became free in time"))

    def _dispatch(self) -> None:
        loop = self._loop
        while self._jobs and loop is not None:
            with self._cond:
                if not self._idle or self._closed:
                    return
                worker = self._idle.pop()
            batch = [self._jobs.popleft()]
            n = len(batch[0].x)
            while (self.batching and not batch[0].solo and self._jobs and not self._jobs[0].solo
                   and n + len(self._jobs[0].x) <= self.max_batch):
                job = self._jobs.popleft()
                batch.append(job)
                n += len(job.x)
            self._run(worker, batch, loop)

    def _run(self, worker: SandboxWorker, batch: list[_Job], loop: asyncio.AbstractEventLoop) -> None:
        if len(batch) > 1:
            self.batches += 1
            self.batched_requests += len(batch)
        x = batch[0].x if len(batch) == 1 else np.concatenate([j.x for j in batch])

        def done(proba: np.ndarray | None, err: SandboxError | None) -> None:
            if err is None and proba is not None and proba.shape[0] != len(x):
                err = ModelFailure(f"the model returned {proba.shape[0]} rows for a batch of {len(x)}")
            if err is None:
                assert proba is not None
                start = 0
                for job in batch:
                    rows = proba[start:start + len(job.x)]
                    start += len(job.x)
                    if not job.future.done():
                        job.future.set_result(rows)
            elif isinstance(err, ModelFailure) and len(batch) > 1:
                for job in reversed(batch):  # one bad input must not fail the others: each again, alone
                    job.solo = True
                    self._jobs.appendleft(job)
            else:
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(type(err)(str(err)))
            if isinstance(err, SandboxTimeout | SandboxCrash):
                self._replace(worker)
            elif err is None or worker.alive:  # it answered a frame: alive (no waitpid per request)
                self._release(worker)
            else:
                self._replace(worker)
            self._dispatch()

        worker.begin(x, max(j.timeout for j in batch), loop, done)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            workers = list(self._all)
            self._all.clear()
            self._idle.clear()
            self._cond.notify_all()
        for w in workers:
            w.kill()
        jobs, self._jobs = list(self._jobs), deque()

        def fail(job: _Job) -> None:
            if not job.future.done():
                job.future.set_exception(PoolBusy("the model pool was closed"))

        for job in jobs:
            if not job.future.get_loop().is_closed():
                job.future.get_loop().call_soon_threadsafe(fail, job)


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, if any."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
