"""The detector child's state machine: each transition, driven with a fake hub and parent (no subprocess)."""

from __future__ import annotations

import pickle
import socket
from collections import deque
from typing import Any

import numpy as np
import pytest

from bastion.monitor.process import BATCH, ChildLoop, Event, State, transition


def _obs(client: str = "c", model: str = "m", i: int = 0) -> tuple[Any, ...]:
    return (client, model, "1", np.full((1, 2), float(i)), np.array([[0.5, 0.5]]), np.array([0]), float(i))


class FakeHub:
    """Records what the loop asked for; ``alarm_on`` makes an observation of that client a finding."""

    def __init__(self, alarm_on: str | None = None) -> None:
        self.alarm_on = alarm_on
        self.seen: list[tuple[str, Any]] = []
        self.batches: list[int] = []

    def _found(self, obs: list[Any]) -> list[dict[str, Any]]:
        return [{"client": o.client_id, "ts": o.ts} for o in obs if o.client_id == self.alarm_on]

    def process(self, obs: Any) -> list[dict[str, Any]]:
        self.seen.append(("process", obs.ts))
        return self._found([obs])

    def process_many(self, batch: list[Any]) -> list[dict[str, Any]]:
        self.batches.append(len(batch))
        self.seen += [("batch", o.ts) for o in batch]
        return self._found(batch)

    def prepare(self, model: str) -> object | None:
        if model == "broken":
            raise KeyError(model)
        return object() if model != "unknown" else None

    def snapshot(self) -> dict[str, Any]:
        return {"m": {"drift": 0.1}}

    def stats(self) -> dict[str, Any]:
        return {"events": len(self.seen)}


class FakeParent:
    """The parent's end of the message pipe: ``inbox`` is what the child will read, ``sent`` what it wrote.
    An empty inbox after ``hang_up`` reads as EOF, like a closed ``Connection``."""

    def __init__(self, *msgs: Any) -> None:
        self.inbox: deque[Any] = deque(msgs)
        self.sent: list[Any] = []
        self.gone = False

    def recv(self) -> Any:
        if not self.inbox:
            raise EOFError
        return self.inbox.popleft()

    def send(self, msg: Any) -> None:
        if self.gone:
            raise BrokenPipeError
        self.sent.append(msg)

    def wait(self, conns: list[Any], timeout: float) -> list[Any]:
        self.waits.append(timeout)
        return [self] if self.inbox or self.gone else []

    waits: list[float]


class QueuedPackets:
    """A datagram socket holding any number of datagrams (a real socket pair queues only a few)."""

    def __init__(self, *datagrams: bytes) -> None:
        self.queue = deque(datagrams)

    def setblocking(self, flag: bool) -> None:
        assert flag is False

    def recv(self, size: int) -> bytes:
        if not self.queue:
            raise BlockingIOError
        return self.queue.popleft()


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def packets():
    child, parent = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    yield child, parent
    child.close()
    parent.close()


def _loop(packets: tuple[socket.socket, socket.socket], parent: FakeParent, hub: FakeHub | None = None,
          **kw: Any) -> ChildLoop:
    parent.waits = []
    return ChildLoop(hub or FakeHub(), parent, packets[0], wait=parent.wait, **kw)


def _offer(packets: tuple[socket.socket, socket.socket], *obs: tuple[Any, ...]) -> None:
    for o in obs:
        packets[1].send(pickle.dumps(o))


# --- the transition function alone ---------------------------------------------------------------------


MOVES = [
    (State.STARTING, Event.STARTED, State.READY),
    (State.READY, Event.TICK, State.DRAINING),
    (State.DRAINING, Event.DRAINED, State.READY),
    (State.READY, Event.MESSAGE, State.HANDLING),
    (State.HANDLING, Event.HANDLED, State.READY),
    (State.HANDLING, Event.STOP, State.STOPPED),
    (State.READY, Event.SYNC_DUE, State.SYNCING),
    (State.SYNCING, Event.SYNCED, State.READY),
    # a call: drain what was offered before it, answer it (a "sync" call syncs on the way), back to READY
    (State.HANDLING, Event.TICK, State.DRAINING),
    (State.DRAINING, Event.HANDLED, State.HANDLING),
    (State.HANDLING, Event.SYNC_DUE, State.SYNCING),
    (State.SYNCING, Event.HANDLED, State.HANDLING),
]


@pytest.mark.parametrize(("state", "event", "after"), MOVES)
def test_transition_follows_the_documented_moves(state: State, event: Event, after: State) -> None:
    assert transition(state, event) is after


@pytest.mark.parametrize("state", [s for s in State if s not in (State.STOPPED, State.FAILED)])
def test_every_live_state_stops_when_the_parent_goes_and_fails_on_an_error(state: State) -> None:
    assert transition(state, Event.PARENT_GONE) is State.STOPPED
    assert transition(state, Event.ERROR) is State.FAILED


