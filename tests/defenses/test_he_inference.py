"""Encrypted inference: packed CKKS agrees with plaintext; the server never holds the secret key."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from bastion.core.errors import ConfigError, InvalidInputError, ModelLoadError
from bastion.datasets import load_demo_data
from bastion.defenses.encrypted import HEModel, choose_params, ckks, he_mlp
from bastion.models.zoo import TrainConfig, train_classifier


@pytest.fixture(scope="module")
def digits():
    return load_demo_data("digits")


@pytest.fixture(scope="module")
def mlp_model(digits) -> tuple[torch.nn.Module, HEModel]:
    torch.manual_seed(0)
    mod = he_mlp(64, 10, hidden=8)
    train_classifier(mod, digits.splits.x_train, digits.splits.y_train, TrainConfig(epochs=15, lr=3e-3))
    return mod, HEModel.from_torch(mod, (1, 8, 8))


def test_params_follow_depth() -> None:
    assert choose_params(1).poly_modulus_degree == 8192
    assert choose_params(3).coeff_mod_bit_sizes == (60, 40, 40, 40, 60)
    assert choose_params(3).poly_modulus_degree == 16384
    with pytest.raises(ConfigError, match="modulus bits"):
        choose_params(40)


def test_packed_mlp_matches_plaintext(mlp_model, digits) -> None:
    module, he = mlp_model
    x = digits.splits.x_test[:120]
    ctx = ckks.make_context(he.params)
    enc = ckks.encrypt_batch(ctx, x, he.n_features, he.params.slots)
    logits = ckks.decrypt_outputs(ctx, ckks.evaluate(he, enc))
    with torch.no_grad():
        plain = module(torch.from_numpy(x)).double().numpy()
    assert logits.shape == (120, 10)
    assert np.abs(logits - plain).max() < 1e-2
    assert (logits.argmax(1) == plain.argmax(1)).mean() >= 0.995


def test_server_side_holds_only_public_context(mlp_model, digits, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from bastion.defenses.encrypted.server import create_he_app

    _, he = mlp_model
    bundle = he.save(tmp_path / "bundle")
    secret = ckks.make_context(he.params)
    ckks.save_context(secret, tmp_path / "secret.ctx", tmp_path / "public.ctx")
    public = ckks.load_context(tmp_path / "public.ctx", expect_secret=False)
    assert not public.is_private()
    with pytest.raises(InvalidInputError, match="secret key"):
        create_he_app(bundle, tmp_path / "secret.ctx")

    x = digits.splits.x_test[:40]
    enc = ckks.encrypt_batch(secret, x, he.n_features, he.params.slots)
    client = TestClient(create_he_app(bundle, tmp_path / "public.ctx"))
    assert client.get("/healthz").json()["holds_secret_key"] is False
    resp = client.post("/v1/he/predict", content=enc.to_bytes(he.params))
    assert resp.status_code == 200, resp.text
    # the server's answer cannot be decrypted with what the server holds …
    out_public = ckks.CipherBatch.from_bytes(resp.content, public)
    with pytest.raises(InvalidInputError, match="secret context"):
        ckks.decrypt_outputs(public, out_public)
    # … but the client decrypts it to the plaintext model's labels
    logits = ckks.decrypt_outputs(secret, ckks.CipherBatch.from_bytes(resp.content, secret))
    assert (logits.argmax(1) == he.plaintext_logits(x).argmax(1)).all()
    assert client.post("/v1/he/predict", content=b"not a zip").status_code == 422


def test_relu_models_are_refused_and_tampering_detected(mlp_model, tmp_path: Path) -> None:
    relu = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    with pytest.raises(InvalidInputError, match="ReLU"):
        HEModel.from_torch(relu, (4,))
    _, he = mlp_model
    bundle = he.save(tmp_path / "b")
    raw = bytearray((bundle / "weights.npz").read_bytes())
    raw[-40] ^= 0x01
    (bundle / "weights.npz").write_bytes(bytes(raw))
    with pytest.raises(ModelLoadError, match="modified"):
        HEModel.load(bundle)


def test_cli_client_server_roundtrip(tmp_path: Path) -> None:
    from bastion.cli.main import app, build_app

    build_app()
    runner = CliRunner()

    def run(*args: str) -> dict:
        res = runner.invoke(app, [*args, "--format", "json"])
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)

    info = run("harden", "encrypt-model", "--train-demo", "digits", "--arch", "logreg", "--epochs", "20",
               "--out", str(tmp_path / "bundle"))
    assert info["depth"] == 1 and info["plaintext_test_accuracy"] > 0.9
    run("he", "keygen", "--bundle", str(tmp_path / "bundle"), "--out", str(tmp_path / "keys"))
    assert (tmp_path / "keys" / "secret.ctx").stat().st_mode & 0o077 == 0
    run("he", "encrypt-inputs", "--context", str(tmp_path / "keys/secret.ctx"), "--bundle", str(tmp_path / "bundle"),
        "--demo", "digits", "--limit", "60", "--out", str(tmp_path / "in.zip"))
    res = runner.invoke(app, ["he", "infer", "--bundle", str(tmp_path / "bundle"), "--context",
                              str(tmp_path / "keys/secret.ctx"), "--inputs", str(tmp_path / "in.zip"),
                              "--out", str(tmp_path / "out.zip")])
    assert res.exit_code != 0  # the server side refuses the secret context
    run("he", "infer", "--bundle", str(tmp_path / "bundle"), "--context", str(tmp_path / "keys/public.ctx"),
        "--inputs", str(tmp_path / "in.zip"), "--out", str(tmp_path / "out.zip"))
    y = load_demo_data("digits").splits.y_test[:60]
    np.savez(tmp_path / "y.npz", y=y)
    dec = run("he", "decrypt-outputs", "--context", str(tmp_path / "keys/secret.ctx"), "--inputs",
              str(tmp_path / "out.zip"), "--labels", str(tmp_path / "y.npz"))
    assert dec["samples"] == 60 and dec["accuracy"] > 0.85
