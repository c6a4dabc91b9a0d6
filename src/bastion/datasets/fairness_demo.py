"""The representativeness and fairness demo, on real people: scikit-learn's bundled diabetes data set.

Neither fairlearn's data sets (all fetched from OpenML at run time) nor any other offline tabular set with
people in it is bundled elsewhere, so the demo uses ``sklearn.datasets.load_diabetes(scaled=False)``:
442 patients with their real age and sex (coded 1/2 in the source; which is which is not documented)
and eight clinical measurements. The label is derived: disease progression after one year above the
median (``y = 1``, "high progression"). Both sexes have the same share of ``y = 1`` (49.8 % and 50.2 %),
so a model that treats them alike has a selection-rate ratio near 1.

``build_fairness_demo(out, seed)`` writes:

- ``population.csv`` — all 442 patients (the reference population);
- a held-out test set (30 %, stratified on sex × label);
- ``train_skewed.csv`` — a *selection-biased* sample of the rest: every patient of sex 1, every patient of
  sex 2 with low progression, and only ``skew_keep`` (10 %) of sex-2 patients with high progression
  (as when one group is recruited mostly from a healthy cohort);
- ``train_stratified.csv`` — a sample of the same size, stratified on sex × label;
- ``assess_{skewed,stratified}.csv`` — train rows (``split=train``) + the test rows (``split=test``) for
  ``bastion assess``, and ``model_{skewed,stratified}.skops`` — a standardised logistic regression trained
  on each sample (every column but the label is an input, sex included).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bastion.core.paths import atomic_write_bytes

LABEL = "y"


def diabetes_population() -> pd.DataFrame:
    """The 442 patients with integer sex and the binarised label."""
    from sklearn.datasets import load_diabetes

    df = load_diabetes(scaled=False, as_frame=True).frame.copy()
    target = df.pop("target")
    df["sex"] = df["sex"].astype(int)
    df["age"] = df["age"].astype(int)
    df[LABEL] = (target > target.median()).astype(int)
    return df


def _stratified(df: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` rows keeping the sex × label proportions of ``df``."""
    parts = []
    for _, g in df.groupby(["sex", LABEL]):
        k = round(n * len(g) / len(df))
        parts.append(rng.choice(g.index.to_numpy(), size=min(k, len(g)), replace=False))
    return df.loc[np.sort(np.concatenate(parts))]


def _train(df: pd.DataFrame, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = df.drop(columns=[LABEL]).to_numpy(float), df[LABEL].to_numpy()
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed)).fit(x, y)


def build_fairness_demo(out: str | Path, seed: int = 0, skew_keep: float = 0.10) -> dict[str, Any]:
    """Write the demo's tables and models under ``out``; returns their paths and sizes."""
    import skops.io as sio

    out_p = Path(out)
    out_p.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pop = diabetes_population()
    test = _stratified(pop, round(0.3 * len(pop)), rng)
    pool = pop.drop(index=test.index)
    women_high = (pool["sex"] == 2) & (pool[LABEL] == 1)
    keep = ~women_high | (rng.random(len(pool)) < skew_keep)
    skewed = pool[keep]
    stratified = _stratified(pool, len(skewed), rng)
    pop.to_csv(out_p / "population.csv", index=False)
    info: dict[str, Any] = {"population": str(out_p / "population.csv"), "n_population": len(pop),
                            "n_test": len(test), "seed": seed, "skew_keep": skew_keep}
    for name, train in (("skewed", skewed), ("stratified", stratified)):
        train.to_csv(out_p / f"train_{name}.csv", index=False)
        both = pd.concat([train.assign(split="train"), test.assign(split="test")])
        both.to_csv(out_p / f"assess_{name}.csv", index=False)
        atomic_write_bytes(out_p / f"model_{name}.skops", sio.dumps(_train(train, seed)), mode=0o644)
        info[name] = {"train": str(out_p / f"train_{name}.csv"), "assess": str(out_p / f"assess_{name}.csv"),
                      "model": str(out_p / f"model_{name}.skops"), "n_train": len(train),
                      "sex2_high_rows": int(((train["sex"] == 2) & (train[LABEL] == 1)).sum())}
    return info
