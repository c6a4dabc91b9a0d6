"""Per-format scanners and the directory/archive walk behind ``scan_path``."""

from __future__ import annotations

import ast
import itertools
import json
import os
import re
from pathlib import Path, PurePosixPath
from typing import IO, Any

from bastion.artifacts.scan.formats import read_head
from bastion.artifacts.scan.pickle_scan import scan_pickle_stream
from bastion.artifacts.scan.policy import GlobalKind, Policy
from bastion.artifacts.scan.report import FileScan, ScanFinding
from bastion.core.severity import Severity

# archive limits (zip bombs, path traversal, runaway nesting)
MAX_MEMBERS = 100_000
MAX_TOTAL_UNCOMPRESSED = 16 << 30
MAX_RATIO = 200
MAX_MEMBER_READ = 1 << 30
MAX_ARCHIVE_DEPTH = 3
MAX_DECOMPRESSED = 8 << 30
SAFETENSORS_MAX_HEADER = 100 << 20

_ONNX_STANDARD_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training", "ai.onnx.training"}
_SAFETENSORS_ITEMSIZE = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1, "F4": 1, "F6_E2M3": 1,
    "F6_E3M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8, "C64": 8,
}


_KERAS_UNSAFE_FUNCTIONS = {"get_file", "load_model", "load_weights", "load_img", "save_model", "register_keras_serializable"}
_NPY_OBJECT = re.compile(r"""['"][|<>=]?O\d*['"]""")


def _descr_has_object(descr: Any) -> bool:
    if isinstance(descr, str):
        return descr.lstrip("|<>=").startswith("O")
    if isinstance(descr, list | tuple):
        return any(_descr_has_object(d[1] if isinstance(d, list | tuple) and len(d) > 1 else d) for d in descr)
    return False


class _Ctx:
    def __init__(self, policy: Policy, root_dir: Path | None) -> None:
        self.policy = policy
        self.root_dir = root_dir


# -- pickles -------------------------------------------------------------------------------------
def _scan_pickle(fs: FileScan, fh: IO[bytes], ctx: _Ctx, member: str, legacy_torch: bool = False) -> None:
    # legacy torch.save: magic, protocol, sys_info, object and storage-key pickles, then raw storages
    findings, _ = scan_pickle_stream(fh, ctx.policy, member, max_pickles=5 if legacy_torch else 16)
    if legacy_torch:
        findings = [f for f in findings if f.code != "PICKLE_TRAILING_DATA"]
    fs.findings.extend(findings)
    fs.members_scanned += 1


def _scan_pickle0(fs: FileScan, data_fh: IO[bytes], ctx: _Ctx, member: str) -> bool:
    """A protocol 0/1 candidate: a pickle only if it parses to STOP or references globals (text does not)."""
    findings, n_ops = scan_pickle_stream(data_fh, ctx.policy, member)
    benign_codes = {"PICKLE_MALFORMED", "PICKLE_TRAILING_DATA"}
    if all(f.code in benign_codes for f in findings) and (findings or n_ops < 2):
        return False  # text or other data that merely starts with a pickle opcode byte
    fs.findings.extend(findings)
    fs.members_scanned += 1
    return True


def _is_joblib(findings_src: IO[bytes]) -> bool:
    head = read_head(findings_src, 4096)
    return b"joblib" in head and b"NumpyArrayWrapper" in head


# -- numpy ---------------------------------------------------------------------------------------
def _scan_npy(fs: FileScan, fh: IO[bytes], ctx: _Ctx, member: str) -> None:
    magic = fh.read(8)
    major = magic[6] if len(magic) > 6 else 0
    hlen_bytes = fh.read(2 if major == 1 else 4)
    hlen = int.from_bytes(hlen_bytes, "little") if hlen_bytes else 0
    if hlen > 1 << 20:
        fs.findings.append(ScanFinding(Severity.HIGH, "NUMPY_HEADER_TOO_LARGE", f"npy header of {hlen} bytes",
                                       member, 8))
        return
    raw = fh.read(hlen)
    text = raw.decode("latin1")
    if "'descr'" not in text:
        fs.findings.append(ScanFinding(Severity.MEDIUM, "NUMPY_MALFORMED_HEADER", "npy header has no descr",
                                       member, 8))
        return
    descr: Any = ""
    if _NPY_OBJECT.search(text):  # only then pay for an exact parse (literal_eval, never eval)
        try:
            descr = ast.literal_eval(text)["descr"]
        except (ValueError, SyntaxError, KeyError, TypeError, MemoryError, RecursionError):
            fs.findings.append(ScanFinding(Severity.MEDIUM, "NUMPY_MALFORMED_HEADER", "npy header does not parse",
                                           member, 8))
            return
    fs.members_scanned += 1
    if _descr_has_object(descr):
        fs.findings.append(ScanFinding(
            Severity.LOW, "NUMPY_OBJECT_ARRAY",
            "object-dtype array: its data is a pickle (np.load needs allow_pickle=True); the pickle was scanned",
            member, fh.tell()))
        findings, _ = scan_pickle_stream(fh, ctx.policy, f"{member}>object-array" if member else "object-array")
        fs.findings.extend(findings)


