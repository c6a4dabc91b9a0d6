"""Reference models that copy the target: its own architecture with fresh weights.

LiRA and RMIA are only as strong as their reference models are like the target. A proxy MLP
trained 30 epochs is not like a user's CNN or a model trained with SGD for 200 epochs, and the
attack then underestimates leakage. :func:`clone_architecture` copies the target's module and
re-initialises it:

- TorchScript: ``torch.func.functional_call`` refuses scripted modules, so the deep copy is turned
  into an FX graph with torch's TorchScript→``torch.export`` converter (any scripted submodule of a
  Python wrapper too). Parameters are re-drawn as torch initialises each layer type (the scripted
  submodule's ``original_name``: kaiming-uniform weights, fan-in-uniform biases, norm layers at
  1/0, embeddings normal).
- ``torch.export`` programs: the graph module's parameters, by the same rules.
- ONNX converted to torch (``OnnxModule``): weights and biases found by the ops that use them
  (Gemm, MatMul + Add, Conv; BatchNormalization scale/shift), re-drawn with the fan-in of the op;
  other initializers (normalisation constants) are kept.
- plain ``nn.Module``: ``reset_parameters()`` of every submodule that has one, the rules above
  for the rest.

Buffers are kept (normalisation constants inside the model) except batch-norm running statistics,
which restart at 0/1. The clone is checked before use: with the target's own weights it must
compute the target's logits (so it *is* the target's function), gradients must reach every
trainable tensor, and a few full-batch steps must lower its training loss. Any failure raises
:class:`CloneUnavailable` with the reason, and the caller falls back to the proxy MLP.

scikit-learn targets are cloned with ``sklearn.base.clone`` (the estimator's own hyperparameters
are its recipe): :func:`train_sklearn_references`.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from bastion.attacks.inference.reference import Architecture, Recipe, balanced_masks, train_stacked

# torch's own pytree deprecation, raised inside torch whenever an exported graph is deep-copied (every reference model)
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*", category=FutureWarning)

RUNNING_STAT_RESET = {"running_mean": 0.0, "running_var": 1.0, "num_batches_tracked": 0.0}
MATCH_RTOL = 1e-3  # the clone with the target's weights must give the target's logits to this (relative)


class CloneUnavailable(Exception):
    """The target's architecture cannot be cloned for reference training; ``str(exc)`` says why."""


def _fan_in(shape: torch.Size | tuple[int, ...]) -> int:
    """torch's fan-in of a weight ``(out, in, *kernel)``."""
    return int(shape[1] * math.prod(shape[2:])) if len(shape) >= 2 else int(shape[0])


def _uniform(shape: torch.Size | tuple[int, ...], fan_in: int) -> torch.Tensor:
    """U(±1/√fan_in): torch's default for Linear/Conv weights (kaiming-uniform, a=√5) and biases."""
    bound = 1.0 / math.sqrt(max(fan_in, 1))
    return torch.empty(shape).uniform_(-bound, bound)


