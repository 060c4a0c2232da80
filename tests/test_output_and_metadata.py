"""Two grader-side defences: a byte limit on outputs, and test-cell metadata put back as released.

The unit tests need no kernel. The graded batch (00_orientation, the quickest assignment) holds honest
answers with harm added: 240 MB printed, 60 MB of HTML displayed, and test cells whose nbgrader metadata
was edited in the notebook JSON. Each must keep full marks, stay in the grades, and give a small
autograded notebook and feedback that say what was left out.
"""

import copy
import re

import nbformat
import pytest
from nbgrader.utils import determine_grade

from batchcourse import grading
from batchcourse.grading.output_limit import NOTE_PREFIX, OutputBudget, output_bytes
from batchcourse.grading.repair import repair
from batchcourse.grading.sandbox import METADATA_KEY
from test_notebooks import graded_the_batch

WARNING = r"^(?:\S.*:\d+: )?\w*Warning: "
LIMITS = {"cell_bytes": 1000, "notebook_bytes": 2500, "ignore_pattern": WARNING}


def stream(text, name="stdout"):
    return nbformat.v4.new_output("stream", name=name, text=text)


def result(text):
    return nbformat.v4.new_output("execute_result", data={"text/plain": text}, execution_count=1)


def error(message):
    return nbformat.v4.new_output("error", ename="AssertionError", evalue=message, traceback=[message] * 30)


def html(size):
    return nbformat.v4.new_output("display_data", data={"text/html": "h" * size})


def score(outputs, points=2.0):
    """nbgrader's score of a test cell with these outputs, after IgnorePattern."""
    cell = nbformat.v4.new_code_cell("pass", metadata={"nbgrader": {"grade": True, "solution": False, "points": points,
                                                                    "grade_id": "t", "locked": True}})
    cell.outputs = [o for o in outputs if not (o.output_type == "stream" and o.name == "stderr" and re.search(WARNING, o.text))]
    return determine_grade(cell)[0]


def through_budget(cells):
    budget = OutputBudget(**LIMITS)
    kept = []
    for index, outputs in enumerate(cells):
        outs = []
        for output in copy.deepcopy(outputs):
            outs.append(output)
            budget.admit(outs, output, index)
        kept.append(outs)
    return kept


SEQUENCES = {
    "a passing cell after a flood": [[stream("a" * 5000)], [stream("b" * 50)]],
    "an error after a flood in the same cell": [[stream("a" * 5000), error("wrong")]],
    "an error message that is itself huge": [[error("e" * 100000)]],
    "warnings after a flood": [[stream("a" * 5000), stream("x.py:1: UserWarning: w\n" * 10, "stderr")]],
    "stderr after a flood of warnings": [[html(5000)] + [stream("x.py:1: UserWarning: w\n", "stderr")] * 5
                                         + [stream("real trouble\n", "stderr")]],
    "a partial-credit result after a flood": [[html(9000), result("0.5"), result("7")]],
    "a flood in every cell": [[stream("a" * 3000)], [stream("b" * 3000), error("late")], [result("1")]],
}


@pytest.mark.parametrize("cells", SEQUENCES.values(), ids=SEQUENCES.keys())
def test_budget_keeps_the_score_and_says_what_it_left_out(cells):
    kept = through_budget(cells)
    assert [score(outs) for outs in kept] == [score(outs) for outs in cells]
    assert sum(output_bytes(o) for outs in kept for o in outs) < 2 * LIMITS["notebook_bytes"] + 20000
    assert any(NOTE_PREFIX in o.get("text", "") for outs in kept for o in outs)


def test_budget_leaves_small_outputs_alone():
    cells = [[stream("a" * 100), html(200), result("1")], [error("wrong")]]
    assert through_budget(cells) == cells


