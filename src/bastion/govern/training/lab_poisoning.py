"""Lab 2: find the poisoned training samples (label flips and triggers) in a demo set."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from bastion.core.errors import InvalidInputError
from bastion.core.paths import atomic_write_bytes
from bastion.govern.training.base import Lab, LabCheck, read_json, read_npz

README = """# Lab 2 — poison a training set, then find the poison

`clean.npz` (keys `x`, `y`) is the digits training set. (1) Poison 3–20% of it — flip labels or add a
BadNets trigger (`bastion attack poison …`, or `bastion.attacks.poisoning.random_flip / badnets`) — and save
`poisoned.npz` (keys `x`, `y`, same shapes). (2) Without looking at your indices, run poisoning detection
(`bastion data poison …`, or `bastion.data.poisoning.detect_poisoning(x, y).to_dict()["flagged_indices"]`) and
save `flagged.json` as `{{"flagged_indices": [...]}}`.
Check: `bastion learn check 2 --dir {workdir}`. ATLAS AML.T0020 Poison Training Data; OWASP ML02.
"""


class PoisoningLab(Lab):
    number = 2
    slug = "poison-and-find"
    title = "Poison a training set, then find the poison"
    goal = "poison 3–20% of the digits training set, then flag the poisoned rows with recall ≥ 0.7, precision ≥ 0.5"
    readme = README

    def prepare(self, workdir: Path, seed: int) -> list[str]:
        from bastion.datasets import load_demo_data

        d = load_demo_data("digits").splits
        assert d.x_train is not None and d.y_train is not None
        buf = io.BytesIO()
        np.savez(buf, x=d.x_train, y=d.y_train)
        atomic_write_bytes(workdir / "clean.npz", buf.getvalue(), mode=0o644)
        return ["clean.npz"]

    def check(self, workdir: Path) -> LabCheck:
        clean_p, pois_p, flag_p = workdir / "clean.npz", workdir / "poisoned.npz", workdir / "flagged.json"
        if not clean_p.is_file():
            raise InvalidInputError(f"{clean_p} is missing: run 'bastion learn start 2 --dir {workdir}' first")
        for p in (pois_p, flag_p):
            if not p.is_file():
                return LabCheck(2, False, 0.0, f"missing {p.name} (see README.md)")
        clean, pois = read_npz(clean_p, ("x", "y")), read_npz(pois_p, ("x", "y"))
        if pois["x"].shape != clean["x"].shape or pois["y"].shape != clean["y"].shape:
            return LabCheck(2, False, 0.0, "poisoned.npz must keep the shapes of clean.npz")
        n = len(clean["y"])
        changed = (pois["y"] != clean["y"]) | np.any(
            np.abs(pois["x"].reshape(n, -1) - clean["x"].reshape(n, -1)) > 1e-6, axis=1)
        truth = set(np.flatnonzero(changed).tolist())
        rate = len(truth) / n
        flagged_raw = read_json(flag_p).get("flagged_indices")
        if not isinstance(flagged_raw, list) or not all(isinstance(i, int) for i in flagged_raw):
            raise InvalidInputError(f"{flag_p}: expected {{\"flagged_indices\": [int, ...]}}")
        flagged = set(flagged_raw)
        tp = len(truth & flagged)
        recall = tp / len(truth) if truth else 0.0
        precision = tp / len(flagged) if flagged else 0.0
        details = {"poison_rate": round(rate, 4), "poisoned": len(truth), "flagged": len(flagged),
                   "recall": round(recall, 4), "precision": round(precision, 4)}
        if not 0.03 <= rate <= 0.20:
            return LabCheck(2, False, 0.0, f"poison rate {rate:.1%} is outside 3–20%", details)
        ok = recall >= 0.7 and precision >= 0.5
        score = 1.0 if ok else round(min(recall / 0.7, 1.0) * 0.5 + min(precision / 0.5, 1.0) * 0.5, 3) * 0.9
        return LabCheck(2, ok, score, f"detection recall {recall:.2f}, precision {precision:.2f} on your "
                        f"{len(truth)} poisoned rows" + ("" if ok else " (need ≥ 0.70 and ≥ 0.50)"), details)
