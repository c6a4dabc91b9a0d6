"""Feature and prediction drift: univariate tests and MMD over sliding windows, with thresholds
calibrated by bootstrap to a configured expected run time (ERT) between false alarms.

How the calibration works. A window of the last ``window`` samples is tested every
``test_every`` samples. Under no drift, each test should raise a false alarm with probability
``α = test_every / ert`` so that alarms come on average no more often than once per ``ert``
samples (overlapping windows are positively correlated, which only lengthens the run time).
``α`` is split between the two statistics (univariate min-p and MMD²); each threshold is the
``1 − α/2`` quantile of that statistic over ``n_bootstrap`` windows resampled from the reference.

Features: inputs are flattened; when there are more than ``max_features`` of them (images), they
are projected on the reference's top principal components first (Rabanser et al. 2019, "Failing
Loudly", https://arxiv.org/abs/1810.11953). Features with ≤ 10 integer values are treated as
discrete (chi-square), the rest as continuous (KS).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bastion.core.errors import InvalidInputError
from bastion.monitor import stats


@dataclass
class DriftConfig:
    """The drift test's window and its false-alarm calibration (see the module docstring)."""

    window: int = 300  # samples per tested window (the last ``window`` requests; the reference needs ≥ 100 rows)
    test_every: int = 50  # samples between two tests of the sliding window (1 … window)
    ert: int = 20_000  # expected run time: samples between false alarms; α per test = min(0.5, test_every / ert)
    n_bootstrap: int = 2000  # null windows drawn (with replacement) from half the reference to set each threshold
    max_features: int = 32  # wider inputs are projected on this many principal components of the reference
    mmd_reference: int = 300  # reference rows (at most) the MMD² statistic compares each window with
    seed: int = 0  # the split of the reference, the MMD subsample and the bootstrap: same seed, same thresholds


@dataclass
class ReferenceProfile:
    """What the detectors compare live traffic against (captured at registry push)."""

    x: np.ndarray  # (n, d_raw) flattened reference inputs
    labels: np.ndarray | None = None  # model predictions on x (for prediction drift)
    n_classes: int = 0
    mean: np.ndarray = field(init=False)
    components: np.ndarray | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, dtype=np.float64).reshape(len(self.x), -1)
        if len(self.x) < 100:
            raise InvalidInputError(f"a drift reference needs at least 100 samples, got {len(self.x)}")
        if not np.isfinite(self.x).all():
            raise InvalidInputError("the drift reference contains NaN or infinite values")
        self.mean = self.x.mean(axis=0)

    def fit_projection(self, max_features: int) -> None:
        if self.x.shape[1] > max_features:
            _, _, vt = np.linalg.svd(self.x - self.mean, full_matrices=False)
            self.components = vt[:max_features]

    def features(self, x: np.ndarray) -> np.ndarray:
        flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        if flat.shape[1] != self.x.shape[1]:
            raise InvalidInputError(f"inputs have {flat.shape[1]} features; the reference has {self.x.shape[1]}")
        return flat if self.components is None else (flat - self.mean) @ self.components.T

    def save(self, path: str) -> None:
        import io

        from bastion.core.paths import atomic_write_bytes

        buf = io.BytesIO()
        labels = self.labels if self.labels is not None else np.zeros(0, dtype=np.int64)
        np.savez(buf, x=self.x, labels=labels, n_classes=np.array(self.n_classes))
        atomic_write_bytes(path, buf.getvalue(), mode=0o644)

    @classmethod
    def load(cls, path: str) -> ReferenceProfile:
        with np.load(path, allow_pickle=False) as z:
            labels = z["labels"] if len(z["labels"]) else None
            return cls(z["x"], labels, int(z["n_classes"]))


@dataclass
class DriftResult:
    drift: bool
    statistic: float  # −log10 of the smallest feature p-value
    threshold: float
    mmd2: float
    mmd_threshold: float
    features: list[dict[str, Any]]
    prediction_pvalue: float | None
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "drift": self.drift, "statistic": self.statistic, "threshold": self.threshold, "mmd2": self.mmd2,
            "mmd_threshold": self.mmd_threshold, "prediction_pvalue": self.prediction_pvalue, "n": self.n,
            "features": self.features,
        }


