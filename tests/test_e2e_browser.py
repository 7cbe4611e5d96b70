"""The course as a learner sees it: JupyterLab in a real (headless) browser.

Starts JupyterLab on a loopback port with a token, on a copy of the course's notebooks, with
the servers up, and drives Debian's Chromium with Playwright: open the start-here notebook from
the file browser, run all cells from the menu, wait for the kernel, then check what a learner
would see. Screenshots go to artifacts/e2e/.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from .conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts" / "e2e"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NAMESPACE = "e2e_browser"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    assert CHROMIUM, "the browser test needs Chromium: apt-get install chromium (make test installs it)"
    root = tmp_path_factory.mktemp("lab")
    for folder in ("notebooks", "solutions"):
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("*.py", ".ipynb_checkpoints"))
    settings_dir = root / ".lab-settings"
    notification = settings_dir / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # Render every cell (JupyterLab 4 otherwise detaches cells that are off screen).
    tracker = settings_dir / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, DBCOURSE_NAMESPACE=NAMESPACE, JUPYTERLAB_SETTINGS_DIR=str(settings_dir),
               JUPYTERLAB_WORKSPACES_DIR=str(root / ".workspaces"), JUPYTER_RUNTIME_DIR=str(root / ".runtime"))
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = open(root / "lab.log", "w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        assert server.poll() is None and time.monotonic() < deadline, (root / "lab.log").read_text()[-3000:]
        time.sleep(0.5)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield {"base": base, "token": token, "root": root}
    server.terminate()
    try:
        server.wait(20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()
    from dbcourse import namespaces

    namespaces.reset_all(match=f"dbc_{NAMESPACE}")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def open_lab(browser, lab):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{lab['base']}/lab?reset&token={lab['token']}")  # a fresh workspace: the file browser at the top
    page.wait_for_selector(".jp-DirListing-content", timeout=60_000)
    return page, errors


def open_notebook(page, folder: str, name: str) -> None:
    page.locator(".jp-DirListing-item", has_text=folder).first.dblclick()
    item = page.locator(".jp-DirListing-item", has_text=name).first
    item.wait_for(timeout=30_000)
    item.dblclick()
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=60_000)


def wait_until_idle(page, lab, timeout: float = 300) -> None:
    """Until no cell shows [*] and the kernel reports idle (several polls in a row)."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        busy_cells = page.locator(".jp-InputArea-prompt", has_text="[*]").count()
        with urllib.request.urlopen(f"{lab['base']}/api/kernels?token={lab['token']}", timeout=5) as response:
            kernels = json.load(response)
        idle = bool(kernels) and all(k["execution_state"] == "idle" for k in kernels)
        idle = idle and page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count() > 0
        quiet = quiet + 1 if idle and busy_cells == 0 else 0
        if quiet >= 3:
            return
        time.sleep(1)
    raise AssertionError("the kernel did not go idle")


def menu(page, top: str, item: str) -> None:
    page.locator("#jp-MainMenu").get_by_text(top, exact=True).click()
    page.locator(".lm-Menu-itemLabel", has_text=item).first.click()


