"""``explain_target``: global + local explanation of a target as a dict, and a self-contained HTML page."""

from __future__ import annotations

import base64
import html
from typing import Any

import numpy as np

from bastion.core.errors import InvalidInputError
from bastion.core.target import Target


def explain_target(target: Target, index: int = 0, samples: int = 200, method: str = "auto",
                   seed: int = 0) -> tuple[dict[str, Any], dict[str, bytes]]:
    """SHAP (global over ``samples`` rows and local for row ``index``), LIME and saliency (images).

    ``method`` picks the SHAP explainer (``auto``, ``tree``, ``linear``, ``gradient``, ``kernel``);
    ``lime`` = SHAP ``auto`` plus LIME for the local row on any model: ``lime_tabular`` rules for rows
    (always included for tabular data), ``lime_image`` grid-superpixel weights for images.
    """
    from bastion.explain.attributions import (
        explain_lime,
        explain_lime_image,
        explain_shap,
        heatmap_png,
        local_bar_png,
        signed_map_png,
        summary_plot_png,
    )

    want_lime = method == "lime"
    method = "auto" if want_lime else method

    x_all, _ = target.data.eval_split()
    if not 0 <= index < len(x_all):
        raise InvalidInputError(f"--index {index} is out of range: the data has {len(x_all)} rows")
    rows = np.unique(np.r_[np.arange(min(samples, len(x_all))), index])
    x = np.asarray(x_all[rows], np.float32)
    local_i = int(np.flatnonzero(rows == index)[0])
    bg_src = target.data.x_train if target.data.x_train is not None else x_all
    bg = np.asarray(bg_src[:200], np.float32)
    n_feat = int(np.prod(x.shape[1:]))
    names = target.metadata.feature_names if len(target.metadata.feature_names) == n_feat else None
    exp = explain_shap(target.model, x, bg, names, method=method, seed=seed)  # type: ignore[arg-type]
    proba = target.model.predict_proba(x[local_i : local_i + 1])[0]
    classes = target.metadata.class_names or [str(c) for c in range(len(proba))]
    pred = int(proba.argmax())
    out: dict[str, Any] = {
        "target": target.name,
        "global": exp.to_dict(10),
        "local": {"index": index, "predicted_class": classes[pred], "probability": float(proba[pred]),
                  "shap": exp.local(local_i, 10), "shap_base_value": float(exp.base_values[local_i])},
    }
    pngs: dict[str, bytes] = {}
    if x.ndim >= 3:
        maps = exp.values.reshape(x.shape)
        from bastion.explain.saliency import saliency_maps

        pngs["global"] = heatmap_png(np.abs(maps).mean(0, keepdims=True), ["mean |SHAP|"], "global attribution")
        ig = None
        if getattr(target.model, "module", None) is not None:
            ig = saliency_maps(target.model.module, x[local_i : local_i + 1], np.array([pred]))[0]  # type: ignore[attr-defined]
        local_maps = [x[local_i], maps[local_i]] + ([ig] if ig is not None else [])
        pngs["local"] = heatmap_png(np.stack(local_maps), ["input", "SHAP", "integrated gradients"][: len(local_maps)],
                                    f"row {index}: predicted {classes[pred]}")
        if want_lime:
            lo = target.model.input_spec.clip_min
            lime_img = explain_lime_image(target.model, x[local_i], classes, num_samples=1000,
                                          hide_value=0.0 if lo is None else float(lo), seed=seed)
            wmap = lime_img.pop("weight_map")
            out["local"]["lime"] = lime_img
            pngs["lime"] = signed_map_png(x[local_i], wmap, f"row {index}: LIME superpixels for '{classes[pred]}'")
    else:
        pngs["global"] = summary_plot_png(exp, x)
        pngs["local"] = local_bar_png(exp.local(local_i, 10), f"row {index}: SHAP towards '{classes[pred]}'")
        lime = explain_lime(target.model, x[local_i], bg, exp.feature_names, classes, num_samples=1000, seed=seed)
        out["local"]["lime"] = lime
        pngs["lime"] = local_bar_png([{"feature": w["rule"], "shap": w["weight"]} for w in lime["weights"]],
                                     f"row {index}: LIME weights towards '{classes[pred]}'")
    return out, pngs


def render_html(result: dict[str, Any], pngs: dict[str, bytes]) -> str:
    """A self-contained HTML page (images inlined as base64) a non-specialist can read."""

    def img(name: str) -> str:
        if name not in pngs:
            return ""
        return f'<img alt="{name}" src="data:image/png;base64,{base64.b64encode(pngs[name]).decode()}">'

    g, loc = result["global"], result["local"]
    rows = "".join(f"<tr><td>{html.escape(str(f['feature']))}</td><td>{f['mean_abs_shap']:.4f}</td></tr>"
                   for f in g["top_features"])
    local_rows = "".join(f"<tr><td>{html.escape(str(f['feature']))}</td><td>{f['shap']:+.4f}</td></tr>"
                         for f in loc["shap"])
    lime = loc.get("lime")
    if lime and lime.get("method") == "lime_image":
        seg_rows = "".join(
            f"<tr><td>rows {s['rows'][0]}–{s['rows'][1]}, columns {s['cols'][0]}–{s['cols'][1]}</td>"
            f"<td>{s['weight']:+.4f}</td></tr>" for s in lime["top_segments"])
        lime_block = (f"<h3>LIME (local surrogate over {lime['segments']} {html.escape(lime['segmentation'])} "
                      f"superpixels, fit R² {lime['score']:.2f})</h3><p>Red regions support the predicted class: "
                      f"hiding them lowers its probability; blue regions count against it.</p>{img('lime')}"
                      f"<table><tr><th>region</th><th>weight</th></tr>{seg_rows}</table>")
    else:
        lime_rows = "".join(f"<tr><td>{html.escape(w['rule'])}</td><td>{w['weight']:+.4f}</td></tr>"
                            for w in (lime or {}).get("weights", []))
        lime_block = (f"<h3>LIME (local surrogate)</h3>{img('lime')}<table><tr><th>rule</th><th>weight</th></tr>"
                      f"{lime_rows}</table>") if lime else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Bastion explanation: {html.escape(result['target'])}</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}img{{max-width:100%}}</style></head><body>
<h1>What the model relies on — {html.escape(result['target'])}</h1>
<p>SHAP values measure how much each input feature pushes a prediction up or down compared with an average input
({html.escape(g['method'])} explainer, output: {html.escape(g['output'])}, {g['samples']} inputs, {g['duration_s']} s).</p>
<h2>Overall</h2>{img('global')}
<table><tr><th>feature</th><th>mean |SHAP|</th></tr>{rows}</table>
<h2>One input (row {loc['index']}): predicted <b>{html.escape(str(loc['predicted_class']))}</b>
with probability {loc['probability']:.2f}</h2>
<p>Red bars push towards the predicted class, blue bars away from it.</p>{img('local')}
<table><tr><th>feature</th><th>SHAP</th></tr>{local_rows}</table>{lime_block}
</body></html>"""