class DriftDetector:
    """Calibrated two-sample drift test between the reference and a window of live inputs."""

    def __init__(self, reference: ReferenceProfile, config: DriftConfig | None = None,
                 thresholds: tuple[float, float] | None = None) -> None:
        self.cfg = config or DriftConfig()
        self.ref = reference
        self.ref.fit_projection(self.cfg.max_features)
        all_feat = self.ref.features(self.ref.x)
        rng = np.random.default_rng(self.cfg.seed)
        # Half the reference is what live windows are compared with; the other half is the pool
        # the calibration resamples "fresh" null windows from (resampling the comparison half
        # itself would make null windows look too similar and the thresholds too low).
        perm = rng.permutation(len(all_feat))
        half = len(all_feat) // 2
        self.ref_feat, self.pool = all_feat[perm[:half]], all_feat[perm[half:]]
        self.discrete = [self._is_discrete(all_feat[:, j]) for j in range(all_feat.shape[1])]
        self._cont = [j for j, d in enumerate(self.discrete) if not d]
        self._ks = stats.KSReference(self.ref_feat[:, self._cont]) if self._cont else None
        scale = all_feat.std(axis=0) + 1e-9
        self._scale = scale
        self.mmd_ref = self.ref_feat[rng.choice(len(self.ref_feat), min(self.cfg.mmd_reference, len(self.ref_feat)),
                                                replace=False)] / scale
        self.gamma2 = stats.median_bandwidth(self.mmd_ref, seed=self.cfg.seed)
        self._mmd = stats.MMDReference(self.mmd_ref, self.gamma2)
        # ``thresholds``: a previous calibration of this same reference and config (``calibrated``)
        self.threshold, self.mmd_threshold = thresholds if thresholds is not None else self._calibrate(rng)

    @classmethod
    def calibrated(cls, reference: ReferenceProfile, config: DriftConfig, cache_dir: Path) -> DriftDetector:
        """A detector whose bootstrap thresholds are cached in ``cache_dir``, keyed by the reference data and
        the configuration (the calibration is deterministic given both, so replicas and restarts reuse it)."""
        import hashlib
        import json

        h = hashlib.sha256(np.ascontiguousarray(reference.x).tobytes())
        h.update(json.dumps(config.__dict__, sort_keys=True).encode())
        path = Path(cache_dir) / f"calibration-{h.hexdigest()[:24]}.json"
        try:
            got = json.loads(path.read_text())
            return cls(reference, config, (float(got["threshold"]), float(got["mmd_threshold"])))
        except (OSError, ValueError, KeyError, TypeError):
            pass
        det = cls(reference, config)
        from bastion.core.paths import atomic_write_bytes

        atomic_write_bytes(str(path), json.dumps({"threshold": det.threshold, "mmd_threshold": det.mmd_threshold,
                                                  "config": config.__dict__}).encode(), mode=0o644)
        return det

    @staticmethod
    def _is_discrete(col: np.ndarray) -> bool:
        vals = np.unique(col)
        return len(vals) <= 10 and bool(np.all(np.equal(np.mod(vals, 1), 0)))

    def _min_p_stat(self, feat: np.ndarray) -> tuple[float, np.ndarray]:
        n, m = len(self.ref_feat), len(feat)
        pvals = np.ones(feat.shape[1])
        if self._ks is not None:
            d = self._ks.statistic(feat[:, self._cont])
            pvals[self._cont] = stats.ks_pvalue(d, n, m)
        for j, disc in enumerate(self.discrete):
            if disc:
                cats = np.unique(self.ref_feat[:, j])
                rc = np.array([(self.ref_feat[:, j] == c).sum() for c in cats])
                wc = np.array([(feat[:, j] == c).sum() for c in cats])
                pvals[j] = stats.chi2_pvalue(rc, wc)
        return float(-np.log10(max(pvals.min(), 1e-300))), pvals

    def _calibrate(self, rng: np.random.Generator) -> tuple[float, float]:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):  # small matrices: threads only add contention
            return self._calibrate_inner(rng)

    def _calibrate_inner(self, rng: np.random.Generator) -> tuple[float, float]:
        alpha = min(0.5, self.cfg.test_every / self.cfg.ert)
        q = 1.0 - alpha / 2
        w = self.cfg.window
        uni, mmd = [], []
        for _ in range(self.cfg.n_bootstrap):
            idx = rng.integers(0, len(self.pool), size=w)
            feat = self.pool[idx]
            uni.append(self._min_p_stat(feat)[0])
            mmd.append(self._mmd.mmd2(feat / self._scale))
        return float(np.quantile(uni, q)), float(np.quantile(mmd, q))

    def test(self, x: np.ndarray, labels: np.ndarray | None = None) -> DriftResult:
        from threadpoolctl import threadpool_limits

        feat = self.ref.features(x)
        stat, pvals = self._min_p_stat(feat)
        with threadpool_limits(limits=1, user_api="blas"):
            m2 = self._mmd.mmd2(feat / self._scale)
        pred_p = None
        if labels is not None and self.ref.labels is not None and self.ref.n_classes:
            k = self.ref.n_classes
            pred_p = stats.chi2_pvalue(np.bincount(self.ref.labels, minlength=k), np.bincount(labels, minlength=k))
        names = [f"pc{j}" if self.ref.components is not None else f"f{j}" for j in range(feat.shape[1])]
        order = np.argsort(pvals)[:5]
        top = [{"feature": names[j], "pvalue": float(pvals[j]),
                "test": "chi2" if self.discrete[j] else "ks",
                "psi": stats.psi(self.ref_feat[:, j], feat[:, j]),
                "wasserstein": stats.wasserstein(self.ref_feat[:, j], feat[:, j])} for j in order]
        return DriftResult(stat > self.threshold or m2 > self.mmd_threshold, stat, self.threshold, m2,
                           self.mmd_threshold, top, pred_p, len(feat))


