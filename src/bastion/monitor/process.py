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

import enum
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


class State(enum.Enum):
    """Where the detector child is (see ``transition`` for the moves between them)."""

    STARTING = "starting"  # building the hub: configuration, priority, sandboxed predictors, pooling store
    READY = "ready"  # waiting up to DRAIN_S (or until the next replica sync) for a message from the parent
    DRAINING = "draining"  # reading every datagram already offered, in batches of up to BATCH
    HANDLING = "handling"  # one message from the parent: an observation, a call or a stop request
    SYNCING = "syncing"  # the periodic push/merge of replica state (pooling only)
    STOPPED = "stopped"  # the parent asked to stop, or went away: resources closed, the process exits 0
    FAILED = "failed"  # an unexpected error left the loop: resources closed, the error propagates


class Event(enum.Enum):
    """What moves the child from one ``State`` to the next."""

    STARTED = "started"  # the hub is built
    TICK = "tick"  # the wait returned (message or timeout): collect the datagrams first
    DRAINED = "drained"  # no datagram left to read
    MESSAGE = "message"  # a message from the parent is readable
    HANDLED = "handled"  # that message was answered
    SYNC_DUE = "sync_due"  # ``pooling.sync_s`` has passed since the last sync
    SYNCED = "synced"
    STOP = "stop"  # the parent sent ("stop",)
    PARENT_GONE = "parent_gone"  # EOF, OSError or an empty datagram: the gateway went away
    ERROR = "error"  # any other exception (a malformed message, a broken detector hub)


TERMINAL = frozenset({State.STOPPED, State.FAILED})
_MOVES: dict[tuple[State, Event], State] = {
    (State.STARTING, Event.STARTED): State.READY,
    (State.READY, Event.TICK): State.DRAINING,
    (State.DRAINING, Event.DRAINED): State.READY,
    (State.READY, Event.MESSAGE): State.HANDLING,
    (State.HANDLING, Event.TICK): State.DRAINING,  # a call first drains what was offered before it
    (State.DRAINING, Event.HANDLED): State.HANDLING,  # ... then is answered
    (State.HANDLING, Event.HANDLED): State.READY,
    (State.HANDLING, Event.STOP): State.STOPPED,
    (State.READY, Event.SYNC_DUE): State.SYNCING,
    (State.HANDLING, Event.SYNC_DUE): State.SYNCING,  # the "sync" call
    (State.SYNCING, Event.SYNCED): State.READY,
    (State.SYNCING, Event.HANDLED): State.HANDLING,
}
BATCH = 256  # datagrams per ``process_many`` call


def transition(state: State, event: Event) -> State:
    """The child's next state; any live state ends on PARENT_GONE (STOPPED) or ERROR (FAILED)."""
    if state in TERMINAL:
        raise ValueError(f"the detector child is {state.value}: no {event.value} after that")
    if event is Event.PARENT_GONE:
        return State.STOPPED
    if event is Event.ERROR:
        return State.FAILED
    try:
        return _MOVES[(state, event)]
    except KeyError:
        raise ValueError(f"no {event.value} while {state.value}") from None


