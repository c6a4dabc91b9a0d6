"""The Ray executor gives the local executor's results, streams them, and survives a dead worker."""

from __future__ import annotations

import pytest

from bastion.assess.executors.ray import RayExecutor, ship_target, unship_target
from bastion.assess.runner import run_assessment
from bastion.core.severity import Status
from bastion.models.zoo import demo_target

CHECKS = ["supply_chain.scan", "privacy.membership"]


def _untimed(metrics: dict) -> dict:
    """Metrics without wall-clock timings (those legitimately differ between machines)."""
    timing = ("seconds", "duration", "_s", "per_s", "throughput")
    return {k: v for k, v in metrics.items() if not any(k.endswith(t) or t in k for t in timing)}


def test_shipping_a_torchscript_target_keeps_its_predictions() -> None:
    target = demo_target("digits")
    x = target.data.x_test[:16]
    again = unship_target(ship_target(target))
    assert (again.model.predict_proba(x) == target.model.predict_proba(x)).all()
    assert again.fingerprints == target.fingerprints


@pytest.mark.slow
def test_ray_matches_local_and_survives_a_crashed_worker(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    target = demo_target("digits")
    local = run_assessment(target, profile="quick", seed=7, out_dir=tmp_path / "local", only=CHECKS,
                           executor="local", progress=False)
    executor = RayExecutor(num_cpus=2)
    try:
        remote = run_assessment(target, profile="quick", seed=7, out_dir=tmp_path / "ray", only=CHECKS,
                                executor=executor, progress=False)
        assert [r.check_id for r in remote.results] == [r.check_id for r in local.results]
        for a, b in zip(local.results, remote.results, strict=True):
            assert a.status == b.status and a.status != Status.ERROR, (a.error, b.error)
            assert _untimed(a.metrics) == _untimed(b.metrics), a.check_id
        monkeypatch.setenv("BASTION_RAY_CRASH_CHECK", "privacy.membership")
        ray.shutdown()  # workers must see the fault-injection variable
        crashed = run_assessment(target, profile="quick", seed=7, out_dir=tmp_path / "crash", only=CHECKS,
                                 executor=RayExecutor(num_cpus=2), progress=False)
        by_id = {r.check_id: r for r in crashed.results}
        assert by_id["privacy.membership"].status == Status.ERROR
        assert "ray task failed" in (by_id["privacy.membership"].error or "")
        assert by_id["supply_chain.scan"].status == local.result("supply_chain.scan").status
    finally:
        ray.shutdown()
