"""report.html in a real headless Chromium at a phone's and a laptop's width: no horizontal page scroll, no
broken image, no console error, and fix commands that are distinct and runnable."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bastion.assess.runner import run_assessment
    from bastion.models.zoo import demo_target
    from bastion.report import write_reports

    out = tmp_path_factory.mktemp("report")
    target = demo_target("digits")
    a = run_assessment(target, profile="standard", seed=0, out_dir=out, progress=False,
                       only=["evasion.robustness_curve", "explain.adversarial_attributions", "supply_chain.signature",
                             "supply_chain.provenance", "privacy.inversion"],
                       options={"samples": 40, "steps": 5})
    return write_reports(a, out)["html"]


@pytest.mark.browser
@pytest.mark.parametrize("width", [390, 1280])
def test_report_fits_the_screen_with_working_images_and_no_errors(report: Path, width: int) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(report.resolve().as_uri())
        scroll, client = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        overflowing = page.evaluate("""() => [...document.querySelectorAll('main *')]
            .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
            .filter(e => !e.closest('table, pre, details:not([open])'))
            .map(e => e.tagName)""")
        images = page.evaluate("[...document.images].map(i => [i.alt, i.complete && i.naturalWidth > 0])")
        commands = page.evaluate("[...document.querySelectorAll('#verdict .cmd')].map(e => e.textContent)")
        browser.close()

    assert scroll <= client, f"horizontal page scroll at {width}px: {scroll} > {client}"
    assert not overflowing, overflowing
    assert images and all(ok for _, ok in images), images
    assert not errors, errors
    assert len(commands) == len(set(commands)), "every fix command is distinct"
    assert not any("PREFIX" in c for c in commands)
    assert any(c.startswith("bastion keys generate --out keys/release") for c in commands)
