"""Load the packaged catalog (``controls.yaml`` + ``frameworks.yaml``) and answer questions about it."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydantic import ValidationError

from bastion.core.errors import ConfigError, RegistryError
from bastion.govern.catalog.schema import Catalog, Control, FrameworkItem, FrameworkRef


def _read(name: str) -> Any:
    text = resources.files("bastion.govern.catalog").joinpath(name).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def parse_catalog(controls_doc: dict[str, Any], frameworks_doc: dict[str, Any]) -> Catalog:
    """Build and validate a ``Catalog`` from the two YAML documents; ``ConfigError`` lists every problem."""
    items: list[dict[str, Any]] = []
    versions: dict[str, str] = {}
    for framework, block in frameworks_doc.items():
        versions[framework] = str(block["version"])
        for row in block["items"]:
            item_id, title, kind = (str(x) for x in row)
            parent = item_id.rsplit(".", 1)[0] if kind == "sub-technique" else None
            items.append(
                {"framework": framework, "id": item_id, "title": title, "version": versions[framework],
                 "kind": kind, "parent": parent}
            )
    try:
        return Catalog.model_validate(
            {
                "version": str(controls_doc["version"]),
                "framework_versions": versions,
                "items": items,
                "controls": controls_doc["controls"],
            }
        )
    except ValidationError as exc:
        raise ConfigError(f"control catalog is invalid: {exc}") from None


@cache
def load_catalog() -> Catalog:
    """The packaged catalog, validated once per process (it is read-only package data)."""
    return parse_catalog(_read("controls.yaml"), _read("frameworks.yaml"))


@dataclass(frozen=True)
class ResolvedRef:
    """A framework reference resolved against the catalog: the item and the controls mapped to it."""

    item: FrameworkItem
    controls: tuple[Control, ...]

    @property
    def pinned(self) -> str:
        return self.item.pinned


@cache
def _items() -> dict[str, FrameworkItem]:
    return {i.key: i for i in load_catalog().items}


def known_framework_refs() -> frozenset[str]:
    """Every unversioned framework reference the catalog knows (``mitre-atlas:AML.T0015`` …)."""
    return frozenset(_items())


def is_known_ref(ref: str) -> bool:
    """True for a known framework reference (pinned to the catalog's version or not) or a control id."""
    if ref in {c.id for c in load_catalog().controls}:
        return True
    try:
        resolve(ref)
    except (ConfigError, RegistryError):
        return False
    return True


def resolve(framework_ref: str) -> ResolvedRef:
    """Resolve ``framework:item[@version]``; a version other than the catalog's is refused.

    Raises ``ConfigError`` for a malformed reference and ``RegistryError`` for an unknown item.
    """
    ref = FrameworkRef.parse(framework_ref)
    item = _items().get(ref.key)
    if item is None:
        raise RegistryError(f"{framework_ref!r} is not in Bastion's control catalog")
    if ref.version is not None and ref.version != item.version:
        raise RegistryError(f"{framework_ref!r}: the catalog pins {ref.framework} to version {item.version}")
    return ResolvedRef(item=item, controls=tuple(controls_for_ref(ref.key)))


def controls_for_ref(framework_ref: str) -> list[Control]:
    """Controls with a mapping to ``framework_ref`` (any relation)."""
    key = FrameworkRef.parse(framework_ref).key
    return [c for c in load_catalog().controls if any(m.parsed.key == key for m in c.mappings)]


def control(control_id: str) -> Control:
    """The control with id ``control_id`` (``RegistryError`` if none)."""
    for c in load_catalog().controls:
        if c.id == control_id:
            return c
    raise RegistryError(f"no control {control_id!r} in the catalog")


def controls_for_check(check_id: str) -> list[Control]:
    """Every control whose evidence includes ``check_id``, most specific (exact id) first."""
    cat = load_catalog()
    exact = [c for c in cat.controls if check_id in c.checks]
    prefix = [c for c in cat.controls if c not in exact and c.matches_check(check_id)]
    prefix.sort(key=lambda c: -max((len(p) for p in c.checks if check_id.startswith(p)), default=0))
    return exact + prefix


def control_for_check(check_id: str) -> Control | None:
    """The control a check's result is evidence for (the most specific match), or ``None``."""
    found = controls_for_check(check_id)
    return found[0] if found else None