class ChildLoop:
    """The detector child's loop over its two inputs: ``conn`` (messages from the parent, answered in order)
    and ``packets`` (datagrams ``DetectorProcess.offer`` sent without waiting). Everything it does goes
    through ``hub``, ``conn.send`` and ``sync``, so a test drives it with fakes and no subprocess.

    ``sync`` (pooling only) pushes and merges replica state and returns findings; it is called every
    ``sync_s`` seconds of ``clock`` and on a "sync" call. ``wait(conns, timeout)`` returns the readable ones.
    """

    def __init__(self, hub: Any, conn: Any, packets: socket.socket, *, sync: Callable[[], list[dict[str, Any]]] | None = None,
                 sync_s: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 wait: Callable[[list[Any], float], list[Any]] | None = None) -> None:
        from multiprocessing.connection import wait as wait_any

        self.hub, self.conn, self.packets = hub, conn, packets
        self._sync, self.sync_s, self.clock = sync, sync_s, clock
        self._wait = wait or wait_any
        self.state = State.STARTING
        self.history: list[tuple[State, Event, State]] = []
        self.next_sync = clock() + sync_s
        packets.setblocking(False)
        self.fire(Event.STARTED)

    def fire(self, event: Event) -> State:
        before = self.state
        self.state = transition(before, event)
        self.history.append((before, event, self.state))
        return self.state

    def run(self) -> None:
        """Until a stop request or the parent is gone (STOPPED); any other error propagates (FAILED)."""
        try:
            while self.state not in TERMINAL:
                self.step()
        except (EOFError, OSError, KeyboardInterrupt):  # the gateway went away
            self.fire(Event.PARENT_GONE)
        except BaseException:
            self.fire(Event.ERROR)
            raise

    def step(self) -> None:
        """One turn: wait for the parent (at most DRAIN_S, less when a sync is due), read the datagrams,
        answer the message if one came, and sync when it is time."""
        wait = DRAIN_S if self._sync is None else min(DRAIN_S, max(0.0, self.next_sync - self.clock()))
        ready = self._wait([self.conn], wait)
        self.fire(Event.TICK)
        self.drain()
        self.fire(Event.DRAINED)
        if self.conn in ready:
            self.fire(Event.MESSAGE)
            self.handle(self.conn.recv())
        if self.state is State.READY and self._sync is not None and self.clock() >= self.next_sync:
            self.fire(Event.SYNC_DUE)
            self.next_sync = self.clock() + self.sync_s
            self._send_findings(self.sync())
            self.fire(Event.SYNCED)

    def drain(self) -> None:
        """Every datagram already sent (``offer``), in order, in batches of up to BATCH; an unreadable one
        is logged and skipped (never from our own gateway), an empty one means the parent is gone."""
        from bastion.monitor.detectors import Observation

        more = True
        while more:
            batch: list[Any] = []
            while len(batch) < BATCH:
                try:
                    data = self.packets.recv(MAX_DATAGRAM + 1024)
                except BlockingIOError:
                    more = False
                    break
                if not data:
                    raise EOFError
                try:
                    batch.append(Observation(*pickle.loads(data)))
                except Exception:
                    log.exception("unreadable observation datagram (%d bytes)", len(data))
            self._send_findings(self.hub.process_many(batch) if batch else [])

    def handle(self, msg: Any) -> None:
        """("obs", fields) | ("call", id, name, args) | ("stop",); other kinds are ignored."""
        from bastion.monitor.detectors import Observation

        kind = msg[0]
        if kind == "stop":
            self.fire(Event.STOP)
            return
        if kind == "obs":
            self._send_findings(self.hub.process(Observation(*msg[1])))
        elif kind == "call":
            _, call_id, name, args = msg
            self.fire(Event.TICK)
            self.drain()  # a call comes after every observation offered before it
            self.fire(Event.HANDLED)
            try:
                self.conn.send(("reply", call_id, self.answer(name, args), None))
            except Exception as exc:  # the call failed, or its result would not pickle: the caller gets why
                self.conn.send(("reply", call_id, None, f"{type(exc).__name__}: {exc}"))
        self.fire(Event.HANDLED)

    def answer(self, name: str, args: Any) -> Any:
        """The result of one call: ``prepare`` (the models whose detectors are ready), ``snapshot``,
        ``sync`` (its findings are sent first; the result is their count), ``flush`` (None: everything
        sent before it has been processed)."""
        if name == "prepare":
            return [m for m in args[0] if self.hub.prepare(m) is not None]
        if name == "snapshot":
            return {"models": self.hub.snapshot(), "stats": self.hub.stats()}
        if name == "sync":
            self.fire(Event.SYNC_DUE)
            try:
                found = self.sync()
                self._send_findings(found)
            finally:
                self.fire(Event.HANDLED)
            return len(found)
        return None

    def sync(self) -> list[dict[str, Any]]:
        """Replica pooling now; a down store is logged, not fatal."""
        if self._sync is None:
            return []
        try:
            return self._sync()
        except Exception:  # the shared store is down: local detectors keep working
            log.exception("replica pooling failed")
            return []

    def _send_findings(self, found: list[dict[str, Any]]) -> None:
        if found:
            self.conn.send(("findings", found))


def _lower_priority(nice: int) -> None:
    """Serving comes first when the CPUs are busy (the sandboxed workers inherit this too), and a batch task
    never preempts a running server thread when it wakes up."""
    os.nice(nice)
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux
        pass


def _child_main(conn: Any, packets: socket.socket, config: str, home: str, gateway_config: str | None,
                replica: str, redis_url: str | None, db_url: str | None) -> None:
    """STARTING: build the hub (and its sandboxed predictors and pooling store); then run the loop and,
    however it ends, close what STARTING opened."""
    os.environ["BASTION_HOME"] = home
    from threadpoolctl import threadpool_limits

    from bastion.monitor.detectors import DetectorHub, sync_replicas
    from bastion.monitor.pooling import make_store

    threadpool_limits(limits=1)  # small matrices; BLAS threads would only compete with serving
    cfg = MonitorConfig.model_validate_json(config)
    if cfg.nice:
        _lower_priority(cfg.nice)
    pools: list[Any] = []
    predictor_for = None
    if cfg.squeezing.enabled and gateway_config is not None:
        predictor_for, pools = _sandbox_predictors(gateway_config)
    p = cfg.pooling
    store = make_store(p.store, redis_url, db_url, p.key_prefix, p.stale_s)
    hub = DetectorHub(cfg, predictor_for, pooled=store is not None)
    sync = None if store is None else (lambda: sync_replicas(hub, store, replica))
    try:
        ChildLoop(hub, conn, packets, sync=sync, sync_s=p.sync_s).run()
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
