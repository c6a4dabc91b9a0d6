"""The detector hub: every streaming detector of every monitored model, fed one observation at a time.

``DetectorHub.process(obs)`` updates the model's detectors with one answered request and returns
the *findings* (a detector crossed its threshold) for the alert side to act on. The hub holds no
gateway objects, so it runs either inside the gateway process (``MonitorConfig.process: false``)
or in the monitor's own process (``bastion.monitor.process``, the default), and it serialises its
mergeable state for replica pooling (``export_state`` / ``pooled_findings``).

Per model: ``StreamingDrift`` (feature and prediction drift), ``ExtractionMonitor`` (PRADA, input
coverage and query rate per client), the anomaly rate of each served version (share of
low-confidence answers), and optionally the feature-squeezing disagreement score (``SqueezeScorer``).
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from bastion.core.errors import InvalidInputError
from bastion.core.paths import bastion_home
from bastion.monitor.config import MonitorConfig, SqueezeSettings
from bastion.monitor.drift import DriftConfig, DriftDetector, ReferenceProfile, StreamingDrift
from bastion.monitor.extraction import ExtractionDetectorConfig, ExtractionMonitor

log = logging.getLogger("bastion.monitor")

Predictor = Callable[[np.ndarray], np.ndarray]  # batch of inputs → class probabilities


def reference_path(model: str) -> Path:
    """Where ``model``'s reference profile is stored (``capture_reference``)."""
    return bastion_home() / "monitor" / model / "reference.npz"


class Observation(NamedTuple):
    """One answered predict request, as the detectors see it (picklable without gateway imports)."""

    client_id: str
    model: str
    version: str
    inputs: np.ndarray
    outputs: np.ndarray  # class probabilities the model returned (before the output policy)
    labels: np.ndarray
    ts: float

    @classmethod
    def from_event(cls, ev: Any) -> Observation:
        return cls(ev.client_id, ev.model, ev.version, ev.inputs, ev.outputs, ev.labels, ev.ts)


def finding(detector: str, obs: Observation | None, model: str, client: str | None,
            evidence: dict[str, Any], version: str | None = None) -> dict[str, Any]:
    """What the alert side receives when a detector fires."""
    return {"detector": detector, "model": model, "version": obs.version if obs is not None else version,
            "client": client, "evidence": jsonable(evidence), "ts": obs.ts if obs is not None else time.time()}


class SqueezeScorer:
    """Feature-squeezing disagreement (Xu et al. 2018): max L1 distance between the model's probabilities
    on an input and on each squeezed version of it, with the hardening issue's squeezers
    (``bastion.defenses.sanitizers``). One batched model call per observation scores every squeezer.
    The threshold is the ``1 − fpr`` quantile of the scores of reference inputs."""

    def __init__(self, predict: Predictor, input_shape: tuple[int, ...], settings: SqueezeSettings,
                 clip: tuple[float, float] = (0.0, 1.0)) -> None:
        self.predict, self.shape, self.cfg, self.clip = predict, tuple(input_shape), settings, clip
        self.threshold = float("inf")

    def squeezed(self, x: np.ndarray) -> list[np.ndarray]:
        import torch

        from bastion.defenses.sanitizers import median_smooth, reduce_bit_depth

        xt = torch.from_numpy(np.asarray(x, dtype=np.float32).reshape(len(x), *self.shape))
        out = []
        if self.cfg.bit_depth > 0:
            out.append(reduce_bit_depth(xt, self.cfg.bit_depth, *self.clip).numpy())
        if self.cfg.median_kernel > 1 and xt.dim() >= 3:
            out.append(median_smooth(xt, self.cfg.median_kernel).numpy())
        return out

    def score(self, x: np.ndarray, proba: np.ndarray) -> np.ndarray:
        variants = self.squeezed(x)
        if not variants:
            return np.zeros(len(x))
        p_sq = self.predict(np.concatenate(variants)).reshape(len(variants), len(x), -1)
        return np.max(np.abs(p_sq - np.asarray(proba, dtype=np.float64)[None]).sum(axis=2), axis=0)

    def calibrate(self, reference: np.ndarray, batch: int = 256) -> float:
        x = np.asarray(reference[: self.cfg.calibration_samples], dtype=np.float32)
        scores = np.concatenate([self.score(x[i:i + batch], self.predict(x[i:i + batch]))
                                 for i in range(0, len(x), batch)])
        self.threshold = float(np.quantile(scores, 1.0 - self.cfg.fpr))
        return self.threshold


