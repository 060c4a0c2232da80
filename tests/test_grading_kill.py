"""A grading run stopped from outside leaves no process behind, and a gradebook the next run picks up.

A class of 00_orientation (four submissions) is graded with two workers and stopped once both workers'
sandboxed kernels run: by SIGKILL, SIGTERM, SIGINT or SIGHUP of the grading command, as root, and by
SIGKILL as a normal user. Every process of a run carries the run's mark (lifetime.RUN_VARIABLE) in its
environment: none may be alive 5 s after the signal. (A killed worker: test_grading_day.py's crash test.)
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from batchcourse import grading
from batchcourse.grading import sandbox
from batchcourse.grading.lifetime import RUN_VARIABLE, processes_of_run
from batchcourse.paths import REPO_ROOT
from test_grading_day import A, HALF_WRONG, cli_run, notebooks, released_course
from test_tampering import grading_user  # noqa: F401 - a fixture

pytestmark = pytest.mark.notebooks
TOTALS = {"ada": 9, "ben": 4, "bob": 0, "carl": 9}
GONE_SECONDS = 5
STOPPED: list[float] = []  # the runs stopped so far in this module


def make_class(parent: Path) -> Path:
    root = released_course(parent)
    student, solution = notebooks(root)
    half = grading.make_submission(student, {"stack_images": solution["stack_images"], "split_batch": HALF_WRONG})
    for name, notebook in {"ada": grading.make_submission(student, solution), "ben": half, "bob": student,
                           "carl": grading.make_submission(student, solution)}.items():
        grading.place_submission(notebook, root, name, A)
    return root


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    return make_class(tmp_path_factory.mktemp("killed"))


def start_grading(root: Path, run: str, user=None) -> subprocess.Popen:
    """`grade --workers 2` on the course, marked as `run`; as `user` (a pwd entry) when given."""
    env = {k: v for k, v in os.environ.items() if k not in ("NBGRADER_DB_URL", "BATCHCOURSE_UNSAFE_NO_SANDBOX")}
    env[RUN_VARIABLE] = run
    command = [sys.executable, "-m", "batchcourse.cli", "grade", "--workers", "2", "--course-root", str(root), A]
    if user is not None:
        env["HOME"] = str(root.parent)
        command = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", "--inh-caps=-all",
                   *command]
    log = open(root.parent / f"grade-{run}.log", "w")
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def command_lines(pids) -> dict[int, str]:
    found = {}
    for pid in pids:
        try:
            found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
        except OSError:
            pass
    return found


def wait_for_kernels(run: str, top: subprocess.Popen, workers: bool) -> None:
    """Until both workers' sandboxed kernels run, or (not `workers`) the kernel of the check of the solution,
    which comes first (its nbgrader process is started by the grading command's main thread)."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and top.poll() is None:
        lines = command_lines(processes_of_run(run)).values()
        kernels = sum("ipykernel_launcher" in line for line in lines)
        if kernels >= 2 and any("--student=" in line for line in lines) or kernels and not workers:
            return
        time.sleep(0.1)
    pytest.fail(f"the run did not reach its kernels (exit code {top.poll()})")


def seconds_until_gone(run: str, limit: float = GONE_SECONDS) -> tuple[float, dict[int, str]]:
    start = time.monotonic()
    while (left := processes_of_run(run)) and time.monotonic() - start < limit:
        time.sleep(0.05)
    return time.monotonic() - start, command_lines(left)


def auto_totals(root: Path) -> dict[str, float]:
    return {student: sum(c.score or 0 for c in cells.values() if c.auto)
            for student, cells in grading.scores(A, grading.sqlite_url(root)).items()}


def check_consistent(root: Path) -> None:
    """Each student is either not graded (grading.ungraded) or graded with the right score."""
    totals, ungraded = auto_totals(root), grading.ungraded(A, root)
    for student in set(TOTALS) - set(ungraded):
        grading.read(root / "autograde" / "autograded" / student / A / f"{A}.ipynb")
        assert totals.get(student) == TOTALS[student], f"{student} has {totals.get(student)} points"


def remove_sandbox_folders(run: str) -> None:
    """What the sandboxes of a run killed outright leave (the next run of their user removes it otherwise)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{sandbox.FOLDER_PREFIX}{run}-*"):
        subprocess.run(["umount", "--lazy", str(folder)], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
        sandbox.remove_control_groups(folder.name)


def kill_mid_run(root: Path, signum: int, user=None, workers: bool = True) -> float:
    run = f"test{uuid.uuid4().hex[:8]}"
    top = start_grading(root, run, user)
    try:
        wait_for_kernels(run, top, workers)
        top.send_signal(signum)
        seconds, left = seconds_until_gone(run)
    finally:
        top.kill()
        top.wait()
    print(f"{signal.Signals(signum).name}{' (as a normal user)' if user else ''}: no process of the run left "
          f"after {seconds:.2f} s")
    assert not left, f"alive {GONE_SECONDS} s after {signal.Signals(signum).name}: {left}"
    remove_sandbox_folders(run)
    if signum != signal.SIGKILL:
        assert top.returncode == 128 + signum
        assert "GRADING STOPPED" in (root.parent / f"grade-{run}.log").read_text()
    check_consistent(root)
    STOPPED.append(seconds)
    return seconds


# SIGINT and SIGHUP are caught as SIGTERM is: they stop the run earlier, while the solution is checked.
@pytest.mark.parametrize("signum, workers", [(signal.SIGKILL, True), (signal.SIGTERM, True), (signal.SIGINT, False),
                                             (signal.SIGHUP, False)], ids=["SIGKILL", "SIGTERM", "SIGINT", "SIGHUP"])
def test_a_stopped_run_leaves_no_process(course, signum, workers):
    kill_mid_run(course, signum, workers=workers)


def test_a_killed_run_of_a_normal_user_leaves_no_process(grading_user):  # noqa: F811 - the fixture
    user, home = grading_user
    root = make_class(home)
    subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(home)], check=True)
    kill_mid_run(root, signal.SIGKILL, user)


def test_the_next_run_grades_everything(course):
    if not STOPPED:
        kill_mid_run(course, signal.SIGKILL)
    result = cli_run("grade", "--workers", "2", "--course-root", str(course), A)
    assert result.returncode == 0, result.stdout + result.stderr
    assert auto_totals(course) == TOTALS
    assert not grading.ungraded(A, course)
