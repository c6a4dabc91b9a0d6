"""A small ONNX → torch converter for white-box attacks on ONNX models.

``convert(model_proto)`` returns an ``OnnxModule`` — an ``nn.Module`` that interprets the ONNX
graph node by node with torch ops, so gradients flow from the outputs back to the input.
Float initializers become parameters (frozen by ``TorchAdapter``), integer ones buffers.

Covers the op set that classifiers exported from PyTorch, Keras (tf2onnx) and
scikit-learn-style MLPs use: Gemm, MatMul, Add, Sub, Mul, Div, Pow, Sqrt, Exp, Log, Neg, Abs,
Relu, LeakyRelu, Elu, Selu, Sigmoid, Tanh, Softmax, LogSoftmax, Softplus, HardSigmoid, Erf, Gelu,
Flatten, Reshape, Squeeze, Unsqueeze, Transpose, Concat, Identity, Dropout, Constant, Shape,
Gather, Cast, Clip, Conv, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool,
BatchNormalization, ReduceMean, ReduceSum, ReduceMax, Pad.
``unsupported_ops(model)`` lists the ops outside this set; the loader then falls back to the
black-box onnxruntime adapter. The loader checks the converted module against onnxruntime on
a probe batch before trusting it (``max_abs_diff``).

Examples:
    >>> import onnx                                                     # doctest: +SKIP
    >>> module = convert(onnx.load("model.onnx"))                       # doctest: +SKIP
    >>> logits = module(torch.rand(4, 1, 28, 28, requires_grad=True))   # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bastion.core.errors import ModelLoadError

Env = dict[str, Any]
OpFn = Callable[[list[Any], dict[str, Any]], Any]


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper, numpy_helper

    out: dict[str, Any] = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if a.type == a.TENSOR:
            v = numpy_helper.to_array(v)
        elif isinstance(v, bytes):
            v = v.decode("utf-8")
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [s.decode("utf-8") for s in v]
        out[a.name] = v
    return out


def _ints(t: Any) -> list[int]:
    if isinstance(t, torch.Tensor):
        return [int(v) for v in t.reshape(-1).tolist()]
    return [int(v) for v in np.asarray(t).reshape(-1).tolist()]


def _axes(inputs: list[Any], attrs: dict[str, Any], idx: int = 1) -> list[int] | None:
    if "axes" in attrs:
        return [int(a) for a in attrs["axes"]]
    if len(inputs) > idx and inputs[idx] is not None:
        return _ints(inputs[idx])
    return None


def _gemm(i: list[Any], a: dict[str, Any]) -> torch.Tensor:
    x, w = i[0], i[1]
    if a.get("transA", 0):
        x = x.t()
    if a.get("transB", 0):
        w = w.t()
    y = a.get("alpha", 1.0) * (x @ w)
    if len(i) > 2 and i[2] is not None:
        y = y + a.get("beta", 1.0) * i[2]
    return y


def _softmax(fn: Callable[..., torch.Tensor]) -> OpFn:
    def op(i: list[Any], a: dict[str, Any], opset: int = 13) -> torch.Tensor:
        return fn(i[0], dim=int(a.get("axis", -1)))

    return op


def _flatten(i: list[Any], a: dict[str, Any]) -> torch.Tensor:
    axis = int(a.get("axis", 1))
    x = i[0]
    axis = axis % x.dim() if x.dim() else 0
    lead = int(np.prod(x.shape[:axis])) if axis else 1
    return x.reshape(lead, -1)


def _reshape(i: list[Any], a: dict[str, Any]) -> torch.Tensor:
    x, shape = i[0], _ints(i[1])
    if not a.get("allowzero", 0):
        shape = [x.shape[k] if s == 0 else s for k, s in enumerate(shape)]
    return x.reshape(shape)


def _pads_2d(pads: list[int], nd: int) -> tuple[list[int], bool]:
    """ONNX pads [b1..bn, e1..en] → F.pad order; second value says whether they are symmetric."""
    begins, ends = pads[:nd], pads[nd:]
    torch_pad: list[int] = []
    for b, e in zip(reversed(begins), reversed(ends), strict=True):
        torch_pad += [b, e]
    return torch_pad, begins == ends


def _auto_pad(x: torch.Tensor, a: dict[str, Any], kernel: list[int], strides: list[int], dil: list[int]) -> list[int]:
    mode = a.get("auto_pad", "NOTSET")
    nd = len(kernel)
    if mode in ("NOTSET", ""):
        return [int(p) for p in a.get("pads", [0] * (2 * nd))]
    if mode == "VALID":
        return [0] * (2 * nd)
    begins, ends = [], []
    for k in range(nd):
        size = x.shape[2 + k]
        out = math.ceil(size / strides[k])
        total = max((out - 1) * strides[k] + (kernel[k] - 1) * dil[k] + 1 - size, 0)
        small, big = total // 2, total - total // 2
        begins.append(small if mode == "SAME_UPPER" else big)
        ends.append(big if mode == "SAME_UPPER" else small)
    return begins + ends


def _conv(i: list[Any], a: dict[str, Any]) -> torch.Tensor:
    x, w = i[0], i[1]
    b = i[2] if len(i) > 2 else None
    nd = w.dim() - 2
    kernel = [int(k) for k in a.get("kernel_shape", w.shape[2:])]
    strides = [int(s) for s in a.get("strides", [1] * nd)]
    dil = [int(d) for d in a.get("dilations", [1] * nd)]
    pads = _auto_pad(x, a, kernel, strides, dil)
    tpad, sym = _pads_2d(pads, nd)
    padding: Any = pads[:nd]
    if not sym:
        x = F.pad(x, tpad)
        padding = 0
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]
    return conv(x, w, b, stride=strides, padding=padding, dilation=dil, groups=int(a.get("group", 1)))


def _pool(kind: str) -> OpFn:
    def op(i: list[Any], a: dict[str, Any]) -> torch.Tensor:
        x = i[0]
        kernel = [int(k) for k in a["kernel_shape"]]
        nd = len(kernel)
        strides = [int(s) for s in a.get("strides", [1] * nd)]
        dil = [int(d) for d in a.get("dilations", [1] * nd)]
        pads = _auto_pad(x, a, kernel, strides, dil)
        tpad, sym = _pads_2d(pads, nd)
        ceil = bool(a.get("ceil_mode", 0))
        if kind == "max":
            padding: Any = pads[:nd]
            if not sym:
                x = F.pad(x, tpad, value=float("-inf"))
                padding = 0
            fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[nd]
            return fn(x, kernel, strides, padding, dil, ceil_mode=ceil)
        include = bool(a.get("count_include_pad", 0))
        padding = pads[:nd]
        if not sym:
            x = F.pad(x, tpad)
            padding = [0] * nd
        afn = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[nd]
        return afn(x, kernel, strides, padding, ceil_mode=ceil, count_include_pad=include)

    return op


def _batchnorm(i: list[Any], a: dict[str, Any]) -> torch.Tensor:
    x, scale, bias, mean, var = i[:5]
    return F.batch_norm(x, mean, var, scale, bias, training=False, eps=float(a.get("epsilon", 1e-5)))


def _concat(i: list[Any], a: dict[str, Any]) -> torch.Tensor:
    ts = [t if isinstance(t, torch.Tensor) else torch.as_tensor(t) for t in i if t is not None]
    return torch.cat(ts, dim=int(a["axis"]))


def _squeeze(i: list[Any], a: dict[str, Any]) -> torch.Tensor:
    axes = _axes(i, a)
    x = i[0]
    if axes is None:
        return x.squeeze()
    for ax in sorted((ax % x.dim() for ax in axes), reverse=True):
        x = x.squeeze(ax)
    return x


def _unsqueeze(i: list[Any], a: dict[str, Any]) -> torch.Tensor:
    axes = _axes(i, a) or []
    x = i[0]
    rank = x.dim() + len(axes)
    for ax in sorted(ax % rank for ax in axes):
        x = x.unsqueeze(ax)
    return x


def _gather(i: list[Any], a: dict[str, Any]) -> torch.Tensor:
    x, idx = i[0], i[1]
    axis = int(a.get("axis", 0))
    idx_t = torch.as_tensor(idx, dtype=torch.long)
    idx_t = torch.where(idx_t < 0, idx_t + x.shape[axis], idx_t)
    return torch.index_select(x, axis, idx_t.reshape(-1)).reshape(
        (*x.shape[:axis], *idx_t.shape, *x.shape[axis + 1 :])
    )


_ONNX_DTYPES = {1: torch.float32, 6: torch.int32, 7: torch.int64, 9: torch.bool, 10: torch.float16, 11: torch.float64}


def _cast(i: list[Any], a: dict[str, Any]) -> torch.Tensor:
    dtype = _ONNX_DTYPES.get(int(a["to"]))
    if dtype is None:
        raise ModelLoadError(f"ONNX Cast to type {a['to']} is not supported by the torch converter")
    return i[0].to(dtype)


def _clip(i: list[Any], a: dict[str, Any]) -> torch.Tensor:
    lo = i[1] if len(i) > 1 and i[1] is not None else a.get("min")
    hi = i[2] if len(i) > 2 and i[2] is not None else a.get("max")
    lo_v = None if lo is None else float(torch.as_tensor(lo))
    hi_v = None if hi is None else float(torch.as_tensor(hi))
    return torch.clamp(i[0], lo_v, hi_v)


def _reduce(fn: str) -> OpFn:
    def op(i: list[Any], a: dict[str, Any]) -> torch.Tensor:
        x = i[0]
        axes = _axes(i, a)
        keep = bool(a.get("keepdims", 1))
        dims = list(range(x.dim())) if not axes else [ax % x.dim() for ax in axes]
        if fn == "max":
            out = x
            for d in sorted(dims, reverse=True):
                out = out.amax(dim=d, keepdim=keep)
            return out
        return getattr(torch, fn)(x, dim=dims, keepdim=keep)

    return op


def _pad(i: list[Any], a: dict[str, Any]) -> torch.Tensor:
    x = i[0]
    pads = _ints(i[1]) if len(i) > 1 else [int(p) for p in a["pads"]]
    value = float(torch.as_tensor(i[2])) if len(i) > 2 and i[2] is not None else float(a.get("value", 0.0))
    mode = a.get("mode", "constant")
    tpad, _ = _pads_2d(pads, x.dim())
    while len(tpad) >= 2 and tpad[-1] == 0 and tpad[-2] == 0:
        tpad = tpad[:-2]
    return F.pad(x, tpad, mode=mode, value=value) if mode == "constant" else F.pad(x, tpad, mode=mode)


OPS: dict[str, OpFn] = {
    "Gemm": _gemm,
    "MatMul": lambda i, a: i[0] @ i[1],
    "Add": lambda i, a: i[0] + i[1],
    "Sub": lambda i, a: i[0] - i[1],
    "Mul": lambda i, a: i[0] * i[1],
    "Div": lambda i, a: i[0] / i[1],
    "Pow": lambda i, a: torch.pow(i[0], i[1]),
    "Sqrt": lambda i, a: torch.sqrt(i[0]),
    "Exp": lambda i, a: torch.exp(i[0]),
    "Log": lambda i, a: torch.log(i[0]),
    "Neg": lambda i, a: -i[0],
    "Abs": lambda i, a: torch.abs(i[0]),
    "Erf": lambda i, a: torch.erf(i[0]),
    "Relu": lambda i, a: F.relu(i[0]),
    "LeakyRelu": lambda i, a: F.leaky_relu(i[0], float(a.get("alpha", 0.01))),
    "Elu": lambda i, a: F.elu(i[0], float(a.get("alpha", 1.0))),
    "Selu": lambda i, a: F.selu(i[0]),
    "Sigmoid": lambda i, a: torch.sigmoid(i[0]),
    "HardSigmoid": lambda i, a: torch.clamp(float(a.get("alpha", 0.2)) * i[0] + float(a.get("beta", 0.5)), 0, 1),
    "Tanh": lambda i, a: torch.tanh(i[0]),
    "Softplus": lambda i, a: F.softplus(i[0]),
    "Gelu": lambda i, a: F.gelu(i[0], approximate="tanh" if a.get("approximate") == "tanh" else "none"),
    "Softmax": _softmax(torch.softmax),
    "LogSoftmax": _softmax(torch.log_softmax),
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Transpose": lambda i, a: i[0].permute(*[int(p) for p in a["perm"]]) if "perm" in a else i[0].permute(
        *reversed(range(i[0].dim()))
    ),
    "Concat": _concat,
    "Identity": lambda i, a: i[0],
    "Dropout": lambda i, a: i[0],
    "Shape": lambda i, a: torch.tensor(list(i[0].shape), dtype=torch.long)[a.get("start", 0) : a.get("end")],
    "Gather": _gather,
    "Cast": _cast,
    "Clip": _clip,
    "Conv": _conv,
    "MaxPool": _pool("max"),
    "AveragePool": _pool("avg"),
    "GlobalAveragePool": lambda i, a: i[0].mean(dim=tuple(range(2, i[0].dim())), keepdim=True),
    "GlobalMaxPool": lambda i, a: i[0].amax(dim=tuple(range(2, i[0].dim())), keepdim=True),
    "BatchNormalization": _batchnorm,
    "ReduceMean": _reduce("mean"),
    "ReduceSum": _reduce("sum"),
    "ReduceMax": _reduce("max"),
    "Pad": _pad,
}
SUPPORTED_OPS = frozenset([*OPS, "Constant"])


def unsupported_ops(model: Any) -> list[str]:
    """ONNX op types in ``model``'s main graph that the converter does not handle (sorted)."""
    return sorted({n.op_type for n in model.graph.node if n.op_type not in SUPPORTED_OPS or n.domain not in ("", "ai.onnx")})


