"""Attack batches: a large attack's samples split into batches that the executor may run anywhere.

With the option ``attack_batch_size=N`` (``bastion assess … --option attack_batch_size=N``), the
evasion checks split each attack's samples into consecutive batches of ``N``; batch ``i`` is
attacked with seed ``seed + i``. The batching (and so every number) depends only on ``N`` and the
seed, not on where batches run: the local executor runs them one after another, the Ray executor
as Ray tasks (``RayBatchRunner`` in ``bastion.assess.executors.ray``), so both give the same
results. Without the option (or when the samples fit in one batch) the attack runs unsplit, exactly
as before. Models with a query budget (remote endpoints) are never split: one budget cannot be
shared across workers.

A check's code calls :func:`run_attack`; the executor chooses the runner with
:func:`use_batch_runner` around the check.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from bastion.core.errors import ConfigError

if TYPE_CHECKING:
    from bastion.attacks.evasion.run import EvasionResult

ATTACK_BATCH_OPTION = "attack_batch_size"


@dataclass
class AttackBatch:
    """One batch of one attack: plain data, picklable for remote workers."""

    index: int
    x: np.ndarray
    y: np.ndarray
    attack: str
    norm: str
    eps: float
    steps: int | None
    seed: int
    kwargs: dict[str, Any] = field(default_factory=dict)


def run_batch(model: Any, batch: AttackBatch) -> EvasionResult:
    """Attack one batch (wherever it runs)."""
    from bastion.attacks.evasion import run_evasion

    return run_evasion(model, batch.x, batch.y, batch.attack, batch.norm, batch.eps, steps=batch.steps,
                       seed=batch.seed, **dict(batch.kwargs))


class BatchRunner(Protocol):
    """Runs attack batches against a model and returns their results in batch order."""

    name: str

    def map(self, model: Any, batches: list[AttackBatch]) -> list[EvasionResult]: ...


class LocalBatchRunner:
    """Batches one after another in this process."""

    name = "local"

    def map(self, model: Any, batches: list[AttackBatch]) -> list[EvasionResult]:
        return [run_batch(model, b) for b in batches]


_RUNNER: ContextVar[BatchRunner | None] = ContextVar("bastion_attack_batch_runner", default=None)


@contextmanager
def use_batch_runner(runner: BatchRunner) -> Iterator[None]:
    """Run the attack batches of the checks called inside this block with ``runner``."""
    token = _RUNNER.set(runner)
    try:
        yield
    finally:
        _RUNNER.reset(token)


def batch_size_option(options: dict[str, Any]) -> int | None:
    """``attack_batch_size`` from check options (None = do not split)."""
    value = options.get(ATTACK_BATCH_OPTION)
    if value is None:
        return None
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{ATTACK_BATCH_OPTION} must be a positive integer, got {value!r}") from None
    if size < 1:
        raise ConfigError(f"{ATTACK_BATCH_OPTION} must be a positive integer, got {value!r}")
    return size


def run_attack(model: Any, x: np.ndarray, y: np.ndarray, attack: str, norm: str, eps: float, *,
               steps: int | None, seed: int, batch_size: int | None = None, **kw: Any) -> EvasionResult:
    """``run_evasion`` on ``(x, y)``, split into batches of ``batch_size`` run by the current runner."""
    from bastion.attacks.evasion import run_evasion

    budgeted = getattr(model, "remaining", None) is not None
    if batch_size is None or len(x) <= batch_size or budgeted:
        return run_evasion(model, x, y, attack, norm, eps, steps=steps, seed=seed, **kw)
    batches = [AttackBatch(i, x[s:s + batch_size], y[s:s + batch_size], attack, norm, eps, steps, seed + i, dict(kw))
               for i, s in enumerate(range(0, len(x), batch_size))]
    runner = _RUNNER.get() or LocalBatchRunner()
    t0 = time.perf_counter()
    results = runner.map(model, batches)
    return merge_results(results, seed, batch_size, time.perf_counter() - t0)


def merge_results(results: list[EvasionResult], seed: int, batch_size: int, duration_s: float) -> EvasionResult:
    """One ``EvasionResult`` over the concatenated batches (accuracies over all samples)."""
    from bastion.attacks.evasion.run import EvasionResult

    first = results[0]
    y = np.concatenate([r.y for r in results])
    pred_clean = np.concatenate([r.pred_clean for r in results])
    pred_adv = np.concatenate([r.pred_adv for r in results])
    queries = [r.queries for r in results]
    params = {**first.params, "samples": len(y), "attack_batches": len(results), "attack_batch_size": batch_size}
    if any(r.params.get("budget_exhausted") for r in results):
        params["budget_exhausted"] = True
    return EvasionResult(
        attack=first.attack, norm=first.norm, eps=first.eps, steps=first.steps, samples=len(y), seed=seed,
        x_adv=np.concatenate([r.x_adv for r in results]), y=y, pred_clean=pred_clean, pred_adv=pred_adv,
        clean_accuracy=float((pred_clean == y).mean()), robust_accuracy=float((pred_adv == y).mean()),
        success=np.concatenate([r.success for r in results]), duration_s=duration_s,
        samples_per_s=len(y) / max(duration_s, 1e-9),
        queries=None if any(q is None for q in queries) else int(sum(q for q in queries if q is not None)),
        params=params,
    )
