"""Labs 2, 3, 4 and 6: they lean on other Bastion capabilities (poisoning, privacy, gateway, monitoring,
incident response). Each names the modules it needs; when one has not landed, the lab says so at run time.

The checkers read plain files (npz, JSON, TorchScript via Bastion's scanning loader) so what is checked —
the goal — does not depend on how the learner reached it.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from bastion.core.errors import InvalidInputError
from bastion.core.paths import atomic_write_bytes, atomic_write_text
from bastion.govern.training.base import LabCheck, LabSetup


def _npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: np.asarray(z[k]) for k in keys}
    except (KeyError, ValueError, OSError) as exc:
        raise InvalidInputError(f"{path}: expected an .npz with arrays {', '.join(keys)} ({exc})") from None


def _json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInputError(f"{path}: expected a JSON object")
    return doc


def _write(workdir: Path, name: str, text: str) -> None:
    atomic_write_text(workdir / name, text)


class PoisoningLab:
    number = 2
    slug = "poison-and-find"
    title = "Poison a training set, then find the poison"
    goal = "poison 3–20% of the digits training set, then flag the poisoned rows with recall ≥ 0.7, precision ≥ 0.5"
    requires: tuple[str, ...] = ("bastion.attacks.poisoning:random_flip", "bastion.data.poisoning:detect_poisoning")

    def start(self, workdir: Path, seed: int = 0) -> LabSetup:
        from bastion.datasets import load_demo_data

        d = load_demo_data("digits").splits
        assert d.x_train is not None and d.y_train is not None
        buf = io.BytesIO()
        np.savez(buf, x=d.x_train, y=d.y_train)
        atomic_write_bytes(workdir / "clean.npz", buf.getvalue(), mode=0o644)
        text = f"""# Lab 2 — poison a training set, then find the poison

`clean.npz` (keys `x`, `y`) is the digits training set. (1) Poison 3–20% of it — flip labels or add a
BadNets trigger (`bastion attack poison …`, or `bastion.attacks.poisoning.random_flip / badnets`) — and save
`poisoned.npz` (keys `x`, `y`, same shapes). (2) Without looking at your indices, run poisoning detection
(`bastion data poison …`, or `bastion.data.poisoning.detect_poisoning(x, y).to_dict()["flagged_indices"]`) and
save `flagged.json` as `{{"flagged_indices": [...]}}`.
Check: `bastion learn check 2 --dir {workdir}`. ATLAS AML.T0020 Poison Training Data; OWASP ML02.
"""
        _write(workdir, "README.md", text)
        return LabSetup(self.number, str(workdir), ["clean.npz", "README.md"], text)

    def check(self, workdir: Path) -> LabCheck:
        clean_p, pois_p, flag_p = workdir / "clean.npz", workdir / "poisoned.npz", workdir / "flagged.json"
        if not clean_p.is_file():
            raise InvalidInputError(f"{clean_p} is missing: run 'bastion learn start 2 --dir {workdir}' first")
        for p in (pois_p, flag_p):
            if not p.is_file():
                return LabCheck(2, False, 0.0, f"missing {p.name} (see README.md)")
        clean, pois = _npz(clean_p, ("x", "y")), _npz(pois_p, ("x", "y"))
        if pois["x"].shape != clean["x"].shape or pois["y"].shape != clean["y"].shape:
            return LabCheck(2, False, 0.0, "poisoned.npz must keep the shapes of clean.npz")
        n = len(clean["y"])
        changed = (pois["y"] != clean["y"]) | np.any(
            np.abs(pois["x"].reshape(n, -1) - clean["x"].reshape(n, -1)) > 1e-6, axis=1)
        truth = set(np.flatnonzero(changed).tolist())
        rate = len(truth) / n
        flagged_raw = _json(flag_p).get("flagged_indices")
        if not isinstance(flagged_raw, list) or not all(isinstance(i, int) for i in flagged_raw):
            raise InvalidInputError(f"{flag_p}: expected {{\"flagged_indices\": [int, ...]}}")
        flagged = set(flagged_raw)
        tp = len(truth & flagged)
        recall = tp / len(truth) if truth else 0.0
        precision = tp / len(flagged) if flagged else 0.0
        details = {"poison_rate": round(rate, 4), "poisoned": len(truth), "flagged": len(flagged),
                   "recall": round(recall, 4), "precision": round(precision, 4)}
        if not 0.03 <= rate <= 0.20:
            return LabCheck(2, False, 0.0, f"poison rate {rate:.1%} is outside 3–20%", details)
        ok = recall >= 0.7 and precision >= 0.5
        score = 1.0 if ok else round(min(recall / 0.7, 1.0) * 0.5 + min(precision / 0.5, 1.0) * 0.5, 3) * 0.9
        return LabCheck(2, ok, score, f"detection recall {recall:.2f}, precision {precision:.2f} on your "
                        f"{len(truth)} poisoned rows" + ("" if ok else " (need ≥ 0.70 and ≥ 0.50)"), details)


class PrivacyLab:
    number = 3
    slug = "membership-then-dp"
    title = "Run a membership-inference attack, then train with differential privacy"
    goal = "measure membership leakage, then ship a DP-SGD model with ε ≤ 8, test accuracy ≥ 0.80, MIA AUC ≤ 0.60"
    requires: tuple[str, ...] = ("bastion.attacks.inference.membership:run_membership",
                                 "bastion.defenses.dp:read_privacy_statement", "bastion.models.loaders:load_model")

    def start(self, workdir: Path, seed: int = 0) -> LabSetup:
        text = f"""# Lab 3 — membership inference, then differential privacy

