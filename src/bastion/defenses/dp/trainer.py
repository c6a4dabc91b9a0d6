"""DP-SGD training through Opacus (Abadi et al. 2016; Yousefpour et al. 2021).

``train_dp`` fixes unsupported layers with Opacus's ``ModuleValidator`` (e.g. BatchNorm →
GroupNorm), trains with Poisson sampling and per-sample clipping, calibrates the noise
multiplier to a target ε with the chosen accountant (PRV by default, RDP available), and
returns the model with a ``PrivacyStatement`` whose ε is read back from the accountant.
``grad_sample_mode`` picks how per-sample gradients are computed: ``ghost`` (default: ghost
clipping computes the exact per-sample gradient norms without materialising the per-sample
gradients; its models and per-step cost against ``hooks`` are measured in docs/privacy.md, "DP-SGD"),
``hooks`` (Opacus's default), ``functorch`` or ``ew`` (expanded weights).

Examples:
    >>> import numpy as np
    >>> from bastion.models.zoo import build_architecture
    >>> x = np.random.default_rng(0).random((256, 1, 8, 8), dtype=np.float32)
    >>> y = np.arange(256) % 10
    >>> r = train_dp(build_architecture("digits-mlp", (1, 8, 8), 10), x, y, DPConfig(epsilon=3.0, epochs=1))
    >>> round(r.statement.epsilon, 1) <= 3.0
    True
"""

from __future__ import annotations

import json
import secrets
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from bastion.core.errors import ConfigError, InvalidInputError
from bastion.core.paths import atomic_write_bytes, atomic_write_text
from bastion.defenses.dp.statement import PrivacyStatement, privacy_statement_path

GradSampleMode = Literal["hooks", "functorch", "ew", "ghost"]
Accountant = Literal["prv", "rdp"]


@dataclass(frozen=True)
class DPConfig:
    """DP-SGD hyperparameters — fix them before looking at test accuracy."""

    epsilon: float
    delta: float = 1e-5
    epochs: int = 40
    batch_size: int = 512
    max_grad_norm: float = 1.0
    lr: float = 2.0
    momentum: float = 0.0
    accountant: Accountant = "prv"
    grad_sample_mode: GradSampleMode = "ghost"  # exact per-sample norms without per-sample gradients: same model, faster
    ema_decay: float | None = 0.9  # average of the iterates (post-processing: no privacy cost); None or 0 = last iterate
    seed: int = 0  # initial weights of layers Opacus replaces; sampling and noise too only with seed_noise
    seed_noise: bool = False  # reproducible experiments only: whoever knows the seed can regenerate the noise

    def __post_init__(self) -> None:
        if not (self.epsilon > 0 and np.isfinite(self.epsilon)):
            raise ConfigError(f"--epsilon must be a positive number, got {self.epsilon}")
        if not 0 < self.delta < 1:
            raise ConfigError(f"--delta must lie in (0, 1), got {self.delta}")
        if self.epochs < 1 or self.batch_size < 1 or self.max_grad_norm <= 0 or self.lr <= 0:
            raise ConfigError("epochs, batch_size, max_grad_norm and lr must be positive")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")


@dataclass
class DPTrainingResult:
    module: nn.Module
    statement: PrivacyStatement
    train_accuracy: float
    duration_s: float
    seconds_per_step: float


