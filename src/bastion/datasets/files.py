"""Loading user data files into ``DataSplits``: ``.npz``, CSV and Parquet.

``.npz`` (read with ``allow_pickle=False``) holds either ``x``/``y`` (evaluation data, used as the
test split) or ``x_train``/``y_train``/``x_test``/``y_test``, optionally ``x_pop``/``y_pop``
(population data for privacy attacks). Tables (CSV, Parquet) need ``label=COLUMN``; an
optional ``split`` column with values ``train``/``test``/``pop`` assigns rows to splits (all
rows are test data otherwise). String labels are encoded in sorted order (``class_names``).

Every problem — missing file, unknown format, wrong shape or dtype, NaN, negative or
out-of-range labels — is an ``InvalidInputError`` naming the file and the field.

Examples:
    >>> splits = load_data("eval.npz")                                   # doctest: +SKIP
    >>> splits = load_data("patients.csv", label="diagnosis")            # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bastion.core.errors import InvalidInputError, UnsupportedFormatError
from bastion.core.paths import sha256_file
from bastion.core.target import DataKind, DataSplits

DATA_FORMATS = ("npz", "csv", "parquet")
SPLIT_KEYS = ("train", "test", "pop")
SPLIT_COLUMN = "split"


@dataclass
class DataFile:
    """A loaded data file: its splits and what the file told us about them."""

    path: str
    format: str
    sha256: str
    splits: DataSplits
    feature_names: list[str] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        for x in (self.splits.x_test, self.splits.x_train, self.splits.x_pop):
            if x is not None:
                return tuple(int(s) for s in x.shape[1:])
        return ()

    @property
    def data_kind(self) -> DataKind:
        return "image" if len(self.sample_shape) >= 2 else "tabular"

    @property
    def max_label(self) -> int:
        ys = [y for y in (self.splits.y_train, self.splits.y_test, self.splits.y_pop) if y is not None and len(y)]
        return max((int(y.max()) for y in ys), default=-1)


def detect_data_format(path: Path) -> str:
    """``npz``, ``csv`` or ``parquet`` from the file's magic bytes and extension."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    ext = path.suffix.lower()
    if head.startswith(b"PK\x03\x04") and ext in (".npz", ""):
        return "npz"
    if head == b"PAR1":
        return "parquet"
    if ext in (".csv", ".txt", ".tsv") and b"\x00" not in head:
        return "csv"
    raise UnsupportedFormatError(
        f"cannot read data file {path} (extension {ext or 'none'!r}); supported: .npz, .csv, .parquet"
    )


def _features(x: Any, path: Path, key: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise InvalidInputError(f"{path}: {key} has dtype {arr.dtype}; features must be numeric")
    if arr.ndim < 2:
        raise InvalidInputError(f"{path}: {key} has shape {arr.shape}; expected (n_samples, features…)")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).reshape(len(arr), -1).any(axis=1).sum())
        raise InvalidInputError(f"{path}: {key} contains NaN or infinite values in {bad} sample(s)")
    return arr


def _labels(y: Any, n: int, path: Path, key: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] > 1:
        arr = arr.argmax(axis=1)  # one-hot labels
    arr = arr.reshape(-1) if arr.ndim == 2 and arr.shape[1] == 1 else arr
    if arr.ndim != 1:
        raise InvalidInputError(f"{path}: {key} has shape {arr.shape}; expected one label per sample")
    if len(arr) != n:
        raise InvalidInputError(f"{path}: {key} has {len(arr)} labels for {n} samples")
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != np.bool_:
        raise InvalidInputError(f"{path}: {key} has dtype {arr.dtype}; labels must be integers")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InvalidInputError(f"{path}: {key} contains NaN labels")
        if not np.equal(arr, np.round(arr)).all():
            raise InvalidInputError(f"{path}: {key} holds non-integer labels; classification labels must be integers")
    out = arr.astype(np.int64)
    if len(out) and out.min() < 0:
        raise InvalidInputError(f"{path}: {key} has negative labels (min {int(out.min())}); labels are 0..n_classes-1")
    return out


