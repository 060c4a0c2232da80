"""Notebook cells as nbgrader marks them, and submissions built from the student notebook and chosen code."""

from pathlib import Path

import nbformat

NOTEBOOK_VERSION = 4


def edited(code: str, *edits: tuple[str, str]) -> str:
    """`code` with each (old, new) edit applied: a wrong answer written as a correct one with one mistake edited in.

    Every old text must occur exactly once, so that an edit cannot silently miss or hit twice."""
    for old, new in edits:
        assert code.count(old) == 1, f"{old!r} occurs {code.count(old)} times in the code to edit"
        code = code.replace(old, new)
    return code


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=NOTEBOOK_VERSION)


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def is_solution_cell(cell) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution"))


def is_test_cell(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return bool(meta.get("grade")) and not meta.get("solution") and cell.cell_type == "code"


def strip_markers(source: str) -> str:
    """The solution code of a source cell, as a student would have typed it."""
    return "\n".join(line for line in source.splitlines()
                     if line.strip() not in {"### BEGIN SOLUTION", "### END SOLUTION"})


def solution_code(solution_nb) -> dict[str, str]:
    """Grade id -> solution code for every solution cell of the instructor notebook."""
    return {grade_id(c): strip_markers(c.source) for c in solution_nb.cells if is_solution_cell(c)}


def make_submission(student_nb, answers: dict[str, str]) -> nbformat.NotebookNode:
    """A copy of the student notebook whose solution cells with these grade ids hold these answers."""
    submission = nbformat.from_dict(student_nb)
    for cell in submission.cells:
        if is_solution_cell(cell) and grade_id(cell) in answers:
            cell.source = answers[grade_id(cell)]
    return submission