class ModelDetectors:
    """Every detector of one model (see the module docstring)."""

    def __init__(self, ref: ReferenceProfile, cfg: MonitorConfig, cache_dir: Path) -> None:
        d = cfg.drift
        self.cfg = cfg
        self.drift = StreamingDrift(DriftDetector.calibrated(ref, DriftConfig(
            window=d.window, test_every=d.test_every, ert=d.ert, n_bootstrap=d.n_bootstrap,
            max_features=d.max_features), cache_dir))
        e = cfg.extraction
        self.extraction = ExtractionMonitor(ref.x, ExtractionDetectorConfig(
            delta=e.delta, min_queries=e.min_queries, ood_share=e.ood_share, rate_per_min=e.rate_per_min,
            prada_every=e.prada_every))
        self.anomalies: dict[str, deque[bool]] = {}
        self.series: deque[dict[str, Any]] = deque(maxlen=2000)
        self.ref = ref
        self.squeezers: dict[str, SqueezeScorer | None] = {}  # per served version (its own model)
        self.squeezed: dict[str, deque[bool]] = {}  # per version: flagged or not
        self.squeezed_clients: dict[str, deque[bool]] = {}
        self.squeeze_flagged: set[str] = set()
        self.n = 0
        # replica pooling: rows seen here with their arrival time; the last pooled alarm's time
        self.recent: deque[tuple[float, np.ndarray, int]] = deque(maxlen=d.window)
        self.pooled_after = 0.0  # rows up to this arrival time were in a window that alarmed
        self.pooled_tested = 0.0  # newest arrival time in the last pooled test
        self.pooled_flagged: set[str] = set()


