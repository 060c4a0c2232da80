"""Issue 12's attack families: no variant may gain a point, make its submission ungradeable or bloat it.

The variants are tests/attacks.py's ISSUE_FAMILIES (any assignment) and each assignment's ISSUE_ATTACKS
in tests/cases/<id>.py. One batch per assignment is graded: an honest submission (must keep full marks),
a blank one, the wrong answer the generic variants carry (their baseline: a test cell per skill may give it
partial credit), and the variants. The generic ones attack the kernel, not a task, so they are all graded on
01, whose notebook runs fastest; 04 gets its own. The two batches are separate fixtures, so two test workers
grade them side by side. Each variant is then its own test. While test cells ran in the student's kernel, 36 of
these variants won full marks with a wrong answer (measured on 01 and 04); with the tests in a process of their
own, none may.
"""

from dataclasses import dataclass, field
from pathlib import Path

import pytest

import attacks
from batchcourse import grading
from test_notebooks import grade_ids_of_tests, graded_functions, load_cases, numeric_wrong_answer, without_demos

pytestmark = pytest.mark.notebooks
PAIR = ("01_conv_batch_independence", "04_running_stats_and_eval")
MAX_GRADED_NOTEBOOK_BYTES = 10 * 1024 * 1024  # the notebook-wide output limit (8 MB) and the rest of the notebook
GRADING_ENV = {"BATCHCOURSE_CELL_SECONDS": "20", "BATCHCOURSE_WALL_SECONDS": "120"}


@dataclass
class Variant:
    family: str
    name: str
    function: str
    build: object = field(repr=False)
    wrong: str = field(default="", repr=False)


def variants_for(assignment: str) -> list[Variant]:
    """The variants graded on `assignment`: its own, and on the first of the pair the generic ones."""
    cases = load_cases(assignment)
    chosen = []
    generic = [(family, name, build) for family, table in attacks.ISSUE_FAMILIES.items() for name, build in table.items()]
    for family, name, build in generic if assignment == PAIR[0] else ():
        chosen.append(Variant(family, name, None, build))
    for family, table in getattr(cases, "ISSUE_ATTACKS", {}).items():
        for name, (function, code) in table.items():
            chosen.append(Variant(family, name, function, None, code))
    return chosen


@dataclass
class Outcome:
    gained: float
    graded: bool
    graded_bytes: int


def grade_variants(assignment: str, variants: list[Variant], parent: Path) -> tuple[dict, bool, str]:
    """Grade honest, blank and every variant in one batch; return variant -> Outcome, whether the honest
    submission kept every point, and nbgrader's output."""
    course = grading.ScratchCourse.create(assignment, parent)
    solution_nb, student_nb = course.solution_nb, course.student_nb
    answers = grading.solution_code(solution_nb)
    target = graded_functions(solution_nb)[0]
    wrong = numeric_wrong_answer(load_cases(assignment), target)[1]
    context = {"assignment": assignment, "port": 9}
    # No submission here needs a demo (the gate grades the solution and the blank notebook whole).
    student_nb = without_demos(student_nb)
    batch = {"honest": grading.make_submission(student_nb, answers), "blank": student_nb,
             "wrong": grading.make_submission(student_nb, {**answers, target: wrong})}
    students = {}
    for number, variant in enumerate(variants, 1):
        student = f"variant{number:02d}"
        if variant.build is not None:
            variant.function = target
            batch[student] = variant.build(student_nb, answers, target, wrong, context)
        else:
            batch[student] = grading.make_submission(student_nb, {**answers, variant.function: variant.wrong})
        students[student] = variant
    course.submit(batch)
    run = course.autograde()
    scores = course.scores()
    all_tests = [grading.grade_id(c) for c in solution_nb.cells if grading.is_test_cell(c)]
    honest = scores.get("honest", {})
    honest_full = bool(honest) and all((honest[g].score or 0) >= honest[g].max_score for g in all_tests if g in honest)
    outcomes = {}
    for student, variant in students.items():
        attacked = grade_ids_of_tests(solution_nb, variant.function)
        mine = scores.get(student, {})
        # A generic variant carries the target's wrong answer, which may earn partial credit on its own.
        baseline = scores["wrong" if variant.build is not None else "blank"]
        gained = sum(mine[g].score or 0 for g in attacked if g in mine) - sum(baseline[g].score or 0 for g in attacked)
        path = course.root / "autograde" / "autograded" / student / assignment / f"{assignment}.ipynb"
        graded = path.is_file() and student in scores and all(g in mine for g in attacked)
        outcomes[(variant.family, variant.name)] = Outcome(gained, graded, path.stat().st_size if path.is_file() else 0)
    return outcomes, honest_full, run.stdout


def graded(assignment: str, tmp_path_factory, servers: dict) -> tuple[dict, bool, str]:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**GRADING_ENV, **servers}.items():
            patch.setenv(key, value)
        return grade_variants(assignment, variants_for(assignment), tmp_path_factory.mktemp(assignment))


@pytest.fixture(scope="module")
def graded_01(tmp_path_factory, grading_servers):
    return graded(PAIR[0], tmp_path_factory, grading_servers)


@pytest.fixture(scope="module")
def graded_04(tmp_path_factory, grading_servers):
    return graded(PAIR[1], tmp_path_factory, grading_servers)


def _params(assignment: str):
    return [pytest.param((v.family, v.name), id=f"{v.family}: {v.name}") for v in variants_for(assignment)]


def check_honest(assignment: str, result) -> None:
    _, honest_full, output = result
    assert honest_full, f"the honest submission lost points on {assignment} in a batch with the attacks:\n{output[-3000:]}"


def check_variant(result, variant) -> None:
    outcome = result[0][variant]
    assert outcome.graded, f"{variant[1]}: the submission could not be graded, so it is missing from the grades"
    assert outcome.gained <= 0, f"{variant[1]}: gained {outcome.gained:g} points with a wrong answer"
    assert outcome.graded_bytes <= MAX_GRADED_NOTEBOOK_BYTES, (
        f"{variant[1]}: the autograded notebook holds {outcome.graded_bytes / 2**20:.1f} MB")


def test_honest_submission_keeps_full_marks_01(graded_01):
    check_honest(PAIR[0], graded_01)


def test_honest_submission_keeps_full_marks_04(graded_04):
    check_honest(PAIR[1], graded_04)


@pytest.mark.parametrize("variant", _params(PAIR[0]))
def test_variant_gains_nothing_01(graded_01, variant):
    check_variant(graded_01, variant)


@pytest.mark.parametrize("variant", _params(PAIR[1]))
def test_variant_gains_nothing_04(graded_04, variant):
    check_variant(graded_04, variant)
