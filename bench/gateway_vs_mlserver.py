"""Bastion gateway (every protection on) vs MLServer (no security), same models, same client, same run.

Serves the demo scikit-learn model (breast-cancer GradientBoosting, skops) and the demo torch model
(digits MLP, TorchScript) with both servers on loopback, drives them with the same httpx client
(sequential for latency, then C concurrent clients for throughput) and prints req/s, p50/p99 and
the ratios. Then it times each Bastion security layer on its own (in process).

Run: .venv/bin/python bench/gateway_vs_mlserver.py [--seconds 5] [--concurrency 4]
MLServer runs with ``parallel_workers: 0`` (its worker pool crashes here) and a small custom
runtime that calls the same ``predict_proba`` Bastion's sandbox calls.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
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


def drive(url: str, body: bytes, headers: dict[str, str], seconds: float, concurrency: int,
          lat: list[float] | None = None) -> dict[str, float]:
    lat = [] if lat is None else lat
    errors = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def worker() -> None:
        mine: list[float] = []
        with httpx.Client(timeout=30, headers={**headers, "Content-Type": "application/json"}) as c:
            c.post(url, content=body)  # warm-up (connection)
            while time.perf_counter() < stop:
                t = time.perf_counter()
                r = c.post(url, content=body)
                dt = time.perf_counter() - t
                if r.status_code == 200:
                    mine.append(dt)
                else:
                    errors[0] += 1
        with lock:
            lat.extend(mine)

    n0 = len(lat)
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if len(lat) == n0:
        raise SystemExit(f"no successful request to {url} ({errors[0]} errors)")
    return {"n": len(lat) - n0, "wall": wall, "errors": errors[0]}


def interleaved(a: tuple[str, bytes, dict[str, str]], b: tuple[str, bytes, dict[str, str]], seconds: float,
                concurrency: int, rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    """Alternate short slices between the two servers so machine noise hits both alike."""
    out = []
    lats: list[list[float]] = [[], []]
    walls, counts = [0.0, 0.0], [0, 0]
    for _ in range(rounds):
        for i, (url, body, headers) in enumerate((a, b)):
            r = drive(url, body, headers, seconds / rounds, concurrency, lats[i])
            walls[i] += r["wall"]
            counts[i] += int(r["n"])
    for i in range(2):
        lat = sorted(lats[i])
        out.append({"rps": counts[i] / walls[i], "p50_ms": 1e3 * lat[len(lat) // 2],
                    "p99_ms": 1e3 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], "n": counts[i]})
    return out[0], out[1]


def start_bastion(home: Path, models: dict[str, tuple[Path, list[int]]], port: int) -> tuple[Any, str]:
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
    cfg_path.write_text(f"gateway:\n  log_requests: false\n  registry:\n    trusted_keys: ['{pub}']\n"
                        "  budgets:\n    requests: 10000000/minute\n    samples: 100000000/minute\n")
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
    proc = subprocess.Popen([sys.executable, "-m", "bastion.cli.main", "serve", "--config", str(cfg_path),
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
    return proc, key


def start_mlserver(root: Path, models: dict[str, tuple[Path, list[int]]], port: int) -> Any:
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
    proc = subprocess.Popen([str(mls), "start", str(root)], cwd=root, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    for name in models:
        wait_ready(f"http://127.0.0.1:{port}/v2/models/{name}/ready", proc)
    return proc


def layer_costs(home: Path, digits: Path) -> list[tuple[str, float]]:
    """Microseconds per request spent in each Bastion layer, measured in process."""
    from bastion.artifacts.keys import public_path_for  # noqa: F401 - keeps imports warm
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
    pol = OutputPolicy.from_config({"type": "rounding", "decimals": 3})
    log = AuditLog(None, None)
    d = home / "layer-model"
    d.mkdir()
    shutil.copyfile(digits, d / "digits.pt")
    pool = WorkerPool(WorkerSpec(model_dir=d, file_name="digits.pt", input_spec=spec.to_dict())).start()
    local = load_model(d / "digits.pt", input_spec=spec)
    x = parse_predict_body(body, spec)
    proba = local.predict_proba(x)

    def per_call(fn: Any, n: int) -> float:
        fn()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        return 1e6 * (time.perf_counter() - t) / n

    rows = [
        ("authentication (API key, cached lookup)", per_call(lambda: store.authenticate(key), 3000)),
        ("input validation (JSON → checked float32)", per_call(lambda: parse_predict_body(body, spec), 3000)),
        ("query budget (limits, memory storage)", per_call(lambda: budgets.spend("c", "m", 1), 3000)),
        ("output policy (rounding)", per_call(lambda: pol.apply(proba), 3000)),
        ("audit append, durable (1 record, own commit)",
         per_call(lambda: log.append("request", "bench", "predict", {"n": 1}), 200)),
        ("model in process (TorchScript forward)", per_call(lambda: local.predict_proba(x), 2000)),
        ("model in sandbox worker (pipe round trip + forward)", per_call(lambda: pool.predict(x, 5), 2000)),
    ]
    pool.close()
    log.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=5, help="alternating slices per server and phase")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bastion-bench-"))
    home = tmp / "home"
    home.mkdir()
    shared = Path(os.environ.get("BASTION_HOME", ".bastion")).resolve() / "zoo"
    (home / "zoo").symlink_to(shared, target_is_directory=True)
    os.environ["BASTION_HOME"] = str(home)
    from bastion.models.zoo import demo_model_path

    models = {"bc": (demo_model_path("breast-cancer-sklearn"), [30]), "digits": (demo_model_path("digits"), [1, 8, 8])}
    rng = np.random.default_rng(0)
    samples = {"bc": rng.normal(size=(1, 30)).round(4), "digits": rng.random((1, 64)).round(4)}
    bport, mport = free_port(), free_port()
    procs = []
    try:
        bproc, key = start_bastion(home, models, bport)
        procs.append(bproc)
        mproc = start_mlserver(tmp / "mlserver", models, mport)
        procs.append(mproc)
        print(f"# Bastion gateway vs MLServer — {args.seconds:g} s per server and phase in {args.rounds} alternating slices, loopback, same client, "
              f"{os.cpu_count()} CPUs (shared)\n")
        print(f"{'model':<8} {'load':<12} {'server':<9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
        summary = []
        for name in models:
            x = samples[name]
            bbody = json.dumps({"inputs": x.tolist()}).encode()
            mbody = json.dumps({"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32",
                                            "data": x.ravel().tolist()}]}).encode()
            for label, conc in (("sequential", 1), (f"{args.concurrency} clients", args.concurrency)):
                b, m = interleaved((f"http://127.0.0.1:{bport}/v1/models/{name}/predict", bbody,
                                    {"Authorization": f"Bearer {key}"}),
                                   (f"http://127.0.0.1:{mport}/v2/models/{name}/infer", mbody, {}),
                                   args.seconds, conc, args.rounds)
                for server, r in (("bastion", b), ("mlserver", m)):
                    print(f"{name:<8} {label:<12} {server:<9} {r['rps']:>8.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}")
                summary.append((name, label, b["rps"] / m["rps"], b["p99_ms"] - m["p99_ms"], b["p50_ms"] - m["p50_ms"]))
        print(f"\n{'model':<8} {'load':<12} {'req/s ratio (≥0.8)':>20} {'p50 added ms':>13} {'p99 added ms (≤5)':>18}")
        for name, label, ratio, dp99, dp50 in summary:
            print(f"{name:<8} {label:<12} {ratio:>20.2f} {dp50:>13.2f} {dp99:>18.2f}")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    print("\n# What each Bastion layer costs per request (µs, in process, digits model, 1 sample)")
    for label, us in layer_costs(home, models["digits"][0]):
        print(f"{label:<55} {us:>9.1f}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
