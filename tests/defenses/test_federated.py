"""Federated learning: partitions, configuration, DP accounting, and real Flower simulations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bastion.core.errors import ConfigError
from bastion.datasets import load_demo_data
from bastion.defenses.federated import (
    FederatedConfig,
    FederatedError,
    PartitionSpec,
    partition,
    run_federated,
)
from bastion.defenses.federated.privacy import central_epsilon, central_noise_multiplier, privacy_statement


@pytest.fixture(scope="module")
def digits():
    return load_demo_data("digits")


def test_partitions_cover_every_sample_once_and_dirichlet_skews(digits) -> None:
    y = digits.splits.y_train
    for spec in ("iid", "dirichlet:0.5"):
        parts = partition(y, 10, PartitionSpec.parse(spec), seed=1)
        allidx = np.concatenate(parts)
        assert len(allidx) == len(y) and len(np.unique(allidx)) == len(y)
    iid = partition(y, 10, PartitionSpec.parse("iid"), seed=1)
    skew = partition(y, 10, PartitionSpec.parse("dirichlet:0.1"), seed=1)

    def dominant_share(parts: list[np.ndarray]) -> float:
        return float(np.mean([np.bincount(y[p]).max() / len(p) for p in parts]))

    assert dominant_share(skew) > dominant_share(iid) + 0.2
    with pytest.raises(ConfigError, match="dirichlet:ALPHA"):
        PartitionSpec.parse("zipf:2")


def test_config_rejects_incoherent_runs() -> None:
    with pytest.raises(ConfigError, match="secure aggregation"):
        FederatedConfig(secure_aggregation=True, aggregation="median").validate()
    with pytest.raises(ConfigError, match="epsilon"):
        FederatedConfig(dp="central").validate()
    with pytest.raises(ConfigError, match="malicious"):
        FederatedConfig(clients=3, malicious_clients=3).validate()


def test_server_optimisers_and_lr_schedule_are_validated() -> None:
    with pytest.raises(ConfigError, match="lr-decay"):
        FederatedConfig(lr_decay=0.0).validate()
    with pytest.raises(ConfigError, match="server-momentum"):
        FederatedConfig(aggregation="fedavgm", server_momentum=1.0).validate()
    assert FederatedConfig(aggregation="fedavgm").effective_server_lr == 1.0
    assert FederatedConfig(aggregation="fedadam").effective_server_lr == 0.01
    assert FederatedConfig(aggregation="fedadam", server_lr=0.1).effective_server_lr == 0.1


def test_inprocess_replay_trains_and_server_momentum_changes_the_model(digits) -> None:
    from bastion.defenses.federated.inprocess import run_inprocess

    s = digits.splits
    base = dict(clients=4, rounds=4, local_epochs=1, partition="dirichlet:0.5", seed=3)
    avg = run_inprocess(FederatedConfig(**base), s.x_train, s.y_train, s.x_test, s.y_test)
    avgm = run_inprocess(FederatedConfig(**base, aggregation="fedavgm"), s.x_train, s.y_train, s.x_test, s.y_test)
    again = run_inprocess(FederatedConfig(**base, aggregation="fedavgm"), s.x_train, s.y_train, s.x_test, s.y_test)
    assert [r["round"] for r in avgm] == [0, 1, 2, 3, 4]
    assert avg[0] == avgm[0]  # same initial model
    assert avgm[-1]["accuracy"] > avgm[0]["accuracy"] + 0.3 and avg[-1]["accuracy"] > avg[0]["accuracy"] + 0.2
    assert avgm[1] == avg[1]  # round 1: FedAvgM's momentum buffer is just the first update
    assert avgm[-1]["loss"] != avg[-1]["loss"]  # afterwards momentum changes the trajectory
    assert again == avgm  # deterministic for a seed
    with pytest.raises(ConfigError, match="in-process"):
        run_inprocess(FederatedConfig(**base, dp="central", epsilon=3.0), s.x_train, s.y_train, s.x_test, s.y_test)


def test_dp_statements_match_the_accountant() -> None:
    cfg = FederatedConfig(dp="central", epsilon=3.0, rounds=20)
    sigma = central_noise_multiplier(cfg)
    assert sigma > 0
    eps = central_epsilon(sigma, 20, cfg.delta)
    assert 2.5 < eps <= 3.0 + 1e-6
    st = privacy_statement(cfg)
    assert st is not None and st["epsilon"] == pytest.approx(eps)
    local = privacy_statement(FederatedConfig(dp="local", epsilon=4.0, rounds=8))
    assert local is not None and local["epsilon_per_round"] == pytest.approx(0.5) and local["epsilon"] == pytest.approx(4.0)


@pytest.mark.slow
def test_flower_run_with_a_malicious_client_and_robust_aggregation(digits) -> None:
    cfg = FederatedConfig(arch="digits-mlp", clients=4, rounds=3, local_epochs=2, aggregation="median",
                          malicious_clients=1, timeout_s=600)
    seen: list[int] = []
    result = run_federated(cfg, digits.splits, on_round=lambda row: seen.append(row["round"]))
    assert [r["round"] for r in result.history] == [0, 1, 2, 3]
    assert seen == [1, 2, 3]
    assert result.history[-1]["accuracy"] > result.history[0]["accuracy"] + 0.2
    assert 0.0 <= result.history[-1]["backdoor_success"] <= 1.0
    assert result.record["config"]["malicious_clients"] == 1 and result.record["partition"]["sizes"]


@pytest.mark.slow
def test_the_flower_simulation_equals_the_inprocess_replay(digits) -> None:
    """Aggregation follows partition order, not Ray completion order: one seed, one model."""
    from bastion.defenses.federated.inprocess import run_inprocess

    s = digits.splits
    cfg = FederatedConfig(clients=4, rounds=3, local_epochs=1, partition="dirichlet:0.5", aggregation="fedavgm",
                          lr=0.1, seed=5, timeout_s=600)
    flower = run_federated(cfg, s)
    replay = run_inprocess(cfg, s.x_train, s.y_train, s.x_test, s.y_test)
    assert [(r["round"], r["accuracy"], r["loss"]) for r in flower.history] == \
        [(r["round"], r["accuracy"], r["loss"]) for r in replay]


@pytest.mark.slow
def test_a_failing_client_gives_a_clear_error_not_a_hang(digits, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_FL_FAIL_CLIENT", "1")
    cfg = FederatedConfig(arch="digits-mlp", clients=3, rounds=2, timeout_s=400)
    with pytest.raises(FederatedError, match=r"round 1 failed: .*client 1 failed"):
        run_federated(cfg, digits.splits)


@pytest.mark.slow
def test_cli_secure_aggregation_with_central_dp_writes_a_loadable_model(tmp_path: Path) -> None:
    from bastion.cli.main import app, build_app
    from bastion.models.loaders import load_model

    build_app()
    out = tmp_path / "fl.pt"
    res = CliRunner().invoke(app, ["harden", "federated", "--model-spec", "digits-mlp", "--demo", "digits",
                                   "--clients", "3", "--rounds", "2", "--secure-aggregation", "--dp", "central",
                                   "--epsilon", "8", "--out", str(out), "--format", "json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["secure_aggregation"] is True and info["privacy"]["mode"] == "central"
    assert info["privacy"]["epsilon"] <= 8.0 + 1e-6
    record = json.loads((tmp_path / "fl.pt.training.json").read_text())
    assert record["config"]["clients"] == 3 and len(record["rounds"]) == 3
    model = load_model(out)
    x = load_demo_data("digits").splits.x_test[:5]
    assert model.predict_proba(x).shape == (5, 10)


def test_cli_passes_server_optimiser_options_to_the_config(tmp_path: Path) -> None:
    from bastion.cli.main import app, build_app

    build_app()
    res = CliRunner().invoke(app, ["harden", "federated", "--model-spec", "digits-mlp", "--demo", "digits",
                                   "--aggregation", "fedavgm", "--server-momentum", "1.5",
                                   "--out", str(tmp_path / "fl.pt")])
    assert res.exit_code != 0 and "server-momentum" in f"{res.output}{res.exception}"
    assert not (tmp_path / "fl.pt").exists()
