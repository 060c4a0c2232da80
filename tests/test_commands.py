"""The README's instructor and learner commands, on a throwaway copy of the course."""

import csv
import subprocess
import sys
import zipfile

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
    grading.nbformat.write(solved, path)
    result = cli("check", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "visible tests give 3 of 3 points; 0 failed" in result.stdout
    assert cli("check", str(tmp_path / "missing.ipynb")).returncode == 2


def test_grade_collects_an_lms_download_and_writes_grades_and_feedback(tmp_path):
    root = grading.scratch_course(ASSIGNMENT, tmp_path)
    grading.release(ASSIGNMENT, root=root)
    student_nb = grading.read(NOTEBOOKS_DIR / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    solution = grading.solution_code(grading.read(SOLUTIONS_DIR / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"))
    archive = root / "autograde" / "downloaded" / ASSIGNMENT / "archive"
    archive.mkdir(parents=True)
    with zipfile.ZipFile(archive / "submissions.zip", "w") as bundle:
        bundle.writestr(f"ada_1234_5678_{ASSIGNMENT}.ipynb", grading.nbformat.writes(grading.make_submission(student_nb, solution)))
        bundle.writestr(f"bob_LATE_1235_5679_{ASSIGNMENT}-1.ipynb", grading.nbformat.writes(student_nb))
        bundle.writestr(f"eve_1236_5680_{ASSIGNMENT}.ipynb", "this is not a notebook")

    result = cli("grade", "--zip", "--course-root", str(root), ASSIGNMENT)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "COULD NOT GRADE eve" in result.stdout and "could not be graded and have no score: 00_orientation/eve" in result.stdout
    with (root / "autograde" / "grades.csv").open() as handle:
        rows = {row["student_id"]: float(row["score"]) for row in csv.DictReader(handle)}
    assert rows["ada"] > 0 and rows["bob"] == 0
    assert (root / "autograde" / "feedback" / "ada" / ASSIGNMENT / f"{ASSIGNMENT}.html").is_file()
