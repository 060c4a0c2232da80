"""Gates for every assignment present: they run for each notebook in solutions/.

- the solution notebook executes top to bottom;
- notebooks/ is exactly what the release command makes from solutions/;
- no notebook stores outputs, and no student notebook holds solution code or hidden tests;
- autograde gives the solution full marks and the untouched student notebook zero, on every test cell;
- every wrong answer in tests/cases/<id>.py loses points on its function's tests, and every
  correct alternative keeps full points;
- issue 27's boundary families (tests/attacks.py), generated for every graded name: numerically wrong answers with
  a trick that changes the test's arguments in place or plants code on its modules earn no more than without it.
The cases are graded in one nbgrader run with test_tampering's attacks (conftest.graded_batch).
"""

import ast
import base64
import importlib.util
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from batchcourse import editions, grading
from batchcourse.i18n import LANGUAGES as EDITIONS
from batchcourse.paths import NOTEBOOKS_DIR, REPO_ROOT, SOLUTIONS_DIR, assignment_ids

import attacks

ASSIGNMENTS = assignment_ids()
CASES_DIR = Path(__file__).parent / "cases"
MIN_WRONG, MIN_CORRECT = 5, 2
SOLUTION_BLOCK = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)
HIDDEN_BLOCK = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)


def source_path(assignment: str) -> Path:
    return SOLUTIONS_DIR / assignment / f"{assignment}.ipynb"


def release_path(assignment: str) -> Path:
    return NOTEBOOKS_DIR / assignment / f"{assignment}.ipynb"


def load_cases(assignment: str):
    path = CASES_DIR / f"{assignment}.py"
    if not path.is_file():
        pytest.fail(f"{assignment} has no wrong answers and correct alternatives: add {path.relative_to(REPO_ROOT)}")
    spec = importlib.util.spec_from_file_location(f"cases_{assignment}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def graded_functions(notebook) -> list[str]:
    return [grading.grade_id(c) for c in notebook.cells if grading.is_solution_cell(c) and c.cell_type == "code"]


def grade_ids_of_tests(notebook, function: str) -> list[str]:
    return [grading.grade_id(c) for c in notebook.cells
            if grading.is_test_cell(c) and grading.grade_id(c).startswith(f"test_{function}")]


def test_there_are_assignments():
    assert "00_orientation" in ASSIGNMENTS, "solutions/00_orientation/00_orientation.ipynb is missing"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_no_outputs_stored(assignment):
    for path in (source_path(assignment), release_path(assignment)):
        assert path.is_file(), f"{path.relative_to(REPO_ROOT)} is missing: run `python3 tasks.py release`"
        for index, cell in enumerate(grading.read(path).cells):
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, (
                    f"cell {index} of {path.relative_to(REPO_ROOT)} stores outputs: clear them before committing")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_notebook_has_no_solutions_or_hidden_tests(assignment):
    student_text = release_path(assignment).read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in student_text, f"the student notebook of {assignment} contains '{marker}'"
    source = grading.read(source_path(assignment))
    visible = "\n".join(HIDDEN_BLOCK.sub("", SOLUTION_BLOCK.sub("", c.source)) for c in source.cells)
    for cell in source.cells:
        for block in SOLUTION_BLOCK.findall(cell.source) + HIDDEN_BLOCK.findall(cell.source):
            for line in block.splitlines():
                line = line.strip()
                if len(line) >= 12 and not line.startswith("#") and line not in visible:
                    assert line not in student_text, f"the student notebook of {assignment} contains solution or hidden-test code: {line!r}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_cells_follow_the_naming_rules(assignment):
    notebook = grading.read(source_path(assignment))
    functions = graded_functions(notebook)
    for cell in notebook.cells:
        if grading.is_test_cell(cell):
            gid = grading.grade_id(cell)
            assert any(gid.startswith(f"test_{f}") for f in functions), (
                f"test cell {gid} of {assignment} must be named test_<function>... after the solution cell it tests")
    for function in functions:
        assert grade_ids_of_tests(notebook, function), f"{function} in {assignment} has no test cell"


def checking_functions(tree: ast.Module) -> set[str]:
    """Functions a test cell defines that never return a value (so calling one last scores nothing extra)."""
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)
            and not any(isinstance(n, ast.Return) and n.value is not None for n in ast.walk(node))}


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_test_cells_end_in_a_statement(assignment):
    """nbgrader reads a value a test cell ends in as partial credit; only a check (returning None) may end it."""
    for cell in grading.read(source_path(assignment)).cells:
        if grading.is_test_cell(cell):
            code = "\n".join(l for l in cell.source.splitlines() if not l.strip().startswith("###"))
            tree = ast.parse(code)
            last = tree.body[-1]
            if isinstance(last, ast.Expr):
                call = last.value.func if isinstance(last.value, ast.Call) else None
                checks_call = isinstance(call, ast.Attribute) and isinstance(call.value, ast.Name) and call.value.id == "checks"
                assert checks_call or (isinstance(call, ast.Name) and call.id in checking_functions(tree)), (
                    f"test cell {grading.grade_id(cell)} of {assignment} ends in an expression: end it with a checks call or a statement")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_graded_function_has_cases(assignment):
    cases = load_cases(assignment)
    for function in graded_functions(grading.read(source_path(assignment))):
        assert len(cases.WRONG.get(function, [])) >= MIN_WRONG, f"{assignment}: {function} needs {MIN_WRONG} wrong answers in tests/cases"
        assert len(cases.CORRECT.get(function, [])) >= MIN_CORRECT, f"{assignment}: {function} needs {MIN_CORRECT} correct alternatives in tests/cases"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_wrong_answers_name_existing_test_cells(assignment):
    """A wrong answer's third element names the test cells that must catch it; they must be its function's."""
    notebook = grading.read(source_path(assignment))
    for function, answers in load_cases(assignment).WRONG.items():
        for answer in answers:
            assert answer[3:] in ((), ("only",)), f"{assignment}: the wrong {function} ({answer[0]}) has a fourth element other than 'only'"
            assert answer[3:] == () or named_cells(answer), f"{assignment}: the wrong {function} ({answer[0]}) says 'only' but names no test cell"
            unknown = set(named_cells(answer)) - set(grade_ids_of_tests(notebook, function))
            assert not unknown, f"{assignment}: the wrong {function} ({answer[0]}) names test cells {function} does not have: {sorted(unknown)}"


