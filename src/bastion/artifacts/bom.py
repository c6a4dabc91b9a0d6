"""ML-BOM: a CycloneDX 1.6 bill of materials for a model, built with ``cyclonedx-python-lib``.

The BOM lists the model (type ``machine-learning-model``, sha256 per file, scan verdict and
signature facts as properties), its datasets (type ``data``, digests from the assessment's
target fingerprints), the libraries it needs to load (with PyPI purls) and the dependency
graph. The model component carries a ``modelCard`` whose quantitative analysis is every
numeric metric the assessment measured, with its parameters as the slice. The document is
validated against the CycloneDX 1.6 JSON schema before it is returned.

Examples:
    >>> from bastion.artifacts.bom import build_bom
    >>> doc = build_bom("model.pt", assessment="assessment.json")      # doctest: +SKIP
    >>> doc["specVersion"], doc["components"][0]["type"]                # doctest: +SKIP
    ('1.6', 'machine-learning-model')
"""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any

from bastion.core.errors import DependencyError, InvalidInputError
from bastion.core.paths import sha256_file

_LIBS_BY_FORMAT = {
    "torch": ["torch", "numpy"],
    "torchscript": ["torch"],
    "torch-export": ["torch"],
    "onnx": ["onnx", "onnxruntime", "numpy"],
    "safetensors": ["safetensors", "numpy"],
    "joblib": ["scikit-learn", "joblib", "numpy", "scipy"],
    "pickle": ["scikit-learn", "joblib", "numpy", "scipy"],
    "skops": ["scikit-learn", "skops", "numpy", "scipy"],
    "numpy": ["numpy"],
    "keras": ["keras", "h5py"],
}


def _lib_key(fmt: str) -> str:
    for key in ("torchscript", "torch-export", "torch", "onnx", "safetensors", "joblib", "pickle", "numpy", "keras"):
        if fmt.startswith(key):
            return key
    return "skops" if fmt == "zip" else fmt


def _load_assessment(assessment: str | os.PathLike[str] | dict[str, Any] | None) -> dict[str, Any] | None:
    """An assessment given as a document, or read (schema-checked) from ``assessment.json`` or its directory."""
    if assessment is None or isinstance(assessment, dict):
        return assessment
    from bastion.report.json_report import read_assessment_doc

    return read_assessment_doc(assessment)


def performance_metrics(assessment: dict[str, Any]) -> list[dict[str, str]]:
    """Every numeric metric of every check, with the check's params as the slice."""
    out = []
    for r in assessment.get("results", []):
        params = r.get("params") or {}
        slice_text = ", ".join(f"{k}={v}" for k, v in sorted(params.items())
                               if isinstance(v, int | float | str | bool) and v is not None)[:500]
        for k, v in (r.get("metrics") or {}).items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                value = str(v) if isinstance(v, int) else repr(round(float(v), 6))
                item = {"type": f"{r.get('check_id')}.{k}", "value": value}
                if slice_text:
                    item["slice"] = slice_text
                out.append(item)
    return out


