"""Throwaway courses for one assignment: what the test suite and the benchmark grade in."""

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ..paths import REPO_ROOT
from .cells import read
from .driver import CellScore, release, run_nbgrader, scores, sqlite_url


def place_submission(notebook, root: Path, student: str, assignment: str) -> Path:
    folder = root / "autograde" / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{assignment}.ipynb"
    nbformat.write(notebook, path)
    return path


def scratch_course(assignment: str, parent: Path, source_root: Path = REPO_ROOT) -> Path:
    """A throwaway course holding only `assignment`'s source, for grading without the real gradebook."""
    root = parent / "course"
    shutil.copytree(source_root / "solutions" / assignment, root / "solutions" / assignment)
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
    def create(cls, assignment: str, parent: Path, source_root: Path = REPO_ROOT) -> "ScratchCourse":
        root = scratch_course(assignment, parent, source_root)
        db_url = sqlite_url(root)
        release(assignment, root=root, db_url=db_url)
        return cls(assignment, root, db_url, read(root / "notebooks" / assignment / f"{assignment}.ipynb"),
                   read(root / "solutions" / assignment / f"{assignment}.ipynb"))

    def submit(self, submissions: dict) -> None:
        for student, notebook in submissions.items():
            place_submission(notebook, self.root, student, self.assignment)

    def autograde(self, *extra: str) -> subprocess.CompletedProcess:
        return run_nbgrader("autograde", self.assignment, "--force", *extra, root=self.root, db_url=self.db_url,
                            capture=True, check=False)

    def scores(self) -> dict[str, dict[str, CellScore]]:
        return scores(self.assignment, self.db_url)
