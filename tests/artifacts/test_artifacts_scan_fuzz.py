"""Fuzzing the pickle walk: random and mutated pickles never crash the scanner and never execute."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.artifacts.scan import scan_path
from bastion.artifacts.scan.pickle_scan import scan_pickle_bytes
from bastion.artifacts.scan.policy import get_policy
from bastion.artifacts.scan.report import VERDICTS

MARKER = Path(os.environ.get("TMPDIR", "/tmp")) / f"bastion-fuzz-marker-{os.getpid()}"


class _Payload:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return os.system, (f"touch {MARKER}",)


SEEDS = [
    pickle.dumps(_Payload(), protocol=p) for p in range(6)
] + [pickle.dumps({"a": [1, 2.0, "x", b"y"], "b": {1, 2}, "c": (None, True)}, protocol=p) for p in range(6)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_mutated_pickles_never_crash_or_execute(seed: bytes, data: st.DataObject) -> None:
    buf = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        i = data.draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == "flip" and buf:
            buf[i] = data.draw(st.integers(0, 255))
        elif op == "insert":
            buf[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and buf:
            del buf[i]
        elif op == "truncate":
            del buf[i:]
    findings, _ = scan_pickle_bytes(bytes(buf), get_policy())
    assert all(f.severity.value in ("info", "low", "medium", "high", "critical") for f in findings)
    assert not MARKER.exists()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=256))
def test_random_bytes_never_crash(data: bytes) -> None:
    findings, _ = scan_pickle_bytes(b"\x80\x04" + data, get_policy())
    assert isinstance(findings, list)
    assert not MARKER.exists()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=512))
def test_scan_path_on_arbitrary_files_returns_a_report(tmp_path: Path, data: bytes) -> None:
    p = tmp_path / "blob"
    p.write_bytes(data)
    report = scan_path(p)
    assert report.verdict in VERDICTS
    assert len(report.files) == 1
    if report.verdict == "safe":  # safe only when the file was recognised and read to its end
        assert report.scanned_files and not report.errors


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_archives_never_crash(tmp_path: Path, data: st.DataObject) -> None:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ckpt/data.pkl", SEEDS[data.draw(st.integers(0, len(SEEDS) - 1))])
        zf.writestr("ckpt/data/0", b"\0" * 64)
        zf.writestr("ckpt/version", b"3\n")
    blob = bytearray(buf.getvalue())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    p = tmp_path / "ckpt.pt"
    p.write_bytes(bytes(blob))
    report = scan_path(p)
    assert report.verdict in VERDICTS
    if report.verdict == "safe":
        assert report.scanned_files and not report.errors
    assert not MARKER.exists()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(SEEDS + [pickle.dumps({"k": [1, 2.5, "é", b"b" * 300, None, True] * 40}, protocol=p)
                                      for p in (2, 4, 5)]), data=st.data())
def test_inline_walk_equals_the_genops_walk(seed: bytes, data: st.DataObject) -> None:
    """The in-memory walk (hot opcodes decoded inline) finds exactly what the pickletools.genops walk finds."""
    import io

    from bastion.artifacts.scan import pickle_scan

    buf = bytearray(seed)
    for _ in range(data.draw(st.integers(0, 4))):
        i = data.draw(st.integers(0, max(len(buf) - 1, 0)))
        if buf:
            buf[i] = data.draw(st.integers(0, 255))
    fast, _ = scan_pickle_bytes(bytes(buf), get_policy())
    limit = pickle_scan.IN_MEMORY_LIMIT
    pickle_scan.IN_MEMORY_LIMIT = -1  # a buffered file stays a file: the pickletools.genops walk
    try:
        slow, _ = pickle_scan.scan_pickle_stream(io.BufferedReader(io.BytesIO(bytes(buf))), get_policy())  # type: ignore[arg-type]
    finally:
        pickle_scan.IN_MEMORY_LIMIT = limit

    def key(findings: list) -> list:  # type: ignore[type-arg]
        # a broken stream is reported at the opcode that broke (inline) or the one before it (genops)
        return [(f.code, f.global_name, f.severity, None if f.code == "PICKLE_MALFORMED" else f.offset)
                for f in findings]

    assert key(fast) == key(slow)
