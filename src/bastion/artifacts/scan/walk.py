"""Dispatch by detected format, archives (zip/tar) with bomb and traversal limits, and directories."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import stat
import tarfile
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import IO

from bastion.artifacts.scan import scanners as sc
from bastion.artifacts.scan.formats import classify_zip, looks_like_text, sniff
from bastion.artifacts.scan.policy import Policy
from bastion.artifacts.scan.report import FileScan, ScanFinding, ScanReport
from bastion.core.paths import sha256_file
from bastion.core.severity import Severity


class _LimitedReader(io.RawIOBase):
    """Decompressed stream with a byte ceiling (decompression bombs)."""

    def __init__(self, inner: IO[bytes], limit: int) -> None:
        self.inner, self.limit, self.count = inner, limit, 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            super().close()

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.inner.read(len(b))
        self.count += len(data)
        if self.count > self.limit:
            raise ValueError(f"decompressed data exceeds {self.limit} bytes")
        b[: len(data)] = data
        return len(data)


def _decompressor(kind: str, fh: IO[bytes]) -> IO[bytes]:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=fh)  # type: ignore[return-value]
    if kind == "bz2":
        return bz2.BZ2File(fh)  # type: ignore[return-value]
    if kind == "xz":
        return lzma.LZMAFile(fh)  # type: ignore[return-value]
    from joblib.compressor import BinaryZlibFile

    return BinaryZlibFile(fh)  # type: ignore[no-any-return]


def scan_stream(fs: FileScan, fh: IO[bytes], size: int, ctx: sc._Ctx, member: str, depth: int,
                path: Path | None = None) -> None:
    """Scan one file-like object of known size; sets ``fs.format`` (the outermost format wins)."""
    head = fh.read(512)
    fh.seek(0)
    kind = sniff(head, size)
    outer = fs.format == "?"

    def set_format(name: str) -> None:
        if outer:
            fs.format = name

    base = PurePosixPath(member).name if member else (path.name if path is not None else "")
    if base in ("saved_model.pb", "keras_metadata.pb") and kind != "empty":
        from bastion.artifacts.scan import tensorflow as tfs

        set_format("tf-saved-model" if base == "saved_model.pb" else "keras-metadata")
        scan = tfs.scan_saved_model if base == "saved_model.pb" else tfs.scan_keras_metadata
        scan(fs, fh.read(sc.MAX_MEMBER_READ), member, ctx.policy)
    elif kind in ("pickle", "torch-legacy"):
        set_format("torch-legacy" if kind == "torch-legacy" else ("joblib" if sc._is_joblib(fh) else "pickle"))
        sc._scan_pickle(fs, fh, ctx, member, legacy_torch=kind == "torch-legacy")
    elif kind == "pickle0":
        _candidate(sc._scan_pickle0(fs, fh, ctx, member), "pickle", fs, head, outer, set_format)
    elif kind == "npy":
        set_format("numpy-npy")
        sc._scan_npy(fs, fh, ctx, member)
    elif kind == "safetensors":
        set_format("safetensors")
        sc._scan_safetensors(fs, fh, size, member)
    elif kind == "zip":
        _scan_zip(fs, fh, ctx, member, depth, set_format)
    elif kind == "7z":
        set_format("7z")
        _scan_7z(fs, fh, ctx, member, depth)
    elif kind == "tar":
        set_format("tar")
        _scan_tar(fs, fh, ctx, member, depth)
    elif kind in ("gzip", "bz2", "xz", "zlib"):
        inner = _LimitedReader(_decompressor(kind, fh), sc.MAX_DECOMPRESSED)
        buf: io.BufferedReader = io.BufferedReader(inner, 1 << 16)  # type: ignore[arg-type]
        try:
            _scan_compressed(fs, buf, kind, ctx, member, depth, set_format)
        finally:
            buf.close()
    elif kind == "hdf5":
        set_format("hdf5")
        if path is not None:
            sc._scan_hdf5(fs, path, ctx, member)
        else:
            import tempfile

            with tempfile.NamedTemporaryFile(suffix=".h5") as tmp:
                tmp.write(fh.read())
                tmp.flush()
                sc._scan_hdf5(fs, Path(tmp.name), ctx, member)
    elif kind == "onnx-candidate" and size <= 4 << 30:
        model_dir = path.parent if path is not None else ctx.root_dir
        _candidate(sc._scan_onnx(fs, fh.read(), model_dir, member), "onnx", fs, head, outer, set_format)
    elif kind == "lz4":
        set_format("lz4")
        fs.error = "lz4-compressed file: decompress it first (lz4 is not supported by the scanner)"
    elif kind == "empty":
        set_format("empty")
        if outer:
            fs.scanned, fs.reason = False, "empty file (0 bytes): nothing to scan"
    else:
        _not_a_model(fs, head, outer, set_format)


def _candidate(is_it: bool, name: str, fs: FileScan, head: bytes, outer: bool, set_format) -> None:  # type: ignore[no-untyped-def]
    """A format guessed from the first bytes: ``name`` when its scanner read it as one, else not a model."""
    if is_it:
        set_format(name)
    else:
        _not_a_model(fs, head, outer, set_format)


def _not_a_model(fs: FileScan, head: bytes, outer: bool, set_format) -> None:  # type: ignore[no-untyped-def]
    """Text or an unknown binary: not scanned, with the reason (inside archives it is just not a model)."""
    text = looks_like_text(head)
    set_format("text" if text else "unknown")
    if outer:
        fs.scanned = False
        fs.reason = ("text, not a model format" if text
                     else f"unknown binary format (starts with {head[:8].hex()}); not a model format Bastion can scan")


def _scan_compressed(fs: FileScan, buf: io.BufferedReader, kind: str, ctx: sc._Ctx, member: str, depth: int,
                     set_format) -> None:  # type: ignore[no-untyped-def]
    ihead = buf.peek(512)[:512]
    ikind = sniff(ihead, sc.MAX_DECOMPRESSED)
    if ikind in ("pickle", "pickle0", "torch-legacy"):
        set_format("joblib" if b"joblib" in buf.peek(4096) else f"pickle+{kind}")
        # pickletools needs tell(); wrap in a seekable-enough reader
        sc._scan_pickle(fs, _TellReader(buf), ctx,  # type: ignore[arg-type]
                        f"{member}>{kind}" if member else kind)
    elif ikind == "tar":
        set_format(f"tar+{kind}")
        _scan_tar(fs, io.BytesIO(buf.read(sc.MAX_MEMBER_READ)), ctx, member, depth)
    else:
        set_format(f"{kind}-unknown")
        fs.scanned = False


class _TellReader(io.RawIOBase):
    """A forward-only reader with ``tell``/relative ``seek`` (what the pickle walk needs)."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner, self.pos = inner, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:  # type: ignore[override]
        data = self.inner.read(n)
        self.pos += len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:  # type: ignore[override]
        data = self.inner.readline(-1 if size is None else size)
        self.pos += len(data)
        return data

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        target = offset if whence == 0 else self.pos + offset if whence == 1 else None
        if target is None or target < self.pos:
            if whence == 2:
                return self.pos
            raise OSError("backward seek on a compressed stream")
        while self.pos < target:
            chunk = self.read(min(target - self.pos, 1 << 20))
            if not chunk:
                break
        return self.pos


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename.replace("\\", "/")
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or (len(name) > 1 and name[1] == ":"):
        return f"member path {info.filename!r} escapes the extraction directory"
    return None


