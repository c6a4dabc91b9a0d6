"""``data.representativeness`` in ``bastion assess``: the target's training split against a reference population.

Runs when the target has a training split and a reference (``bastion assess --reference POP.csv``, recorded in
``metadata.extra["reference_population"]``); the groups are the declared sensitive features (``--sensitive``)
and the label column is the data table's (``--label``). The statistics are :mod:`bastion.monitor.representativeness`.
"""

from __future__ import annotations

import numpy as np

from bastion.assess.registry import CheckContext, Outcome, check, worst_status
from bastion.core.target import Target
from bastion.monitor.representativeness import ART10_3, ART10_4, MEASURE_2_11


@check(id="data.representativeness", title="Training data representative of the population (coverage, groups, shift)",
       controls=[ART10_3, ART10_4, MEASURE_2_11],
       applies=lambda target: target.data.has_train and bool((target.metadata.extra or {}).get("reference_population")))
def representativeness_check(target: Target, ctx: CheckContext) -> Outcome:
    import pandas as pd

    from bastion.data.tables import read_table
    from bastion.monitor.representativeness import representativeness

    extra = target.metadata.extra
    label = extra.get("label_column") or "label"
    x, y = target.data.x_train, target.data.y_train
    assert x is not None and y is not None
    flat = np.asarray(x).reshape(len(x), -1)
    names = list(target.metadata.feature_names)
    if len(names) != flat.shape[1]:
        names = [f"x{j}" for j in range(flat.shape[1])]
    train = pd.DataFrame(flat, columns=names)
    classes = target.metadata.class_names
    train[label] = [classes[i] if classes and i < len(classes) else i for i in np.asarray(y)]
    ref = read_table(extra["reference_population"])
    if label in ref.columns and pd.api.types.is_numeric_dtype(ref[label]) and classes:
        train[label] = np.asarray(y)  # the reference keeps numeric labels: compare codes with codes
    groups = [g for g in target.metadata.sensitive_features if g in ref.columns]
    res = representativeness(train, ref, groups, label if label in ref.columns else None,
                             int(ctx.option("min_count", 20)), n_perm=int(ctx.option("mmd_permutations", 200)),
                             seed=ctx.seed)
    doc = res.to_dict()
    under = [f"{b['column']}={b['value']} ({b['ratio']:.2f})" for b in doc["balance"]
             if b["ratio"] is not None and b["ratio"] < 0.8]
    return Outcome(
        worst_status(res.findings),
        (f"training split ({doc['n_train']} rows) vs reference ({doc['n_reference']}): "
         f"{doc['verdict'].replace('_', ' ')}" + (f"; under-represented {', '.join(under)}" if under else "")),
        findings=res.findings,
        metrics={"verdict": doc["verdict"], "min_coverage": min((c["coverage"] for c in doc["coverage"]), default=1.0),
                 "balance": doc["balance"], "cells": doc["cells"], "shift": doc["shift"], "mmd": doc["mmd"],
                 "n_train": doc["n_train"], "n_reference": doc["n_reference"]},
        params={**doc["params"], "groups": groups, "label": label, "reference": str(extra["reference_population"])},
    )
