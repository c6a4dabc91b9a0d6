"""Per-client extraction and probing signals.

- **PRADA** (Juuti et al. 2019, https://arxiv.org/abs/1805.02628): for each client and predicted
  class keep a growing set of past queries; every new query's minimum L2 distance to that set is
  recorded, and a query farther than ``max(0, mean − std)`` of the class's distances joins the
  set. Natural queries give roughly normally distributed distances; synthetic extraction queries do
  not. Exact repeats are ignored. The client is flagged when the Shapiro–Wilk statistic W of its distances falls below
  ``delta`` (after ``min_queries``; tested once per ``prada_every`` new distances rather than per query).
- **Input coverage**: the share of a client's recent queries that are out of distribution
  (Mahalanobis distance in the reference's principal subspace above the reference's 99.9th
  percentile). Random-query extractors are flagged here.
- **Query rate**: queries per minute over the last minute.

Memory is bounded: at most ``max_set`` stored queries per class, ``max_distances`` distances
and ``max_clients`` clients (least recently seen dropped).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sstats


@dataclass
class ExtractionDetectorConfig:
    """Settings of the PRADA-style extraction detector (the extraction *attack's* settings are
    ``bastion.attacks.extraction.ExtractionConfig``)."""

    delta: float = 0.90
    min_queries: int = 100
    max_set: int = 500
    max_distances: int = 2000
    max_clients: int = 10_000
    ood_share: float = 0.30
    ood_window: int = 200
    rate_per_min: float = 6000.0
    n_components: int = 32
    prada_every: int = 10  # Shapiro–Wilk once per this many new distances (scipy's call costs ~0.5 ms)


@dataclass
class _ClientState:
    sets: dict[int, np.ndarray] = field(default_factory=dict)  # per class: grown-by-doubling buffer of kept queries
    kept: dict[int, int] = field(default_factory=dict)  # rows of ``sets[c]`` in use
    dists: dict[int, deque[float]] = field(default_factory=dict)
    dsum: dict[int, list[float]] = field(default_factory=dict)  # running [sum, sum of squares] of ``dists[c]``
    all_dists: deque[float] = field(default_factory=lambda: deque(maxlen=2000))
    ood: deque[bool] = field(default_factory=lambda: deque(maxlen=200))
    times: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))  # the last minute's queries
    n: int = 0
    n_dists: int = 0  # PRADA distances recorded so far
    tested_at: int = -1  # ``n_dists`` at the last Shapiro–Wilk test
    flagged: dict[str, Any] | None = None


class OODScorer:
    """Mahalanobis distance in the reference's principal subspace, with a 99.9th-percentile cut."""

    def __init__(self, reference: np.ndarray, n_components: int = 32) -> None:
        x = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
        self.mean = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - self.mean, full_matrices=False)
        k = min(n_components, len(s))
        self.components = vt[:k]
        self.var = (s[:k] ** 2) / max(len(x) - 1, 1) + 1e-9
        scores = self.score(x)
        self.cut = float(np.quantile(scores, 0.999)) * 1.05

    def score(self, x: np.ndarray) -> np.ndarray:
        centred = np.asarray(x, dtype=np.float64).reshape(len(x), -1) - self.mean
        z = centred @ self.components.T
        resid = np.linalg.norm(centred - z @ self.components, axis=1)
        return np.sqrt(np.sum(z * z / self.var, axis=1)) + resid / np.sqrt(self.var.min())


