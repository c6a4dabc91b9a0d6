"""A small, self-contained HTML drift report (no scripts, no CDN)."""

from __future__ import annotations

import html
from typing import Any


def drift_html(report: dict[str, Any], reference: str, current: str) -> str:
    verdict = "Drift detected" if report["drift"] else "No drift detected"
    color = "#b42318" if report["drift"] else "#067647"
    rows = "".join(
        f"<tr><td>{html.escape(f['feature'])}</td><td>{f['test']}</td><td>{f['pvalue']:.3g}</td>"
        f"<td>{f['psi']:.3f}</td><td>{f['wasserstein']:.3f}</td></tr>" for f in report["features"])
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Bastion drift report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}}td,th{{padding:.3rem .8rem;
border-bottom:1px solid #ddd;text-align:left}}</style></head><body>
<h1 style="color:{color}">{verdict}</h1>
<p>Reference <code>{html.escape(reference)}</code> ({report['n_reference']} rows) vs current
<code>{html.escape(current)}</code> ({report['n_current']} rows). False-alarm rate per test
α = {report['false_alarm_rate_per_test']:.4f} (bootstrap-calibrated thresholds).</p>
<ul><li>Smallest feature p-value statistic (−log10 p): {report['statistic']:.2f} — threshold {report['threshold']:.2f}</li>
<li>MMD² (RBF, median bandwidth): {report['mmd2']:.5f} — threshold {report['mmd_threshold']:.5f}</li></ul>
<h2>Most shifted features</h2><table><tr><th>feature</th><th>test</th><th>p-value</th><th>PSI</th>
<th>Wasserstein</th></tr>{rows}</table></body></html>"""
