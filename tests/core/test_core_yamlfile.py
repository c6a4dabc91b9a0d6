"""load_yaml_mapping: the one reader of YAML files that must hold a mapping, and its refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.core.errors import ConfigError, InvalidInputError
from bastion.core.yamlfile import load_yaml_mapping

KW = {"missing": "no such file", "not_mapping": "want a mapping"}


def test_reads_a_mapping_and_an_empty_file_as_empty(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("gateway:\n  port: 8080\n")
    (tmp_path / "empty.yaml").write_text("")
    assert load_yaml_mapping(tmp_path / "a.yaml", **KW) == {"gateway": {"port": 8080}}
    assert load_yaml_mapping(tmp_path / "empty.yaml", **KW) == {}


def test_refusals_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_yaml_mapping(tmp_path / "gone.yaml", **KW)
    with pytest.raises(InvalidInputError, match="no such file"):
        load_yaml_mapping(tmp_path / "gone.yaml", missing_error=InvalidInputError, **KW)
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml is not valid YAML"):
        load_yaml_mapping(tmp_path / "bad.yaml", **KW)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="want a mapping"):
        load_yaml_mapping(tmp_path / "list.yaml", **KW)
