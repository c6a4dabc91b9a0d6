"""``bastion tour DIR``: every input the README's five-minute tour uses, written into one folder.

Nothing is downloaded: the models are Bastion's demo models (trained and cached on first use from
scikit-learn's bundled digits), the data comes from the same data set, the table of customers is
synthetic, and the two suspicious files are inert (their payload would only create a marker file,
and nothing in the tour loads them — the scanner reads them as bytes).

==========================  ==================================================================
file                        what it is for
==========================  ==================================================================
``digits.pt`` (+ sidecar)   the model the tour assesses, signs, pushes and serves (TorchScript)
``digits-v2.pt`` (+ sidecar) a second version (another seed) to push, promote and roll back
``digits.npz``              its data: ``x_train/y_train`` (members) and ``x_test/y_test``
``suspicious/evil.pt``      a torch checkpoint whose pickle calls ``os.system`` (inert payload)
``suspicious/bypass.pkl``   the same call reached through ``getattr(__import__('os'), 'system')``
``data/people.csv``         200 synthetic customers with PII (names, e-mails, phones, IBANs)
``ref.npz``/``shifted.npz`` reference traffic and a brightness-shifted batch for drift detection
``request.json``            a predict request body: the first two test digits, shaped [1, 8, 8]
``digits.yaml``             EU AI Act questionnaire answers for ``govern classify``
``keys/release[.pub]``      a signing key pair (private key mode 0600)
``bastion.yaml``            gateway config trusting ``keys/release.pub``, on 127.0.0.1:8765
``bastion-policy.yaml``     the CI gate's policy for ``bastion ci`` (also ``examples/bastion-policy.yaml``)
==========================  ==================================================================
"""

from __future__ import annotations

import io
import json
import random
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np

from bastion.core.errors import ConfigError
from bastion.core.paths import atomic_write_bytes, atomic_write_text

TOUR_PORT = 8765
POLICY = """\
# bastion ci --policy bastion-policy.yaml: the gate a model must pass before it merges or ships
# (paths are relative to this file; docs/continuous.md explains every key)
model: digits.pt
data: digits.npz
scan: {fail_on: high}
signature:
  required: true
  trusted_keys: [keys/release.pub]
assess:
  profile: quick
  only: [evasion, supply_chain]
  fail_on: high
  thresholds: {supply_chain: medium}
waivers:
  - finding: evasion.worst_case_robustness
    reason: the worst case is tracked with the robustness curve below, not twice
    expires: 2027-06-30
"""
ANSWERS = """\
# EU AI Act questionnaire (bastion govern classify --template prints a blank one)
system:
  name: digits
  description: Reads handwritten digits on scanned loan application forms for a bank's back office.
  role: provider
  deployer_is_public_body_or_public_service: false
prohibited: {a_subliminal_manipulation: false, b_exploits_vulnerabilities: false, c_social_scoring: false,
             d_crime_prediction_by_profiling: false, e_untargeted_facial_scraping: false,
             f_emotion_recognition_work_education: false, g_biometric_categorisation_sensitive: false,
             h_realtime_remote_biometric_id_law_enforcement: false}
safety_component_annex_i: false
annex_iii_area: essential_services
use_case: digitises amounts written on loan applications; a clerk reviews every form
derogation: {narrow_procedural_task: false, improves_completed_human_activity: false,
             detects_decision_patterns_without_replacing_review: false, preparatory_task: true,
             performs_profiling: false}
transparency: {interacts_with_natural_persons: false, generates_synthetic_content: false,
               emotion_recognition_or_biometric_categorisation: false, deep_fake: false,
               generates_public_interest_text: false}
gpai: {general_purpose_model: false, systemic_risk: false}
rationale:
  derogation.preparatory_task: the digits feed a form a clerk completes and signs
"""


def _system_pickle(marker: Path) -> bytes:
    """Protocol-2 pickle calling ``os.system('touch MARKER')`` — written, never loaded."""
    arg = f"touch {marker}".encode()
    return b"\x80\x02cos\nsystem\nq\x00X" + struct.pack("<I", len(arg)) + arg + b"q\x01\x85q\x02Rq\x03."


def _bypass_pickle(marker: Path) -> bytes:
    """``getattr(__import__('os'), 'system')('touch MARKER')``: no ``os.system`` global for a name match."""
    def s(text: str) -> bytes:
        raw = text.encode()
        return b"X" + struct.pack("<I", len(raw)) + raw

    return (b"\x80\x02cbuiltins\ngetattr\nq\x00cbuiltins\n__import__\nq\x01" + s("os") + b"\x85R"
            + s("system") + b"\x86R" + s(f"touch {marker}") + b"\x85R.")