@pytest.mark.parametrize(("state", "event"), [(State.STOPPED, Event.TICK), (State.FAILED, Event.STARTED),
                                               (State.READY, Event.STARTED), (State.STARTING, Event.MESSAGE),
                                               (State.DRAINING, Event.STOP), (State.READY, Event.STOP)])
def test_impossible_moves_are_refused(state: State, event: Event) -> None:
    with pytest.raises(ValueError):
        transition(state, event)


# --- the loop, one behaviour at a time -----------------------------------------------------------------


def test_start_makes_the_loop_ready_and_sets_the_socket_non_blocking(packets) -> None:
    loop = _loop(packets, FakeParent())
    assert loop.state is State.READY
    assert loop.history == [(State.STARTING, Event.STARTED, State.READY)]
    assert packets[0].getblocking() is False


def test_an_idle_turn_waits_drain_s_and_stays_ready(packets) -> None:
    parent = FakeParent()
    loop = _loop(packets, parent)
    loop.step()
    assert loop.state is State.READY
    assert parent.waits == [0.01] and parent.sent == []
    assert [e for _, e, _ in loop.history[1:]] == [Event.TICK, Event.DRAINED]


def test_offered_datagrams_are_processed_in_order_in_batches_and_findings_sent() -> None:
    parent = FakeParent()
    parent.waits = []
    hub = FakeHub(alarm_on="bad")
    queued = QueuedPackets(*[pickle.dumps(_obs("bad" if i == 3 else "ok", i=i)) for i in range(BATCH + 10)])
    loop = ChildLoop(hub, parent, queued, wait=parent.wait)  # type: ignore[arg-type]
    loop.step()
    assert hub.batches == [BATCH, 10]
    assert [ts for _, ts in hub.seen] == [float(i) for i in range(BATCH + 10)]
    assert parent.sent == [("findings", [{"client": "bad", "ts": 3.0}])]
    assert loop.state is State.READY


def test_an_unreadable_datagram_is_skipped_and_monitoring_goes_on(packets, caplog) -> None:
    hub = FakeHub()
    loop = _loop(packets, FakeParent(), hub)
    packets[1].send(b"not a pickle")
    packets[1].send(pickle.dumps(("too", "few")))
    _offer(packets, _obs(i=7))
    loop.step()
    assert hub.seen == [("batch", 7.0)]
    assert loop.state is State.READY
    assert caplog.text.count("unreadable observation datagram") == 2


def test_an_observation_message_is_processed_and_its_findings_sent(packets) -> None:
    parent = FakeParent(("obs", _obs("bad", i=5)))
    hub = FakeHub(alarm_on="bad")
    loop = _loop(packets, parent, hub)
    loop.step()
    assert hub.seen == [("process", 5.0)]
    assert parent.sent == [("findings", [{"client": "bad", "ts": 5.0}])]
    assert loop.state is State.READY
    assert (State.READY, Event.MESSAGE, State.HANDLING) in loop.history


def test_a_call_is_answered_after_the_datagrams_offered_before_it(packets) -> None:
    parent = FakeParent()
    hub = FakeHub(alarm_on="bad")
    loop = _loop(packets, parent, hub)
    _offer(packets, _obs("bad", i=1))
    parent.inbox.append(("call", 9, "flush", ()))
    # the datagram arrives while the loop is handling the call: it must still be processed before the reply
    loop.step()
    assert parent.sent == [("findings", [{"client": "bad", "ts": 1.0}]), ("reply", 9, None, None)]
    _offer(packets, _obs("bad", i=2))
    hub_seen = len(hub.seen)
    loop.fire(Event.MESSAGE)
    loop.handle(("call", 10, "flush", ()))  # handled directly: the call's own drain reads the datagram
    assert len(hub.seen) == hub_seen + 1
    assert parent.sent[-2:] == [("findings", [{"client": "bad", "ts": 2.0}]), ("reply", 10, None, None)]


def test_calls_prepare_and_snapshot_and_an_error_reply(packets) -> None:
    parent = FakeParent(("call", 1, "prepare", (["m", "unknown"],)), ("call", 2, "snapshot", ()),
                        ("call", 3, "prepare", (["broken"],)))
    loop = _loop(packets, parent)
    for _ in range(3):
        loop.step()
    assert parent.sent == [("reply", 1, ["m"], None),
                           ("reply", 2, {"models": {"m": {"drift": 0.1}}, "stats": {"events": 0}}, None),
                           ("reply", 3, None, "KeyError: 'broken'")]
    assert loop.state is State.READY


def test_an_unknown_message_kind_is_ignored(packets) -> None:
    parent = FakeParent(("hello", 1))
    loop = _loop(packets, parent)
    loop.step()
    assert loop.state is State.READY and parent.sent == []


def test_a_stop_request_ends_the_loop_without_a_further_sync(packets) -> None:
    clock = Clock()
    synced: list[float] = []
    parent = FakeParent(("stop",), ("obs", _obs()))

    def sync() -> list[dict[str, Any]]:
        synced.append(clock.t)
        return []

    loop = _loop(packets, parent, sync=sync, sync_s=0.0, clock=clock)
    loop.run()
    assert loop.state is State.STOPPED
    assert loop.history[-1] == (State.HANDLING, Event.STOP, State.STOPPED)
    assert synced == [] and len(parent.inbox) == 1  # nothing after the stop is read


