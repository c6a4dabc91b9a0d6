"""Detection quality of the monitor's detectors: drift delay and false alarms, extraction flags.

1. Drift (``StreamingDrift``): a synthetic tabular stream with the correlation of breast-cancer's 30
   features (sklearn); window 300, a test every 50 samples, thresholds bootstrapped for an expected run
   time (ERT) of 20,000 samples between false alarms. Counts false alarms over 10,000 clean samples
   (target ≤ 1) and the samples until an alarm after a 0.5-σ mean shift on 3 features (target ≤ 500),
   over several trials.
2. Extraction (``ExtractionMonitor``: PRADA, input coverage, query rate), MNIST demo model, every
   client sending batches of 10: 5 honest clients × 600 natural images (never flagged: target), and
   the privacy issue's extraction attacker (``bastion.attacks.extraction.run_extraction``, budget 1,000)
   with random queries, mixed (augmented natural + random) and pure in-distribution (Knockoff on natural
   images), plus a synthetic perturbation-around-seeds attacker. Prints the queries until each is
   flagged (target ≤ 1,000 for the random-query extractor) and the surrogate's fidelity at 1,000 queries.
3. Squeezing (``SqueezeScorer``), digits demo MLP: share of clean test inputs and of PGD-20 inputs
   (ε = 0.05, 0.1, 0.2) over the threshold calibrated at 1 % of the reference, for the default 3-bit
   squeezer and Xu et al.'s MNIST setting (1-bit + 2x2 median).

No peer is run: Alibi Detect (online MMD/LSDD with ERT calibration) is under the Business Source
License and not installed here; Evidently and NannyML are batch-only.

    .venv/bin/python bench/monitoring_detection.py [--trials 5] [--clean 10000]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np


def drift(trials: int, clean: int, n_bootstrap: int) -> None:
    from sklearn.datasets import load_breast_cancer

    from bastion.monitor.drift import DriftConfig, DriftDetector, ReferenceProfile, StreamingDrift

    rng = np.random.default_rng(0)
    corr = np.corrcoef(load_breast_cancer().data, rowvar=False)
    d = corr.shape[0]
    ref = rng.multivariate_normal(np.zeros(d), corr, size=2000)
    t0, c0 = time.perf_counter(), time.process_time()
    det = DriftDetector(ReferenceProfile(ref), DriftConfig(window=300, test_every=50, ert=20_000,
                                                           n_bootstrap=n_bootstrap))
    print(f"drift: calibration ({n_bootstrap} bootstrap windows) {time.perf_counter() - t0:.1f} s wall, "
          f"{time.process_time() - c0:.1f} s CPU")
    stream = StreamingDrift(det)
    t0 = time.perf_counter()
    alarms = sum(bool(r is not None and r.drift) for r in (
        stream.update(rng.multivariate_normal(np.zeros(d), corr, 1)) for _ in range(clean)))
    per = (time.perf_counter() - t0) / clean * 1e3
    print(f"drift: {alarms} false alarm(s) in {clean:,} clean samples (target ≤ {clean / 10_000:g}); "
          f"{per:.3f} ms per sample incl. a test every 50")
    shift = np.zeros(d)
    shift[:3] = 0.5  # features are unit-variance: 0.5 σ
    delays: list[int | None] = []
    for _ in range(trials):
        stream = StreamingDrift(det)
        for _ in range(300):
            stream.update(rng.multivariate_normal(np.zeros(d), corr, 1))
        delay = None
        for i in range(1, 3001):
            r = stream.update(rng.multivariate_normal(shift, corr, 1))
            if r is not None and r.drift:
                delay = i
                break
        delays.append(delay)
    found = [x for x in delays if x is not None]
    print(f"drift: 0.5-σ shift on 3 of {d} features detected after {delays} samples "
          f"(max {max(found) if found else None}; target ≤ 500; {len(found)}/{trials} found within 3,000)")


class Monitored:
    """A victim ``ModelAdapter`` whose every query batch (split into requests of ``batch``) goes through
    the extraction monitor under one client key; records when the client is first flagged."""

    def __init__(self, model: Any, monitor: Any, client: str, batch: int = 10) -> None:
        self.model, self.monitor, self.client, self.batch = model, monitor, client, batch
        self.sent = 0
        self.flag: dict[str, Any] | None = None

    @property
    def n_classes(self) -> int:
        return int(self.model.n_classes)

    @property
    def input_spec(self) -> Any:
        return self.model.input_spec

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(x), self.batch):
            chunk = x[i:i + self.batch]
            p = np.asarray(self.model.predict_proba(chunk))
            self.sent += len(chunk)
            f = self.monitor.observe(self.client, chunk, p.argmax(1))
            if f is not None and self.flag is None:
                self.flag = f
            out.append(p)
        return np.concatenate(out)


def extraction(budget: int) -> None:
    from bastion.attacks.extraction import ExtractionConfig, run_extraction
    from bastion.attacks.extraction.knockoff import QueryStrategy
    from bastion.models.zoo import demo_target
    from bastion.monitor.extraction import ExtractionMonitor

    t = demo_target("mnist")
    xr, xt = t.data.x_train, t.data.x_test
    assert xr is not None and xt is not None
    mon = ExtractionMonitor(xr[:2000])
    rng = np.random.default_rng(0)
    t0, c0 = time.perf_counter(), time.process_time()
    honest_w = []
    for c in range(5):
        v = Monitored(t.model, mon, f"honest{c}")
        v.predict_proba(xt[rng.permutation(len(xt))[:600]])
        s = mon.client_summary(f"honest{c}")
        honest_w.append(s["shapiro_w"])
        assert v.sent == 600
    flagged = [c for c in range(5) if mon.client_summary(f"honest{c}")["flagged"]]
    print(f"extraction: 5 honest clients × 600 natural queries: flagged {flagged or 'none'} (target: none); "
          f"PRADA W {min(honest_w):.3f}–{max(honest_w):.3f} (δ = {mon.cfg.delta})")
    eval_labels = t.model.predict_proba(xt[:500]).argmax(1)  # fidelity reference, not sent as queries
    rows = []
    attackers: list[tuple[str, QueryStrategy, np.ndarray | None]] = [
        ("random queries", "random", None), ("mixed (augmented + random)", "mixed", xr[2000:]),
        ("Knockoff, natural images only", "in_distribution", xr[2000:])]
    for name, strategy, pool in attackers:
        v = Monitored(t.model, mon, name)
        res = run_extraction(v, pool, budget, xt[:500], eval_victim_labels=eval_labels,
                             config=ExtractionConfig(strategy=strategy, schedule=(budget,), epochs=5, min_steps=100))
        rows.append((name, v.flag, res.curve[-1].fidelity if res.curve else None))
    seeds = xr[2000:2010]
    synth = np.clip(seeds[rng.integers(0, 10, budget)] + 0.05 * np.sign(rng.normal(size=(budget, *seeds.shape[1:]))),
                    0, 1).astype(np.float32)
    v = Monitored(t.model, mon, "synthetic")
    v.predict_proba(synth)
    rows.append(("synthetic perturbations of 10 seeds", v.flag, None))
    for name, flag, fid in rows:
        what = (f"flagged after {flag['queries']} queries by {flag['signal']}"
                + (f" (W = {flag['shapiro_w']:.3f})" if "shapiro_w" in flag else "")
                + (f" (OOD share {flag['ood_share']:.2f})" if "ood_share" in flag else "")) if flag else \
            f"NOT flagged within {budget} queries"
        fid_s = f"; surrogate fidelity at {budget}: {fid:.3f}" if fid is not None else ""
        print(f"extraction: {name}: {what}{fid_s}")
    print(f"extraction: {time.perf_counter() - t0:.1f} s wall, {time.process_time() - c0:.1f} s CPU")


def squeezing() -> None:
    import torch

    from bastion.defenses.adversarial.perturb import pgd_perturb
    from bastion.models.zoo import demo_target
    from bastion.monitor.config import SqueezeSettings
    from bastion.monitor.detectors import SqueezeScorer

    t = demo_target("digits")
    module = t.model.module  # type: ignore[attr-defined]
    xr, xt, yt = t.data.x_train, t.data.x_test, t.data.y_test
    assert xr is not None and xt is not None and yt is not None

    def proba(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(module(torch.from_numpy(np.asarray(x, dtype=np.float32))), 1).numpy()

    for bits, median in ((3, 1), (1, 2)):
        sc = SqueezeScorer(proba, (1, 8, 8), SqueezeSettings(enabled=True, bit_depth=bits, median_kernel=median))
        thr = sc.calibrate(xr)
        clean = float(np.mean(sc.score(xt, proba(xt)) > thr))
        rates = []
        for eps in (0.05, 0.1, 0.2):
            adv = pgd_perturb(module, torch.from_numpy(xt), torch.from_numpy(yt).long(), eps, 20).numpy()
            rates.append(f"ε={eps}: {np.mean(sc.score(adv, proba(adv)) > thr):.2f}")
        print(f"squeezing (digits MLP, {bits}-bit, median {median}): threshold {thr:.3f} (1 % of the reference); "
              f"clean test inputs over it {clean:.3f}; PGD-20 inputs over it {', '.join(rates)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--clean", type=int, default=10_000)
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--only", choices=("drift", "extraction", "squeezing"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    print(f"1-min load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    if args.only in (None, "drift"):
        drift(args.trials, args.clean, args.bootstrap)
    if args.only in (None, "extraction"):
        extraction(args.budget)
    if args.only in (None, "squeezing"):
        squeezing()
    print(f"1-min load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
