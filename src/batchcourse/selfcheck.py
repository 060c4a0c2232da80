"""Self-check a notebook: run it as the autograder does and list each test's verdict.

nbgrader's `validate` prints its verdict but exits 0 either way; this exits 1 when a test
fails, so a learner (or a script) can rely on the exit code.
"""

from pathlib import Path

from nbgrader import utils
from nbgrader.preprocessors import Execute, IgnorePattern

from .grading import grade_id, is_test_cell, nbgrader_config, read
from .i18n import VARIABLE, notebook_language, translate
from .paths import COURSE_FILES


def first_error_line(cell) -> str:
    for output in cell.outputs:
        if output.output_type == "error":
            if output.ename == "NotImplementedError" and not output.evalue:
                return "not done yet: replace `raise NotImplementedError()` in the exercise cell with your code"
            return f"{output.ename}: {output.evalue}".strip().splitlines()[0][:400]
        if output.output_type == "stream" and output.name == "stderr":
            return output.text.strip().splitlines()[-1][:400]
    return "partial credit only"


def holds_only_comments(cell) -> bool:
    """A test cell whose tests are all hidden: in the student version only a comment is left."""
    return all(not line.strip() or line.lstrip().startswith("#") for line in cell.source.splitlines())


def unanswered_written_answers(notebook) -> int:
    return sum(
        1 for cell in notebook.cells
        if cell.cell_type == "markdown" and cell.get("metadata", {}).get("nbgrader", {}).get("solution")
        and cell.source.strip() in {"", "YOUR ANSWER HERE"}
    )


def self_check(path: Path) -> int:
    notebook = read(path)
    lang = notebook_language(notebook)

    def say(text: str) -> None:
        print(translate(text, lang))

    config = nbgrader_config(COURSE_FILES)
    resources = {"metadata": {"path": str(path.parent)}}
    with utils.setenv(NBGRADER_EXECUTION="validate", **{VARIABLE: lang}):
        notebook, resources = Execute(config=config).preprocess(notebook, resources)
    notebook, resources = IgnorePattern(config=config).preprocess(notebook, resources)

    failed = earned = total = hidden = 0
    for cell in notebook.cells:
        if not is_test_cell(cell):
            continue
        if holds_only_comments(cell):
            hidden += 1
            say(f"hidden {grade_id(cell)}: runs when the notebook is graded")
            continue
        score, max_score = utils.determine_grade(cell)
        earned, total = earned + score, total + max_score
        if score < max_score:
            failed += 1
            say(f"FAIL   {grade_id(cell)}: {first_error_line(cell)}")
        else:
            say(f"pass   {grade_id(cell)}")
    say(f"\n{path.name}: visible tests give {earned:g} of {total:g} points; {failed} failed.")
    missing = unanswered_written_answers(notebook)
    if missing:
        say(f"{missing} written answer(s) still say YOUR ANSWER HERE (graded by hand, not checked here).")
    if hidden:
        say(f"{hidden} test cell(s) hold only hidden tests: they run when the notebook is graded.")
    return 1 if failed else 0
