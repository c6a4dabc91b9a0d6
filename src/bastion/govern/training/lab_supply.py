"""Lab 5: scan model files and reject the malicious checkpoint before anyone loads it.

The workspace holds three model files that look alike; one PyTorch checkpoint carries a pickle payload
(it would only ``touch`` a marker file in the workspace, and nothing in Bastion ever loads it). The learner
scans with ``bastion model scan``, keeps the JSON report, and records a decision; Bastion checks the decision
against its own scan and that the payload never ran.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import zipfile
from pathlib import Path

import yaml

from bastion.core.errors import InvalidInputError
from bastion.core.paths import atomic_write_bytes
from bastion.govern.training.base import Lab, LabCheck

MARKER = "PAYLOAD_RAN"
BENIGN = ("classifier_v1.pt", "classifier_v1.safetensors")
MALICIOUS = ("classifier_v2.pt",)
INSTRUCTIONS = """# Lab 5 — scan and reject a malicious checkpoint

`models/` holds three model files from a "partner". One of them runs code when loaded with `torch.load`
(MITRE ATLAS AML.T0011.000 Unsafe AI Artifacts / AML.T0010.003; OWASP ML06). **Do not load any of them.**

1. Scan them: `bastion model scan {workdir}/models --format json > {workdir}/scan.json`
2. Write `{workdir}/decision.yaml`:

       scan_report: scan.json
       reject: [models/<file you refuse>]
       accept: [models/<files you would load>]

3. Check: `bastion learn check 5 --dir {workdir}`

If `{marker}` ever appears in this folder, someone loaded the bad file.
"""


def _payload_pickle(command: str) -> bytes:
    """Protocol-2 pickle calling ``os.system(command)`` — written, never loaded."""
    arg = command.encode()
    return (b"\x80\x02cos\nsystem\nq\x00X" + struct.pack("<I", len(arg)) + arg + b"q\x01\x85q\x02Rq\x03.")


class SupplyChainLab(Lab):
    number = 5
    slug = "malicious-checkpoint"
    title = "Scan and reject a malicious checkpoint"
    goal = "reject exactly the checkpoint that executes code on load, backed by a Bastion scan report"
    readme = INSTRUCTIONS
    readme_fields = {"marker": MARKER}

    def prepare(self, workdir: Path, seed: int) -> list[str]:
        import torch
        from safetensors.torch import save as save_safetensors

        models = workdir / "models"
        if models.exists():
            shutil.rmtree(models)
        models.mkdir(parents=True)
        gen = torch.Generator().manual_seed(seed)
        state = {"fc.weight": torch.randn(10, 64, generator=gen), "fc.bias": torch.zeros(10)}
        buf = io.BytesIO()
        torch.save(state, buf)
        benign = buf.getvalue()
        atomic_write_bytes(models / BENIGN[0], benign, mode=0o644)
        atomic_write_bytes(models / BENIGN[1], save_safetensors(state), mode=0o644)
        evil = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(benign)) as src, zipfile.ZipFile(evil, "w", zipfile.ZIP_STORED) as dst:
            for info in src.infolist():
                data = src.read(info.filename)
                if info.filename.endswith("data.pkl"):
                    data = _payload_pickle(f"touch {workdir.resolve() / MARKER}")
                dst.writestr(info, data)
        atomic_write_bytes(models / MALICIOUS[0], evil.getvalue(), mode=0o644)
        return [f"models/{n}" for n in (*BENIGN, *MALICIOUS)]

    def check(self, workdir: Path) -> LabCheck:
        from bastion.artifacts.scan import scan_path

        models = workdir / "models"
        if not models.is_dir():
            raise InvalidInputError(f"{models} is missing: run 'bastion learn start 5 --dir {workdir}' first")
        if (workdir / MARKER).exists():
            return LabCheck(5, False, 0.0, f"{MARKER} exists: the malicious checkpoint was LOADED. Never load a "
                            "model file before scanning it; delete the marker and start again.")
        truth = {Path(f.path).name: f.max_severity is not None and f.max_severity.rank >= 3
                 for f in scan_path(models).files}
        expected_reject = {n for n, bad in truth.items() if bad}
        if expected_reject != set(MALICIOUS):
            raise InvalidInputError(f"the lab files in {models} were changed (scan flags {sorted(expected_reject)}); "
                                    "run 'bastion learn start 5' again")
        decision_path = workdir / "decision.yaml"
        if not decision_path.is_file():
            return LabCheck(5, False, 0.0, f"no decision yet: write {decision_path} (see README.md)")
        try:
            decision = yaml.safe_load(decision_path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InvalidInputError(f"{decision_path} is not valid YAML: {exc}") from None
        if not isinstance(decision, dict):
            raise InvalidInputError(f"{decision_path}: expected keys scan_report, reject, accept")
        rejected = {Path(str(p)).name for p in decision.get("reject") or []}
        accepted = {Path(str(p)).name for p in decision.get("accept") or []}
        details: dict[str, object] = {"rejected": sorted(rejected), "accepted": sorted(accepted)}
        report_path = workdir / str(decision.get("scan_report", "scan.json"))
        try:
            report = json.loads(report_path.read_text())
            scanned = {Path(f["path"]).name: f.get("max_severity", "none") for f in report["files"]}
        except (OSError, ValueError, KeyError, TypeError):
            return LabCheck(5, False, 0.0, f"no usable scan report at {report_path}: save the output of "
                            "'bastion model scan … --format json' there", details)
        details["report_severities"] = scanned
        if any(scanned.get(n) not in ("high", "critical") for n in MALICIOUS):
            return LabCheck(5, False, 0.0, "your scan report does not show the malicious file at high or "
                            "critical severity: scan the whole models/ folder", details)
        if rejected == set(MALICIOUS) and accepted == set(BENIGN):
            return LabCheck(5, True, 1.0, f"correct: rejected {', '.join(MALICIOUS)} (code execution on load) "
                            "and accepted the clean files — without loading anything", details)
        if set(MALICIOUS) <= rejected and not (accepted & set(MALICIOUS)):
            return LabCheck(5, False, 0.5, "the malicious file is rejected, but a clean file was rejected or left "
                            "undecided: decide on every file", details)
        return LabCheck(5, False, 0.0, "the malicious checkpoint was not rejected", details)
