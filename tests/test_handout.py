"""The workshop handout (`tasks.py handout`): static pages and a PDF that load nothing from the internet.

The browser test builds the handout of one assignment, opens its index in headless Chromium (set up as in
test_browser.py), follows the link to the assignment's page, and checks that figures and formulas are rendered,
that no request leaves the machine and that no solution or hidden test is shown. Screenshots go to
tests/artifacts/handout/.
"""

import re
import subprocess
import sys
from html.parser import HTMLParser

import nbformat
import pytest
from test_browser import CHROMIUM, CHROMIUM_FLAGS, ensure_chromium
from test_notebooks import HIDDEN_BLOCK, SCRIPTS, SOLUTION_BLOCK

from batchcourse import grading, handout
from batchcourse.paths import NOTEBOOKS_DIR, REPO_ROOT, SOLUTIONS_DIR

# The shortest assignment with both a figure and a formula (00_orientation has no formula).
ASSIGNMENT = "02_minibatch_gradients"
ARTIFACTS = REPO_ROOT / "tests" / "artifacts" / "handout"
EXTERNAL = re.compile(r"""^\s*(https?:)?//|url\(\s*['"]?\s*(https?:)?//""", re.I)
COMMENT = re.compile(r"/\*.*?\*/", re.S)
MATHJAX_DONE = "() => new Promise(done => MathJax.Hub.Queue(done))"
# MathJax tests web-font support with a font at about:blank, which never leaves the browser.
LOCAL = ("file:", "data:", "about:blank")


class ExternalLoads(HTMLParser):
    """Every internet address a page would load: in any attribute but <a href>, and in its styles and scripts."""

    def __init__(self):
        super().__init__()
        self.found, self.inside = [], None

    def handle_starttag(self, tag, attrs):
        self.inside = tag if tag in ("style", "script") else None
        for name, value in attrs:
            if value and not (tag == "a" and name == "href") and EXTERNAL.search(value):
                self.found.append(f"<{tag} {name}={value[:120]!r}>")

    def handle_endtag(self, tag):
        self.inside = None

    def handle_data(self, data):
        if self.inside:
            self.found += [f"<{self.inside}>: {url}" for url in re.findall(r"https?://[^\s'\")]+", COMMENT.sub("", data))]


def external_loads(html: str) -> list[str]:
    parser = ExternalLoads()
    parser.feed(html)
    return parser.found


def student_notebook(assignment: str):
    return grading.read(NOTEBOOKS_DIR / assignment / f"{assignment}.ipynb")


def test_pages_load_nothing_from_the_internet(tmp_path):
    """nbconvert's template, as the handout configures it, on a student page and the index (no kernel needed)."""
    pages = {"00_orientation": student_notebook("00_orientation")}
    handout.render(handout.notebook_of(pages["00_orientation"].cells, "page"), tmp_path / "page.html")
    handout.render(handout.notebook_of(handout.contents_cells(pages, one_page=False), "index"), tmp_path / "index.html")
    for name in ("page.html", "index.html"):
        html = (tmp_path / name).read_text()
        assert 'src="mathjax/MathJax.js' in html, f"{name} does not load the local MathJax"
        assert not external_loads(html), f"{name} loads from the internet: {external_loads(html)}"
    assert external_loads('<script src="https://cdn.example/x.js"></script><a href="https://example.org">x</a>') == [
        "<script src='https://cdn.example/x.js'>"], "the check itself misses an external script"


def test_demo_outputs_come_only_to_demo_cells():
    student, solved = student_notebook("00_orientation"), grading.read(SOLUTIONS_DIR / "00_orientation" / "00_orientation.ipynb")
    for cell in solved.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", text=f"output of {cell.id}")]
    handout.with_demo_outputs(student, solved, "00_orientation")
    for shown, ran in zip(student.cells, solved.cells):
        if shown.cell_type == "code":
            hidden = grading.is_solution_cell(ran) or grading.is_test_cell(ran)
            assert bool(shown.outputs) != hidden, f"cell {ran.id}: outputs {'shown' if hidden else 'missing'}"
    solved.cells[5].source += "\n# changed"
    with pytest.raises(ValueError, match="python3 tasks.py release 00_orientation"):
        handout.with_demo_outputs(student_notebook("00_orientation"), solved, "00_orientation")


