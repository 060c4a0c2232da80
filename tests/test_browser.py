"""The course as a student and an instructor meet it: JupyterLab with nbgrader, in a real browser.

Starts the course's JupyterLab (as `tasks.py lab` does) on a throwaway copy of the course, and
drives Debian's Chromium with Playwright: open the first student notebook, run all cells, click
nbgrader's Validate and read its verdict, then open Formgrader and find the assignments listed.
Screenshots of each step go to tests/artifacts/browser/.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from batchcourse import grading
from batchcourse.cli import lab_command
from batchcourse.paths import AUTOGRADE_DIR, REPO_ROOT, assignment_ids

pytestmark = pytest.mark.notebooks
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO_ROOT / "tests" / "artifacts" / "browser"
KERNEL_IDLE = re.compile(r"Python 3 \(ipykernel\) \| Idle")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FIRST = "00_orientation"


def ensure_chromium() -> None:
    """Install Debian's Chromium when it is missing; skip, saying why, where that cannot be done."""
    if CHROMIUM.exists():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("Chromium is not installed and cannot be installed here (needs root and apt-get): "
                    "install Debian's chromium package to run the browser test")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            pytest.skip(f"Chromium could not be installed ({' '.join(command)}: {result.stderr.strip()[-300:]})")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def course_copy(tmp_path) -> Path:
    root = tmp_path / "course"
    for folder in ("solutions", "notebooks"):
        shutil.copytree(REPO_ROOT / folder, root / folder)
    (root / "autograde").mkdir()
    shutil.copy(AUTOGRADE_DIR / "nbgrader_config.py", root / "autograde")
    for assignment in assignment_ids():
        grading.record_in_gradebook(assignment, root, grading.default_db_url(root))
    grading.ensure_exchange(root)
    return root


@pytest.fixture
def lab_server(course_copy):
    port, token = free_port(), "course-browser-test"
    env = dict(os.environ, JUPYTER_CONFIG_PATH=str(course_copy / "autograde"), JUPYTER_PLATFORM_DIRS="1",
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    log = (course_copy / "lab.log").open("w")
    # A workspace of its own: JupyterLab would otherwise reopen the tabs another test left open.
    command = lab_command(course_copy, ["--no-browser", f"--port={port}", "--ip=127.0.0.1", f"--IdentityProvider.token={token}",
                                        f"--LabApp.workspaces_dir={course_copy / 'workspaces'}"])
    server = subprocess.Popen(command, cwd=course_copy, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail(f"JupyterLab did not start within 90 s; its log:\n{(course_copy / 'lab.log').read_text()[-3000:]}")
    yield base, token, course_copy
    server.terminate()
    server.wait(timeout=30)


def test_labextensions_are_enabled_and_compatible():
    result = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True)
    listing = result.stdout + result.stderr
    line = next((l for l in listing.splitlines() if "@jupyter/nbgrader" in l), "")
    assert "enabled" in line and "OK" in line, f"nbgrader's JupyterLab extension is not enabled and compatible:\n{listing}"


def printed_text(path: Path) -> str:
    """What the code cells of the saved notebook at `path` printed."""
    try:
        saved = grading.read(path)
    except Exception:  # noqa: BLE001 - a file caught halfway through its save
        return ""
    return "".join(o.get("text", "") for c in saved.cells if c.cell_type == "code" for o in c.outputs)


def test_student_and_instructor_in_the_browser(lab_server):
    ensure_chromium()
    from playwright.sync_api import sync_playwright

    base, token, course = lab_server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{base}/lab/tree/notebooks/{FIRST}/{FIRST}.ipynb?token={token}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        # The execution indicator says idle before a kernel exists; the status bar waits for the kernel itself.
        page.get_by_text(KERNEL_IDLE).wait_for(timeout=120_000)
        page.screenshot(path=str(ARTIFACTS / "1-notebook-open.png"))

        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_text("Run All Cells", exact=True).click()
        page.wait_for_selector(".jp-RenderedImage img", timeout=120_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
        page.keyboard.press("Control+s")
        page.screenshot(path=str(ARTIFACTS / "2-run-all.png"))
        deadline = time.monotonic() + 60  # the save is asynchronous: wait for the file to hold the outputs
        while "MNIST subset" not in (printed := printed_text(course / "notebooks" / FIRST / f"{FIRST}.ipynb")):
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert "MNIST subset" in printed, "the environment check printed nothing after Run All"

        page.locator(".validate-button").first.click()
        dialog = page.locator(".jp-Dialog", has_text="Validation Results")
        dialog.wait_for(timeout=180_000)
        verdict = dialog.inner_text()
        page.screenshot(path=str(ARTIFACTS / "3-validate.png"))
        assert not page.get_by_text("Jupyter news").count(), "JupyterLab asks about fetching news: check src/batchcourse/lab_settings"
        assert "failed" in verdict.lower() or "NotImplementedError" in verdict, f"unexpected verdict:\n{verdict[:2000]}"
        dialog.get_by_role("button").last.click()

        page.goto(f"{base}/formgrader?token={token}")
        page.locator("tr", has_text=FIRST).first.wait_for(state="visible", timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "4-formgrader.png"))
        assert not page.get_by_text("exchange directory").count(), "Formgrader says the exchange folder is missing"
        browser.close()
