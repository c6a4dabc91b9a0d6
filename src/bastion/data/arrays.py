"""Loading labelled training arrays for the data commands (``.npz`` without pickle, or a demo set)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bastion.core.errors import InvalidInputError
from bastion.core.target import DataSplits


def load_labelled(source: str | Path) -> tuple[DataSplits, dict[str, np.ndarray]]:
    """``demo:NAME`` or an ``.npz`` with ``x_train``/``y_train`` (or ``x``/``y``), optional test split.

    Returns the splits and any other arrays in the file (e.g. ``poison_indices``).
    """
    s = str(source)
    from bastion.datasets import load
    from bastion.datasets.files import data_source, demo_name

    if demo_name(s) is not None or data_source(s) is not None:  # demo:NAME, builtin:NAME, dataset:NAME
        return load(s).splits, {}
    p = Path(s)
    if not p.is_file():
        raise InvalidInputError(f"{p} not found (give an .npz with x_train/y_train, or demo:NAME)")
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError) as exc:
        raise InvalidInputError(f"{p} is not a readable .npz (pickled arrays are refused): {exc}") from None
    x = arrays.pop("x_train", arrays.pop("x", None))
    y = arrays.pop("y_train", arrays.pop("y", None))
    if x is None or y is None:
        raise InvalidInputError(f"{p} needs arrays x_train and y_train (or x and y); it has {sorted(arrays)}")
    if len(x) != len(y):
        raise InvalidInputError(f"{p}: x_train has {len(x)} rows but y_train has {len(y)}")
    if not np.issubdtype(np.asarray(x).dtype, np.number) or not np.isfinite(x).all():
        raise InvalidInputError(f"{p}: x_train must be finite numbers")
    splits = DataSplits(
        x_train=np.asarray(x, dtype=np.float32), y_train=np.asarray(y).astype(np.int64),
        x_test=arrays.pop("x_test", None), y_test=arrays.pop("y_test", None),
    )
    return splits, arrays
