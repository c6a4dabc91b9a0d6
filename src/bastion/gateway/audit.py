"""The tamper-evident audit log: a hash chain in the store, with signed Merkle checkpoints.

Every record's ``hash`` is ``sha256`` over its canonical JSON (seq, ts, kind, actor, action, body)
and the previous record's hash, so changing, dropping or reordering any record breaks the chain
from that point on. Every ``checkpoint_every`` records (or ``checkpoint_interval_s`` seconds) the
writer signs the Merkle root of the new range with the gateway key (``bastion.artifacts.keys``);
``export`` hands out records with their inclusion proofs against a signed root.

Appends are group commits: every record waiting at that moment goes out in one transaction, and
in ``durable`` mode (the default) a request's response is sent only after the transaction that
holds its record has committed. On the gateway's event loop (``append_async``) the records of all
requests that reach the audit step in one loop iteration form a batch; on SQLite without
``fsync`` the batch is committed right there (one short write, no thread hand-off; the WAL is
checkpointed by the writer thread, not on the request path), otherwise — PostgreSQL, ``fsync:
true``, or the database busy with another process — the batch goes to the writer thread, which
commits everything queued in one transaction (one fsync per batch) and then wakes the waiting
requests. Both keep one raw DB-API connection open instead of checking one out per commit.
Without ``durable`` records are committed within ``batch_window_ms`` after the response. Several
processes (replicas) serialise appends with a database lock (``pg_advisory_xact_lock`` on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, func, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from bastion.gateway.audit_verify import (
    _C,
    _T,
    GENESIS,
    VerifyReport,
    canonical,
    checkpoint_message,
    export_records,
    record_hash,
    require_valid,
    verify_chain,
    verify_exported,
)
from bastion.store.db import get_engine

_LOCK_KEY = 0x6A7E_0A0D  # pg_advisory_xact_lock key of the gateway audit chain


@dataclass
class _Pending:
    kind: str
    actor: str
    action: str
    body: str
    ts: float
    future: Future[int] = field(default_factory=Future)
    marker: bool = False
    waiter: asyncio.Future[int] | None = None  # set for ``append_async``: resolved on its loop

    def resolve(self, seq: int | None, exc: BaseException | None) -> None:
        if exc is None:
            self.future.set_result(int(seq or 0))
        else:
            self.future.set_exception(exc)
        w = self.waiter
        if w is not None and not w.done():
            if exc is None:
                w.set_result(int(seq or 0))
            else:
                w.set_exception(exc)


def _resolve_all(items: list[_Pending], seqs: list[int] | None, exc: BaseException | None) -> None:
    for i, p in enumerate(items):
        p.resolve(seqs[i] if seqs is not None else None, exc)


def _lock_chain(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _with_retry(engine: Engine, fn: Any, attempts: int = 50) -> Any:
    delay = 0.002
    for attempt in range(attempts):
        try:
            with engine.connect() as conn:
                _lock_chain(conn)
                out = fn(conn)
                conn.commit()
                return out
        except (IntegrityError, OperationalError):
            if attempt == attempts - 1:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
    raise AssertionError("unreachable")


_COLS = ("seq", "ts", "kind", "actor", "action", "body", "prev_hash", "hash")


def append_records(engine: Engine, items: list[tuple[str, str, str, str, float]]) -> list[int]:
    """Append ``(kind, actor, action, body_json, ts)`` records atomically; returns their seq numbers."""
    appender = _Appender(engine)
    try:
        return appender.append_retrying(items)
    finally:
        appender.close()


class _Appender:
    """One raw DB-API connection that appends records: lock, read the chain's head, insert, commit.

    ``busy_timeout_ms=0`` (SQLite) makes a commit that would wait for another process fail at once
    (``OperationalError``) so the caller can hand the batch to the writer thread instead."""

    def __init__(self, engine: Engine, busy_timeout_ms: int | None = None, autocheckpoint: bool = True) -> None:
        self.engine = engine
        self.busy_timeout_ms = busy_timeout_ms
        self.autocheckpoint = autocheckpoint
        self._raw: Any = None
        self._dbapi: Any = None
        self._sql = ""

    def _connect(self) -> Any:
        if self._dbapi is None:
            raw = self.engine.raw_connection()
            dbapi: Any = raw.driver_connection
            if self.engine.dialect.name == "sqlite":
                dbapi.isolation_level = None  # explicit BEGIN IMMEDIATE / COMMIT below
                if self.busy_timeout_ms is not None:
                    dbapi.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
                if not self.autocheckpoint:
                    dbapi.execute("PRAGMA wal_autocheckpoint=0")
                marks = ", ".join("?" for _ in _COLS)
            else:
                marks = ", ".join(f"%({c})s" for c in _COLS)
            self._sql = f"INSERT INTO gateway_audit ({', '.join(_COLS)}) VALUES ({marks})"  # noqa: S608 - fixed
            self._raw, self._dbapi = raw, dbapi
        return self._dbapi

    def close(self) -> None:
        if self._raw is not None:
            try:
                self._raw.close()
            except Exception:  # noqa: S110 - closing a broken connection
                pass
        self._raw = self._dbapi = None

    def append(self, items: list[tuple[str, str, str, str, float]]) -> list[int]:
        db = self._connect()
        sqlite = self.engine.dialect.name == "sqlite"
        cur = db.cursor()
        try:
            if sqlite:
                cur.execute("BEGIN IMMEDIATE")
            else:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            cur.execute("SELECT seq, hash FROM gateway_audit ORDER BY seq DESC LIMIT 1")
            last = cur.fetchone()
            seq, prev = (int(last[0]), str(last[1])) if last else (0, GENESIS)
            rows: list[Any] = []
            seqs = []
            for kind, actor, action, body, ts in items:
                seq += 1
                h = record_hash(seq, ts, kind, actor, action, body, prev)
                vals = (seq, ts, kind, actor, action, body, prev, h)
                rows.append(vals if sqlite else dict(zip(_COLS, vals, strict=True)))
                seqs.append(seq)
                prev = h
            cur.executemany(self._sql, rows)
            if sqlite:
                cur.execute("COMMIT")
            else:
                db.commit()
            return seqs
        except BaseException:
            try:
                if sqlite:
                    if db.in_transaction:
                        cur.execute("ROLLBACK")
                else:
                    db.rollback()
            except Exception:  # the connection is gone: reconnect next time
                self.close()
            raise
        finally:
            try:
                cur.close()
            except Exception:  # noqa: S110
                pass

    def append_retrying(self, items: list[tuple[str, str, str, str, float]], attempts: int = 50) -> list[int]:
        delay = 0.002
        retry = _retryable(self.engine)
        for attempt in range(attempts):
            try:
                return self.append(items)
            except retry:
                if attempt == attempts - 1:
                    raise
                self.close()
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
        raise AssertionError("unreachable")

    def wal_checkpoint(self, restart_frames: int = 65536) -> None:
        """Copy the WAL into the database without blocking writers. Under sustained load a passive checkpoint
        never catches up with the writers, so the WAL would only grow: once it holds ``restart_frames``
        pages a RESTART checkpoint copies the short tail and makes the next writer start the WAL over."""
        if self.engine.dialect.name == "sqlite":
            db = self._connect()
            _, wal_frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if 0 < restart_frames <= wal_frames:
                db.execute("PRAGMA wal_checkpoint(RESTART)")


def write_checkpoint(engine: Engine, key_path: Path, min_records: int = 1) -> dict[str, Any] | None:
    """Sign the Merkle root of the records not yet under a checkpoint (if at least ``min_records``).

    The range is read and hashed outside the chain lock (records are immutable once committed, so a
    snapshot is final); only the insert of the checkpoint row takes the lock, after checking that no
    other writer checkpointed the same range meanwhile. Appends are never held up by the hashing."""
    from bastion.artifacts.keys import b64, load_private_key, public_key_fingerprint, sign_bytes
    from bastion.gateway.merkle import merkle_root

    key = load_private_key(key_path)
    key_id = public_key_fingerprint(key.public_key())
    for _ in range(5):
        with engine.connect() as conn:
            done = int(conn.execute(select(func.max(_C.c.last_seq))).scalar() or 0)
            rows = conn.execute(select(_T.c.seq, _T.c.hash).where(_T.c.seq > done).order_by(_T.c.seq)).all()
        if len(rows) < min_records or not rows:
            return None
        first, last_seq, last_hash = done + 1, int(rows[-1][0]), str(rows[-1][1])
        root = merkle_root([bytes.fromhex(r[1]) for r in rows]).hex()
        sig = b64(sign_bytes(key, checkpoint_message(first, last_seq, last_hash, root)))
        row = {"first_seq": first, "last_seq": last_seq, "last_hash": last_hash, "merkle_root": root,
               "signature": sig, "key_id": key_id, "ts": time.time()}

        def _do(conn: Connection, row: dict[str, Any] = row, done: int = done) -> bool:
            if int(conn.execute(select(func.max(_C.c.last_seq))).scalar() or 0) != done:
                return False  # another writer checkpointed meanwhile: start again from its end
            conn.execute(insert(_C), row)
            return True

        if _with_retry(engine, _do):
            return row
    return None


_audit_engines: dict[tuple[str, bool], Engine] = {}


def audit_engine(db_url: str | None, fsync: bool) -> Engine:
    """The engine the audit writer commits through.

    On SQLite a dedicated engine sets ``synchronous`` per connection: ``NORMAL`` (the default here)
    keeps a committed record through a gateway crash or ``kill -9`` — WAL commits reach the OS
    before ``COMMIT`` returns — while ``FULL`` (``audit.fsync: true``) also fsyncs each group commit
    so it survives power loss. PostgreSQL commits are fsynced by the server
    (``synchronous_commit``); the shared engine is used as is.
    """
    from sqlalchemy import create_engine, event

    from bastion.store.db import database_url

    url = database_url(db_url)
    if not url.startswith("sqlite"):
        return get_engine(url)
    key = (url, fsync)
    eng = _audit_engines.get(key)
    if eng is None:
        eng = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        mode = "FULL" if fsync else "NORMAL"

        @event.listens_for(eng, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={mode}")
            cur.close()

        _audit_engines[key] = eng
    return eng


def ensure_audit_key(key_path: Path) -> Path:
    """Create the gateway's checkpoint signing key on first use (0600)."""
    from bastion.artifacts.keys import generate_keypair

    if not key_path.exists():
        generate_keypair(key_path)
    return key_path


