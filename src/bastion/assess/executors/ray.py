"""``RayExecutor``: run an assessment's checks as Ray tasks (local Ray, or a cluster by address).

What is shipped to workers, once per run: the target's data splits and metadata (numpy arrays in
Ray's object store) and the model — TorchScript modules as their serialised bytes
(``torch.jit.save``), other adapters (scikit-learn, eager torch) through Ray's serializer. Each
task then runs one check with the same ``RunSpec`` (profile, seed, options) as the local
executor, so a run gives the same results for the same seed. Results stream back as tasks finish
(``ray.wait``); a task whose worker dies or raises becomes an ``error`` result for that check
only, and the others are kept (``BASTION_RAY_CRASH_CHECK=<check id>`` kills the worker running
that check, to rehearse exactly this).

Attack batches: with ``--option attack_batch_size=N`` a check's attacks are split into batches
of ``N`` samples (``bastion.assess.executors.batches``) and each batch runs as its own Ray task,
from inside the check's task, against the model already in the object store; the batching and the
per-batch seeds are the local executor's, so results stay identical. A batch whose worker dies
(``BASTION_RAY_CRASH_BATCH=<batch index>`` rehearses it) makes that check an ``error`` result.

Usage: ``bastion assess … --executor ray [--ray-address ADDR]`` (``BASTION_RAY_ADDRESS`` also
works). Memory per task ≈ the model + one copy of the data + the check's working set.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from bastion.assess.executors.base import ProgressReporter, RunSpec, error_result, run_check
from bastion.assess.executors.batches import AttackBatch, run_batch, use_batch_runner
from bastion.assess.registry import Check
from bastion.core.errors import BastionError, DependencyError
from bastion.core.results import CheckResult
from bastion.core.target import Target

K = TypeVar("K")


@dataclass
class ShippedModel:
    """A model in a form every Ray worker can rebuild."""

    model: Any  # ``None`` when ``scripted`` holds it
    scripted: bytes | None
    adapter_kwargs: dict[str, Any]
    affine: tuple[Any, Any] | None = None  # (shift, scale) of an ``AffineInputAdapter`` around the model


@dataclass
class ShippedTarget:
    """A ``Target`` in a form every Ray worker can rebuild (its model travels as a ``ShippedModel``)."""

    target: Target  # with ``model`` replaced by ``None``
    model: ShippedModel


def ship_model(model: Any) -> ShippedModel:
    import dataclasses

    import torch

    from bastion.models.adapters import AffineInputAdapter, TorchAdapter

    if isinstance(model, AffineInputAdapter):  # per-feature units: ship the base model and the affine map
        return dataclasses.replace(ship_model(model.base), affine=(model.shift, model.scale))
    if isinstance(model, TorchAdapter) and isinstance(model.module, torch.jit.ScriptModule):
        buf = io.BytesIO()
        torch.jit.save(model.module, buf)
        kwargs = {"input_spec": model.input_spec, "n_classes": model.n_classes, "info": model.info}
        return ShippedModel(None, buf.getvalue(), kwargs)
    return ShippedModel(model, None, {})


def unship_model(shipped: ShippedModel) -> Any:
    import torch

    from bastion.models.adapters import AffineInputAdapter, TorchAdapter

    base = shipped.model if shipped.scripted is None else \
        TorchAdapter(torch.jit.load(io.BytesIO(shipped.scripted)), **shipped.adapter_kwargs)
    return base if shipped.affine is None else AffineInputAdapter(base, *shipped.affine)


def ship_target(target: Target) -> ShippedTarget:
    import copy

    light = copy.copy(target)
    light.model = None  # type: ignore[assignment]
    return ShippedTarget(light, ship_model(target.model))


def unship_target(shipped: ShippedTarget) -> Target:
    import copy

    target = copy.copy(shipped.target)
    target.model = unship_model(shipped.model)
    return target


def _run_batch_remote(shipped_model: ShippedModel, batch: AttackBatch) -> Any:
    if os.environ.get("BASTION_RAY_CRASH_BATCH") == str(batch.index):  # fault injection: this batch's worker dies
        os._exit(18)
    return run_batch(unship_model(shipped_model), batch)


class RayBatchRunner:
    """Attack batches as Ray tasks (used inside a check's task; Ray lends its CPU while it waits).

    The target's own model is already in the object store (``model_ref``); any other model a
    check attacks is shipped once per attack.
    """

    name = "ray"

    def __init__(self, model_ref: Any, model: Any, cpus_per_task: float = 1.0) -> None:
        self.model_ref, self.model, self.cpus_per_task = model_ref, model, cpus_per_task

    def map(self, model: Any, batches: list[AttackBatch]) -> list[Any]:
        import ray

        ref = self.model_ref if model is self.model else ray.put(ship_model(model))
        remote = ray.remote(num_cpus=self.cpus_per_task, max_retries=0)(_run_batch_remote)
        refs = [remote.remote(ref, b) for b in batches]
        results = []
        for b, r in zip(batches, refs, strict=True):
            try:
                results.append(ray.get(r))
            except Exception as exc:
                for other in refs:
                    ray.cancel(other)
                raise BastionError(f"attack batch {b.index} ({b.attack}, {len(b.x)} samples) failed: ray task "
                                   f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from None
        return results


def as_completed(ray: Any, pending: dict[Any, K]) -> Iterator[tuple[K, Any, Exception | None]]:
    """``(key, value, None)`` — or ``(key, None, exception)`` when the task failed — for each Ray task of
    ``pending`` (``{object ref: key}``) as it finishes."""
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            key = pending.pop(ref)
            try:
                value, error = ray.get(ref), None
            except Exception as exc:  # worker crash, serialisation failure …: one task lost, not the run
                value, error = None, exc
            yield key, value, error


def _run_remote(check_id: str, shipped: ShippedTarget, spec: RunSpec, model_ref: list[Any],
                cpus_per_task: float) -> CheckResult:
    from bastion.assess.registry import get_check

    if os.environ.get("BASTION_RAY_CRASH_CHECK") == check_id:  # fault injection: the worker process dies
        os._exit(17)
    target = unship_target(shipped)
    with use_batch_runner(RayBatchRunner(model_ref[0], target.model, cpus_per_task)):
        return run_check(get_check(check_id), target, spec)


class RayExecutor:
    """Checks as Ray tasks; see the module docstring."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, cpus_per_task: float = 1.0) -> None:
        self.address = address or os.environ.get("BASTION_RAY_ADDRESS") or None
        self.num_cpus = num_cpus
        self.cpus_per_task = cpus_per_task

    def _init(self) -> Any:
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - ray is in the federated extra
            raise DependencyError.missing("ray", "federated") from exc
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "ignore_reinit_error": True}
            if self.address:
                kwargs["address"] = self.address
            elif self.num_cpus:
                kwargs["num_cpus"] = self.num_cpus
            ray.init(**kwargs)
        return ray

    def run(
        self, checks: Sequence[Check], target: Target, spec: RunSpec, reporter: ProgressReporter
    ) -> list[CheckResult]:
        ray = self._init()
        remote = ray.remote(num_cpus=self.cpus_per_task, max_retries=0)(_run_remote)
        shipped = ship_target(target)
        shipped_ref, model_ref = ray.put(shipped), ray.put(shipped.model)
        pending: dict[Any, Check] = {}
        for check in checks:
            reporter.started(check)
            # ``[model_ref]``: a nested reference stays a reference, for the check's attack-batch tasks
            pending[remote.remote(check.id, shipped_ref, spec, [model_ref], self.cpus_per_task)] = check
        by_id: dict[str, CheckResult] = {}
        for check, result, exc in as_completed(ray, pending):
            if exc is not None:
                result = error_result(check, f"ray task failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                                      "the check's Ray task failed; other checks are unaffected")
            reporter.finished(result)
            by_id[check.id] = result
        return [by_id[c.id] for c in checks]


EXECUTOR = RayExecutor
