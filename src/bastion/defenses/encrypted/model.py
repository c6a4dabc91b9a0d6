"""An HE-friendly model: a chain of plaintext linear layers and square activations.

``HEModel.from_torch`` accepts eager or TorchScript modules built from ``Flatten``, ``Linear``,
``SquareActivation`` (and ``Identity``/``Dropout``); ``HEModel.from_sklearn`` accepts linear
classifiers (``LogisticRegression``, ``LinearSVC``, ``RidgeClassifier``, ``SGDClassifier``).
ReLU and other non-polynomial activations are refused with a clear error: retrain with
``SquareActivation`` (``he_mlp`` builds one).

A bundle on disk is ``weights.npz`` (plain arrays, loaded with ``allow_pickle=False``) plus
``he-model.json`` (layers, CKKS parameters, input spec, weight digest).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from bastion.core.errors import InvalidInputError, ModelLoadError
from bastion.core.paths import atomic_write_bytes, atomic_write_text
from bastion.defenses.encrypted.params import CKKSParams, choose_params

BUNDLE_FORMAT = "bastion-he-model/1"


class SquareActivation(nn.Module):
    """x ↦ x², the polynomial activation CKKS evaluates with one ciphertext multiplication."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


def he_mlp(n_features: int, n_classes: int, hidden: int = 32) -> nn.Module:
    """A small MLP with a square activation: Flatten → Linear → x² → Linear."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(n_features, hidden), SquareActivation(), nn.Linear(hidden, n_classes)
    )


@dataclass
class Layer:
    kind: Literal["linear", "square"]
    weight: np.ndarray | None = None  # (out, in)
    bias: np.ndarray | None = None  # (out,)


@dataclass
class HEModel:
    """Layers evaluated on ciphertexts, and the CKKS parameters chosen for their depth."""

    layers: list[Layer]
    n_features: int
    n_classes: int
    input_shape: tuple[int, ...]
    params: CKKSParams = field(init=False)

    def __post_init__(self) -> None:
        if not self.layers or self.layers[0].kind != "linear":
            raise InvalidInputError("an HE model must start with a linear layer")
        self.params = choose_params(self.depth)

    @property
    def depth(self) -> int:
        return len(self.layers)

    def plaintext_logits(self, x: np.ndarray) -> np.ndarray:
        """The same computation in float64, for agreement checks."""
        h = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        for layer in self.layers:
            if layer.kind == "linear":
                assert layer.weight is not None and layer.bias is not None
                h = h @ layer.weight.T + layer.bias
            else:
                h = h * h
        return h

    @classmethod
    def from_torch(cls, module: nn.Module, input_shape: tuple[int, ...]) -> HEModel:
        layers: list[Layer] = []
        for name, child in _leaves(module):
            kind = getattr(child, "original_name", type(child).__name__)
            if kind in ("Flatten", "Identity", "Dropout"):
                continue
            if kind == "Linear":
                weight: Any = child.weight
                bias: Any = child.bias
                w = weight.detach().double().numpy().copy()
                b = bias.detach().double().numpy().copy() if bias is not None else np.zeros(w.shape[0])
                layers.append(Layer("linear", w, b))
            elif kind == "SquareActivation":
                layers.append(Layer("square"))
            else:
                raise InvalidInputError(
                    f"layer {name!r} ({kind}) cannot be evaluated under CKKS; use Linear layers and "
                    "SquareActivation (retrain with bastion.defenses.encrypted.he_mlp)"
                )
        if not layers:
            raise InvalidInputError("the module has no Linear layers")
        w0 = layers[0].weight
        assert w0 is not None
        n_out = next(lay.weight.shape[0] for lay in reversed(layers) if lay.weight is not None)
        return cls(layers, int(w0.shape[1]), int(n_out), tuple(input_shape))

    @classmethod
    def from_sklearn(cls, est: Any, input_shape: tuple[int, ...]) -> HEModel:
        coef = getattr(est, "coef_", None)
        if coef is None:
            raise InvalidInputError(f"{type(est).__name__} is not a linear model (no coef_)")
        w = np.asarray(coef, dtype=np.float64)
        b = np.asarray(getattr(est, "intercept_", np.zeros(w.shape[0])), dtype=np.float64)
        if w.shape[0] == 1:  # binary: logits for class 0 and 1
            w = np.vstack([-w / 2, w / 2])
            b = np.array([-b[0] / 2, b[0] / 2])
        return cls([Layer("linear", w, b)], int(w.shape[1]), int(w.shape[0]), tuple(input_shape))

    def save(self, out_dir: str | Path) -> Path:
        """Write the bundle atomically; returns the directory."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        spec = []
        for i, layer in enumerate(self.layers):
            if layer.kind == "linear":
                assert layer.weight is not None and layer.bias is not None
                arrays[f"w{i}"], arrays[f"b{i}"] = layer.weight, layer.bias
            spec.append(layer.kind)
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        data = buf.getvalue()
        atomic_write_bytes(out / "weights.npz", data, mode=0o644)
        meta = {
            "format": BUNDLE_FORMAT,
            "layers": spec,
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            "input_shape": list(self.input_shape),
            "ckks": self.params.to_dict(),
            "weights_sha256": hashlib.sha256(data).hexdigest(),
        }
        atomic_write_text(out / "he-model.json", json.dumps(meta, indent=2))
        return out

    @classmethod
    def load(cls, bundle: str | Path) -> HEModel:
        d = Path(bundle)
        meta_path, w_path = d / "he-model.json", d / "weights.npz"
        if not meta_path.is_file() or not w_path.is_file():
            raise ModelLoadError(f"{d} is not an HE model bundle (expected he-model.json and weights.npz)")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != BUNDLE_FORMAT:
            raise ModelLoadError(f"{meta_path}: unknown bundle format {meta.get('format')!r}")
        data = w_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != meta["weights_sha256"]:
            raise ModelLoadError(f"{w_path} does not match the digest in {meta_path}: the bundle was modified")
        arrays = np.load(io.BytesIO(data), allow_pickle=False)
        layers = [
            Layer("linear", arrays[f"w{i}"], arrays[f"b{i}"]) if kind == "linear" else Layer("square")
            for i, kind in enumerate(meta["layers"])
        ]
        return cls(layers, int(meta["n_features"]), int(meta["n_classes"]), tuple(meta["input_shape"]))


