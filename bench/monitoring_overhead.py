"""What monitoring costs a request: gateway latency over real HTTP on 127.0.0.1, with and without the monitor.

One gateway process per mode, each with its own copy of the same state (signed digits demo model,
client key, monitoring reference), all started before measuring and idle while another is measured:

- ``off``      no monitoring;
- ``process``  the default: detectors in their own process, the server only forwards each observation;
- ``thread``   ``monitoring.process: false``: detectors in the server's observer thread (shares its GIL);
- ``squeeze``  ``process`` plus the feature-squeezing score (one extra sandboxed model call per request,
               in the monitor's own worker).

Requests go one at a time over a keep-alive connection, in interleaved blocks (off, process, thread,
squeeze, off, …), so slow phases of a shared machine hit every mode alike. Detectors are calibrated
and warmed up before timing. Printed per mode: p50/p95/p99/mean latency, the p99 added vs ``off``,
the detectors' own cost per event, alerts raised (should be none: clean traffic), observations dropped,
CPU seconds of each server process tree, and the 1-minute load average before and after.

    .venv/bin/python bench/monitoring_overhead.py [--requests 2000] [--blocks 40] [--modes off,process,thread]

``--handoff N`` measures instead, in one process, what the request path itself executes for monitoring
(``GatewayService._notify``: build and forward one observation) N times, paced at one per ms, and the
serving process's CPU per observation (which, in ``thread`` mode, includes the detectors).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

MODES = ("off", "process", "thread", "squeeze")


def _setup(home: Path) -> str:
    """Signed model in the registry, a client key and the monitoring reference; returns the key."""
    os.environ["BASTION_HOME"] = str(home)
    from bastion.artifacts.keys import generate_keypair
    from bastion.artifacts.signing import sign_model
    from bastion.datasets import load_demo_data
    from bastion.gateway.clients import create_client
    from bastion.gateway.config import GatewayConfig
    from bastion.gateway.registry import Registry
    from bastion.models.zoo import demo_model_path
    from bastion.monitor.service import capture_reference
    from bastion.store.db import dispose_engines, upgrade

    s = load_demo_data("digits").splits
    assert s.x_train is not None
    priv, pub = generate_keypair(home / "signer")
    model = home / "digits.pt"
    shutil.copyfile(demo_model_path("digits"), model)
    model.with_name(model.name + ".bastion.json").write_text('{"input_shape": [1, 8, 8], "clip_min": 0, "clip_max": 1}')
    sign_model(model, priv)
    upgrade()
    Registry(GatewayConfig.model_validate({"registry": {"trusted_keys": [str(pub)]}})).push(
        model, "digits", "1", keys=[pub], promote=True)
    capture_reference("digits", s.x_train)
    _, key = create_client("bench", models=["digits"], budget={"requests": "1000000/minute",
                                                               "samples": "1000000/minute"})
    (home / "trusted.pub").write_bytes(pub.read_bytes())
    dispose_engines()
    return key


def serve(mode: str, port: int) -> None:
    """One gateway (``--serve``): uvicorn in a thread; the main thread takes commands on stdin."""
    import uvicorn

    from bastion.gateway.app import create_app
    from bastion.gateway.config import GatewayConfig
    from bastion.monitor.config import MonitorConfig
    from bastion.monitor.service import attach_monitoring

    home = Path(os.environ["BASTION_HOME"])
    app = create_app(GatewayConfig.model_validate({"registry": {"trusted_keys": [str(home / "trusted.pub")]}}),
                     apply_migrations=False, preload=False)
    monitor = None
    if mode != "off":
        monitor = attach_monitoring(app.state.service, MonitorConfig.model_validate(
            {"process": mode != "thread", "squeezing": {"enabled": mode == "squeeze"}}))
        monitor.prepare(["digits"])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, timeout_keep_alive=3600,
                                           lifespan="on"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    while not server.started:
        time.sleep(0.05)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "stats":
            out: dict[str, Any] = {"mode": mode}
            if monitor is not None:
                out["flushed"] = monitor.flush(120.0)
                snap = monitor.snapshot()
                out.update(alerts=len(snap["alerts"]), process=snap["process"])
            print(json.dumps(out), flush=True)
        elif cmd == "quit":
            break
    server.should_exit = True
    th.join(30)


def handoff(n: int) -> None:
    from bastion.datasets import load_demo_data
    from bastion.gateway.app import create_app
    from bastion.gateway.config import GatewayConfig
    from bastion.gateway.service import PredictEvent
    from bastion.monitor.config import MonitorConfig
    from bastion.monitor.service import attach_monitoring

    home = Path(tempfile.mkdtemp(prefix="bastion-mon-handoff-"))
    _setup(home)
    app = create_app(GatewayConfig.model_validate({"registry": {"trusted_keys": [str(home / "trusted.pub")]}}),
                     preload=False)
    service = app.state.service
    x = load_demo_data("digits").splits.x_test
    assert x is not None
    proba = np.full((1, 10), 0.01)
    proba[0, 3] = 0.91
    print(f"request-path hand-off, {n} observations paced at 1 per ms; 1-min load average {os.getloadavg()[0]:.2f}")
    for mode in ("process", "thread"):
        monitor = attach_monitoring(service, MonitorConfig.model_validate({"process": mode == "process"}))
        monitor.prepare(["digits"])
        times = []
        cpu0 = time.process_time()
        for i in range(n):
            ev = PredictEvent("bench", "digits", "1", x[i % len(x)][None], proba, np.array([3]), 0.001, str(i))
            t0 = time.perf_counter()
            service._notify(ev)
            times.append(time.perf_counter() - t0)
            time.sleep(0.001)
        assert monitor.flush(120)
        cpu = time.process_time() - cpu0 - 0.0
        a = np.asarray(times) * 1e6
        print(f"{mode:8} hand-off p50 {np.percentile(a, 50):.1f} µs, p99 {np.percentile(a, 99):.1f} µs, "
              f"max {a.max():.0f} µs; serving-process CPU {cpu / n * 1e3:.3f} ms per observation "
              f"(incl. the loop's own overhead); events {monitor.snapshot()['process']['detectors'].get('events')}")
        service.observers.remove(monitor)
        monitor.close()
    service.close()
    shutil.rmtree(home, ignore_errors=True)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000, help="timed requests per mode")
    ap.add_argument("--blocks", type=int, default=40)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--serve", choices=MODES)
    ap.add_argument("--port", type=int)
    ap.add_argument("--handoff", type=int, default=0, help="measure the request-path hand-off N times instead")
    args = ap.parse_args()
    if args.handoff:
        handoff(args.handoff)
        return
    if args.serve:
        serve(args.serve, args.port)
        return
    modes = [m for m in args.modes.split(",") if m]
    assert modes[0] == "off" and set(modes) <= set(MODES), f"modes must start with off and be among {MODES}"
    work = Path(tempfile.mkdtemp(prefix="bastion-mon-bench-"))
    key = _setup(work / "base")
    from bastion.datasets import load_demo_data

    x_test = load_demo_data("digits").splits.x_test
    assert x_test is not None
    servers: dict[str, tuple[subprocess.Popen[str], int]] = {}
    conns: dict[str, http.client.HTTPConnection] = {}
    try:
        for mode in modes:
            home = work / mode
            shutil.copytree(work / "base", home, symlinks=True)
            port = _free_port()
            env = {**os.environ, "BASTION_HOME": str(home)}
            proc = subprocess.Popen([sys.executable, __file__, "--serve", mode, "--port", str(port)], env=env,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            servers[mode] = (proc, port)
        for mode, (proc, port) in servers.items():
            assert proc.stdout is not None
            assert json.loads(proc.stdout.readline()).get("ready"), f"{mode} server did not start"
            conns[mode] = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        hdr = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        rng = np.random.default_rng(0)

        def request(mode: str) -> float:
            body = json.dumps({"inputs": x_test[rng.integers(0, len(x_test), 1)].tolist()})
            t0 = time.perf_counter()
            conns[mode].request("POST", "/v1/models/digits/predict", body=body, headers=hdr)
            resp = conns[mode].getresponse()
            resp.read()
            dt = time.perf_counter() - t0
            assert resp.status == 200, resp.status
            return dt

        def command(mode: str, cmd: str) -> dict[str, Any]:
            proc = servers[mode][0]
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(cmd + "\n")
            proc.stdin.flush()
            return dict(json.loads(proc.stdout.readline()))

        for mode in modes:  # warm-up: connection, worker, caches, squeezing calibration
            for _ in range(100):
                request(mode)
            if mode != "off":
                command(mode, "stats")
        load_before = os.getloadavg()[0]
        cpu0 = {m: _cpu_seconds(p.pid) for m, (p, _) in servers.items()}
        bench_cpu0, wall0 = time.process_time(), time.perf_counter()
        lat: dict[str, list[float]] = {m: [] for m in modes}
        per_block = max(1, args.requests // args.blocks)
        for _ in range(args.blocks):
            for mode in modes:
                lat[mode].extend(request(mode) for _ in range(per_block))
        wall = time.perf_counter() - wall0
        bench_cpu = time.process_time() - bench_cpu0
        cpu = {m: _cpu_seconds(p.pid) - cpu0[m] for m, (p, _) in servers.items()}
        load_after = os.getloadavg()[0]
        stats = {m: command(m, "stats") for m in modes if m != "off"}
    finally:
        for proc, _ in servers.values():
            try:
                if proc.stdin is not None:
                    proc.stdin.write("quit\n")
                    proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass
        for proc, _ in servers.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)

    off99 = float(np.percentile(np.asarray(lat["off"]) * 1e3, 99))
    print(f"{len(lat['off'])} requests per mode in {args.blocks} interleaved blocks over 127.0.0.1; "
          f"wall {wall:.1f} s, bench client CPU {bench_cpu:.1f} s; 1-min load average {load_before:.2f} before, "
          f"{load_after:.2f} after ({os.cpu_count()} CPUs)")
    print(f"{'mode':8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'mean ms':>8} {'Δp99 ms':>8} {'server CPU s':>13}  "
          "detector ms/event p50/p99, alerts, dropped")
    for mode in modes:
        a = np.asarray(lat[mode]) * 1e3
        p50, p95, p99 = (float(np.percentile(a, q)) for q in (50, 95, 99))
        extra = ""
        if mode in stats:
            st = stats[mode]
            det = st["process"].get("detectors") or {}
            extra = (f"{det.get('ms_p50', float('nan')):.2f}/{det.get('ms_p99', float('nan')):.2f} "
                     f"({det.get('events', 0)} events), {st['alerts']}, {st['process'].get('dropped', 0)}"
                     + ("" if st.get("flushed") else " (not flushed!)"))
        delta = "" if mode == "off" else f"{p99 - off99:+8.2f}"
        print(f"{mode:8} {p50:7.2f} {p95:7.2f} {p99:7.2f} {a.mean():8.2f} {delta:>8} {cpu[mode]:13.1f}  {extra}")
    if "process" in lat:
        d = float(np.percentile(np.asarray(lat["process"]) * 1e3, 99)) - off99
        print(f"monitoring (default, detectors in their own process) adds {d:+.2f} ms p99 (target ≤ 1 ms): "
              f"{'met' if d <= 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
