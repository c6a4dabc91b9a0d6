"""What monitoring costs a request: gateway latency with and without the monitor attached.

Same gateway, same model (signed digits demo), same client, interleaved blocks; the monitor runs
as an observer off the request path, so the request pays only the hand-off — but it shares the
CPU (and the GIL) with the detectors, which is what this measures.

    .venv/bin/python bench/monitoring_overhead.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--blocks", type=int, default=4)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bastion-mon-bench-"))
    os.environ["BASTION_HOME"] = str(work / "home")
    from fastapi.testclient import TestClient

    from bastion.artifacts.keys import generate_keypair
    from bastion.artifacts.signing import sign_model
    from bastion.datasets import load_demo_data
    from bastion.gateway.app import create_app
    from bastion.gateway.clients import create_client
    from bastion.gateway.config import GatewayConfig
    from bastion.models.zoo import demo_model_path
    from bastion.monitor.service import MonitorService, capture_reference

    s = load_demo_data("digits").splits
    assert s.x_train is not None and s.x_test is not None
    priv, pub = generate_keypair(work / "signer")
    model = work / "digits.pt"
    shutil.copyfile(demo_model_path("digits"), model)
    model.with_name(model.name + ".bastion.json").write_text('{"input_shape": [1, 8, 8], "clip_min": 0, "clip_max": 1}')
    sign_model(model, priv)
    app = create_app(GatewayConfig.model_validate({"registry": {"trusted_keys": [str(pub)]}}), preload=False)
    service = app.state.service
    service.registry.push(model, "digits", "1", keys=[pub], promote=True)
    capture_reference("digits", s.x_train)
    _, key = create_client("bench", models=["digits"], budget={"requests": "1000000/minute", "samples": "1000000/minute"})
    monitor = MonitorService(gateway=service)
    rng = np.random.default_rng(0)
    lat: dict[str, list[float]] = {"off": [], "on": []}
    per_event: list[float] = []
    orig = monitor.__call__

    errors: list[str] = []

    def timed(ev: object) -> None:
        t0 = time.perf_counter()
        try:
            orig(ev)
        except Exception as exc:  # report, don't hide
            errors.append(f"{type(exc).__name__}: {exc}")
        per_event.append(time.perf_counter() - t0)

    with TestClient(app) as client:
        hdr = {"Authorization": f"Bearer {key}"}
        for _ in range(50):  # warm-up: worker start, caches
            client.post("/v1/models/digits/predict", json={"inputs": s.x_test[:1].tolist()}, headers=hdr)
        for b in range(args.blocks * 2):
            mode = "on" if b % 2 else "off"
            service.observers[:] = [timed] if mode == "on" else []
            for _ in range(args.requests // args.blocks):
                x = s.x_test[rng.integers(0, len(s.x_test), 1)]
                t0 = time.perf_counter()
                r = client.post("/v1/models/digits/predict", json={"inputs": x.tolist()}, headers=hdr)
                lat[mode].append(time.perf_counter() - t0)
                assert r.status_code == 200
    for mode in ("off", "on"):
        arr = np.asarray(lat[mode]) * 1e3
        print(f"monitoring {mode:3}: {len(arr)} requests  p50 {np.percentile(arr, 50):.2f} ms  "
              f"p99 {np.percentile(arr, 99):.2f} ms")
    p99_delta = np.percentile(np.asarray(lat["on"]) * 1e3, 99) - np.percentile(np.asarray(lat["off"]) * 1e3, 99)
    time.sleep(2)
    if errors:
        print(f"observer errors: {len(errors)}, first: {errors[0]}")
    ev = np.asarray(per_event or [float("nan")]) * 1e3
    print(f"added p99 latency: {p99_delta:+.2f} ms (target ≤ 1 ms); detector work per request (off the request path): "
          f"p50 {np.percentile(ev, 50):.2f} ms, p99 {np.percentile(ev, 99):.2f} ms")


if __name__ == "__main__":
    main()