def _default_init(state: dict[str, torch.Tensor], trainable: tuple[str, ...],
                  kinds: dict[str, str]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Fresh values for the trainable tensors, by torch's default initialisation of each layer type.

    ``kinds`` maps a submodule path to its layer type (``Linear``, ``Embedding``…) where known.
    Returns the new state and the names kept as they were (no rule applies).
    """
    out = {k: v.detach().clone() for k, v in state.items()}
    kept: list[str] = []
    for name in trainable:
        t = state[name]
        prefix, _, leaf = name.rpartition(".")
        sibling = state.get(f"{prefix}.weight" if prefix else "weight")
        if kinds.get(prefix) == "Embedding" and t.dim() == 2:
            out[name] = torch.randn(t.shape)
        elif t.dim() >= 2:
            out[name] = _uniform(t.shape, _fan_in(t.shape))
        elif leaf == "bias" and sibling is not None and sibling.dim() >= 2:
            out[name] = _uniform(t.shape, _fan_in(sibling.shape))
        elif leaf == "weight" and t.dim() == 1:
            out[name] = torch.ones_like(t)  # norm layers' scale
        elif leaf == "bias":
            out[name] = torch.zeros_like(t)  # norm layers' shift
        else:
            kept.append(name)
    for name, value in RUNNING_STAT_RESET.items():
        for k in out:
            if k == name or k.endswith("." + name):
                out[k] = torch.full_like(out[k], value)
    return out, kept


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in (*module.named_parameters(), *module.named_buffers())}


def _script_roots(module: nn.Module) -> list[str]:
    """Paths of the outermost scripted submodules ('' when the module itself is scripted)."""
    roots: list[str] = []
    for path, sub in module.named_modules():
        if isinstance(sub, torch.jit.ScriptModule) and not any(path.startswith(r + ".") or r == "" for r in roots):
            roots.append(path)
    return roots


class _Recorder(nn.Module):
    """Stands in for a submodule for one call to record the arguments it gets."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.args: tuple[Any, ...] | None = None

    def forward(self, *args: Any) -> Any:
        self.args = args
        return self.inner(*args)


def _set_sub(root: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, leaf = path.rpartition(".")
    setattr(root.get_submodule(parent_path) if parent_path else root, leaf, new)


def _script_to_graph(scripted: nn.Module, args: tuple[Any, ...]) -> nn.Module:
    """A scripted module as an FX graph module (torch's TorchScript→export converter)."""
    import logging

    from torch._export.converter import TS2EPConverter

    log = logging.getLogger("torch._export")
    level = log.level
    log.setLevel(logging.ERROR)  # the converter warns about every specialised dimension
    try:
        return TS2EPConverter(scripted, args).convert().module()  # type: ignore[arg-type]
    except Exception as exc:
        raise CloneUnavailable(f"TorchScript→FX conversion failed: {str(exc).splitlines()[0][:160]}") from exc
    finally:
        log.setLevel(level)


def _functional_copy(module: nn.Module, probe: torch.Tensor) -> tuple[nn.Module, tuple[str, ...], dict[str, str], str]:
    """A deep copy of ``module`` that ``functional_call`` accepts: (module, trainable names, layer kinds, kind)."""
    src = copy.deepcopy(module)
    roots = _script_roots(src)
    if not roots:
        kinds = {p: type(s).__name__ for p, s in src.named_modules()}
        return src, tuple(n for n, _ in src.named_parameters()), kinds, "module"
    kinds = {}
    trainable = [n for n, _ in src.named_parameters()
                 if not any(r == "" or n.startswith(r + ".") for r in roots)]
    for root in roots:
        scripted = src if root == "" else src.get_submodule(root)
        pre = f"{root}." if root else ""
        kinds.update({pre + p: str(getattr(s, "original_name", type(s).__name__)) for p, s in scripted.named_modules()})
        trainable += [pre + n for n, _ in scripted.named_parameters()]
        if root == "":
            src = _script_to_graph(scripted, (probe,))
            continue
        rec = _Recorder(scripted)
        _set_sub(src, root, rec)
        with torch.no_grad():
            src(probe)
        if rec.args is None:
            raise CloneUnavailable(f"scripted submodule {root!r} is not called in forward")
        _set_sub(src, root, _script_to_graph(scripted, rec.args))
    return src, tuple(trainable), kinds, "torchscript"


def _onnx_roles(module: Any) -> tuple[dict[str, int], dict[str, str], dict[str, int]]:
    """ONNX converter module: (weight name → fan-in, bias name → its weight's name, batch-norm name → input slot)."""
    weights: dict[str, int] = {}
    biases: dict[str, str] = {}
    norms: dict[str, int] = {}
    matmul_out: dict[str, str] = {}  # MatMul output → its weight's name
    for op, ins, outs, attrs in module.nodes:
        names = [module.state_name(i) if i else None for i in ins]
        w = names[1] if len(names) > 1 else None
        if op in ("Gemm", "MatMul", "Conv") and w is not None and w.startswith("params."):
            shape = tuple(module.get_parameter(w).shape)
            if len(shape) < 2:
                continue
            fan = (shape[1] if attrs.get("transB", 0) else shape[0]) if op == "Gemm" else \
                shape[0] if op == "MatMul" else _fan_in(shape)
            weights[w] = int(fan)
            if op == "MatMul":
                matmul_out[outs[0]] = w
            elif len(names) > 2 and names[2] is not None:
                biases[names[2]] = w
        elif op == "Add" and len(ins) > 1 and ins[0] in matmul_out and names[1] is not None:
            biases[names[1]] = matmul_out[ins[0]]
        elif op == "BatchNormalization":
            norms.update({n: j for j, n in enumerate(names) if j >= 1 and n is not None})
    return weights, biases, norms


BN_SLOT_INIT = {1: 1.0, 2: 0.0, 3: 0.0, 4: 1.0}  # scale, shift, running mean, running variance


def _onnx_architecture(fn: nn.Module) -> Architecture:
    """An ONNX converter module's graph with fresh weights and biases; batch-norm scale/shift train (the
    exported op is inference-mode), its statistics restart at 0/1; other initializers are kept."""
    weights, biases, norms = _onnx_roles(fn)
    if not weights:
        raise CloneUnavailable("no Gemm/MatMul/Conv weight initializers found in the ONNX graph")
    state = _state(fn)
    trainable = tuple(sorted({*weights, *biases, *(n for n, j in norms.items() if j in (1, 2))}))

    def init() -> dict[str, torch.Tensor]:
        out = {k: v.clone() for k, v in state.items()}
        for name, fan in weights.items():
            out[name] = _uniform(state[name].shape, fan)
        for name, w in biases.items():
            out[name] = _uniform(state[name].shape, weights[w])
        for name, slot in norms.items():
            out[name] = torch.full_like(state[name], BN_SLOT_INIT.get(slot, 0.0))
        return out

    return Architecture(fn, trainable, init, "clone:onnx")


def _torch_architecture(fn: nn.Module, trainable: tuple[str, ...], kinds: dict[str, str], kind: str) -> Architecture:
    state = _state(fn)
    missing = [n for n in trainable if n not in state]
    if missing:
        raise CloneUnavailable(f"converted module lacks the target's parameters {missing[:3]}")
    resettable = [(p, s) for p, s in fn.named_modules() if callable(getattr(s, "reset_parameters", None))]
    owned = {f"{p}.{n}" if p else n for p, s in resettable for n, _ in s.named_parameters(recurse=False)}
    _, kept = _default_init(state, tuple(n for n in trainable if n not in owned), kinds)

    def init() -> dict[str, torch.Tensor]:
        fresh, _ = _default_init(state, tuple(n for n in trainable if n not in owned), kinds)
        if resettable:  # plain modules: each layer's own reset_parameters()
            m = copy.deepcopy(fn)
            for _p, s in m.named_modules():
                if callable(getattr(s, "reset_parameters", None)):
                    s.reset_parameters()
            reset = _state(m)
            fresh.update({k: reset[k] for k in owned})
            fresh.update({k: reset[k] for k in reset if k.rsplit(".", 1)[-1] in RUNNING_STAT_RESET})
        return fresh

    arch = Architecture(fn, trainable, init, f"clone:{kind}")
    if kept:
        arch.notes.append(f"kept the target's values of {len(kept)} tensors no init rule covers: {', '.join(kept[:5])}")
    return arch


def clone_architecture(module: nn.Module, probe: np.ndarray) -> Architecture:
    """The target module's architecture with fresh weights, as an :class:`Architecture`.

    ``probe`` is a small batch of real inputs (at least 2). Raises :class:`CloneUnavailable`.
    """
    x = torch.from_numpy(np.ascontiguousarray(probe[:8], dtype=np.float32))
    if len(x) < 2:
        raise CloneUnavailable("cloning needs at least 2 probe inputs")
    with torch.no_grad():
        want = module(x)
    if hasattr(module, "nodes") and hasattr(module, "state_name"):
        arch = _onnx_architecture(copy.deepcopy(module))
    else:
        fn, trainable, kinds, kind = _functional_copy(module, x)
        arch = _torch_architecture(fn, trainable, kinds, kind)
    from torch.func import functional_call

    try:
        with torch.no_grad():
            got = functional_call(arch.module, _state(arch.module), (x,))
    except Exception as exc:
        raise CloneUnavailable(f"the copy does not run through functional_call: {str(exc).splitlines()[0][:160]}") from exc
    err = float((got - want).abs().max())
    if not err <= MATCH_RTOL * (1.0 + float(want.abs().max())):
        raise CloneUnavailable(f"the copy with the target's weights differs from the target by {err:.2e}")
    return arch


def verify_trains(arch: Architecture, x: np.ndarray, y: np.ndarray, steps: int = 25, seed: int = 0) -> dict[str, float]:
    """Train 2 fresh clones full-batch on ≤ 128 records (Adam, lr 3e-3): gradients must reach every trainable
    tensor and the loss must fall below 0.98× its start. Returns the losses; raises :class:`CloneUnavailable`."""
    n = min(len(x), 128)
    subsets = np.stack([np.arange(n)] * 2)
    losses: list[float] = []
    reached: dict[str, float] = {}

    def hook(epoch: int, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor]) -> None:
        from bastion.attacks.inference.reference import stacked_forward

        if epoch == 1:
            reached.update({k: float(p.grad.abs().sum()) if p.grad is not None else 0.0 for k, p in params.items()})
        with torch.no_grad():
            logits = stacked_forward(arch.module, params, buffers, torch.from_numpy(x[:n].astype(np.float32)), False)
            losses.append(float(nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                            torch.from_numpy(np.tile(y[:n], 2).astype(np.int64)))))

    recipe = Recipe("adam", 3e-3, 0.0, steps, n)
    try:
        train_stacked(arch, x[:n], y[:n], subsets, [recipe, recipe], steps, seed, on_epoch=hook)  # type: ignore[arg-type]
    except Exception as exc:
        raise CloneUnavailable(f"the clone does not train under torch.func: {str(exc).splitlines()[0][:160]}") from exc
    dead = [k for k, g in reached.items() if not g > 0]
    if dead:
        raise CloneUnavailable(f"no gradient reaches {len(dead)} trainable tensors of the clone ({', '.join(dead[:3])})")
    if not losses or not np.isfinite(losses[-1]) or losses[-1] > 0.98 * losses[0]:
        raise CloneUnavailable(f"the clone does not train: loss {losses[0]:.3f} → {losses[-1]:.3f} after {steps} "
                               "full-batch Adam steps")
    return {"loss_start": losses[0], "loss_end": losses[-1]}


