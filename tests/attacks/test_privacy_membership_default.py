"""The default membership attack: reference models cloned from the target, a fitted recipe, a time budget."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bastion.assess.checks.privacy import target_membership
from bastion.assess.target import build_target
from bastion.attacks.inference.clone import CloneUnavailable, clone_architecture, verify_trains
from bastion.attacks.inference.membership import MembershipConfig, MembershipResult, run_membership
from bastion.attacks.inference.planning import N_MAX, N_MIN, affordable_models
from bastion.attacks.inference.recipe import DEFAULT_GRID, TOLERANCE, FitStats, fit_recipe
from bastion.attacks.inference.reference import (
    OPTIMIZERS,
    Architecture,
    Recipe,
    ReferenceTrainConfig,
    StackedOptimizer,
    train_reference_models,
)
from bastion.core.errors import ConfigError
from bastion.core.model import InputSpec
from bastion.models.adapters import SklearnAdapter, TorchAdapter
from bastion.models.loaders import load_model


def _noisy(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x, ((x[:, 0] + 0.8 * rng.normal(size=n)) > 0).astype(np.int64)


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 2))


@pytest.fixture(scope="module")
def leaky(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 10-64-2 MLP memorising 150 noisy-label records with SGD (not Bastion's recipe), saved as TorchScript
    with no sidecar, and its .npz (members x_train, non-members x_test)."""
    x, y = _noisy(450, 10, 0)
    torch.manual_seed(0)
    net = _mlp()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    xt, yt = torch.from_numpy(x[:150]), torch.from_numpy(y[:150])
    for _ in range(150):
        for i in range(0, 150, 32):
            opt.zero_grad()
            nn.functional.cross_entropy(net(xt[i : i + 32]), yt[i : i + 32]).backward()
            opt.step()
    d = tmp_path_factory.mktemp("leaky")
    torch.jit.save(torch.jit.script(net.eval()), str(d / "m.pt"))
    np.savez(d / "d.npz", x_train=x[:150], y_train=y[:150], x_test=x[150:], y_test=y[150:])
    return {"model": d / "m.pt", "data": d / "d.npz", "x": x, "y": y}


@pytest.fixture(scope="module")
def default_run(leaky: dict) -> MembershipResult:
    """What `bastion attack membership --model m.pt --data d.npz --n-reference 8` runs."""
    target = build_target(model=leaky["model"], data=leaky["data"])
    return target_membership(target, MembershipConfig(n_reference=8), auto_method=True)


def test_the_default_is_online_lira_on_a_clone_with_a_fitted_recipe(leaky: dict, default_run: MembershipResult) -> None:
    assert MembershipConfig().method == "lira" and MembershipConfig().reference_mode == "online"
    r = default_run
    p = r.params
    assert r.method == "lira" and p["method_choice"].startswith("default: the model returns scores")
    assert p["reference_arch"] == "clone:torchscript" and "clone_unavailable" not in p
    assert p["reference_mode"] == "online" and p["reference_set_size"] == 150 and p["n_reference"] == 8
    assert p["recipe_source"].startswith("fitted") and p["reference_recipe"]["optimizer"] in OPTIMIZERS
    assert p["fit_match"]["target"]["in_accuracy"] == 1.0 and np.isfinite(p["fit_match"]["distance"])
    loss = target_membership(build_target(model=leaky["model"], data=leaky["data"]), MembershipConfig(method="loss"))
    assert r.metrics.auc > 0.6 and r.metrics.auc > loss.metrics.auc


def test_recipe_fit_records_its_choice(default_run: MembershipResult) -> None:
    fit = default_run.params["recipe_fit"]
    tried = fit["candidates"]
    assert len(tried) == len(DEFAULT_GRID) and all({"optimizer", "lr", "epochs", "distance"} <= set(c) for c in tried)
    closest = min(c["distance"] for c in tried)
    eligible = [c for c in tried if c["distance"] <= TOLERANCE * closest]
    assert fit["recipe"]["epochs"] == min(c["epochs"] for c in eligible)  # the cheapest of the close fits
    assert fit["distance"] <= TOLERANCE * closest and fit["measured_model_epoch_s"] > 0
    assert set(fit["target_fit"]) == set(fit["reference_fit"]) >= {"phi_in_deciles", "median_gap", "in_accuracy"}


