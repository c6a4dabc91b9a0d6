"""Bounded load on a real `bastion serve`, kill -9 mid-load, restart: the log verifies and holds every 200."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(cfg: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "bastion.cli.main", "serve", "--config", str(cfg), "--port",
                             str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise AssertionError(f"gateway exited with {proc.returncode}")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("gateway did not become ready")


def test_kill_9_mid_load_loses_no_acknowledged_request(gw_home: Path, signer: tuple[Path, Path], digits_pt: Path,
                                                        gwt: Any, tmp_path: Path) -> None:
    from bastion.gateway.clients import create_client
    from bastion.gateway.registry import Registry
    from bastion.store.db import upgrade

    cfg = tmp_path / "bastion.yaml"
    cfg.write_text(f"gateway:\n  log_requests: false\n  sandbox:\n    loader: hostile_models:load\n"
                   f"    python_path: ['{gwt.here}']\n  registry:\n    trusted_keys: ['{signer[1]}']\n"
                   f"  budgets:\n    requests: 100000/minute\n    samples: 1000000/minute\n"
                   f"  audit:\n    checkpoint_every: 100\n    checkpoint_interval_s: 1\n")
    upgrade()
    Registry(gwt.make_config(registry={"trusted_keys": [str(signer[1])]})).push(
        gwt.signed_copy(digits_pt, gw_home / "src", "benign.pt", signer[0]), "load")
    _, key = create_client("loader", "client", ["load"])
    env = {**os.environ, "BASTION_HOME": str(gw_home)}
    port = _free_port()
    url = f"http://127.0.0.1:{port}/v1/models/load/predict"
    body = json.dumps({"inputs": np.full((1, 64), 0.5).tolist()})
    ok_ids: list[str] = []
    errors = [0]
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=5, headers={"Authorization": f"Bearer {key}",
                                              "Content-Type": "application/json"}) as c:
            while not stop.is_set():
                try:
                    r = c.post(url, content=body)
                except httpx.HTTPError:
                    errors[0] += 1
                    time.sleep(0.05)
                    continue
                if r.status_code == 200:
                    ok_ids.append(r.headers["X-Request-ID"])

    proc = _start(cfg, port, env)
    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(4)
    before_kill = len(ok_ids)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    proc = _start(cfg, port, env)
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert before_kill > 20 and len(ok_ids) > before_kill and errors[0] > 0

    verify = subprocess.run([sys.executable, "-m", "bastion.cli.main", "audit", "verify", "--config", str(cfg),
                             "--format", "json"], env=env, capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(verify.stdout)["ok"] is True
    from bastion.gateway.audit import export_records

    logged = {r["body"].get("request_id") for r in export_records() if r["body"].get("status") == 200}
    missing = [i for i in ok_ids if i not in logged]
    assert not missing, f"{len(missing)} acknowledged requests are not in the audit log"


def test_two_api_workers_share_one_metrics_view(gw_home: Path, signer: tuple[Path, Path], digits_pt: Path,
                                                gwt: Any, tmp_path: Path) -> None:
    from bastion.gateway.clients import create_client
    from bastion.gateway.registry import Registry
    from bastion.store.db import upgrade

    cfg = tmp_path / "bastion.yaml"
    cfg.write_text(f"gateway:\n  sandbox:\n    loader: hostile_models:load\n    python_path: ['{gwt.here}']\n"
                   f"  registry:\n    trusted_keys: ['{signer[1]}']\n")
    upgrade()
    Registry(gwt.make_config(registry={"trusted_keys": [str(signer[1])]})).push(
        gwt.signed_copy(digits_pt, gw_home / "src-mw", "benign.pt", signer[0]), "mw")
    _, key = create_client("mw-client", "client", ["mw"])
    _, auditor = create_client("mw-auditor", "auditor", ["*"])
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["BASTION_HOME"] = str(gw_home)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bastion.cli.main", "serve", "--config", str(cfg), "--port",
                             str(port), "--workers", "2"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        body = {"inputs": np.full((1, 64), 0.5).tolist()}
        n = 0
        for _ in range(12):  # fresh connections, so both API workers get some
            r = httpx.post(f"http://127.0.0.1:{port}/v1/models/mw/predict", json=body,
                           headers={"Authorization": f"Bearer {key}"}, timeout=60)
            assert r.status_code == 200, r.text
            n += 1
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {auditor}"},
                         timeout=10).text
        total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                    if line.startswith("bastion_requests_total{") and 'model="mw"' in line and 'status="200"' in line)
        assert total == n
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