def build_bom(
    path: str | os.PathLike[str],
    assessment: str | os.PathLike[str] | dict[str, Any] | None = None,
    validate: bool = True,
) -> dict[str, Any]:
    """Build (and validate) the CycloneDX 1.6 ML-BOM of a model file or directory as a JSON dict."""
    try:
        from cyclonedx.model import HashAlgorithm, HashType, Property
        from cyclonedx.model.bom import Bom
        from cyclonedx.model.component import Component, ComponentType
        from cyclonedx.output.json import JsonV1Dot6
        from packageurl import PackageURL
    except ImportError:
        raise DependencyError.missing("cyclonedx-python-lib", "supplychain") from None
    from bastion import __version__
    from bastion.artifacts.scan import scan_path
    from bastion.artifacts.signing import attestation_path_for, bundle_path_for

    p = Path(path)
    if not p.exists():
        raise InvalidInputError(f"model {p} does not exist")
    a = _load_assessment(assessment)
    report = scan_path(p, digest=True)
    fmt = next((f.format for f in report.scanned_files), "unknown")
    bom = Bom()
    props = [
        Property(name="bastion:format", value=fmt),
        Property(name="bastion:scan:verdict", value=report.verdict),
        Property(name="bastion:scan:max_severity",
                 value=report.max_severity.value if report.max_severity else "none"),
        Property(name="bastion:scan:allowlist_version", value=str(report.allowlist_version)),
        Property(name="bastion:signed", value=str(bundle_path_for(p).is_file()).lower()),
        Property(name="bastion:attested", value=str(attestation_path_for(p).is_file()).lower()),
    ]
    model = Component(type=ComponentType.MACHINE_LEARNING_MODEL, name=p.name, bom_ref="model",
                      properties=props, description=f"{fmt} model scanned by Bastion {__version__}")
    if p.is_file():
        model.hashes.add(HashType(alg=HashAlgorithm.SHA_256, content=sha256_file(p)))
    else:
        for i, f in enumerate(report.files):
            if f.sha256:
                sub = Component(type=ComponentType.FILE, name=str(Path(f.path).relative_to(p)), bom_ref=f"model-file-{i}")
                sub.hashes.add(HashType(alg=HashAlgorithm.SHA_256, content=f.sha256))
                model.components.add(sub)
    bom.components.add(model)
    datasets: list[Component] = []
    target = (a or {}).get("target") or {}
    for name, digest in sorted((target.get("fingerprints") or {}).items()):
        if name == "model" or not isinstance(digest, str) or len(digest) != 64:
            continue
        ds = Component(type=ComponentType.DATA, name=f"{target.get('name', 'dataset')}:{name}", bom_ref=f"dataset-{name}",
                       description=str(target.get("data_path") or "dataset digest recorded by the assessment"))
        ds.hashes.add(HashType(alg=HashAlgorithm.SHA_256, content=digest))
        datasets.append(ds)
        bom.components.add(ds)
    libs: list[Component] = []
    for dist in _LIBS_BY_FORMAT.get(_lib_key(fmt), []):
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        lib = Component(type=ComponentType.LIBRARY, name=dist, version=version, bom_ref=f"pypi-{dist}",
                        purl=PackageURL(type="pypi", name=dist, version=version))
        libs.append(lib)
        bom.components.add(lib)
    bom.register_dependency(model, datasets + libs)
    package = Component(type=ComponentType.APPLICATION, name=f"{p.name} (model package)", bom_ref="package")
    bom.metadata.component = package
    bom.register_dependency(package, [model])
    bom.metadata.tools.components.add(Component(type=ComponentType.APPLICATION, name="bastion",
                                                version=__version__, bom_ref="bastion"))
    doc: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    for comp in doc.get("components", []):
        if comp.get("bom-ref") == "model":
            comp["modelCard"] = _model_card(a, target, [d.bom_ref.value for d in datasets if d.bom_ref.value])
    if validate:
        validate_bom(doc)
    return doc


def _model_card(a: dict[str, Any] | None, target: dict[str, Any], dataset_refs: list[str]) -> dict[str, Any]:
    meta = target.get("metadata") or {}
    spec = target.get("input_spec") or {}
    params: dict[str, Any] = {"approach": {"type": "supervised"}, "task": meta.get("task", "classification")}
    if target.get("model_format"):
        params["modelArchitecture"] = str(target["model_format"])
    if dataset_refs:
        params["datasets"] = [{"ref": r} for r in dataset_refs]
    if meta.get("data_kind") or spec:
        params["inputs"] = [{"format": f"{meta.get('data_kind', 'tensor')} {spec.get('shape', '')}".strip()}]
    if target.get("n_classes"):
        params["outputs"] = [{"format": f"probabilities over {target['n_classes']} classes"}]
    card: dict[str, Any] = {"bom-ref": "model-card", "modelParameters": params}
    if a:
        metrics = performance_metrics(a)
        if metrics:
            card["quantitativeAnalysis"] = {"performanceMetrics": metrics}
        limits = sorted({f"{f.get('severity')}: {f.get('title')}" for r in a.get("results", [])
                         for f in r.get("findings", []) if f.get("severity") in ("medium", "high", "critical")})
        if limits:
            card["considerations"] = {"technicalLimitations": limits[:50]}
        card["properties"] = [{"name": "bastion:assessment:profile", "value": str(a.get("profile"))},
                              {"name": "bastion:assessment:created_at", "value": str(a.get("created_at"))}]
    return card


def validate_bom(doc: dict[str, Any]) -> None:
    """Validate against the CycloneDX 1.6 JSON schema shipped with cyclonedx-python-lib."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    err = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(doc))
    if err is not None:
        raise InvalidInputError(f"generated ML-BOM does not validate against CycloneDX 1.6: {err}")
