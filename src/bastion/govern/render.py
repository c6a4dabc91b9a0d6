"""Rendering governance documents: Jinja2 HTML templates in the package, PDF through WeasyPrint."""

from __future__ import annotations

from typing import Any

from bastion.core.errors import DependencyError

STATUS_CLASS = {"pass": "ok", "warn": "warn", "fail": "bad", "no evidence": "none", "not covered": "gap",
                "info": "none"}


def _env() -> Any:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("bastion.govern", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["status_class"] = lambda s: STATUS_CLASS.get(str(s), "none")
    return env


def render_template(name: str, **context: Any) -> str:
    """Render a packaged template (autoescaped)."""
    return str(_env().get_template(name).render(**context))


def html_to_pdf(html: str) -> bytes:
    """PDF bytes from HTML via WeasyPrint (the ``govern`` extra)."""
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:  # OSError: Pango libraries missing
        raise DependencyError(f"PDF output needs WeasyPrint and Pango: {exc}; "
                              "install with: pip install 'bastion-ml[govern]'") from None
    pdf = HTML(string=html).write_pdf()
    assert pdf is not None
    return bytes(pdf)
