"""The representativeness + fairness demo over several seeds (each seed: another test split and other samples).

For each seed: ``bastion.datasets.fairness_demo.build_fairness_demo`` (diabetes patients; a selection-biased
training sample and a stratified one of the same size), then ``data.representativeness`` (groups sex and age,
label y) on each training sample against the population and ``fairness.group_metrics`` (sensitive: sex,
standard profile: 200 bootstrap resamples) on each model's held-out test rows.

    .venv/bin/python bench/fairness_demo.py --seeds 10
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--start", type=int, default=0)
    args = ap.parse_args()

    import pandas as pd

    from bastion.assess.registry import CheckContext, get_check
    from bastion.assess.target import build_target
    from bastion.cli.assess import declare_groups
    from bastion.datasets.fairness_demo import build_fairness_demo
    from bastion.monitor.representativeness import representativeness

    fair = get_check("fairness.group_metrics")
    rows = []
    for seed in range(args.start, args.start + args.seeds):
        with tempfile.TemporaryDirectory() as tmp:
            info = build_fairness_demo(Path(tmp), seed=seed)
            pop = pd.read_csv(info["population"])
            for name in ("skewed", "stratified"):
                t0 = time.perf_counter()
                rep = representativeness(pd.read_csv(info[name]["train"]), pop, ["sex", "age"], "y", seed=seed)
                t_rep = time.perf_counter() - t0
                target = build_target(model=info[name]["model"], data=info[name]["assess"], label="y")
                declare_groups(target, ["sex"], None, "y")
                t0 = time.perf_counter()
                res = fair.run(target, CheckContext(profile="standard", seed=seed))
                t_fair = time.perf_counter() - t0
                m = res.metrics
                lo, hi = m["ci95"]["selection_rate"]["ratio"]
                worst = rep.max_severity.value if rep.max_severity else "none"
                rows.append((seed, name, info[name]["n_train"], rep.to_dict()["verdict"], worst,
                             m["demographic_parity_ratio"], lo, hi, m["equalized_odds_difference"],
                             m["accuracy_difference"], res.status.value, t_rep, t_fair))
                print(f"seed {seed:>2} {name:<10} n={info[name]['n_train']:>3} representativeness {rows[-1][3]:<18} "
                      f"(worst {worst:<6}) | DP ratio {rows[-1][5]:.2f} [{lo:.2f}, {hi:.2f}] EO diff {rows[-1][8]:.2f} "
                      f"acc diff {rows[-1][9]:.2f} fairness {res.status.value:<4} | {t_rep:.1f} s + {t_fair:.1f} s",
                      flush=True)
    print()
    for name in ("skewed", "stratified"):
        sel = [r for r in rows if r[1] == name]
        caught = sum(r[3] == "not_representative" for r in sel)
        failed = sum(r[10] == "fail" for r in sel)
        dp = [r[5] for r in sel]
        eo = [r[8] for r in sel]
        print(f"{name:<10}: representativeness flags {caught}/{len(sel)}; fairness fails {failed}/{len(sel)}; "
              f"DP ratio {min(dp):.2f}–{max(dp):.2f} (median {sorted(dp)[len(dp) // 2]:.2f}); "
              f"EO difference {min(eo):.2f}–{max(eo):.2f}")


if __name__ == "__main__":
    main()