class StreamingDrift:
    """A bounded sliding window fed per request; tests every ``test_every`` samples (thread-safe)."""

    def __init__(self, detector: DriftDetector) -> None:
        self.detector = detector
        self.window: deque[np.ndarray] = deque(maxlen=detector.cfg.window)
        self.labels: deque[int] = deque(maxlen=detector.cfg.window)
        self.since_test = 0
        self.seen = 0
        self.history: deque[dict[str, Any]] = deque(maxlen=500)
        self._lock = threading.Lock()

    def update(self, x: np.ndarray, labels: np.ndarray | None = None, ts: float | None = None) -> DriftResult | None:
        flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        with self._lock:
            for i, row in enumerate(flat):
                self.window.append(row)
                if labels is not None:
                    self.labels.append(int(labels[i]))
            self.seen += len(flat)
            self.since_test += len(flat)
            if len(self.window) < self.window.maxlen or self.since_test < self.detector.cfg.test_every:  # type: ignore[operator]
                return None
            self.since_test = 0
            win = np.stack(self.window)
            lab = np.asarray(self.labels) if len(self.labels) == len(self.window) else None
        result = self.detector.test(win, lab)
        if result.drift:  # restart after an alarm: the next one needs a fresh window
            with self._lock:
                self.window.clear()
                self.labels.clear()
        self.history.append({"seen": self.seen, "ts": ts, "statistic": result.statistic,
                             "threshold": result.threshold, "mmd2": result.mmd2, "drift": result.drift})
        return result

    def state(self) -> dict[str, Any]:
        """Mergeable state: the window (as a list) and counters."""
        with self._lock:
            return {"window": np.stack(self.window).tolist() if self.window else [], "seen": self.seen}

    def merge(self, other: dict[str, Any]) -> None:
        """Fold another replica's window into this one (most recent ``window`` samples kept)."""
        rows = np.asarray(other.get("window", []), dtype=np.float64)
        with self._lock:
            for row in rows:
                self.window.append(row)
            self.seen += int(other.get("seen", 0))


def batch_drift(reference: np.ndarray, current: np.ndarray, config: DriftConfig | None = None) -> dict[str, Any]:
    """Batch mode: is ``current`` drawn from the reference's distribution? (calibrated at α = test_every/ert)."""
    cfg = config or DriftConfig()
    cfg.window = len(current)
    det = DriftDetector(ReferenceProfile(reference), cfg)
    res = det.test(np.asarray(current).reshape(len(current), -1))
    return {**res.to_dict(), "config": cfg.__dict__, "n_reference": len(reference), "n_current": len(current),
            "false_alarm_rate_per_test": min(0.5, cfg.test_every / cfg.ert)}


def load_features(path: str | Path, drop: list[str] | None = None) -> np.ndarray:
    """Unlabelled feature rows for drift checks: ``.npz`` (x, or every x_* split) or a CSV/Parquet
    table (every numeric column except ``drop``)."""
    from bastion.datasets.files import detect_data_format

    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"data file {p} does not exist")
    fmt = detect_data_format(p)
    if fmt == "npz":
        with np.load(p, allow_pickle=False) as z:
            keys = ["x"] if "x" in z.files else [k for k in ("x_train", "x_test", "x_pop") if k in z.files]
            if not keys:
                raise InvalidInputError(f"{p} has no 'x' or 'x_train'/'x_test' array (arrays: {z.files})")
            x = np.concatenate([z[k].reshape(len(z[k]), -1) for k in keys])
    else:
        import pandas as pd

        df = pd.read_csv(p) if fmt == "csv" else pd.read_parquet(p)
        df = df.drop(columns=[c for c in (drop or []) if c in df.columns])
        num = df.select_dtypes(include="number")
        if num.shape[1] == 0:
            raise InvalidInputError(f"{p} has no numeric columns to compare")
        x = num.to_numpy()
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).all():
        raise InvalidInputError(f"{p} contains NaN or infinite values; clean or impute them first")
    return x