class SklearnReferenceEnsemble:
    """Reference models that are ``sklearn.base.clone`` copies of the target estimator."""

    def __init__(self, models: list[Any], masks: np.ndarray, n_classes: int, arch: str) -> None:
        self.models = models
        self.masks = masks
        self.n_classes = n_classes
        self.arch = arch
        self.recipe: Recipe | None = None

    @property
    def n_models(self) -> int:
        return int(self.masks.shape[0])

    def log_proba(self, x: np.ndarray) -> np.ndarray:
        """``(M, n, k)`` log-probabilities; a class a model never saw gets probability 1e-12."""
        flat = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
        out = np.full((self.n_models, len(x), self.n_classes), 1e-12)
        for i, est in enumerate(self.models):
            cols = np.asarray(est.classes_, dtype=np.int64)
            out[i][:, cols] = np.maximum(np.asarray(est.predict_proba(flat), dtype=np.float64), 1e-12)
        out /= out.sum(axis=-1, keepdims=True)
        return np.log(out)


def train_sklearn_references(estimator: Any, x: np.ndarray, y: np.ndarray, n_models: int, set_size: int,
                             n_classes: int, seed: int = 0,
                             n_for_budget: Callable[[float], int] | None = None) -> tuple[SklearnReferenceEnsemble, float]:
    """Fit ``sklearn.base.clone(estimator)`` copies on balanced subsets. With ``n_for_budget`` the number of
    models is ``n_for_budget(seconds of the first fit)`` instead of ``n_models``. Returns (ensemble, s per model)."""
    from sklearn.base import clone

    flat = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    if n_for_budget is not None:  # time one fit on a provisional subset first
        t0 = time.perf_counter()
        probe_mask = balanced_masks(len(x), 1, set_size, np.random.default_rng(seed + 7))[0]
        _fit_clone(clone(estimator), flat[probe_mask], y[probe_mask], seed)
        n_models = n_for_budget(time.perf_counter() - t0)
    masks = balanced_masks(len(x), n_models, set_size, np.random.default_rng(seed))
    t0 = time.perf_counter()
    models = [_fit_clone(clone(estimator), flat[m], y[m], seed + i) for i, m in enumerate(masks)]
    per_model = (time.perf_counter() - t0) / max(n_models, 1)
    return SklearnReferenceEnsemble(models, masks, n_classes, f"clone:sklearn:{type(estimator).__name__}"), per_model


def _fit_clone(est: Any, x: np.ndarray, y: np.ndarray, seed: int) -> Any:
    if "random_state" in est.get_params():
        est.set_params(random_state=seed)
    return est.fit(x, y)
