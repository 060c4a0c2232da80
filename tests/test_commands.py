"""The README's learner command, on a throwaway copy of the course (the instructor's are in test_grading_day.py)."""

import subprocess
import sys

import nbformat
import pytest

from batchcourse import grading
from batchcourse.paths import NOTEBOOKS_DIR, REPO_ROOT, SOLUTIONS_DIR

ASSIGNMENT = "00_orientation"
pytestmark = pytest.mark.notebooks


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "batchcourse.cli", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=900)


def test_self_check_exit_codes(tmp_path):
    blank = cli("check", str(NOTEBOOKS_DIR / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"))
    assert blank.returncode == 1, blank.stdout + blank.stderr
    assert "FAIL   test_stack_images_visible: not done yet" in blank.stdout

    solved = grading.make_submission(grading.read(NOTEBOOKS_DIR / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"),
                                     grading.solution_code(grading.read(SOLUTIONS_DIR / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")))
    path = tmp_path / f"{ASSIGNMENT}.ipynb"
    nbformat.write(solved, path)
    result = cli("check", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "visible tests give 3 of 3 points; 0 failed" in result.stdout
    assert cli("check", str(tmp_path / "missing.ipynb")).returncode == 2
