"""A fingerprint verified through a Bastion gateway's predict API (the thief's deployment, in-process) opens
an incident whose evidence is the verdict, and its signed forensic bundle verifies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient


def test_fingerprint_match_on_an_endpoint_opens_an_incident_with_a_bundle(
        gw_home: Path, signer: tuple[Path, Path], digits_pt: Path, gwt: Any) -> None:
    from bastion.core.errors import QueryBudgetExceeded
    from bastion.core.model import InputSpec
    from bastion.defenses.ownership import FingerprintConfig, create_fingerprint, verify_fingerprint
    from bastion.gateway.app import create_app
    from bastion.gateway.clients import create_client
    from bastion.gateway.registry import Registry
    from bastion.models.remote import RemoteAdapter
    from bastion.models.zoo import demo_target
    from bastion.respond.forensics import verify_bundle
    from bastion.respond.incidents import get_incident
    from bastion.respond.ownership import open_ownership_incident
    from bastion.store.db import upgrade

    t = demo_target("digits")
    assert t.data.x_train is not None and t.data.y_train is not None
    fp = create_fingerprint(t.model, t.data.x_train, t.data.y_train, x_seed=t.data.x_test,
                            config=FingerprintConfig(n_fingerprints=20, n_candidates=80, n_surrogates=1,
                                                     n_references=1, n_null=2, epochs=5, steps=30))
    cfg = gwt.make_config(registry={"trusted_keys": [str(signer[1])]})
    upgrade()
    Registry(cfg).push(gwt.signed_copy(digits_pt, gw_home / "thief", "copy.pt", signer[0]), "copy")
    _, key = create_client("investigator", "client", ["copy"])
    url = "http://testserver/v1/models/copy/predict"
    with TestClient(create_app(cfg, preload=False)) as client:
        suspect = RemoteAdapter(url, InputSpec((1, 8, 8), clip_min=0.0, clip_max=1.0), api_key=key,
                                query_budget=15, transport=client._transport)
        verdict = verify_fingerprint(fp, suspect)
        with pytest.raises(QueryBudgetExceeded):
            suspect.predict_proba(fp.x[:1])
    assert verdict.queries == 15 and verdict.stopped_by_budget and verdict.derived and verdict.match_rate == 1.0

    inc, created = open_ownership_incident(url, "fingerprint", verdict.to_dict(), source_sha256=fp.source_sha256,
                                           bundle=gw_home / "theft.bundle.tgz", signing_key=signer[0])
    assert created and inc["severity"] == "high" and "AML.T0024.002" in inc["atlas"]
    stored = get_incident(int(inc["id"]))
    assert stored["evidence"]["ownership"]["verdict"]["fingerprint_digest"] == fp.digest
    checked = verify_bundle(gw_home / "theft.bundle.tgz")
    assert checked["valid"] is True and checked["audit_records"] >= 1
