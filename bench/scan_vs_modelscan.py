"""Bastion's model scanner vs ProtectAI modelscan and Trail of Bits fickling, in one run.

1. Detection table on the test-suite corpus (malicious: every dangerous family + published
   modelscan bypasses; benign: ordinary torch / scikit-learn / numpy / ONNX / safetensors files).
   A tool "flags" a file when Bastion reports high/critical, modelscan reports any issue, or
   fickling rates it LIKELY_UNSAFE or worse.
2. Throughput: MB/s over the corpus, a ~400 MB torch checkpoint and a 5,000-tensor checkpoint
   (best of 3), with the speed ratio vs modelscan.

Run: .venv/bin/python bench/scan_vs_modelscan.py [--big-mb 400] [--tensors 5000]
Big files are created in a temp dir and deleted afterwards.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _corpus_builders() -> Any:
    spec = importlib.util.spec_from_file_location("h3_corpus", ROOT / "tests" / "artifacts" / "conftest.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def bastion_flags(path: Path) -> tuple[bool, str]:
    from bastion.artifacts.scan import scan_path
    from bastion.core.severity import Severity

    r = scan_path(path)
    ms = r.max_severity
    return (ms is not None and ms >= Severity.HIGH), (ms.value if ms else "none")


def modelscan_flags(path: Path) -> tuple[bool, str]:
    from modelscan.modelscan import ModelScan
    from modelscan.settings import DEFAULT_SETTINGS

    r = ModelScan(settings=DEFAULT_SETTINGS).scan(str(path))
    issues = r.get("issues", [])
    if issues:
        return True, max((i["severity"] for i in issues), key=["LOW", "MEDIUM", "HIGH", "CRITICAL"].index)
    if r.get("errors"):
        return False, "error"
    if not r["summary"]["scanned"]["total_scanned"]:
        return False, "skipped"
    return False, "none"


def fickling_flags(path: Path) -> tuple[bool, str]:
    import fickling
    from fickling.analysis import Severity

    if path.is_dir():
        results = [fickling.scan_file(str(p), graceful=True) for p in sorted(path.rglob("*")) if p.is_file()]
    else:
        results = [fickling.scan_file(str(path), graceful=True)]
    worst = max((r.severity for r in results), key=lambda s: s.value[0], default=Severity.LIKELY_SAFE)
    return worst.value[0] >= Severity.LIKELY_UNSAFE.value[0], worst.name


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def best_of(fn: Callable[[], Any], n: int = 3) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def detection(tmp: Path) -> tuple[dict[str, float], int]:
    mod = _corpus_builders()
    marker = tmp / "PWNED"
    (tmp / "mal").mkdir()
    (tmp / "ben").mkdir()
    mal = mod._malicious(tmp / "mal", marker)
    ben = mod._benign(tmp / "ben")
    tools = {"bastion": bastion_flags, "modelscan": modelscan_flags, "fickling": fickling_flags}
    seconds = dict.fromkeys(tools, 0.0)
    hits = {t: [0, 0] for t in tools}  # [malicious flagged, benign flagged]
    print(f"{'file':34} {'kind':9} " + " ".join(f"{t:>24}" for t in tools))
    for kind, files in (("malicious", mal), ("benign", ben)):
        for name, path in sorted(files.items()):
            cells = []
            for t, fn in tools.items():
                t0 = time.perf_counter()
                try:
                    flagged, label = fn(path)
                except Exception as exc:  # a peer tool crashing is a data point, not a bench failure
                    flagged, label = False, f"crash:{type(exc).__name__}"
                seconds[t] += time.perf_counter() - t0
                hits[t][0 if kind == "malicious" else 1] += int(flagged)
                cells.append(f"{('FLAG ' if flagged else 'pass ') + label:>24}")
            print(f"{name:34} {kind:9} " + " ".join(cells))
    total_mb = sum(size_of(p) for p in list(mal.values()) + list(ben.values())) / 1e6
    print(f"\nmalicious files: {len(mal)}, benign files: {len(ben)}, corpus {total_mb:.1f} MB")
    print(f"{'tool':10} {'malicious flagged':>18} {'benign flagged':>15} {'seconds':>8} {'MB/s':>8}")
    for t in tools:
        print(f"{t:10} {hits[t][0]:>11}/{len(mal):<6} {hits[t][1]:>8}/{len(ben):<6} {seconds[t]:8.2f} "
              f"{total_mb / seconds[t]:8.1f}")
    assert not marker.exists(), "a payload executed!"
    return seconds, len(mal)


def throughput(tmp: Path, big_mb: int, n_tensors: int) -> None:
    import torch

    big = tmp / "big.pt"
    torch.save({"weight": torch.zeros(big_mb * 250_000, dtype=torch.float32), "step": 1}, big)
    many = tmp / "many.pt"
    torch.save({f"layer{i}.weight": torch.zeros(4) for i in range(n_tensors)}, many)
    print(f"\n{'checkpoint (best of 3)':28} {'bastion s':>10} {'modelscan s':>12} {'fickling s':>11} "
          f"{'speed-up vs modelscan':>22}")
    for label, path in ((f"{big.stat().st_size / 1e6:.0f} MB torch checkpoint", big),
                        (f"{n_tensors}-tensor checkpoint", many)):
        tb = best_of(lambda p=path: bastion_flags(p))
        tm = best_of(lambda p=path: modelscan_flags(p))
        tf = best_of(lambda p=path: fickling_flags(p), n=1)
        print(f"{label:28} {tb:10.4f} {tm:12.4f} {tf:11.4f} {tm / tb:21.1f}x")
    big.unlink()
    many.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big-mb", type=int, default=400)
    ap.add_argument("--tensors", type=int, default=5000)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="bastion-scan-bench-"))
    try:
        detection(tmp)
        throughput(tmp, args.big_mb, args.tensors)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
