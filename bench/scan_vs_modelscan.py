"""Bastion's model scanner vs ProtectAI modelscan, picklescan and Trail of Bits fickling, in one run.

1. Detection on one corpus: the peer corpus of ``tests/artifacts/scan_corpus`` (the malicious and benign cases
   of modelscan's, picklescan's and fickling's own test suites, regenerated and labelled with the
   peer's expectation) plus Bastion's ``tests/artifacts`` corpus. A tool "flags" a file when Bastion
   reports high/critical, modelscan reports any issue, picklescan reports an infected file or a
   dangerous global, or fickling rates it LIKELY_UNSAFE or worse. Printed per tool: detection rate
   (malicious flagged), false alarms (benign flagged), unreadable files flagged, and wall time.
2. Wall time over the whole corpus in ``--rounds`` interleaved rounds (the tool order rotates each
   round; one process, one thread each), with the range of Bastion's speed-up over each peer.
3. Throughput on a ~400 MB torch checkpoint and a 5,000-tensor checkpoint (best of 3).

Run: .venv/bin/python bench/scan_vs_modelscan.py [--rounds 3] [--big-mb 400] [--tensors 5000] [--table]
Peers come from the ``bench`` extra. Big files are created in a temp dir and deleted afterwards.
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
Flagger = Callable[[Path], tuple[bool, str]]


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build_corpus(tmp: Path) -> tuple[list[tuple[str, str, Path]], Path]:
    """[(name, expectation, path)] over the peer corpus and Bastion's artifacts corpus; the marker path."""
    peer = _load("bench_peer_corpus", ROOT / "tests" / "artifacts" / "scan_corpus" / "corpus.py").build(tmp / "peers")
    own = _load("bench_own_corpus", ROOT / "tests" / "artifacts" / "conftest.py")
    (tmp / "mal").mkdir()
    (tmp / "ben").mkdir()
    marker = peer["marker"]
    items = [(c.name, c.expect, c.path) for c in peer["cases"]]
    items += [(f"bastion/{n}", "malicious", p) for n, p in sorted(own._malicious(tmp / "mal", marker).items())]
    items += [(f"bastion/{n}", "benign", p) for n, p in sorted(own._benign(tmp / "ben").items())]
    return items, marker


def bastion_flags(path: Path) -> tuple[bool, str]:
    from bastion.artifacts.scan import scan_path
    from bastion.core.severity import Severity

    r = scan_path(path)
    ms = r.max_severity
    return (ms is not None and ms >= Severity.HIGH), (ms.value if ms else r.verdict)


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


def picklescan_flags(path: Path) -> tuple[bool, str]:
    from picklescan.scanner import SafetyLevel, scan_directory_path, scan_file_path

    r = scan_directory_path(str(path)) if path.is_dir() else scan_file_path(str(path))
    dangerous = [g for g in r.globals if g.safety == SafetyLevel.Dangerous]
    if r.infected_files or dangerous:
        return True, f"{len(dangerous)} dangerous"
    return False, "error" if r.scan_err else ("none" if r.scanned_files else "skipped")


def fickling_flags(path: Path) -> tuple[bool, str]:
    import fickling
    from fickling.analysis import Severity

    if path.is_dir():
        results = [fickling.scan_file(str(p), graceful=True) for p in sorted(path.rglob("*")) if p.is_file()]
    else:
        results = [fickling.scan_file(str(path), graceful=True)]
    worst = max((r.severity for r in results), key=lambda s: s.value[0], default=Severity.LIKELY_SAFE)
    return worst.value[0] >= Severity.LIKELY_UNSAFE.value[0], worst.name


TOOLS: dict[str, Flagger] = {
    "bastion": bastion_flags, "modelscan": modelscan_flags, "picklescan": picklescan_flags, "fickling": fickling_flags,
}


def _flag(fn: Flagger, path: Path) -> tuple[bool, str]:
    try:
        return fn(path)
    except Exception as exc:  # a peer tool crashing is a data point, not a bench failure
        return False, f"crash:{type(exc).__name__}"