def _scan_zip(fs: FileScan, fh: IO[bytes], ctx: sc._Ctx, member: str, depth: int, set_format) -> None:  # type: ignore[no-untyped-def]
    try:
        zf = zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        set_format("zip")
        fs.findings.append(ScanFinding(Severity.MEDIUM, "ARCHIVE_MALFORMED", f"zip does not open: {exc}", member))
        return
    with zf:
        infos = zf.infolist()
        kind = classify_zip(zf)
        set_format(kind)
        total = sum(i.file_size for i in infos)
        packed = sum(i.compress_size for i in infos) or 1
        prefix = f"{member}>" if member else ""
        if len(infos) > sc.MAX_MEMBERS or total > sc.MAX_TOTAL_UNCOMPRESSED or (
                total > (64 << 20) and total / packed > sc.MAX_RATIO):
            fs.findings.append(ScanFinding(
                Severity.HIGH, "ARCHIVE_BOMB",
                f"zip expands to {total} bytes from {packed} ({len(infos)} members): over the archive limits",
                member))
            return
        for info in infos:
            problem = _member_problem(info)
            if problem:
                fs.findings.append(ScanFinding(Severity.HIGH, "ARCHIVE_PATH_TRAVERSAL", problem,
                                               prefix + info.filename))
            if stat.S_ISLNK(info.external_attr >> 16):
                fs.findings.append(ScanFinding(Severity.MEDIUM, "ARCHIVE_SYMLINK",
                                               f"zip member {info.filename!r} is a symbolic link",
                                               prefix + info.filename))
        for info in infos:
            name = info.filename
            if info.is_dir():
                continue
            if kind in ("torch-zip", "torchscript"):
                if not name.endswith("pkl"):
                    continue  # tensor storages and TorchScript code are never unpickled
            elif kind == "keras-v3":
                if name == "config.json":
                    import json

                    try:
                        sc._keras_config_findings(fs, json.loads(zf.read(info)), ctx.policy, prefix + name)
                    except ValueError:
                        fs.findings.append(ScanFinding(Severity.MEDIUM, "KERAS_MALFORMED_CONFIG",
                                                       "config.json is not JSON", prefix + name))
                    fs.members_scanned += 1
                    continue
            elif kind == "torch-export" and "/data/weights/" in name and not name.endswith("pkl"):
                continue
            if depth >= sc.MAX_ARCHIVE_DEPTH:
                fs.findings.append(ScanFinding(Severity.MEDIUM, "ARCHIVE_TOO_DEEP",
                                               f"archives nested deeper than {sc.MAX_ARCHIVE_DEPTH}", prefix + name))
                continue
            if info.file_size > sc.MAX_MEMBER_READ:
                fs.findings.append(ScanFinding(Severity.MEDIUM, "ARCHIVE_MEMBER_TOO_LARGE",
                                               f"member of {info.file_size} bytes not scanned", prefix + name))
                continue
            data = _read_member(fs, fh, zf, info, prefix + name)
            if data is not None:
                _scan_member(fs, data, info, ctx, prefix + name, depth)


