"""Backdoor-style watermarks embedded during training, with the trigger set kept encrypted.

Adi, Baum, Cisse, Pinkas and Keshet, "Turning Your Weakness Into a Strength: Watermarking Deep Neural
Networks by Backdooring", USENIX Security 2018 (https://arxiv.org/abs/1802.04633). The owner draws a
secret trigger set of abstract inputs (here: uniform random patterns in the valid input range) and
gives each a label drawn uniformly at random; the model learns them alongside the task (every batch
mixes in a few trigger samples). Because the labels are drawn independently of any model, a model
that never saw the trigger set matches each one with probability exactly ``1/k``: verification is an
exact one-sided binomial test of the suspect's trigger accuracy against ``1/k``.

The trigger set is the key: it is stored AES-256-GCM encrypted under a 256-bit key file (mode 0600,
the key format of ``bastion data keygen``), with the model's sha256 and the parameters as associated
data, so a tampered file does not decrypt.

Examples:
    >>> res, net, key = embed_watermark("digits-mlp", x, y, 10, x_test=xt, y_test=yt)   # doctest: +SKIP
    >>> save_trigger_set(key, "model.wm", "wm.key")                                     # doctest: +SKIP
    >>> verify_watermark(load_trigger_set("model.wm", "wm.key"), suspect).verified      # doctest: +SKIP
    True
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from torch import nn

from bastion.core.errors import IntegrityError, InvalidInputError, QueryBudgetExceeded
from bastion.core.inputfile import read_input_file
from bastion.core.model import ModelAdapter
from bastion.core.paths import atomic_write_text
from bastion.data.privacy.encryption import kek_id, load_kek
from bastion.defenses.ownership.models import query_labels

FORMAT = "bastion-watermark-v1"
METHOD = "backdoor-watermark"
CITATION = ("Adi, Baum, Cisse, Pinkas, Keshet. Turning Your Weakness Into a Strength: Watermarking Deep "
            "Neural Networks by Backdooring. USENIX Security 2018. https://arxiv.org/abs/1802.04633")


@dataclass(frozen=True)
class WatermarkConfig:
    """Parameters of watermark embedding (recorded in the training record and the key file)."""

    n_trigger: int = 100
    trigger_per_batch: int = 16
    epochs: int = 40
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0


@dataclass
class WatermarkKey:
    """The secret: trigger inputs and their random labels."""

    x: np.ndarray
    y: np.ndarray
    n_classes: int
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class WatermarkResult:
    clean_accuracy: float | None
    trigger_accuracy: float
    baseline_accuracy: float | None
    accuracy_cost: float | None
    params: dict[str, Any]
    duration_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"method": METHOD, "citation": CITATION, **asdict(self)}


@dataclass
class WatermarkVerdict:
    matches: int
    queries: int
    trigger_accuracy: float
    chance: float
    p_value: float
    alpha: float
    verified: bool

    def to_dict(self) -> dict[str, Any]:
        return {"method": METHOD, **asdict(self)}


def make_trigger_set(input_shape: tuple[int, ...], n_classes: int, n: int, clip_min: float | None,
                     clip_max: float | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` abstract inputs (uniform random patterns over the valid range)
    with labels drawn uniformly at random."""
    rng = np.random.default_rng(seed)
    lo = 0.0 if clip_min is None else float(clip_min)
    hi = 1.0 if clip_max is None else float(clip_max)
    z = rng.uniform(0.0, 1.0, size=(n, *input_shape))
    x = (lo + (hi - lo) * z).astype(np.float32)
    return x, rng.integers(0, n_classes, size=n).astype(np.int64)


def _train(module: nn.Module, x: np.ndarray, y: np.ndarray, trig: tuple[np.ndarray, np.ndarray] | None,
           cfg: WatermarkConfig) -> nn.Module:
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    xt, yt = torch.from_numpy(np.asarray(x, np.float32)), torch.from_numpy(np.asarray(y, np.int64))
    opt = torch.optim.Adam(module.parameters(), lr=cfg.lr)
    module.train()
    tx = ty = None
    if trig is not None:
        tx, ty = torch.from_numpy(trig[0]), torch.from_numpy(trig[1])
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            bx, by = xt[idx], yt[idx]
            if tx is not None and ty is not None:
                j = torch.randint(0, len(tx), (cfg.trigger_per_batch,), generator=g)
                bx, by = torch.cat([bx, tx[j]]), torch.cat([by, ty[j]])
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(module(bx), by).backward()
            opt.step()
    module.eval()
    return module


