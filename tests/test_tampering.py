"""Grading that a class cannot game: tampering submissions must not gain points.

For every assignment, a batch holds an honest solution, a blank notebook and tampering
submissions (tests/attacks.py, plus each assignment's own ATTACKS in tests/cases/<id>.py); it is graded in one
nbgrader run with the gate's cases (conftest.graded_batch), which come after the attacks and must still score
as the gate says.
Each tampering submission carries a wrong answer for the function it attacks; grading must give
that function's tests no more points than the wrong answer earns alone (a test cell per skill gives
partial credit), grade the honest submission fully, finish, leave no process behind, and (for the
first assignment) give the same scores when the batch is graded again.
The attacks on the machine itself are the same for every assignment, so they run once.
"""

import contextlib
import fnmatch
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import attacks
from batchcourse import grading
from batchcourse.grading.sandbox import KERNEL_USER_BASE, METADATA_KEY, ROOT, USER_NAMESPACE
from batchcourse.paths import AUTOGRADE_DIR
from batchcourse.grading.tamper import tamper_report
from test_notebooks import (ASSIGNMENTS, batch_env, check_graded, grade_ids_of_tests, graded_the_batch,
                            graded_functions, load_cases, without_demos)

pytestmark = pytest.mark.notebooks
FIRST = ASSIGNMENTS[0]
# Graded again, a glob per nbgrader run (nbgrader's --student takes a glob): the right answers (the gate's
# "solution"), blank, attack01, 05 and 09.
REGRADED = ("[sb][ol]*", "attack0[159]")
RIGHT = "right answers"  # what the batch says of its honest submissions


GRADING_USER = "bcgrader"
# Without root, the timers and the kernel's death are handled as with root: those attacks run once, as root.
ROOTLESS_SKIPPED = ("loops forever", "loops forever and ignores interrupts", "kills its kernel")
ROOTLESS_KERNEL_ATTACKS = ("replaces comparison functions", "returns objects that claim equality")


def sandbox_records(course: grading.ScratchCourse) -> list[dict]:
    """What each graded notebook of the batch records about its sandbox (kernel uid, mode)."""
    graded = (course.root / "autograde" / "autograded").glob(f"*/{course.assignment}/{course.assignment}.ipynb")
    return [grading.read(path).metadata.get(METADATA_KEY, {}) for path in graded]


def kernel_uids(course: grading.ScratchCourse) -> set[int]:
    """The users the batch's sandboxed kernels ran as (recorded in each graded notebook)."""
    return {record.get("kernel_uid") for record in sandbox_records(course)} - {None}


def leftover_ipc_objects() -> list[str]:
    """The colluding submissions' System V IPC objects still on the machine."""
    keys = {attacks.SHM_KEY, attacks.MSG_KEY, attacks.SEM_KEY}
    found = []
    for kind in ("shm", "msg", "sem"):
        lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]
        found += [f"{kind} {line.split()[0]}" for line in lines if int(line.split()[0]) in keys]
    return found


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


