"""RemoteAdapter against a real HTTP server on 127.0.0.1: scores, labels, budget, errors."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from bastion.core.errors import ModelLoadError, QueryBudgetExceeded
from bastion.core.model import InputSpec
from bastion.models.loaders import load_model
from bastion.models.remote import RemoteAdapter

W = np.array([[1.0, -1.0, 0.5], [-0.5, 1.0, 0.2]])  # 2 features → 3 classes


class _Handler(BaseHTTPRequestHandler):
    received: list[int] = []
    auth: list[str | None] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        x = np.asarray(body["inputs"], dtype=float).reshape(len(body["inputs"]), -1)
        type(self).received.append(len(x))
        type(self).auth.append(self.headers.get("Authorization"))
        z = x @ W
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        if self.path.endswith("/labels"):
            answer = {"predictions": p.argmax(1).tolist()}
        elif self.path.endswith("/broken"):
            self.send_response(500)
            self.end_headers()
            return
        else:
            answer = {"model": "m", "version": "1", "predictions": p.argmax(1).tolist(), "probabilities": p.tolist()}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_probabilities_and_budget_counting_samples(server: str) -> None:
    x = np.random.default_rng(0).normal(size=(10, 2)).astype(np.float32)
    model = load_model(None, endpoint=f"{server}/predict", input_spec=InputSpec((2,), max_batch=4),
                       query_budget=15, api_key="k-123")

    p = model.predict_proba(x)

    assert isinstance(model, RemoteAdapter) and model.label_only is False
    assert p.shape == (10, 3) and np.allclose(p.sum(1), 1)
    assert model.n_classes == 3
    assert model.queries_used == 10 and model.remaining == 5
    assert _Handler.received[-3:] == [4, 4, 2]  # batched by max_batch
    assert _Handler.auth[-1] == "Bearer k-123"
    sent_before = len(_Handler.received)
    with pytest.raises(QueryBudgetExceeded, match="budget of 15"):
        model.predict_proba(x)  # 10 more would exceed 15: refused before sending
    assert len(_Handler.received) == sent_before


def test_label_only_endpoint(server: str) -> None:
    model = RemoteAdapter(f"{server}/labels", InputSpec((2,)))
    with pytest.raises(ModelLoadError, match="labels only"):
        _ = model.n_classes
    model.set_n_classes(3)

    p = model.predict_proba(np.array([[3.0, 0.0], [0.0, 3.0]], dtype=np.float32))

    assert model.label_only is True
    assert p.tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


def test_server_errors_are_clear(server: str) -> None:
    model = RemoteAdapter(f"{server}/broken", InputSpec((2,)), n_classes=3)
    with pytest.raises(ModelLoadError, match="answered 500"):
        model.predict_proba(np.zeros((1, 2), dtype=np.float32))
    dead = RemoteAdapter("http://127.0.0.1:9/predict", InputSpec((2,)), n_classes=3, timeout_s=2)
    with pytest.raises(ModelLoadError, match="unreachable"):
        dead.predict_proba(np.zeros((1, 2), dtype=np.float32))


def test_build_target_on_a_label_only_endpoint(server: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bastion.assess.target import build_target

    x = np.random.default_rng(2).normal(size=(12, 2)).astype(np.float32)
    y = (x @ W).argmax(1)
    np.savez(tmp_path / "eval.npz", x=x, y=y)

    t = build_target(endpoint=f"{server}/labels", data=tmp_path / "eval.npz", query_budget=50)

    assert not t.is_white_box and t.model_format == "remote"
    assert t.model.n_classes == int(y.max()) + 1
    assert set(t.fingerprints) == {"endpoint", "data"}
    assert isinstance(t.model, RemoteAdapter) and 0 < t.model.queries_used <= 3


def test_budget_is_never_exceeded_for_any_request_sequence(server: str) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=25, deadline=None)
    @given(budget=st.integers(1, 12), sizes=st.lists(st.integers(1, 6), min_size=1, max_size=6))
    def check(budget: int, sizes: list[int]) -> None:
        model = RemoteAdapter(f"{server}/predict", InputSpec((2,), max_batch=4), n_classes=3, query_budget=budget)
        sent = 0
        for n in sizes:
            before = sum(_Handler.received)
            try:
                model.predict_proba(np.zeros((n, 2), dtype=np.float32))
                sent += n
            except QueryBudgetExceeded:
                assert sum(_Handler.received) == before  # refused before anything was sent
            assert model.queries_used == sent <= budget

    check()


def test_cli_assess_on_an_endpoint(server: str, fake_checks, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from bastion.cli.main import main

    x = np.random.default_rng(3).normal(size=(30, 2)).astype(np.float32)
    np.savez(tmp_path / "eval.npz", x=x, y=(x @ W).argmax(1))

    with pytest.raises(SystemExit) as exc:
        main(["assess", "--endpoint", f"{server}/predict", "--data", str(tmp_path / "eval.npz"), "--query-budget", "100",
              "--only", "test_assess.weak", "--out", str(tmp_path / "out"), "--format", "json", "--fail-on", "critical"])

    assert exc.value.code == 0
    assert json.loads(capsys.readouterr().out)["findings"]["high"] == 1
    doc = json.loads((tmp_path / "out" / "assessment.json").read_text())
    assert doc["target"]["model_format"] == "remote" and doc["target"]["white_box"] is False
    assert "endpoint" in doc["target"]["fingerprints"]
