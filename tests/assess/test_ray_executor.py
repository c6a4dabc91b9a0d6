"""The Ray executor gives the local executor's results, streams them, and survives a dead worker;
attack batches give the same results wherever they run."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.assess.executors.base import untimed
from bastion.assess.executors.batches import AttackBatch, run_attack, run_batch
from bastion.assess.executors.ray import RayExecutor, ship_target, unship_target
from bastion.assess.runner import run_assessment
from bastion.core.severity import Status
from bastion.models.zoo import demo_target

CHECKS = ["supply_chain.scan", "privacy.membership", "evasion.robustness_curve"]


def test_shipping_a_torchscript_target_keeps_its_predictions() -> None:
    target = demo_target("digits")
    x = target.data.x_test[:16]
    again = unship_target(ship_target(target))
    assert (again.model.predict_proba(x) == target.model.predict_proba(x)).all()
    assert again.fingerprints == target.fingerprints


@pytest.mark.slow
def test_ray_matches_local_with_attack_batches_and_survives_crashed_workers(tmp_path, monkeypatch) -> None:
    """Checks and attack batches as Ray tasks: the local executor's results; a dead worker (a check's,
    or one attack batch's) costs that check only."""
    import ray

    target = demo_target("digits")
    # membership by the deterministic LOSS attack: reference-model training (the default) differs in the last
    # bits between thread counts, and Ray workers run with other thread counts than this process
    options = {"attack_batch_size": 30, "samples": 90, "eps": [0.05, 0.1], "membership_method": "loss"}
    local = run_assessment(target, profile="quick", seed=7, out_dir=tmp_path / "local", only=CHECKS, options=options,
                           executor="local", progress=False)
    executor = RayExecutor(num_cpus=2)
    try:
        remote = run_assessment(target, profile="quick", seed=7, out_dir=tmp_path / "ray", only=CHECKS,
                                options=options, executor=executor, progress=False)
        assert [r.check_id for r in remote.results] == [r.check_id for r in local.results]
        for a, b in zip(local.results, remote.results, strict=True):
            assert a.status == b.status and a.status != Status.ERROR, (a.error, b.error)
            assert untimed(a.metrics) == untimed(b.metrics), a.check_id
        assert remote.result("evasion.robustness_curve").params["attack_params"]["attack_batches"] == 3
        monkeypatch.setenv("BASTION_RAY_CRASH_CHECK", "privacy.membership")
        monkeypatch.setenv("BASTION_RAY_CRASH_BATCH", "1")
        ray.shutdown()  # workers must see the fault-injection variables
        crashed = run_assessment(target, profile="quick", seed=7, out_dir=tmp_path / "crash", only=CHECKS,
                                 options=options, executor=RayExecutor(num_cpus=2), progress=False)
        by_id = {r.check_id: r for r in crashed.results}
        assert by_id["privacy.membership"].status == Status.ERROR
        assert "ray task failed" in (by_id["privacy.membership"].error or "")
        curve = by_id["evasion.robustness_curve"]
        assert curve.status == Status.ERROR and "attack batch 1" in (curve.error or ""), curve.error
        assert by_id["supply_chain.scan"].status == local.result("supply_chain.scan").status
    finally:
        ray.shutdown()


def test_untimed_drops_timings_at_any_depth() -> None:
    m = {"acc": 0.5, "duration_s": 1.0, "curve": [{"eps": 0.1, "duration_s": 2.0}], "samples_per_s": 9.0}
    assert untimed(m) == {"acc": 0.5, "curve": [{"eps": 0.1}]}


def test_attack_batches_are_independent_seeded_slices() -> None:
    from bastion.attacks.evasion import run_evasion

    target = demo_target("digits")
    x, y = target.data.x_test[:50], target.data.y_test[:50]
    whole = run_evasion(target.model, x, y, "pgd", "linf", 0.1, steps=5, seed=3)
    # one batch big enough for every sample: exactly the unsplit attack
    same = run_attack(target.model, x, y, "pgd", "linf", 0.1, steps=5, seed=3, batch_size=50)
    assert (same.x_adv == whole.x_adv).all() and "attack_batches" not in same.params
    split = run_attack(target.model, x, y, "pgd", "linf", 0.1, steps=5, seed=3, batch_size=20)
    assert split.params["attack_batches"] == 3 and split.samples == 50
    parts = [run_batch(target.model, AttackBatch(i, x[s:s + 20], y[s:s + 20], "pgd", "linf", 0.1, 5, 3 + i))
             for i, s in enumerate((0, 20, 40))]
    assert (split.x_adv == np.concatenate([p.x_adv for p in parts])).all()
    assert (split.pred_adv == np.concatenate([p.pred_adv for p in parts])).all()
    assert split.clean_accuracy == whole.clean_accuracy  # clean predictions do not depend on batching
    assert split.robust_accuracy == float((split.pred_adv == y).mean())
    assert abs(split.robust_accuracy - whole.robust_accuracy) <= 0.1  # same attack, other random starts


def test_an_assessment_option_splits_the_evasion_checks_attacks(tmp_path) -> None:
    target = demo_target("digits")
    a = run_assessment(target, profile="quick", seed=1, out_dir=tmp_path, only=["evasion.robustness_curve"],
                       options={"attack_batch_size": 40, "samples": 100, "eps": [0.1]}, executor="local", progress=False)
    r = a.result("evasion.robustness_curve")
    assert r.status != Status.ERROR, r.error
    assert r.params["attack_batch_size"] == 40 and r.params["attack_params"]["attack_batches"] == 3
    bad = run_assessment(target, profile="quick", seed=1, out_dir=tmp_path / "bad", only=["evasion.robustness_curve"],
                         options={"attack_batch_size": 0}, executor="local", progress=False)
    assert "attack_batch_size must be a positive integer" in (bad.result("evasion.robustness_curve").error or "")
