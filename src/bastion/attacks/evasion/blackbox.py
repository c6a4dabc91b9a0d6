"""Query access for the black-box attacks: any model becomes ``Tensor -> Tensor`` scores.

A black-box attack takes a ``predict`` callable (probabilities, logits or labels), a
``ModelAdapter`` (numpy in/out, e.g. a scikit-learn model or a query-budgeted remote endpoint),
or an ``nn.Module`` (queried without gradients). Queries are counted and sent in batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from bastion.attacks.evasion.base import BoundedAttack, Norm, attack_threads, frozen_eval

PredictFn = Callable[[Tensor], Tensor]


class QueryCounter:
    """Wraps a model as ``Tensor -> Tensor`` and counts the samples it was asked about."""

    def __init__(self, model: Any, batch_size: int = 512) -> None:
        self.batch_size = max(1, int(batch_size))
        self.queries = 0
        self._module: nn.Module | None = model if isinstance(model, nn.Module) else None
        if self._module is not None:
            self._fn: PredictFn = self._module_scores
        elif hasattr(model, "predict_proba") and hasattr(model, "input_spec"):
            self._adapter = model
            self._fn = self._adapter_scores
        elif callable(model):
            self._fn = model
        else:
            from bastion.core.errors import InvalidInputError

            raise InvalidInputError(f"cannot query {type(model).__name__}: pass a callable, ModelAdapter or nn.Module")

    def _module_scores(self, x: Tensor) -> Tensor:
        assert self._module is not None
        with torch.inference_mode():
            return self._module(x).float()

    def _adapter_scores(self, x: Tensor) -> Tensor:
        arr = x.detach().cpu().numpy().astype(np.float32, copy=False)
        return torch.from_numpy(np.asarray(self._adapter.predict_proba(arr), dtype=np.float32))

    def __call__(self, x: Tensor) -> Tensor:
        outs = []
        for i in range(0, x.shape[0], self.batch_size):
            xb = x[i : i + self.batch_size]
            outs.append(torch.as_tensor(self._fn(xb)).detach().cpu())
            self.queries += xb.shape[0]
        return torch.cat(outs) if outs else torch.zeros((0,))

    def labels(self, x: Tensor) -> Tensor:
        """Predicted labels (works for score and label outputs alike)."""
        out = self(x)
        return out.long() if out.dim() == 1 else out.argmax(1)


class BlackBoxAttack(BoundedAttack):
    """Base of the query attacks (Square, HopSkipJump): validation, query counting in batches of
    ``batch_size``, the model guard and threads; ``queries_used`` and ``budget_exhausted`` after a call."""

    def __init__(self, eps: float, norm: Norm, clip_min: float | None, clip_max: float | None, seed: int,
                 batch_size: int, threads: int | None) -> None:
        super().__init__(eps, norm, clip_min, clip_max, seed, threads)
        self.batch_size = int(batch_size)
        self.queries_used = 0
        self.budget_exhausted = False

    @contextmanager
    def _querying(self, model: Any) -> Iterator[QueryCounter]:
        """``model`` as a counting ``Tensor -> Tensor`` predictor, frozen in eval mode when it is a module,
        on the attack's threads; ``queries_used`` is set on the way out."""
        counter = QueryCounter(model, self.batch_size)
        self.budget_exhausted = False
        try:
            with ExitStack() as stack:
                stack.enter_context(attack_threads(self.threads))
                if isinstance(model, nn.Module):
                    stack.enter_context(frozen_eval(model))
                yield counter
        finally:
            self.queries_used = counter.queries


def log_scores(scores: Tensor) -> Tensor:
    """Scores on a log scale: log-probabilities when ``scores`` are probabilities, else as given (logits)."""
    s = scores.double()
    if s.numel() and bool((s >= 0).all()) and bool(((s.sum(1) - 1).abs() < 1e-3).all()):
        return torch.log(s.clamp_min(1e-300))
    return s


def margin(scores: Tensor, y: Tensor) -> Tensor:
    """``score_y − max_{j≠y} score_j`` on log-scores: > 0 while the sample is still correctly classified."""
    s = log_scores(scores)
    s_y = s.gather(1, y[:, None]).squeeze(1)
    other = s.clone()
    other.scatter_(1, y[:, None], float("-inf"))
    return s_y - other.amax(1)