def release_like(*cells):
    nb = nbformat.v4.new_notebook()
    for kind, grade_id in cells:
        cell = nbformat.v4.new_code_cell(f"# {grade_id}")
        cell.metadata["nbgrader"] = {"grade_id": grade_id, "locked": kind != "solution", "grade": kind == "test",
                                     "solution": kind == "solution", "schema_version": 3,
                                     **({"points": 2} if kind == "test" else {})}
        nb.cells.append(cell)
    return nb


@pytest.mark.parametrize("changes", [{"solution": True}, {"grade": False}, {"points": 100}, {"locked": False},
                                     {"solution": True, "grade": False, "points": 0}])
def test_repair_puts_back_test_cell_metadata(changes):
    source = release_like(("solution", "f"), ("test", "test_f"))
    submitted = copy.deepcopy(source)
    submitted.cells[1].metadata.nbgrader.update(changes)
    repairs = repair(submitted, source)
    assert submitted.cells[1].metadata.nbgrader == source.cells[1].metadata.nbgrader
    assert any("test_f" in r and "graded as released" in r for r in repairs)


def test_repair_puts_back_a_test_cell_turned_into_markdown():
    source = release_like(("solution", "f"), ("test", "test_f"))
    submitted = copy.deepcopy(source)
    submitted.cells[1] = nbformat.v4.new_markdown_cell("nothing", metadata=submitted.cells[1].metadata)
    repair(submitted, source)
    assert submitted.cells[1].cell_type == "code" and submitted.cells[1].metadata.nbgrader["grade"]


FLOODS = {
    "prints 240 MB": 'print("x" * (240 * 1024 * 1024))',
    "displays 60 MB of HTML": ('from IPython.display import display\n'
                               'for _ in range(60):\n'
                               '    display({"text/html": "<p>" + "y" * (1024 * 1024) + "</p>"}, raw=True)'),
}
MAX_BYTES = 12 * 1024 * 1024


@pytest.mark.notebooks
def test_floods_and_edited_metadata_keep_honest_marks(tmp_path, monkeypatch, with_grading_servers):
    monkeypatch.setenv("BATCHCOURSE_CELL_SECONDS", "60")
    assignment = "00_orientation"
    course = grading.ScratchCourse.create(assignment, tmp_path)
    answers = grading.solution_code(course.solution_nb)
    first = next(iter(k for k in answers if k != "setup" and not k.startswith("answer")))
    batch = {"honest": grading.make_submission(course.student_nb, answers)}
    for number, flood in enumerate(FLOODS.values()):
        batch[f"flood{number}"] = grading.make_submission(course.student_nb, {**answers, first: answers[first] + "\n" + flood})
    edited = grading.make_submission(course.student_nb, answers)
    changes = iter([{"solution": True}, {"grade": False}, {"points": 100, "grade_id": "test_mine"}, {"locked": False},
                    {"solution": True, "grade": False}, {"points": 0}])
    for cell in edited.cells:
        if grading.is_test_cell(cell):
            cell.metadata.nbgrader.update(next(changes, {}))
    batch["edited"] = edited
    course.submit(batch)
    graded_the_batch(course)
    grading.generate_feedback(assignment, course.root, course.db_url)
    scores = course.scores()
    for student in batch:
        cells = scores[student]
        lost = [g for g, c in cells.items() if c.auto and (c.score or 0) < c.max_score]
        assert not lost, f"{student} lost points on {lost}"
        graded = course.root / "autograde" / "autograded" / student / assignment / f"{assignment}.ipynb"
        feedback = course.root / "autograde" / "feedback" / student / assignment / f"{assignment}.html"
        for path in (graded, feedback):
            assert path.stat().st_size < MAX_BYTES, f"{student}: {path.name} holds {path.stat().st_size / 2**20:.1f} MB"
        if student.startswith("flood"):
            assert NOTE_PREFIX in feedback.read_text(), f"{student}: the feedback does not say that output was left out"
            events = grading.read(graded).metadata[METADATA_KEY].get("events", [])
            assert any("output of cell" in e for e in events), f"{student}: the grading record does not say it"
