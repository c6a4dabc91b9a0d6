"""Remove, retrain, re-measure: ``bastion harden poison-filter``.

The training set is scored by :func:`bastion.data.poisoning.detect_poisoning`; the flagged samples are
dropped and the model spec is trained on what is left. When the attack is known (the truth file that
``bastion attack poison`` writes: method, target class, trigger parameters), the same recipe is also
trained on the unfiltered set, and both models are measured on the clean test set (accuracy) and on
triggered non-target test inputs (attack success rate, ASR) — before and after — together with the
detector's recall and precision against the ground-truth indices.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from bastion.core.errors import InvalidInputError


@dataclass
class FilterResult:
    n_samples: int
    n_removed: int
    removed: list[int]
    clean_accuracy_before: float | None
    clean_accuracy_after: float | None
    asr_before: float | None
    asr_after: float | None
    recall: float | None
    precision: float | None
    suspicious_classes: list[int]
    params: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _labels(module: nn.Module, x: np.ndarray) -> np.ndarray:
    import torch

    module.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), 512):
            out.append(module(torch.from_numpy(np.ascontiguousarray(x[i:i + 512], dtype=np.float32))).argmax(1).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _asr(module: nn.Module, x_test: np.ndarray, y_test: np.ndarray, truth: dict[str, Any]) -> float:
    from bastion.attacks.poisoning import attack_success_rate, trigger_from_params

    params = dict(truth.get("params") or {})
    trigger = trigger_from_params(str(truth["method"]), params)
    target = int(params.get("target", truth.get("target", 0)))
    flat = truth["method"] == "feature_trigger" and x_test.ndim > 2

    def predict(x: np.ndarray) -> np.ndarray:
        return _labels(module, x.reshape((len(x), *x_test.shape[1:])) if flat else x)

    class _Flat:  # a tabular trigger on image-shaped rows: stamp the flattened features
        def apply(self, x: np.ndarray) -> np.ndarray:
            return np.asarray(trigger.apply(x.reshape(len(x), -1)))

        def to_dict(self) -> dict[str, Any]:
            return trigger.to_dict()

    return attack_success_rate(predict, x_test, y_test, target, _Flat() if flat else trigger)  # type: ignore[arg-type]


def poison_filter(
    x: np.ndarray, y: np.ndarray, spec: str, n_classes: int, *, x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None, truth: dict[str, Any] | None = None, epochs: int = 30, seed: int = 0,
    detector: Any = None, report: Any = None, mode: Literal["retrain", "unlearn"] = "retrain",
    unlearn_epochs: int = 5,
) -> tuple[nn.Module, FilterResult]:
    """Train ``spec`` on ``x, y`` minus the flagged samples; return it and the before/after measurements.

    ``mode="unlearn"`` is anti-backdoor learning's second stage (Li et al. 2021): the model trained on
    the whole set is fine-tuned for ``unlearn_epochs`` with gradient *ascent* on the flagged samples
    and descent on the kept ones, instead of training from scratch on the kept ones.
    """
    from bastion.data.poisoning import PoisonConfig, detect_poisoning
    from bastion.defenses.specs import resolve_model_spec
    from bastion.models.zoo import TrainConfig, train_classifier

    t0 = time.perf_counter()
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    if len(x) != len(y) or len(x) < 10:
        raise InvalidInputError(f"need at least 10 labelled samples with matching x {x.shape} and y {y.shape}")
    if report is None:  # a precomputed PoisonReport of the same x, y may be passed (the bench does)
        report = detect_poisoning(x, y, n_classes=n_classes, config=detector or PoisonConfig(seed=seed))
    removed = sorted(int(i) for i in report.flagged_indices)
    keep = np.ones(len(y), dtype=bool)
    keep[removed] = False
    cfg = TrainConfig(epochs=epochs)
    shape = tuple(x.shape[1:])
    def fresh() -> nn.Module:
        torch.manual_seed(seed)  # before and after start from the same initial weights
        return resolve_model_spec(spec, shape, n_classes)

    before: nn.Module | None = None
    if mode == "unlearn":
        before = train_classifier(fresh(), x, y, cfg, seed=seed)
        after = unlearn(copy.deepcopy(before), x[keep], y[keep], x[~keep], y[~keep], unlearn_epochs, seed)
    else:
        after = train_classifier(fresh(), x[keep], y[keep], cfg, seed=seed)
    acc_b = acc_a = asr_b = asr_a = recall = precision = None
    if truth is not None:
        idx = set(int(i) for i in truth.get("poison_indices", []))
        hit = len(idx & set(removed))
        recall = hit / len(idx) if idx else None
        precision = hit / len(removed) if removed else (1.0 if not idx else 0.0)
    have_test = x_test is not None and y_test is not None and len(x_test) > 0
    if have_test:
        assert x_test is not None and y_test is not None
        acc_a = float(np.mean(_labels(after, np.asarray(x_test, np.float32)) == np.asarray(y_test)))
        if truth is not None:
            before = before if before is not None else train_classifier(fresh(), x, y, cfg, seed=seed)
            acc_b = float(np.mean(_labels(before, np.asarray(x_test, np.float32)) == np.asarray(y_test)))
            if truth.get("method") in _TRIGGERED:
                asr_b = _asr(before, np.asarray(x_test, np.float32), np.asarray(y_test), truth)
                asr_a = _asr(after, np.asarray(x_test, np.float32), np.asarray(y_test), truth)
    result = FilterResult(len(y), len(removed), removed, acc_b, acc_a, asr_b, asr_a, recall, precision,
                          list(report.suspicious_classes),
                          {"model_spec": spec, "epochs": epochs, "seed": seed, "detector": report.params,
                           "mode": mode, **({"unlearn_epochs": unlearn_epochs} if mode == "unlearn" else {}),
                           "attack": None if truth is None else {"method": truth.get("method"),
                                                                 "target": (truth.get("params") or {}).get("target")}},
                          time.perf_counter() - t0)
    return after, result


def unlearn(module: nn.Module, x_keep: np.ndarray, y_keep: np.ndarray, x_iso: np.ndarray, y_iso: np.ndarray,
            epochs: int, seed: int = 0, lr: float = 1e-3, batch_size: int = 64) -> nn.Module:
    """ABL's unlearning step: each batch, descend on kept samples and push isolated (flagged) ones off their label."""
    if len(x_iso) == 0 or epochs <= 0:
        return module
    g = torch.Generator().manual_seed(seed)
    xk, yk = torch.from_numpy(x_keep), torch.from_numpy(y_keep)
    xi, yi = torch.from_numpy(x_iso), torch.from_numpy(y_iso)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    module.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xk), generator=g)
        for i in range(0, len(xk), batch_size):
            idx = perm[i : i + batch_size]
            j = torch.randint(0, len(xi), (min(batch_size, len(xi)),), generator=g)
            opt.zero_grad(set_to_none=True)
            # ascent on the isolated samples' label, as -log(1 - p_label): bounded, and not flat where the
            # backdoor is learned best (plain -CE has a vanishing gradient at p_label -> 1)
            p_iso = torch.softmax(module(xi[j]), 1).gather(1, yi[j, None]).squeeze(1)
            iso = -torch.log1p(-p_iso.clamp(max=1 - 1e-6)).mean()
            (nn.functional.cross_entropy(module(xk[idx]), yk[idx]) + iso).backward()
            opt.step()
    module.eval()
    return module


_TRIGGERED = {"badnets", "blended", "sig", "wanet", "label_consistent", "feature_trigger", "clean_label"}

__all__ = ["FilterResult", "poison_filter", "unlearn"]
