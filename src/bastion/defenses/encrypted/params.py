"""CKKS parameters chosen for a model's multiplicative depth and the precision it needs.

Each linear layer (plaintext weights × ciphertext) and each square activation consumes one
level. With a 40-bit scale, CKKS keeps about 40 − log2(value range) bits of precision per level;
the special primes at both ends are 60 bits. The polynomial degree is the smallest that keeps
the total modulus within the 128-bit-security bound (HomomorphicEncryption.org standard).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from bastion.core.errors import ConfigError

# Max total coefficient-modulus bits for 128-bit security (HE standard, classical).
_MAX_BITS = {8192: 218, 16384: 438, 32768: 881}


@dataclass(frozen=True)
class CKKSParams:
    """Parameters of a CKKS context."""

    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    scale_bits: int
    depth: int
    security_bits: int = 128

    @property
    def slots(self) -> int:
        """Samples packed into one ciphertext (one slot per sample)."""
        return self.poly_modulus_degree // 2

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["coeff_mod_bit_sizes"] = list(self.coeff_mod_bit_sizes)
        d["slots"] = self.slots
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CKKSParams:
        return cls(
            poly_modulus_degree=int(d["poly_modulus_degree"]),
            coeff_mod_bit_sizes=tuple(int(b) for b in d["coeff_mod_bit_sizes"]),
            scale_bits=int(d["scale_bits"]),
            depth=int(d["depth"]),
            security_bits=int(d.get("security_bits", 128)),
        )


def choose_params(depth: int, scale_bits: int = 40, outer_bits: int = 60) -> CKKSParams:
    """Smallest 128-bit-secure CKKS parameters that evaluate ``depth`` multiplicative levels.

    Examples:
        >>> choose_params(1).poly_modulus_degree
        8192
        >>> choose_params(3).coeff_mod_bit_sizes
        (60, 40, 40, 40, 60)
    """
    if depth < 1:
        raise ConfigError(f"model depth must be at least 1, got {depth}")
    bits = (outer_bits, *([scale_bits] * depth), outer_bits)
    total = sum(bits)
    for degree, max_bits in sorted(_MAX_BITS.items()):
        if total <= max_bits:
            return CKKSParams(degree, bits, scale_bits, depth)
    raise ConfigError(
        f"a depth-{depth} model needs {total} modulus bits, more than CKKS allows at 128-bit security "
        f"({max(_MAX_BITS.values())}); use fewer layers or square activations"
    )