def test_a_learner_runs_the_start_here_notebook(browser, lab):
    page, page_errors = open_lab(browser, lab)
    page.screenshot(path=str(ARTIFACTS / "01-file-browser.png"))
    open_notebook(page, "notebooks", "00_start_here.ipynb")
    wait_until_idle(page, lab)  # the kernel has started
    menu(page, "Run", "Run All Cells")
    page.locator(".jp-InputArea-prompt", has_text="[*]").first.wait_for(timeout=30_000)  # cells are queued
    wait_until_idle(page, lab)
    page.keyboard.press("Control+s")
    page.wait_for_timeout(1500)

    # Every cell ran; errors only where they are expected (unanswered exercises, the demos).
    saved = nbformat.read(lab["root"] / "notebooks" / "00_start_here.ipynb", as_version=4)
    code = [c for c in saved.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "Run All did not reach every cell"
    unexpected = [c.source[:80] for c in code if any(o.output_type == "error" for o in c.outputs)
                  and "raises-exception" not in c.metadata.get("tags", [])]
    assert unexpected == [], f"cells failed: {unexpected}"

    # The status table shows the four servers up, in the rendered page.
    table = page.locator(".jp-OutputArea-output table", has_text="PostgreSQL").first
    table.scroll_into_view_if_needed()
    text = table.inner_text()
    for server in ("PostgreSQL", "MySQL/MariaDB", "MongoDB", "Redis"):
        assert server in text
    assert text.count("\tup") + text.count(" up") >= 4 and "DOWN" not in text
    page.screenshot(path=str(ARTIFACTS / "02-status-table.png"))
    assert page.locator(".jp-OutputArea-output", has_text="All four database servers are up.").count() == 1

    # A wrong answer, typed and run: the check shows its friendly feedback.
    answer = page.locator(".jp-CodeCell", has_text="YOUR ANSWER HERE").first.element_handle()  # this cell
    answer.scroll_into_view_if_needed()
    answer.query_selector(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text('acid = {"atomicity": "A", "consistency": "B", "isolation": "C", "durability": "D"}')
    page.keyboard.press("Shift+Enter")  # runs the answer, moves to the check cell
    page.keyboard.press("Shift+Enter")  # runs the check
    wait_until_idle(page, lab)
    feedback = page.locator(".jp-CodeCell", has_text="check.acid(acid)").first.locator(".jp-OutputArea-output")
    feedback.first.wait_for(timeout=30_000)
    shown = feedback.inner_text()
    assert "Exercise 00.1 (ACID in your own words): not yet" in shown
    assert "Hint:" in shown and "Traceback" not in shown
    feedback.first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "03-friendly-feedback.png"))

    # ...and the right answer passes.
    answer.query_selector(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text('acid = {"atomicity": "B", "consistency": "C", "isolation": "D", "durability": "A"}')
    page.keyboard.press("Shift+Enter")
    page.keyboard.press("Shift+Enter")
    wait_until_idle(page, lab)
    assert "✅ Exercise 00.1 passed" in feedback.inner_text()
    page.screenshot(path=str(ARTIFACTS / "04-finished-notebook.png"), full_page=True)
    assert page_errors == [], f"JavaScript errors in the page: {page_errors}"
    page.close()


def first_notebook_with_a_plot(root: Path) -> str | None:
    for path in sorted((root / "solutions").glob("[0-9]*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        if any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs):
            return path.name
    return None


def test_diagrams_and_plots_render(browser, lab):
    page, page_errors = open_lab(browser, lab)
    open_notebook(page, "solutions", "00_start_here.ipynb")
    # JupyterLab renders a ```mermaid block as an SVG image inside .jp-RenderedMermaid.
    diagram = page.locator(".jp-RenderedMermaid img").first
    diagram.wait_for(state="attached", timeout=60_000)
    diagram.scroll_into_view_if_needed(timeout=60_000)
    assert diagram.evaluate("img => img.complete && img.src.startsWith('data:image/svg')")
    box = diagram.bounding_box()
    assert box and box["width"] > 200 and box["height"] > 200, f"the decision tree is not drawn: {box}"
    assert page.locator(".jp-RenderedMermaid.jp-mod-warning").count() == 0, "a Mermaid diagram failed to render"
    page.screenshot(path=str(ARTIFACTS / "05-mermaid-diagram.png"))

    plotted = first_notebook_with_a_plot(lab["root"])
    assert plotted, "no chapter stores a matplotlib figure"
    page.locator(".jp-DirListing-item", has_text=plotted).first.dblclick()
    figure = page.locator(".jp-NotebookPanel:visible .jp-RenderedImage img").first
    figure.wait_for(state="attached", timeout=60_000)
    figure.scroll_into_view_if_needed(timeout=60_000)
    box = figure.bounding_box()
    assert figure.evaluate("img => img.complete && img.naturalWidth > 0") and box and box["width"] > 200, \
        f"the figure in {plotted} did not render"
    page.screenshot(path=str(ARTIFACTS / "06-matplotlib-figure.png"))
    assert page_errors == [], f"JavaScript errors in the page: {page_errors}"
    page.close()