def _leaves(module: nn.Module) -> list[tuple[str, nn.Module]]:
    children = list(module.named_children())
    if not children:
        return [("", module)]
    out: list[tuple[str, nn.Module]] = []
    for name, child in children:
        sub = _leaves(child)
        out.extend((f"{name}.{n}" if n else name, m) for n, m in sub)
    return out


def train_demo_he_model(name: str, arch: str = "he-mlp", hidden: int = 32, epochs: int = 30,
                        seed: int = 0) -> tuple[HEModel, float]:
    """Train a CKKS-friendly classifier on the demo data ``name`` (``arch``: ``logreg`` or ``he-mlp``)
    and return its HE bundle with the plaintext test accuracy (``bastion he build --train-demo``).

    Examples:
        >>> he, acc = train_demo_he_model("digits", "logreg", epochs=5)   # doctest: +SKIP
    """
    from bastion.datasets import load_demo_data
    from bastion.models.zoo import TrainConfig, train_classifier

    d = load_demo_data(name)
    s = d.splits
    assert s.x_train is not None and s.y_train is not None and s.x_test is not None and s.y_test is not None
    n_feat, k = int(np.prod(d.input_shape)), len(d.class_names)
    torch.manual_seed(seed)
    if arch == "logreg":
        module: nn.Module = nn.Sequential(nn.Flatten(), nn.Linear(n_feat, k))
    elif arch == "he-mlp":
        module = he_mlp(n_feat, k, hidden)
    else:
        raise InvalidInputError(f"unknown --arch {arch!r}; use logreg or he-mlp")
    train_classifier(module, s.x_train, s.y_train, TrainConfig(epochs=epochs, lr=3e-3), seed=seed)
    with torch.no_grad():
        acc = float((module(torch.from_numpy(s.x_test)).argmax(1).numpy() == s.y_test).mean())
    return HEModel.from_torch(module, d.input_shape), acc
