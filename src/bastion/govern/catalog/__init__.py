"""Bastion's control catalog: controls in Bastion's words, mapped to MITRE ATLAS, the OWASP ML Top 10,
NIST AI RMF, the EU AI Act and GDPR with typed, version-pinned SKOS relations.

Examples:
    >>> from bastion.govern.catalog import load_catalog, resolve, control_for_check
    >>> resolve("mitre-atlas:AML.T0015").item.title
    'Evade AI Model'
    >>> control_for_check("evasion.pgd_linf").id
    'BC-EV-01'
"""

from __future__ import annotations

from bastion.govern.catalog.loader import (
    ResolvedRef,
    control,
    control_for_check,
    controls_for_check,
    controls_for_ref,
    is_known_ref,
    known_framework_refs,
    load_catalog,
    resolve,
)
from bastion.govern.catalog.schema import (
    FRAMEWORKS,
    Catalog,
    Control,
    FrameworkItem,
    FrameworkRef,
    Mapping,
    Threshold,
    validate_catalog,
)

__all__ = [
    "FRAMEWORKS",
    "Catalog",
    "Control",
    "FrameworkItem",
    "FrameworkRef",
    "Mapping",
    "ResolvedRef",
    "Threshold",
    "control",
    "control_for_check",
    "controls_for_check",
    "controls_for_ref",
    "is_known_ref",
    "known_framework_refs",
    "load_catalog",
    "resolve",
    "validate_catalog",
]
