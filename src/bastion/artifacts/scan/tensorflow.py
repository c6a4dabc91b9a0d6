"""TensorFlow SavedModel and Keras SavedModel metadata, read without importing TensorFlow.

A SavedModel directory holds ``saved_model.pb`` (a ``SavedModel`` protobuf: meta graphs whose
graph and function library list every op the model runs), ``keras_metadata.pb`` (Keras layer
configs as JSON) and ``variables/`` (tensor data). The ops that touch the file system or the
network (``ReadFile``, ``WriteFile``, ``MatchingFiles``, dataset readers, ``PyFunc``…) run when the
model is served; Keras ``Lambda`` layers hold Python bytecode. The wire format is walked by a
minimal protobuf reader (varints and length-delimited fields), along these paths::

    SavedModel.meta_graphs(2) > MetaGraphDef.graph_def(2) > GraphDef.node(1) > NodeDef.op(2)
                                              GraphDef.library(2) > FunctionDefLibrary.function(1)
                                                  > FunctionDef.node_def(3) > NodeDef.op(2)
    SavedModel.meta_graphs(2) > MetaGraphDef.object_graph_def(7) > SavedObjectGraph.nodes(1)
        > SavedObject.user_object(4) > SavedUserObject.metadata(3)       (Keras JSON)
    SavedMetadata.nodes(1) > SavedObject.metadata(5)                     (keras_metadata.pb)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from bastion.artifacts.scan.report import FileScan, ScanFinding
from bastion.core.severity import Severity

MAX_PROTO_DEPTH = 64

# ops that read or write files, reach the network or call back into Python when the graph runs
UNSAFE_TF_OPS: dict[str, str] = {
    "ReadFile": "reads any file the server can read",
    "WriteFile": "writes any file the server can write",
    "MatchingFiles": "lists the server's file system",
    "ImmutableConst": "memory-maps a file named in the graph",
    "LoadAndRemapMatrix": "reads a checkpoint file named in the graph",
    "TextLineDataset": "reads files", "TextLineDatasetV2": "reads files",
    "TFRecordDataset": "reads files", "TFRecordDatasetV2": "reads files",
    "FixedLengthRecordDataset": "reads files", "FixedLengthRecordDatasetV2": "reads files",
    "CreateSummaryFileWriter": "writes event files", "DebugIdentityV2": "writes debug dumps to a directory",
    "DataServiceDataset": "connects to a network data service",
    "DataServiceDatasetV2": "connects to a network data service",
    "DataServiceDatasetV3": "connects to a network data service",
    "DataServiceDatasetV4": "connects to a network data service",
    "PyFunc": "calls a Python function", "PyFuncStateless": "calls a Python function",
    "EagerPyFunc": "calls a Python function",
}


class ProtobufError(ValueError):
    pass


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ProtobufError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of one message; bytes for length-delimited fields."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        no, wt = key >> 3, key & 7
        v: Any
        if wt == 0:
            v, i = _varint(buf, i)
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise ProtobufError("length-delimited field runs past the message")
            v, i = buf[i:i + n], i + n
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ProtobufError(f"unsupported wire type {wt}")
        if no == 0 or i > len(buf):
            raise ProtobufError("invalid field")
        yield no, wt, v


def _sub(buf: bytes, *path: int) -> Iterator[bytes]:
    """Every length-delimited value reached by following field numbers ``path``."""
    if not path:
        yield buf
        return
    for no, wt, v in fields(buf):
        if no == path[0] and wt == 2:
            yield from _sub(v, *path[1:])


def _ops(graph_def: bytes) -> Iterator[str]:
    for node in _sub(graph_def, 1):
        for op in _sub(node, 2):
            yield op.decode("utf-8", "replace")
    for fn in _sub(graph_def, 2, 1):
        for node in _sub(fn, 3):
            for op in _sub(node, 2):
                yield op.decode("utf-8", "replace")


def scan_saved_model(fs: FileScan, data: bytes, member: str, policy: Any) -> None:
    """Flag file-system/network/Python ops and Keras Lambda layers in a ``saved_model.pb``."""
    seen: dict[str, int] = {}

    def walk() -> None:
        for mg in _sub(data, 2):
            for gd in _sub(mg, 2):
                for op in _ops(gd):
                    seen[op] = seen.get(op, 0) + 1
            for meta in _sub(mg, 7, 1, 4, 3):
                _keras_json(fs, meta, member, policy)

    if not _parsed(fs, member, "saved_model.pb", walk):
        return
    for op in sorted(seen):
        if op in UNSAFE_TF_OPS:
            fs.findings.append(ScanFinding(
                Severity.HIGH, "TF_UNSAFE_OP", f"graph runs {op} ({UNSAFE_TF_OPS[op]}) x{seen[op]}", member,
                None, f"tensorflow.{op}"))


def scan_keras_metadata(fs: FileScan, data: bytes, member: str, policy: Any) -> None:
    """Keras layer configs in ``keras_metadata.pb`` (Lambda layers, custom objects)."""
    def walk() -> None:
        for meta in _sub(data, 1, 5):
            _keras_json(fs, meta, member, policy)

    _parsed(fs, member, "keras_metadata.pb", walk)


def _parsed(fs: FileScan, member: str, what: str, walk: Any) -> bool:
    try:
        walk()
    except (ProtobufError, RecursionError) as exc:
        fs.findings.append(ScanFinding(Severity.MEDIUM, "TF_MALFORMED_PROTOBUF", f"{what} does not parse: {exc}",
                                       member))
        return False
    fs.members_scanned += 1
    return True


def _keras_json(fs: FileScan, raw: bytes, member: str, policy: Any) -> None:
    from bastion.artifacts.scan.scanners import _keras_config_findings

    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return
    before = {(f.code, f.global_name) for f in fs.findings}
    sub = FileScan(fs.path, fs.format)
    _keras_config_findings(sub, doc, policy, member)
    fs.findings.extend(f for f in sub.findings if (f.code, f.global_name) not in before)


# -- a writer, for tests and the peer corpus (TensorFlow is not needed to make a SavedModel proto) ----
def _enc_varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def field_bytes(no: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return _enc_varint(no << 3 | 2) + _enc_varint(len(data)) + data


def field_int(no: int, value: int) -> bytes:
    return _enc_varint(no << 3) + _enc_varint(value)


def saved_model_bytes(graph_ops: list[str], function_ops: list[str] | None = None,
                      keras_metadata: list[dict[str, Any]] | None = None) -> bytes:
    """A ``SavedModel`` protobuf with the given graph ops, one function of ``function_ops``, and
    Keras user-object metadata (what TensorFlow writes, minus everything the scanner does not read)."""
    nodes = b"".join(field_bytes(1, field_bytes(1, f"n{i}") + field_bytes(2, op)) for i, op in enumerate(graph_ops))
    lib = b""
    if function_ops:
        fn = field_bytes(1, field_bytes(1, "__inference_serve_1")) + b"".join(
            field_bytes(3, field_bytes(1, f"f{i}") + field_bytes(2, op)) for i, op in enumerate(function_ops))
        lib = field_bytes(2, field_bytes(1, fn))
    graph = field_bytes(2, nodes + lib)
    objects = b"".join(field_bytes(1, field_bytes(4, field_bytes(1, "_tf_keras_layer") + field_bytes(3, json.dumps(m))))
                       for m in keras_metadata or [])
    meta_graph = graph + (field_bytes(7, objects) if objects else b"")
    return field_int(1, 1) + field_bytes(2, meta_graph)


def keras_metadata_bytes(layers: list[dict[str, Any]]) -> bytes:
    """A ``keras_metadata.pb`` (``SavedMetadata``) with one node per layer config."""
    return b"".join(field_bytes(1, field_int(2, i) + field_bytes(3, f"root.layer-{i}")
                                + field_bytes(4, "_tf_keras_layer") + field_bytes(5, json.dumps(m)))
                    for i, m in enumerate(layers))
