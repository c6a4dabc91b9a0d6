"""Reading a YAML file that must hold a mapping (configs, policies, answer files): one way, one set of
refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bastion.core.errors import BastionError, ConfigError


def load_yaml_mapping(path: Path, *, missing: str, not_mapping: str,
                      missing_error: type[BastionError] = ConfigError) -> dict[str, Any]:
    """The mapping at the top of the YAML file ``path`` (an empty file is ``{}``).

    Refusals: ``missing_error(missing)`` when there is no such file; ``ConfigError`` when the text is not
    YAML (the parser's message follows the path) or ``ConfigError(not_mapping)`` when its top is not a mapping.
    """
    if not path.is_file():
        raise missing_error(missing)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if isinstance(doc, dict):
        return doc
    raise ConfigError(not_mapping)