def _load_npz(path: Path) -> tuple[DataSplits, list[str], list[str]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as exc:
        raise InvalidInputError(f"{path}: cannot read the arrays ({exc}); object arrays are refused") from exc
    except Exception as exc:
        raise InvalidInputError(f"{path} is not a readable .npz file: {exc}") from exc
    splits = DataSplits()
    if "x" in arrays or "y" in arrays:
        if "x" not in arrays or "y" not in arrays:
            raise InvalidInputError(f"{path}: found only one of 'x'/'y'; both are needed")
        pairs = {"test": ("x", "y")}
    else:
        pairs = {s: (f"x_{s}", f"y_{s}") for s in SPLIT_KEYS if f"x_{s}" in arrays or f"y_{s}" in arrays}
        if not pairs:
            raise InvalidInputError(
                f"{path} has arrays {sorted(arrays)}; expected 'x' and 'y', or x_train/y_train/x_test/y_test"
            )
    for split, (xk, yk) in pairs.items():
        if xk not in arrays or yk not in arrays:
            raise InvalidInputError(f"{path}: '{xk}' and '{yk}' must come together")
        x = _features(arrays[xk], path, xk)
        y = _labels(arrays[yk], len(x), path, yk)
        setattr(splits, f"x_{split}", x)
        setattr(splits, f"y_{split}", y)
    shapes = {tuple(getattr(splits, f"x_{s}").shape[1:]) for s in pairs}
    if len(shapes) > 1:
        raise InvalidInputError(f"{path}: the splits have different sample shapes {sorted(shapes)}")
    names = [str(n) for n in arrays["class_names"]] if "class_names" in arrays else []
    return splits, [], names


def _load_table(path: Path, fmt: str, label: str | None) -> tuple[DataSplits, list[str], list[str]]:
    import pandas as pd

    try:
        df = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
    except Exception as exc:
        raise InvalidInputError(f"{path} is not a readable {fmt.upper()} table: {str(exc)[:200]}") from exc
    if df.empty:
        raise InvalidInputError(f"{path} has no rows")
    if label is None:
        raise InvalidInputError(f"{path} is a table: name its label column with --label (columns: {', '.join(map(str, df.columns))})")
    if label not in df.columns:
        raise InvalidInputError(f"{path} has no column {label!r}; columns: {', '.join(map(str, df.columns))}")
    split_col = df.pop(SPLIT_COLUMN) if SPLIT_COLUMN in df.columns and label != SPLIT_COLUMN else None
    y_raw = df.pop(label)
    non_numeric = [str(c) for c in df.columns if not pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
    if non_numeric:
        raise InvalidInputError(
            f"{path}: feature column(s) {', '.join(non_numeric)} are not numeric; encode them first"
        )
    if y_raw.isna().any():
        raise InvalidInputError(f"{path}: label column {label!r} has {int(y_raw.isna().sum())} missing value(s)")
    class_names: list[str] = []
    if pd.api.types.is_numeric_dtype(y_raw) or pd.api.types.is_bool_dtype(y_raw):
        y_all = y_raw.to_numpy()
    else:
        class_names = sorted(str(v) for v in y_raw.unique())
        codes = {c: i for i, c in enumerate(class_names)}
        y_all = np.array([codes[str(v)] for v in y_raw], dtype=np.int64)
    x_all = _features(df.to_numpy(dtype=np.float64, na_value=np.nan), path, "features")
    y_all = _labels(y_all, len(x_all), path, label)
    splits = DataSplits()
    if split_col is None:
        splits.x_test, splits.y_test = x_all, y_all
    else:
        values = split_col.astype(str).str.lower().to_numpy()
        unknown = sorted(set(values) - set(SPLIT_KEYS))
        if unknown:
            raise InvalidInputError(f"{path}: column 'split' has values {unknown}; use train, test or pop")
        for s in SPLIT_KEYS:
            mask = values == s
            if mask.any():
                setattr(splits, f"x_{s}", x_all[mask])
                setattr(splits, f"y_{s}", y_all[mask])
    return splits, [str(c) for c in df.columns], class_names


def data_source(text: str) -> Any:
    """The ``bastion.data_sources`` entry point for ``SCHEME:NAME`` (e.g. ``dataset:credit``, a registered data
    set read with the caller's grant), or None when ``text`` names no such source."""
    from importlib.metadata import entry_points

    scheme, sep, name = text.partition(":")
    if not sep or not name or len(scheme) < 2 or Path(text).exists():
        return None
    found = [ep for ep in entry_points(group="bastion.data_sources") if ep.name == scheme]
    return found[0].load() if found else None


DEMO_PREFIXES = ("demo:", "builtin:")


def demo_name(source: str | Path | None) -> str | None:
    """``digits`` for ``demo:digits`` (or the older spelling ``builtin:digits``); ``None`` for anything else."""
    text = "" if source is None else str(source)
    if not text.startswith(DEMO_PREFIXES):
        return None
    from bastion.datasets.builtin import DEMO_DATASETS

    name = text.split(":", 1)[1]
    if name not in DEMO_DATASETS:
        raise InvalidInputError(f"unknown demo data set {name!r} in {text!r}; choose demo:" + ", demo:".join(DEMO_DATASETS))
    return name


def read_data_file(path: str | Path, label: str | None = None, n_classes: int | None = None) -> DataFile:
    """Load ``path`` with its metadata; checks labels against ``n_classes`` when given.

    ``demo:NAME`` (or ``builtin:NAME``) is a built-in data set (digits, mnist, breast-cancer, wine).

    ``dataset:NAME`` reads a registered data set: the caller's grant is checked and the read audited
    (``bastion.gateway.dataset_keys.open_for_reading``)."""
    demo = demo_name(path)
    if demo is not None:
        from bastion.datasets.builtin import demo_data_digest, load_demo_data

        dd = load_demo_data(demo)
        sp = dd.splits
        splits = DataSplits(sp.x_train, sp.y_train, sp.x_test, sp.y_test, sp.x_pop, sp.y_pop)
        data = DataFile(f"demo:{demo}", "demo", demo_data_digest(dd), splits, list(dd.feature_names),
                        list(dd.class_names))
        if n_classes is not None:
            check_labels(data.splits, n_classes, data.path)
        return data
    source = data_source(str(path))
    if source is not None:
        scheme, _, name = str(path).partition(":")
        with source(name, purpose=f"--data {scheme}:{name}") as local:
            data = read_data_file(local, label=label, n_classes=n_classes)
        data.path = str(path)
        return data
    p = Path(path)
    if not p.exists():
        raise InvalidInputError(f"data file {p} does not exist")
    if p.is_dir():
        raise InvalidInputError(f"{p} is a directory; pass a .npz, .csv or .parquet file")
    fmt = detect_data_format(p)
    if fmt == "npz":
        if label is not None:
            raise InvalidInputError(f"--label applies to CSV/Parquet tables, not to {p.name}")
        splits, features, classes = _load_npz(p)
    else:
        splits, features, classes = _load_table(p, fmt, label)
    data = DataFile(str(p), fmt, sha256_file(p), splits, features, classes)
    if n_classes is not None:
        check_labels(data.splits, n_classes, str(p))
    return data


def check_labels(splits: DataSplits, n_classes: int, source: str) -> None:
    """Raise ``InvalidInputError`` when a label is outside ``0..n_classes-1``."""
    for name in ("y_train", "y_test", "y_pop"):
        y = getattr(splits, name)
        if y is not None and len(y) and int(y.max()) >= n_classes:
            raise InvalidInputError(
                f"{source}: {name} has label {int(y.max())}, but the model has {n_classes} classes "
                f"(labels must be 0..{n_classes - 1})"
            )


def load_data(path: str | Path, label: str | None = None, n_classes: int | None = None) -> DataSplits:
    """Load a data file into ``DataSplits`` (see the module docstring for the layouts)."""
    return read_data_file(path, label=label, n_classes=n_classes).splits
