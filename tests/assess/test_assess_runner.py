"""The runner: check selection, error isolation, artifacts, progress events, executors; build_target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bastion.assess.executors import Executor, LocalExecutor, get_executor
from bastion.assess.runner import run_assessment
from bastion.assess.target import build_target
from bastion.core.errors import ConfigError, InvalidInputError, RegistryError
from bastion.core.severity import Severity, Status


def test_exception_becomes_an_error_result_and_the_run_goes_on(fake_checks, digits_target, recorder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rec = recorder

    a = run_assessment(digits_target, "quick", seed=3, out_dir=tmp_path, only=["test_assess"], progress=rec)

    by_id = {r.check_id: r for r in a.results}
    assert set(by_id) == {"test_assess.boom", "test_assess.clean", "test_assess.weak"}
    boom = by_id["test_assess.boom"]
    assert boom.status == Status.ERROR and boom.error and "the attack diverged" in boom.error
    assert by_id["test_assess.weak"].status == Status.FAIL
    assert by_id["test_assess.weak"].params["seed"] == 3
    assert a.max_severity == Severity.HIGH
    assert ("progress", "test_assess.weak:3/3") in rec.events
    assert [e for e in rec.events if e[0] == "finished"] == [("finished", r.check_id) for r in a.results]


def test_artifacts_are_written_under_the_check_id(fake_checks, digits_target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a = run_assessment(digits_target, "quick", out_dir=tmp_path, only=["test_assess.weak"], progress=False)

    res = a.results[0]
    assert res.artifact_paths == {"robustness_curve.png": "artifacts/test_assess.weak/robustness_curve.png"}
    assert (tmp_path / res.artifact_paths["robustness_curve.png"]).read_bytes().startswith(b"\x89PNG")


def test_rerun_replaces_stale_artifacts(fake_checks, digits_target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stale = tmp_path / "artifacts" / "test_assess.weak" / "old_gallery.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")

    run_assessment(digits_target, "quick", out_dir=tmp_path, only=["test_assess.weak"], progress=False)

    assert not stale.exists() and keep.read_text() == "mine"
    assert (stale.parent / "robustness_curve.png").exists()


def test_unsafe_artifact_names_are_refused(fake_checks, digits_target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    class Evil(type(fake_checks["weak"])):  # type: ignore[misc]
        def run(self, target, ctx):  # type: ignore[no-untyped-def]
            r = super().run(target, ctx)
            r.artifacts = {"../../escape.png": b"x"}
            return r

    from bastion.assess.registry import CHECKS, register_check

    register_check(Evil("test_assess.evil"))
    try:
        a = run_assessment(digits_target, "quick", out_dir=tmp_path / "o", only=["test_assess.evil"], progress=False)
    finally:
        CHECKS.pop("test_assess.evil")
    assert a.results[0].status == Status.ERROR and "unsafe name" in (a.results[0].error or "")
    assert not (tmp_path / "escape.png").exists()


def test_unknown_only_profile_and_executor(fake_checks, digits_target) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RegistryError, match=r"no check named 'nope\.nothing'"):
        run_assessment(digits_target, "quick", only=["nope.nothing"], progress=False)
    with pytest.raises(ConfigError, match="profile"):
        run_assessment(digits_target, "extreme", progress=False)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown executor 'warp'"):
        get_executor("warp")
    assert isinstance(get_executor("local"), Executor) and isinstance(LocalExecutor(), Executor)


def test_build_target_from_files_validates_against_the_model(saved_models, image_npz, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    t = build_target(model=saved_models["onnx"], data=image_npz, clip_min=0.0, clip_max=1.0)

    assert t.is_white_box and t.model_format == "onnx"
    assert set(t.fingerprints) == {"model", "data"}
    assert t.metadata.data_kind == "image" and t.model.input_spec.clip_max == 1.0

    flat = tmp_path / "flat.npz"
    x = np.load(image_npz)["x"]
    np.savez(flat, x=x.reshape(len(x), -1), y=np.load(image_npz)["y"])
    assert build_target(model=saved_models["onnx"], data=flat).data.x_test.shape[1:] == (1, 8, 8)  # type: ignore[union-attr]

    bad_labels = tmp_path / "labels.npz"
    np.savez(bad_labels, x=x, y=np.full(len(x), 5))
    with pytest.raises(InvalidInputError, match="model has 3 classes"):
        build_target(model=saved_models["onnx"], data=bad_labels)
    bad_shape = tmp_path / "shape.npz"
    np.savez(bad_shape, x=np.zeros((4, 1, 9, 9)), y=np.zeros(4))
    with pytest.raises(InvalidInputError, match="expects"):
        build_target(model=saved_models["onnx"], data=bad_shape)
    with pytest.raises(InvalidInputError, match="outside the model's range"):
        build_target(model=saved_models["onnx"], data=image_npz, clip_min=0.0, clip_max=0.5)
    with pytest.raises(ConfigError, match="--data"):
        build_target(model=saved_models["onnx"])
    with pytest.raises(ConfigError, match="cannot be combined"):
        build_target(demo="digits", model=saved_models["onnx"])


def test_demo_models_are_scanned_before_loading(digits_target) -> None:  # type: ignore[no-untyped-def]
    assert digits_target.metadata.extra["scan"]["verdict"] == "safe"


def test_a_result_that_breaks_the_schema_becomes_an_error(fake_checks, digits_target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from bastion.assess.registry import CHECKS, register_check
    from bastion.report import write_reports

    class BadControls(type(fake_checks["weak"])):  # type: ignore[misc]
        def run(self, target, ctx):  # type: ignore[no-untyped-def]
            r = super().run(target, ctx)
            r.findings[0].controls = ["AML.T0015"]  # no catalog prefix
            return r

    register_check(BadControls("test_assess.badcontrols"))
    try:
        a = run_assessment(digits_target, "quick", out_dir=tmp_path, only=["test_assess.badcontrols"], progress=False)
    finally:
        CHECKS.pop("test_assess.badcontrols")

    (res,) = a.results
    assert res.status == Status.ERROR and "findings/0/controls/0" in (res.error or "")
    write_reports(a, tmp_path)  # the report stays valid
    assert (tmp_path / "assessment.json").exists()
