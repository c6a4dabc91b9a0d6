"""Bastion on the test suites of modelscan, picklescan and fickling (regenerated, labelled by the peer).

Every malicious case is high or critical, every benign case is safe, unreadable files are error or
unscanned (never safe, never a false alarm), and nothing is ever executed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from bastion.artifacts.scan import scan_path
from bastion.core.severity import Severity


def _results(peer_corpus: dict[str, Any]) -> list[tuple[Any, Any]]:
    return [(c, scan_path(c.path)) for c in peer_corpus["cases"]]


def test_corpus_covers_three_peers(peer_corpus: dict[str, Any]) -> None:
    counts = Counter((c.peer, c.expect) for c in peer_corpus["cases"])
    for peer in ("picklescan", "modelscan", "fickling"):
        assert counts[(peer, "malicious")] >= 20 and counts[(peer, "benign")] >= 5, counts


def test_every_case_meets_its_expectation(peer_corpus: dict[str, Any]) -> None:
    wrong = {}
    for case, report in _results(peer_corpus):
        ms, verdict = report.max_severity, report.verdict
        ok = {
            "malicious": ms is not None and ms >= Severity.HIGH,
            "benign": verdict == "safe",
            "unreadable": verdict in ("error", "unscanned") and (ms is None or ms < Severity.HIGH),
            "policy": ms is not None and ms >= Severity.MEDIUM,
        }[case.expect]
        if not ok:
            wrong[case.name] = (case.expect, verdict, ms.value if ms else None,
                                [f"{x.severity.value} {x.code} {x.global_name}" for _, x in report.findings][:4])
    assert not wrong, wrong
    assert not peer_corpus["marker"].exists(), "a payload executed"


def test_frame_divergence_walks_what_pickle_load_runs(peer_corpus: dict[str, Any]) -> None:
    case = next(c for c in peer_corpus["cases"] if c.name == "fickling/test_frame_boundary_divergence.pkl")
    findings = [x for _, x in scan_path(case.path).findings]
    assert any(x.code == "PICKLE_FRAME_VIOLATION" for x in findings)
    # the hidden os.system call that pickle.load(file) executes is found on the C unpickler's reading
    assert any(x.global_name == "os.system" and "frame-skip@" in x.member for x in findings)


def test_zip_evasions_are_scanned_and_flagged(peer_corpus: dict[str, Any]) -> None:
    by_name = {c.name: c for c in peer_corpus["cases"]}
    expected = {"malicious1_0x1.zip": "ZIP_FLAG_MISMATCH", "malicious1_0x20.zip": "ZIP_FLAG_MISMATCH",
                "malicious1_0x40.zip": "ZIP_FLAG_MISMATCH", "malicious1_central_directory.zip": "ZIP_NAME_MISMATCH",
                "malicious1_crc.zip": "ZIP_CRC_MISMATCH"}
    for name, code in expected.items():
        findings = [x for _, x in scan_path(by_name[f"picklescan/{name}"].path).findings]
        codes = {x.code for x in findings}
        assert code in codes and "PICKLE_DANGEROUS_CALL" in codes, (name, codes)
