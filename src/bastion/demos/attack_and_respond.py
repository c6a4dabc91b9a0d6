"""``bastion demo attack-and-respond``: the whole loop, from normal traffic to a verified forensic bundle.

1. Serve the signed digits demo model through the gateway (in-process ASGI client) with monitoring on.
2. Normal traffic from honest clients → false alarms counted.
3. A distribution shift → drift alert → incident (requests until alert measured).
4. A random-query extraction client → extraction signal on its key → playbook revokes the key.
5. A worse model version is pushed and promoted → its anomaly rate rises → playbook rolls back to
   the last verified-signed version.
6. The forensic bundle of each incident is exported, signed, and verified offline.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _worse_model(path: Path, seed: int = 0) -> None:
    """A digits model trained on shuffled labels: it answers with low confidence (a bad release)."""
    import torch

    from bastion.datasets import load_demo_data
    from bastion.models.zoo import DigitsMLP, TrainConfig, train_classifier

    d = load_demo_data("digits")
    rng = np.random.default_rng(seed)
    assert d.splits.x_train is not None and d.splits.y_train is not None
    module = train_classifier(DigitsMLP(), d.splits.x_train, rng.permutation(d.splits.y_train), TrainConfig(epochs=3))
    torch.jit.save(torch.jit.script(module), str(path))


def attack_and_respond(workdir: str | Path, clean_requests: int = 10_000, batch: int = 1, seed: int = 0,
                       log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the scenario in ``workdir`` (its own $BASTION_HOME); returns the measured report."""
    import warnings

    with warnings.catch_warnings():  # Starlette's note about its httpx transport, not the user's concern
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from bastion.artifacts.keys import generate_keypair
    from bastion.artifacts.signing import sign_model
    from bastion.datasets import load_demo_data
    from bastion.gateway.app import create_app
    from bastion.gateway.clients import create_client
    from bastion.gateway.config import GatewayConfig
    from bastion.models.zoo import demo_model_path
    from bastion.monitor.config import AlertRule, MonitorConfig
    from bastion.monitor.service import attach_monitoring, capture_reference
    from bastion.respond.forensics import export_bundle, verify_bundle
    from bastion.respond.incidents import list_incidents
    from bastion.store.db import dispose_engines

    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    demo = demo_model_path("digits", seed)  # from the caller's model zoo cache (trained once there)
    os.environ["BASTION_HOME"] = str(work / "home")
    dispose_engines()
    rng = np.random.default_rng(seed)
    d = load_demo_data("digits")
    s = d.splits
    assert s.x_train is not None and s.x_test is not None
    priv, pub = generate_keypair(work / "signer", overwrite=True)
    models = work / "models"
    models.mkdir(exist_ok=True)
    sidecar = '{"input_shape": [1, 8, 8], "clip_min": 0.0, "clip_max": 1.0}'
    v1 = models / "digits-v1.pt"
    shutil.copyfile(demo, v1)
    v2 = models / "digits-v2.pt"
    _worse_model(v2, seed)
    for p in (v1, v2):
        p.with_name(p.name + ".bastion.json").write_text(sidecar)
        sign_model(p, priv)

    config = GatewayConfig.model_validate({"registry": {"trusted_keys": [str(pub)]}})
    app = create_app(config, preload=False)
    service = app.state.service
    service.registry.push(v1, "digits", "1", keys=[pub], promote=True)
    capture_reference("digits", s.x_train.reshape(len(s.x_train), -1))
    mcfg = MonitorConfig(
        alerts=[AlertRule(detector="drift", severity="medium"),
                AlertRule(detector="extraction", severity="high", playbook="contain_client"),
                AlertRule(detector="anomaly_rate", severity="high", playbook="rollback")],
        playbooks={"contain_client": [{"action": "revoke_key"}], "rollback": [{"action": "rollback"}]},
    )
    monitor = attach_monitoring(service, mcfg)
    monitor.prepare(["digits"])  # calibrate the detectors before traffic (in the detector process)

    def settle() -> None:  # every request so far through the detectors, alerts and playbooks handled
        if not monitor.flush(timeout=120.0):
            raise RuntimeError("the monitor did not catch up within 120 s")
    keys, ids = {}, {}
    for name in ("honest-1", "honest-2", "honest-3", "attacker"):
        ids[name], keys[name] = create_client(name, models=["digits"], budget={"requests": "100000/minute",
                                                                         "samples": "1000000/minute"})
    report: dict[str, Any] = {"clean_requests": clean_requests}
    with TestClient(app) as client:
        def send(who: str, x: np.ndarray) -> int:
            r = client.post("/v1/models/digits/predict", json={"inputs": x.tolist()},
                            headers={"Authorization": f"Bearer {keys[who]}"})
            return r.status_code

        def alerts_of(kind: str) -> list[dict[str, Any]]:
            return [a for a in monitor.alerts if a["detector"] == kind]

        # 2. clean traffic
        log(f"normal traffic: {clean_requests} requests from 3 honest clients")
        t0 = time.perf_counter()
        for i in range(clean_requests):
            idx = rng.integers(0, len(s.x_test), size=batch)
            assert send(f"honest-{1 + i % 3}", s.x_test[idx]) == 200
        settle()
        report["clean_seconds"] = round(time.perf_counter() - t0, 1)
        report["false_alarms"] = {k: len(alerts_of(k)) for k in ("drift", "extraction", "anomaly_rate")}
        log("  false alarms: " + ", ".join(f"{k} {v}" for k, v in report["false_alarms"].items()))

        # 3. drift: brighter inputs (+0.5 σ of the pixel intensities on a quarter of the pixels)
        before = len(alerts_of("drift"))
        sigma = float(s.x_train.std())
        mask = np.zeros((1, 8, 8), dtype=np.float32)
        mask[:, :, :2] = 1.0
        delay = None
        for i in range(3000):
            idx = rng.integers(0, len(s.x_test), size=batch)
            x = np.clip(s.x_test[idx] + 0.5 * sigma * mask, 0, 1)
            send(f"honest-{1 + i % 3}", x)
            if i % 10 == 9:
                settle()
                if len(alerts_of("drift")) > before:
                    delay = i + 1
                    break
        report["drift_detected_after_requests"] = delay
        log(f"drift: detected after {delay} requests")

        # 4. extraction by random queries
        delay = None
        revoked_status = None
        for i in range(2000):
            status = send("attacker", rng.random((batch, 1, 8, 8)).astype(np.float32))
            if status in (401, 403):
                revoked_status = status
                delay = i
                break
            if i % 10 == 9:
                settle()
        report["extraction_revoked_after_queries"] = delay
        report["attacker_status_after_revoke"] = revoked_status
        report["honest_flagged"] = [a["client"] for a in alerts_of("extraction") if a["client"] != ids["attacker"].id]
        log(f"extraction: attacker key revoked after {delay} queries (then HTTP {revoked_status})")

        # 5. a worse version → anomaly rate → rollback
        service.registry.push(v2, "digits", "2", keys=[pub], promote=True)
        service.invalidate()
        n_before = len(alerts_of("anomaly_rate"))
        delay = None
        for i in range(3000):
            idx = rng.integers(0, len(s.x_test), size=batch)
            send(f"honest-{1 + i % 3}", s.x_test[idx])
            if i % 10 == 9:
                settle()
                if len(alerts_of("anomaly_rate")) > n_before:
                    delay = i + 1
                    break
        settle()
        current = service.registry.resolve("digits", "production").version
        report["rollback_after_requests"] = delay
        report["production_version_after"] = current
        log(f"bad release: rolled back after {delay} requests; production is now version {current}")

        from bastion.gateway.audit import write_checkpoint
        from bastion.store.db import get_engine

        detectors = monitor.snapshot()  # before the gateway (and its detector process) shuts down
        service.audit.flush()
        write_checkpoint(get_engine(config.db_url), config.audit_key_path())
    incidents = list_incidents(db_url=config.db_url)
    report["incidents"] = [{"id": i["id"], "type": i["alert_type"], "severity": i["severity"],
                            "actions": i["actions_done"]} for i in incidents]
    bundles = []
    for inc in incidents:
        out = work / f"incident-{inc['id']}.tar.gz"
        export_bundle(inc["id"], out, priv, db_url=config.db_url,
                      audit_public_key=config.audit_key_path().with_name(config.audit_key_path().name + ".pub"),
                      detectors=detectors, config=mcfg.model_dump())
        bundles.append({"path": str(out), **verify_bundle(out, pub)})
    report["bundles"] = bundles
    log(f"forensic bundles: {len(bundles)} exported and verified")
    return report