@pytest.mark.notebooks
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_is_up_to_date(assignment, tmp_path):
    root = grading.scratch_course(assignment, tmp_path)
    grading.release(assignment, root=root)
    made = root / "notebooks" / assignment
    committed = NOTEBOOKS_DIR / assignment
    made_files = sorted(p.relative_to(made) for p in made.rglob("*") if p.is_file())
    committed_files = sorted(p.relative_to(committed) for p in committed.rglob("*") if p.is_file())
    assert made_files == committed_files, f"notebooks/{assignment} is out of date: run `python3 tasks.py release`"
    for name in made_files:
        assert (made / name).read_bytes() == (committed / name).read_bytes(), (
            f"notebooks/{assignment}/{name} differs from what release makes: run `python3 tasks.py release`")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_notebook_anatomy(assignment):
    """Title, what you will learn, prerequisites and time, a locked set-up cell first, sections, summary, questions."""
    cells = grading.read(source_path(assignment)).cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith(f"# {assignment[:2]} · "), (
        f"{assignment} must open with its title, '# {assignment[:2]} · ...'")
    for words in ("what you will learn", "prerequisites", "time"):
        assert words in cells[0].source.lower(), f"the first cell of {assignment} must say '{words}'"
    first_code = next(c for c in cells if c.cell_type == "code")
    assert first_code.metadata.get("nbgrader", {}).get("locked"), f"the first code cell of {assignment} must be the locked set-up cell"
    headings = [line for c in cells if c.cell_type == "markdown" for line in c.source.splitlines() if line.startswith("#")]
    assert sum(h.startswith("# ") for h in headings) == 1, f"{assignment} must have exactly one title heading"
    assert sum(h.startswith("## ") for h in headings) >= 4, f"{assignment} needs sections (## headings) for the table of contents"
    assert any(h.startswith("## Summary") for h in headings) and any(h.startswith("## Questions") for h in headings), (
        f"{assignment} must end with '## Summary' and '## Questions ...'")


def png_width(data: str) -> int:
    return int.from_bytes(base64.b64decode(data)[16:20], "big")


@pytest.mark.notebooks
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_executes(assignment, tmp_path):
    notebook = grading.read(source_path(assignment))
    workdir = tmp_path / assignment
    shutil.copytree(SOLUTIONS_DIR / assignment, workdir)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute()
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            assert not (output.output_type == "stream" and output.name == "stderr"), (
                f"cell {index} of {assignment} prints to stderr (a warning?): {output.text[:300]}")
            if "image/png" in output.get("data", {}):
                width = png_width(output.data["image/png"])
                assert width <= 1500, f"a figure in cell {index} of {assignment} is {width} px wide: make it smaller"


