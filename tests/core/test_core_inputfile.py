"""read_input_file: the refusals every reader of a key, context or fingerprint file shares."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from bastion.core.errors import ConfigError, InvalidInputError
from bastion.core.inputfile import parse_json, read_input_file


def _echo(data: bytes, where: str) -> tuple[bytes, str]:
    return data, where


def test_the_content_and_the_path_go_to_the_parser(tmp_path: Path) -> None:
    p = tmp_path / "k"
    p.write_bytes(b"secret")
    assert read_input_file(p, "key file", _echo) == (b"secret", str(p))


def test_a_missing_file_names_itself_and_says_how_to_make_one(tmp_path: Path) -> None:
    p = tmp_path / "absent.key"
    with pytest.raises(InvalidInputError) as err:
        read_input_file(p, "key file", _echo, hint="create one with: bastion data keygen")
    assert str(err.value) == f"key file {p} not found; create one with: bastion data keygen"
    with pytest.raises(ConfigError, match=rf"^--truth {re.escape(str(p))} not found$"):
        read_input_file(p, "--truth", _echo, missing_error=ConfigError)


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not found"):
        read_input_file(tmp_path, "public key", _echo)


@pytest.mark.parametrize("mode,refused", [(0o600, False), (0o400, False), (0o640, True), (0o604, True)])
def test_a_private_file_must_be_readable_by_its_owner_only(tmp_path: Path, mode: int, refused: bool) -> None:
    p = tmp_path / "id.pem"
    p.write_bytes(b"x")
    os.chmod(p, mode)
    assert read_input_file(p, "private key", _echo, private=False) == (b"x", str(p))
    if refused:
        with pytest.raises(ConfigError, match=rf"private key .* has mode {oct(mode)}; it must be 0600 \(chmod 600"):
            read_input_file(p, "private key", _echo, private=True)
    else:
        assert read_input_file(p, "private key", _echo, private=True) == (b"x", str(p))


def test_parse_errors_are_the_parsers_own(tmp_path: Path) -> None:
    p = tmp_path / "f.json"
    p.write_bytes(b"{not json")
    with pytest.raises(InvalidInputError, match=rf"^{re.escape(str(p))} is not JSON: "):
        read_input_file(p, "fingerprint file", parse_json)


def test_parse_json() -> None:
    assert parse_json(b'{"a": [1]}', "x") == {"a": [1]}
    with pytest.raises(ConfigError, match=r"^--truth t is not JSON"):
        parse_json(b"\xff\xfe", "--truth t", ConfigError)
