"""Data-integrity throughput: Bastion's parallel manifest hashing vs ``sha256sum`` (same run).

Creates a 1 GB set of files in a temp dir (deleted afterwards), reads it once so both tools
hash from the page cache, then times:

- ``sha256sum`` over all files (GNU coreutils, one process),
- ``bastion.data.integrity.hash_files`` with 1 thread (per-core rate) and with all cores,
- a row-level manifest (per-row Merkle tree) of a 1M-row CSV, with and without key columns.

Run: ``.venv/bin/python bench/data_integrity_vs_sha256sum.py [--gb 1.0] [--files 16] [--rows 1000000]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from bastion.data.integrity import build_manifest, hash_files


def timed(fn, repeat: int = 2) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bastion-bench-"))
    try:
        size = int(args.gb * (1 << 30) / args.files)
        rng = np.random.default_rng(0)
        block = rng.integers(0, 256, size=min(size, 64 << 20), dtype=np.uint8).tobytes()
        files = []
        for i in range(args.files):
            p = tmp / f"shard-{i:03d}.bin"
            with open(p, "wb") as fh:
                left = size
                while left > 0:
                    fh.write(block[: min(left, len(block))])
                    left -= len(block)
            files.append(p)
        total = sum(p.stat().st_size for p in files)
        hash_files(files)  # warm the page cache for both tools

        t_sum = timed(lambda: subprocess.run(["sha256sum", *map(str, files)], check=True, capture_output=True))
        t_one = timed(lambda: hash_files(files, workers=1))
        t_all = timed(lambda: hash_files(files))
        out = subprocess.run(["sha256sum", *map(str, files)], check=True, capture_output=True, text=True).stdout
        ref = [line.split()[0] for line in out.splitlines()]
        assert ref == [d for d, _ in hash_files(files)], "digests differ from sha256sum"

        gb = total / 1e9
        cores = os.cpu_count() or 1
        print(f"## {gb:.2f} GB in {args.files} files, {cores} cores (load average {os.getloadavg()[0]:.1f})")
        print(f"{'tool':38s} {'seconds':>8s} {'GB/s':>7s}")
        print(f"{'sha256sum (coreutils)':38s} {t_sum:8.2f} {gb / t_sum:7.2f}")
        print(f"{'bastion hash_files, 1 thread':38s} {t_one:8.2f} {gb / t_one:7.2f}")
        print(f"{'bastion hash_files, ' + str(cores) + ' threads':38s} {t_all:8.2f} {gb / t_all:7.2f}")
        print(f"ratio sha256sum / bastion (all cores): {t_sum / t_all:.2f}x  (>1 = bastion faster)")

        csv = tmp / "rows.csv"
        n = args.rows
        ids = np.arange(n)
        vals = rng.random(n)
        cats = rng.integers(0, 100, n)
        with open(csv, "w") as fh:
            fh.write("id,value,category\n")
            fh.writelines(f"{i},{v:.6f},{c}\n" for i, v, c in zip(ids, vals, cats, strict=True))
        mb = csv.stat().st_size / 1e6
        t_rows = timed(lambda: build_manifest([csv]), repeat=1)
        t_keys = timed(lambda: build_manifest([csv], key_columns=["id"]), repeat=1)
        t_csum = timed(lambda: subprocess.run(["sha256sum", str(csv)], check=True, capture_output=True), repeat=1)
        print(f"\n## row-level manifest of a {n:,}-row CSV ({mb:.0f} MB)")
        print(f"{'sha256sum (file digest only)':38s} {t_csum:8.2f}")
        print(f"{'bastion manifest (per-row Merkle)':38s} {t_rows:8.2f}")
        print(f"{'bastion manifest --key-columns id':38s} {t_keys:8.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
