"""Everyday data pickles scan safe; pickles abusing the same libraries stay high or critical."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from bastion.artifacts.scan import restricted_load, scan_path
from bastion.core.errors import UnsafeArtifactError
from bastion.core.severity import Severity


def test_real_data_pickles_scan_safe(data_pickles: dict[str, Any]) -> None:
    benign = data_pickles["benign"]
    assert len(benign) >= 100  # 20+ objects x (4 protocols + joblib) + to_pickle files
    flagged = {}
    for name, path in benign.items():
        report = scan_path(path)
        assert report.scanned_files, f"{name}: not recognised as a pickle ({report.files[0].format})"
        if report.findings:
            flagged[name] = [f"{x.severity.value} {x.code} {x.global_name}" for _, x in report.findings]
    assert not flagged, flagged


@pytest.mark.parametrize("name", [
    "pandas_read_pickle", "pandas_io_read_csv", "pandas_read_csv_toplevel", "pandas_eval", "pandas_computation_eval",
    "pandas_query_dotted", "pandas_set_option_backend", "pandas_plotting_backend", "pandas_to_pickle_dotted",
    "numpy_fromfile", "getattr_dataframe_query", "getattr_zoneinfo_other", "getattr_computed_owner",
    "new_index_unknown_class", "ndarraybacked_unknown_class", "reconstructor_unknown_base", "len_on_object",
    "max_with_key_object", "future_other_name", "future_module_attr", "dataframe_class_swap", "arrow_short_buffer",
    "arrow_nested_type", "py_buffer_over_object",
])
def test_gadgets_on_allowlisted_libraries_stay_high(data_pickles: dict[str, Any], name: str) -> None:
    path, code = data_pickles["gadgets"][name]
    report = scan_path(path)
    assert report.max_severity is not None and report.max_severity >= Severity.HIGH, report.to_dict()
    assert code in {x.code for _, x in report.findings if x.severity >= Severity.HIGH}, report.to_dict()
    assert not data_pickles["marker"].exists()


def test_every_gadget_is_listed_in_the_test(data_pickles: dict[str, Any]) -> None:
    params = test_gadgets_on_allowlisted_libraries_stay_high.pytestmark[0].args[1]  # type: ignore[attr-defined]
    assert sorted(params) == sorted(data_pickles["gadgets"])


def test_future_features_and_pure_builtins(tmp_path: Path) -> None:
    import __future__

    p = tmp_path / "f.pkl"
    for obj in (__future__.annotations, [len, max], {"annotations": __future__.annotations}):
        for proto in (0, 2, 4):
            p.write_bytes(pickle.dumps(obj, protocol=proto))
            assert scan_path(p).max_severity is None, (obj, proto)
    p.write_bytes(b"\x80\x04\x8c\x08builtins\x8c\x03len\x93]\x85R.")  # len([])
    assert scan_path(p).max_severity is None
    assert restricted_load(p) == 0
    p.write_bytes(b"\x80\x04\x8c\x08builtins\x8c\x03max\x93K\x01K\x07\x86R.")  # max(1, 7)
    assert restricted_load(p) == 7


def test_restricted_loader_checks_conditional_calls_on_real_arguments(tmp_path: Path) -> None:
    """--allow clears the static finding; the loader still refuses len() of a non-literal object."""
    p = tmp_path / "len_obj.pkl"
    p.write_bytes(b"\x80\x04\x8c\x08builtins\x8c\x03len\x93\x8c\x0bcollections\x8c\x07Counter\x93)R\x85R.")
    report = scan_path(p)
    assert [x.code for _, x in report.findings] == ["PICKLE_CALL_ARGUMENTS"]
    assert pickle.loads(p.read_bytes()) == 0
    with pytest.raises(UnsafeArtifactError):
        restricted_load(p)


def test_restricted_loader_loads_tz_aware_timestamp_and_pipeline(data_pickles: dict[str, Any]) -> None:
    import pandas as pd

    scalars = restricted_load(data_pickles["benign"]["scalars_p4.pkl"])
    assert scalars[0] == pd.Timestamp("2024-01-01", tz="Europe/Paris")
    pipe = restricted_load(data_pickles["benign"]["sk_logreg.joblib"])
    frame = pd.DataFrame({"age": [30], "income": [6e4], "city": ["lyon"], "segment": ["a"]})
    assert pipe.predict(frame).shape == (1,)
    hgb = restricted_load(data_pickles["benign"]["sk_hgb_p5.pkl"])  # functools.partial(check_array) inside
    assert hgb.predict(frame.astype({"city": "category", "segment": "category"})).shape == (1,)
    assert not data_pickles["marker"].exists()
