"""The detectors' own process, so their numpy/scipy work never holds the serving process's GIL.

The serving process only forwards each observation: on the request thread itself, as one datagram on
a non-blocking ``SOCK_SEQPACKET`` socket pair (``DetectorProcess.offer``: a pickle of a few small arrays
and one ``send``; no other thread wakes up, no lock is taken), or — when the socket is full or the
observation is large — through the gateway's observer thread over a stream socket (``submit``). The child (a fresh
``python -m bastion.monitor.process``, so it shares no locks or threads with the server and never
re-runs the caller's ``__main__``, and works under daemonic server workers too) runs the ``DetectorHub``, sends back *findings* (a detector fired), answers
calls (``prepare``, ``snapshot``, ``flush``, ``sync``) in order with the observations, and, when
pooling is configured, pushes and merges replica state every ``pooling.sync_s`` seconds. Findings are
handled in the gateway process (incidents, playbooks), by the receiving thread, in order.

When squeezing is on, the child scores inputs with its *own* sandboxed worker of each served version
(``bastion.gateway.sandbox``), so the extra model calls never queue behind client requests.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from bastion.monitor.config import MonitorConfig

log = logging.getLogger("bastion.monitor")
MAX_DATAGRAM = 60_000  # larger observations go through the stream socket
DRAIN_S = 0.01  # the child collects datagrams every 10 ms: nobody waits on that socket, so a send wakes nobody


class MonitorProcessError(RuntimeError):
    """The detector process died or did not answer."""


def _sandbox_predictors(gateway_config: str) -> tuple[Callable[[str, str], Any], list[Any]]:
    """(model, version) → (predict_proba via a sandboxed worker, input shape, clip range)."""
    from bastion.core.model import InputSpec
    from bastion.gateway.config import GatewayConfig
    from bastion.gateway.registry import Registry
    from bastion.gateway.sandbox import WorkerPool
    from bastion.gateway.service import worker_spec

    cfg = GatewayConfig.model_validate_json(gateway_config)
    registry = Registry(cfg)
    pools: list[Any] = []

    def predictor_for(model: str, version: str) -> Any:
        from pathlib import Path

        info = registry.get(model, version) if version else registry.resolve(model, cfg.default_alias)
        path = Path(info.path)
        pool = WorkerPool(worker_spec(cfg, path.parent, path.name, info.input_spec), size=1).start()
        pools.append(pool)
        spec = InputSpec.from_dict(info.input_spec or {})
        lo = spec.clip_min if spec.clip_min is not None else 0.0
        hi = spec.clip_max if spec.clip_max is not None else 1.0
        return (lambda x: pool.predict(x, cfg.sandbox.timeout_s)), tuple(spec.shape), (float(lo), float(hi))

    return predictor_for, pools


def _child_main(conn: Any, packets: socket.socket, config: str, home: str, gateway_config: str | None,
                replica: str, redis_url: str | None, db_url: str | None) -> None:
    os.environ["BASTION_HOME"] = home
    from multiprocessing.connection import wait as wait_any

    from threadpoolctl import threadpool_limits

    from bastion.monitor.detectors import DetectorHub, Observation, sync_replicas
    from bastion.monitor.pooling import make_store

    threadpool_limits(limits=1)  # small matrices; BLAS threads would only compete with serving
    cfg = MonitorConfig.model_validate_json(config)
    if cfg.nice:  # serving comes first when the CPUs are busy (its sandboxed workers inherit this too)
        os.nice(cfg.nice)
        try:  # and a batch task never preempts a running server thread when it wakes up
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
        except (AttributeError, OSError):  # not Linux
            pass
    pools: list[Any] = []
    predictor_for = None
    if cfg.squeezing.enabled and gateway_config is not None:
        predictor_for, pools = _sandbox_predictors(gateway_config)
    p = cfg.pooling
    store = make_store(p.store, redis_url, db_url, p.key_prefix, p.stale_s)
    hub = DetectorHub(cfg, predictor_for, pooled=store is not None)
    next_sync = time.monotonic() + p.sync_s

    def sync() -> list[dict[str, Any]]:
        try:
            return sync_replicas(hub, store, replica) if store is not None else []
        except Exception:  # the shared store is down: local detectors keep working
            logging.getLogger("bastion.monitor").exception("replica pooling failed")
            return []

    packets.setblocking(False)

    def drain() -> None:  # every datagram already sent (``offer``), in order, in batches of up to 256
        more = True
        while more:
            batch: list[Observation] = []
            while len(batch) < 256:
                try:
                    data = packets.recv(MAX_DATAGRAM + 1024)
                except BlockingIOError:
                    more = False
                    break
                if not data:
                    raise EOFError
                try:
                    batch.append(Observation(*pickle.loads(data)))
                except Exception:  # never from our own gateway; skip rather than stop monitoring
                    log.exception("unreadable observation datagram (%d bytes)", len(data))
            found = hub.process_many(batch) if batch else []
            if found:
                conn.send(("findings", found))

    try:
        while True:
            wait = DRAIN_S if store is None else min(DRAIN_S, max(0.0, next_sync - time.monotonic()))
            ready = wait_any([conn], wait)
            drain()
            if conn in ready:
                msg = conn.recv()
                kind = msg[0]
                if kind == "obs":
                    found = hub.process(Observation(*msg[1]))
                    if found:
                        conn.send(("findings", found))
                elif kind == "call":
                    _, call_id, name, args = msg
                    drain()  # a call comes after every observation offered before it
                    try:
                        if name == "prepare":
                            result: Any = [m for m in args[0] if hub.prepare(m) is not None]
                        elif name == "snapshot":
                            result = {"models": hub.snapshot(), "stats": hub.stats()}
                        elif name == "sync":
                            found = sync()
                            if found:
                                conn.send(("findings", found))
                            result = len(found)
                        else:  # "flush": everything sent before it has been processed
                            result = None
                        conn.send(("reply", call_id, result, None))
                    except Exception as exc:
                        conn.send(("reply", call_id, None, f"{type(exc).__name__}: {exc}"))
                elif kind == "stop":
                    return
            if store is not None and time.monotonic() >= next_sync:
                next_sync = time.monotonic() + p.sync_s
                found = sync()
                if found:
                    conn.send(("findings", found))
    except (EOFError, OSError, KeyboardInterrupt):  # the gateway went away
        return
    finally:
        for pool in pools:
            pool.close()
        if store is not None:
            store.close()


class DetectorProcess:
    """Parent side of the detector process (see the module docstring)."""

    def __init__(self, config: MonitorConfig, on_findings: Callable[[list[dict[str, Any]]], None], *,
                 gateway_config: str | None = None, replica: str = "local", redis_url: str | None = None,
                 db_url: str | None = None) -> None:
        from multiprocessing.connection import Connection

        from bastion.core.paths import bastion_home

        mine, theirs = socket.socketpair()
        self._packets, their_packets = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        args = {"config": config.model_dump_json(), "home": str(bastion_home()), "gateway_config": gateway_config,
                "replica": replica, "redis_url": redis_url, "db_url": db_url}
        fds = [theirs.fileno(), their_packets.fileno()]
        self.proc = subprocess.Popen([sys.executable, "-m", "bastion.monitor.process", *map(str, fds)],
                                     pass_fds=fds, stdin=subprocess.PIPE)
        theirs.close()
        their_packets.close()
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(args).encode())
        self.proc.stdin.close()
        self._conn = Connection(mine.detach())
        self.on_findings = on_findings
        self.dropped = 0
        self._send_lock = threading.Lock()
        self._ids = itertools.count()
        self._pending: dict[int, list[Any]] = {}
        self._pending_lock = threading.Lock()
        self._dead = False
        self._rx = threading.Thread(target=self._receive, name="bastion-monitor-rx", daemon=True)
        self._rx.start()

    @property
    def alive(self) -> bool:
        return not self._dead and self.proc.poll() is None

    def offer(self, obs: tuple[Any, ...]) -> bool:
        """Send one observation without blocking (any thread); False if it must go through ``submit``."""
        if self._dead:
            self.dropped += 1
            return True
        data = pickle.dumps(obs, protocol=pickle.HIGHEST_PROTOCOL)
        if len(data) > MAX_DATAGRAM:
            return False
        try:
            self._packets.send(data, socket.MSG_DONTWAIT)
        except BlockingIOError:  # the detectors are behind: let the observer thread wait instead
            return False
        except OSError:
            self._dead = True
            self.dropped += 1
        return True

    def submit(self, obs: tuple[Any, ...]) -> None:
        """Forward one observation (called by the gateway's observer thread)."""
        if self._dead:
            self.dropped += 1
            return
        try:
            with self._send_lock:
                self._conn.send(("obs", obs))
        except (OSError, ValueError):
            self._dead = True
            self.dropped += 1

    def call(self, name: str, *args: Any, timeout: float = 120.0) -> Any:
        """Run ``name`` in the detector process after everything sent so far; its findings are handled first."""
        if self._dead:
            raise MonitorProcessError("the detector process is not running")
        call_id = next(self._ids)
        slot: list[Any] = [threading.Event(), None, None]
        with self._pending_lock:
            self._pending[call_id] = slot
        try:
            with self._send_lock:
                self._conn.send(("call", call_id, name, args))
        except (OSError, ValueError) as exc:
            self._dead = True
            raise MonitorProcessError(f"the detector process is not running ({exc})") from None
        if not slot[0].wait(timeout):
            with self._pending_lock:
                self._pending.pop(call_id, None)
            raise MonitorProcessError(f"the detector process did not answer {name!r} within {timeout:g} s")
        if slot[2] is not None:
            raise MonitorProcessError(slot[2])
        return slot[1]

    def _receive(self) -> None:
        while True:
            try:
                msg = self._conn.recv()
            except (EOFError, OSError):
                break
            if msg[0] == "findings":
                try:
                    self.on_findings(msg[1])
                except Exception:
                    log.exception("handling monitor findings failed")
            elif msg[0] == "reply":
                with self._pending_lock:
                    slot = self._pending.pop(msg[1], None)
                if slot is not None:
                    slot[1], slot[2] = msg[2], msg[3]
                    slot[0].set()
        self._dead = True
        with self._pending_lock:
            for slot in self._pending.values():
                slot[2] = "the detector process exited"
                slot[0].set()
            self._pending.clear()

    def close(self, timeout: float = 10.0) -> None:
        if not self._dead:
            try:
                with self._send_lock:
                    self._conn.send(("stop",))
            except (OSError, ValueError):
                pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._dead = True
        self._conn.close()
        self._packets.close()


def main() -> None:
    """``python -m bastion.monitor.process FD PACKET_FD``: the child; its arguments come as JSON on stdin."""
    from multiprocessing.connection import Connection

    args = json.loads(sys.stdin.read())
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    packets = socket.socket(fileno=int(sys.argv[2]))
    _child_main(Connection(int(sys.argv[1])), packets, **args)


if __name__ == "__main__":
    main()