def graded_the_batch(course: grading.ScratchCourse, *extra: str) -> None:
    check_graded(course, course.autograde(*extra))


def check_graded(course: grading.ScratchCourse, run: subprocess.CompletedProcess) -> None:
    assert run.returncode == 0 and not grading.ungraded(course.assignment, course.root), (
        f"nbgrader could not grade the batch:\n{run.stdout[-4000:]}")


def batch_env(assignment: str) -> dict[str, str]:
    """The time limits the gate's cases and the tampering batch are graded with, together. 00's cells take under
    3 s; its batch holds the endless loops, which each cost one cell's limit (and the one that ignores the
    interrupt the grader's 10 s more)."""
    cell_seconds = 15 if assignment == ASSIGNMENTS[0] else 30
    return {"BATCHCOURSE_CELL_SECONDS": str(cell_seconds), "BATCHCOURSE_WALL_SECONDS": "150"}


@dataclass
class Batch:
    """An assignment's graded course (conftest.graded_batch): nbgrader's run, the scores it gave, the gate's
    submissions with what each must score, and test_tampering's (student -> notebook, attacked function, attack)."""
    course: grading.ScratchCourse
    run: subprocess.CompletedProcess
    scores: dict
    cases: dict
    expectations: dict
    attacks: dict


def edition_of(name: str) -> str:
    """The language a gate's submission is written in: the cases take turns, so every edition meets them."""
    return EDITIONS[sum(map(ord, name)) % len(EDITIONS)]


def without_demos(notebook):
    """The notebook without its ungraded code cells (demos and figures), as a student may hand it in. The cases that
    differ from the solution only in graded functions are graded so (in 04 the demos train three CNNs); the solution and
    the blank notebook are graded whole. A test that needed a demo's work would fail every correct case."""
    trimmed = nbformat.from_dict(notebook)
    trimmed.cells = [c for c in trimmed.cells if c.cell_type != "code" or c.get("metadata", {}).get("nbgrader")]
    return trimmed


AT_MOST = "at most"  # an expectation: no test cell gives the submission more than it gives another


def numeric_wrong_answer(cases, function: str) -> tuple:
    """The first wrong answer of `function` that is numerically wrong (not one that only breaks the from-scratch
    rule by calling torch's own routine): what attacks that seek points are built on."""
    return next(entry for entry in cases.WRONG[function] if "torch" not in entry[0])


def submissions_for(assignment: str, student_nb, solution_nb) -> tuple[dict, dict]:
    """Submissions to grade, and for each the functions it must lose points on (None: must score full; "blank";
    (AT_MOST, another, why): no test cell gives it more than it gives `another`: issue 27's boundary families)."""
    cases = load_cases(assignment)
    solution = grading.solution_code(solution_nb)
    student = {lang: student_nb if lang == "en" else grading.read(editions.edition_path(lang, assignment))
               for lang in EDITIONS}
    submissions = {"solution": grading.make_submission(student_nb, solution), "blank": student[edition_of("blank")]}
    student = {lang: without_demos(notebook) for lang, notebook in student.items()}
    expectations = {"solution": None, "blank": "blank"}
    for kind, table in (("wrong", cases.WRONG), ("correct", cases.CORRECT)):
        rounds = max((len(answers) for answers in table.values()), default=0)
        for k in range(rounds):
            chosen = {f: answers[k] for f, answers in table.items() if k < len(answers)}
            name = f"{kind}{k + 1}"
            submissions[name] = grading.make_submission(student[edition_of(name)],
                                                        {**solution, **{f: entry[1] for f, entry in chosen.items()}})
            expectations[name] = ({f: (entry[0], named_cells(entry), entry[3:] == ("only",)) for f, entry in chosen.items()}
                                  if kind == "wrong" else None)
    # Issue 27's boundary families: boundary0 holds a numerically wrong answer for every graded name (not one that
    # only breaks a from-scratch rule), each family the same answers with its trick.
    numeric = {f: numeric_wrong_answer(cases, f) for f in cases.WRONG}
    submissions["boundary0"] = grading.make_submission(student[edition_of("boundary0")],
                                                       {**solution, **{f: entry[1] for f, entry in numeric.items()}})
    expectations["boundary0"] = {f: (entry[0], (), False) for f, entry in numeric.items()}
    families = attacks.boundary_families({f: entry[1] for f, entry in numeric.items()})
    for number, (family, answers) in enumerate(families.items(), 1):
        name = f"boundary{number}"
        submissions[name] = grading.make_submission(student[edition_of(name)], {**solution, **answers})
        expectations[name] = (AT_MOST, "boundary0", family)
    return submissions, expectations