class OnnxModule(nn.Module):
    """An ONNX graph executed with torch ops (differentiable).

    ``strip_softmax=True`` drops a final Softmax so the module returns logits (what white-box
    attacks want); ``outputs_probabilities`` records whether it did.
    """

    def __init__(self, model: Any, strip_softmax: bool = True) -> None:
        super().__init__()
        from onnx import numpy_helper

        graph = model.graph
        bad = unsupported_ops(model)
        if bad:
            raise ModelLoadError(f"the ONNX→torch converter does not support ops: {', '.join(bad)}")
        self._names: dict[str, str] = {}
        self.params = nn.ParameterDict()
        for k, init in enumerate(graph.initializer):
            arr = numpy_helper.to_array(init).copy()
            key = f"t{k}"
            self._names[init.name] = key
            t = torch.from_numpy(arr)
            if t.is_floating_point():
                self.params[key] = nn.Parameter(t.float(), requires_grad=False)
            else:
                self.register_buffer(key, t)
        init_names = {i.name for i in graph.initializer}
        self.input_names = [i.name for i in graph.input if i.name not in init_names]
        if len(self.input_names) != 1:
            raise ModelLoadError(f"expected an ONNX model with one input, found {len(self.input_names)}")
        self.output_name = graph.output[0].name
        self.nodes: list[tuple[str, list[str], list[str], dict[str, Any]]] = []
        for node in graph.node:
            self.nodes.append((node.op_type, list(node.input), list(node.output), _attrs(node)))
        self.outputs_probabilities = False
        if strip_softmax and self.nodes and self.nodes[-1][0] == "Softmax" and self.nodes[-1][2] == [self.output_name]:
            _op, ins, _outs, attrs = self.nodes[-1]
            self.nodes[-1] = ("Identity", ins, [self.output_name], attrs)
            self.outputs_probabilities = True

    def state_name(self, initializer: str) -> str | None:
        """Where an ONNX initializer lives in this module's state (``params.tK`` or a buffer name), else None."""
        key = self._names.get(initializer)
        if key is None:
            return None
        return f"params.{key}" if key in self.params else key

    def _value(self, name: str) -> Any:
        key = self._names[name]
        return self.params[key] if key in self.params else getattr(self, key)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env: Env = {self.input_names[0]: x}
        for op, ins, outs, attrs in self.nodes:
            if op == "Constant":
                val = attrs.get("value")
                if val is None:
                    val = np.asarray(attrs.get("value_float", attrs.get("value_floats", attrs.get("value_ints",
                                                attrs.get("value_int")))))
                t = torch.from_numpy(np.array(val))
                env[outs[0]] = t.float() if t.is_floating_point() else t
                continue
            args = [None if n == "" else env[n] if n in env else self._value(n) for n in ins]
            result = OPS[op](args, attrs)
            if isinstance(result, tuple):
                for name, r in zip(outs, result, strict=False):
                    env[name] = r
            else:
                env[outs[0]] = result
        return env[self.output_name]


def convert(model: Any, strip_softmax: bool = True) -> OnnxModule:
    """Convert a loaded ``onnx.ModelProto`` into a differentiable ``OnnxModule``."""
    return OnnxModule(model, strip_softmax=strip_softmax)
