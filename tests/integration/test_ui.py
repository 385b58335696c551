"""Checked in a real browser: the evaluate run's Description (its note) as a person sees it in the MLflow UI, and
the experiment's run list, one row per chain that opens into its steps.

Starts `mlflow server` on a loopback port, runs a small chain against it, and opens the evaluate run's page in
headless Chromium (Debian's `chromium`, driven by Playwright; no browser download). Skipped where Chromium is not
installed, unless PIPELINE_REQUIRE_BROWSER=1 (`make ui-check` and CI set it, and install Chromium first)."""

import os
import shutil

import pytest

from deploy.tracking_server import start_tracking_server
from pipeline.steps.chain import run_chain
from tests.helpers import small_config_with
from tests.integration.helpers import free_port

pytestmark = pytest.mark.slow


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("PIPELINE_REQUIRE_BROWSER") == "1":
        pytest.fail("Chromium is not installed: `make ui-check` installs it (apt-get install chromium)")
    pytest.skip("Chromium is not installed (make ui-check installs it)")


def test_the_evaluate_runs_verdict_is_visible_on_its_page(tmp_path, monkeypatch):
    playwright = pytest.importorskip("playwright.sync_api")
    browser_path = chromium()
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    with start_tracking_server(
        f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "artifacts"), port=free_port(), state_dir=tmp_path
    ) as server:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        result = run_chain(small_config_with({"tune.n_trials": 3}))
        evaluate = result.step("evaluate")
        page_url = f"{server.url}/#/experiments/{evaluate.experiment_id}/runs/{evaluate.run_id}"
        with playwright.sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(page_url)
                # The note's first paragraph, as rendered from its markdown (the tag holding the reason alone is
                # cut short on the page, so this text is the Description's only).
                said = f"{evaluate.verdict}: {evaluate.model_name} version {evaluate.model_version}. "
                verdict = page.get_by_text(said + evaluate.verdict_reason, exact=False).first
                verdict.wait_for(state="visible", timeout=60_000)
                page.screenshot(path=str(tmp_path / "evaluate-run.png"), full_page=True)
                assert verdict.is_visible()
                assert page.get_by_text("Read: preprocess run", exact=False).first.is_visible()
                _check_the_run_list(page, f"{server.url}/#/experiments/{evaluate.experiment_id}/runs", result, tmp_path)
            finally:
                browser.close()
    assert (tmp_path / "evaluate-run.png").stat().st_size > 10_000
    assert (tmp_path / "run-list.png").stat().st_size > 10_000


def _check_the_run_list(page, url: str, result, folder) -> None:
    """The experiment's run list: one row per chain (its steps nested under it), which opens into its steps."""

    def rows() -> set[str]:  # the runs shown, by id (the grid repeats a row in its pinned and scrolled parts)
        return set(page.eval_on_selector_all("[role=row][row-id]", "found => found.map(r => r.getAttribute('row-id'))"))

    page.goto(url)
    chain_row = page.locator(f"[role=row][row-id='{result.run_id}']").first
    chain_row.wait_for(state="visible", timeout=60_000)
    assert rows() == {result.run_id}  # the steps (and tune's trials) are folded under the chain's row
    chain_row.locator("button").first.click()  # the row's expander
    steps = {step.run_id for step in result.steps}
    page.wait_for_function(
        "ids => ids.every(id => document.querySelector(`[role=row][row-id='${id}']`))", arg=sorted(steps)
    )
    assert rows() == {result.run_id, *steps}  # opened: its four steps; tune's trials stay folded under tune
    for step in result.steps:
        assert page.get_by_text(f"{step.step}-", exact=False).first.is_visible()
    page.screenshot(path=str(folder / "run-list.png"), full_page=True)
