"""The ONNX→torch converter matches onnxruntime and gives the original model's gradients."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from bastion.core.errors import ModelLoadError
from bastion.models.loaders import OnnxAdapter, load_model
from bastion.models.onnx_torch import convert, unsupported_ops


def _ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _graph(nodes: list, inits: list[np.ndarray], in_shape: list, out_name: str = "y") -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["N", None])],
        [numpy_helper.from_array(a.astype(a.dtype), name=f"w{i}") for i, a in enumerate(inits)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def _case_ops() -> dict[str, tuple[list, list[np.ndarray], list]]:
    rng = np.random.default_rng(0)
    f = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    return {
        "gemm_trans_sigmoid_tanh": ([
            helper.make_node("Flatten", ["x"], ["f"], axis=1),
            helper.make_node("Gemm", ["f", "w0", "w1"], ["g"], transB=1, alpha=0.7, beta=1.3),
            helper.make_node("Sigmoid", ["g"], ["s"]),
            helper.make_node("Tanh", ["g"], ["t"]),
            helper.make_node("Sub", ["s", "t"], ["y"]),
        ], [f(5, 12), f(5)], ["N", 3, 4]),
        "conv_asym_pad_bn_avgpool": ([
            helper.make_node("Conv", ["x", "w0", "w1"], ["c"], pads=[0, 1, 1, 0], strides=[1, 1]),
            helper.make_node("BatchNormalization", ["c", "w2", "w3", "w4", "w5"], ["b"], epsilon=1e-3),
            helper.make_node("AveragePool", ["b"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("Flatten", ["p"], ["y"]),
        ], [f(3, 2, 3, 3), f(3), f(3), f(3), f(3), np.abs(f(3)) + 0.5], ["N", 2, 6, 6]),
        "transpose_reshape_concat_matmul_softmax": ([
            helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
            helper.make_node("Reshape", ["t", "w0"], ["r"]),
            helper.make_node("Concat", ["r", "r"], ["c"], axis=1),
            helper.make_node("MatMul", ["c", "w1"], ["m"]),
            helper.make_node("Div", ["m", "w2"], ["d"]),
            helper.make_node("Softmax", ["d"], ["y"], axis=-1),
        ], [np.array([0, -1], dtype=np.int64), f(24, 4), np.array([2.0], dtype=np.float32)], ["N", 3, 4]),
        "maxpool_relu_mul_add_gap": ([
            helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["p"], ["r"]),
            helper.make_node("Mul", ["r", "w0"], ["m"]),
            helper.make_node("Add", ["m", "w1"], ["a"]),
            helper.make_node("GlobalAveragePool", ["a"], ["g"]),
            helper.make_node("Flatten", ["g"], ["y"]),
        ], [f(1, 2, 1, 1), f(1, 2, 1, 1)], ["N", 2, 7, 7]),
    }


@pytest.mark.parametrize("case", sorted(_case_ops()))
def test_converter_matches_onnxruntime(case: str) -> None:
    nodes, inits, shape = _case_ops()[case]
    model = _graph(nodes, inits, shape)
    x = np.random.default_rng(1).normal(size=(5, *shape[1:])).astype(np.float32)

    module = convert(model, strip_softmax=False)

    with torch.no_grad():
        mine = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(mine, _ort(model, x), rtol=1e-4, atol=1e-5)


def test_gradients_match_the_original_torch_model(saved_models: dict[str, Path], tiny_cnn: nn.Module) -> None:
    converted = convert(onnx.load(str(saved_models["onnx"])))
    x = torch.rand(6, 1, 8, 8)
    y = torch.tensor([0, 1, 2, 0, 1, 2])

    grads = []
    for net in (tiny_cnn, converted):
        xi = x.clone().requires_grad_(True)
        nn.functional.cross_entropy(net(xi), y).backward()
        grads.append(xi.grad)

    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)


def test_unsupported_op_falls_back_to_black_box(tmp_path: Path) -> None:
    nodes = [helper.make_node("Flatten", ["x"], ["f"]),
             helper.make_node("Gemm", ["f", "w0"], ["g"]),
             helper.make_node("Hardmax", ["g"], ["y"])]
    model = _graph(nodes, [np.ones((4, 3), dtype=np.float32)], ["N", 4])
    path = tmp_path / "hardmax.onnx"
    onnx.save(model, str(path))

    assert unsupported_ops(model) == ["Hardmax"]
    with pytest.raises(ModelLoadError, match="Hardmax"):
        convert(model)
    adapter = load_model(path)
    assert isinstance(adapter, OnnxAdapter)
    assert "Hardmax" in adapter.info["white_box"]
    assert adapter.predict_proba(np.ones((2, 4), dtype=np.float32)).shape == (2, 3)
