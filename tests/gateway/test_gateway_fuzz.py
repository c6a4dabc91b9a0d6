"""Schemathesis over the gateway's live OpenAPI document: every operation, generated valid and invalid
requests, with and without credentials — no 5xx, and every response matches its documented status,
content type and schema."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 25
TIME_BUDGET_S = 120.0  # the whole run stops generating past this (it takes ~20-40 s here)


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
    _, key = create_client("fuzzer", "admin", ["*"])
    app = create_app(cfg, preload=False)
    with TestClient(app):  # runs the lifespan
        yield app, key, cfg


def test_every_operation_answers_within_its_schema(fuzz_target: Any) -> None:
    app, key, _ = fuzz_target
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    ops = [r.ok() for r in schema.get_all_operations()]
    assert len(ops) >= 15
    seen: dict[str, set[int]] = {}
    deadline = time.monotonic() + TIME_BUDGET_S
    for op in ops:
        if time.monotonic() > deadline:
            break
        strategy = st.one_of(op.as_strategy(generation_mode=GenerationMode.POSITIVE),
                             op.as_strategy(generation_mode=GenerationMode.NEGATIVE))

        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy, authed=st.booleans())
        def run(case: Any, authed: bool) -> None:
            if authed and case.path_parameters and "name" in case.path_parameters:
                case.path_parameters["name"] = "fz"  # reach the model, not only the 404 path
            headers = {"Authorization": f"Bearer {key}"} if authed else {}
            resp = case.call(headers=headers)
            seen.setdefault(f"{case.method} {case.path}", set()).add(resp.status_code)
            case.validate_response(resp, checks=CHECKS, headers=headers)

        run()
    assert len(seen) == len(ops), sorted(set(f"{o.method.upper()} {o.path}" for o in ops) - set(seen))
    assert any(200 in codes for codes in seen.values()) and any(401 in codes for codes in seen.values())
    # generated inputs rarely fit the model's shape: the answers to valid predict requests are checked too
    auth = {"Authorization": f"Bearer {key}"}
    for path, params in (("/v1/models/{name}/predict", {"name": "fz"}),
                         ("/v1/models/{name}/versions/{version}/predict", {"name": "fz", "version": "1"})):
        op = schema[path]["POST"]
        for body in ({"inputs": [[0.5] * 64]}, {"inputs": [[[[0.25] * 8] * 8]] * 3}):
            case = op.Case(path_parameters=params, body=body, media_type="application/json")
            resp = case.call(headers=auth)
            assert resp.status_code == 200, resp.text
            case.validate_response(resp, checks=CHECKS, headers=auth)


def test_integers_beyond_64_bits_are_refused_not_crashed(fuzz_target: Any) -> None:
    """The case schemathesis found: a refused body echoes its input, and orjson cannot encode ints > 64 bits."""
    from fastapi.testclient import TestClient

    from bastion.gateway.app import create_app

    _, key, cfg = fuzz_target
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    big = -36893488147419103232
    with TestClient(create_app(cfg, preload=False)) as client:  # its own app: schemathesis's calls end lifespans
        _big_int_requests(client, auth, big)


def _big_int_requests(client: Any, auth: dict[str, str], big: int) -> None:
    r = client.put("/v1/models/fz/policy", headers=auth, content=f'{{"type": {{"": [{big}]}}}}')
    assert r.status_code == 422, r.text
    assert str(big) in r.text  # the refused value is named, exactly
    r = client.put("/v1/models/fz/policy", headers=auth, content=f'{{"type": "top_k", "k": {big}}}')
    assert 400 <= r.status_code < 500, r.text
    r = client.post("/v1/models/fz/predict", headers=auth, content=f'{{"inputs": [[{big}]]}}')
    assert 400 <= r.status_code < 500, r.text
