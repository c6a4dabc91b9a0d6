"""Save a hardened or wrapped model as TorchScript plus the ``MODEL.pt.bastion.json`` sidecar.

The sidecar carries the input spec (shape, clip range) and class count that
``bastion.models.loaders.load_model`` reads, and a ``defense`` block (name, parameters,
whether the wrapper is differentiable / randomised) so the assessment knows which wrapper is
present and attacks it adaptively (BPDA / EOT). Files are written atomically.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bastion.core.errors import ModelLoadError
from bastion.core.model import InputSpec
from bastion.core.paths import atomic_write_bytes, atomic_write_text
from bastion.models.loaders import TORCHSCRIPT_META

SIDECAR_SUFFIX = ".bastion.json"

# What the adaptive assessment needs to know about each wrapper.
DEFENSE_TRAITS: dict[str, dict[str, bool]] = {
    "feature_squeezing": {"differentiable": False, "randomized": False, "detector": True},
    "randomized_smoothing": {"differentiable": True, "randomized": True, "detector": False},
    "mahalanobis_detector": {"differentiable": True, "randomized": False, "detector": True},
    "lid_detector": {"differentiable": True, "randomized": False, "detector": True},
    "adversarial_training": {"differentiable": True, "randomized": False, "detector": False},
}


def sidecar_path(model_path: str | Path) -> Path:
    p = Path(model_path)
    return p.with_name(p.name + SIDECAR_SUFFIX)


def training_record_path(model_path: str | Path) -> Path:
    p = Path(model_path)
    return p.with_name(p.name + ".training.json")


def defense_block(name: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, **DEFENSE_TRAITS.get(name, {}), "params": params}


def save_model(
    module: nn.Module,
    path: str | Path,
    input_spec: InputSpec,
    n_classes: int,
    defense: dict[str, Any] | None = None,
    class_names: list[str] | None = None,
    record: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Script ``module`` and write PATH, PATH.bastion.json (and PATH.training.json when ``record``)."""
    module.eval()
    try:
        scripted = torch.jit.script(module)
    except Exception as exc:
        raise ModelLoadError(f"cannot export {type(module).__name__} as TorchScript: {str(exc).splitlines()[0]}") from exc
    buf = io.BytesIO()
    # the input spec also travels inside the file (extra/bastion.json): a copy without its sidecar keeps its range
    torch.jit.save(scripted, buf, _extra_files={TORCHSCRIPT_META: json.dumps({"input_spec": input_spec.to_dict()})})
    side: dict[str, Any] = {
        "format": "torchscript",
        "input_spec": input_spec.to_dict(),
        "n_classes": int(n_classes),
    }
    if class_names:
        side["class_names"] = list(class_names)
    if defense:
        side["defense"] = defense
    written = {"model": Path(path), "sidecar": sidecar_path(path)}
    atomic_write_bytes(path, buf.getvalue(), mode=0o644)
    if record is not None:
        written["training_record"] = training_record_path(path)
        side["training_record"] = written["training_record"].name
        atomic_write_text(written["training_record"], json.dumps(record, indent=2, allow_nan=False))
    atomic_write_text(written["sidecar"], json.dumps(side, indent=2, allow_nan=False))
    return written


def read_defense(model_path: str | Path | None, module: Any = None) -> dict[str, Any] | None:
    """The defence wrapped around a loaded model: from its sidecar, else the module's ``bastion_defense``."""
    if model_path:
        side = sidecar_path(model_path)
        if side.is_file():
            try:
                data = json.loads(side.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                data = {}
            if isinstance(data, dict) and isinstance(data.get("defense"), dict):
                return dict(data["defense"])
    name = getattr(module, "bastion_defense", None) if module is not None else None
    if isinstance(name, str):
        return defense_block(name, {})
    return None
