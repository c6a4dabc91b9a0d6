"""The representativeness page: plots (PNG, embedded) and tables, self-contained (no scripts, no CDN)."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def plots(result: dict[str, Any]) -> dict[str, str]:
    """Base64 PNGs: group/class shares, coverage per column, intersectional cells observed vs expected."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, str] = {}
    bal = result["balance"]
    if bal:
        labels = [f"{b['column']}={b['value']}" for b in bal]
        fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(labels) + 2), 3.2))
        xs = np.arange(len(labels))
        ax.bar(xs - 0.2, [b["reference_share"] for b in bal], 0.4, label="reference")
        ax.bar(xs + 0.2, [b["train_share"] for b in bal], 0.4, label="training")
        ax.set_xticks(xs, labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("share of rows")
        ax.set_title("groups and classes: training vs reference", fontsize=9)
        ax.legend(fontsize=8)
        out["balance"] = _png(fig)
    cov = result["coverage"]
    if cov:
        fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(cov) + 2), 3.0))
        vals = [c["coverage"] for c in cov]
        ax.bar(range(len(cov)), vals, color=["#b42318" if v < 0.9 else "#2e90fa" for v in vals])
        ax.axhline(0.9, color="grey", ls=":", lw=1)
        ax.set_xticks(range(len(cov)), [c["column"] for c in cov], rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title("coverage of the reference distribution per column", fontsize=9)
        out["coverage"] = _png(fig)
    cells = result["cells"]
    if cells:
        labels = [", ".join(f"{k}={v}" for k, v in c["cell"].items()) for c in cells]
        fig, ax = plt.subplots(figsize=(max(5.0, 0.55 * len(labels) + 2), 3.4))
        xs = np.arange(len(labels))
        ax.bar(xs - 0.2, [c["expected_count"] for c in cells], 0.4, label="expected from reference")
        ax.bar(xs + 0.2, [c["train_count"] for c in cells], 0.4, label="training rows")
        ax.axhline(result["params"]["min_count"], color="grey", ls=":", lw=1, label="minimum")
        ax.set_xticks(xs, labels, rotation=35, ha="right", fontsize=7)
        ax.set_title("intersectional groups", fontsize=9)
        ax.legend(fontsize=7)
        out["cells"] = _png(fig)
    return out


def representativeness_html(result: dict[str, Any], train: str, reference: str) -> str:
    esc = html.escape
    bad = result["verdict"] != "representative"
    color = "#b42318" if bad else "#067647"
    titles = {"balance": "Groups and classes", "coverage": "Coverage of the reference", "cells": "Intersectional groups"}
    imgs = "".join(f'<h2>{titles.get(k, k)}</h2><img alt="{esc(k)}" src="data:image/png;base64,{v}">'
                   for k, v in plots(result).items())
    findings = "".join(
        f"<tr><td>{esc(f['severity'])}</td><td>{esc(f['title'])}</td><td>{esc(', '.join(f['controls']))}</td></tr>"
        for f in result["findings"]) or "<tr><td colspan=3>none</td></tr>"
    shift = "".join(
        f"<tr><td>{esc(s['column'])}</td><td>{s['test']}</td><td>{s['pvalue']:.3g}</td><td>{s['pvalue_bonferroni']:.3g}</td>"
        f"<td>{s['psi']:.3f}</td><td>{'' if s['wasserstein'] is None else format(s['wasserstein'], '.4g')}</td></tr>"
        for s in result["shift"])
    mmd = result["mmd"]
    mmd_txt = ("MMD² not computed (no numeric column)" if mmd["mmd2"] is None else
               f"MMD² {mmd['mmd2']:.5f} over {len(mmd['columns'])} numeric columns, permutation p = {mmd['pvalue']:.3g} "
               f"({mmd['permutations']} permutations)")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Bastion representativeness</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}}td,th{{padding:.3rem .7rem;
border-bottom:1px solid #ddd;text-align:left;font-size:.9rem}}img{{max-width:100%}}</style></head><body>
<h1 style="color:{color}">{'Not representative' if bad else 'Representative'} of the reference</h1>
<p>Training <code>{esc(train)}</code> ({result['n_train']} rows) against reference <code>{esc(reference)}</code>
({result['n_reference']} rows); groups {esc(', '.join(result['groups']) or '-')}, label {esc(str(result['label']))};
minimum rows per intersectional group {result['params']['min_count']}. Findings map to EU AI Act Art. 10(3)–(4)
and NIST AI RMF MEASURE-2.11 (evidence toward them, not a conformity statement).</p>
<h2>Findings</h2><table><tr><th>severity</th><th>finding</th><th>controls</th></tr>{findings}</table>
{imgs}
<h2>Shift tests</h2><p>{esc(mmd_txt)}</p><table><tr><th>column</th><th>test</th><th>p</th><th>Bonferroni p</th>
<th>PSI</th><th>Wasserstein</th></tr>{shift}</table></body></html>"""
