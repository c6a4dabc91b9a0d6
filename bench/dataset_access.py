"""Cost of per-recipient data-set encryption: encrypt once, grant (one HPKE wrap), decrypt, revoke → re-key.

A ``--mb`` MiB file of random bytes is registered in a fresh SQLite store, granted to ``--readers`` principals,
encrypted once; then one more reader is granted (a wrap, no re-encryption), a reader decrypts, one is revoked
(new key, one streamed re-encryption, wraps for the rest). Each step is timed ``--rounds`` times on a fresh
store; the range over rounds is printed. No peer tool: this measures Bastion's own steps.

    .venv/bin/python bench/dataset_access.py --mb 256 --readers 20 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def one_round(mb: int, readers: int) -> dict[str, float]:
    from bastion.data.privacy.recipients import generate_identity
    from bastion.gateway import dataset_keys, datasets
    from bastion.store.db import dispose_engines, upgrade

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["BASTION_HOME"] = str(Path(tmp) / "home")
        os.environ.pop("BASTION_DB_URL", None)
        dispose_engines()
        upgrade()
        work = Path(tmp)
        data = work / "data.bin"
        with open(data, "wb") as fh:
            for _ in range(mb):
                fh.write(os.urandom(1 << 20))
        for i in range(readers + 1):
            generate_identity(work / f"r{i}")
            datasets.add_principal(f"r{i}", work / f"r{i}.pub")
        t = time.perf_counter()
        datasets.register_dataset(data, "bench", classification="confidential")
        out["register_s"] = time.perf_counter() - t
        for i in range(readers):
            datasets.grant("bench", f"r{i}")
        t = time.perf_counter()
        dataset_keys.encrypt_dataset("bench")
        out["encrypt_s"] = time.perf_counter() - t
        t = time.perf_counter()
        datasets.grant("bench", f"r{readers}")
        out["grant_with_wrap_s"] = time.perf_counter() - t
        t = time.perf_counter()
        dataset_keys.decrypt_dataset("bench", work / "r0.key", work / "out")
        out["decrypt_s"] = time.perf_counter() - t
        t = time.perf_counter()
        datasets.revoke("bench", "r1", reason="bench")
        out["revoke_rekey_s"] = time.perf_counter() - t
        dispose_engines()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=256)
    ap.add_argument("--readers", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rounds = [one_round(args.mb, args.readers) for _ in range(args.rounds)]
    print(f"{args.mb} MiB, {args.readers} readers, {args.rounds} rounds (min–max):")
    for k in rounds[0]:
        vals = [r[k] for r in rounds]
        rate = f"  ({args.mb / max(vals):.0f}–{args.mb / min(vals):.0f} MiB/s)" if k != "grant_with_wrap_s" else ""
        print(f"  {k:<20} {min(vals):.3f}–{max(vals):.3f} s{rate}")


if __name__ == "__main__":
    main()
