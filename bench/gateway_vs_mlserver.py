"""Bastion gateway (every protection on) vs MLServer (no security), same models, same load generator, same run.

Serves the demo scikit-learn model (breast-cancer GradientBoosting, skops) and the demo torch model
(digits, TorchScript) with both servers on loopback and drives them with ``wrk`` (closed loop, keep-alive)
at 1 and 16 connections. Rounds interleave the two servers (the order alternates each round) so the
load other jobs put on the machine hits both alike. For every round it records requests/s, p50, p99
and the server's CPU time per request (the server process and all its children: Bastion's sandboxed
model workers and detector process, MLServer's workers). It prints the per-round ratios (range and
median), then what each Bastion layer costs in process.

Bastion runs with authentication (API key), strict input validation, query budgets (limits, memory
storage), the sandboxed worker, an output policy (rounding), the durable audit log (acknowledged after
commit), Prometheus metrics, the request log and the monitoring detectors (``monitoring:`` section,
their own process) all on.

Needs: ``make bench`` (MLServer 1.7.1, run with ``parallel_workers: 0``: its default worker pool
crashes here) and the Debian package ``wrk`` (``apt-get install -y wrk``).

Run: nice .venv/bin/python bench/gateway_vs_mlserver.py [--seconds 5] [--rounds 5] [--connections 1,16]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

RUNTIME = '''
import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class BenchRuntime(MLModel):
    async def load(self) -> bool:
        uri = self.settings.parameters.uri
        if uri.endswith(".skops"):
            import skops.io as sio
            data = open(uri, "rb").read()
            self._est = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
            self._fn = lambda x: self._est.predict_proba(x.reshape(len(x), -1))
        else:
            import torch
            torch.set_num_threads(1)
            self._mod = torch.jit.load(uri).eval()
            def fn(x):
                with torch.inference_mode():
                    return torch.softmax(self._mod(torch.from_numpy(x.reshape(len(x), 1, 8, 8))), 1).numpy()
            self._fn = fn
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32)
        proba = np.asarray(self._fn(x), dtype=np.float64)
        return InferenceResponse(model_name=self.name, outputs=[NumpyCodec.encode_output("probabilities", proba)])
'''

WRK_SCRIPT = """wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{auth}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} while starting ({url})")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"{url} not ready after {timeout}s")


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and every live descendant (from /proc)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            raw = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        parents[int(d)] = int(fields[1])
        ticks[int(d)] = int(fields[11]) + int(fields[12])  # utime, stime
    tree, frontier = {pid}, [pid]
    while frontier:
        p = frontier.pop()
        for child, parent in parents.items():
            if parent == p and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(ticks.get(p, 0) for p in tree) / os.sysconf("SC_CLK_TCK")


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if m is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)]


def wrk(url: str, script: Path, connections: int, seconds: float) -> dict[str, float]:
    """One wrk run; requests/s, p50/p99 (ms), request and error counts."""
    threads = min(connections, 2)
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s", "--latency",
                          "--timeout", "10s", "-s", str(script), url], capture_output=True, text=True, check=True).stdout
    pct = dict(re.findall(r"^\s+(50|99)(?:\.0+)?%\s+(\S+)$", out, re.M))
    n = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
            "p50": _ms(pct["50"]), "p99": _ms(pct["99"]), "n": n,
            "errors": (int(bad.group(1)) if bad else 0) + (sum(int(x) for x in errs.groups()) if errs else 0)}


def measured(pid: int, url: str, script: Path, connections: int, seconds: float) -> dict[str, float]:
    c0 = tree_cpu_s(pid)
    r = wrk(url, script, connections, seconds)
    r["cpu_ms"] = 1e3 * (tree_cpu_s(pid) - c0) / max(r["n"], 1)
    return r


def start_bastion(home: Path, models: dict[str, tuple[Path, list[int]]], port: int,
                  monitoring: bool, extra_yaml: str = "") -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, "BASTION_HOME": str(home)}
    os.environ["BASTION_HOME"] = str(home)
    from bastion.artifacts.keys import generate_keypair
    from bastion.artifacts.signing import sign_model
    from bastion.gateway.clients import create_client
    from bastion.gateway.config import GatewayConfig
    from bastion.gateway.registry import Registry
    from bastion.store.db import upgrade

    priv, pub = generate_keypair(home / "signer")
    cfg_path = home / "bastion.yaml"
    cfg_path.write_text(
        f"gateway:\n  registry:\n    trusted_keys: ['{pub}']\n"
        "  budgets:\n    requests: 10000000/minute\n    samples: 100000000/minute\n"
        "  output_policy: {type: rounding, decimals: 4}\n" + extra_yaml
        + ("monitoring: {}\n" if monitoring else ""))
    upgrade()
    reg = Registry(GatewayConfig.model_validate({"registry": {"trusted_keys": [str(pub)]}}))
    for name, (src, shape) in models.items():
        d = home / "src" / name
        d.mkdir(parents=True)
        dst = d / src.name
        shutil.copyfile(src, dst)
        dst.with_name(dst.name + ".bastion.json").write_text(json.dumps({"input_shape": shape}))
        sign_model(dst, priv)
        reg.push(dst, name)
    _, key = create_client("bench", "client", list(models))
    log = (home / "serve.log").open("wb")  # the JSON request log is on; it goes to a file
    proc = subprocess.Popen([sys.executable, "-m", "bastion.cli.main", "serve", "--config", str(cfg_path),
                             "--port", str(port)], env=env, stdout=log, stderr=log)
    wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
    return proc, key


