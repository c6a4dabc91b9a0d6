"""Schemathesis fuzzing of the gateway's OpenAPI: malformed input never gives a 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def fuzz_target(gw_home: Path, signer: tuple[Path, Path], digits_pt: Path, gwt: Any) -> Any:
    from fastapi.testclient import TestClient

    from bastion.gateway.app import create_app
    from bastion.gateway.clients import create_client
    from bastion.gateway.registry import Registry
    from bastion.store.db import upgrade

    cfg = gwt.make_config(registry={"trusted_keys": [str(signer[1])]}, max_body_bytes=16384,
                          budgets={"requests": "100000/minute", "samples": "1000000/minute"})
    upgrade()
    Registry(cfg).push(gwt.signed_copy(digits_pt, gw_home / "src", "benign.pt", signer[0]), "fz")
    _, key = create_client("fuzzer", "admin")
    app = create_app(cfg, preload=False)
    with TestClient(app):  # runs the lifespan
        yield app, key


def test_no_operation_answers_500_to_generated_requests(fuzz_target: Any) -> None:
    app, key = fuzz_target
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    ops = [r.ok() for r in schema.get_all_operations()]
    assert len(ops) >= 10
    strategy = st.one_of([op.as_strategy() for op in ops])
    seen: dict[str, int] = {}

    @settings(max_examples=80, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy, authed=st.booleans())
    def run(case: Any, authed: bool) -> None:
        if case.path_parameters and "name" in case.path_parameters and authed:
            case.path_parameters["name"] = "fz"  # reach the model, not only the 404 path
        headers = {"Authorization": f"Bearer {key}"} if authed else {}
        resp = case.call(headers=headers)
        seen[f"{case.method} {case.path}"] = resp.status_code
        assert resp.status_code < 500, (case.method, case.path, case.body, resp.status_code, resp.text[:300])

    run()
    assert len(seen) >= 8
