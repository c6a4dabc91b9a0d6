"""npz / CSV / Parquet loading and every bad-input error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bastion.core.errors import InvalidInputError, UnsupportedFormatError
from bastion.datasets.files import load_data, read_data_file


def test_npz_x_y_is_the_evaluation_split(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    np.savez(p, x=np.zeros((5, 1, 4, 4)), y=np.arange(5))

    s = load_data(p)

    assert s.x_test is not None and s.x_test.shape == (5, 1, 4, 4) and s.x_test.dtype == np.float32
    assert s.y_test is not None and s.y_test.tolist() == [0, 1, 2, 3, 4]
    assert not s.has_train
    assert read_data_file(p).data_kind == "image"


def test_npz_with_named_splits_and_population(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(p, x_train=rng.normal(size=(8, 3)), y_train=np.eye(3)[np.arange(8) % 3],  # one-hot
             x_test=rng.normal(size=(4, 3)), y_test=np.array([0, 1, 2, 1]),
             x_pop=rng.normal(size=(2, 3)), y_pop=np.array([1.0, 0.0]))

    s = load_data(p, n_classes=3)

    assert s.has_train and s.has_test and s.x_pop is not None
    assert s.y_train is not None and s.y_train.tolist() == [0, 1, 2, 0, 1, 2, 0, 1]
    assert s.y_pop is not None and s.y_pop.dtype == np.int64


def test_csv_and_parquet_with_label_and_split_columns(tmp_path: Path) -> None:
    df = pd.DataFrame({"age": [30, 40, 50, 60], "income": [1.0, 2.0, 3.0, 4.0],
                       "diagnosis": ["benign", "malignant", "benign", "malignant"],
                       "split": ["train", "train", "test", "test"]})
    csv, pq = tmp_path / "t.csv", tmp_path / "t.parquet"
    df.to_csv(csv, index=False)
    df.to_parquet(pq)

    for path in (csv, pq):
        f = read_data_file(path, label="diagnosis")
        assert f.format == path.suffix[1:]
        assert f.feature_names == ["age", "income"]
        assert f.class_names == ["benign", "malignant"]
        assert f.splits.y_train is not None and f.splits.y_train.tolist() == [0, 1]
        assert f.splits.x_test is not None and f.splits.x_test.tolist() == [[50, 3.0], [60, 4.0]]
        assert f.data_kind == "tabular" and len(f.sha256) == 64


@pytest.mark.parametrize(
    ("make", "kwargs", "error", "message"),
    [
        (lambda p: None, {}, InvalidInputError, "does not exist"),
        (lambda p: p.write_bytes(b"\x00\x01binary"), {}, UnsupportedFormatError, "cannot read data file"),
        (lambda p: np.savez(p, x=np.full((3, 2), np.nan), y=np.zeros(3)), {}, InvalidInputError, "NaN"),
        (lambda p: np.savez(p, x=np.zeros((3, 2)), y=np.zeros(4)), {}, InvalidInputError, "4 labels for 3 samples"),
        (lambda p: np.savez(p, x=np.zeros((3, 2)), y=np.array([0, -1, 1])), {}, InvalidInputError, "negative"),
        (lambda p: np.savez(p, x=np.zeros((3, 2)), y=np.array([0, 1, 7])), {"n_classes": 3}, InvalidInputError, "label 7"),
        (lambda p: np.savez(p, x=np.zeros((3, 2)), y=np.array([0.5, 1, 0])), {}, InvalidInputError, "non-integer"),
        (lambda p: np.savez(p, x=np.zeros(3), y=np.zeros(3)), {}, InvalidInputError, "expected \\(n_samples"),
        (lambda p: np.savez(p, x=np.array(["a", "b"]), y=np.zeros(2)), {}, InvalidInputError, "numeric"),
        (lambda p: np.savez(p, features=np.zeros((3, 2))), {}, InvalidInputError, "expected 'x' and 'y'"),
        (lambda p: np.savez(p, x=np.array([{"a": 1}], dtype=object), y=np.zeros(1)), {}, InvalidInputError, "object arrays"),
    ],
)
def test_bad_npz(tmp_path: Path, make, kwargs, error, message) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "bad.npz"
    make(p)
    with pytest.raises(error, match=message):
        load_data(p, **kwargs)


@pytest.mark.parametrize(
    ("frame", "label", "message"),
    [
        ({"a": [1, 2], "y": [0, 1]}, None, "--label"),
        ({"a": [1, 2], "y": [0, 1]}, "target", "no column 'target'"),
        ({"a": ["x", "z"], "y": [0, 1]}, "y", "not numeric"),
        ({"a": [1.0, None], "y": [0, 1]}, "y", "NaN"),
        ({"a": [1.0, 2.0], "y": [0, None]}, "y", "missing value"),
        ({"a": [1.0, 2.0], "y": [0, 1], "split": ["train", "holdout"]}, "y", "holdout"),
    ],
)
def test_bad_csv(tmp_path: Path, frame: dict, label: str | None, message: str) -> None:
    p = tmp_path / "bad.csv"
    pd.DataFrame(frame).to_csv(p, index=False)
    with pytest.raises(InvalidInputError, match=message):
        load_data(p, label=label)
