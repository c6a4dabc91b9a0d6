"""Signed integrity manifests for data sets: file digests plus per-row Merkle trees.

A manifest records every file (sha256, size) under the given paths and, for tabular files
(CSV/TSV, Parquet, ``.npz``), one digest per row arranged in a Merkle tree (RFC 6962 style:
``leaf = sha256(0x00 || row)[:16]``, ``node = sha256(0x01 || left || right)``). The whole
manifest is signed (ECDSA P-256, ``bastion.artifacts.keys``) over its canonical JSON bytes,
which include every Merkle root.

``verify_manifest`` re-hashes the files and reports added/removed/modified files and, for
tabular files, the exact inserted, deleted and modified rows. Rows are aligned by key columns
when given, else by a diff over the row-digest sequences (so one inserted row does not make
every later row "modified").

Examples:
    >>> m = build_manifest(["data/"], key_columns=["id"])                # doctest: +SKIP
    >>> write_manifest(m, "data.manifest.json", key="keys/bastion")      # doctest: +SKIP
    >>> verify_manifest(["data/"], "data.manifest.json", pub="keys/bastion.pub")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import csv
import difflib
import hashlib
import json
import os
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bastion.core.errors import InvalidInputError, SignatureError
from bastion.core.paths import atomic_write_text

MANIFEST_VERSION = 1
LEAF_BYTES = 16
TABULAR_SUFFIXES = {".csv", ".tsv", ".parquet", ".npz"}
_BUF = 8 << 20
_local = threading.local()


# ----------------------------------------------------------------------------- hashing
def hash_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """sha256 and size of a file, read with ``readinto`` into a reusable per-thread buffer."""
    buf: bytearray | None = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = bytearray(_BUF)
    view = memoryview(buf)
    h = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):  # type: ignore[attr-defined]
            h.update(view[:n])
            size += n
    return h.hexdigest(), size


def hash_files(paths: Sequence[Path], workers: int | None = None) -> list[tuple[str, int]]:
    """Hash many files in parallel threads (hashlib releases the GIL on large buffers)."""
    workers = workers or min(len(paths), os.cpu_count() or 1) or 1
    if workers <= 1 or len(paths) <= 1:
        return [hash_file(p) for p in paths]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(hash_file, paths))


def manifest_root(leaves: Sequence[bytes]) -> str:
    """The data manifest's root (hex; the ``merkle_root`` field of a manifest): a Merkle tree over
    already-hashed row leaves, pairing left to right and carrying an odd node up, finalised as
    ``sha256(0x02 || u64 leaf count || top node)``; empty tree = sha256(b'').

    Not the audit log's tree (``bastion.gateway.merkle.merkle_root``: RFC 6962 shape with inclusion
    proofs, raw 32-byte root): the two differ in shape and form, and a manifest's root is fixed by the
    manifests already written."""
    if not leaves:
        return hashlib.sha256(b"").hexdigest()
    level = list(leaves)
    sha = hashlib.sha256
    while len(level) > 1:
        nxt = [sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    # Bind the leaf count and give every root the same 32-byte form (a lone leaf is 16 bytes).
    return hashlib.sha256(b"\x02" + len(leaves).to_bytes(8, "big") + level[0]).hexdigest()


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()[:LEAF_BYTES]


# ----------------------------------------------------------------------------- tables
@dataclass
class TableDigest:
    """Row digests of one table (a CSV file, a Parquet file, or one array of an ``.npz``)."""

    name: str
    columns: list[str]
    row_leaves: list[bytes]
    keys: list[list[str]] | None = None
    key_columns: list[str] = field(default_factory=list)

    @property
    def root(self) -> str:
        return manifest_root(self.row_leaves)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "columns": self.columns,
            "n_rows": len(self.row_leaves),
            "merkle_root": self.root,
            "row_digests": base64.b64encode(b"".join(self.row_leaves)).decode("ascii"),
        }
        if self.keys is not None:
            d["key_columns"] = self.key_columns
            d["keys"] = self.keys
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TableDigest:
        raw = base64.b64decode(d["row_digests"])
        leaves = [raw[i : i + LEAF_BYTES] for i in range(0, len(raw), LEAF_BYTES)]
        return cls(d["name"], list(d["columns"]), leaves, d.get("keys"), list(d.get("key_columns", [])))


def _csv_records(data: bytes) -> list[bytes]:
    """Split CSV bytes into records (RFC 4180: a newline inside quotes does not end a record)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if b'"' in data:
        merged: list[bytes] = []
        pending: list[bytes] = []
        quotes = 0
        for line in lines:
            pending.append(line)
            quotes += line.count(b'"')
            if quotes % 2 == 0:
                merged.append(b"\n".join(pending))
                pending, quotes = [], 0
        if pending:
            merged.append(b"\n".join(pending))
        lines = merged
    return [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]


