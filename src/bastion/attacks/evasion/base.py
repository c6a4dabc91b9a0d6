"""Shared pieces of the evasion attacks: norms, projections, losses, model guards, batching.

Every white-box attack is a small class whose ``__call__(model, x, y)`` takes an ``nn.Module``
returning logits and tensors, and returns ``x_adv`` (same shape, inside the eps-ball and the
clip range). The model's train/eval mode and its parameters' ``requires_grad`` flags are
restored in ``finally``; gradients are taken with respect to the input only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

import torch
from torch import Tensor, nn

from bastion.core.errors import InvalidInputError

Norm = Literal["linf", "l2"]
LossName = Literal["ce", "dlr"]
NORMS: tuple[str, ...] = ("linf", "l2")
LOSSES: tuple[str, ...] = ("ce", "dlr")

LogitsFn = Callable[[Tensor], Tensor]


def check_norm(norm: str) -> Norm:
    """Validate a norm name (``linf`` or ``l2``)."""
    if norm not in NORMS:
        raise InvalidInputError(f"unknown norm {norm!r}; expected one of {', '.join(NORMS)}")
    return norm  # type: ignore[return-value]


def check_eps(eps: float) -> float:
    """Validate a perturbation budget: finite and >= 0."""
    eps = float(eps)
    if not (eps >= 0.0 and eps < float("inf")):
        raise InvalidInputError(f"eps must be a finite number >= 0, got {eps!r}")
    return eps


def check_clip(clip_min: float | None, clip_max: float | None) -> None:
    if clip_min is not None and clip_max is not None and clip_min > clip_max:
        raise InvalidInputError(f"clip_min ({clip_min}) is above clip_max ({clip_max})")


@contextmanager
def frozen_eval(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode with frozen parameters; restore both on exit (even on error)."""
    was_training = model.training
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    try:
        model.eval()
        for p in params:
            p.requires_grad_(False)
        yield model
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
        model.train(was_training)


def default_threads() -> int:
    """The intra-op threads torch uses by default in this process (``OMP_NUM_THREADS`` or the cores).

    No load-average guessing: the 1-minute load average lags by minutes, so on a machine that has
    just finished a job it halves the threads of an idle machine. ``--threads N`` (or
    ``torch.set_num_threads``) is the way to share a busy machine.
    """
    return max(1, torch.get_num_threads())


@contextmanager
def attack_threads(threads: int | None) -> Iterator[int]:
    """Run with ``threads`` intra-op threads (``None``: torch's current setting); restore on exit."""
    before = torch.get_num_threads()
    n = before if threads is None else max(1, int(threads))
    try:
        if n != before:
            torch.set_num_threads(n)
        yield n
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextmanager
def eager_script(model: nn.Module) -> Iterator[None]:
    """Run a TorchScript module op by op, with eager autograd, instead of the JIT's optimised graphs.

    The graph executor's differentiable graphs compute input gradients with extra copies and
    its own ReLU backward; op-by-op execution was 15–25% faster for PGD on the TorchScript demo
    CNN. The flag is process-wide while the attack runs and restored afterwards.
    """
    if not isinstance(model, torch.jit.ScriptModule):
        yield
        return
    with torch.jit.optimized_execution(False):
        yield


def _conv_params(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.dim() == 4]


def to_channels_last(t: Tensor) -> Tensor:
    """A copy of a 4-D tensor with explicit channels-last strides.

    ``Tensor.contiguous(memory_format=torch.channels_last)`` returns a tensor with one channel
    (a greyscale image, a first-layer conv weight) unchanged, because its NCHW strides already
    count as channels-last; oneDNN then picks the slow NCHW kernels for the whole network. An
    explicit copy gives strides that every kernel reads as NHWC.
    """
    return torch.empty_like(t, memory_format=torch.channels_last).copy_(t)


@contextmanager
def channels_last(model: nn.Module, enabled: bool) -> Iterator[bool]:
    """Temporarily store 4-D (conv) weights channels-last, the fast layout for oneDNN on CPU.

    Values are unchanged; the original tensors are put back on exit. Yields whether the layout
    is in use (only for models that have conv weights). PGD-20 on the mnist demo CNN: 1.6x
    fewer CPU-seconds per gradient step than NCHW (bench/evasion_vs_art.py).
    """
    convs = _conv_params(model) if enabled else []
    if not convs:
        yield False
        return
    originals = [p.data for p in convs]
    try:
        for p in convs:
            p.data = to_channels_last(p.data)
        yield True
    finally:
        for p, data in zip(convs, originals, strict=True):
            p.data = data


