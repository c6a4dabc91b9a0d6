"""SHAP additivity, explainer choice, LIME output and plots."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from bastion.core.model import InputSpec
from bastion.explain import choose_method, explain_lime, explain_shap, local_bar_png, summary_plot_png
from bastion.models.adapters import SklearnAdapter, TorchAdapter


@pytest.fixture(scope="module")
def tabular() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    y = (2 * x[:, 0] - x[:, 3] + 0.1 * rng.normal(size=300) > 0).astype(np.int64)
    return x, y


def test_linear_shap_values_sum_to_prediction_difference(tabular) -> None:  # type: ignore[no-untyped-def]
    x, y = tabular
    est = LogisticRegression().fit(x, y)
    model = SklearnAdapter(est, InputSpec(shape=(5,)))
    exp = explain_shap(model, x[:40], x, [f"f{i}" for i in range(5)])
    assert exp.method == "linear"
    # additivity: base value + sum of attributions = the model's margin for the explained (positive) class
    sign = np.where(est.predict(x[:40]) == 1, 1.0, -1.0)  # towards the predicted class
    margin = est.decision_function(x[:40]) * sign
    np.testing.assert_allclose(exp.base_values + exp.values.sum(1), margin, rtol=1e-4, atol=1e-4)
    assert [f["feature"] for f in exp.top_features(2)] == ["f0", "f3"]


def test_tree_shap_is_additive_and_fast(tabular) -> None:  # type: ignore[no-untyped-def]
    x, y = tabular
    est = GradientBoostingClassifier(n_estimators=30, random_state=0).fit(x, y)
    model = SklearnAdapter(est, InputSpec(shape=(5,)))
    exp = explain_shap(model, x, x)
    assert choose_method(model) == "tree" and exp.values.shape == (300, 5)
    sign = np.where(est.predict(x) == 1, 1.0, -1.0)
    np.testing.assert_allclose(exp.base_values + exp.values.sum(1), est.decision_function(x) * sign, atol=1e-4)
    assert exp.duration_s < 10


def test_gradient_shap_on_torch_model(tabular) -> None:  # type: ignore[no-untyped-def]
    x, _ = tabular
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[3.0, 0, 0, 0, 0], [-3.0, 0, 0, 0, 0]]))
    model = TorchAdapter(net, InputSpec(shape=(5,)), 2)
    exp = explain_shap(model, x[:20], x[:50])
    assert exp.method == "gradient"
    assert exp.top_features(1)[0]["feature"] == "x0"
    assert summary_plot_png(exp, x[:20])[:4] == b"\x89PNG"


def test_lime_names_the_driving_feature(tabular) -> None:  # type: ignore[no-untyped-def]
    x, y = tabular
    model = SklearnAdapter(LogisticRegression().fit(x, y), InputSpec(shape=(5,)))
    lime = explain_lime(model, x[0], x, [f"f{i}" for i in range(5)], num_samples=400)
    assert "f0" in lime["weights"][0]["rule"]
    png = local_bar_png([{"feature": w["rule"], "shap": w["weight"]} for w in lime["weights"]], "LIME")
    assert png[:4] == b"\x89PNG"


def test_grid_segments_cover_small_images() -> None:
    from bastion.explain import grid_segments

    seg = grid_segments(28, 28)
    assert seg.shape == (28, 28) and len(np.unique(seg)) == 49 and (seg[:4, :4] == seg[0, 0]).all()
    assert len(np.unique(grid_segments(8, 8, cell=2))) == 16


def test_lime_image_finds_the_region_the_model_reads() -> None:
    from bastion.explain import explain_lime_image

    class TopLeft(torch.nn.Module):
        """Class 1 iff the top-left 7x7 patch is bright: LIME must put the weight there."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            s = 8.0 * (x[:, 0, :7, :7].mean((1, 2)) - 0.5)
            return torch.stack([-s, s], dim=1)

    model = TorchAdapter(TopLeft(), InputSpec(shape=(1, 28, 28), clip_min=0.0, clip_max=1.0), n_classes=2)
    img = np.full((1, 28, 28), 0.3, dtype=np.float32)
    img[0, :7, :7] = 1.0
    res = explain_lime_image(model, img, ["dark", "bright"], num_samples=300, seed=0)
    assert res["method"] == "lime_image" and res["explained_class_name"] == "bright" and res["segments"] == 49
    top = res["top_segments"][0]
    assert top["weight"] > 0 and top["rows"][1] < 7 and top["cols"][1] < 7
    wmap = res["weight_map"]
    assert wmap.shape == (28, 28) and wmap[:7, :7].mean() > 5 * abs(wmap[14:, 14:]).mean()
