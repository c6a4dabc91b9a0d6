"""Process confinement for a model worker (Linux): namespaces, read-only files, seccomp, rlimits.

Every layer is attempted and the ones that took effect are reported (``Confinement.layers``), so
the gateway can show in ``/readyz`` what protects each model. ``network="namespace"`` makes a
missing network namespace an error instead of a fallback to the seccomp socket filter alone.
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import shutil
import signal
import struct
from dataclasses import dataclass, field
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
_AUDIT_ARCH = {"x86_64": (0xC000003E, 41), "aarch64": (0xC00000B7, 198)}  # arch id, __NR_socket


class ConfinementError(Exception):
    """A required confinement layer could not be applied."""


@dataclass
class Confinement:
    layers: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    model_path: str = ""


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    return libc


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _private_readonly_fs(libc: ctypes.CDLL, model_dir: Path, size_bytes: int) -> str:
    """New mount namespace: the model files copied alone onto a private tmpfs mounted on the model's *own*
    directory, then every mount read-only.

    The tmpfs hides nothing but the directory the model came from (its registry copy): not ``/tmp``,
    where Bastion itself or its interpreter may be installed and still has modules to import."""
    target = model_dir.resolve()
    # Open the files first: the tmpfs shadows the directory they come from.
    sources = [(f.name, open(f, "rb")) for f in sorted(target.iterdir()) if f.is_file() and not f.is_symlink()]
    _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make mounts private")
    opts = f"size={max(size_bytes + (4 << 20), 8 << 20)},mode=0755".encode()
    _check(libc.mount(b"tmpfs", str(target).encode(), b"tmpfs", MS_NOSUID | MS_NODEV, opts), "mount tmpfs")
    for name, src in sources:
        with src, open(target / name, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.chmod(target / name, 0o444)
    os.chmod(target, 0o555)  # noqa: S103 - read-only model directory
    with open("/proc/self/mountinfo") as fh:
        points = [line.split()[4] for line in fh]
    for mp in points:  # best effort for each mount (mountinfo escapes some characters) ...
        libc.mount(None, mp.encode(), None, MS_REMOUNT | MS_BIND | MS_RDONLY, None)
    for mp in ("/", str(target)):  # ... but the root and the model's tmpfs must be read-only
        _check(libc.mount(None, mp.encode(), None, MS_REMOUNT | MS_BIND | MS_RDONLY, None), f"remount {mp} read-only")
    return str(target)


def _seccomp_deny_sockets(libc: ctypes.CDLL) -> None:
    """A seccomp-bpf filter: ``socket(2)`` fails with EPERM; x32 syscalls are refused too."""
    arch = platform.machine()
    if arch not in _AUDIT_ARCH:
        raise OSError(f"no seccomp filter for architecture {arch}")
    audit_arch, nr_socket = _AUDIT_ARCH[arch]
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, deny = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
    prog = [
        (ld, 0, 0, 4),                  # 0: A = arch
        (jeq, 1, 0, audit_arch),        # 1: arch ok → 3
        (ret, 0, 0, deny),              # 2: foreign arch → deny
        (ld, 0, 0, 0),                  # 3: A = nr
        (jge, 2, 0, 0x40000000),        # 4: x32 ABI → 7
        (jeq, 1, 0, nr_socket),         # 5: socket → 7
        (ret, 0, 0, allow),             # 6
        (ret, 0, 0, deny),              # 7
    ]
    raw = b"".join(struct.pack("HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(raw)

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(prog), ctypes.cast(buf, ctypes.c_void_p))
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
    _check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "seccomp filter")


def _drop_capabilities(libc: ctypes.CDLL) -> None:
    """Drop every capability (bounding, effective, permitted, inheritable).

    The worker keeps uid 0 (the interpreter may live under a root-only directory), but without
    capabilities it cannot remount file systems, leave its namespaces, trace or signal others.
    """
    pr_capbset_drop, einval = 24, 22
    for cap in range(64):
        if libc.prctl(pr_capbset_drop, cap, 0, 0, 0) != 0 and ctypes.get_errno() != einval:
            _check(-1, f"drop capability {cap} from the bounding set")

    class CapHeader(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class CapData(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    header = CapHeader(0x20080522, 0)
    data = (CapData * 2)()
    _check(libc.capset(ctypes.byref(header), data), "capset(0)")


def apply_rlimits(memory_mb: int, cpu_s: int, nofile: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead


def confine(
    model_dir: Path, *, network: str = "auto", memory_mb: int = 4096, cpu_s: int = 3600, nofile: int = 64,
    drop_privileges: bool = True,
) -> Confinement:
    """Confine the current process; returns the layers applied and where the model now is."""
    libc = _libc()
    out = Confinement(model_path=str(model_dir))
    size = sum(f.stat().st_size for f in model_dir.iterdir() if f.is_file())
    try:
        _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        out.model_path = _private_readonly_fs(libc, model_dir, size)
        out.layers.append("readonly-filesystem")
    except OSError as exc:
        out.skipped["readonly-filesystem"] = str(exc)
    try:
        _check(libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        out.layers.append("network-namespace")
    except OSError as exc:
        if network == "namespace":
            raise ConfinementError(f"network namespace required but unavailable: {exc}") from None
        out.skipped["network-namespace"] = str(exc)
    if drop_privileges and os.geteuid() == 0:
        try:
            _drop_capabilities(libc)
            out.layers.append("no-capabilities")
        except OSError as exc:
            out.skipped["no-capabilities"] = str(exc)
    try:
        _seccomp_deny_sockets(libc)
        out.layers.append("seccomp-no-sockets")
    except OSError as exc:
        if network == "seccomp" or "network-namespace" not in out.layers:
            raise ConfinementError(f"no network isolation available: {exc}") from None
        out.skipped["seccomp-no-sockets"] = str(exc)
    apply_rlimits(memory_mb, cpu_s, nofile)
    out.layers.append("rlimits")
    return out
