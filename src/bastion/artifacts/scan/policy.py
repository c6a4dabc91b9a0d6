"""The allowlist policy: one decision function shared by the static scanner and the loader.

``Policy.classify(module, name)`` returns ``SAFE``, ``CONDITIONAL`` (safe to reference; a call
is safe only when its arguments match a named pattern, see ``argpatterns``), ``DANGEROUS`` or
``UNKNOWN`` for a pickle global. The static opcode walk (``pickle_scan``) and the restricted
unpickler (``restricted.RestrictedUnpickler.find_class``) both call it, so what the scanner passes
is what the loader accepts (the loader checks conditional calls again on the real arguments).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field, replace
from enum import Enum
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from bastion.core.errors import ConfigError


class GlobalKind(str, Enum):
    SAFE = "safe"
    CONDITIONAL = "conditional"
    DANGEROUS = "dangerous"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Decision:
    """``reason`` says why; for ``CONDITIONAL`` it names the argument pattern a call must match."""

    kind: GlobalKind
    reason: str = ""


@dataclass
class Policy:
    """Allowlist-first policy loaded from ``allowlist.yaml`` plus user ``--allow module:name`` entries."""

    version: int
    safe: frozenset[str]
    safe_patterns: tuple[str, ...]
    never_safe: tuple[str, ...]
    dangerous_modules: tuple[str, ...]
    dangerous_names: frozenset[str]
    builtins_modules: frozenset[str]
    aliases: dict[str, str]
    user_allow: tuple[str, ...] = ()
    conditional: dict[str, str] = field(default_factory=dict)
    dangerous_name_patterns: tuple[str, ...] = ()
    _cache: dict[tuple[str, str], Decision] = field(default_factory=dict, repr=False)

    def with_allow(self, allow: list[str] | tuple[str, ...] | None) -> Policy:
        """A copy that also allows ``module:name`` entries (fnmatch patterns accepted)."""
        if not allow:
            return self
        entries = []
        for entry in allow:
            if entry.count(":") != 1 or not all(entry.split(":")):
                raise ConfigError(f"--allow entry {entry!r} must look like module:name (e.g. mypkg.layers:MyLayer)")
            entries.append(entry.strip())
        return replace(self, user_allow=tuple(entries), _cache={})

    def normalise(self, module: str, name: str) -> tuple[str, str]:
        return self.aliases.get(module, module), name

    def classify(self, module: str, name: str) -> Decision:
        """Decide about the global ``module.name`` (dangerous checks win over every allowlist)."""
        key = (module, name)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._classify(*self.normalise(module, name))
            self._cache[key] = hit
        return hit

    def _classify(self, module: str, name: str) -> Decision:
        mod_parts = module.split(".")
        name_parts = name.split(".")
        for part in mod_parts[1:] + name_parts:
            if part.startswith("__") and part.endswith("__") and len(part) > 4:
                return Decision(GlobalKind.DANGEROUS, f"attribute hop through dunder {part!r}")
        entry = f"{module}:{name}"
        if mod_parts[0].startswith("__") and mod_parts[0].endswith("__") and mod_parts[0] not in (
            "__main__", "__torch__", "__builtin__"
        ) and entry not in self.safe:  # only exact entries, e.g. __future__:annotations
            return Decision(GlobalKind.DANGEROUS, f"dunder module {mod_parts[0]!r}")
        if entry in self.conditional:  # exact, reviewed entries (e.g. functools:partial, builtins:getattr)
            return Decision(GlobalKind.CONDITIONAL, self.conditional[entry])
        for dm in self.dangerous_modules:
            if module == dm or module.startswith(dm + "."):
                return Decision(GlobalKind.DANGEROUS, f"module {dm} can run code or touch the system")
        # attribute hops in a dotted name (pickle protocol 4 resolves "a.b.c" by getattr)
        for i in range(len(name_parts) - 1):
            hop = ".".join(name_parts[: i + 1])
            if hop in self.dangerous_modules or name_parts[i] in self.dangerous_names:
                return Decision(GlobalKind.DANGEROUS, f"attribute hop to {hop!r}")
            if any(name_parts[i] == dm.split(".")[-1] for dm in self.dangerous_modules if "." not in dm):
                return Decision(GlobalKind.DANGEROUS, f"attribute hop to module {name_parts[i]!r}")
        if entry in self.safe:
            return Decision(GlobalKind.SAFE)
        for part in mod_parts[1:]:
            if part in self.dangerous_names or any(part == dm for dm in self.dangerous_modules if "." not in dm):
                return Decision(GlobalKind.DANGEROUS, f"submodule {part!r} of {module}")
        if module in self.builtins_modules:
            if entry in self.safe or self._user_allowed(entry):
                return Decision(GlobalKind.SAFE)
            return Decision(GlobalKind.DANGEROUS, "python builtin outside the safe data types")
        if name_parts[-1] in self.dangerous_names or any(
                fnmatch.fnmatchcase(name_parts[-1], p) for p in self.dangerous_name_patterns):
            return Decision(GlobalKind.DANGEROUS, f"callable named {name_parts[-1]!r} (reads, writes or runs code)")
        if self._user_allowed(entry):
            return Decision(GlobalKind.SAFE, "user allowlist")
        if any(fnmatch.fnmatchcase(entry, p) for p in self.never_safe):
            return Decision(GlobalKind.UNKNOWN, "test/vendored helper module")
        if "." in name:
            return Decision(GlobalKind.UNKNOWN, "dotted attribute path")
        if entry in self.safe or any(fnmatch.fnmatchcase(entry, p) for p in self.safe_patterns):
            return Decision(GlobalKind.SAFE)
        return Decision(GlobalKind.UNKNOWN, "not on the allowlist")

    def _user_allowed(self, entry: str) -> bool:
        return any(entry == p or fnmatch.fnmatchcase(entry, p) for p in self.user_allow)


def _as_list(d: dict[str, Any], key: str) -> list[str]:
    v = d.get(key) or []
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ConfigError(f"allowlist key {key!r} must be a list of strings")
    return v


@lru_cache(maxsize=1)
def default_policy() -> Policy:
    """The packaged allowlist (``bastion/artifacts/scan/allowlist.yaml``)."""
    text = resources.files("bastion.artifacts.scan").joinpath("allowlist.yaml").read_text("utf-8")
    return policy_from_yaml(text)


def policy_from_yaml(text: str) -> Policy:
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or "version" not in data:
        raise ConfigError("allowlist must be a mapping with a 'version'")
    dang = data.get("dangerous") or {}
    conditional = data.get("conditional") or {}
    if not isinstance(conditional, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in conditional.items()):
        raise ConfigError("allowlist key 'conditional' must map 'module:name' to an argument pattern name")
    return Policy(
        version=int(data["version"]),
        safe=frozenset(_as_list(data, "safe")),
        safe_patterns=tuple(_as_list(data, "safe_patterns")),
        never_safe=tuple(_as_list(data, "never_safe")),
        dangerous_modules=tuple(_as_list(dang, "modules")),
        dangerous_names=frozenset(_as_list(dang, "names")),
        builtins_modules=frozenset(_as_list(dang, "builtins_modules")),
        aliases={str(k): str(v) for k, v in (dang.get("aliases") or {}).items()},
        conditional=dict(conditional),
        dangerous_name_patterns=tuple(_as_list(dang, "name_patterns")),
    )


def get_policy(allow: list[str] | tuple[str, ...] | None = None) -> Policy:
    return default_policy().with_allow(allow)
