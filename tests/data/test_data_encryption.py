"""Envelope encryption: round trip, tamper detection, rotation, no partial plaintext."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.core.errors import ConfigError, IntegrityError
from bastion.data.privacy.encryption import decrypt_file, encrypt_file, generate_kek, load_kek, rekey_file


@pytest.fixture
def kek(tmp_path: Path) -> Path:
    return generate_kek(tmp_path / "kek")[0]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=3000), chunk=st.integers(1, 700))
def test_encrypt_decrypt_is_identity(tmp_path: Path, kek: Path, data: bytes, chunk: int) -> None:
    src, enc, dec = tmp_path / "p", tmp_path / "p.enc", tmp_path / "p.out"
    src.write_bytes(data)
    encrypt_file(src, enc, kek, chunk_size=chunk)
    decrypt_file(enc, dec, kek)
    assert dec.read_bytes() == data


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=st.integers(min_value=0), bit=st.integers(0, 7))
def test_any_flipped_byte_fails_and_writes_nothing(tmp_path: Path, kek: Path, pos: int, bit: int) -> None:
    src, enc, dec = tmp_path / "q", tmp_path / "q.enc", tmp_path / "q.out"
    src.write_bytes(os.urandom(900))
    encrypt_file(src, enc, kek, chunk_size=256)
    blob = bytearray(enc.read_bytes())
    blob[pos % len(blob)] ^= 1 << bit
    enc.write_bytes(bytes(blob))
    with pytest.raises((IntegrityError, Exception)) as info:
        decrypt_file(enc, dec, kek)
    assert isinstance(info.value, IntegrityError) or "magic" in str(info.value)
    assert not dec.exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_truncated_and_reordered_chunks_fail(tmp_path: Path, kek: Path) -> None:
    src, enc = tmp_path / "r", tmp_path / "r.enc"
    src.write_bytes(os.urandom(1000))
    encrypt_file(src, enc, kek, chunk_size=100)
    blob = enc.read_bytes()
    enc.write_bytes(blob[: len(blob) - (100 + 16 + 4)])  # drop the final chunk
    with pytest.raises(IntegrityError):
        decrypt_file(enc, tmp_path / "out", kek)


def test_rekey_rewraps_only_the_data_key(tmp_path: Path, kek: Path) -> None:
    new = generate_kek(tmp_path / "kek2")[0]
    src, enc = tmp_path / "s", tmp_path / "s.enc"
    src.write_bytes(b"secret rows\n" * 500)
    encrypt_file(src, enc, kek, chunk_size=512)
    tail_before = enc.read_bytes()[-2000:]
    rekey_file(enc, kek, new)
    assert enc.read_bytes()[-2000:] == tail_before
    with pytest.raises(IntegrityError, match="key id"):
        decrypt_file(enc, tmp_path / "o", kek)
    decrypt_file(enc, tmp_path / "o", new)
    assert (tmp_path / "o").read_bytes() == src.read_bytes()


def test_key_file_must_be_private(tmp_path: Path, kek: Path) -> None:
    os.chmod(kek, 0o644)
    with pytest.raises(ConfigError, match="0600"):
        load_kek(kek)


def test_a_failed_encryption_leaves_the_old_output_and_no_temporary_file(
        tmp_path: Path, kek: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bastion.data.privacy.encryption as enc_mod

    src, dst = tmp_path / "s", tmp_path / "s.enc"
    src.write_bytes(os.urandom(2000))
    dst.write_bytes(b"previous")

    def failing_blocks(path: Path, chunk_size: int):  # type: ignore[no-untyped-def]
        yield b"x" * chunk_size
        raise OSError("disk went away")

    monkeypatch.setattr(enc_mod, "_plain_blocks", failing_blocks)
    with pytest.raises(OSError, match="disk went away"):
        encrypt_file(src, dst, kek, chunk_size=256)
    assert dst.read_bytes() == b"previous"
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    monkeypatch.undo()
    encrypt_file(src, dst, kek, chunk_size=256)
    assert dst.stat().st_mode & 0o777 == 0o600
    rekey_file(dst, kek, generate_kek(tmp_path / "kek2")[0])
    assert dst.stat().st_mode & 0o777 == 0o600
