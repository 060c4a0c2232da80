"""nbgrader, driven for this course: release, autograde, scores, feedback and the check of the grader.

Every function takes the course root and the gradebook URL, so that the test suite and the
benchmark grade in throwaway copies of the course while instructors grade in the real one.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
from traitlets.config.loader import PyFileConfigLoader

from ..paths import AUTOGRADE_DIR, REPO_ROOT
from .cells import NOTEBOOK_VERSION, grade_id, make_submission, read, solution_code


def sqlite_url(root: Path) -> str:
    """The course's own SQLite gradebook, autograde/gradebook.db."""
    return f"sqlite:///{root / 'autograde' / 'gradebook.db'}"


def default_db_url(root: Path = REPO_ROOT) -> str:
    """NBGRADER_DB_URL when it is set (for any course root), else the course's SQLite gradebook."""
    return os.environ.get("NBGRADER_DB_URL") or sqlite_url(root)


def course_assignments(root: Path = REPO_ROOT) -> list[str]:
    """The assignments whose source is in the course at `root`, in course order."""
    return sorted(p.name for p in (root / "solutions").iterdir() if (p / f"{p.name}.ipynb").is_file())


def nbgrader_config(root: Path = REPO_ROOT):
    """The nbgrader configuration of the course at `root`, as nbgrader itself loads it."""
    return PyFileConfigLoader("nbgrader_config.py", path=str(root / "autograde")).load_config()


def ensure_exchange(root: Path = REPO_ROOT) -> None:
    """Create the exchange folder the course's configuration names: Formgrader's Release and Collect and the
    students' Assignment List need it to exist."""
    Path(nbgrader_config(root).Exchange.root).mkdir(exist_ok=True)


def nbgrader_arguments(args, root: Path, db_url: str | None) -> list[str]:
    """An nbgrader command's arguments (after `nbgrader`) on the course at `root`."""
    return [*args, f"--CourseDirectory.root={root}", f"--CourseDirectory.db_url={db_url or default_db_url(root)}"]


def nbgrader_environment() -> dict[str, str]:
    """The environment nbgrader runs in: the course's configuration, this environment's commands first."""
    return dict(os.environ, JUPYTER_CONFIG_PATH=str(AUTOGRADE_DIR), JUPYTER_PLATFORM_DIRS="1",
                PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))


def run_nbgrader(*args: str, root: Path = REPO_ROOT, db_url: str | None = None,
                 capture: bool = False, check: bool = True) -> subprocess.CompletedProcess:
    """Run an nbgrader command on the course at `root`; unless `check` is False, raise with its output if it fails.

    The nbgrader process is killed when the thread that runs it ends (lifetime.py). Inside a grading command
    (parallel.grading_servers), a command whose output is captured is forked from the command's grader server."""
    from .grader_source import run_forked, shared_socket
    from .lifetime import dies_with_parent

    graders = shared_socket() if capture else None
    if graders:
        result = run_forked(graders, *args, root=root, db_url=db_url)
    else:
        command = dies_with_parent([sys.executable, "-m", "nbgrader", *nbgrader_arguments(args, root, db_url)])
        result = subprocess.run(command, cwd=root, env=nbgrader_environment(), text=True,
                                stdout=subprocess.PIPE if capture else None, stderr=subprocess.STDOUT if capture else None)
    if check and result.returncode != 0:
        output = f":\n{result.stdout}" if capture else ""
        raise RuntimeError(f"`nbgrader {' '.join(args)}` failed with exit code {result.returncode}{output}")
    return result


def release(assignment: str, root: Path = REPO_ROOT, db_url: str | None = None, release_dir: str | None = None) -> None:
    """Generate the student version of `assignment` (and record its cells in the gradebook)."""
    extra = [f"--CourseDirectory.release_directory={release_dir}"] if release_dir else []
    run_nbgrader("generate_assignment", assignment, "--force", *extra, root=root, db_url=db_url, capture=True)


