"""The workshop handout: the course as static pages and one PDF, all readable offline.

`build()` writes, for the assignments it is given:
- `<id>.html`: the student notebook, with the outputs and figures of every demo taken from a run of the solution
  notebook. Exercise cells show the student's stub, test cells show no output, written answers show the stub.
- `index.html`: the assignments, each with its title cell (what it teaches, prerequisites, time).
- `course.html`: all of it on one page, and `course.pdf`: that page printed by Chromium.
- `mathjax/`: MathJax 2 from the jupyter-server-mathjax package, so formulas render with no network.

Pages are rendered by nbconvert's "lab" template; the only parts of it that load from the internet (require.js,
used by widgets, and mermaid, for diagrams) are left out, as the course has neither.
"""

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import jupyter_server_mathjax
import nbformat
from jinja2 import DictLoader
from nbgrader import utils
from nbclient import NotebookClient
from nbconvert import HTMLExporter

from . import editions, grading
from .i18n import CJK_FONT, VARIABLE, named_language, translate
from .paths import NOTEBOOKS_DIR, REPO_ROOT, SOLUTIONS_DIR

HANDOUT_DIR = REPO_ROOT / "build" / "handout"
MATHJAX_SOURCE = Path(jupyter_server_mathjax.__file__).parent / "static"
MATHJAX_URL = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
ONE_PAGE, PDF = "course.html", "course.pdf"
MINUTES = re.compile(r"\*\*Time:\*\*\s*about (\d+) minutes")
TEMPLATE_NAME = "handout.html.j2"
TEMPLATE = """{%- extends 'index.html.j2' -%}
{% block html_head_js_requirejs %}{% endblock %}
{% block html_head_js_mermaidjs %}{% endblock %}
{% block html_head_js_mathjax %}
{{ super() }}
<script type="text/x-mathjax-config">
// The packaged MathJax has the STIX-Web fonts only: use them, and no font installed on the reader's machine.
MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null}});
</script>
{% endblock html_head_js_mathjax %}
{% block extra_css %}
<style type="text/css">
main { max-width: 1100px; margin: 0 auto; }
{% if resources.cjk_font %}
@font-face { font-family: "Droid Sans Fallback"; src: url("fonts/DroidSansFallbackFull.ttf"); font-display: block; }
body {
  /* First: text laid out before a later family loads keeps its boxes. It has no Latin letters, so those come
     from the families after it. */
  --jp-content-font-family: "Droid Sans Fallback", system-ui, -apple-system, "Segoe UI", helvetica, arial, sans-serif;
  --jp-ui-font-family: "Droid Sans Fallback", system-ui, -apple-system, "Segoe UI", helvetica, arial, sans-serif;
  --jp-code-font-family: "Droid Sans Fallback", menlo, consolas, "DejaVu Sans Mono", monospace;
}
{% endif %}
@media print {
  pre { white-space: pre-wrap; }
  .jp-OutputArea-output img { break-inside: avoid; }
  {% if resources.one_page %}.jp-MarkdownCell h1 { break-before: page; }{% endif %}
}
</style>
{% endblock extra_css %}
"""


def executed_solution(assignment: str, lang: str = "en") -> nbformat.NotebookNode:
    """The solution notebook, run from top to bottom in a throwaway copy of its folder (its figures and printed
    lines in `lang`)."""
    notebook = grading.read(SOLUTIONS_DIR / assignment / f"{assignment}.ipynb")
    with tempfile.TemporaryDirectory() as scratch, utils.setenv(**{VARIABLE: lang}):
        workdir = Path(scratch) / assignment
        shutil.copytree(SOLUTIONS_DIR / assignment, workdir)
        NotebookClient(notebook, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(workdir)}}).execute()
    return notebook


def with_demo_outputs(student: nbformat.NotebookNode, solved: nbformat.NotebookNode, assignment: str) -> None:
    """Give every student cell that is neither an exercise nor a test the outputs of the same cell in `solved`."""
    stale = f"notebooks/{assignment} does not match solutions/{assignment}: run `python3 tasks.py release {assignment}`"
    if [c.get("id") for c in student.cells] != [c.get("id") for c in solved.cells]:
        raise ValueError(f"{stale} (the cells differ)")
    for shown, ran in zip(student.cells, solved.cells):
        if grading.is_solution_cell(ran) or grading.is_test_cell(ran):
            continue
        if shown.source != ran.source and (shown.cell_type == "code" or not named_language(student)):
            # a translated edition's markdown differs by design
            raise ValueError(f"{stale} (cell {ran.get('id')} differs)")
        if shown.cell_type == "code":
            shown.outputs = ran.outputs


def student_notebook(assignment: str, lang: str = "en") -> Path:
    return NOTEBOOKS_DIR / assignment / f"{assignment}.ipynb" if lang == "en" else editions.edition_path(lang, assignment)


def student_page(assignment: str, lang: str = "en") -> nbformat.NotebookNode:
    student = grading.read(student_notebook(assignment, lang))
    with_demo_outputs(student, executed_solution(assignment, lang), assignment)
    return student


def title_and_summary(notebook: nbformat.NotebookNode) -> tuple[str, str]:
    """The title (without '# ') and the rest of the notebook's title cell."""
    first_line, _, rest = notebook.cells[0].source.partition("\n")
    return first_line.removeprefix("# ").strip(), rest.strip()


def course_title(lang: str = "en") -> str:
    readme = REPO_ROOT / ("README.md" if lang == "en" else f"README.{lang}.md")
    return readme.read_text(encoding="utf-8").splitlines()[0].removeprefix("# ").strip()