class DetectorHub:
    """Per-model detectors, built on first use from the model's stored reference profile."""

    def __init__(self, cfg: MonitorConfig, predictor_for: Callable[[str, str], tuple[Predictor, tuple[int, ...],
                                                                              tuple[float, float]] | None]
                 | None = None, *, pooled: bool = True) -> None:
        self.cfg = cfg
        self.models: dict[str, ModelDetectors | None] = {}
        self.predictor_for = predictor_for  # (model, version) → squeezing predictor, when squeezing is on
        self.pooled = pooled  # keep recent rows for ``export_state`` (replica pooling is configured)
        self.events = 0
        self.errors = 0  # observations the detectors could not use
        self.durations: deque[float] = deque(maxlen=10_000)  # seconds per observation, recent ones

    def stats(self) -> dict[str, Any]:
        """How much detector work each observation costs (off the request path)."""
        d = np.asarray(self.durations) * 1e3
        return {"events": self.events, "errors": self.errors, "ms_p50": float(np.percentile(d, 50)) if len(d) else None,
                "ms_p99": float(np.percentile(d, 99)) if len(d) else None, "ms_mean": float(d.mean()) if len(d) else None}

    def prepare(self, model: str, version: str | None = None) -> ModelDetectors | None:
        """The model's detectors (calibrating them on first use: seconds, so done off the request path)."""
        if model in self.models:
            return self.models[model]
        path = reference_path(model)
        if not path.exists():
            log.warning("no monitoring reference for model %s (capture one: bastion monitor reference)", model)
            self.models[model] = None
            return None
        self.models[model] = ModelDetectors(ReferenceProfile.load(str(path)), self.cfg, path.parent)
        return self.models[model]

    def squeezer(self, model: str, version: str) -> SqueezeScorer | None:
        """The squeezing scorer of one served version, calibrated on the reference at first use."""
        mon = self.models.get(model)
        if mon is None or not self.cfg.squeezing.enabled or self.predictor_for is None:
            return None
        if version not in mon.squeezers:
            scorer = None
            try:
                got = self.predictor_for(model, version)
                if got is not None:
                    scorer = SqueezeScorer(got[0], got[1], self.cfg.squeezing, got[2])
                    scorer.calibrate(mon.ref.x)
            except Exception:
                log.exception("feature squeezing unavailable for %s version %s", model, version)
                scorer = None
            mon.squeezers[version] = scorer
        return mon.squeezers[version]

    def process(self, obs: Observation, n_obs: int = 1) -> list[dict[str, Any]]:
        """Update the model's detectors with one observation (or ``n_obs`` merged by ``process_many``)."""
        t0 = time.perf_counter()
        try:
            return self._process(obs, n_obs)
        except Exception:  # e.g. inputs that do not match the reference: skip them, keep monitoring
            self.errors += n_obs
            if self.errors <= 10 or self.errors % 1000 == 0:
                log.exception("monitoring %s failed on %d observation(s) (%d so far)", obs.model, n_obs, self.errors)
            return []
        finally:
            self.events += n_obs
            self.durations.append((time.perf_counter() - t0) / n_obs)

    def process_many(self, batch: list[Observation]) -> list[dict[str, Any]]:
        """Observations that arrived together: those of the same model, version and client are merged (in
        arrival order) into one update, so per-update work (OOD projection, Shapiro–Wilk, window checks)
        is paid once per group rather than once per request."""
        groups: dict[tuple[str, str, str], list[Observation]] = {}
        for o in batch:
            groups.setdefault((o.model, o.version, o.client_id), []).append(o)
        out: list[dict[str, Any]] = []
        for items in groups.values():
            if len(items) == 1:
                out += self.process(items[0])
                continue
            f = items[0]
            merged = Observation(f.client_id, f.model, f.version,
                                 np.concatenate([np.asarray(i.inputs) for i in items]),
                                 np.concatenate([np.asarray(i.outputs) for i in items]),
                                 np.concatenate([np.asarray(i.labels) for i in items]), items[-1].ts)
            out += self.process(merged, len(items))
        return out

    def _process(self, obs: Observation, n_obs: int = 1) -> list[dict[str, Any]]:
        mon = self.prepare(obs.model, obs.version)
        if mon is None:
            return []
        out: list[dict[str, Any]] = []
        x = np.asarray(obs.inputs)
        labels = np.asarray(obs.labels)
        if x.reshape(len(x), -1).shape[1] != mon.ref.x.shape[1] or len(labels) != len(x):  # before any state changes
            raise InvalidInputError(f"{obs.model}: observation of shape {x.shape} does not match the reference "
                                    f"({mon.ref.x.shape[1]} features)")
        before = mon.n
        mon.n += n_obs
        if self.pooled:
            flat = x.reshape(len(x), -1).astype(np.float32)
            for row, lab in zip(flat, labels.tolist(), strict=True):
                mon.recent.append((obs.ts, row, int(lab)))
        drift = mon.drift.update(x, labels, ts=obs.ts)
        if drift is not None:
            mon.series.append({"ts": obs.ts, "kind": "drift", "statistic": drift.statistic,
                               "threshold": drift.threshold, "mmd2": drift.mmd2})
            if drift.drift:
                out.append(finding("drift", obs, obs.model, None, {"seen": mon.drift.seen, **drift.to_dict()}))
        flag = mon.extraction.observe(obs.client_id, x, labels, ts=obs.ts)
        if flag is not None:
            out.append(finding("extraction", obs, obs.model, obs.client_id, flag))
        # anomaly rate of the serving version: share of low-confidence answers (a bad release, or inputs
        # the model cannot handle); out-of-distribution inputs are judged per client above
        a = self.cfg.anomaly
        low = np.asarray(obs.outputs).max(axis=1) < a.min_confidence
        win = mon.anomalies.setdefault(obs.version, deque(maxlen=a.window))
        win.extend(low.tolist())
        share = sum(win) / len(win) if win else 0.0
        mon.series.append({"ts": obs.ts, "kind": "anomaly", "share": share, "version": obs.version})
        if len(win) == win.maxlen and share > a.max_share:
            out.append(finding("anomaly_rate", obs, obs.model, None, {
                "share": share, "threshold": a.max_share, "window": len(win), "version": obs.version}))
            win.clear()
        every = self.cfg.squeezing.every
        if self.cfg.squeezing.enabled and mon.n // every > before // every:  # every k-th observation
            scorer = self.squeezer(obs.model, obs.version)
            if scorer is not None:
                out.extend(self._squeeze(mon, scorer, obs, x))
        return out

    def _squeeze(self, mon: ModelDetectors, scorer: SqueezeScorer, obs: Observation,
                 x: np.ndarray) -> list[dict[str, Any]]:
        s = self.cfg.squeezing
        try:
            scores = scorer.score(x, obs.outputs)
        except Exception:
            log.exception("squeezing score failed for %s", obs.model)
            return []
        flagged = (scores > scorer.threshold).tolist()
        mon.series.append({"ts": obs.ts, "kind": "squeeze", "score": float(np.max(scores)),
                           "threshold": scorer.threshold, "version": obs.version})
        out = []
        win = mon.squeezed.setdefault(obs.version, deque(maxlen=s.window))
        win.extend(flagged)
        share = sum(win) / len(win)
        if len(win) == win.maxlen and share > s.max_share:
            out.append(finding("adversarial_input", obs, obs.model, None, {
                "signal": "squeezing", "share": share, "threshold": s.max_share, "window": len(win),
                "score_threshold": scorer.threshold}))
            win.clear()
        cwin = mon.squeezed_clients.setdefault(obs.client_id, deque(maxlen=s.window))
        cwin.extend(flagged)
        if len(mon.squeezed_clients) > self.cfg.pooling.max_clients * 10:
            mon.squeezed_clients.pop(next(iter(mon.squeezed_clients)))
        cshare = sum(cwin) / len(cwin)
        if obs.client_id not in mon.squeeze_flagged and len(cwin) >= s.min_queries and cshare > s.max_share:
            mon.squeeze_flagged.add(obs.client_id)
            out.append(finding("adversarial_input", obs, obs.model, obs.client_id, {
                "signal": "squeezing", "share": cshare, "threshold": s.max_share, "queries": len(cwin),
                "score_threshold": scorer.threshold}))
        return out

    def snapshot(self) -> dict[str, Any]:
        """Detector state for dashboards and forensic bundles."""
        out: dict[str, Any] = {}
        for name, mon in self.models.items():
            if mon is None:
                continue
            out[name] = {
                "drift_threshold": mon.drift.detector.threshold, "mmd_threshold": mon.drift.detector.mmd_threshold,
                "drift_history": list(mon.drift.history)[-200:],
                "clients": [mon.extraction.client_summary(c) for c in list(mon.extraction.clients)[-50:]],
                "series": list(mon.series)[-500:],
                "squeeze_thresholds": {v: sc.threshold for v, sc in mon.squeezers.items() if sc is not None},
            }
        return jsonable(out)

    # ------------------------------------------------------------------ replica pooling
    def export_state(self, model: str, replica: str) -> bytes | None:
        """This replica's mergeable state of ``model``: its recent inputs (float32, with arrival times and
        predicted labels), request count and per-client counts, as an ``.npz`` (no pickle)."""
        mon = self.models.get(model)
        if mon is None:
            return None
        rows = list(mon.recent)
        d = mon.drift.detector.ref.x.shape[1]
        meta = {"replica": replica, "model": model, "seen": mon.drift.seen, "ts": time.time(),
                "clients": mon.extraction.client_counts(self.cfg.pooling.max_clients)}
        buf = io.BytesIO()
        np.savez(buf, ts=np.asarray([r[0] for r in rows], dtype=np.float64),
                 x=np.stack([r[1] for r in rows]) if rows else np.zeros((0, d), dtype=np.float32),
                 labels=np.asarray([r[2] for r in rows], dtype=np.int64), meta=np.asarray(json.dumps(meta)))
        return buf.getvalue()

    def pooled_findings(self, model: str, states: dict[str, bytes]) -> list[dict[str, Any]]:
        """Detectors over the merged view of several replicas' states (this one's included): drift on the
        most recent ``window`` inputs across replicas, and per-client coverage and rate summed over them."""
        mon = self.models.get(model)
        if mon is None or len(states) < 2:
            return []
        parts = [_load_state(raw) for raw in states.values()]
        ts = np.concatenate([p["ts"] for p in parts])
        x = np.concatenate([p["x"] for p in parts]) if len(ts) else np.zeros((0, 1))
        labels = np.concatenate([p["labels"] for p in parts])
        fresh = ts > mon.pooled_after
        ts, x, labels = ts[fresh], x[fresh], labels[fresh]
        out: list[dict[str, Any]] = []
        det = mon.drift.detector
        w = det.cfg.window
        if len(ts) >= w and int(np.sum(ts > mon.pooled_tested)) >= det.cfg.test_every:
            mon.pooled_tested = float(ts.max())
            order = np.argsort(ts)[-w:]
            res = det.test(x[order].astype(np.float64), labels[order])
            mon.series.append({"ts": time.time(), "kind": "pooled_drift", "statistic": res.statistic,
                               "threshold": res.threshold, "mmd2": res.mmd2, "replicas": len(parts)})
            if res.drift:
                mon.pooled_after = float(ts.max())
                out.append(finding("drift", None, model, None, {
                    "pooled": True, "replicas": sorted(p["meta"]["replica"] for p in parts),
                    "seen": int(sum(p["meta"]["seen"] for p in parts)), **res.to_dict()}, version="pooled"))
        e = self.cfg.extraction
        merged: dict[str, np.ndarray] = {}
        for p in parts:
            for client, counts in p["meta"]["clients"].items():
                merged[client] = merged.get(client, np.zeros(4)) + np.asarray(counts, dtype=np.float64)
        for client, (n, ood, ood_len, recent) in merged.items():
            if client in mon.pooled_flagged:
                continue
            signal = None
            if ood_len >= e.min_queries and ood / ood_len > e.ood_share:
                signal = {"signal": "input_coverage", "ood_share": ood / ood_len, "threshold": e.ood_share}
            elif recent > e.rate_per_min:
                signal = {"signal": "query_rate", "per_minute": recent, "threshold": e.rate_per_min}
            if signal is not None:
                mon.pooled_flagged.add(client)
                out.append(finding("extraction", None, model, client, {
                    **signal, "pooled": True, "client": client, "queries": int(n), "replicas": len(parts)},
                    version="pooled"))
        return out


def sync_replicas(hub: DetectorHub, store: Any, replica: str) -> list[dict[str, Any]]:
    """Push this replica's state of every monitored model, pull everyone's, and (on the lowest-id fresh
    replica only, so alerts are not raised once per replica) evaluate the merged view."""
    out: list[dict[str, Any]] = []
    for model in [m for m, mon in hub.models.items() if mon is not None]:
        payload = hub.export_state(model, replica)
        if payload is None:
            continue
        store.push(model, replica, payload)
        states = store.pull(model)
        if states and min(states) == replica:
            out.extend(hub.pooled_findings(model, states))
    return out


def _load_state(raw: bytes) -> dict[str, Any]:
    with np.load(io.BytesIO(raw), allow_pickle=False) as z:
        return {"ts": z["ts"], "x": z["x"], "labels": z["labels"], "meta": json.loads(str(z["meta"]))}


def jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | deque):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj
