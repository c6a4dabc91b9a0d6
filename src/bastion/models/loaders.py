"""Load a model file (or endpoint) into a ``ModelAdapter`` — always scanning it first.

Formats are recognised by content (magic bytes, archive members) and extension:

========================  ==========================================  =========================
format                    recognised by                               adapter
========================  ==========================================  =========================
``torchscript``           zip with ``code/`` + ``constants.pkl``       ``TorchAdapter`` (white-box)
``torch-export``          zip with ``archive_format`` / ``models/``    ``TorchAdapter`` (white-box)
``onnx``                  ``.onnx`` + parses as ``onnx.ModelProto``    ``TorchAdapter`` via the
                                                                      ONNX→torch converter when
                                                                      verified, else ``OnnxAdapter``
``skops``                 zip with ``schema.json``                    ``SklearnAdapter``
``pickle`` / ``joblib``   pickle protocol header, ``.pkl/.joblib``     ``SklearnAdapter`` via the
                                                                      scanner's restricted unpickler
``remote``                ``endpoint=URL``                             ``RemoteAdapter`` (black-box)
========================  ==========================================  =========================

Every file goes through ``bastion.artifacts.scan.ensure_safe`` before it is deserialised.

The input spec comes from, in order: a JSON sidecar ``MODEL.bastion.json`` (or
``MODEL.EXT.bastion.json``: ``{"input_shape": [1, 28, 28], "clip_min": 0, "clip_max": 1,
"n_classes": 10, "class_names": [...]}``), the file itself (ONNX input shape, ``torch.export``
example input), the ``input_spec`` argument (``build_target`` derives it from the data), then
``clip_min``/``clip_max`` override the range.

Examples:
    >>> model = load_model("model.onnx", clip_min=0.0, clip_max=1.0)    # doctest: +SKIP
    >>> model_info(model).format, model_info(model).sha256[:8]           # doctest: +SKIP
    ('onnx', '3f2a…')
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bastion.core.errors import (
    ConfigError,
    InvalidInputError,
    ModelLoadError,
    UnsupportedFormatError,
)
from bastion.core.model import InputSpec, ModelAdapter, ModelInfo
from bastion.core.paths import sha256_file
from bastion.models.adapters import LocalAdapter, SklearnAdapter, TorchAdapter, check_batch

TORCHSCRIPT_META = "bastion.json"  # TorchScript extra file with {"input_spec": {...}} (written by Bastion)
ONNX_META = "bastion.json"  # ONNX metadata_props key holding the same JSON (or plain clip_min/clip_max keys)
MODEL_FORMATS = ("torchscript", "torch-export", "onnx", "skops", "pickle", "joblib", "remote")
ONNX_MATCH_ATOL = 1e-4

# skops: types trusted beyond skops' own defaults. Everything else in a file is refused.
SKOPS_TRUSTED_PREFIXES = ("sklearn.",)
SKOPS_DENIED_PREFIXES = ("sklearn.datasets", "sklearn.utils._testing", "sklearn.externals")
SKOPS_TRUSTED_TYPES = frozenset({
    "builtins.slice",
    "collections.OrderedDict",
    "collections.defaultdict",
    "numpy.dtype",
    "numpy.ndarray",
    "numpy.float32",
    "numpy.float64",
    "numpy.int32",
    "numpy.int64",
    "numpy.bool_",
    "numpy.random.RandomState",
    "numpy.random._mt19937.MT19937",
    "numpy.random._pcg64.PCG64",
    "numpy.random._generator.Generator",
    "scipy.sparse._csr.csr_matrix",
    "scipy.sparse._csc.csc_matrix",
    "scipy.sparse._csr.csr_array",
})


def detect_format(path: str | Path) -> str:
    """The model format of ``path`` from its content and extension (see the module table)."""
    p = Path(path)
    if not p.exists():
        raise InvalidInputError(f"model file {p} does not exist")
    if p.is_dir():
        raise UnsupportedFormatError(f"{p} is a directory; pass the model file itself")
    ext = p.suffix.lower()
    with open(p, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(p) as zf:
                names = zf.namelist()
        except zipfile.BadZipFile as exc:
            raise UnsupportedFormatError(f"{p} looks like a zip archive but cannot be read: {exc}") from exc
        if "schema.json" in names:
            return "skops"
        if any(n.endswith("/archive_format") or n.startswith("archive_format") for n in names) or any(
            "/models/" in n and n.endswith(".json") for n in names
        ):
            return "torch-export"
        if any("/code/" in n or n.startswith("code/") for n in names) and any(n.endswith("constants.pkl") for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            raise UnsupportedFormatError(
                f"{p} is a torch.save() checkpoint (pickled Python objects), not a self-describing model; "
                "export it with torch.jit.script/torch.jit.save, torch.export.save or torch.onnx.export"
            )
        raise UnsupportedFormatError(f"{p} is a zip archive of no model format Bastion knows")
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        if ext in (".pt", ".pth", ".bin", ".ckpt"):
            raise UnsupportedFormatError(
                f"{p} is a legacy torch.save() checkpoint (pickled Python objects), not a self-describing model; "
                "export it with torch.jit.script/torch.jit.save, torch.export.save or torch.onnx.export"
            )
        return "joblib" if ext == ".joblib" else "pickle"
    if ext == ".safetensors":
        raise UnsupportedFormatError(
            f"{p} holds weights only (safetensors), not the network that uses them; export the model as "
            "TorchScript, torch.export or ONNX (scan the weights with: bastion model scan)"
        )
    if ext in (".pkl", ".pickle", ".joblib"):
        return "joblib" if ext == ".joblib" else "pickle"
    if ext == ".onnx":
        return "onnx"
    raise UnsupportedFormatError(
        f"cannot tell the model format of {p} (extension {ext or 'none'!r}); supported: TorchScript .pt, "
        "torch.export .pt2, ONNX .onnx, scikit-learn .skops (or .pkl/.joblib after a scan), or --endpoint URL"
    )


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The ``MODEL.bastion.json`` sidecar beside ``path`` (empty dict when there is none)."""
    p = Path(path)
    for cand in (p.with_name(p.name + ".bastion.json"), p.with_name(p.stem + ".bastion.json")):
        if cand.is_file():
            try:
                data = json.loads(cand.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ConfigError(f"sidecar {cand} is not valid JSON: {exc}") from exc
            if not isinstance(data, dict):
                raise ConfigError(f"sidecar {cand} must hold a JSON object")
            spec = data.get("input_spec")
            if isinstance(spec, dict):
                data = {**data, **{k if k != "shape" else "input_shape": v for k, v in spec.items()}}
            data["_path"] = str(cand)
            return data
    return {}


def _json_meta(raw: Any, where: str) -> dict[str, Any]:
    """A model's embedded JSON metadata (empty when absent); bad JSON is a clear error."""
    if not raw:
        return {}
    try:
        data = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must hold a JSON object")
    return data


def _spec_from_sidecar(side: dict[str, Any]) -> InputSpec | None:
    shape = side.get("input_shape")
    if shape is None:
        return None
    try:
        return InputSpec(
            shape=tuple(int(s) for s in shape),
            dtype=str(side.get("dtype", "float32")),
            clip_min=None if side.get("clip_min") is None else float(side["clip_min"]),
            clip_max=None if side.get("clip_max") is None else float(side["clip_max"]),
            max_batch=int(side.get("max_batch", 1024)),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"sidecar {side.get('_path')}: bad input_shape/clip values: {exc}") from exc


def _bounds(d: dict[str, Any], where: str) -> tuple[float | None, float | None] | None:
    """``(clip_min, clip_max)`` stated in ``d`` (``None`` when it states neither)."""
    if d.get("clip_min") is None and d.get("clip_max") is None:
        return None
    try:
        return (None if d.get("clip_min") is None else float(d["clip_min"]),
                None if d.get("clip_max") is None else float(d["clip_max"]))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: clip_min/clip_max must be numbers: {exc}") from exc


def model_metadata_range(meta: dict[str, Any] | None, where: str) -> tuple[float | None, float | None] | None:
    """The range a model file states about itself (``{"input_spec": {...}}`` or flat ``clip_min``/``clip_max``)."""
    if not meta:
        return None
    spec = meta.get("input_spec")
    return _bounds(spec if isinstance(spec, dict) else meta, where)


def _resolve_spec(
    path: Path, from_file: InputSpec | None, side: dict[str, Any], given: InputSpec | None,
    clip_min: float | None, clip_max: float | None, model_range: tuple[float | None, float | None] | None = None,
) -> InputSpec:
    """Shape from sidecar > file > caller; range by :func:`bastion.core.domain.resolve_range` (flag > sidecar >
    model); a range nobody states stays unresolved (``range_source=None``) for the caller to infer from data."""
    from bastion.core.domain import resolve_range

    spec = _spec_from_sidecar(side) or from_file or given
    if spec is None:
        raise ConfigError(
            f"the input shape of {path} is unknown: pass data (--data) or write a sidecar "
            f"{path.stem}.bastion.json with {{\"input_shape\": [...]}}"
        )
    if from_file is not None and spec is not from_file and spec.n_features != from_file.n_features:
        raise InvalidInputError(
            f"{path} expects inputs shaped {from_file.shape}, but the sidecar/data give {spec.shape}"
        )
    flag: tuple[float | None, float | None] = (clip_min, clip_max)
    caller_source = "flag"
    if clip_min is None and clip_max is None and given is not None and (given.clip_min, given.clip_max) != (None, None):
        flag, caller_source = (given.clip_min, given.clip_max), given.range_source or "flag"
    rng = resolve_range(flag=flag, sidecar=_bounds(side, f"sidecar {side.get('_path')}"), model=model_range)
    if rng.source == "unknown":
        return replace(spec, clip_min=None, clip_max=None, range_source=None)
    return replace(spec, clip_min=rng.clip_min, clip_max=rng.clip_max,
                   range_source=rng.source.replace("flag", caller_source))


def scan_model_file(path: str | Path) -> dict[str, Any]:
    """Run the supply-chain scanner (``ensure_safe``); raises ``UnsafeArtifactError`` on a dangerous file.

    Returns ``{"verdict": …, "max_severity": …}`` from the scan report.
    """
    from bastion.artifacts.scan import ensure_safe

    report = ensure_safe(path)
    to_dict = getattr(report, "to_dict", None)
    summary: dict[str, Any] = {}
    if callable(to_dict):
        d = to_dict()
        summary = {k: d[k] for k in ("verdict", "max_severity") if k in d}
    return summary


class _ProbaToLogits(nn.Module):
    """Wrap a module that outputs probabilities so it returns log-probabilities (valid logits)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(self.inner(x).clamp_min(1e-12))


class _FixedBatch(nn.Module):
    """Run a module exported for one fixed batch size on any batch (chunk, pad the last chunk)."""

    def __init__(self, inner: nn.Module, batch: int) -> None:
        super().__init__()
        self.inner = inner
        self.batch = batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for i in range(0, x.shape[0], self.batch):
            chunk = x[i : i + self.batch]
            n = chunk.shape[0]
            if n < self.batch:
                chunk = torch.cat([chunk, chunk[-1:].expand(self.batch - n, *chunk.shape[1:])])
            outs.append(self.inner(chunk)[:n])
        return torch.cat(outs)


class _ExportedModule(nn.Module):
    """Hold a ``torch.export`` graph module: exported graphs are frozen in eval mode and refuse ``.eval()``."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def train(self, mode: bool = True) -> _ExportedModule:
        self.training = mode  # the exported graph's mode was fixed at export time
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def _looks_like_proba(out: torch.Tensor) -> bool:
    return bool(out.dim() == 2 and (out >= 0).all() and (out <= 1).all()
                and torch.allclose(out.sum(dim=1), torch.ones(out.shape[0]), atol=1e-4))


def _probe(spec: InputSpec, n: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lo = spec.clip_min if spec.clip_min is not None else -1.0
    hi = spec.clip_max if spec.clip_max is not None else 1.0
    return rng.uniform(lo, hi, size=(n, *spec.shape)).astype(np.float32)


def _torch_adapter(module: nn.Module, spec: InputSpec, n_classes: int | None, info: dict[str, Any]) -> TorchAdapter:
    module.eval()
    with torch.no_grad():
        try:
            out = module(torch.from_numpy(_probe(spec, 3)))
        except Exception as exc:
            raise ModelLoadError(
                f"{info.get('path')} does not run on inputs shaped {spec.shape}: {str(exc).splitlines()[0][:200]}"
            ) from exc
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise ModelLoadError(f"{info.get('path')} must return a (batch, n_classes) tensor of logits")
    if _looks_like_proba(out) and out.shape[1] > 1:
        module = _ProbaToLogits(module)
        info["outputs"] = "probabilities (wrapped as log-probabilities)"
    if n_classes is not None and int(out.shape[1]) != n_classes:
        raise InvalidInputError(f"{info.get('path')} outputs {out.shape[1]} classes; the sidecar says {n_classes}")
    return TorchAdapter(module, spec, n_classes=int(out.shape[1]), info=info)


def _load_torchscript(path: Path, spec_given: InputSpec | None, side: dict[str, Any], clip: tuple[Any, Any],
                      info: dict[str, Any]) -> TorchAdapter:
    extra = {TORCHSCRIPT_META: ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:
        raise ModelLoadError(f"cannot load TorchScript file {path}: {str(exc).splitlines()[0][:200]}") from exc
    meta = _json_meta(extra.get(TORCHSCRIPT_META), f"{path}: extra file {TORCHSCRIPT_META}")
    if meta:
        info["model_metadata"] = TORCHSCRIPT_META
    spec = _resolve_spec(path, None, side, spec_given, *clip, model_range=model_metadata_range(meta, str(path)))
    return _torch_adapter(module, spec, side.get("n_classes"), info)


def _load_torch_export(path: Path, spec_given: InputSpec | None, side: dict[str, Any], clip: tuple[Any, Any],
                       info: dict[str, Any]) -> TorchAdapter:
    try:
        ep = torch.export.load(str(path))
    except Exception as exc:
        raise ModelLoadError(f"cannot load torch.export program {path}: {str(exc).splitlines()[0][:200]}") from exc
    user_inputs = list(ep.graph_signature.user_inputs)
    if len(user_inputs) != 1:
        raise ModelLoadError(f"{path} takes {len(user_inputs)} inputs; Bastion supports single-input classifiers")
    from_file: InputSpec | None = None
    static_batch: int | None = None
    for node in ep.graph.nodes:
        if node.op == "placeholder" and node.name == user_inputs[0] and "val" in node.meta:
            shape = node.meta["val"].shape
            if all(isinstance(s, int) for s in shape[1:]):
                from_file = InputSpec(shape=tuple(int(s) for s in shape[1:]))
            if isinstance(shape[0], int):
                static_batch = int(shape[0])
    spec = _resolve_spec(path, from_file, side, spec_given, *clip)
    module: nn.Module = _ExportedModule(ep.module())
    if static_batch is not None:
        module = _FixedBatch(module, static_batch)
        info["static_batch"] = static_batch
    return _torch_adapter(module, spec, side.get("n_classes"), info)


class OnnxAdapter(LocalAdapter):
    """An ONNX model run by onnxruntime (black-box: no gradients)."""

    def __init__(self, path: Path, input_spec: InputSpec, info: dict[str, Any] | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, torch.get_num_threads())
        self.session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self._outputs_proba: bool | None = None
        super().__init__(input_spec, self._raw(_probe(input_spec, 2)).shape[1], info)

    def _raw(self, arr: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: arr})[0]
        return np.asarray(out, dtype=np.float64).reshape(len(arr), -1)

    def raw_outputs(self, x: np.ndarray) -> np.ndarray:
        """What the graph returns (logits or probabilities), unnormalised."""
        arr = check_batch(x, self._spec)
        return np.concatenate([self._raw(arr[i : i + self._spec.max_batch]) for i in range(0, len(arr), self._spec.max_batch)]) \
            if len(arr) else np.zeros((0, self._n_classes))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        out = self.raw_outputs(x)
        if self._outputs_proba is None and len(out):
            self._outputs_proba = bool((out >= 0).all() and (out <= 1).all() and np.allclose(out.sum(1), 1.0, atol=1e-4))
        if self._outputs_proba:
            return out
        z = out - out.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def _onnx_input_spec(model: Any) -> InputSpec | None:
    init = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init]
    if len(inputs) != 1:
        raise ModelLoadError(f"expected an ONNX model with one input, found {len(inputs)}")
    dims = inputs[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if len(shape) < 2 or any(s is None or s <= 0 for s in shape[1:]):
        return None
    return InputSpec(shape=tuple(int(s) for s in shape[1:]))  # type: ignore[arg-type]


def _load_onnx(path: Path, spec_given: InputSpec | None, side: dict[str, Any], clip: tuple[Any, Any],
               info: dict[str, Any], white_box: bool = True) -> ModelAdapter:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ModelLoadError(f"{path} is not a valid ONNX model: {str(exc).splitlines()[0][:200]}") from exc
    props = {p.key: p.value for p in model.metadata_props}
    meta = _json_meta(props.get(ONNX_META), f"{path}: metadata_props[{ONNX_META!r}]") or \
        {k: props[k] for k in ("clip_min", "clip_max") if k in props}
    if meta:
        info["model_metadata"] = "onnx metadata_props"
    spec = _resolve_spec(path, _onnx_input_spec(model), side, spec_given, *clip,
                         model_range=model_metadata_range(meta, str(path)))
    try:
        black = OnnxAdapter(path, spec, info=info)
    except Exception as exc:
        raise ModelLoadError(f"onnxruntime cannot run {path} on inputs {spec.shape}: {str(exc)[:200]}") from exc
    if not white_box:
        black.info["white_box"] = "disabled"
        return black
    from bastion.models.onnx_torch import convert, unsupported_ops

    bad = unsupported_ops(model)
    if bad:
        black.info["white_box"] = f"unavailable: unsupported ONNX ops {', '.join(bad)} (black-box via onnxruntime)"
        return black
    try:
        module = convert(model, strip_softmax=True)
        probe = _probe(spec, 8)
        with torch.no_grad():
            mine = torch.softmax(module(torch.from_numpy(probe)).double(), dim=1).numpy()
        ref = black.predict_proba(probe)
        diff = float(np.abs(mine - ref).max())
    except Exception as exc:
        black.info["white_box"] = f"unavailable: conversion failed ({str(exc)[:120]}); black-box via onnxruntime"
        return black
    if not np.isfinite(diff) or diff > ONNX_MATCH_ATOL:
        black.info["white_box"] = f"unavailable: converted graph differs from onnxruntime by {diff:.2e}"
        return black
    info["white_box"] = f"onnx→torch converter, max |Δp| vs onnxruntime {diff:.1e}"
    info["onnx_max_abs_diff"] = diff
    return TorchAdapter(module, spec, n_classes=black.n_classes, info=info)


def _skops_trusted(untrusted: list[str], extra: list[str]) -> tuple[list[str], list[str]]:
    ok: list[str] = []
    refused: list[str] = []
    for t in untrusted:
        allowed = t in SKOPS_TRUSTED_TYPES or t in extra or (
            t.startswith(SKOPS_TRUSTED_PREFIXES) and not t.startswith(SKOPS_DENIED_PREFIXES)
        )
        (ok if allowed else refused).append(t)
    return ok, refused


def load_skops(path: str | Path, trusted_types: list[str] | None = None) -> Any:
    """Load a ``.skops`` estimator trusting only the allowlist (plus ``trusted_types``)."""
    import skops.io as sio

    data = Path(path).read_bytes()
    try:
        untrusted = list(sio.get_untrusted_types(data=data))
    except Exception as exc:
        raise ModelLoadError(f"{path} is not a readable skops file: {str(exc)[:200]}") from exc
    ok, refused = _skops_trusted(untrusted, list(trusted_types or []))
    from bastion.core.errors import UnsafeArtifactError

    if refused:
        raise UnsafeArtifactError(
            f"{path} contains types outside Bastion's skops allowlist: {', '.join(sorted(refused))}; "
            "inspect them, then trust them explicitly (trusted_types) if they are expected"
        )
    try:
        return sio.loads(data, trusted=ok)
    except Exception as exc:
        raise ModelLoadError(f"cannot load skops file {path}: {str(exc)[:200]}") from exc


def _sklearn_spec(est: Any, path: Path, side: dict[str, Any], given: InputSpec | None,
                  clip: tuple[Any, Any]) -> InputSpec:
    n_in = getattr(est, "n_features_in_", None)
    from_file = InputSpec(shape=(int(n_in),)) if n_in is not None else None
    if from_file is not None and given is not None and given.n_features == from_file.n_features:
        from_file = given  # same features, keep the caller's layout and range
    return _resolve_spec(path, from_file, side, given, *clip)


def load_model(
    path: str | Path | None,
    *,
    endpoint: str | None = None,
    query_budget: int | None = None,
    input_spec: InputSpec | None = None,
    clip_min: float | None = None,
    clip_max: float | None = None,
    n_classes: int | None = None,
    white_box: bool = True,
    api_key: str | None = None,
) -> ModelAdapter:
    """Scan, then load a model file or connect to an endpoint; return a ``ModelAdapter``.

    The adapter's ``info`` dict carries ``format``, ``path`` and ``sha256`` (see ``model_info``).
    Raises ``InvalidInputError`` (missing file), ``UnsupportedFormatError``, ``UnsafeArtifactError``
    (the scanner refused it; nothing was deserialised), ``ModelLoadError`` or ``ConfigError``.
    """
    clip = (clip_min, clip_max)
    if endpoint is not None:
        if path is not None:
            raise ConfigError("give either a model file or --endpoint, not both")
        from bastion.models.remote import RemoteAdapter

        if input_spec is None:
            raise ConfigError("a remote endpoint needs the input shape: pass labelled --data")
        spec = _resolve_spec(Path(endpoint), None, {}, input_spec, *clip)
        return RemoteAdapter(endpoint, spec, n_classes=n_classes, query_budget=query_budget, api_key=api_key)
    if path is None:
        raise ConfigError("no model given: pass --model FILE, --endpoint URL or --demo NAME")
    if query_budget is not None:
        raise ConfigError("--query-budget applies to --endpoint models only")
    p = Path(path)
    fmt = detect_format(p)
    info: dict[str, Any] = {"format": fmt, "path": str(p), "sha256": sha256_file(p)}
    info["scan"] = scan_model_file(p)
    side = read_sidecar(p)
    if side:
        info["sidecar"] = side.pop("_path")
    if n_classes is not None:
        side.setdefault("n_classes", n_classes)
    if fmt == "torchscript":
        return _load_torchscript(p, input_spec, side, clip, info)
    if fmt == "torch-export":
        return _load_torch_export(p, input_spec, side, clip, info)
    if fmt == "onnx":
        return _load_onnx(p, input_spec, side, clip, info, white_box=white_box)
    if fmt == "skops":
        est = load_skops(p, side.get("trusted_types"))
    else:
        from bastion.artifacts.scan import restricted_load

        est = restricted_load(p)
    if not hasattr(est, "predict_proba"):
        raise ModelLoadError(f"{p} holds a {type(est).__name__}, which has no predict_proba")
    return SklearnAdapter(est, _sklearn_spec(est, p, side, input_spec, clip), info=info)


def model_info(model: ModelAdapter) -> ModelInfo:
    """Where an adapter's model came from: path, format, sha256 and loader notes."""
    info = dict(getattr(model, "info", {}) or {})
    return ModelInfo(
        path=info.pop("path", None), format=info.pop("format", None), sha256=info.pop("sha256", None), extra=info
    )
