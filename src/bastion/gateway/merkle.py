"""Merkle trees over audit record hashes, as in Certificate Transparency (RFC 6962 / RFC 9162 §2.1).

Leaves and interior nodes are domain-separated (``0x00`` / ``0x01`` prefixes) so a leaf can never
be passed off as a node. ``inclusion_proof(i, leaves)`` gives the audit path; ``root_from_proof``
recomputes the root from one leaf and its path.

Examples:
    >>> leaves = [bytes([i]) * 32 for i in range(5)]
    >>> root = merkle_root(leaves)
    >>> proof = inclusion_proof(3, leaves)
    >>> root_from_proof(3, len(leaves), leaves[3], proof) == root
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n ≥ 2)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


class MerkleTree:
    """A tree over ``leaves`` (raw 32-byte record hashes) with memoised subtree hashes."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        if not leaves:
            raise ValueError("a Merkle tree needs at least one leaf")
        self._leaves = [leaf_hash(x) for x in leaves]
        self._memo: dict[tuple[int, int], bytes] = {}

    def _mth(self, lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return self._leaves[lo]
        key = (lo, hi)
        got = self._memo.get(key)
        if got is None:
            k = _split(hi - lo)
            got = node_hash(self._mth(lo, lo + k), self._mth(lo + k, hi))
            self._memo[key] = got
        return got

    @property
    def root(self) -> bytes:
        return self._mth(0, len(self._leaves))

    def proof(self, index: int) -> list[bytes]:
        """The audit path of leaf ``index``, bottom-up."""
        if not 0 <= index < len(self._leaves):
            raise IndexError(f"leaf {index} is outside a tree of {len(self._leaves)}")
        path: list[bytes] = []
        lo, hi = 0, len(self._leaves)
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                path.append(self._mth(lo + k, hi))
                hi = lo + k
            else:
                path.append(self._mth(lo, lo + k))
                lo = lo + k
        return path[::-1]


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The RFC 6962 root (raw 32 bytes) of the audit records ``leaves``. Data manifests use a different
    tree (``bastion.data.integrity.manifest_root``)."""
    return MerkleTree(leaves).root


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    return MerkleTree(leaves).proof(index)


def root_from_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """Recompute the root of a ``size``-leaf tree from leaf ``index`` and its audit path."""
    if size == 1:
        if proof:
            raise ValueError("proof too long")
        return leaf_hash(leaf)
    if not proof:
        raise ValueError("proof too short")
    k = _split(size)
    if index < k:
        return node_hash(root_from_proof(index, k, leaf, proof[:-1]), proof[-1])
    return node_hash(proof[-1], root_from_proof(index - k, size - k, leaf, proof[:-1]))
