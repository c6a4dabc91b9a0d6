"""Sandboxed inference: models run in separate, confined worker processes, never in the API process.

Each worker (``python -m bastion.gateway.sandbox.worker``) confines itself before it loads the
model (see ``confine``): a private mount namespace where every mount is read-only and the model
sits alone on a read-only tmpfs, a new network namespace (no interfaces up), a seccomp filter
refusing ``socket(2)``, resource limits (address space, CPU seconds, open files, no file
growth, no core dumps) and, when started as root, a switch to ``nobody``. The API process talks
to it over pipes (``protocol``), enforces a per-request timeout, and restarts a worker that hangs
or dies (``pool``).
"""

from bastion.gateway.sandbox.pool import (
    ModelFailure,
    PoolBusy,
    SandboxCrash,
    SandboxError,
    SandboxTimeout,
    WorkerPool,
    WorkerSpec,
)

__all__ = ["ModelFailure", "PoolBusy", "SandboxCrash", "SandboxError", "SandboxTimeout", "WorkerPool",
           "WorkerSpec"]