class AuditLog:
    """The per-process audit writer (group commit, durable by default, periodic checkpoints)."""

    def __init__(
        self,
        db_url: str | None = None,
        key_path: Path | None = None,
        durable: bool = True,
        batch_window_ms: float = 2.0,
        checkpoint_every: int = 1000,
        checkpoint_interval_s: float = 30.0,
        fsync: bool = False,
        wal_restart_pages: int = 65536,
    ) -> None:
        self.engine = audit_engine(db_url, fsync)
        self.wal_restart_pages = wal_restart_pages
        self.key_path = key_path
        self.durable = durable
        self.batch_window_s = batch_window_ms / 1000.0
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval_s = checkpoint_interval_s
        self._writer = _Appender(self.engine)
        sqlite = self.engine.dialect.name == "sqlite"
        self._inline = _Appender(self.engine, busy_timeout_ms=0, autocheckpoint=False) \
            if sqlite and not fsync else None
        self._q: queue.Queue[_Pending | list[_Pending] | None] = queue.Queue()
        self._commit_lock = threading.Lock()
        self._pending_lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._loop_batch: list[_Pending] = []
        self._flush_scheduled = False
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        self.commits = 0
        self.records = 0
        self._thread = threading.Thread(target=self._run, name="bastion-audit-writer", daemon=True)
        self._closed = False
        self._thread.start()
        if self._inline is not None:  # the inline connection never checkpoints the WAL: this thread does
            threading.Thread(target=self._checkpoint_wal, name="bastion-audit-wal", daemon=True).start()

    def submit(self, kind: str, actor: str, action: str, body: dict[str, Any]) -> Future[int]:
        """Queue a record; the future resolves to its seq once committed."""
        if self._closed:
            raise RuntimeError("audit log is closed")
        item = _Pending(kind, actor, action, canonical(body), time.time())
        self._q.put(item)
        return item.future

    def append(self, kind: str, actor: str, action: str, body: dict[str, Any]) -> int:
        """Append and return once committed (group commit led by the calling thread).

        The first caller to take the commit lock commits every record pending at that moment;
        callers whose record went out in that batch return without a commit of their own."""
        if self._closed:
            raise RuntimeError("audit log is closed")
        item = _Pending(kind, actor, action, canonical(body), time.time())
        with self._pending_lock:
            self._pending.append(item)
        with self._commit_lock:
            if not item.future.done():
                with self._pending_lock:
                    batch, self._pending = self._pending, []
                self._commit_records(batch)
        return item.future.result(timeout=0)

    async def append_async(self, kind: str, actor: str, action: str, body: dict[str, Any]) -> int:
        """Append from the event loop; returns (the seq) once the record's batch has committed."""
        if self._closed:
            raise RuntimeError("audit log is closed")
        loop = asyncio.get_running_loop()
        # The body is stored as the exact text that is hashed, so any stable encoding verifies; orjson with
        # sorted keys is the fast one (verification never re-encodes a stored body).
        item = _Pending(kind, actor, action, orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode(), time.time(),
                        waiter=loop.create_future())
        self._loop_batch.append(item)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush_loop_batch)  # after the other callbacks ready now: they join the batch
        assert item.waiter is not None
        return await item.waiter

    def _flush_loop_batch(self) -> None:
        batch, self._loop_batch = self._loop_batch, []
        self._flush_scheduled = False
        if not batch:
            return
        if self._inline is not None and self._commit_lock.acquire(blocking=False):
            try:
                seqs = self._inline.append([(p.kind, p.actor, p.action, p.body, p.ts) for p in batch])
            except _retryable(self.engine):
                pass  # busy with another process: the writer thread waits for it instead
            except Exception as exc:
                _resolve_all(batch, None, exc)
                return
            else:
                self._committed(len(batch))
                _resolve_all(batch, seqs, None)
                return
            finally:
                self._commit_lock.release()
        self._q.put(batch)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every record submitted so far is committed."""
        item = _Pending("", "", "", "", 0.0, marker=True)
        self._q.put(item)
        item.future.result(timeout=timeout)

    def _run(self) -> None:
        stop = False
        while not stop:
            try:
                first = self._q.get(timeout=min(self.checkpoint_interval_s, 1.0))
            except queue.Empty:
                self._maybe_checkpoint()
                continue
            batch: list[_Pending] = []
            if first is None:
                stop = True
            else:
                batch.extend(first if isinstance(first, list) else [first])
                if not self.durable and self.batch_window_s > 0:
                    time.sleep(self.batch_window_s)
            while len(batch) < 1024:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    continue
                batch.extend(nxt if isinstance(nxt, list) else [nxt])
            if batch:
                self._commit(batch)
            self._maybe_checkpoint(force=stop)
        self._writer.close()
        if self._inline is not None:
            with self._commit_lock:
                self._inline.close()

    def _commit(self, batch: list[_Pending]) -> None:
        markers = [p for p in batch if p.marker]
        batch = [p for p in batch if not p.marker]
        try:
            with self._commit_lock:
                self._commit_records(batch)
        finally:
            for m in markers:
                m.future.set_result(0)

    def _commit_records(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        try:
            seqs = self._writer.append_retrying([(p.kind, p.actor, p.action, p.body, p.ts) for p in batch])
        except Exception as exc:  # the request that waits on it answers 503
            self._settle(batch, None, exc)
            return
        self._committed(len(batch))
        self._settle(batch, seqs, None)

    @staticmethod
    def _settle(batch: list[_Pending], seqs: list[int] | None, exc: BaseException | None) -> None:
        """Resolve each record where its waiter lives: concurrent futures here, event-loop ones on their loop."""
        by_loop: dict[Any, list[int]] = {}
        for i, p in enumerate(batch):
            w = p.waiter
            if w is None:
                p.resolve(seqs[i] if seqs is not None else None, exc)
            else:
                by_loop.setdefault(w.get_loop(), []).append(i)
        for loop, idx in by_loop.items():
            items = [batch[i] for i in idx]
            part = [seqs[i] for i in idx] if seqs is not None else None
            try:
                loop.call_soon_threadsafe(_resolve_all, items, part, exc)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

    def _checkpoint_wal(self, every_s: float = 0.1) -> None:
        """Keep the WAL short from a thread of its own: a passive checkpoint every ``every_s`` (writers go on),
        and a restart once it has grown anyway (a few milliseconds' wait for writers, never on the event loop)."""
        wal = _Appender(self.engine)
        try:
            while not self._closed:
                time.sleep(every_s)
                try:
                    wal.wal_checkpoint(self.wal_restart_pages)
                except Exception:  # retried next time
                    wal.close()
        finally:
            wal.close()

    def _committed(self, n: int) -> None:
        self._since_checkpoint += n
        self.commits += 1
        self.records += n

    def _maybe_checkpoint(self, force: bool = False) -> None:
        if self.key_path is None or self._since_checkpoint == 0:
            return
        due = self._since_checkpoint >= self.checkpoint_every
        due = due or time.monotonic() - self._last_checkpoint >= self.checkpoint_interval_s
        if not (due or force):
            return
        try:  # outside the commit lock: appends go on while the range is hashed and signed
            write_checkpoint(self.engine, self.key_path)
        except Exception:  # a failed checkpoint is retried on the next round
            return
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()

    def close(self) -> None:
        """Flush queued records, write a final checkpoint, stop the writer."""
        if self._closed:
            return
        self._closed = True
        self._q.put(None)
        self._thread.join(timeout=30)


def _retryable(engine: Engine) -> tuple[type[BaseException], ...]:
    """Lock contention or a lost race, from SQLAlchemy or straight from the driver."""
    dbapi = engine.dialect.dbapi
    extra: tuple[type[BaseException], ...] = (dbapi.OperationalError, dbapi.IntegrityError) if dbapi else ()
    return (IntegrityError, OperationalError, *extra)


__all__ = ["GENESIS", "AuditLog", "VerifyReport", "append_records", "audit_engine", "canonical",
           "checkpoint_message", "ensure_audit_key", "export_records", "record_hash", "require_valid",
           "verify_chain", "verify_exported", "write_checkpoint"]
