"""The default model loader run inside a sandbox worker: Bastion's scanning loader."""

from __future__ import annotations

from typing import Any

from bastion.core.model import InputSpec, ModelAdapter


def load_registered_model(path: str, spec: dict[str, Any] | None) -> ModelAdapter:
    """Load a registry file with ``bastion.models.loaders.load_model`` (scans before deserialising)."""
    from bastion.models.loaders import load_model

    return load_model(path, input_spec=InputSpec.from_dict(spec) if spec else None)
