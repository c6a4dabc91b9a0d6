"""A flood of anonymous requests with random model names costs the gateway bounded memory, metrics and storage.

10,000 unauthenticated predict requests (random names up to 2,000 characters, missing or garbage
credentials) from 8 loopback source addresses against a real ``bastion serve``. Stated bounds:
``/metrics`` grows by less than 4 KiB, the server's RSS by less than 12 MiB, and the audit log by at
most one ``refusal`` record per (reason, source) and window — while those records still add up to
every refused request.
"""

from __future__ import annotations

import os
import random
import socket
import string
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow

N_FLOOD = 10_000
SOURCES = [f"127.0.0.{i}" for i in range(2, 10)]
MAX_SOURCES = 5  # audit.refusal_max_sources: the other 3 addresses are counted under "*"
WINDOW_S = 2.0
METRICS_GROWTH_MAX = 4096
RSS_GROWTH_MAX = 12 << 20
NAME_CHARS = string.ascii_letters + string.digits + "._-"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _requests(rng: random.Random, n: int) -> bytes:
    out = []
    for _ in range(n):
        name = "".join(rng.choices(NAME_CHARS, k=rng.choice((8, 64, 500, 2000))))
        auth = rng.choice(("", "Authorization: Bearer bst_" + "".join(rng.choices(string.hexdigits, k=24)) + "_x\r\n",
                           "Authorization: Basic Zm9vOmJhcg==\r\n", "Authorization: Bearer a.b.c\r\n"))
        body = b'{"inputs": [[0.5, 0.5]]}'
        out.append(f"POST /v1/models/{name}/predict HTTP/1.1\r\nHost: gw\r\n{auth}Content-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return b"".join(out)


def _flood(port: int, source: str, n: int, seed: int) -> dict[int, int]:
    """Send ``n`` pipelined requests (batches of 100) on one keep-alive connection; count the statuses."""
    rng = random.Random(seed)
    statuses: dict[int, int] = {}
    with socket.create_connection(("127.0.0.1", port), source_address=(source, 0), timeout=30) as s:
        buf = b""
        for start in range(0, n, 100):
            k = min(100, n - start)
            s.sendall(_requests(rng, k))
            got = 0
            while got < k:
                head_end = buf.find(b"\r\n\r\n")
                if head_end < 0:
                    chunk = s.recv(1 << 16)
                    if not chunk:
                        raise AssertionError("the gateway closed the connection")
                    buf += chunk
                    continue
                head = buf[:head_end].decode("latin-1")
                length = next(int(h.split(":", 1)[1]) for h in head.split("\r\n") if h.lower().startswith("content-length"))
                while len(buf) < head_end + 4 + length:
                    buf += s.recv(1 << 16)
                status = int(head.split(" ", 2)[1])
                statuses[status] = statuses.get(status, 0) + 1
                buf = buf[head_end + 4 + length:]
                got += 1
    return statuses


def _refusal_records(db: str) -> list[dict[str, Any]]:
    import json
    import sqlite3

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT body FROM gateway_audit WHERE kind = 'refusal' ORDER BY seq").fetchall()
    return [json.loads(r[0]) for r in rows]


def _audit_rows(db: str) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM gateway_audit").fetchone()[0])


def test_anonymous_flood_costs_bounded_memory_metrics_and_storage(gw_home: Path, tmp_path: Path) -> None:
    from bastion.gateway.clients import create_client
    from bastion.store.db import upgrade

    upgrade()
    _, auditor = create_client("flood-auditor", "auditor", ["*"])
    cfg = tmp_path / "bastion.yaml"
    cfg.write_text(f"gateway:\n  log_requests: true\n  audit:\n    refusal_window_s: {WINDOW_S}\n"
                   f"    refusal_max_sources: {MAX_SOURCES}\n")
    port = _free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "bastion.cli.main", "serve", "--config", str(cfg), "--port",
                             str(port)], env={**os.environ, "BASTION_HOME": str(gw_home)}, stdout=log, stderr=log)
    db = str(gw_home / "bastion.db")
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.time() < deadline, "gateway did not start"
            time.sleep(0.2)
        metrics = {"Authorization": f"Bearer {auditor}"}
        warm = sum(_flood(port, src, 100, seed=i).get(401, 0) for i, src in enumerate(SOURCES))  # first series, allocations
        time.sleep(WINDOW_S + 1.5)  # the warm-up window is written
        m0 = len(httpx.get(f"{url}/metrics", headers=metrics).content)
        rss0, rows0, recs0 = _rss(proc.pid), _audit_rows(db), len(_refusal_records(db))

        from concurrent.futures import ThreadPoolExecutor

        t0 = time.monotonic()
        statuses: dict[int, int] = {}
        per = N_FLOOD // len(SOURCES)
        with ThreadPoolExecutor(len(SOURCES)) as ex:  # all sources at once: each window sees all 8
            for got in ex.map(lambda i: _flood(port, SOURCES[i], per, seed=100 + i), range(len(SOURCES))):
                for code, k in got.items():
                    statuses[code] = statuses.get(code, 0) + k
        flood_s = time.monotonic() - t0
        assert statuses == {401: N_FLOOD}, statuses
        time.sleep(WINDOW_S + 1.5)  # every window of the flood has closed and been written

        m1 = len(httpx.get(f"{url}/metrics", headers=metrics).content)
        rss1, rows1 = _rss(proc.pid), _audit_rows(db)
        recs = _refusal_records(db)[recs0:]
        windows = int(flood_s // WINDOW_S) + 2
        print(f"flood {N_FLOOD} in {flood_s:.1f} s; /metrics {m0} -> {m1} B; RSS {rss0 >> 20} -> {rss1 >> 20} MiB; "
              f"audit rows +{rows1 - rows0} ({len(recs)} refusal records over <= {windows} windows)")
        assert m1 - m0 < METRICS_GROWTH_MAX, (m0, m1)
        assert rss1 - rss0 < RSS_GROWTH_MAX, (rss0, rss1)
        assert rows1 - rows0 == len(recs) <= windows * (MAX_SOURCES + 1)
        # the aggregated records still account for every refused request, by source (overflow under "*")
        assert sum(r["count"] for r in recs) == N_FLOOD
        by_window: dict[float, set[str]] = {}
        for r in recs:
            by_window.setdefault(r["window_start"], set()).add(r["source"])
        assert all(len(srcs - {"*"}) <= MAX_SOURCES for srcs in by_window.values())
        assert "*" in {r["source"] for r in recs}
        assert {"missing", "malformed_header", "invalid_key", "jwt_disabled"} <= {p for r in recs for p in r["problems"]}
        assert all(len(x) <= 64 for r in recs for x in r["example_models"])
        assert warm == 100 * len(SOURCES)
        import re

        labels = re.findall(r'="([^"]*)"', httpx.get(f"{url}/metrics", headers=metrics).text)
        assert "unknown" in labels and max(len(v) for v in labels) <= 64  # no caller-chosen name became a label
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    assert (tmp_path / "serve.log").stat().st_size < 2 << 20  # no log line per anonymous request