def named_cells(wrong_answer: tuple) -> tuple[str, ...]:
    """The test cells that name a wrong answer's mistake: its third element, a grade id or a tuple of them.

    A fourth element "only" says the mistake is that skill alone: every other test cell of the function keeps full
    points (a right computation that raises the wrong exception type loses only the exception points)."""
    cells = wrong_answer[2] if len(wrong_answer) > 2 else ()
    return (cells,) if isinstance(cells, str) else tuple(cells)


# Text in an edition's language has at least one letter of its script.
SCRIPTS = {"zh-CN": re.compile(r"[\u4e00-\u9fff]"), "ru": re.compile(r"[А-Яа-яЁё]")}


# The errors the course's tests and grader raise; a wrong answer's own exception (torch's RuntimeError) is the
# student's, and reads the same in every edition.
COURSE_ERRORS = {"AssertionError", "TamperError", "ForbiddenRoutineError", "ChangedArgumentError", "StudentCodeError",
                 "WireError", "CellTimeoutError"}


def untranslated_hints(course: grading.ScratchCourse, submissions: dict) -> list[str]:
    """A failing test of a translated submission says why in the submission's language."""
    problems = []
    for student in submissions:
        lang = edition_of(student) if student != "solution" else "en"
        if lang == "en":
            continue
        graded = grading.read(course.root / "autograde" / "autograded" / student / course.assignment /
                              f"{course.assignment}.ipynb")
        for cell in graded.cells:
            for output in cell.get("outputs", []):
                if (output.output_type == "error" and output.ename in COURSE_ERRORS and output.evalue
                        and not SCRIPTS[lang].search(output.evalue)):
                    problems.append(f"{student} ({lang}): a hint is not translated: {output.evalue[:300]}")
    return problems


@pytest.mark.notebooks
def test_autograde_scores_every_case(graded_batch):  # one per assignment: conftest.graded_batch's parameter
    course, solution_nb = graded_batch.course, graded_batch.course.solution_nb
    check_graded(course, graded_batch.run)
    submissions, expectations, scores = graded_batch.cases, graded_batch.expectations, graded_batch.scores

    test_cells = [grading.grade_id(c) for c in solution_nb.cells if grading.is_test_cell(c)]
    problems = untranslated_hints(course, submissions)
    for student, expected in expectations.items():
        cells = scores[student]
        missing = [g for g in test_cells if g not in cells or cells[g].score is None]
        if missing:
            problems.append(f"{student}: test cells not scored: {missing}")
            continue
        if expected is None:
            lost = [g for g in test_cells if cells[g].score < cells[g].max_score]
            if lost:
                problems.append(f"{student}: a correct answer lost points on {lost}")
        elif isinstance(expected, tuple) and expected[0] == AT_MOST:
            _, baseline, why = expected
            gained = [g for g in test_cells if cells[g].score > (scores[baseline][g].score or 0)]
            if gained:
                problems.append(f"{student}: the wrong answers of {baseline}, each of which also {why}, earned more "
                                f"than {baseline} on {gained}")
        elif expected == "blank":
            earned = [g for g in test_cells if cells[g].score > 0]
            if earned:
                problems.append(f"blank: the untouched student notebook earned points on {earned}")
        else:
            for function, (why, named, only) in expected.items():
                cells_of_function = grade_ids_of_tests(solution_nb, function)
                if all(cells[g].score == cells[g].max_score for g in cells_of_function):
                    problems.append(f"{student}: the wrong {function} ({why}) kept full points")
                elif named and all(cells[g].score == cells[g].max_score for g in named):
                    problems.append(f"{student}: the wrong {function} ({why}) kept full points in {list(named)}, "
                                    "the cells that name its mistake")
                lost_elsewhere = [g for g in cells_of_function if g not in named and cells[g].score < cells[g].max_score]
                if only and lost_elsewhere:
                    problems.append(f"{student}: the wrong {function} ({why}) is wrong in {list(named)} only, "
                                    f"but also lost points on {lost_elsewhere}")
    assert not problems, "\n".join(problems)