def flat_norm(v: Tensor, norm: Norm) -> Tensor:
    """Per-sample norm of ``v`` (shape ``(n,)``)."""
    flat = v.reshape(v.shape[0], -1)
    if norm == "linf":
        return flat.abs().amax(dim=1)
    return flat.norm(p=2, dim=1)


def _bcast(v: Tensor, like: Tensor) -> Tensor:
    return v.reshape((-1,) + (1,) * (like.dim() - 1))


def project(delta: Tensor, norm: Norm, eps: float) -> Tensor:
    """Project a perturbation onto the eps-ball of ``norm``."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    n = flat_norm(delta, "l2")
    factor = torch.clamp(eps / (n + 1e-12), max=1.0)
    return delta * _bcast(factor, delta)


def clip(x: Tensor, clip_min: float | None, clip_max: float | None) -> Tensor:
    """Clamp to the valid input range (either bound may be ``None`` = unbounded)."""
    if clip_min is None and clip_max is None:
        return x
    return x.clamp(min=clip_min, max=clip_max)


def project_and_clip(
    x_adv: Tensor, x: Tensor, norm: Norm, eps: float, clip_min: float | None, clip_max: float | None
) -> Tensor:
    """``x + P_eps(x_adv - x)``, clipped to the valid range (stays inside the ball: clipping only shrinks |δ|)."""
    return clip(x + project(x_adv - x, norm, eps), clip_min, clip_max)


def random_start(x: Tensor, norm: Norm, eps: float, gen: torch.Generator) -> Tensor:
    """A uniformly random start inside the eps-ball (L2: uniform direction, radius ~ U^(1/d))."""
    if norm == "linf":
        noise = torch.rand(x.shape, generator=gen, dtype=x.dtype).to(x.device) * 2 - 1
        return noise * eps
    d = x[0].numel()
    direction = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
    direction = direction / _bcast(flat_norm(direction, "l2") + 1e-12, x)
    radius = torch.rand((x.shape[0],), generator=gen, dtype=x.dtype).to(x.device) ** (1.0 / d)
    return direction * _bcast(radius * eps, x)


def normalised_step(grad: Tensor, norm: Norm) -> Tensor:
    """The steepest-ascent direction for ``norm``: sign(g) for L∞, g/‖g‖₂ for L2."""
    if norm == "linf":
        return grad.sign()
    return grad / _bcast(flat_norm(grad, "l2") + 1e-12, grad)


def dlr_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Difference-of-logits-ratio loss (Croce & Hein 2020), per sample; higher = more adversarial.

    ``-(z_y - max_{i≠y} z_i) / (z_π1 - z_π3)``. With two classes there is no third logit, so the
    unnormalised margin ``-(z_y - z_other)`` is used.
    """
    z_sorted, idx_sorted = logits.sort(dim=1)
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    top_is_y = idx_sorted[:, -1] == y
    z_other = torch.where(top_is_y, z_sorted[:, -2], z_sorted[:, -1])
    margin = z_y - z_other
    if logits.shape[1] < 3:
        return -margin
    return -margin / (z_sorted[:, -1] - z_sorted[:, -3] + 1e-12)


def per_sample_loss(logits: Tensor, y: Tensor, loss: LossName) -> Tensor:
    """Per-sample attack loss (to be maximised)."""
    if loss == "dlr":
        return dlr_loss(logits, y)
    return nn.functional.cross_entropy(logits, y, reduction="none")


def input_grad(model: LogitsFn, x: Tensor, y: Tensor, loss: LossName) -> tuple[Tensor, Tensor, Tensor]:
    """Loss gradient w.r.t. the input only: ``(grad, per_sample_loss, logits)`` (detached)."""
    xg = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(xg)
        losses = per_sample_loss(logits, y, loss)
        (grad,) = torch.autograd.grad(losses.sum(), xg)
    return grad.detach(), losses.detach(), logits.detach()


def check_xy(x: Tensor, y: Tensor) -> None:
    if x.shape[0] != y.shape[0]:
        raise InvalidInputError(f"x has {x.shape[0]} samples but y has {y.shape[0]} labels")
    if y.dim() != 1:
        raise InvalidInputError(f"y must be a 1-D tensor of class indices, got shape {tuple(y.shape)}")
    if not torch.isfinite(x).all():
        raise InvalidInputError("x contains NaN or infinite values")


def batches(n: int, batch_size: int) -> Iterator[slice]:
    for i in range(0, n, max(1, batch_size)):
        yield slice(i, min(n, i + batch_size))