def _evil_checkpoint(marker: Path) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save({"fc.weight": torch.zeros(10, 64), "fc.bias": torch.zeros(10)}, buf)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            dst.writestr(info, _system_pickle(marker) if info.filename.endswith("data.pkl") else data)
    return out.getvalue()


def _people(n: int = 200, seed: int = 0) -> str:
    from bastion.data.privacy import pii_corpus as pc

    rng = random.Random(seed)
    rows = ["customer_id,first_name,last_name,email,phone,iban,city,segment,balance"]
    for i in range(n):
        first, last = rng.choice(pc.FIRST), rng.choice(pc.LAST)
        city = rng.choice(pc.CITIES)[0]
        rows.append(",".join([
            str(1000 + i), first, last.replace("'", ""), pc.email(first, last, i, rng), pc.us_phone(rng),
            pc.iban(rng), city, rng.choice(["retail", "business", "private"]), f"{rng.uniform(10, 9000):.2f}",
        ]))
    return "\n".join(rows) + "\n"


def _model_copy(demo_seed: int, dest: Path) -> None:
    from bastion.datasets import load_demo_data
    from bastion.models.zoo import demo_model_path

    src = demo_model_path("digits", demo_seed)
    atomic_write_bytes(dest, src.read_bytes(), mode=0o644)
    d = load_demo_data("digits")
    side = {"input_shape": list(d.input_shape), "dtype": "float32", "clip_min": d.clip_min, "clip_max": d.clip_max,
            "n_classes": len(d.class_names), "class_names": d.class_names}
    atomic_write_text(dest.with_name(dest.name + ".bastion.json"), json.dumps(side, indent=2) + "\n")


def write_tour(directory: str | Path, force: bool = False) -> list[Path]:
    """Write the tour's inputs into ``directory`` (created; must be empty unless ``force``); return the files."""
    from bastion.artifacts.keys import generate_keypair
    from bastion.datasets import load_demo_data

    root = Path(directory)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root} exists and is not a directory")
    if root.exists() and any(root.iterdir()) and not force:
        raise ConfigError(f"{root} is not empty: choose an empty directory (or pass --force to overwrite the tour files)")
    root.mkdir(parents=True, exist_ok=True)
    marker = (root / "PWNED-if-this-exists").resolve()
    written: list[Path] = []

    _model_copy(0, root / "digits.pt")
    _model_copy(1, root / "digits-v2.pt")
    written += [root / n for n in ("digits.pt", "digits.pt.bastion.json", "digits-v2.pt", "digits-v2.pt.bastion.json")]

    s = load_demo_data("digits").splits
    assert s.x_train is not None and s.y_train is not None and s.x_test is not None and s.y_test is not None
    for name, arrays in (
        ("digits.npz", {"x_train": s.x_train, "y_train": s.y_train, "x_test": s.x_test, "y_test": s.y_test}),
        ("ref.npz", {"x": s.x_train[:400].reshape(400, -1)}),
        ("shifted.npz", {"x": np.clip(s.x_test[:200].reshape(200, -1) * 0.6 + 0.3, 0.0, 1.0)}),
    ):
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
        atomic_write_bytes(root / name, buf.getvalue(), mode=0o644)
        written.append(root / name)

    body = {"inputs": np.round(s.x_test[:2].astype(np.float64), 4).tolist()}
    atomic_write_text(root / "request.json", json.dumps(body, separators=(",", ":")) + "\n")
    written.append(root / "request.json")

    (root / "suspicious").mkdir(exist_ok=True)
    atomic_write_bytes(root / "suspicious" / "evil.pt", _evil_checkpoint(marker), mode=0o644)
    atomic_write_bytes(root / "suspicious" / "bypass.pkl", _bypass_pickle(marker), mode=0o644)
    written += [root / "suspicious" / "evil.pt", root / "suspicious" / "bypass.pkl"]

    (root / "data").mkdir(exist_ok=True)
    atomic_write_text(root / "data" / "people.csv", _people())
    atomic_write_text(root / "digits.yaml", ANSWERS)
    written += [root / "data" / "people.csv", root / "digits.yaml"]

    keys = root / "keys"
    if keys.exists() and force:
        shutil.rmtree(keys)
    keys.mkdir(mode=0o700)
    generate_keypair(keys / "release")
    written += [keys / "release", keys / "release.pub"]
    config = (f"gateway:\n  host: 127.0.0.1\n  port: {TOUR_PORT}\n"
              "  registry: {trusted_keys: [keys/release.pub]}\n")
    atomic_write_text(root / "bastion.yaml", config)
    atomic_write_text(root / "bastion-policy.yaml", POLICY)
    written += [root / "bastion.yaml", root / "bastion-policy.yaml"]
    return written
