"""Differential-privacy accounting for federated runs.

- **central** (server-side fixed clipping, Flower's ``DifferentialPrivacyServerSideFixedClipping``):
  each client's update is clipped to ``C`` and the server adds N(0, (σC)²) to the sum — a Gaussian
  mechanism per round with client-level (add/remove one client) adjacency. With every client in
  every round (sampling rate 1), ε after R rounds comes from Opacus's RDP accountant; σ is the
  smallest that meets the target ε at δ.
- **local** (Flower's ``LocalDpMod``): each client clips and noises its own update with the
  classical Gaussian mechanism at (ε_r, δ_r) per round; over R rounds basic composition gives
  ε = R·ε_r, δ = R·δ_r, so the target is split evenly across rounds.
"""

from __future__ import annotations

from typing import Any

from bastion.defenses.federated.config import FederatedConfig


def central_noise_multiplier(cfg: FederatedConfig) -> float:
    from opacus.accountants.utils import get_noise_multiplier

    assert cfg.epsilon is not None
    return float(get_noise_multiplier(target_epsilon=cfg.epsilon, target_delta=cfg.delta, sample_rate=1.0,
                                      steps=cfg.rounds, accountant="rdp"))


def central_epsilon(noise_multiplier: float, rounds: int, delta: float) -> float:
    from opacus.accountants import RDPAccountant

    acc = RDPAccountant()
    acc.history = [(noise_multiplier, 1.0, rounds)]
    return float(acc.get_epsilon(delta))


def local_round_budget(cfg: FederatedConfig) -> tuple[float, float]:
    assert cfg.epsilon is not None
    return cfg.epsilon / cfg.rounds, cfg.delta / cfg.rounds


def privacy_statement(cfg: FederatedConfig) -> dict[str, Any] | None:
    """What the run guarantees, in numbers (None without DP)."""
    if cfg.dp == "none":
        return None
    if cfg.dp == "central":
        sigma = central_noise_multiplier(cfg)
        return {
            "mode": "central", "unit": "client (add/remove one client)", "epsilon": central_epsilon(sigma, cfg.rounds, cfg.delta),
            "target_epsilon": cfg.epsilon, "delta": cfg.delta, "noise_multiplier": sigma,
            "clipping_norm": cfg.clipping_norm, "rounds": cfg.rounds, "sampling_rate": 1.0, "accountant": "opacus-rdp",
        }
    eps_r, delta_r = local_round_budget(cfg)
    return {
        "mode": "local", "unit": "one client's update per round", "epsilon": eps_r * cfg.rounds, "delta": delta_r * cfg.rounds,
        "epsilon_per_round": eps_r, "delta_per_round": delta_r, "clipping_norm": cfg.clipping_norm,
        "rounds": cfg.rounds, "composition": "basic", "mechanism": "Gaussian (flwr LocalDpMod)",
    }