def never_shown(assignment: str) -> list[str]:
    """Lines of solutions, written answers and hidden tests that the student notebook does not hold."""
    student_text = "\n".join(c.source for c in student_notebook(assignment).cells)
    lines = []
    for cell in grading.read(SOLUTIONS_DIR / assignment / f"{assignment}.ipynb").cells:
        blocks = [cell.source] if grading.is_solution_cell(cell) and cell.cell_type == "markdown" else []
        for block in [*blocks, *SOLUTION_BLOCK.findall(cell.source), *HIDDEN_BLOCK.findall(cell.source)]:
            lines += [line.strip() for line in block.splitlines()]
    return [line for line in lines if len(line) >= 12 and not line.startswith("#") and line not in student_text]


@pytest.mark.notebooks
def test_handout_in_the_browser(tmp_path):
    ensure_chromium()
    from playwright.sync_api import sync_playwright

    out = tmp_path / "handout"
    built = subprocess.run([sys.executable, "-m", "batchcourse.cli", "handout", "--out", str(out), ASSIGNMENT],
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr[-3000:]
    for page in out.glob("*.html"):
        assert not external_loads(page.read_text()), f"{page.name} loads from the internet: {external_loads(page.read_text())}"
    pdf = (out / "course.pdf").read_bytes()
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) > 1, "course.pdf has fewer than two pages"

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    requests = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.on("request", lambda request: requests.append(request.url))
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(LOCAL) else route.abort())
        page = context.new_page()
        page.goto((out / "index.html").as_uri())
        page.screenshot(path=str(ARTIFACTS / "1-index.png"))
        page.locator(f"a[href='{ASSIGNMENT}.html']").first.click()
        page.wait_for_url(f"**/{ASSIGNMENT}.html")
        page.wait_for_function("window.MathJax && MathJax.isReady", timeout=60_000)
        page.evaluate(MATHJAX_DONE)
        page.screenshot(path=str(ARTIFACTS / "2-page.png"))

        formula = page.locator(".MathJax_Display .MathJax").first
        assert formula.count(), "no formula was rendered by MathJax"
        assert not page.locator(".MathJax_Error, .MathJax_Preview:has-text('$$')").count(), "MathJax reports an error"
        formula.scroll_into_view_if_needed()
        assert formula.bounding_box()["width"] > 50, "the rendered formula is empty"
        page.screenshot(path=str(ARTIFACTS / "3-formula.png"))
        figure = page.locator(".jp-OutputArea-output img").first
        figure.scroll_into_view_if_needed()
        assert figure.evaluate("img => img.complete && img.naturalWidth > 0"), "a figure of the demos is not shown"
        page.screenshot(path=str(ARTIFACTS / "4-figure.png"))
        text = page.locator("main").inner_text()
        browser.close()

    outside = [url for url in requests if not url.startswith(LOCAL)]
    assert not outside, f"the handout asked for {outside}"
    shown = [line for line in never_shown(ASSIGNMENT) if line in text]
    assert not shown, f"the handout shows solutions or hidden tests: {shown[:5]}"
    assert "raise NotImplementedError" in text, "the exercise cells do not show the student's stub"


@pytest.mark.notebooks
@pytest.mark.parametrize("lang", ["zh-CN", "ru"])
def test_the_handout_of_an_edition(lang, tmp_path):
    """Its pages, figures and PDF in the edition's language; Chinese pages bring their own font, so a machine with
    no Chinese font (this one) shows Chinese text, not boxes."""
    ensure_chromium()
    from playwright.sync_api import sync_playwright

    out = tmp_path / "handout"
    built = subprocess.run([sys.executable, "-m", "batchcourse.cli", "handout", "--lang", lang, "--out", str(out),
                            "00_orientation"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr[-3000:]
    script = SCRIPTS[lang]
    index = (out / "index.html").read_text()
    assert script.search(index), f"the {lang} handout's index is not in {lang}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto((out / "00_orientation.html").as_uri())
        heading = page.locator("h1").first
        assert script.search(heading.inner_text()), f"the page's title is not in {lang}"
        if lang == "zh-CN":
            page.evaluate("document.fonts.ready")
            assert page.evaluate("document.fonts.check('16px \"Droid Sans Fallback\"', '批量')"), (
                "the page's Chinese font did not load")
        figure = page.locator(".jp-OutputArea-output img").first
        figure.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / f"{lang}-page.png"))
        browser.close()
    assert (out / "course.pdf").stat().st_size > 10_000, "the PDF is missing"