def csv_table(path: Path, key_columns: Sequence[str] = ()) -> TableDigest:
    """Row digests of a CSV/TSV file: one leaf per raw record (line endings normalised)."""
    data = path.read_bytes()
    records = _csv_records(data)
    delim = "\t" if path.suffix.lower() == ".tsv" else ","
    header = next(csv.reader([records[0].decode("utf-8", "replace")], delimiter=delim)) if records else []
    rows = records[1:]
    leaves = [_leaf(r) for r in rows]
    keys = None
    if key_columns:
        missing = [k for k in key_columns if k not in header]
        if missing:
            raise InvalidInputError(f"{path}: key column(s) {', '.join(missing)} not in header {header}")
        idx = [header.index(k) for k in key_columns]
        keys = []
        for rec in csv.reader((r.decode("utf-8", "replace") for r in rows), delimiter=delim):
            keys.append([rec[i] if i < len(rec) else "" for i in idx])
    return TableDigest("", header, leaves, keys, list(key_columns))


def parquet_table(path: Path, key_columns: Sequence[str] = ()) -> TableDigest:
    """Row digests of a Parquet file: each row as canonical JSON of its values."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises many types for a bad file
        raise InvalidInputError(f"{path}: not a readable Parquet file: {exc}") from None
    columns = [str(c) for c in table.column_names]
    rows = table.to_pylist()
    leaves = [_leaf(json.dumps([r[c] for c in columns], default=str, separators=(",", ":")).encode()) for r in rows]
    keys = None
    if key_columns:
        missing = [k for k in key_columns if k not in columns]
        if missing:
            raise InvalidInputError(f"{path}: key column(s) {', '.join(missing)} not in {columns}")
        keys = [[str(r[k]) for k in key_columns] for r in rows]
    return TableDigest("", columns, leaves, keys, list(key_columns))


def npz_tables(path: Path) -> list[TableDigest]:
    """Row digests of every array in an ``.npz`` (rows = first axis), loaded without pickle."""
    try:
        with np.load(path, allow_pickle=False) as z:
            out = []
            for name in sorted(z.files):
                arr = np.ascontiguousarray(z[name])
                if arr.ndim == 0:
                    arr = arr.reshape(1)
                meta = f"{arr.dtype.str}|{arr.shape[1:]}"
                flat = arr.reshape(len(arr), -1) if len(arr) else arr.reshape(0, 1)
                leaves = [_leaf(row.tobytes()) for row in flat]
                out.append(TableDigest(name, [meta], leaves))
            return out
    except (ValueError, OSError) as exc:
        raise InvalidInputError(f"{path}: not a readable .npz (pickled arrays are refused): {exc}") from None


def table_digests(path: Path, key_columns: Sequence[str] = ()) -> list[TableDigest]:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return [csv_table(path, key_columns)]
    if suffix == ".parquet":
        return [parquet_table(path, key_columns)]
    if suffix == ".npz":
        return npz_tables(path)
    return []


# ----------------------------------------------------------------------------- manifest
def collect_files(paths: Iterable[str | os.PathLike[str]]) -> tuple[Path, list[Path]]:
    """Expand PATHs (files and directories, recursively) and return (base, sorted files)."""
    items = [Path(p) for p in paths]
    if not items:
        raise InvalidInputError("no PATH given")
    files: list[Path] = []
    for p in items:
        if p.is_file():
            files.append(p.resolve())
        elif p.is_dir():
            files.extend(f.resolve() for f in p.rglob("*") if f.is_file() and not f.is_symlink())
        else:
            raise InvalidInputError(f"{p} does not exist")
    roots = [p.resolve() if p.is_dir() else p.resolve().parent for p in items]
    base = Path(os.path.commonpath([str(r) for r in roots]))
    return base, sorted(set(files))


def canonical_bytes(manifest: dict[str, Any]) -> bytes:
    """The bytes that are signed: the manifest without its signature, sorted-key compact JSON."""
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("utf-8")


def build_manifest(
    paths: Iterable[str | os.PathLike[str]],
    key_columns: Sequence[str] = (),
    rows: bool = True,
    workers: int | None = None,
) -> dict[str, Any]:
    """Hash every file under ``paths``; tabular files also get per-row Merkle trees."""
    base, files = collect_files(paths)
    digests = hash_files(files, workers)
    entries = []
    for f, (digest, size) in zip(files, digests, strict=True):
        rel = f.relative_to(base).as_posix()
        entry: dict[str, Any] = {"path": rel, "sha256": digest, "size": size}
        if rows and f.suffix.lower() in TABULAR_SUFFIXES:
            kc = key_columns if f.suffix.lower() != ".npz" else ()
            entry["tables"] = [t.to_dict() for t in table_digests(f, kc)]
        entries.append(entry)
    leaves = [_leaf(f"{e['path']}\0{e['sha256']}\0{e['size']}".encode()) for e in entries]
    return {
        "manifest_version": MANIFEST_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "hash_algorithm": "sha256",
        "row_leaf": f"sha256(0x00||row)[:{LEAF_BYTES}]",
        "key_columns": list(key_columns),
        "files": entries,
        "merkle_root": manifest_root(leaves),
    }


def sign_manifest(manifest: dict[str, Any], key: str | os.PathLike[str]) -> dict[str, Any]:
    from bastion.artifacts.keys import b64, load_private_key, public_key_fingerprint, sign_bytes

    priv = load_private_key(key)
    sig = sign_bytes(priv, canonical_bytes(manifest))
    manifest["signature"] = {
        "algorithm": "ecdsa-p256-sha256",
        "key_id": public_key_fingerprint(priv.public_key()),
        "value": b64(sig),
    }
    return manifest


def write_manifest(manifest: dict[str, Any], out: str | os.PathLike[str], key: str | None = None) -> Path:
    if key:
        sign_manifest(manifest, key)
    atomic_write_text(out, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return Path(out)


def load_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"manifest {p} not found")
    try:
        m = json.loads(p.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"manifest {p} is not JSON: {exc}") from None
    if not isinstance(m, dict) or m.get("manifest_version") != MANIFEST_VERSION or "files" not in m:
        raise InvalidInputError(f"{p} is not a Bastion data manifest (version {MANIFEST_VERSION})")
    return m


def manifest_signer(manifest_path: str | os.PathLike[str], keys: list[Path]) -> Path | None:
    """Of the trusted ``keys``, the one whose fingerprint signed the manifest (else the first, so that a wrong
    key is reported as ``invalid``); ``None`` without keys."""
    from bastion.artifacts.keys import public_key_fingerprint

    if not keys:
        return None
    try:
        signed_by = (json.loads(Path(manifest_path).read_text(encoding="utf-8")).get("signature") or {}).get("key_id")
    except (OSError, ValueError, AttributeError):
        return keys[0]
    return next((k for k in keys if public_key_fingerprint(k) == signed_by), keys[0])


def check_signature(manifest: dict[str, Any], pub: str | os.PathLike[str] | None) -> dict[str, Any]:
    """Signature status: ``valid``, ``invalid``, ``unsigned`` or ``not_checked`` (no public key)."""
    from bastion.artifacts.keys import public_key_fingerprint, unb64, verify_bytes

    sig = manifest.get("signature")
    if pub is None:
        return {"status": "not_checked" if sig else "unsigned", "key_id": (sig or {}).get("key_id")}
    if not sig:
        return {"status": "unsigned", "key_id": None}
    key_id = public_key_fingerprint(pub)
    try:
        verify_bytes(pub, canonical_bytes(manifest), unb64(str(sig.get("value", ""))))
    except SignatureError as exc:
        return {"status": "invalid", "key_id": key_id, "reason": str(exc)}
    return {"status": "valid", "key_id": key_id}


# ----------------------------------------------------------------------------- row diff
def diff_rows(old: TableDigest, new: TableDigest) -> dict[str, list[dict[str, Any]]]:
    """Inserted, deleted and modified rows between two digests of the same table."""
    if old.keys is not None and new.keys is not None:
        return _diff_by_key(old, new)
    return _diff_by_sequence(old, new)


def _key_dict(t: TableDigest, i: int) -> dict[str, str]:
    assert t.keys is not None
    return dict(zip(t.key_columns, t.keys[i], strict=False))


def _diff_by_key(old: TableDigest, new: TableDigest) -> dict[str, list[dict[str, Any]]]:
    assert old.keys is not None and new.keys is not None
    old_at = {tuple(k): i for i, k in enumerate(old.keys)}
    new_at = {tuple(k): i for i, k in enumerate(new.keys)}
    inserted = [{"row": j, "key": _key_dict(new, j)} for k, j in new_at.items() if k not in old_at]
    deleted = [{"old_row": i, "key": _key_dict(old, i)} for k, i in old_at.items() if k not in new_at]
    modified = [
        {"row": new_at[k], "old_row": i, "key": _key_dict(new, new_at[k])}
        for k, i in old_at.items()
        if k in new_at and old.row_leaves[i] != new.row_leaves[new_at[k]]
    ]
    return {
        "inserted": sorted(inserted, key=lambda r: r["row"]),
        "deleted": sorted(deleted, key=lambda r: r["old_row"]),
        "modified": sorted(modified, key=lambda r: r["row"]),
    }


def _diff_by_sequence(old: TableDigest, new: TableDigest) -> dict[str, list[dict[str, Any]]]:
    a, b = old.row_leaves, new.row_leaves
    # Strip the common prefix and suffix first (cheap), then diff only the middle.
    lo = 0
    while lo < len(a) and lo < len(b) and a[lo] == b[lo]:
        lo += 1
    hi = 0
    while hi < len(a) - lo and hi < len(b) - lo and a[-1 - hi] == b[-1 - hi]:
        hi += 1
    mid_a, mid_b = a[lo : len(a) - hi], b[lo : len(b) - hi]
    inserted: list[dict[str, Any]] = []
    deleted: list[dict[str, Any]] = []
    modified: list[dict[str, Any]] = []
    matcher = difflib.SequenceMatcher(None, mid_a, mid_b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for k in range(paired):
            modified.append({"row": lo + j1 + k, "old_row": lo + i1 + k})
        for i in range(i1 + paired, i2):
            deleted.append({"old_row": lo + i})
        for j in range(j1 + paired, j2):
            inserted.append({"row": lo + j})
    return {"inserted": inserted, "deleted": deleted, "modified": modified}


# ----------------------------------------------------------------------------- verify
def verify_manifest(
    paths: Iterable[str | os.PathLike[str]],
    manifest: dict[str, Any] | str | os.PathLike[str],
    pub: str | os.PathLike[str] | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Compare the files under ``paths`` with a manifest; ``ok`` is False on any difference.

    Row indices are 0-based data rows (the CSV header is not a row); ``old_row`` indexes the
    manifest's version, ``row`` the current file.
    """
    m = manifest if isinstance(manifest, dict) else load_manifest(manifest)
    signature = check_signature(m, pub)
    key_columns = list(m.get("key_columns", []))
    base, files = collect_files(paths)
    current = {f.relative_to(base).as_posix(): f for f in files}
    recorded = {e["path"]: e for e in m["files"]}
    added = sorted(set(current) - set(recorded))
    removed = sorted(set(recorded) - set(current))
    common = sorted(set(current) & set(recorded))
    digests = dict(zip(common, hash_files([current[p] for p in common], workers), strict=True))
    modified: list[dict[str, Any]] = []
    for rel in common:
        digest, size = digests[rel]
        entry = recorded[rel]
        if digest == entry["sha256"] and size == entry["size"]:
            continue
        change: dict[str, Any] = {"path": rel, "old_sha256": entry["sha256"], "sha256": digest, "size": size}
        if "tables" in entry:
            f = current[rel]
            kc = key_columns if f.suffix.lower() != ".npz" else ()
            try:
                now = {t.name: t for t in table_digests(f, kc)}
            except InvalidInputError as exc:
                change["error"] = str(exc)
                now = {}
            tables: list[dict[str, Any]] = []
            for td in entry["tables"]:
                old_t = TableDigest.from_dict(td)
                new_t = now.get(old_t.name)
                if new_t is None:
                    tables.append({"name": old_t.name, "status": "missing", "columns_changed": True})
                    continue
                rows = diff_rows(old_t, new_t)
                tables.append({
                    "name": old_t.name,
                    "columns_changed": old_t.columns != new_t.columns,
                    "n_rows_old": len(old_t.row_leaves),
                    "n_rows": len(new_t.row_leaves),
                    **rows,
                })
            change["tables"] = tables
            if len(tables) == 1:
                change.update({k: tables[0].get(k, []) for k in ("inserted", "deleted", "modified")})
        modified.append(change)
    ok = not (added or removed or modified) and signature["status"] in ("valid", "not_checked", "unsigned")
    if pub is not None and signature["status"] != "valid":
        ok = False
    return {
        "ok": ok,
        "signature": signature,
        "merkle_root": m.get("merkle_root"),
        "files_checked": len(common),
        "added": added,
        "removed": removed,
        "modified": modified,
    }


def manifest_summary(m: dict[str, Any]) -> dict[str, Any]:
    tables = [t for e in m["files"] for t in e.get("tables", [])]
    return {
        "files": len(m["files"]),
        "bytes": sum(int(e["size"]) for e in m["files"]),
        "tables": len(tables),
        "rows": sum(int(t["n_rows"]) for t in tables),
        "merkle_root": m["merkle_root"],
        "signed": "signature" in m,
        "key_id": m.get("signature", {}).get("key_id"),
    }