def start_mlserver(root: Path, models: dict[str, tuple[Path, list[int]]], port: int) -> subprocess.Popen[bytes]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "settings.json").write_text(json.dumps({
        "http_port": port, "grpc_port": free_port(), "metrics_port": free_port(), "parallel_workers": 0,
        "host": "127.0.0.1", "metrics_endpoint": None, "debug": False}))
    for name, (src, _) in models.items():
        d = root / name
        d.mkdir()
        shutil.copyfile(src, d / src.name)
        (d / "bench_runtime.py").write_text(RUNTIME)
        (d / "model-settings.json").write_text(json.dumps({
            "name": name, "implementation": "bench_runtime.BenchRuntime",
            "parameters": {"uri": str(d / src.name)}}))
    mls = Path(sys.executable).with_name("mlserver")
    if not mls.exists():
        raise SystemExit("MLServer is not installed: run `make bench`")
    proc = subprocess.Popen([str(mls), "start", str(root)], cwd=root, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    for name in models:
        wait_ready(f"http://127.0.0.1:{port}/v2/models/{name}/ready", proc)
    return proc


def layer_costs(home: Path, digits: Path) -> list[tuple[str, float]]:
    """Microseconds per request spent in each Bastion layer, measured in process."""
    from bastion.core.model import InputSpec
    from bastion.defenses.output_policy import OutputPolicy
    from bastion.gateway.audit import AuditLog
    from bastion.gateway.auth import KeyStore
    from bastion.gateway.budgets import QueryBudgets
    from bastion.gateway.clients import create_client
    from bastion.gateway.sandbox import WorkerPool, WorkerSpec
    from bastion.gateway.validation import parse_predict_body
    from bastion.models.loaders import load_model

    spec = InputSpec(shape=(1, 8, 8), clip_min=0.0, clip_max=1.0)
    body = json.dumps({"inputs": np.random.default_rng(0).random((1, 1, 8, 8)).round(4).tolist()}).encode()
    _, key = create_client("layers", "client", ["digits"])
    store = KeyStore(None, ttl_s=60)
    budgets = QueryBudgets("100000000/minute", "100000000/minute")
    pol = OutputPolicy.from_config({"type": "rounding", "decimals": 4})
    log = AuditLog(None, None)
    d = home / "layer-model"
    d.mkdir()
    shutil.copyfile(digits, d / "digits.pt")
    pool = WorkerPool(WorkerSpec(model_dir=d, file_name="digits.pt", input_spec=spec.to_dict())).start()
    import torch

    torch.set_num_threads(1)  # as in the sandbox worker (sandbox.threads_per_worker) and the MLServer runtime
    local = load_model(d / "digits.pt", input_spec=spec)
    x = parse_predict_body(body, spec)
    proba = local.predict_proba(x)

    def per_call(fn: Any, n: int) -> float:
        fn()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        return 1e6 * (time.perf_counter() - t) / n

    def per_call_async(fn: Any, n: int) -> float:
        import uvloop

        async def run() -> float:
            await fn()
            t = time.perf_counter()
            for _ in range(n):
                await fn()
            return 1e6 * (time.perf_counter() - t) / n

        return float(uvloop.run(run()))

    rows = [
        ("authentication (API key, cached verification)", per_call(lambda: store.authenticate(key), 3000)),
        ("input validation (JSON → checked float32)", per_call(lambda: parse_predict_body(body, spec), 3000)),
        ("query budget (limits, memory storage)", per_call(lambda: budgets.spend("c", "m", 1), 3000)),
        ("output policy (rounding)", per_call(lambda: pol.apply(proba), 3000)),
        ("audit append, durable (1 record, its own commit)",
         per_call_async(lambda: log.append_async("request", "bench", "predict", {"n": 1}), 2000)),
        ("model in process (TorchScript forward)", per_call(lambda: local.predict_proba(x), 2000)),
        ("model in sandbox worker (event-loop round trip + forward)",
         per_call_async(lambda: pool.apredict(x, 5), 2000)),
    ]
    pool.close()
    log.close()
    return rows


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _fmt_range(xs: list[float], digits: int = 2) -> str:
    return f"{statistics.median(xs):.{digits}f} [{min(xs):.{digits}f}–{max(xs):.{digits}f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="wrk duration per server, round and setting")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds per setting")
    ap.add_argument("--connections", default="1,16", help="comma-separated wrk connection counts")
    ap.add_argument("--models", default="bc,digits", help="comma-separated: bc, digits")
    ap.add_argument("--no-monitoring", action="store_true", help="leave Bastion's monitoring detectors off")
    ap.add_argument("--no-layers", action="store_true", help="skip the in-process per-layer costs")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    tmp = Path(tempfile.mkdtemp(prefix="bastion-bench-"))
    home = tmp / "home"
    home.mkdir()
    shared = Path(os.environ.get("BASTION_HOME", ".bastion")).resolve() / "zoo"
    shared.mkdir(parents=True, exist_ok=True)  # demo models are trained once and shared between runs
    (home / "zoo").symlink_to(shared, target_is_directory=True)
    os.environ["BASTION_HOME"] = str(home)
    from bastion.models.zoo import demo_model_path

    all_models = {"bc": (demo_model_path("breast-cancer-sklearn"), [30]),
                  "digits": (demo_model_path("digits"), [1, 8, 8])}
    models = {k: all_models[k] for k in args.models.split(",")}
    conns = [int(c) for c in args.connections.split(",")]
    rng = np.random.default_rng(0)
    samples = {"bc": rng.normal(size=(1, 30)).round(4), "digits": rng.random((1, 64)).round(4)}
    bport, mport = free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    load0 = _load()
    rows: list[tuple[str, int, int, str, dict[str, float]]] = []
    try:
        bproc, key = start_bastion(home, models, bport, monitoring=not args.no_monitoring)
        procs.append(bproc)
        mproc = start_mlserver(tmp / "mlserver", models, mport)
        procs.append(mproc)
        print(f"# Bastion gateway vs MLServer 1.7.1 — wrk, {args.seconds:g} s per server per round, {args.rounds} "
              f"interleaved rounds, loopback, {os.cpu_count()} CPUs (shared)")
        print(f"# started {started}, load average {load0}")
        print(f"# bastion: auth + validation + budgets + sandbox + output policy (rounding) + durable audit + "
              f"metrics + request log{'' if args.no_monitoring else ' + monitoring detectors'}\n")
        print(f"{'model':<7} {'conn':>4} {'round':>5} {'server':<9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'CPU ms/req':>10} {'errors':>6}")
        for name in models:
            x = samples[name]
            bbody = json.dumps({"inputs": x.tolist()})
            mbody = json.dumps({"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32",
                                            "data": x.ravel().tolist()}]})
            targets = {
                "bastion": (bproc.pid, f"http://127.0.0.1:{bport}/v1/models/{name}/predict", tmp / f"b-{name}.lua"),
                "mlserver": (mproc.pid, f"http://127.0.0.1:{mport}/v2/models/{name}/infer", tmp / f"m-{name}.lua"),
            }
            targets["bastion"][2].write_text(WRK_SCRIPT.format(
                body=json.dumps(bbody), auth=f'wrk.headers["Authorization"] = "Bearer {key}"'))
            targets["mlserver"][2].write_text(WRK_SCRIPT.format(body=json.dumps(mbody), auth=""))
            for server in targets:  # warm-up: connections, caches, first-call paths
                pid, url, script = targets[server]
                wrk(url, script, 2, 1.0)
            for c in conns:
                for rnd in range(args.rounds):
                    order = ["bastion", "mlserver"] if rnd % 2 == 0 else ["mlserver", "bastion"]
                    for server in order:
                        pid, url, script = targets[server]
                        r = measured(pid, url, script, c, args.seconds)
                        rows.append((name, c, rnd, server, r))
                        print(f"{name:<7} {c:>4} {rnd:>5} {server:<9} {r['rps']:>8.0f} {r['p50']:>8.2f} "
                              f"{r['p99']:>8.2f} {r['cpu_ms']:>10.3f} {int(r['errors']):>6}", flush=True)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
    print(f"\n# finished {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, load average {_load()} (at start {load0})")
    print("# per round: Bastion / MLServer req/s, and Bastion p99 − MLServer p99; median [min–max] over rounds\n")
    print(f"{'model':<7} {'conn':>4} {'req/s ratio (≥1.0, floor 0.8)':>30} {'p99 added ms (≤5 at c=16)':>28} "
          f"{'CPU ms/req bastion':>20} {'CPU ms/req mlserver':>20}")
    for name in models:
        for c in conns:
            per = {(rnd, srv): r for (n, cc, rnd, srv, r) in rows if n == name and cc == c}
            rounds = sorted({rnd for rnd, _ in per})
            ratio = [per[(i, "bastion")]["rps"] / per[(i, "mlserver")]["rps"] for i in rounds]
            dp99 = [per[(i, "bastion")]["p99"] - per[(i, "mlserver")]["p99"] for i in rounds]
            cpu_b = [per[(i, "bastion")]["cpu_ms"] for i in rounds]
            cpu_m = [per[(i, "mlserver")]["cpu_ms"] for i in rounds]
            print(f"{name:<7} {c:>4} {_fmt_range(ratio):>30} {_fmt_range(dp99):>28} {_fmt_range(cpu_b, 3):>20} "
                  f"{_fmt_range(cpu_m, 3):>20}")
    if not args.no_layers:
        print("\n# What each Bastion layer costs per request (µs, in process, digits model, 1 sample)")
        for label, us in layer_costs(home, models.get("digits", all_models["digits"])[0]):
            print(f"{label:<55} {us:>9.1f}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