_FLAG_BITS = {0x1: "encrypted", 0x20: "compressed patched data", 0x40: "strong encryption"}


def _read_member(fs: FileScan, fh: IO[bytes], zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes | None:
    """The member's bytes as ``torch.load``'s reader sees them: by the central directory, whatever the
    local header, CRC or flag bits say. Every such inconsistency is a finding of its own."""
    try:
        with zf.open(info) as mfh:
            return mfh.read(sc.MAX_MEMBER_READ + 1)[: sc.MAX_MEMBER_READ]
    except (RuntimeError, NotImplementedError, zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        problem = str(exc)
    import zlib

    fh.seek(info.header_offset)
    local = fh.read(30)
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        fs.findings.append(ScanFinding(Severity.MEDIUM, "ARCHIVE_MEMBER_UNREADABLE",
                                       f"no local header for {info.filename!r} ({problem})", where))
        return None
    n_name, n_extra = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
    local_name = fh.read(n_name)
    fh.seek(n_extra, io.SEEK_CUR)
    raw = fh.read(info.compress_size)
    try:
        if info.compress_type == zipfile.ZIP_STORED:
            data = raw
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            d = zlib.decompressobj(-15)
            data = d.decompress(raw, sc.MAX_MEMBER_READ)
        elif info.compress_type == zipfile.ZIP_BZIP2:
            data = bz2.decompress(raw)[: sc.MAX_MEMBER_READ]
        elif info.compress_type == zipfile.ZIP_LZMA:
            data = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=None).decompress(raw[4:], sc.MAX_MEMBER_READ)  # type: ignore[arg-type]
        else:
            raise ValueError(f"compression method {info.compress_type}")
    except (zlib.error, OSError, ValueError, lzma.LZMAError) as exc:
        fs.findings.append(ScanFinding(Severity.MEDIUM, "ARCHIVE_MEMBER_UNREADABLE",
                                       f"member {info.filename!r} could not be read ({problem}; {exc})", where))
        return None
    if local_name != info.filename.encode("utf-8") and local_name != info.filename.encode("cp437", "replace"):
        fs.findings.append(ScanFinding(
            Severity.HIGH, "ZIP_NAME_MISMATCH",
            f"central directory names {info.filename!r}, the local header {local_name[:80]!r}: readers disagree on "
            "which member this is (torch.load uses the central directory; that content was scanned)", where))
    if zlib.crc32(data) != info.CRC:
        fs.findings.append(ScanFinding(
            Severity.HIGH, "ZIP_CRC_MISMATCH",
            f"member {info.filename!r} does not match its CRC-32: changed after archiving; Python's zipfile refuses "
            "it, torch.load reads it (its content was scanned)", where))
    return data


def _scan_member(fs: FileScan, data: bytes, info: zipfile.ZipInfo, ctx: sc._Ctx, where: str, depth: int) -> None:
    flags = [b for b in _FLAG_BITS if info.flag_bits & b]
    if not flags:
        scan_stream(fs, io.BytesIO(data), len(data), ctx, where, depth + 1)
        return
    # a member flagged encrypted/patched: if its bytes are a readable format anyway, the flag is a lie
    # told to scanners (Python's zipfile refuses such members); if not, it is really encrypted
    from bastion.artifacts.scan.formats import sniff as _sniff

    what = ", ".join(f"{_FLAG_BITS[b]} (0x{b:x})" for b in flags)
    if _sniff(data[:512], len(data)) in ("unknown", "empty"):
        fs.findings.append(ScanFinding(Severity.MEDIUM, "ARCHIVE_MEMBER_UNREADABLE",
                                       f"member {info.filename!r} is {what}: its content could not be read", where))
        return
    fs.findings.append(ScanFinding(
        Severity.HIGH, "ZIP_FLAG_MISMATCH",
        f"member {info.filename!r} is marked {what} but holds a readable model format: a flag that makes some "
        "readers skip it (its content was scanned)", where))
    scan_stream(fs, io.BytesIO(data), len(data), ctx, where, depth + 1)


def _scan_7z(fs: FileScan, fh: IO[bytes], ctx: sc._Ctx, member: str, depth: int) -> None:
    try:
        import py7zr
        from py7zr.io import BytesIOFactory
    except ImportError:
        fs.error = "py7zr is not installed; install bastion-ml[supplychain] to scan .7z archives"
        return
    prefix = f"{member}>" if member else ""
    try:
        with py7zr.SevenZipFile(fh, "r") as z:
            if z.needs_password():
                fs.findings.append(ScanFinding(Severity.MEDIUM, "ARCHIVE_MEMBER_UNREADABLE",
                                               "7z archive is encrypted: its content could not be read", member))
                return
            infos = z.list()
            total = sum(i.uncompressed or 0 for i in infos)
            if len(infos) > sc.MAX_MEMBERS or total > sc.MAX_TOTAL_UNCOMPRESSED:
                fs.findings.append(ScanFinding(Severity.HIGH, "ARCHIVE_BOMB",
                                               f"7z expands to {total} bytes ({len(infos)} members)", member))
                return
            for i in infos:
                p = PurePosixPath(i.filename.replace("\\", "/"))
                if p.is_absolute() or ".." in p.parts:
                    fs.findings.append(ScanFinding(Severity.HIGH, "ARCHIVE_PATH_TRAVERSAL",
                                                   f"member path {i.filename!r} escapes the extraction directory",
                                                   prefix + i.filename))
            if depth >= sc.MAX_ARCHIVE_DEPTH:
                fs.findings.append(ScanFinding(Severity.MEDIUM, "ARCHIVE_TOO_DEEP",
                                               f"archives nested deeper than {sc.MAX_ARCHIVE_DEPTH}", member))
                return
            factory = BytesIOFactory(sc.MAX_MEMBER_READ)
            z.extract(factory=factory)
            for name, product in sorted(factory.products.items()):
                data = product.read() if hasattr(product, "read") else b""
                product_bytes = data if data else bytes(getattr(product, "_buffer", b"") or b"")
                scan_stream(fs, io.BytesIO(product_bytes), len(product_bytes), ctx, prefix + name, depth + 1)
    except (py7zr.exceptions.ArchiveError, OSError, ValueError, EOFError, KeyError) as exc:
        fs.findings.append(ScanFinding(Severity.MEDIUM, "ARCHIVE_MALFORMED", f"7z does not open: {exc}", member))


def _scan_tar(fs: FileScan, fh: IO[bytes], ctx: sc._Ctx, member: str, depth: int) -> None:
    prefix = f"{member}>" if member else ""
    try:
        tf = tarfile.open(fileobj=fh, mode="r:")
    except (tarfile.TarError, OSError) as exc:
        fs.findings.append(ScanFinding(Severity.MEDIUM, "ARCHIVE_MALFORMED", f"tar does not open: {exc}", member))
        return
    with tf:
        members = tf.getmembers()
        is_torch = {m.name for m in members} >= {"pickle", "storages", "tensors"}
        if is_torch:
            fs.format = "torch-legacy-tar"
        if len(members) > sc.MAX_MEMBERS or sum(m.size for m in members) > sc.MAX_TOTAL_UNCOMPRESSED:
            fs.findings.append(ScanFinding(Severity.HIGH, "ARCHIVE_BOMB", "tar is over the archive limits", member))
            return
        for m in members:
            p = PurePosixPath(m.name)
            if p.is_absolute() or ".." in p.parts:
                fs.findings.append(ScanFinding(Severity.HIGH, "ARCHIVE_PATH_TRAVERSAL",
                                               f"member path {m.name!r} escapes the extraction directory",
                                               prefix + m.name))
            if m.issym() or m.islnk():
                fs.findings.append(ScanFinding(Severity.MEDIUM, "ARCHIVE_SYMLINK",
                                               f"tar member {m.name!r} is a link to {m.linkname!r}", prefix + m.name))
            if m.isdev():
                fs.findings.append(ScanFinding(Severity.HIGH, "ARCHIVE_DEVICE_FILE",
                                               f"tar member {m.name!r} is a device file", prefix + m.name))
        for m in members:
            if not m.isfile() or m.size > sc.MAX_MEMBER_READ:
                continue
            if is_torch and m.name == "storages":
                # legacy storages: a pickle of storage descriptors followed by raw bytes
                ext = tf.extractfile(m)
                if ext is not None:
                    sc._scan_pickle(fs, io.BytesIO(ext.read()), ctx, prefix + m.name, legacy_torch=True)
                continue
            ext = tf.extractfile(m)
            if ext is None:
                continue
            data = ext.read()
            if depth >= sc.MAX_ARCHIVE_DEPTH:
                continue
            scan_stream(fs, io.BytesIO(data), len(data), ctx, prefix + m.name, depth + 1)


def scan_file(path: Path, policy: Policy, root_dir: Path | None = None, digest: bool = False,
              display: str | None = None) -> FileScan:
    """Scan one regular file; scanner errors are recorded in the result, never raised."""
    fs = FileScan(path=display or str(path), format="?")
    try:
        fs.size = path.stat().st_size
        if digest:
            fs.sha256 = sha256_file(path)
        with open(path, "rb") as fh:
            scan_stream(fs, fh, fs.size, sc._Ctx(policy, root_dir or path.parent), "", 0, path=path)
    except Exception as exc:  # scanner errors are values in the report, never a crashed scan
        fs.error = f"{type(exc).__name__}: {exc}"
        if fs.format == "?":
            fs.format = "unknown"
    if fs.format in ("unknown", "text", "empty"):
        fs.scanned = False
    return fs


def _inert_in_directory(fs: FileScan, fp: Path) -> bool:
    """Files that sit beside a model without being one: text (README, JSON, YAML), SavedModel tensor
    data and fingerprints. They were read (text) or are never deserialised as code (tensor data)."""
    if fs.format == "text":
        return True
    saved_model_dir = next((d for d in fp.parents if (d / "saved_model.pb").is_file()), None)
    if saved_model_dir is not None and (fp.name == "fingerprint.pb" or "variables" in fp.relative_to(saved_model_dir).parts):
        fs.format, fs.reason = "tf-variables", "SavedModel tensor data (never deserialised as code)"
        return True
    return False


def scan_paths(paths: list[Path], policy: Policy, digest: bool = False) -> ScanReport:
    """Scan files and directories (recursively, symlinks not followed)."""
    t0 = time.perf_counter()
    report = ScanReport(allowlist_version=policy.version)
    for p in paths:
        if p.is_symlink() and p.is_dir():
            report.files.append(FileScan(str(p), "symlink", scanned=False,
                                         error="symbolic link to a directory: not followed"))
        elif p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for fname in sorted(files):
                    fp = Path(root) / fname
                    if fp.is_symlink():
                        target = fp.resolve()
                        inside = str(target).startswith(str(p.resolve()) + os.sep)
                        fs = FileScan(str(fp), "symlink", scanned=False)
                        if not inside:
                            fs.findings.append(ScanFinding(Severity.MEDIUM, "SYMLINK_ESCAPE",
                                                           f"symbolic link points outside {p}: {target}"))
                        report.files.append(fs)
                        continue
                    fs = scan_file(fp, policy, root_dir=p, digest=digest)
                    if not fs.scanned and not fs.error and _inert_in_directory(fs, fp):
                        fs.blocking = False
                    report.files.append(fs)
        elif p.is_file():
            report.files.append(scan_file(p, policy, digest=digest))
        else:
            report.files.append(FileScan(str(p), "missing", scanned=False, error=f"{p} does not exist"))
    report.duration_s = time.perf_counter() - t0
    return report
