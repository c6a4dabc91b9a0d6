"""Local vs Ray executor on the same assessment (same target, profile, seed), same run.

Prints wall time of each, Ray's overhead (with and without cluster start-up) and whether the
results match.

    .venv/bin/python bench/ray_vs_local.py [--demo digits] [--profile standard] [--attack-batch-size N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from bastion.assess.executors.base import untimed
from bastion.assess.executors.ray import RayExecutor
from bastion.assess.runner import run_assessment
from bastion.models.zoo import demo_target


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--demo", default="digits")
    ap.add_argument("--profile", default="standard")
    ap.add_argument("--attack-batch-size", type=int, default=None,
                    help="split attacks into batches (Ray: one task per batch; same batches locally)")
    args = ap.parse_args()
    options = {"attack_batch_size": args.attack_batch_size} if args.attack_batch_size else {}
    import ray

    target = demo_target(args.demo)
    out = tempfile.mkdtemp()
    load0 = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    local = run_assessment(target, profile=args.profile, seed=0, out_dir=f"{out}/local", executor="local", progress=False,
                           options=options)
    t_local, c_local = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    t_start = time.perf_counter() - t0
    t0 = time.perf_counter()
    remote = run_assessment(target, profile=args.profile, seed=0, out_dir=f"{out}/ray",
                            executor=RayExecutor(num_cpus=2), progress=False, options=options)
    t_ray = time.perf_counter() - t0
    ray.shutdown()
    same = all(a.status == b.status and untimed(a.metrics) == untimed(b.metrics)
               for a, b in zip(local.results, remote.results, strict=True))
    print(f"{len(local.results)} checks, profile {args.profile}, demo {args.demo}, options {options}")
    print(f"local executor : {t_local:7.1f} s ({c_local:.1f} s CPU)")
    print(f"ray executor   : {t_ray:7.1f} s (+ {t_start:.1f} s cluster start-up; work runs in Ray workers, "
          f"not in this process's CPU time)")
    print(f"ray overhead   : {100 * (t_ray / t_local - 1):+.0f}% without start-up, "
          f"{100 * ((t_ray + t_start) / t_local - 1):+.0f}% with; results identical: {same}")
    print(f"1-min load average: {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end (2-core machine: >2 means shared)")


if __name__ == "__main__":
    main()
