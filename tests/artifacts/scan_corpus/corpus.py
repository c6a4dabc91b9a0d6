"""Build the peer corpus: picklescan's, modelscan's and fickling's test cases, each labelled.

``build(d)`` writes every case under ``d`` and returns ``{"cases": [Case, ...], "marker": Path}``.
Used by ``test_scan_corpus.py`` and ``bench/scan_vs_modelscan.py``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
PEERS = ("picklescan", "modelscan", "fickling")


def _load(name: str, helpers: ModuleType | None = None) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bastion_scan_corpus_{name}", HERE / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # the standard importlib recipe (dataclasses look their module up)
    spec.loader.exec_module(mod)
    if helpers is not None:
        mod.b = helpers  # type: ignore[attr-defined]
    return mod


def build(d: Path) -> dict[str, Any]:
    helpers = _load("_build")
    marker = d / "PWNED"
    cases: list[Any] = []
    for peer in PEERS:
        cases += _load(f"{peer}_cases", helpers).cases(d / peer, marker)
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    return {"cases": cases, "marker": marker}