class ExtractionMonitor:
    """Per-client PRADA, coverage and rate signals; ``observe`` returns a flag dict when a client crosses one."""

    def __init__(self, reference: np.ndarray, config: ExtractionDetectorConfig | None = None) -> None:
        self.cfg = config or ExtractionDetectorConfig()
        self.ood = OODScorer(reference, self.cfg.n_components)
        self.clients: OrderedDict[str, _ClientState] = OrderedDict()
        self._lock = threading.Lock()

    def _state(self, client: str) -> _ClientState:
        st = self.clients.get(client)
        if st is None:
            st = _ClientState()
            st.all_dists = deque(maxlen=self.cfg.max_distances)
            st.ood = deque(maxlen=self.cfg.ood_window)
            self.clients[client] = st
            while len(self.clients) > self.cfg.max_clients:
                self.clients.popitem(last=False)
        else:
            self.clients.move_to_end(client)
        return st

    def observe(self, client: str, x: np.ndarray, labels: np.ndarray, ts: float | None = None) -> dict[str, Any] | None:
        flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        ood = self.ood.score(flat) > self.ood.cut
        now = ts if ts is not None else time.time()
        with self._lock:
            st = self._state(client)
            for row, lab, is_ood in zip(flat, np.asarray(labels).tolist(), ood.tolist(), strict=True):
                self._prada_add(st, int(lab), row)
                st.ood.append(bool(is_ood))
                st.times.append(now)
                st.n += 1
            while st.times and now - st.times[0] > 60.0:
                st.times.popleft()
            if st.flagged is not None:
                return None
            signal = self._evaluate(st, now)
            if signal is not None:
                st.flagged = {**signal, "client": client, "queries": st.n}
                return st.flagged
        return None

    def _prada_add(self, st: _ClientState, lab: int, row: np.ndarray) -> None:
        n = st.kept.get(lab, 0)
        if n == 0:
            buf = np.empty((min(8, self.cfg.max_set), row.size))
            buf[0] = row
            st.sets[lab], st.kept[lab] = buf, 1
            st.dists[lab] = deque(maxlen=self.cfg.max_distances)
            st.dsum[lab] = [0.0, 0.0]
            return
        buf = st.sets[lab]
        diff = buf[:n] - row
        dmin = float(np.sqrt(np.min(np.einsum("ij,ij->i", diff, diff))))
        if dmin == 0.0:  # an exact repeat teaches an extractor nothing new: not a PRADA sample
            return
        st.all_dists.append(dmin)
        st.n_dists += 1
        d, acc = st.dists[lab], st.dsum[lab]
        if len(d) == d.maxlen:  # the oldest distance leaves the running sums
            old = d[0]
            acc[0] -= old
            acc[1] -= old * old
        d.append(dmin)
        acc[0] += dmin
        acc[1] += dmin * dmin
        mean = acc[0] / len(d)
        std = float(np.sqrt(max(acc[1] / len(d) - mean * mean, 0.0)))
        if dmin > max(0.0, mean - std) and n < self.cfg.max_set:
            if n == len(buf):
                grown = np.empty((min(2 * n, self.cfg.max_set), row.size))
                grown[:n] = buf
                st.sets[lab] = buf = grown
            buf[n] = row
            st.kept[lab] = n + 1

    def _evaluate(self, st: _ClientState, now: float) -> dict[str, Any] | None:
        if (st.n >= self.cfg.min_queries and len(st.all_dists) >= 20
                and (st.tested_at < 0 or st.n_dists - st.tested_at >= self.cfg.prada_every)):
            st.tested_at = st.n_dists
            w = float(sstats.shapiro(np.asarray(st.all_dists)[-self.cfg.max_distances:]).statistic)
            if w < self.cfg.delta:
                return {"signal": "prada", "shapiro_w": w, "delta": self.cfg.delta}
        if len(st.ood) >= min(self.cfg.ood_window, self.cfg.min_queries):
            share = float(np.mean(st.ood))
            if share > self.cfg.ood_share:
                return {"signal": "input_coverage", "ood_share": share, "threshold": self.cfg.ood_share}
        recent = len(st.times)  # only the last minute is kept
        if recent > self.cfg.rate_per_min:
            return {"signal": "query_rate", "per_minute": recent, "threshold": self.cfg.rate_per_min}
        return None

    def client_counts(self, limit: int, now: float | None = None) -> dict[str, list[float]]:
        """Mergeable per-client counts for replica pooling, most recently seen first:
        ``[queries, out-of-distribution queries in the window, window length, queries in the last minute]``."""
        now = now if now is not None else time.time()
        with self._lock:
            out: dict[str, list[float]] = {}
            for client in reversed(self.clients):
                st = self.clients[client]
                recent = sum(1 for t in st.times if now - t <= 60.0)
                out[client] = [st.n, int(sum(st.ood)), len(st.ood), recent]
                if len(out) >= limit:
                    break
            return out

    def client_summary(self, client: str) -> dict[str, Any]:
        with self._lock:
            st = self.clients.get(client)
            if st is None:
                return {"client": client, "queries": 0}
            w = float(sstats.shapiro(np.asarray(st.all_dists)).statistic) if len(st.all_dists) >= 20 else None
            return {"client": client, "queries": st.n, "shapiro_w": w,
                    "ood_share": float(np.mean(st.ood)) if st.ood else 0.0, "flagged": st.flagged}