def test_the_parent_closing_the_pipe_stops_the_loop(packets) -> None:
    parent = FakeParent()
    parent.gone = True  # readable, but recv raises EOFError
    loop = _loop(packets, parent)
    loop.run()
    assert loop.state is State.STOPPED
    assert loop.history[-1][1] is Event.PARENT_GONE


def test_an_empty_datagram_means_the_parent_is_gone(packets) -> None:
    parent = FakeParent()
    loop = _loop(packets, parent)
    packets[1].shutdown(socket.SHUT_WR)  # the parent's socket closed: recv returns b""
    loop.run()
    assert loop.state is State.STOPPED


def test_findings_that_cannot_be_sent_stop_the_loop(packets) -> None:
    parent = FakeParent(("obs", _obs("bad")))
    parent.gone = True
    loop = _loop(packets, parent, FakeHub(alarm_on="bad"))
    loop.run()
    assert loop.state is State.STOPPED


def test_a_malformed_message_fails_the_loop_and_propagates(packets) -> None:
    parent = FakeParent(("call", 1, "flush"))  # a call without its arguments
    loop = _loop(packets, parent)
    with pytest.raises(ValueError):
        loop.run()
    assert loop.state is State.FAILED
    assert loop.history[-1][1] is Event.ERROR


def test_a_hub_exception_fails_the_loop_and_propagates(packets) -> None:
    class Broken(FakeHub):
        def process(self, obs: Any) -> list[dict[str, Any]]:
            raise RuntimeError("detector bug")

    loop = _loop(packets, FakeParent(("obs", _obs())), Broken())
    with pytest.raises(RuntimeError, match="detector bug"):
        loop.run()
    assert loop.state is State.FAILED


def test_periodic_sync_runs_every_sync_s_and_shortens_the_wait(packets) -> None:
    clock = Clock()
    parent = FakeParent()
    synced: list[float] = []

    def sync() -> list[dict[str, Any]]:
        synced.append(clock.t)
        return [{"pooled": clock.t}]

    loop = _loop(packets, parent, sync=sync, sync_s=5.0, clock=clock)
    clock.t = 104.995
    loop.step()
    assert synced == [] and parent.waits[-1] == pytest.approx(0.005)
    clock.t = 105.0
    loop.step()
    assert synced == [105.0] and parent.sent == [("findings", [{"pooled": 105.0}])]
    assert (State.READY, Event.SYNC_DUE, State.SYNCING) in loop.history
    assert loop.state is State.READY
    clock.t = 109.0
    loop.step()
    assert synced == [105.0]  # next one at 110
    clock.t = 110.0
    loop.step()
    assert synced == [105.0, 110.0]


def test_a_failing_store_is_logged_and_monitoring_goes_on(packets, caplog) -> None:
    clock = Clock()
    parent = FakeParent()

    def sync() -> list[dict[str, Any]]:
        raise ConnectionError("redis down")

    loop = _loop(packets, parent, sync=sync, sync_s=1.0, clock=clock)
    clock.t = 101.0
    loop.step()
    assert loop.state is State.READY and parent.sent == []
    assert "replica pooling failed" in caplog.text


def test_a_sync_call_sends_the_findings_then_their_count(packets) -> None:
    parent = FakeParent(("call", 4, "sync", ()))
    loop = _loop(packets, parent, sync=lambda: [{"a": 1}, {"b": 2}], sync_s=60.0, clock=Clock())
    loop.step()
    assert parent.sent == [("findings", [{"a": 1}, {"b": 2}]), ("reply", 4, 2, None)]
    assert loop.state is State.READY
    assert [(a.value, e.value, b.value) for a, e, b in loop.history[3:]] == [
        ("ready", "message", "handling"), ("handling", "tick", "draining"), ("draining", "handled", "handling"),
        ("handling", "sync_due", "syncing"), ("syncing", "handled", "handling"), ("handling", "handled", "ready")]


def test_a_sync_call_without_pooling_answers_zero(packets) -> None:
    parent = FakeParent(("call", 4, "sync", ()))
    loop = _loop(packets, parent)
    loop.step()
    assert parent.sent == [("reply", 4, 0, None)]


def test_a_result_that_does_not_pickle_becomes_an_error_reply(packets) -> None:
    class Picky(FakeParent):
        def send(self, msg: Any) -> None:
            pickle.dumps(msg)
            super().send(msg)

    class Odd(FakeHub):
        def snapshot(self) -> dict[str, Any]:
            return {"m": lambda: None}

    parent = Picky(("call", 5, "snapshot", ()))
    loop = _loop(packets, parent, Odd())
    loop.step()
    assert len(parent.sent) == 1 and parent.sent[0][:3] == ("reply", 5, None)
    assert "pickle" in parent.sent[0][3].lower()
    assert loop.state is State.READY
