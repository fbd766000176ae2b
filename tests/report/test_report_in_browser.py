"""The HTML report as people read it: opened in headless Chromium (Debian's), charts drawn, no
console errors, a screenshot kept for inspection."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def report_file(tmp_path_factory, make_bars) -> Path:
    """A real report: one small `retune run` on synthetic bars (the CLI, all steps)."""
    from pipelines.cli import main

    base = tmp_path_factory.mktemp("browser")
    make_bars(700, seed=11, start="2018-01-01").to_csv(base / "bars.csv", index=False)
    config = base / "small.yaml"
    config.write_text(
        "epochs: 1\nwindow_bars: 500\nn_folds: 2\nval_bars: 80\nstrategy_grid_points: 2\n"
        "search_space:\n  lr: {type: loguniform, low: 0.001, high: 0.01}\n"
        "  seq_len: {type: int, low: 5, high: 10, step: 5}\n"
    )
    mp = pytest.MonkeyPatch()
    mp.setenv("RETUNE_HOME", str(base / "var"))
    mp.setenv("RETUNE_DATA_DIR", str(base))
    try:
        args = ["run", "--data", "csv:bars.csv", "--as-of", "2020-09-08", "--n-trials", "3"]
        assert main([*args, "--config", str(config), "--run-id", "browser"]) == 0
    finally:
        mp.undo()
    return base / "var" / "reports" / "daily__browser" / "report.html"


def test_report_renders_its_charts_without_console_errors(report_file, tmp_path):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is needed for this test: `make browser` (apt-get install chromium)")
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
        page.goto(report_file.as_uri(), wait_until="load")
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
        charts = page.locator(".js-plotly-plot").count()
        traces = page.locator(".js-plotly-plot .trace").count()
        title = page.title()
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert errors == []
    assert "Retune report" in title
    assert charts >= 3 and traces >= 3  # optimization history, equity, loss (+ importances)
    assert shot.stat().st_size > 50_000  # a page with drawn charts, not a blank one