def _accuracy(module: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((module(torch.from_numpy(np.asarray(x, np.float32))).argmax(1).numpy() == y).mean())


def embed_watermark(model_spec: str, x_train: np.ndarray, y_train: np.ndarray, n_classes: int, *,
                    x_test: np.ndarray | None = None, y_test: np.ndarray | None = None,
                    clip_min: float | None = None, clip_max: float | None = None,
                    config: WatermarkConfig | None = None,
                    measure_cost: bool = True) -> tuple[WatermarkResult, nn.Module, WatermarkKey]:
    """Train ``model_spec`` on the data plus a fresh secret trigger set; with ``measure_cost`` also train the
    same recipe without the watermark (same seed) and report the clean-accuracy difference on the test set."""
    from bastion.defenses.specs import resolve_model_spec

    cfg = config or WatermarkConfig()
    t0 = time.perf_counter()
    shape = tuple(np.asarray(x_train).shape[1:])
    trig = make_trigger_set(shape, n_classes, cfg.n_trigger, clip_min, clip_max, seed=cfg.seed + 7919)
    torch.manual_seed(cfg.seed)
    net = _train(resolve_model_spec(model_spec, shape, n_classes), x_train, y_train, trig, cfg)
    has_test = x_test is not None and y_test is not None and len(x_test) > 0
    clean = _accuracy(net, x_test, y_test) if has_test else None  # type: ignore[arg-type]
    base = None
    if measure_cost and has_test:
        torch.manual_seed(cfg.seed)
        ref = _train(resolve_model_spec(model_spec, shape, n_classes), x_train, y_train, None, cfg)
        base = _accuracy(ref, x_test, y_test)  # type: ignore[arg-type]
    params = {**asdict(cfg), "model_spec": model_spec, "n_classes": n_classes}
    key = WatermarkKey(trig[0], trig[1], n_classes, params)
    res = WatermarkResult(clean, _accuracy(net, *trig), base,
                          None if base is None or clean is None else base - clean, params,
                          time.perf_counter() - t0)
    return res, net, key


def _aad(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True).encode()


def save_trigger_set(key: WatermarkKey, path: str | Path, kek_path: str | Path,
                     model_sha256: str | None = None) -> Path:
    """Encrypt the trigger set under the key file ``kek_path`` (AES-256-GCM) and write it to ``path``."""
    kek = load_kek(kek_path)
    buf = io.BytesIO()
    np.savez(buf, x=np.asarray(key.x, np.float32), y=np.asarray(key.y, np.int64))
    header = {"format": FORMAT, "method": METHOD, "kek_id": kek_id(kek), "n_classes": key.n_classes,
              "n_trigger": len(key.y), "input_shape": list(key.x.shape[1:]), "model_sha256": model_sha256,
              "params": key.params}
    nonce = os.urandom(12)
    ct = AESGCM(kek).encrypt(nonce, buf.getvalue(), _aad(header))
    body = {"header": header, "nonce": base64.b64encode(nonce).decode(), "ciphertext": base64.b64encode(ct).decode()}
    p = Path(path)
    atomic_write_text(p, json.dumps(body, indent=1) + "\n", mode=0o600)
    return p


def load_trigger_set(path: str | Path, kek_path: str | Path | None) -> WatermarkKey:
    """Decrypt a trigger set written by :func:`save_trigger_set` (``IntegrityError`` on a wrong key or tampering)."""
    p = Path(path)
    header, nonce, ct = read_input_file(p, "watermark file", _parse_trigger_file)
    kek = load_kek(kek_path)
    if header.get("kek_id") != kek_id(kek):
        raise IntegrityError(f"{p} was encrypted under key id {header.get('kek_id')}; the given key has id {kek_id(kek)}")
    try:
        plain = AESGCM(kek).decrypt(nonce, ct, _aad(header))
    except InvalidTag:
        raise IntegrityError(f"{p} does not authenticate under the given key (file altered?)") from None
    with np.load(io.BytesIO(plain), allow_pickle=False) as z:
        return WatermarkKey(z["x"], z["y"], int(header["n_classes"]), dict(header.get("params", {})))


def _parse_trigger_file(data: bytes, where: str) -> tuple[dict[str, Any], bytes, bytes]:
    """(header, nonce, ciphertext) of a trigger-set file written by :func:`save_trigger_set`."""
    try:
        body = json.loads(data.decode())
        header = body["header"]
        if header.get("format") != FORMAT:
            raise InvalidInputError(f"{where} is not a Bastion watermark file (format {FORMAT!r} expected)")
        nonce, ct = base64.b64decode(body["nonce"], validate=True), base64.b64decode(body["ciphertext"], validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"{where}: malformed watermark file ({exc})") from None
    return header, nonce, ct


def verify_watermark(key: WatermarkKey, suspect: ModelAdapter, query_budget: int | None = None,
                     alpha: float = 0.01) -> WatermarkVerdict:
    """Trigger-set accuracy of ``suspect`` and the one-sided binomial p-value against chance ``1/k``."""
    from scipy.stats import binom

    n = len(key.y) if query_budget is None else min(len(key.y), int(query_budget))
    if n < 1:
        raise InvalidInputError(f"--query-budget must be at least 1, got {query_budget}")
    if tuple(suspect.input_spec.shape) != tuple(key.x.shape[1:]):
        raise InvalidInputError(f"the suspect takes inputs of shape {tuple(suspect.input_spec.shape)}; "
                                f"the watermark was made for {tuple(key.x.shape[1:])}")
    pred, _ = query_labels(suspect, key.x[:n])
    q = len(pred)
    if q == 0:
        raise QueryBudgetExceeded("the suspect answered no trigger query (its query budget is spent)")
    k = int((pred == key.y[:q]).sum())
    chance = 1.0 / key.n_classes
    p = float(binom.sf(k - 1, q, chance))
    return WatermarkVerdict(k, q, k / q, chance, p, alpha, p < alpha)