def test_recipe_fit_prefers_the_recipe_that_reaches_the_targets_fit() -> None:
    x, y = _noisy(400, 10, 1)
    torch.manual_seed(0)
    arch = Architecture.from_factory(_mlp)
    # the target: memorised its 100 members
    ens = train_reference_models(arch, x[:100], y[:100], ReferenceTrainConfig(n_models=1, subset_fraction=1.0,
                                                                              epochs=150, lr=1e-2))
    lp = ens.log_proba(x)[0]
    target = FitStats.of(lp[:100], y[:100], lp[100:], y[100:])
    grid = (Recipe("adam", 1e-5), Recipe("adam", 1e-2))  # the first cannot fit 100 records in 60 epochs
    fit = fit_recipe(arch, x, y, 100, target, scale=5.0, grid=grid, max_epochs=60)
    assert fit.recipe.lr == 1e-2 and fit.distance < fit.tried[0]["distance"]
    assert fit.reference.in_accuracy > 0.9


def _target_files(fmt: str, tmp: Path) -> TorchAdapter:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(4 * 16, 3)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3)  # "trained" weights, unlike any fresh draw
    x = torch.rand(4, 1, 8, 8)
    spec = InputSpec((1, 8, 8), clip_min=0.0, clip_max=1.0)
    if fmt == "module":
        return TorchAdapter(net, spec, 3)
    path = tmp / {"torchscript": "m.pt", "torch-export": "m.pt2", "onnx": "m.onnx"}[fmt]
    if fmt == "torchscript":
        torch.jit.save(torch.jit.script(net), str(path))
    elif fmt == "torch-export":
        torch.export.save(torch.export.export(net, (x,)), str(path))
    else:
        torch.onnx.export(net, (x,), str(path), dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    model = load_model(path, input_spec=spec)
    assert isinstance(model, TorchAdapter)
    return model


@pytest.mark.parametrize("fmt", ["torchscript", "torch-export", "onnx", "module"])
def test_the_clone_is_the_targets_architecture_with_fresh_weights_and_trains(fmt: str, tmp_path: Path) -> None:
    model = _target_files(fmt, tmp_path)
    rng = np.random.default_rng(0)
    x = rng.random((96, 1, 8, 8)).astype(np.float32)
    y = (x[:, 0, :4].mean(axis=(1, 2)) > x[:, 0, 4:].mean(axis=(1, 2))).astype(np.int64) + (x[:, 0, 0, 0] > 0.8)
    arch = clone_architecture(model.module, x)
    assert arch.name.startswith("clone:")
    mine = dict(arch.module.state_dict())
    fresh = arch.init_state()
    assert arch.trainable and all(fresh[k].shape == mine[k].shape for k in arch.trainable)
    assert all(not torch.allclose(fresh[k], mine[k]) for k in arch.trainable)  # re-initialised, not copied
    from torch.func import functional_call

    with torch.no_grad():  # with the target's own weights the clone is the target's function
        assert torch.allclose(functional_call(arch.module, mine, (torch.from_numpy(x),)),
                              model.module(torch.from_numpy(x)), atol=1e-4)
    losses = verify_trains(arch, x, y)
    assert losses["loss_end"] < losses["loss_start"]
    ens = train_reference_models(arch, x, y, ReferenceTrainConfig(n_models=2, epochs=3))
    lp = ens.log_proba(x)
    assert lp.shape == (2, 96, 3) and np.isfinite(lp).all() and not np.allclose(lp[0], lp[1])


def test_plain_modules_are_reset_with_their_own_reset_parameters() -> None:
    class Const(nn.Linear):
        def reset_parameters(self) -> None:
            nn.init.constant_(self.weight, 0.125)
            nn.init.zeros_(self.bias)

    net = nn.Sequential(Const(4, 3))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
    arch = clone_architecture(net, np.zeros((4, 4), dtype=np.float32))
    assert torch.equal(arch.init_state()["0.weight"], torch.full((3, 4), 0.125))


def test_a_broken_clone_is_refused_with_the_reason() -> None:
    class Frozen(nn.Module):  # never uses one of its parameters: training cannot reach it
        def __init__(self) -> None:
            super().__init__()
            self.used = nn.Linear(4, 3)
            self.unused = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(x)

    arch = clone_architecture(Frozen(), np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(CloneUnavailable, match="no gradient reaches"):
        verify_trains(arch, np.random.default_rng(0).random((32, 4), dtype=np.float32), np.zeros(32, dtype=np.int64))


class _BlackBox:
    """Scores only: no torch module to clone."""

    def __init__(self, inner: TorchAdapter) -> None:
        self.inner = inner

    @property
    def n_classes(self) -> int:
        return self.inner.n_classes

    @property
    def input_spec(self) -> InputSpec:
        return self.inner.input_spec

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self.inner.predict_proba(x)


def test_black_box_targets_fall_back_to_the_proxy_and_say_why(leaky: dict) -> None:
    target = load_model(leaky["model"], input_spec=InputSpec((10,)))
    assert isinstance(target, TorchAdapter)
    x, y = leaky["x"], leaky["y"]
    r = run_membership(_BlackBox(target), x[:150], y[:150], x[150:], y[150:], MembershipConfig(n_reference=4))
    assert r.params["reference_arch"] == "proxy-mlp-256" and "black-box" in r.params["clone_unavailable"]


def test_sklearn_targets_are_cloned_with_their_own_hyperparameters() -> None:
    from sklearn.ensemble import RandomForestClassifier

    x, y = _noisy(400, 10, 2)
    est = RandomForestClassifier(n_estimators=10, min_samples_leaf=1, random_state=0).fit(x[:150], y[:150])
    r = run_membership(SklearnAdapter(est, InputSpec((10,))), x[:150], y[:150], x[150:], y[150:],
                       MembershipConfig(n_reference=8))
    p = r.params
    assert p["reference_arch"] == "clone:sklearn:RandomForestClassifier" and p["n_reference"] == 8
    assert p["reference_recipe"]["estimator_params"]["n_estimators"] == 10
    assert r.metrics.auc > 0.6  # a forest memorises its training records


def test_stacked_optimiser_trains_each_model_as_torch_would() -> None:
    recipes = [Recipe("sgd", 0.05, 1e-3), Recipe("adam", 1e-2, 1e-3), Recipe("adamw", 3e-3, 0.1), Recipe("adam", 1e-2, 1e-3)]
    torch.manual_seed(0)
    start = torch.randn(len(recipes), 5, 3)
    stacked = {"w": start.clone().requires_grad_(True)}
    opt = StackedOptimizer(stacked, recipes)
    singles = [start[i].clone().requires_grad_(True) for i in range(len(recipes))]
    torch_opts = [torch.optim.SGD([w], lr=r.lr, momentum=0.9, weight_decay=r.weight_decay) if r.optimizer == "sgd" else
                  (torch.optim.AdamW if r.optimizer == "adamw" else torch.optim.Adam)([w], lr=r.lr,
                                                                                      weight_decay=r.weight_decay)
                  for w, r in zip(singles, recipes, strict=True)]
    for _ in range(5):
        g = torch.randn_like(start)
        stacked["w"].grad = g.clone()
        opt.step()
        for i, (w, o) in enumerate(zip(singles, torch_opts, strict=True)):
            w.grad = g[i].clone()
            o.step()
    for i, w in enumerate(singles):
        assert torch.allclose(stacked["w"][i], w, atol=1e-6), recipes[i]


def test_time_budget_bounds_the_number_of_reference_models(leaky: dict) -> None:
    assert affordable_models(100.0, 10.0, 5.0) == 16  # (100 − 10 spent − 10 reserve) / 5 s per model
    assert affordable_models(10_000.0, 0.0, 0.1) == N_MAX
    with pytest.raises(ConfigError, match=r"affords 1 reference models.*--time-budget \d+"):
        affordable_models(30.0, 10.0, 10.0)
    target = build_target(model=leaky["model"], data=leaky["data"])
    p = target_membership(target, MembershipConfig(time_budget_s=20.0)).params
    assert p["n_reference_source"] == "time budget" and p["time_budget_s"] == 20.0
    assert N_MIN <= p["n_reference"] <= N_MAX and p["measured_model_epoch_s"] > 0
    assert p["reference_setup_s"] + p["n_reference"] * p["estimated_model_s"] <= 20.0


def test_bad_budgets_and_missing_population_are_clear_errors(leaky: dict) -> None:
    with pytest.raises(ConfigError, match="time_budget_s must be > 0"):
        MembershipConfig(time_budget_s=0)
    x, y = leaky["x"], leaky["y"]
    model = load_model(leaky["model"], input_spec=InputSpec((10,)))
    with pytest.raises(ConfigError, match="below the minimum of 10 s"):
        run_membership(model, x[:150], y[:150], x[150:], y[150:], MembershipConfig(time_budget_s=3))
    with pytest.raises(ConfigError, match=r"population data.*--reference-mode online"):
        run_membership(model, x[:150], y[:150], x[150:], y[150:], MembershipConfig(reference_mode="offline"))


def test_cli_default_is_a_reference_attack(leaky: dict, capsys: pytest.CaptureFixture[str]) -> None:
    from bastion.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["attack", "membership", "--model", str(leaky["model"]), "--data", str(leaky["data"]), "--n-reference",
              "8", "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert exc.value.code in (0, None) and doc["method"] == "lira"
    assert doc["params"]["reference_arch"] == "clone:torchscript" and doc["params"]["time_budget_s"] == 180.0
    for argv in (["--time-budget", "0"], ["--time-budget", "3"], ["--reference-arch", "resnet-9000"]):
        with pytest.raises(SystemExit) as exc:
            main(["attack", "membership", "--model", str(leaky["model"]), "--data", str(leaky["data"]), *argv])
        assert exc.value.code == 2
        assert "error:" in capsys.readouterr().err