def minutes_of(assignment: str) -> int:
    """The time the English title cell gives (the editions translate it)."""
    title = grading.read(student_notebook(assignment)).cells[0].source
    return sum(int(m) for m in MINUTES.findall(title))


def as_duration(minutes: int, lang: str = "en") -> str:
    return translate(f"about {minutes} minutes" if minutes < 60 else f"about {minutes // 60} h {minutes % 60:02d} min",
                     lang)


def contents_cells(pages: dict[str, nbformat.NotebookNode], one_page: bool, lang: str = "en") -> list:
    """The course's title and its assignments: on the index, each one's title cell with its title as a link to
    its page; on the one page (which shows the title cells anyway), a list of titles and times."""
    links = "" if one_page else f" Read it all [on one page]({ONE_PAGE}) or as a [PDF]({PDF})."
    total = as_duration(sum(minutes_of(assignment) for assignment in pages), lang)
    lab = "python3 tasks.py lab" + ("" if lang == "en" else f" --lang {lang}")
    intro = translate(f"# {course_title(lang)}\n\nThe workshop handout: every assignment with its demonstrations run and "
                      f"its exercises left for you to do. Time for all of it: {total}.{links}\n\n"
                      f"To run the code and do the exercises, open the course with `{lab}`.", lang)
    if one_page:
        listing = "\n".join(f"- {title_and_summary(page)[0]} ({as_duration(minutes_of(assignment), lang)})"
                            for assignment, page in pages.items())
        return [nbformat.v4.new_markdown_cell(f"{intro}\n\n{listing}")]
    cells = [nbformat.v4.new_markdown_cell(intro)]
    for assignment, page in pages.items():
        title, summary = title_and_summary(page)
        cells.append(nbformat.v4.new_markdown_cell(f"## [{title}]({assignment}.html)\n\n{summary}"))
    return cells


def notebook_of(cells: list, title: str) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["title"] = title
    return notebook


def one_page_notebook(pages: dict[str, nbformat.NotebookNode], lang: str = "en") -> nbformat.NotebookNode:
    cells = contents_cells(pages, one_page=True, lang=lang)
    for assignment, page in pages.items():
        for cell in page.cells:
            cell = nbformat.from_dict(cell)
            cell.id = f"{assignment[:2]}-{cell.id}"
            cells.append(cell)
    return notebook_of(cells, course_title(lang))


def render(notebook: nbformat.NotebookNode, path: Path, one_page: bool = False, cjk_font: bool = False) -> None:
    exporter = HTMLExporter(template_name="lab", extra_loaders=[DictLoader({TEMPLATE_NAME: TEMPLATE})],
                            template_file=TEMPLATE_NAME, mathjax_url=MATHJAX_URL, embed_images=True,
                            exclude_input_prompt=True, exclude_output_prompt=True)
    html, _ = exporter.from_notebook_node(notebook, resources={"one_page": one_page, "cjk_font": cjk_font})
    path.write_text(html, encoding="utf-8")


def chromium() -> str:
    found = os.environ.get("BATCHCOURSE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise RuntimeError("The PDF needs Chromium: install Debian's chromium package (apt-get install chromium), "
                           "set BATCHCOURSE_CHROMIUM to a Chromium or Chrome program, or build with --no-pdf.")
    return found


def print_pdf(html: Path, pdf: Path, browser_program: str) -> None:
    """Print a page to PDF with Chromium, once MathJax has rendered its formulas; nothing is fetched from outside."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_program, headless=True)
        page = browser.new_page()
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("file:", "data:"))
                   else route.abort())
        page.goto(html.as_uri())
        page.wait_for_function("window.MathJax && MathJax.isReady", timeout=120_000)
        page.evaluate("() => new Promise(done => MathJax.Hub.Queue(done))")
        page.pdf(path=str(pdf), format="A4", print_background=True,
                 margin={"top": "15mm", "bottom": "15mm", "left": "12mm", "right": "12mm"})
        browser.close()


def build(assignments: list[str], out: Path = HANDOUT_DIR, pdf: bool = True, lang: str = "en") -> Path:
    browser_program = chromium() if pdf else None
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(MATHJAX_SOURCE, out / "mathjax", dirs_exist_ok=True)
    cjk_font = lang == "zh-CN"
    if cjk_font:  # the reader's machine may have no Chinese font: the pages bring their own
        (out / "fonts").mkdir(exist_ok=True)
        shutil.copyfile(CJK_FONT, out / "fonts" / CJK_FONT.name)
    pages = {}
    for assignment in assignments:
        started = time.monotonic()
        pages[assignment] = page = student_page(assignment, lang)
        back = nbformat.v4.new_markdown_cell(translate("[All assignments](index.html)", lang))
        render(notebook_of([back, *page.cells], title_and_summary(page)[0]), out / f"{assignment}.html", cjk_font=cjk_font)
        print(f"{assignment}: {out / assignment}.html ({time.monotonic() - started:.0f} s)", flush=True)
    render(notebook_of(contents_cells(pages, one_page=False, lang=lang), course_title(lang)), out / "index.html",
           cjk_font=cjk_font)
    render(one_page_notebook(pages, lang), out / ONE_PAGE, one_page=True, cjk_font=cjk_font)
    if pdf:
        print_pdf(out / ONE_PAGE, out / PDF, browser_program)
    print(f"handout written to {out}: open index.html; the PDF is {PDF}" if pdf else f"handout written to {out}")
    return out