@contextlib.contextmanager
def loopback_listener():
    """A TCP server on the grader's loopback (its port): a sandboxed kernel must not reach it."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


@pytest.fixture
def outside_listener():
    with loopback_listener() as port:
        yield port


def tampering_batch(assignment, student_nb, solution_nb, port, rootless=False, honest="honest"):
    """student -> (notebook, the function it attacks or None, the attack or None); `honest` names the submission of
    the solution (conftest.graded_batch's is the gate's "solution", the same notebook, graded once)."""
    cases = load_cases(assignment)
    answers = grading.solution_code(solution_nb)
    target = graded_functions(solution_nb)[0]
    wrong = cases.WRONG[target][0][1]
    context = {"assignment": assignment, "port": port, "grader_pid": os.getpid()}
    first = assignment == FIRST
    if rootless:
        chosen = {n: attacks.KERNEL_ATTACKS[n] for n in ROOTLESS_KERNEL_ATTACKS}
        chosen.update({n: build for n, build in attacks.SANDBOX_ATTACKS.items() if n not in ROOTLESS_SKIPPED})
    elif first:
        chosen = {**attacks.KERNEL_ATTACKS, **attacks.SANDBOX_ATTACKS}
    else:
        chosen = {n: attacks.KERNEL_ATTACKS[n] for n in attacks.QUICK_KERNEL_ATTACKS}
    batch = {honest: (grading.make_submission(student_nb, answers), None, RIGHT), "blank": (student_nb, None, None)}
    writers_nb, student_nb = student_nb, without_demos(student_nb)  # the attacks need no demo
    batch["wrong"] = (grading.make_submission(student_nb, {**answers, target: wrong}), None, None)
    if first:
        # Graded before the attacks ("a-" sorts first): colluders with the right answer, entitled to their points.
        for number, (name, build) in enumerate(attacks.SANDBOX_WRITERS.items(), 1):
            batch[f"a-writer{number:02d}"] = (build(writers_nb, answers, target, wrong, context), None, name)
    for number, (name, build) in enumerate(chosen.items(), 1):
        batch[f"attack{number:02d}"] = (build(student_nb, answers, target, wrong, context), target, name)
    for number, (name, (function, code)) in enumerate(getattr(cases, "ATTACKS", {}).items() if not rootless else (), 1):
        batch[f"own{number:02d}"] = (grading.make_submission(student_nb, {**answers, function: code}), function, name)
    return batch


def points(cells, grade_ids) -> float:
    return sum(cells[g].score or 0 for g in grade_ids if g in cells)


def why_lost(course, student: str) -> str:
    """The sandbox events and the first error of a graded submission."""
    graded = grading.read(course.root / "autograde" / "autograded" / student / course.assignment / f"{course.assignment}.ipynb")
    errors = [f"{o.ename}: {o.evalue}"[:300] for c in graded.cells for o in c.get("outputs", []) if o.output_type == "error"]
    return "; ".join(graded.metadata.get(METADATA_KEY, {}).get("events", []) + errors[:1])


def batch_problems(course, batch, scores, leftovers) -> list[str]:
    """Every way grading of the tampering batch went wrong."""
    solution_nb = course.solution_nb
    all_tests = [grading.grade_id(c) for c in solution_nb.cells if grading.is_test_cell(c)]
    problems = []
    for student in [s for s, (_, function, attack) in batch.items() if function is None and attack]:
        if points(scores[student], all_tests) < sum(scores[student][g].max_score for g in all_tests):
            problems.append(f"{student}, with the right answers, lost points in the same batch: {why_lost(course, student)}")
    for student, (_, function, attack) in batch.items():
        if function is None:
            continue
        attacked = grade_ids_of_tests(solution_nb, function)
        # The generic attacks carry the target's wrong answer, which may earn partial credit on its own.
        baseline = "blank" if student.startswith("own") else "wrong"
        gained = points(scores[student], attacked) - points(scores[baseline], attacked)
        if gained > 0:
            problems.append(f"{student} ({attack}) gained {gained:g} points on {function}")
    if leftovers:
        problems.append(f"processes left behind by sandboxed kernels: {leftovers}")
    if ipc := leftover_ipc_objects():
        problems.append(f"System V IPC objects outlived grading: {ipc}")
    return problems


def test_tampering_gains_no_points(graded_batch, monkeypatch, with_grading_servers):
    """The attacks are graded with the gate's submissions (conftest.graded_batch, one per assignment), which come
    after them."""
    course, batch, scores = graded_batch.course, graded_batch.attacks, graded_batch.scores
    assignment = course.assignment
    for key, value in batch_env(assignment).items():
        monkeypatch.setenv(key, value)
    check_graded(course, graded_batch.run)
    uids = kernel_uids(course)
    assert all(uid >= KERNEL_USER_BASE for uid in uids) and uids, "the batch did not run in the sandbox"
    assert len(uids) == len(set(batch) | set(graded_batch.cases)), "two submissions shared a kernel uid"
    assert {r.get("sandbox") for r in sandbox_records(course)} == {ROOT}
    problems = batch_problems(course, batch, scores, sandbox_processes(uids))
    assert not problems, "\n".join(problems)

    report = tamper_report(course.root, assignment)
    flagged = {student for student, (_, _, attack) in batch.items()
               if attack in ("replaces the checks helpers through vars()", "skips test cells in run_cell", "loops forever")}
    assert flagged <= set(report), f"the tamper report misses {sorted(flagged - set(report))}"

    if assignment == FIRST:
        regraded = [s for s in batch if any(fnmatch.fnmatchcase(s, pattern) for pattern in REGRADED)]
        assert len(regraded) == 5, f"the regrade globs pick {regraded}"
        first = {s: {g: c.score for g, c in scores[s].items()} for s in regraded}
        for pattern in REGRADED:
            graded_the_batch(course, f"--student={pattern}")
        again = course.scores()
        assert {s: {g: c.score for g, c in again[s].items()} for s in regraded} == first, "grading twice gave different scores"


@pytest.fixture
def grading_user():
    """An unprivileged user of this machine (created when missing) that grades with user namespaces."""
    if os.geteuid() != 0:
        pytest.skip("creating the unprivileged grading user needs root")
    try:
        pwd.getpwnam(GRADING_USER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", GRADING_USER], check=True)
    user = pwd.getpwnam(GRADING_USER)
    home = Path(tempfile.mkdtemp(prefix="batchcourse-grader-"))
    os.chown(home, user.pw_uid, user.pw_gid)
    yield user, home
    shutil.rmtree(home, ignore_errors=True)


def grade_as(user, home: Path, course: grading.ScratchCourse) -> subprocess.CompletedProcess:
    """`nbgrader autograde` on the course, run by `user` (no root anywhere in the grading process)."""
    env = dict(os.environ, HOME=str(home), JUPYTER_CONFIG_PATH=str(AUTOGRADE_DIR), JUPYTER_PLATFORM_DIRS="1",
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    command = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", "--inh-caps=-all",
               sys.executable, "-m", "nbgrader", "autograde", course.assignment, "--force",
               f"--CourseDirectory.root={course.root}", f"--CourseDirectory.db_url={course.db_url}"]
    return subprocess.run(command, cwd=home, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_tampering_gains_no_points_without_root(grading_user, monkeypatch, outside_listener):
    """The first assignment's sandbox attacks and a few kernel attacks, graded by a normal user."""
    user, home = grading_user
    monkeypatch.setenv("BATCHCOURSE_CELL_SECONDS", "20")
    monkeypatch.setenv("BATCHCOURSE_WALL_SECONDS", "120")
    course = grading.ScratchCourse.create(FIRST, home)
    batch = tampering_batch(FIRST, course.student_nb, course.solution_nb, outside_listener,
                            rootless=True)
    course.submit({student: notebook for student, (notebook, _, _) in batch.items()})
    subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(home)], check=True)
    run = grade_as(user, home, course)
    assert run.returncode == 0 and not grading.ungraded(FIRST, course.root), f"nbgrader could not grade:\n{run.stdout[-4000:]}"
    uids = kernel_uids(course)
    assert {r.get("sandbox") for r in sandbox_records(course)} == {USER_NAMESPACE}
    assert all(uid >= KERNEL_USER_BASE for uid in uids) and len(uids) == len(batch), "not one sandbox uid per submission"
    problems = batch_problems(course, batch, course.scores(), sandbox_processes({user.pw_uid}))
    assert not problems, "\n".join(problems)