1. Attack the digits demo model: `bastion attack membership --demo digits --format json > {workdir}/membership.json`.
2. Train a DP-SGD model on the digits training set:
   `bastion harden dp --model-spec digits-mlp --data demo:digits --epsilon 3 --delta 1e-5 --out {workdir}/dp_model.pt`
   (the privacy statement `dp_model.pt.privacy.json` is written beside it).
3. Check: `bastion learn check 3 --dir {workdir}` — Bastion re-measures the DP model itself.
ATLAS AML.T0024.000 Infer Training Data Membership; OWASP ML04; GDPR Art. 32.
"""
        _write(workdir, "README.md", text)
        return LabSetup(self.number, str(workdir), ["README.md"], text)

    def check(self, workdir: Path) -> LabCheck:
        from sklearn.metrics import roc_auc_score

        from bastion.datasets import load_demo_data
        from bastion.defenses.dp import read_privacy_statement
        from bastion.models.loaders import load_model

        mia_p, model_p = workdir / "membership.json", workdir / "dp_model.pt"
        if not mia_p.is_file():
            return LabCheck(3, False, 0.0, "missing membership.json (step 1)")
        auc_before = _json(mia_p).get("auc")
        if not isinstance(auc_before, int | float):
            raise InvalidInputError(f"{mia_p}: no numeric 'auc' (save the JSON of 'bastion attack membership')")
        if not model_p.is_file():
            return LabCheck(3, False, 0.3, "step 1 done; missing dp_model.pt (step 2)", {"auc_before": auc_before})
        statement = read_privacy_statement(model_p)
        if statement is None:
            return LabCheck(3, False, 0.3, "dp_model.pt has no privacy statement: train it with 'bastion harden dp'")
        model = load_model(model_p)
        d = load_demo_data("digits").splits
        assert d.x_test is not None and d.y_test is not None and d.x_train is not None and d.y_train is not None
        p_tr, p_te = model.predict_proba(d.x_train), model.predict_proba(d.x_test)
        acc = float((p_te.argmax(1) == d.y_test).mean())
        loss_tr = -np.log(np.clip(p_tr[np.arange(len(d.y_train)), d.y_train], 1e-12, 1))
        loss_te = -np.log(np.clip(p_te[np.arange(len(d.y_test)), d.y_test], 1e-12, 1))
        labels = np.r_[np.ones(len(loss_tr)), np.zeros(len(loss_te))]
        auc_after = float(roc_auc_score(labels, -np.r_[loss_tr, loss_te]))
        details = {"auc_before": float(auc_before), "auc_after_loss_threshold": round(auc_after, 4),
                   "test_accuracy": round(acc, 4), "epsilon": statement.epsilon, "delta": statement.delta}
        ok = statement.epsilon <= 8 and statement.delta <= 1e-4 and acc >= 0.8 and auc_after <= 0.6
        return LabCheck(3, ok, 1.0 if ok else 0.5,
                        f"DP model: ε={statement.epsilon:.2f}, test accuracy {acc:.2%}, loss-threshold MIA AUC "
                        f"{auc_after:.3f} (before: {float(auc_before):.3f})"
                        + ("" if ok else " — need ε ≤ 8, δ ≤ 1e-4, accuracy ≥ 80%, AUC ≤ 0.60"), details)


class ExtractionLab:
    number = 4
    slug = "steal-and-get-caught"
    title = "Steal a model through the gateway and watch it get detected"
    goal = "a stolen copy with ≥ 80% agreement with the served digits model, and an extraction alert for your client"
    requires: tuple[str, ...] = ("bastion.gateway.app:create_app", "bastion.attacks.extraction:run_extraction",
                                 "bastion.monitor.extraction", "bastion.models.loaders:load_model")

    def start(self, workdir: Path, seed: int = 0) -> LabSetup:
        text = f"""# Lab 4 — steal a model through the gateway and get detected