# -- safetensors ---------------------------------------------------------------------------------
def _scan_safetensors(fs: FileScan, fh: IO[bytes], size: int, member: str) -> None:
    def add(sev: Severity, code: str, msg: str, off: int | None = 0) -> None:
        fs.findings.append(ScanFinding(sev, code, msg, member, off))

    n = int.from_bytes(fh.read(8), "little")
    fs.members_scanned += 1
    if n > SAFETENSORS_MAX_HEADER:
        add(Severity.HIGH, "SAFETENSORS_HEADER_TOO_LARGE", f"header claims {n} bytes (limit {SAFETENSORS_MAX_HEADER})")
        return
    if 8 + n > size:
        add(Severity.HIGH, "SAFETENSORS_HEADER_OUT_OF_BOUNDS", f"header of {n} bytes runs past the file end ({size})")
        return
    try:
        header = json.loads(fh.read(n))
    except (ValueError, UnicodeDecodeError, RecursionError):
        add(Severity.HIGH, "SAFETENSORS_MALFORMED_HEADER", "header is not valid JSON", 8)
        return
    if not isinstance(header, dict):
        add(Severity.HIGH, "SAFETENSORS_MALFORMED_HEADER", "header is not a JSON object", 8)
        return
    data_len = size - 8 - n
    meta = header.pop("__metadata__", None)
    if meta is not None and (not isinstance(meta, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in meta.items())):
        add(Severity.MEDIUM, "SAFETENSORS_BAD_METADATA", "__metadata__ must map strings to strings", 8)
    ranges: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if not isinstance(info, dict):
            add(Severity.HIGH, "SAFETENSORS_BAD_ENTRY", f"tensor {name!r} entry is not an object", 8)
            continue
        dtype, shape, offs = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in _SAFETENSORS_ITEMSIZE or not isinstance(shape, list) or not all(
                isinstance(s, int) and s >= 0 for s in shape):
            add(Severity.HIGH, "SAFETENSORS_BAD_ENTRY", f"tensor {name!r} has an invalid dtype or shape", 8)
            continue
        if (not isinstance(offs, list) or len(offs) != 2 or not all(isinstance(o, int) for o in offs)
                or not 0 <= offs[0] <= offs[1] <= data_len):
            add(Severity.HIGH, "SAFETENSORS_OFFSETS_OUT_OF_BOUNDS",
                f"tensor {name!r} data_offsets {offs} outside the {data_len}-byte data section", 8)
            continue
        count = 1
        for s in shape:
            count *= s
        if (offs[1] - offs[0]) != count * _SAFETENSORS_ITEMSIZE[dtype] and dtype not in ("F4", "F6_E2M3", "F6_E3M2"):
            add(Severity.HIGH, "SAFETENSORS_SIZE_MISMATCH",
                f"tensor {name!r}: {offs[1] - offs[0]} bytes for shape {shape} {dtype}", 8)
        ranges.append((offs[0], offs[1], name))
    ranges.sort()
    for (_b0, e0, n0), (b1, _e1, n1) in itertools.pairwise(ranges):
        if b1 < e0:
            add(Severity.HIGH, "SAFETENSORS_OVERLAP", f"tensors {n0!r} and {n1!r} overlap", 8)
            break
    covered = sum(e - b for b, e, _ in ranges)
    if ranges and covered < data_len:
        add(Severity.LOW, "SAFETENSORS_UNUSED_BYTES", f"{data_len - covered} data bytes belong to no tensor", 8)