def record_in_gradebook(assignment: str, root: Path = REPO_ROOT, db_url: str | None = None) -> None:
    """Record the assignment's cells in the gradebook without touching notebooks/."""
    with tempfile.TemporaryDirectory(dir=root / "autograde", prefix=".release-") as scratch:
        release(assignment, root, db_url, release_dir=os.path.relpath(scratch, root))


def autograde(assignment: str, root: Path = REPO_ROOT, db_url: str | None = None,
              student: str | None = None) -> subprocess.CompletedProcess:
    """Autograde every submission (or one student's); nbgrader goes on past a submission it cannot grade.

    Returns nbgrader's run; `ungraded()` lists the submissions it could not grade.
    """
    extra = [f"--student={student}"] if student else []
    return run_nbgrader("autograde", assignment, "--force", *extra, root=root, db_url=db_url, capture=True, check=False)


def ungraded(assignment: str, root: Path = REPO_ROOT) -> list[str]:
    """Students with a submission but no autograded notebook, or whose grading was cut short."""
    submitted = {p.parts[-2] for p in (root / "autograde" / "submitted").glob(f"*/{assignment}")}
    graded = {p.parts[-2] for p in (root / "autograde" / "autograded").glob(f"*/{assignment}")}
    return sorted(submitted - graded | submitted & set(interrupted(assignment, root)))


def grading_mark(assignment: str, root: Path, student: str) -> Path:
    """Where `tasks.py grade` notes, with the run's id, that it is grading `student`'s submission."""
    return root / "autograde" / "in_progress" / assignment / student


def interrupted(assignment: str, root: Path = REPO_ROOT) -> list[str]:
    """Students whose grading was cut short: their grading run ended (was killed outright) before it finished
    them. nbgrader writes the autograded notebook before it runs it, so such a notebook is no grade."""
    from .lifetime import run_alive

    marks = (root / "autograde" / "in_progress" / assignment).glob("*")
    return sorted(mark.name for mark in marks if not run_alive(mark.read_text().strip() or "none"))


def nbgrader_cause(output: str, student: str) -> str:
    """The lines of nbgrader's output that say why it could not grade `student`'s submission."""
    lines = [line.strip() for line in output.splitlines()]
    start = next((i for i, line in enumerate(lines) if "ERROR" in line and student in line), None)
    if start is None:
        return "nbgrader gave no reason; see its output above"
    block = []
    for line in lines[start + 1:]:
        if line.startswith("[") and ("ERROR" in line or "INFO" in line or "WARNING" in line) and block:
            break
        block.append(line)
    causes = [line for line in block if re.match(r"^[\w.]+(Error|Exception|Unavailable|Invalid)\b.*:", line)]
    return (causes or [line for line in block if line] or ["see nbgrader's output"])[-1][:500]


