"""Lab 4: steal the served model through the gateway, and be detected doing it."""

from __future__ import annotations

import json
from pathlib import Path

from bastion.govern.training.base import Lab, LabCheck

README = """# Lab 4 — steal a model through the gateway and get detected

Serve the digits demo model (`bastion serve`), create a client (`bastion clients create`), and steal it with
`bastion attack extraction --endpoint http://127.0.0.1:8000/v1/models/digits/predict --query-budget 5000
--out {workdir}/stolen.pt`. Write `{workdir}/client.txt` with your client id. Check with
`bastion learn check 4 --dir {workdir}`: Bastion measures agreement and looks for the extraction alert.
ATLAS AML.T0024.002 Extract AI Model; OWASP ML05.
"""


class ExtractionLab(Lab):
    number = 4
    slug = "steal-and-get-caught"
    title = "Steal a model through the gateway and watch it get detected"
    goal = "a stolen copy with ≥ 80% agreement with the served digits model, and an extraction alert for your client"
    readme = README

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
