"""Label evidence: confident learning on out-of-fold probabilities, and k-NN agreement without a candidate set.

- ``label_quality`` — out-of-fold, Platt-calibrated RBF-SVM class probabilities on the inputs
  (PCA-50 when wide) for cleanlab's label-quality scores (Northcutt et al. 2021, "Confident
  Learning", https://arxiv.org/abs/1911.00068).
- ``excluded_knn_agreement`` — exclusionary reclassification (Chen et al. 2018) without
  retraining: do a candidate set's members look like their label to their nearest non-members?

Examples:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(60, 5)); y = np.arange(60) % 2; x[y == 1] += 3
    >>> float(label_quality(x, y, 2)[np.arange(60), y].mean()) > 0.9
    True
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from bastion.core.errors import InvalidInputError


def label_quality(x: np.ndarray, y: np.ndarray, n_classes: int, seed: int = 0, folds: int = 5) -> np.ndarray:
    """Out-of-fold, Platt-calibrated class probabilities of an RBF SVM on the (PCA-reduced) inputs.

    Measured on digits with 5% flipped labels, these beat logistic-regression probabilities
    (cleanlab's default classifier) and a k-NN + SVM average for confident learning.
    """
    from sklearn.decomposition import PCA
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC
    from threadpoolctl import threadpool_limits

    flat = x.reshape(len(x), -1).astype(np.float64)
    steps: list[Any] = [] if x.ndim >= 3 else [StandardScaler()]
    if flat.shape[1] > 100:
        steps.append(PCA(50, random_state=seed))
    present = np.unique(y)
    counts = np.bincount(y, minlength=n_classes)[present]
    k = int(min(folds, counts.min()))
    if k < 2:
        raise InvalidInputError("every class needs at least 2 samples for out-of-fold label quality")
    cv = StratifiedKFold(k, shuffle=True, random_state=seed)
    clf = make_pipeline(*steps, SVC(probability=True, random_state=seed))
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        p = cross_val_predict(clf, flat, y, cv=cv, method="predict_proba")
    probs = np.zeros((len(y), n_classes))
    probs[:, present] = p
    return probs


def excluded_knn_agreement(x: np.ndarray, y: np.ndarray, members: np.ndarray, k: int = 10, seed: int = 0) -> float:
    """Share of ``members`` whose k nearest non-members (input space, PCA-50) vote for their label.

    Exclusionary reclassification (Chen et al. 2018) without retraining: a backdoor cluster
    holds other classes' inputs plus a trigger, so without it its members look like those
    classes (agreement near 0); a clean sub-population keeps agreeing with its label.
    """
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors

    flat = x.reshape(len(x), -1).astype(np.float64)
    if flat.shape[1] > 50:
        flat = PCA(50, random_state=seed).fit_transform(flat)
    if x.ndim == 2:
        flat = (flat - flat.mean(0)) / (flat.std(0) + 1e-12)
    mask = np.zeros(len(y), dtype=bool)
    mask[members] = True
    others = np.flatnonzero(~mask)
    if len(others) < k or len(members) == 0:
        return 1.0
    nn_index = NearestNeighbors(n_neighbors=k).fit(flat[others])
    _, nb = nn_index.kneighbors(flat[members])
    votes = y[others][nb]
    majority = np.array([np.bincount(v).argmax() for v in votes])
    return float(np.mean(majority == y[members]))
