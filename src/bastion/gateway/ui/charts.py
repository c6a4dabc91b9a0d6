"""Inline SVG line charts (no JavaScript, no CDN): drift statistic vs threshold, anomaly share."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

W, H, PAD = 560, 200, 36  # two charts side by side in the 1200 px page, one per row on a phone


@dataclass(frozen=True)
class _Frame:
    """A chart's scales (data → SVG coordinates) and its frame: title, box, y range, x axis labels."""

    x0: float
    span: float
    lo: float
    hi: float

    @classmethod
    def fit(cls, xs: Sequence[float], lo: float, hi: float) -> _Frame:
        """Scales for x over ``xs`` and y over [lo, hi] (a flat series or a single time gets a unit range)."""
        x0 = min(xs)
        return cls(x0, (max(xs) - x0) or 1.0, lo, lo + 1.0 if hi - lo < 1e-12 else hi)

    def px(self, x: float) -> float:
        return PAD + (x - self.x0) / self.span * (W - 2 * PAD)

    def py(self, y: float) -> float:
        return H - PAD - (y - self.lo) / (self.hi - self.lo) * (H - 2 * PAD)

    def head(self, css_id: str, title: str, y_label: str) -> list[str]:
        """The opening of the SVG: everything but the data."""
        return [f'<svg id="{escape(css_id)}" class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
                f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
                f"<title>{escape(title)}</title>",
                f'<rect x="0" y="0" width="{W}" height="{H}" fill="#fff" stroke="#ccc"/>',
                f'<text x="{PAD}" y="16" font-size="12" fill="#333">{escape(title)}</text>',
                f'<text x="4" y="{PAD - 6}" font-size="10" fill="#666">{self.hi:.3g}</text>',
                f'<text x="4" y="{H - PAD + 12}" font-size="10" fill="#666">{self.lo:.3g}</text>',
                *_x_labels(self.x0, self.x0 + self.span, y_label)]


def line_chart(series: Sequence[tuple[float, float]], *, threshold: float | None = None, title: str,
               y_label: str, css_id: str, y_min: float | None = None, y_max: float | None = None,
               flags: Sequence[bool] | None = None) -> str:
    """An SVG with one polyline plus a ``<circle class="pt">`` per point and an optional dashed threshold.

    A point is drawn red (class ``over``) when ``flags`` marks it (e.g. the detector's drift decision),
    or, without ``flags``, when it lies above ``threshold``."""
    if not series:
        return (f'<p class="empty" id="{escape(css_id)}-empty">{escape(title)}: no data yet '
                f"(needs traffic and a captured reference)</p>")
    xs = [float(x) for x, _ in series]
    ys = [float(y) for _, y in series]
    lo = min([*ys, threshold] if threshold is not None else ys) if y_min is None else y_min
    hi = max([*ys, threshold] if threshold is not None else ys) if y_max is None else y_max
    frame = _Frame.fit(xs, lo, hi)
    px, py = frame.px, frame.py
    pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys, strict=True))
    out = frame.head(css_id, title, y_label)
    if threshold is not None:
        ty = py(threshold)
        out.append(f'<line class="threshold" x1="{PAD}" x2="{W - PAD}" y1="{ty:.1f}" y2="{ty:.1f}" '
                   f'stroke="#c00" stroke-dasharray="4 3"/>')
        out.append(f'<text x="{W - PAD}" y="{ty - 3:.1f}" font-size="10" fill="#c00" text-anchor="end">'
                   f"threshold {threshold:.3g}</text>")
    out.append(f'<polyline fill="none" stroke="#1f5fbf" stroke-width="1.5" points="{pts}"/>')
    marks = list(flags) if flags is not None else [threshold is not None and y > threshold for y in ys]
    for x, y, over in zip(xs, ys, marks, strict=True):
        out.append(f'<circle class="pt{" over" if over else ""}" cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" '
                   f'fill="{"#c00" if over else "#1f5fbf"}"><title>{y:.4g}</title></circle>')
    out.append("</svg>")
    return "".join(out)


def _x_labels(x0: float, x1: float, label: str) -> list[str]:
    """The x axis: first and last time (UTC) when x is a Unix time, else ``label`` at the right end."""
    style = 'font-size="10" fill="#666"'
    if x0 > 1e9:  # seconds since the epoch: every dashboard chart
        fmt = "%H:%M" if x1 - x0 >= 120 else "%H:%M:%S"
        if x1 - x0 >= 86400 - 60:
            fmt = "%m-%d %H:%M"
        a, b = time.strftime(fmt, time.gmtime(x0)), time.strftime(fmt, time.gmtime(x1))
        return [f'<text class="x0" x="{PAD}" y="{H - 8}" {style}>{a}</text>',
                f'<text class="x1" x="{W - PAD}" y="{H - 8}" {style} text-anchor="end">{b} UTC</text>']
    return [f'<text x="{W - PAD}" y="{H - 8}" {style} text-anchor="end">{escape(label)}</text>']


PALETTE = ("#1f5fbf", "#c05000", "#2a8a2a", "#8a2a8a", "#a08000", "#007a8a", "#c00060", "#555555")


def multi_line_chart(series: Mapping[str, Sequence[tuple[float, float]]], *, title: str, y_label: str, css_id: str,
                     y_min: float | None = 0.0) -> str:
    """Several named series on one SVG with a legend (e.g. rejections per reason); empty series are skipped."""
    series = {k: v for k, v in series.items() if v}
    if not series:
        return f'<p class="empty" id="{escape(css_id)}-empty">{escape(title)}: none in this window</p>'
    xs = [float(x) for pts in series.values() for x, _ in pts]
    ys = [float(y) for pts in series.values() for _, y in pts]
    frame = _Frame.fit(xs, min(ys) if y_min is None else min(y_min, min(ys)), max(ys))
    px, py = frame.px, frame.py
    out = frame.head(css_id, title, y_label)
    for i, (name, pts) in enumerate(sorted(series.items())):
        color = PALETTE[i % len(PALETTE)]
        line = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        out.append(f'<polyline class="series" data-name="{escape(name)}" fill="none" stroke="{color}" '
                   f'stroke-width="1.5" points="{line}"/>')
        for x, y in pts:
            out.append(f'<circle class="pt" cx="{px(x):.1f}" cy="{py(y):.1f}" r="2" fill="{color}">'
                       f"<title>{escape(name)}: {y:.4g}</title></circle>")
    legend = " ".join(f'<tspan fill="{PALETTE[i % len(PALETTE)]}">■ {escape(name)}</tspan>'
                      for i, name in enumerate(sorted(series)))  # one row above the plot: it never covers a line
    out.append(f'<text class="legend" x="{W - PAD}" y="{PAD - 8}" font-size="10" text-anchor="end">{legend}</text>')
    out.append("</svg>")
    return "".join(out)
