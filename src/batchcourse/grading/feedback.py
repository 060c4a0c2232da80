"""What a student sees in the HTML feedback that nbgrader's generate_feedback writes.

Two preprocessors in `GenerateFeedback.preprocessors` (autograde/nbgrader_config.py):

* `HideHiddenTests` removes the hidden tests from the test cells (nbgrader's ClearHiddenTests), leaving a
  comment where they were; the student still sees their own code and the visible tests.
* `StudentFeedback` puts a table at the top with each graded cell's verdict, points and message, cuts every
  error down to its one-line message (tracebacks quote hidden tests and the grader's files), removes paths of
  the grading machine from all outputs, and wraps long lines so a hint at the end of one stays on the page.
"""

import html
import re
import sys
import tempfile
from pathlib import Path

import nbformat
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor

from ..paths import REPO_ROOT
from ..selfcheck import first_error_line

HIDDEN_NOTE = "# (hidden tests: their verdict is in the table at the top)"
WRAP_CSS = """
div.output_area pre, div.input_area pre, div.output_subarea pre {
    white-space: pre-wrap;
    overflow-wrap: anywhere;
}
table.batchcourse-verdicts { margin-bottom: 1em; }
table.batchcourse-verdicts td, table.batchcourse-verdicts th { padding: 0.2em 0.6em; vertical-align: top; }
"""
PACKAGE_PATH = re.compile(r"""/[^\s'"]*?(?:site|dist)-packages/[^\s'"]*""")


class HideHiddenTests(ClearHiddenTests):
    """nbgrader's ClearHiddenTests, leaving a comment where hidden tests were."""

    def _remove_hidden_test_region(self, cell) -> bool:
        removed = super()._remove_hidden_test_region(cell)
        if removed:
            cell.source = f"{cell.source.rstrip()}\n{HIDDEN_NOTE}".lstrip("\n")
        return removed


def path_scrubber(*roots: Path):
    """A function that replaces every path under one of `roots` (or in a package folder) by its file name."""
    prefixes = sorted({str(p) for root in roots for p in (Path(root), Path(root).resolve()) if len(p.parts) > 1},
                      key=len, reverse=True)
    under_root = re.compile("|".join(rf"{re.escape(p)}(?:/[^\s'\":]*)?" for p in prefixes))

    def scrub(text: str) -> str:
        text = PACKAGE_PATH.sub(lambda m: Path(m.group()).name, text)
        return under_root.sub(lambda m: Path(m.group()).name or "...", text)
    return scrub


def message(cell, scrub) -> str:
    """The one-line message of a cell that lost points (as the self-check words it), without paths."""
    if not any(o.output_type in ("error", "stream") for o in cell.get("outputs", [])):
        return ""
    return " ".join(scrub(first_error_line(cell)).split())


def verdict(cell) -> str:
    meta = cell.metadata.nbgrader
    score, points = meta.get("score"), meta.get("points") or 0
    if score is None:
        return "waiting for hand grading"
    if meta.get("solution") or cell.cell_type == "markdown":
        return "written answer"
    if score >= points:
        return "passed"
    return "failed" if score == 0 else "partly passed"


def verdict_table(nb, scrub) -> str:
    rows = []
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if not meta.get("grade"):
            continue
        score = "–" if meta.get("score") is None else f"{float(meta['score']):g}"
        lost = meta.get("score") is not None and meta["score"] < (meta.get("points") or 0)
        cells = [meta["grade_id"], verdict(cell), f"{score} / {float(meta.get('points') or 0):g}",
                 message(cell, scrub) if lost and cell.cell_type == "code" else ""]
        rows.append("<tr>" + "".join(f"<td>{html.escape(text)}</td>" for text in cells) + "</tr>")
    header = "".join(f"<th>{name}</th>" for name in ("test", "verdict", "points", "message"))
    return f'<table class="batchcourse-verdicts"><tr>{header}</tr>{"".join(rows)}</table>'


class StudentFeedback(NbGraderPreprocessor):
    """A verdict table first; errors cut to one line; no path of the grading machine; long lines wrapped."""

    def preprocess(self, nb, resources):
        course_root = CourseDirectory(config=self.config).root
        scrub = path_scrubber(Path(course_root), REPO_ROOT, Path(sys.prefix), Path(sys.base_prefix),
                              Path(tempfile.gettempdir()), Path.home())
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                if output.output_type == "error":
                    output.evalue = scrub(output.evalue)
                    output.traceback = [f"{output.ename}: {output.evalue}"]
                elif output.output_type == "stream":
                    output.text = scrub(output.text)
                elif "text/plain" in output.get("data", {}):
                    output.data["text/plain"] = scrub(output.data["text/plain"])
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(verdict_table(nb, scrub)))
        resources.setdefault("inlining", {}).setdefault("css", []).append(WRAP_CSS)
        return nb, resources