IMAGE_BATCH = 64  # conv nets on CPU, channels-last: per-sample cost on the mnist demo CNN was lowest at 32-64 (128: +20%, cache)
FLAT_BATCH = 1024  # MLPs / tabular: per-call overhead dominates, so bigger is better


class BoundedAttack:
    """What every evasion attack holds: its eps-ball (``eps``, ``norm``), the valid input range, the seed
    and the threads; and the two operations on them, clipping to the range and projecting onto the ball."""

    name: str = "attack"

    def __init__(self, eps: float, norm: Norm, clip_min: float | None, clip_max: float | None, seed: int,
                 threads: int | None) -> None:
        self.eps = check_eps(eps)
        self.norm: Norm = check_norm(norm)
        check_clip(clip_min, clip_max)
        self.clip_min = clip_min
        self.clip_max = clip_max
        self.seed = int(seed)
        self.threads = threads

    def _clip(self, x: Tensor) -> Tensor:
        return clip(x, self.clip_min, self.clip_max)

    def _project(self, x_adv: Tensor, x: Tensor) -> Tensor:
        """``x_adv`` projected onto the eps-ball around ``x`` and clipped to the range."""
        return project_and_clip(x_adv, x, self.norm, self.eps, self.clip_min, self.clip_max)

    def _params(self, **own: object) -> dict[str, object]:
        """The attack's parameters for reports: name and ball, its ``own`` settings, range and seed."""
        return {"attack": self.name, "eps": self.eps, "norm": self.norm, **own, "clip_min": self.clip_min,
                "clip_max": self.clip_max, "seed": self.seed}


def check_iterations(steps: int, restarts: int) -> None:
    if steps < 1 or restarts < 1:
        raise InvalidInputError(f"steps and restarts must be >= 1 (got steps={steps}, restarts={restarts})")


class WhiteBoxAttack(BoundedAttack):
    """Base of the gradient attacks: validation, model guard, batching, seeding, threads.

    ``batch_size=None`` picks 64 for image batches and 1024 otherwise; ``threads=None`` uses torch's
    threads (all cores by default, ``--threads N`` on the CLI); ``fast_layout=True`` (the default) runs conv weights and
    image batches channels-last, oneDNN's fast layout on CPU (same arithmetic, different strides).
    Subclasses implement ``_perturb(model, x, y, gen) -> x_adv`` on one batch.
    """

    def __init__(
        self,
        eps: float,
        norm: Norm = "linf",
        clip_min: float | None = 0.0,
        clip_max: float | None = 1.0,
        seed: int = 0,
        batch_size: int | None = None,
        threads: int | None = None,
        fast_layout: bool = True,
    ) -> None:
        super().__init__(eps, norm, clip_min, clip_max, seed, threads)
        self.batch_size = batch_size
        self.fast_layout = bool(fast_layout)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Adversarial examples for ``x`` (labels ``y``), computed in batches of ``batch_size``."""
        check_xy(x, y)
        y = y.to(device=x.device, dtype=torch.long)
        gen = torch.Generator().manual_seed(self.seed)
        outs: list[Tensor] = []
        image = x.dim() == 4
        size = self.batch_size or (IMAGE_BATCH if image else FLAT_BATCH)
        with frozen_eval(model), attack_threads(self.threads), eager_script(model), \
                channels_last(model, self.fast_layout and image) as cl:
            for sl in batches(x.shape[0], size):
                xb = x[sl].detach()
                if cl:
                    xb = to_channels_last(xb)
                outs.append(self._perturb(model, xb, y[sl], gen).detach().contiguous())
        if not outs:
            return x.detach().clone()
        return torch.cat(outs)

    def _perturb(self, model: LogitsFn, x: Tensor, y: Tensor, gen: torch.Generator) -> Tensor:
        raise NotImplementedError

    def _random_start(self, x: Tensor, gen: torch.Generator) -> Tensor:
        """A uniformly random point of the eps-ball around ``x``, clipped to the range."""
        return self._clip(x + random_start(x, self.norm, self.eps, gen))

    def _ascend(self, xa: Tensor, x: Tensor, grad: Tensor, size: float | Tensor) -> Tensor:
        """One steepest-ascent step of ``size`` from ``xa`` along ``grad``, projected back around ``x``."""
        return self._project(xa + size * normalised_step(grad, self.norm), x)

    def params(self) -> dict[str, object]:
        """The attack's parameters, for reports."""
        return self._params()
