"""Proof of ownership: fingerprints separate derived copies from independent models; watermarks embed and
verify; the key is needed and tampering is caught; the CLI's exit codes say the verdict."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bastion.cli.main import main
from bastion.core.errors import ConfigError, IntegrityError, InvalidInputError
from bastion.defenses.ownership import (
    Fingerprint,
    FingerprintConfig,
    WatermarkConfig,
    create_fingerprint,
    embed_watermark,
    load_trigger_set,
    save_trigger_set,
    verify_fingerprint,
    verify_watermark,
)
from bastion.defenses.ownership.models import architecture_pool, prune_copy, train_independent
from bastion.models.adapters import TorchAdapter

TINY = FingerprintConfig(n_fingerprints=30, n_candidates=120, n_surrogates=2, n_references=2, n_null=3, epochs=10,
                         steps=40, seed=0)


@pytest.fixture(scope="module")
def digits() -> Any:
    from bastion.models.zoo import demo_target

    return demo_target("digits")


@pytest.fixture(scope="module")
def fingerprint(digits: Any) -> Fingerprint:
    d = digits.data
    return create_fingerprint(digits.model, d.x_train, d.y_train, x_seed=d.x_test, config=TINY)


def test_fingerprint_separates_extracted_and_pruned_copies_from_an_independent_model(digits: Any,
                                                                                      fingerprint: Fingerprint) -> None:
    from bastion.attacks.extraction import ExtractionConfig, run_extraction

    d, spec = digits.data, digits.model.input_spec
    stolen = run_extraction(digits.model, d.x_test, 600, d.x_train[:200],
                            config=ExtractionConfig(schedule=(600,), epochs=10, seed=3)).surrogate
    assert stolen is not None
    _, factory = architecture_pool(spec.shape, 10)[1]
    independent = train_independent(factory, d.x_train, d.y_train, epochs=10, seed=4242)

    v_source = verify_fingerprint(fingerprint, digits.model)
    v_stolen = verify_fingerprint(fingerprint, TorchAdapter(stolen, spec, 10))
    v_pruned = verify_fingerprint(fingerprint, TorchAdapter(prune_copy(digits.model.module, 0.3), spec, 10))
    v_indep = verify_fingerprint(fingerprint, TorchAdapter(independent, spec, 10))

    assert v_source.match_rate == 1.0 and v_source.derived
    assert v_stolen.derived and v_stolen.match_rate > v_indep.match_rate
    assert v_pruned.derived
    assert not v_indep.derived and v_indep.p_value > 0.01
    assert len(fingerprint.null_match_rates) == 3 and max(fingerprint.null_match_rates) < 0.6


def test_fingerprint_file_round_trips_and_detects_edits(fingerprint: Fingerprint, tmp_path: Path,
                                                        digits: Any) -> None:
    path = fingerprint.save(tmp_path / "fp.json")
    back = Fingerprint.load(path)
    assert back.digest == fingerprint.digest and np.array_equal(back.x, fingerprint.x)
    v = verify_fingerprint(back, digits.model, query_budget=12)
    assert v.queries == 12 and v.matches == 12
    d = json.loads(path.read_text())
    d["labels"][0] = (d["labels"][0] + 1) % 10
    path.write_text(json.dumps(d))
    with pytest.raises(InvalidInputError, match="digest"):
        Fingerprint.load(path)


def test_watermark_embeds_verifies_and_needs_its_key(digits: Any, tmp_path: Path) -> None:
    from bastion.data.privacy.encryption import generate_kek

    d = digits.data
    res, net, key = embed_watermark("digits-mlp", d.x_train, d.y_train, 10, x_test=d.x_test, y_test=d.y_test,
                                    clip_min=0.0, clip_max=1.0, config=WatermarkConfig(epochs=15, n_trigger=50),
                                    measure_cost=True)
    assert res.trigger_accuracy >= 0.9 and res.accuracy_cost is not None and res.accuracy_cost <= 0.03
    kek, _ = generate_kek(tmp_path / "wm.key")
    assert os.stat(kek).st_mode & 0o777 == 0o600
    path = save_trigger_set(key, tmp_path / "m.watermark", kek)
    assert key.x.tobytes() not in path.read_bytes()
    back = load_trigger_set(path, kek)
    spec = digits.model.input_spec
    marked = verify_watermark(back, TorchAdapter(net, spec, 10))
    clean = verify_watermark(back, digits.model)
    assert marked.verified and marked.p_value < 1e-6
    assert not clean.verified and clean.trigger_accuracy < 0.3

    other, _ = generate_kek(tmp_path / "other.key")
    with pytest.raises(IntegrityError, match="key id"):
        load_trigger_set(path, other)
    body = json.loads(path.read_text())
    body["header"]["n_classes"] = 2
    path.write_text(json.dumps(body))
    with pytest.raises(IntegrityError, match="authenticate"):
        load_trigger_set(path, kek)
    os.chmod(kek, 0o644)
    with pytest.raises(ConfigError, match="0600"):
        load_trigger_set(path, kek)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, _ = capsys.readouterr()
    return int(exc.value.code or 0), out


def test_cli_fingerprint_and_watermark_exit_codes(digits: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  bastion_home: Path) -> None:
    src = digits.model_path
    fp = tmp_path / "fp.json"
    code, out = _run(["model", "fingerprint", "create", src, "--data", "demo:digits", "--out", str(fp), "--n", "20",
                      "--epochs", "5", "--surrogates", "1", "--references", "1", "--null-models", "2",
                      "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["n"] == 20 and fp.is_file()
    code, out = _run(["model", "fingerprint", "verify", str(fp), "--model", src, "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["derived"] is True and json.loads(out)["queries"] == 20

    model, key = tmp_path / "wm.pt", tmp_path / "wm.key"
    code, out = _run(["harden", "watermark", "--data", "demo:digits", "--model-spec", "digits-mlp", "--out", str(model),
                      "--key", str(key), "--epochs", "8", "--n-trigger", "40", "--no-measure-cost", "--format",
                      "json"], capsys)
    assert code == 0 and json.loads(out)["trigger_accuracy"] >= 0.8
    trig = Path(json.loads(out)["trigger_set"])
    code, out = _run(["model", "watermark", "verify", str(trig), "--key", str(key), "--model", str(model),
                      "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["verified"] is True
    code, out = _run(["model", "watermark", "verify", str(trig), "--key", str(key), "--model", src,
                      "--format", "json"], capsys)
    assert code == 1 and json.loads(out)["verified"] is False
    code, _ = _run(["model", "watermark", "verify", str(trig), "--key", str(key)], capsys)
    assert code == 2
