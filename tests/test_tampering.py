"""Grading that a class cannot game: tampering submissions must not gain points.

For every assignment, a batch holds an honest solution, a blank notebook and tampering
submissions (tests/attacks.py, plus each assignment's own ATTACKS in tests/cases/<id>.py).
Each tampering submission carries a wrong answer for the function it attacks; grading must give
that function's tests no points, grade the honest submission fully, finish, leave no process
behind, and (for the first assignment) give the same scores when the batch is graded again.
The attacks on the machine itself are the same for every assignment, so they run once.
"""

import socket
import time
from pathlib import Path

import pytest

import attacks
from batchcourse import grading
from batchcourse.grading.sandbox import KERNEL_USER_BASE, METADATA_KEY
from batchcourse.grading.tamper import tamper_report
from test_notebooks import ASSIGNMENTS, grade_ids_of_tests, graded_the_batch, graded_functions, load_cases

pytestmark = pytest.mark.notebooks
FIRST = ASSIGNMENTS[0]
REGRADED = ("honest", "blank", "attack01", "attack05", "attack09")


def kernel_uids(course: grading.ScratchCourse) -> set[int]:
    """The users the batch's sandboxed kernels ran as (recorded in each graded notebook)."""
    graded = (course.root / "autograde" / "autograded").glob(f"*/{course.assignment}/{course.assignment}.ipynb")
    return {grading.read(path).metadata.get(METADATA_KEY, {}).get("kernel_uid") for path in graded} - {None}


def sandbox_processes(uids: set[int], wait_seconds: float = 10.0) -> list[int]:
    """Processes of these users still alive once teardown has had `wait_seconds`."""
    deadline = time.monotonic() + wait_seconds
    while (pids := _pids_of(uids)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return pids


def _pids_of(uids: set[int]) -> list[int]:
    pids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            uid = int(next(l for l in status.read_text().splitlines() if l.startswith("Uid:")).split()[1])
        except (OSError, StopIteration):
            continue
        if uid in uids:
            pids.append(int(status.parent.name))
    return pids


@pytest.fixture
def outside_listener():
    """A TCP server on the grader's loopback: a sandboxed kernel must not reach it."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def tampering_batch(assignment, student_nb, solution_nb, port):
    cases = load_cases(assignment)
    answers = grading.solution_code(solution_nb)
    target = graded_functions(solution_nb)[0]
    wrong = cases.WRONG[target][0][1]
    context = {"assignment": assignment, "port": port}
    chosen = dict(attacks.KERNEL_ATTACKS) if assignment == FIRST else {n: attacks.KERNEL_ATTACKS[n] for n in attacks.QUICK_KERNEL_ATTACKS}
    if assignment == FIRST:
        chosen.update(attacks.SANDBOX_ATTACKS)
    batch = {"honest": (grading.make_submission(student_nb, answers), None, None),
             "blank": (student_nb, None, None)}
    for number, (name, build) in enumerate(chosen.items(), 1):
        batch[f"attack{number:02d}"] = (build(student_nb, answers, target, wrong, context), target, name)
    for number, (name, (function, code)) in enumerate(getattr(cases, "ATTACKS", {}).items(), 1):
        batch[f"own{number:02d}"] = (grading.make_submission(student_nb, {**answers, function: code}), function, name)
    return batch


def points(cells, grade_ids) -> float:
    return sum(cells[g].score or 0 for g in grade_ids if g in cells)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_tampering_gains_no_points(assignment, tmp_path, monkeypatch, outside_listener):
    monkeypatch.setenv("BATCHCOURSE_CELL_SECONDS", "20")
    monkeypatch.setenv("BATCHCOURSE_WALL_SECONDS", "120")
    course = grading.ScratchCourse.create(assignment, tmp_path)
    solution_nb = course.solution_nb
    batch = tampering_batch(assignment, course.student_nb, solution_nb, outside_listener)
    course.submit({student: notebook for student, (notebook, _, _) in batch.items()})
    graded_the_batch(course)
    scores = course.scores()
    all_tests = [grading.grade_id(c) for c in solution_nb.cells if grading.is_test_cell(c)]
    problems = []
    honest = scores["honest"]
    if points(honest, all_tests) < sum(honest[g].max_score for g in all_tests):
        problems.append("the honest submission in the same batch lost points")
    for student, (_, function, attack) in batch.items():
        if function is None:
            continue
        attacked = grade_ids_of_tests(solution_nb, function)
        gained = points(scores[student], attacked) - points(scores["blank"], attacked)
        if gained > 0:
            problems.append(f"{student} ({attack}) gained {gained:g} points on {function}")
    uids = kernel_uids(course)
    assert all(uid >= KERNEL_USER_BASE for uid in uids) and uids, "the batch did not run in the sandbox"
    leftovers = sandbox_processes(uids)
    if leftovers:
        problems.append(f"processes left behind by sandboxed kernels: {leftovers}")
    assert not problems, "\n".join(problems)

    report = tamper_report(course.root, assignment)
    flagged = {student for student, (_, _, attack) in batch.items()
               if attack in ("replaces the checks helpers through vars()", "skips test cells in run_cell", "loops forever")}
    assert flagged <= set(report), f"the tamper report misses {sorted(flagged - set(report))}"

    if assignment == FIRST:
        first = {s: {g: c.score for g, c in scores[s].items()} for s in REGRADED}
        for student in REGRADED:
            graded_the_batch(course, f"--student={student}")
        again = course.scores()
        assert {s: {g: c.score for g, c in again[s].items()} for s in REGRADED} == first, "grading twice gave different scores"