def train_dp(module: nn.Module, x: np.ndarray, y: np.ndarray, config: DPConfig) -> DPTrainingResult:
    """Train ``module`` with DP-SGD to ``config.epsilon`` (ε, δ); returns the plain trained module."""
    from opacus import PrivacyEngine
    from opacus.validators import ModuleValidator

    cfg = config
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    if len(x) != len(y) or len(x) == 0:
        raise InvalidInputError(f"training data has {len(x)} inputs and {len(y)} labels")
    if cfg.delta >= 1.0 / len(x):
        warnings.warn(f"delta={cfg.delta} is not below 1/n = {1 / len(x):.2e}; the guarantee is weak",
                      stacklevel=2)
    torch.manual_seed(cfg.seed)
    module = ModuleValidator.fix(module)
    errors = ModuleValidator.validate(module, strict=False)
    if errors:
        raise ConfigError(f"the model has layers Opacus cannot train privately: {errors}")
    module.train()
    ds = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    # Poisson sampling and noise draw from their own generators (Opacus's secure_mode needs torchcsprng,
    # which does not build for this torch). Unless asked to be reproducible, both are seeded from 63 bits
    # of OS entropy each, so knowing --seed reveals neither the batches nor the noise.
    sample_gen, noise_gen = (torch.Generator().manual_seed(cfg.seed + i if cfg.seed_noise else secrets.randbits(63))
                             for i in (0, 1))
    loader = torch.utils.data.DataLoader(ds, batch_size=min(cfg.batch_size, len(x)), generator=sample_gen)
    opt = torch.optim.SGD(module.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    with warnings.catch_warnings():  # "Secure RNG turned off": handled above, recorded in the statement
        warnings.filterwarnings("ignore", message="Secure RNG turned off")
        engine = PrivacyEngine(accountant=cfg.accountant)
    criterion = nn.CrossEntropyLoss()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        made = engine.make_private_with_epsilon(
            module=module, optimizer=opt, criterion=criterion, data_loader=loader,
            target_epsilon=cfg.epsilon, target_delta=cfg.delta, epochs=cfg.epochs,
            max_grad_norm=cfg.max_grad_norm, poisson_sampling=True, grad_sample_mode=cfg.grad_sample_mode,
            noise_generator=noise_gen,
        )
    if cfg.grad_sample_mode == "ghost":
        dp_model, dp_opt, dp_crit, dp_loader = made  # type: ignore[misc]
    else:
        dp_model, dp_opt, dp_loader = made  # type: ignore[misc]
        dp_crit = criterion
    t0 = time.perf_counter()
    steps = 0
    params = [p for p in module.parameters() if p.requires_grad]
    decay = cfg.ema_decay or 0.0
    ema = [p.detach().clone() for p in params] if decay else None
    with warnings.catch_warnings():  # torch warns about Opacus's backward hooks on every step
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(cfg.epochs):
            for xb, yb in dp_loader:
                if len(xb) == 0:
                    continue
                dp_opt.zero_grad(set_to_none=True)
                loss = dp_crit(dp_model(xb), yb)
                loss.backward()
                dp_opt.step()
                steps += 1
                if ema is not None:
                    # warm-up as in TF's ExponentialMovingAverage(num_updates): early iterates weigh less
                    d = min(decay, (1.0 + steps) / (10.0 + steps))
                    with torch.no_grad():
                        for e, p in zip(ema, params, strict=True):
                            e.mul_(d).add_(p.detach(), alpha=1.0 - d)
    if ema is not None:  # an average of released iterates: post-processing, the same (ε, δ)
        with torch.no_grad():
            for e, p in zip(ema, params, strict=True):
                p.copy_(e)
    duration = time.perf_counter() - t0
    eps = float(engine.get_epsilon(cfg.delta))
    if hasattr(dp_model, "remove_hooks"):
        dp_model.remove_hooks()
    plain = dp_model._module if hasattr(dp_model, "_module") else module
    for p in plain.parameters():  # drop Opacus's per-sample state so the module scripts cleanly
        for attr in ("grad_sample", "_forward_counter", "summed_grad", "_current_grad_sample"):
            if hasattr(p, attr):
                delattr(p, attr)
    plain.eval()
    for p in plain.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        acc = float((plain(torch.from_numpy(x)).argmax(1).numpy() == y).mean())
    from opacus import __version__ as opacus_version

    statement = PrivacyStatement(
        epsilon=eps, delta=cfg.delta, target_epsilon=cfg.epsilon, noise_multiplier=float(dp_opt.noise_multiplier),
        max_grad_norm=cfg.max_grad_norm, sample_rate=1.0 / len(dp_loader), epochs=cfg.epochs, steps=steps,
        dataset_size=len(x), accountant=cfg.accountant, grad_sample_mode=cfg.grad_sample_mode,
        mechanism=f"DP-SGD (Opacus {opacus_version}), Poisson sampling, per-sample clipping",
        extra={"lr": cfg.lr, "momentum": cfg.momentum, "batch_size": cfg.batch_size, "seed": cfg.seed,
               "ema_decay": cfg.ema_decay,
               "noise_rng": ("torch generators seeded from the seed: reproducible, and no privacy against anyone "
                             "who knows the seed" if cfg.seed_noise else "torch generators (mt19937, not a CSPRNG) "
                             "for sampling and noise, each seeded from 63 bits of OS entropy per run")},
    )
    return DPTrainingResult(plain, statement, acc, duration, duration / max(steps, 1))


def save_dp_model(module: nn.Module, out: str | Path, input_shape: tuple[int, ...], n_classes: int,
                  statement: PrivacyStatement, sidecar: dict[str, Any] | None = None) -> dict[str, str]:
    """Write ``out`` (TorchScript), ``out.bastion.json`` (sidecar) and ``out.privacy.json``, each atomically."""
    import io

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buf)
    side = {"format": "torchscript", "input_shape": list(input_shape), "n_classes": n_classes,
            "privacy_statement": privacy_statement_path(out).name, **(sidecar or {})}
    stmt_path = privacy_statement_path(out)
    side_path = out.with_name(out.name + ".bastion.json")
    atomic_write_text(stmt_path, json.dumps(statement.to_dict(), indent=2))
    atomic_write_text(side_path, json.dumps(side, indent=2))
    atomic_write_bytes(out, buf.getvalue())
    return {"model": str(out), "sidecar": str(side_path), "privacy_statement": str(stmt_path)}


def config_dict(cfg: DPConfig) -> dict[str, Any]:
    return asdict(cfg)
