"""nbgrader, driven for this course: release, autograde, scores, feedback and the self-check.

Every function takes the course root and the gradebook URL, so that the test suite and the
benchmark grade in throwaway copies of the course while instructors grade in the real one.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
from traitlets.config.loader import PyFileConfigLoader

from .paths import AUTOGRADE_DIR, REPO_ROOT

NOTEBOOK_VERSION = 4


def default_db_url(root: Path = REPO_ROOT) -> str:
    if root == REPO_ROOT and os.environ.get("NBGRADER_DB_URL"):
        return os.environ["NBGRADER_DB_URL"]
    return f"sqlite:///{root / 'autograde' / 'gradebook.db'}"


def nbgrader_config(root: Path = REPO_ROOT):
    """The nbgrader configuration of the course at `root`, as nbgrader itself loads it."""
    return PyFileConfigLoader("nbgrader_config.py", path=str(root / "autograde")).load_config()


def ensure_exchange(root: Path = REPO_ROOT) -> None:
    """Create the exchange folder the course's configuration names: Formgrader's Release and Collect and the
    students' Assignment List need it to exist."""
    Path(nbgrader_config(root).Exchange.root).mkdir(exist_ok=True)


def run_nbgrader(*args: str, root: Path = REPO_ROOT, db_url: str | None = None,
                 capture: bool = False, check: bool = True) -> subprocess.CompletedProcess:
    """Run an nbgrader command on the course at `root`; unless `check` is False, raise with its output if it fails."""
    command = [
        sys.executable, "-m", "nbgrader", *args,
        f"--CourseDirectory.root={root}", f"--CourseDirectory.db_url={db_url or default_db_url(root)}",
    ]
    env = dict(os.environ, JUPYTER_CONFIG_PATH=str(AUTOGRADE_DIR), JUPYTER_PLATFORM_DIRS="1",
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    result = subprocess.run(command, cwd=root, env=env, text=True,
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
    """Students with a submission but no autograded notebook."""
    submitted = {p.parts[-2] for p in (root / "autograde" / "submitted").glob(f"*/{assignment}")}
    graded = {p.parts[-2] for p in (root / "autograde" / "autograded").glob(f"*/{assignment}")}
    return sorted(submitted - graded)


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


def generate_feedback(assignment: str, root: Path = REPO_ROOT, db_url: str | None = None) -> None:
    run_nbgrader("generate_feedback", assignment, "--force", root=root, db_url=db_url, capture=True)


def zip_collect(assignment: str, root: Path = REPO_ROOT, db_url: str | None = None) -> None:
    run_nbgrader("zip_collect", assignment, "--force", root=root, db_url=db_url, capture=True)


# ----------------------------------------------------------------------------------------
# Building submissions from the student notebook and chosen code.

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


def place_submission(notebook, root: Path, student: str, assignment: str) -> Path:
    folder = root / "autograde" / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{assignment}.ipynb"
    nbformat.write(notebook, path)
    return path


def scratch_course(assignment: str, parent: Path) -> Path:
    """A throwaway course holding only `assignment`'s source, for grading without the real gradebook."""
    root = parent / "course"
    shutil.copytree(REPO_ROOT / "solutions" / assignment, root / "solutions" / assignment)
    (root / "autograde").mkdir(parents=True)
    return root


@dataclass
class ScratchCourse:
    """A released throwaway course for one assignment: submit notebooks, grade them, read the scores."""

    assignment: str
    root: Path
    db_url: str
    student_nb: nbformat.NotebookNode
    solution_nb: nbformat.NotebookNode

    @classmethod
    def create(cls, assignment: str, parent: Path) -> "ScratchCourse":
        root = scratch_course(assignment, parent)
        db_url = default_db_url(root)
        release(assignment, root=root, db_url=db_url)
        return cls(assignment, root, db_url, read(root / "notebooks" / assignment / f"{assignment}.ipynb"),
                   read(REPO_ROOT / "solutions" / assignment / f"{assignment}.ipynb"))

    def submit(self, submissions: dict) -> None:
        for student, notebook in submissions.items():
            place_submission(notebook, self.root, student, self.assignment)

    def autograde(self, *extra: str) -> subprocess.CompletedProcess:
        return run_nbgrader("autograde", self.assignment, "--force", *extra, root=self.root, db_url=self.db_url,
                            capture=True, check=False)

    def scores(self) -> dict[str, dict[str, CellScore]]:
        return scores(self.assignment, self.db_url)
