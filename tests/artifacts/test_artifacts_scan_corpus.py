"""The scanner on the generated corpus: every malicious file caught, no false alarm on benign ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bastion.artifacts.scan import ensure_safe, restricted_load, scan_path
from bastion.core.errors import UnsafeArtifactError
from bastion.core.severity import Severity

MALICIOUS_HIGH = "malicious files expected at high or above"


def test_every_malicious_file_is_high_or_critical(corpus: dict[str, Any]) -> None:
    missed = {}
    for name, path in corpus["malicious"].items():
        report = scan_path(path)
        if report.max_severity is None or report.max_severity < Severity.HIGH:
            missed[name] = report.to_dict()
    assert not missed, missed
    assert not corpus["marker"].exists()


@pytest.mark.parametrize("name,code,global_name", [
    ("os_system.pkl", "PICKLE_DANGEROUS_CALL", "posix.system"),
    ("os_system_p0.pkl", "PICKLE_DANGEROUS_CALL", "posix.system"),
    ("torch_os_hop.pkl", "PICKLE_DANGEROUS_CALL", "torch.os.system"),
    ("numpy_runstring.pkl", "PICKLE_DANGEROUS_CALL", "numpy.testing._private.utils.runstring"),
    ("mp_spawnv_passfds.pkl", "PICKLE_DANGEROUS_CALL", "multiprocessing.util.spawnv_passfds"),
    ("memo_hidden_global.pkl", "PICKLE_DANGEROUS_CALL", "os.system"),
    ("numpy_builtins_eval.pkl", "PICKLE_DANGEROUS_GLOBAL", "numpy.__builtins__"),
    ("unknown_callable.pkl", "PICKLE_UNKNOWN_CALL", "evil_pkg.hooks.install"),
    ("build_on_class.pkl", "PICKLE_BUILD_ON_GLOBAL", "collections.OrderedDict"),
    ("inst_opcode.pkl", "PICKLE_DANGEROUS_CALL", "os.system"),
    ("obj_opcode.pkl", "PICKLE_DANGEROUS_CALL", "os.system"),
    ("newobj_ex.pkl", "PICKLE_DANGEROUS_CALL", "subprocess.Popen"),
])
def test_findings_name_the_global_and_offset(corpus: dict[str, Any], name: str, code: str, global_name: str) -> None:
    report = scan_path(corpus["malicious"][name])
    hits = [x for _, x in report.findings if x.code == code and x.global_name == global_name]
    assert hits, [x.to_dict() for _, x in report.findings]
    assert hits[0].offset is not None and "@" in hits[0].location


def test_nested_and_broken_streams_are_findings(corpus: dict[str, Any]) -> None:
    nested = scan_path(corpus["malicious"]["nested_loads.pkl"])
    assert any("nested@" in x.member and x.severity == Severity.CRITICAL for _, x in nested.findings)
    broken = scan_path(corpus["malicious"]["payload_then_broken.pkl"])
    codes = {x.code for _, x in broken.findings}
    assert {"PICKLE_DANGEROUS_CALL", "PICKLE_MALFORMED"} <= codes


@pytest.mark.parametrize("name,fmt,member_part", [
    ("torch_zip_evil.pt", "torch-zip", "data.pkl"),
    ("torch_legacy_evil.pt", "torch-legacy", ""),
    ("joblib_evil.joblib", "joblib", ""),
    ("joblib_evil_z.joblib", "joblib", "zlib"),
    ("object_array_evil.npy", "numpy-npy", "object-array"),
    ("npz_evil.npz", "numpy-npz", "b.npy"),
    ("torchscript_evil.pt", "torchscript", "m/data.pkl"),
    ("archive_evil.zip", "zip", "model/weights.pkl"),
    ("tar_evil.tar.gz", "tar+gzip", "pkg/model.pkl"),
    ("keras_lambda.h5", "keras-h5", ""),
    ("keras_lambda.keras", "keras-v3", "config.json"),
    ("onnx_external_escape.onnx", "onnx", ""),
    ("st_overlap.safetensors", "safetensors", ""),
])
def test_formats_detected_by_content(corpus: dict[str, Any], name: str, fmt: str, member_part: str) -> None:
    report = scan_path(corpus["malicious"][name])
    f = report.files[0]
    assert f.format == fmt
    assert report.verdict == "unsafe"
    assert any(member_part in x.member for x in f.findings if x.severity >= Severity.HIGH)


def test_directory_scan_finds_nested_file(corpus: dict[str, Any]) -> None:
    report = scan_path(corpus["malicious"]["model_dir_evil"])
    assert report.verdict == "unsafe"
    assert report.files[0].path.endswith("nested/blob.bin")


def test_archive_limits(corpus: dict[str, Any]) -> None:
    codes = {x.code for _, x in scan_path(corpus["malicious"]["zip_traversal.zip"]).findings}
    assert "ARCHIVE_PATH_TRAVERSAL" in codes
    codes = {x.code for _, x in scan_path(corpus["malicious"]["zip_bomb.zip"]).findings}
    assert "ARCHIVE_BOMB" in codes


def test_benign_files_raise_nothing_high(corpus: dict[str, Any]) -> None:
    bad = {}
    for name, path in corpus["benign"].items():
        report = scan_path(path)
        assert report.scanned_files, f"{name} was not recognised ({report.files[0].format})"
        if report.max_severity is not None and report.max_severity >= Severity.MEDIUM:
            bad[name] = report.to_dict()
    assert not bad, bad
    assert ensure_safe(corpus["benign"]["exported.pt2"]).verdict == "safe"


def test_ensure_safe_names_file_global_and_offset(corpus: dict[str, Any]) -> None:
    path = corpus["malicious"]["torch_zip_evil.pt"]
    with pytest.raises(UnsafeArtifactError) as err:
        ensure_safe(path)
    msg = str(err.value)
    assert str(path) in msg and "posix.system" in msg and "data.pkl@" in msg
    assert not corpus["marker"].exists()


def test_restricted_load_loads_clean_sklearn_and_refuses_unsafe(corpus: dict[str, Any]) -> None:
    import numpy as np

    gb = restricted_load(corpus["benign"]["pipeline_gb.joblib"])
    rf = restricted_load(corpus["benign"]["random_forest.joblib"])
    x = np.c_[np.random.RandomState(1).rand(5, 3), np.zeros(5)]
    assert gb.predict(x).shape == (5,) and rf.predict(x).shape == (5,)
    gb2 = restricted_load(corpus["benign"]["pipeline_gb_p2.pkl"])  # protocol 2: numpy bytes via _codecs.encode
    assert (gb2.predict(x) == gb.predict(x)).all()
    assert restricted_load(corpus["benign"]["numpy_mix_p0.pkl"])["args"].lr == 0.1
    for name in ("joblib_evil.joblib", "os_system.pkl", "unknown_callable.pkl"):
        with pytest.raises(UnsafeArtifactError):
            restricted_load(corpus["malicious"][name])
    assert not corpus["marker"].exists()


def test_runtime_allowlist_agrees_with_static(tmp_path: Path) -> None:
    """A global allowed via --allow passes both the scan and the restricted unpickler."""
    import pickle

    data = b"\x80\x04" + b"\x8c\x0bcollections\x8c\x07Counter\x93)R."
    p = tmp_path / "counter.pkl"
    p.write_bytes(data)
    assert pickle.loads(data) == {}
    assert restricted_load(p) == {}  # Counter is on the allowlist
    p2 = tmp_path / "fractions.pkl"
    p2.write_bytes(b"\x80\x04\x8c\x07decimal\x8c\x07Context\x93)R.")
    with pytest.raises(UnsafeArtifactError):
        restricted_load(p2)
    assert type(restricted_load(p2, allow=["decimal:Context"])).__name__ == "Context"


def test_skops_and_structured_numpy_are_clean(tmp_path: Path) -> None:
    import json
    import zipfile

    import numpy as np

    from bastion.models.zoo import demo_model_path

    skops = scan_path(demo_model_path("breast-cancer-sklearn"))
    assert skops.files[0].format == "skops" and skops.verdict == "safe"
    rec = np.zeros(3, dtype=[("O", "<f8"), ("b", "<i4")])  # a field *named* O is not an object dtype
    np.save(tmp_path / "rec.npy", rec)
    assert scan_path(tmp_path / "rec.npy").max_severity is None
    mixed = np.empty(2, dtype=[("a", "<f8"), ("o", "O")])
    np.save(tmp_path / "mixed.npy", mixed, allow_pickle=True)
    assert any(x.code == "NUMPY_OBJECT_ARRAY" for _, x in scan_path(tmp_path / "mixed.npy").findings)
    cfg = {"class_name": "Functional", "config": {"layers": [
        {"module": "keras.src.utils", "class_name": "function", "config": "get_file", "registered_name": None}]}}
    with zipfile.ZipFile(tmp_path / "getfile.keras", "w") as zf:
        zf.writestr("config.json", json.dumps(cfg))
        zf.writestr("metadata.json", "{}")
    assert scan_path(tmp_path / "getfile.keras").verdict == "unsafe"


def test_custom_module_class_is_medium_other_unknown_classes_high(tmp_path: Path) -> None:
    """``torch.save(model)`` of a user nn.Module subclass: NEWOBJ + nn.Module state → medium, not high."""
    module_state = (b"}(X\x0b\x00\x00\x00_parametersq\x00}X\x08\x00\x00\x00_modulesq\x01}X\x08\x00\x00\x00"
                    b"trainingq\x02\x88u")
    custom = b"\x80\x02cmypkg.nets\nMyNet\n)\x81" + module_state + b"b."
    p = tmp_path / "custom.pkl"
    p.write_bytes(custom)
    report = scan_path(p)
    assert report.verdict == "safe" and report.max_severity == Severity.MEDIUM  # listed, below high
    assert [x.code for _, x in report.findings] == ["PICKLE_CUSTOM_MODULE"]
    assert scan_path(p, allow=["mypkg.nets:MyNet"]).verdict == "safe"
    other = b"\x80\x02cmypkg.nets\nGadget\n)\x81}X\x01\x00\x00\x00a\x88sb."
    p.write_bytes(other)
    report = scan_path(p)
    assert report.verdict == "unsafe"
    assert report.findings[0][1].code == "PICKLE_UNKNOWN_CALL" and report.findings[0][1].offset == 22  # the NEWOBJ opcode