Serve the digits demo model (`bastion serve`), create a client (`bastion clients create`), and steal it with
`bastion attack extraction --endpoint http://127.0.0.1:8000/v1/models/digits/predict --query-budget 5000
--out {workdir}/stolen.pt`. Write `{workdir}/client.txt` with your client id. Check with
`bastion learn check 4 --dir {workdir}`: Bastion measures agreement and looks for the extraction alert.
ATLAS AML.T0024.002 Extract AI Model; OWASP ML05.
"""
        _write(workdir, "README.md", text)
        return LabSetup(self.number, str(workdir), ["README.md"], text)

    def check(self, workdir: Path) -> LabCheck:
        from bastion.models.loaders import load_model
        from bastion.models.zoo import demo_target

        stolen_p, client_p = workdir / "stolen.pt", workdir / "client.txt"
        if not stolen_p.is_file() or not client_p.is_file():
            return LabCheck(4, False, 0.0, "missing stolen.pt or client.txt (see README.md)")
        victim = demo_target("digits")
        x = victim.data.x_test
        assert x is not None
        agreement = float((load_model(stolen_p).predict_proba(x).argmax(1)
                           == victim.model.predict_proba(x).argmax(1)).mean())
        client = client_p.read_text().strip()
        alerts = _extraction_alerts(client)
        details = {"agreement": round(agreement, 4), "client": client, "alerts": alerts}
        ok = agreement >= 0.8 and alerts > 0
        msg = f"stolen copy agrees on {agreement:.1%} of test digits; {alerts} extraction alert(s) for {client}"
        return LabCheck(4, ok, 1.0 if ok else 0.5 if agreement >= 0.8 else 0.0, msg, details)


def _extraction_alerts(client: str) -> int:
    """Count monitoring rows that mention extraction and the client, in whatever monitoring tables exist."""
    from sqlalchemy import MetaData, Table, inspect, select

    from bastion.store.db import get_engine

    eng = get_engine()
    count = 0
    for t in inspect(eng).get_table_names():
        if not (t.startswith("monitor_") or t.startswith("respond_")):
            continue
        table = Table(t, MetaData(), autoload_with=eng)
        with eng.connect() as conn:
            for row in conn.execute(select(table).limit(10000)):
                text = json.dumps(dict(row._mapping), default=str).lower()
                count += int("extraction" in text and client.lower() in text)
    return count


class IncidentLab:
    number = 6
    slug = "incident-response"
    title = "Respond to an incident and export the forensic bundle"
    goal = "acknowledge and resolve an incident, then export a signed forensic bundle that verifies"
    requires: tuple[str, ...] = ("bastion.respond.forensics:verify_bundle", "bastion.respond.incidents:resolve")

    def start(self, workdir: Path, seed: int = 0) -> LabSetup:
        text = f"""# Lab 6 — respond to an incident and export the forensic bundle

Trigger an incident (e.g. lab 4's extraction, or `bastion demo attack-and-respond`), then:
`bastion incident list`, `bastion incident ack ID --owner YOU`, run its playbook,
`bastion incident resolve ID --note "what you did"`, and
`bastion incident export ID --out {workdir}/bundle.tar.gz`.
Check with `bastion learn check 6 --dir {workdir}`: Bastion verifies the bundle offline (digests, signature, audit
chain and inclusion proofs) and that the incident in it was acknowledged and resolved. EU AI Act Art. 73; GDPR Art. 33.
"""
        _write(workdir, "README.md", text)
        return LabSetup(self.number, str(workdir), ["README.md"], text)

    def check(self, workdir: Path) -> LabCheck:
        import importlib
        import tarfile

        from bastion.core.errors import BastionError

        bundle = workdir / "bundle.tar.gz"
        if not bundle.is_file():
            return LabCheck(6, False, 0.0, f"missing {bundle} (bastion incident export ID --out {bundle})")
        verify = importlib.import_module("bastion.respond.forensics").verify_bundle
        try:
            result = verify(bundle)
        except BastionError as exc:
            return LabCheck(6, False, 0.0, f"the bundle does not verify: {exc}")
        try:
            with tarfile.open(bundle, mode="r:gz") as tar:
                member = tar.getmember("incident.json")
                fh = tar.extractfile(member) if member.isfile() and member.size < 10_000_000 else None
                incident = json.loads(fh.read()) if fh is not None else {}
        except (tarfile.TarError, KeyError, ValueError, OSError):
            incident = {}
        status, owner = str(incident.get("status", "unknown")), incident.get("owner")
        details = {"verification": result, "incident_status": status, "owner": owner}
        if status == "resolved" and owner:
            return LabCheck(6, True, 1.0, f"incident {result.get('incident_id')} acknowledged by {owner} and resolved; "
                            f"bundle verifies ({result.get('audit_records')} audit records)", details)
        return LabCheck(6, False, 0.5, f"the bundle verifies, but the incident in it is '{status}'"
                        + ("" if owner else " with no owner") + ": acknowledge and resolve it, then export again",
                        details)
