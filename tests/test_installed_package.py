"""The course package built as a wheel and used where no clone is: one notebook alone in an empty folder.

The wheel is installed (without dependencies: the course environment has them) into a folder of its own,
which comes first on the path; a throwaway non-root user runs a filled-in student notebook and the
self-check from an empty folder outside the repository. The notebook records where batchcourse and the
data came from, so the test proves that nothing was read from the repository.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from batchcourse import grading
from batchcourse.paths import NOTEBOOKS_DIR, REPO_ROOT, SOLUTIONS_DIR

pytestmark = pytest.mark.notebooks

ASSIGNMENT = "00_orientation"
LEARNER_UID = 54321  # no such user: the learner owns only the folders made for it here
PROBE = """import json, batchcourse, batchcourse.paths
json.dump({"package": batchcourse.__file__, "data": str(batchcourse.paths.DATA_DIR)}, open("where.json", "w"))"""
EXECUTE = """import sys, nbclient, nbformat
nb = nbformat.read(sys.argv[1], as_version=4)
nbclient.NotebookClient(nb, timeout=300, resources={"metadata": {"path": "."}}).execute()"""


def as_learner(command: list[str], cwd: Path, home: Path, site: Path) -> subprocess.Popen:
    env = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]), "HOME": str(home),
           "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1", "LANG": "C.UTF-8"}
    return subprocess.Popen(["setpriv", f"--reuid={LEARNER_UID}", f"--regid={LEARNER_UID}", "--clear-groups", "--",
                             *command], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(process: subprocess.Popen) -> subprocess.CompletedProcess:
    try:
        stdout, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def filled_in(assignment: str) -> nbformat.NotebookNode:
    student = grading.read(NOTEBOOKS_DIR / assignment / f"{assignment}.ipynb")
    answers = grading.solution_code(grading.read(SOLUTIONS_DIR / assignment / f"{assignment}.ipynb"))
    notebook = grading.make_submission(student, answers)
    notebook.cells.append(nbformat.v4.new_code_cell(PROBE))
    return notebook


@pytest.fixture
def scratch():
    """World-readable scratch space (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="batchcourse-installed-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_notebook_alone_in_an_empty_folder_runs_with_the_installed_wheel(scratch):
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("running the notebook as a throwaway non-root user needs root and setpriv (util-linux)")
    if finished(as_learner([sys.executable, "-c", "import torch"], Path("/"), Path("/"), Path("/"))).returncode != 0:
        pytest.skip(f"other users cannot run this course's Python ({sys.executable}) here")

    wheels, site, home, work = (scratch / name for name in ("wheels", "site", "home", "work"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(REPO_ROOT)], check=True, capture_output=True)
    (wheel,) = wheels.glob("batchcourse-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    for folder in (home, work):
        folder.mkdir()
        os.chown(folder, LEARNER_UID, LEARNER_UID)
    notebook = work / f"{ASSIGNMENT}.ipynb"
    nbformat.write(filled_in(ASSIGNMENT), notebook)
    os.chown(notebook, LEARNER_UID, LEARNER_UID)

    # Run top to bottom (any error fails) and self-check, side by side: each takes one core.
    execution = as_learner([sys.executable, "-c", EXECUTE, notebook.name], work, home, site)
    self_check = as_learner([sys.executable, "-m", "batchcourse", "check", notebook.name], work, home, site)
    run, check = finished(execution), finished(self_check)
    assert run.returncode == 0, run.stderr[-3000:]
    where = json.loads((work / "where.json").read_text())
    assert Path(where["package"]).is_relative_to(site), f"the notebook imported {where['package']}"
    assert Path(where["data"]).is_relative_to(site), f"the notebook read the data in {where['data']}"

    assert check.returncode == 0, check.stdout + check.stderr
    assert "visible tests give 3 of 3 points; 0 failed" in check.stdout
    assert "WARNING" not in check.stderr, check.stderr