def notebook_problem(path: Path) -> str | None:
    """None when `path` holds a valid notebook; otherwise why it does not."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return f"cannot be read as UTF-8 text ({error})"
    try:
        content = json.loads(text)
    except json.JSONDecodeError as error:
        return f"not valid JSON ({error})"
    if not isinstance(content, dict) or "cells" not in content:
        return "JSON, but not a notebook (no cells)"
    try:
        nbformat.validate(nbformat.reads(text, as_version=NOTEBOOK_VERSION))
    except Exception as error:  # noqa: BLE001 - nbformat raises several kinds for an invalid notebook
        return f"not a valid notebook ({str(error).splitlines()[0][:200]})"
    return None


def set_aside_unreadable(assignment: str, root: Path = REPO_ROOT) -> dict[str, str]:
    """Move submissions that are not valid notebooks to autograde/unreadable/, so that nbgrader never scores
    them as blank; return student -> why."""
    problems = {}
    for folder in sorted((root / "autograde" / "submitted").glob(f"*/{assignment}")):
        notebook = folder / f"{assignment}.ipynb"
        problem = notebook_problem(notebook) if notebook.is_file() else f"the folder holds no {assignment}.ipynb"
        if problem:
            student = folder.parent.name
            target = root / "autograde" / "unreadable" / student / assignment
            shutil.rmtree(target, ignore_errors=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(folder), target)
            if not any(folder.parent.iterdir()):
                folder.parent.rmdir()
            problems[student] = problem
    return problems


class GradingStopped(RuntimeError):
    """The grader itself cannot grade (a kernel that cannot start, no sandbox, a broken environment)."""


CANARY = "solution-canary"


def check_grader(assignment: str, root: Path = REPO_ROOT) -> None:
    """Grade the assignment's own solution in a throwaway course; raise GradingStopped unless it gets every point.

    A grader that cannot start a kernel or make a sandbox fails here, before any student's score is written."""
    from .scratch import ScratchCourse

    with tempfile.TemporaryDirectory(prefix="batchcourse-canary-") as scratch:
        course = ScratchCourse.create(assignment, Path(scratch), source_root=root)
        course.submit({CANARY: make_submission(course.student_nb, solution_code(course.solution_nb))})
        run = course.autograde()
        if ungraded(assignment, course.root):
            raise GradingStopped(f"nbgrader could not grade the solution: {nbgrader_cause(run.stdout, CANARY)}")
        lost = {grade: cell for grade, cell in course.scores().get(CANARY, {}).items()
                if cell.auto and cell.score is not None and cell.score < cell.max_score}
        if not lost:
            return
        graded = read(course.root / "autograde" / "autograded" / CANARY / assignment / f"{assignment}.ipynb")
        events = graded.metadata.get("batchcourse_grading", {}).get("events", [])
        errors = [f"{grade_id(c)}: {o.ename}: {o.evalue}" for c in graded.cells if grade_id(c) in lost
                  for o in c.get("outputs", []) if o.output_type == "error"][:1]
        raise GradingStopped(f"the solution lost points on {', '.join(sorted(lost))}: " + "; ".join(events + errors))


@dataclass(frozen=True)
class CellScore:
    grade_id: str
    score: float | None
    max_score: float
    auto: bool


def scores(assignment: str, db_url: str) -> dict[str, dict[str, CellScore]]:
    """For each student with a submission: grade id -> score of every graded cell."""
    from nbgrader.api import Gradebook

    result = {}
    with Gradebook(db_url) as gradebook:
        for submission in gradebook.assignment_submissions(assignment):
            cells = {}
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    auto = grade.cell.cell_type == "code"
                    cells[grade.name] = CellScore(grade.name, grade.auto_score if auto else grade.manual_score,
                                                  grade.max_score, auto)
            result[submission.student.id] = cells
    return result


def export_grades(root: Path = REPO_ROOT, db_url: str | None = None, path: Path | None = None) -> Path:
    path = path or root / "autograde" / "grades.csv"
    run_nbgrader("export", f"--to={path}", root=root, db_url=db_url, capture=True)
    return path


def waiting_for_hand_grading(assignment: str, db_url: str) -> list[str]:
    """Students whose submission still has an answer to grade by hand."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gradebook:
        return sorted(s.student.id for s in gradebook.assignment_submissions(assignment) if s.needs_manual_grade)


def generate_feedback(assignment: str, root: Path = REPO_ROOT, db_url: str | None = None) -> None:
    run_nbgrader("generate_feedback", assignment, "--force", root=root, db_url=db_url, capture=True)


def zip_collect(assignment: str, root: Path = REPO_ROOT, db_url: str | None = None) -> str:
    """Collect the LMS download of `assignment` into autograde/submitted/; return nbgrader's count of the files."""
    run = run_nbgrader("zip_collect", assignment, "--force", root=root, db_url=db_url, capture=True)
    counts = [line.split("]", 1)[-1].strip() for line in run.stdout.splitlines() if "files collected" in line]
    return counts[-1] if counts else "no files collected"