def best_of(fn: Callable[[], Any], n: int = 3) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def detection(items: list[tuple[str, str, Path]], rounds: int, table: bool) -> None:
    for fn in TOOLS.values():  # warm-up: one-off imports are not scanning time
        for _, _, path in items[:3]:
            _flag(fn, path)
    seconds: dict[str, list[float]] = {t: [] for t in TOOLS}
    flags: dict[str, dict[str, tuple[bool, str]]] = {t: {} for t in TOOLS}
    order = list(TOOLS)
    for r in range(rounds):
        for t in order[r % len(order):] + order[: r % len(order)]:
            t0 = time.perf_counter()
            for name, _, path in items:
                flags[t][name] = _flag(TOOLS[t], path)
            seconds[t].append(time.perf_counter() - t0)
    if table:
        print(f"{'file':60} {'expect':10} " + " ".join(f"{t:>20}" for t in TOOLS))
        for name, expect, _ in items:
            cells = " ".join(f"{('FLAG ' if flags[t][name][0] else 'pass ') + flags[t][name][1]:>20.20}" for t in TOOLS)
            print(f"{name[:60]:60} {expect:10} {cells}")
    kinds = ("malicious", "benign", "unreadable", "policy")
    n = {e: sum(1 for _, x, _ in items if x == e) for e in kinds}
    print(f"\ncorpus: {len(items)} files — {n['malicious']} malicious, {n['benign']} benign, "
          f"{n['unreadable']} unreadable, {n['policy']} policy; {rounds} interleaved rounds, 1 thread each")
    print(f"{'tool':11} {'detection':>17} {'false alarms':>13} {'unreadable flagged':>19} {'wall s (min..max)':>19}")
    for t in TOOLS:
        hit = {e: sum(1 for nm, x, _ in items if x == e and flags[t][nm][0]) for e in kinds}
        print(f"{t:11} {hit['malicious']:>5}/{n['malicious']:<4} {100 * hit['malicious'] / n['malicious']:5.1f}% "
              f"{hit['benign']:>7}/{n['benign']:<5} {hit['unreadable']:>12}/{n['unreadable']:<6} "
              f"{min(seconds[t]):10.2f}..{max(seconds[t]):.2f}")
    for peer in ("modelscan", "picklescan", "fickling"):
        ratios = [p / b for p, b in zip(seconds[peer], seconds["bastion"], strict=True)]
        print(f"bastion speed-up vs {peer:10}: {min(ratios):.1f}x .. {max(ratios):.1f}x (wall time per round)")
    missed = [nm for nm, x, _ in items if x == "malicious" and not flags["bastion"][nm][0]]
    alarms = [nm for nm, x, _ in items if x == "benign" and flags["bastion"][nm][0]]
    print(f"bastion missed: {missed or 'none'}; false alarms: {alarms or 'none'}")


def throughput(tmp: Path, big_mb: int, n_tensors: int) -> None:
    import torch

    big = tmp / "big.pt"
    torch.save({"weight": torch.zeros(big_mb * 250_000, dtype=torch.float32), "step": 1}, big)
    many = tmp / "many.pt"
    torch.save({f"layer{i}.weight": torch.zeros(4) for i in range(n_tensors)}, many)
    print(f"\n{'checkpoint (best of 3)':28} {'bastion s':>10} {'modelscan s':>12} {'picklescan s':>13} "
          f"{'fickling s':>11} {'vs modelscan':>13}")
    for label, path in ((f"{big.stat().st_size / 1e6:.0f} MB torch checkpoint", big),
                        (f"{n_tensors}-tensor checkpoint", many)):
        tb = best_of(lambda p=path: bastion_flags(p))
        tm = best_of(lambda p=path: modelscan_flags(p))
        tp = best_of(lambda p=path: picklescan_flags(p))
        tf = best_of(lambda p=path: fickling_flags(p), n=1)
        print(f"{label:28} {tb:10.4f} {tm:12.4f} {tp:13.4f} {tf:11.4f} {tm / tb:12.1f}x")
    big.unlink()
    many.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--big-mb", type=int, default=400)
    ap.add_argument("--tensors", type=int, default=5000)
    ap.add_argument("--table", action="store_true", help="print every file's result per tool")
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    import torch

    torch.set_num_threads(1)  # equal threads: every scanner here is single-threaded
    tmp = Path(tempfile.mkdtemp(prefix="bastion-scan-bench-"))
    try:
        items, marker = build_corpus(tmp)
        detection(items, args.rounds, args.table)
        assert not marker.exists(), "a payload executed!"
        if not args.skip_throughput:
            throughput(tmp, args.big_mb, args.tensors)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
