"""Nearest candidates of each record, for the learned LiRA scorer's neighbour calibration: a model that
trained on many of a record's neighbours is confident on it whether or not it trained on it."""

from __future__ import annotations

import numpy as np


def candidate_neighbours(x: np.ndarray, y: np.ndarray, k: int, standardise: bool = False) -> list[np.ndarray]:
    """Nearest other candidates of every record in input space (Euclidean on the flattened inputs,
    columns z-scored first with ``standardise``, e.g. for tabular data): three ``(n, ·)`` index arrays —
    the ``k`` and ``3k`` nearest with the same label and the ``k`` nearest with any label, ``-1``
    where a label has fewer records. Used by the learned LiRA scorer (``neighbours``)."""
    from sklearn.neighbors import NearestNeighbors

    flat = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    if standardise:
        flat = (flat - flat.mean(axis=0)) / np.maximum(flat.std(axis=0), 1e-8)

    def knn(rows: np.ndarray, kk: int) -> np.ndarray:
        out = np.full((len(rows), kk), -1, dtype=np.int64)
        got = min(kk + 1, len(rows))
        if got < 2:
            return out
        nn_idx = NearestNeighbors(n_neighbors=got).fit(flat[rows]).kneighbors(flat[rows], return_distance=False)
        for r, row in enumerate(nn_idx):  # drop the record itself (first unless duplicates tie with it)
            others = row[row != r][: got - 1]
            out[r, : len(others)] = rows[others]
        return out

    res = []
    for kk, same_label in ((k, True), (3 * k, True), (k, False)):
        if not same_label:
            res.append(knn(np.arange(len(flat)), kk))
            continue
        idx = np.full((len(flat), kk), -1, dtype=np.int64)
        for c in np.unique(y):
            rows = np.flatnonzero(y == c)
            idx[rows] = knn(rows, kk)
        res.append(idx)
    return res


def neighbour_mean(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Mean of ``values`` over each row of ``idx`` (``-1`` = no neighbour; 0 where a record has none)."""
    valid = idx >= 0
    total = np.where(valid, values[np.maximum(idx, 0)], 0.0).sum(axis=1)
    return np.asarray(total / np.maximum(valid.sum(axis=1), 1))
