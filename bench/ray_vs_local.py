"""Local vs Ray executor on the same assessment (same target, profile, seed), same run.

Prints wall time of each, Ray's overhead (with and without cluster start-up) and whether the
results match.

    .venv/bin/python bench/ray_vs_local.py [--demo digits] [--profile standard]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from bastion.assess.executors.ray import RayExecutor
from bastion.assess.runner import run_assessment
from bastion.models.zoo import demo_target

TIMING = ("seconds", "duration", "_s", "per_s", "throughput")


def untimed(m: object) -> object:
    """Metrics without wall-clock timings, at any depth (curve points carry their own duration_s)."""
    if isinstance(m, dict):
        return {k: untimed(v) for k, v in m.items() if not any(k.endswith(t) or t in k for t in TIMING)}
    if isinstance(m, list):
        return [untimed(v) for v in m]
    return m


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--demo", default="digits")
    ap.add_argument("--profile", default="standard")
    args = ap.parse_args()
    import ray

    target = demo_target(args.demo)
    out = tempfile.mkdtemp()
    t0 = time.perf_counter()
    local = run_assessment(target, profile=args.profile, seed=0, out_dir=f"{out}/local", executor="local", progress=False)
    t_local = time.perf_counter() - t0
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    t_start = time.perf_counter() - t0
    t0 = time.perf_counter()
    remote = run_assessment(target, profile=args.profile, seed=0, out_dir=f"{out}/ray",
                            executor=RayExecutor(num_cpus=2), progress=False)
    t_ray = time.perf_counter() - t0
    ray.shutdown()
    same = all(a.status == b.status and untimed(a.metrics) == untimed(b.metrics)
               for a, b in zip(local.results, remote.results, strict=True))
    print(f"{len(local.results)} checks, profile {args.profile}, demo {args.demo}")
    print(f"local executor : {t_local:7.1f} s")
    print(f"ray executor   : {t_ray:7.1f} s (+ {t_start:.1f} s cluster start-up)")
    print(f"ray overhead   : {100 * (t_ray / t_local - 1):+.0f}% without start-up, "
          f"{100 * ((t_ray + t_start) / t_local - 1):+.0f}% with; results identical: {same}")


if __name__ == "__main__":
    main()