# -- onnx ----------------------------------------------------------------------------------------
def _scan_onnx(fs: FileScan, data: bytes, model_dir: Path | None, member: str) -> bool:
    try:
        import onnx
        from google.protobuf.message import DecodeError
    except ImportError:  # pragma: no cover - onnx is a core dependency
        return False
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError):
        return False
    if not model.opset_import or (not model.graph.node and not model.graph.initializer):
        return False
    fs.members_scanned += 1
    domains = {o.domain for o in model.opset_import}

    def graphs(g: Any) -> Any:
        yield g
        for node in g.node:
            for attr in node.attribute:
                if attr.g.node or attr.g.initializer:
                    yield from graphs(attr.g)
                for sub in attr.graphs:
                    yield from graphs(sub)

    all_nodes = [n for g in graphs(model.graph) for n in g.node]
    all_nodes += [n for f in model.functions for n in f.node]
    custom = sorted({n.domain for n in all_nodes if n.domain not in _ONNX_STANDARD_DOMAINS} |
                    {d for d in domains if d not in _ONNX_STANDARD_DOMAINS})
    local_functions = {f.domain for f in model.functions}
    for dom in custom:
        if dom in local_functions:
            continue
        sev = Severity.MEDIUM if dom == "com.microsoft" else Severity.HIGH
        ops = sorted({n.op_type for n in all_nodes if n.domain == dom})
        fs.findings.append(ScanFinding(sev, "ONNX_CUSTOM_OP_DOMAIN",
                                       f"custom operator domain {dom!r} ({', '.join(ops) or 'opset only'}): "
                                       "needs a native library at load time", member, None, dom))
    tensors = [t for g in graphs(model.graph) for t in g.initializer]
    for t in tensors:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        loc = next((e.value for e in t.external_data if e.key == "location"), "")
        p = PurePosixPath(loc.replace("\\", "/"))
        escapes = p.is_absolute() or ".." in p.parts or (len(loc) > 1 and loc[1] == ":")
        if not escapes and model_dir is not None:
            resolved = (model_dir / loc).resolve()
            escapes = not str(resolved).startswith(str(model_dir.resolve()) + os.sep)
        if escapes:
            fs.findings.append(ScanFinding(Severity.HIGH, "ONNX_EXTERNAL_DATA_ESCAPE",
                                           f"initializer {t.name!r} reads external data from {loc!r}, "
                                           "outside the model directory", member, None, loc))
    return True


# -- keras ---------------------------------------------------------------------------------------
def _keras_config_findings(fs: FileScan, config: Any, policy: Policy, member: str) -> None:
    seen: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            cls = node.get("class_name")
            if cls == "Lambda" and "Lambda" not in seen:
                seen.add("Lambda")
                fs.findings.append(ScanFinding(Severity.CRITICAL, "KERAS_LAMBDA_LAYER",
                                               "Keras Lambda layer: holds Python bytecode that runs when the "
                                               "model is loaded or called", member, None, "keras.layers.Lambda"))
            if cls == "__lambda__" and "__lambda__" not in seen:
                seen.add("__lambda__")
                fs.findings.append(ScanFinding(Severity.CRITICAL, "KERAS_LAMBDA_LAYER",
                                               "serialised Python lambda (marshal bytecode)", member, None, None))
            fn = node.get("config") if cls == "function" else None
            if isinstance(fn, str) and fn in _KERAS_UNSAFE_FUNCTIONS and fn not in seen:
                seen.add(fn)
                fs.findings.append(ScanFinding(Severity.HIGH, "KERAS_UNSAFE_FUNCTION",
                                               f"config calls {node.get('module')}.{fn}, which reads or fetches "
                                               "files when the model is built", member, None, fn))
            mod = node.get("module")
            if isinstance(mod, str) and not mod.startswith(("keras", "tensorflow", "tf_keras")):
                fname = node.get("class_name") if isinstance(node.get("class_name"), str) else ""
                fq = f"{mod}.{fname}"
                if fq not in seen:
                    seen.add(fq)
                    decision = policy.classify(mod, str(fname or "?"))
                    if decision.kind == GlobalKind.DANGEROUS:
                        fs.findings.append(ScanFinding(Severity.CRITICAL, "KERAS_DANGEROUS_OBJECT",
                                                       f"config references {fq}: {decision.reason}", member, None, fq))
                    elif decision.kind == GlobalKind.UNKNOWN:
                        fs.findings.append(ScanFinding(Severity.MEDIUM, "KERAS_CUSTOM_OBJECT",
                                                       f"config references custom object {fq}", member, None, fq))
            for v in node.values():
                visit(v)
        elif isinstance(node, list):
            for v in node:
                visit(v)

    visit(config)


def _scan_hdf5(fs: FileScan, path: Path, ctx: _Ctx, member: str) -> None:
    try:
        import h5py
    except ImportError:
        fs.error = "h5py is not installed; install bastion-ml[supplychain] to scan HDF5/Keras files"
        fs.scanned = False
        return
    with h5py.File(path, "r") as h5:
        raw = h5.attrs.get("model_config")
        fs.members_scanned += 1
        if raw is None:
            fs.format = "hdf5"
            return
        fs.format = "keras-h5"
        text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        try:
            config = json.loads(text)
        except ValueError:
            fs.findings.append(ScanFinding(Severity.MEDIUM, "KERAS_MALFORMED_CONFIG", "model_config is not JSON", member))
            return
        _keras_config_findings(fs, config, ctx.policy, member or "model_config")
