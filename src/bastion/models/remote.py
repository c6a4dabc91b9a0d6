"""``RemoteAdapter``: a classifier behind an HTTP JSON endpoint (black-box, query-budgeted).

The wire format is the Bastion gateway's predict API:

    POST URL  {"inputs": [[...], ...]}
    →         {"probabilities": [[...], ...]}          (scores), or
              {"predictions": [label, ...]}             (label-only; one-hot probabilities)

Credentials go in ``Authorization: Bearer <key>`` (``api_key`` or ``$BASTION_API_KEY``).
``query_budget`` counts *samples* sent; a request that would exceed it raises
``QueryBudgetExceeded`` before anything is sent.

Examples:
    >>> m = RemoteAdapter("http://127.0.0.1:8000/v1/models/digits/predict",  # doctest: +SKIP
    ...                   InputSpec((1, 8, 8), clip_min=0.0, clip_max=1.0), query_budget=10_000)
    >>> m.predict_proba(x[:5]).shape                                           # doctest: +SKIP
    (5, 10)
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from bastion.core.errors import InvalidInputError, ModelLoadError, QueryBudgetExceeded
from bastion.core.model import InputSpec
from bastion.models.adapters import check_batch


class RemoteAdapter:
    """A remote classifier as a black-box ``ModelAdapter``.

    ``n_classes`` is taken from the argument, else from the first answer with probabilities;
    a label-only endpoint needs it given (the loader takes it from the data's labels).
    """

    def __init__(
        self,
        url: str,
        input_spec: InputSpec,
        n_classes: int | None = None,
        query_budget: int | None = None,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        batch_size: int | None = None,
        headers: dict[str, str] | None = None,
        transport: Any = None,
    ) -> None:
        import httpx

        if not url.startswith(("http://", "https://")):
            raise InvalidInputError(f"endpoint {url!r} is not an http(s) URL")
        if query_budget is not None and query_budget < 1:
            raise InvalidInputError(f"--query-budget must be at least 1, got {query_budget}")
        self.url = url
        self._spec = input_spec
        self._n_classes = n_classes
        self.query_budget = query_budget
        self.queries_used = 0
        self.requests_sent = 0
        self.label_only: bool | None = None
        self.batch_size = batch_size or input_spec.max_batch
        self.info: dict[str, Any] = {"format": "remote", "endpoint": url}
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        key = api_key if api_key is not None else os.environ.get("BASTION_API_KEY")
        if key:
            hdrs["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(timeout=timeout_s, headers=hdrs, transport=transport)

    @property
    def n_classes(self) -> int:
        if self._n_classes is None:
            # One probe sample (counted against the budget) tells us the number of classes.
            lo = 0.0 if self._spec.clip_min is None else self._spec.clip_min
            self.predict_proba(np.full((1, *self._spec.shape), lo, dtype=np.float32))
        assert self._n_classes is not None
        return self._n_classes

    def set_n_classes(self, n_classes: int) -> None:
        """Fix the number of classes (label-only endpoints cannot tell it)."""
        if n_classes < 2:
            raise InvalidInputError(f"a classifier needs at least 2 classes, got {n_classes}")
        self._n_classes = int(n_classes)

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    @property
    def remaining(self) -> int | None:
        """Samples left in the query budget (``None`` = unlimited)."""
        return None if self.query_budget is None else self.query_budget - self.queries_used

    def _reserve(self, n: int) -> None:
        if self.query_budget is not None and self.queries_used + n > self.query_budget:
            raise QueryBudgetExceeded(
                f"query budget of {self.query_budget} samples for {self.url} would be exceeded "
                f"(used {self.queries_used}, this batch {n}); raise --query-budget or use fewer samples"
            )
        self.queries_used += n

    def _post(self, batch: np.ndarray) -> dict[str, Any]:
        import httpx

        self._reserve(len(batch))
        self.requests_sent += 1
        try:
            resp = self._client.post(self.url, json={"inputs": batch.tolist()})
        except httpx.HTTPError as exc:
            raise ModelLoadError(f"endpoint {self.url} unreachable: {exc}") from exc
        if resp.status_code == 429:
            raise QueryBudgetExceeded(f"endpoint {self.url} refused the query: 429 (server-side budget)")
        if resp.status_code >= 400:
            raise ModelLoadError(f"endpoint {self.url} answered {resp.status_code}: {resp.text[:200]}")
        try:
            body = resp.json()
        except ValueError as exc:
            raise ModelLoadError(f"endpoint {self.url} did not answer JSON") from exc
        if not isinstance(body, dict):
            raise ModelLoadError(f"endpoint {self.url} answered {type(body).__name__}, expected a JSON object")
        return body

    def _to_proba(self, body: dict[str, Any], n: int) -> np.ndarray:
        probs = body.get("probabilities")
        if probs is not None:
            p = np.asarray(probs, dtype=np.float64)
            if p.shape[0] != n or p.ndim != 2:
                raise ModelLoadError(f"endpoint {self.url} returned probabilities shaped {p.shape} for {n} inputs")
            self.label_only = False
            if self._n_classes is None:
                self._n_classes = int(p.shape[1])
            s = p.sum(axis=1, keepdims=True)
            return np.where(s > 0, p / np.where(s > 0, s, 1.0), 1.0 / p.shape[1])
        preds = body.get("predictions")
        if preds is None:
            raise ModelLoadError(f"endpoint {self.url} answered neither 'probabilities' nor 'predictions'")
        labels = np.asarray(preds, dtype=np.int64).reshape(-1)
        if len(labels) != n:
            raise ModelLoadError(f"endpoint {self.url} returned {len(labels)} predictions for {n} inputs")
        self.label_only = True
        if self._n_classes is None:
            raise ModelLoadError(
                f"{self.url} answers with labels only; give the number of classes (labelled --data does)"
            )
        k = self._n_classes
        if labels.min() < 0 or labels.max() >= k:
            raise ModelLoadError(f"endpoint {self.url} returned a label outside 0..{k - 1}")
        out = np.zeros((n, k), dtype=np.float64)
        out[np.arange(n), labels] = 1.0
        return out

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        arr = check_batch(x, self._spec)
        if len(arr) == 0:
            return np.zeros((0, self._n_classes or 0))
        if self.query_budget is not None and self.queries_used + len(arr) > self.query_budget:
            self._reserve(len(arr))  # raises before anything is sent
        outs = []
        for i in range(0, len(arr), self.batch_size):
            batch = arr[i : i + self.batch_size]
            outs.append(self._to_proba(self._post(batch), len(batch)))
        return np.concatenate(outs)

    def close(self) -> None:
        self._client.close()
