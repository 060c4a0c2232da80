"""The course on a shared server, as the README's "On JupyterHub" section tells it, without the hub itself.

Two student accounts are made with useradd; the instructor is root. The instructor releases and publishes
00_orientation into an exchange outside the course folder; both students fetch with nbgrader and the hub's global
configuration only (autograde/jupyterhub/nbgrader_config.py), one answers and submits; the instructor collects,
grades and returns the feedback, which the student fetches. Then the other student tries to read what they must
not (solutions/, the gradebook, the collected submission, the submission and feedback in the exchange) and to
submit in the first student's name.
"""

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from batchcourse import grading
from batchcourse.grading import hub
from batchcourse.grading.sandbox import sandbox_available
from batchcourse.paths import AUTOGRADE_DIR, REPO_ROOT

A = "00_orientation"


def why_not_here() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root, to make the student accounts (useradd) and act as them (setpriv); run the suite as root"
    missing = [tool for tool in ("useradd", "userdel", "setpriv") if not shutil.which(tool)]
    if missing:
        return f"needs {', '.join(missing)} (Debian's passwd and util-linux packages)"
    if not all(os.stat(folder).st_mode & 0o001 for folder in Path(sys.executable).parents):
        return f"another account cannot reach this Python ({sys.executable}), which the students run nbgrader with"
    return sandbox_available()


pytestmark = [pytest.mark.notebooks, pytest.mark.skipif(bool(why_not_here()), reason=why_not_here() or "")]


@dataclass
class Server:
    """A scratch course at `course`, its exchange, two students and the output of each instructor command."""

    course: Path
    exchange: Path
    students: list[str]
    runs: dict[str, subprocess.CompletedProcess]

    def as_student(self, student: str, *command: str) -> subprocess.CompletedProcess:
        return as_user(student, self.etc_jupyter, self.exchange, *command)

    @property
    def etc_jupyter(self) -> Path:
        return self.course.parent / "etc-jupyter"

    def inbound(self) -> Path:
        return self.exchange / hub.course_id() / "inbound"


def as_user(user: str, etc_jupyter: Path, exchange: Path, *command: str) -> subprocess.CompletedProcess:
    """`command` run by `user` in their home, with only the environment a hub would give them."""
    home = Path("/home") / user
    env = {"HOME": str(home), "USER": user, "LOGNAME": user, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
           "JUPYTER_CONFIG_PATH": str(etc_jupyter), "JUPYTER_PLATFORM_DIRS": "1", "NBGRADER_EXCHANGE": str(exchange)}
    return subprocess.run(["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", *command],
                          cwd=home, env=env, capture_output=True, text=True, timeout=300)


def nbgrader(*args: str) -> list[str]:
    """A student's nbgrader command, run where the course package cannot be imported: they need only nbgrader."""
    run = ("import runpy, sys; sys.modules['batchcourse'] = None; sys.argv[0] = 'nbgrader'; "
           "runpy.run_module('nbgrader', run_name='__main__')")
    return [sys.executable, "-c", run, *args]


def instructor(command: str, course: Path, exchange: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("NBGRADER_DB_URL", "BATCHCOURSE_UNSAFE_NO_SANDBOX")}
    env.update(NBGRADER_EXCHANGE=str(exchange), JUPYTER_CONFIG_PATH=str(AUTOGRADE_DIR), JUPYTER_PLATFORM_DIRS="1")
    return subprocess.run([sys.executable, "-m", "batchcourse.cli", command, *extra, "--course-root", str(course), A],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)


def answer(server: Server, student: str) -> None:
    """The student fills in every solution cell of the fetched notebook with a correct answer."""
    path = Path("/home") / student / A / f"{A}.ipynb"
    solution = grading.solution_code(grading.read(server.course / "solutions" / A / f"{A}.ipynb"))
    uid, gid = path.stat().st_uid, path.stat().st_gid
    nbformat.write(grading.make_submission(grading.read(path), solution), path)
    os.chown(path, uid, gid)


@pytest.fixture(scope="module")
def server():
    scratch = Path(tempfile.mkdtemp(prefix="batchcourse-hub-"))
    scratch.chmod(0o755)  # the server's file system: every account can walk to the exchange
    course = grading.scratch_course(A, scratch)
    course.chmod(0o755)  # as a clone with the usual umask: open to everyone until publish closes it
    exchange = scratch / "srv" / "exchange"
    exchange.parent.mkdir(mode=0o755)
    (scratch / "etc-jupyter").mkdir(mode=0o755)  # the administrator's install step: the hub's global configuration
    shutil.copy(AUTOGRADE_DIR / "jupyterhub" / "nbgrader_config.py", scratch / "etc-jupyter" / "nbgrader_config.py")
    suffix = uuid.uuid4().hex[:6]
    students = [f"bcstu{suffix}a", f"bcstu{suffix}b"]
    made = []
    try:
        for student in students:
            subprocess.run(["useradd", "--create-home", "--shell", "/usr/sbin/nologin", student], check=True)
            made.append(student)
        server = Server(course, exchange, students, {})
        grading.release(A, root=course, db_url=grading.sqlite_url(course))  # `tasks.py release`
        for student in students:  # the roster `tasks.py collect` checks, where no hub names the students
            grading.run_nbgrader("db", "student", "add", student, root=course, db_url=grading.sqlite_url(course),
                                 capture=True)
        server.runs["publish"] = instructor("publish", course, exchange)
        for student in students:
            server.runs[f"fetch {student}"] = server.as_student(student, *nbgrader("fetch_assignment", A))
        answer(server, students[0])  # one submission to grade keeps the test short; the other student only looks
        server.runs["submit"] = server.as_student(students[0], *nbgrader("submit", A))
        server.runs["collect"] = instructor("collect", course, exchange)
        server.runs["grade"] = instructor("grade", course, exchange)
        server.runs["feedback"] = instructor("feedback", course, exchange)
        server.runs["publish feedback"] = instructor("publish", course, exchange, "--feedback")
        server.runs["fetch feedback"] = server.as_student(students[0], *nbgrader("fetch_feedback", A))
        yield server
    finally:
        for student in made:
            subprocess.run(["userdel", "--remove", student], capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)


def test_round_trip_through_the_exchange(server):
    for name, run in server.runs.items():
        assert run.returncode == 0, f"{name} failed:\n{run.stdout}\n{run.stderr}"
    assert "1 submission(s)" in server.runs["collect"].stdout
    scores = grading.scores(A, grading.sqlite_url(server.course))
    assert set(scores) == {server.students[0]}
    auto = [cell for cell in scores[server.students[0]].values() if cell.auto]
    assert auto and all(cell.score == cell.max_score for cell in auto), scores


def test_the_student_fetches_their_feedback(server):
    (page,) = (Path("/home") / server.students[0] / A / "feedback").glob(f"*/{A}.html")
    assert page.stat().st_uid == pwd.getpwnam(server.students[0]).pw_uid
    others = server.as_student(server.students[1], "ls", str(server.exchange / hub.course_id() / "feedback"))
    assert others.returncode != 0 and "Permission denied" in others.stderr


def test_publish_closes_the_course_and_opens_the_exchange(server):
    assert server.course.stat().st_mode & 0o077 == 0
    assert server.exchange.stat().st_mode & 0o7777 == hub.SHARED_EXCHANGE_MODE


@pytest.mark.parametrize("relative", [f"solutions/{A}/{A}.ipynb", "autograde/gradebook.db", "autograde/submitted",
                                      "autograde/submitted/{other}/" + f"{A}/{A}.ipynb"])
def test_a_student_cannot_read_the_course(server, relative):
    reader, other = server.students[1], server.students[0]
    path = server.course / relative.format(other=other)
    assert path.exists()
    run = server.as_student(reader, "cat" if path.is_file() else "ls", str(path))
    assert run.returncode != 0 and "Permission denied" in run.stderr, run.stdout[:200]


def test_a_student_cannot_find_another_submission_in_the_exchange(server):
    reader, other = server.students[1], server.students[0]
    listing = server.as_student(reader, "ls", str(server.inbound()))
    assert listing.returncode != 0 and "Permission denied" in listing.stderr
    (theirs,) = [path for path, (student, _) in hub.submissions_in_exchange(A, server.exchange).items()
                 if student == other]
    guessed = theirs.with_name(theirs.name.rsplit("+", 1)[0])  # the name without nbgrader's random part
    assert server.as_student(reader, "cat", str(guessed / f"{A}.ipynb")).returncode != 0


def test_a_submission_in_another_students_name_is_not_collected(server):
    forger, victim = server.students[1], server.students[0]
    collected = server.course / "autograde" / "submitted" / victim / A / f"{A}.ipynb"
    before = collected.read_bytes()
    for student in (None, victim):  # the forger's own submission, then one in the victim's name
        run = server.as_student(forger, *nbgrader("submit", A, *([f"--student={student}"] if student else [])))
        assert run.returncode == 0, run.stderr
    again = instructor("collect", server.course, server.exchange)
    assert again.returncode == 1, again.stdout
    assert f"NOT COLLECTED  {victim}" in again.stdout and forger in again.stdout
    assert collected.read_bytes() == before
    assert (server.course / "autograde" / "submitted" / forger / A / f"{A}.ipynb").is_file()


def test_formgraders_collect_keeps_the_same_rules(server, monkeypatch):
    """The Collect button runs `nbgrader collect` itself: the course's exchange class refuses the same submissions."""
    forger, victim = server.students[1], server.students[0]
    collected = server.course / "autograde" / "submitted" / victim / A / f"{A}.ipynb"
    before = collected.read_bytes()
    run = server.as_student(forger, *nbgrader("submit", A, f"--student={victim}"))
    assert run.returncode == 0, run.stderr
    monkeypatch.setenv("NBGRADER_EXCHANGE", str(server.exchange))
    collect = grading.run_nbgrader("collect", A, "--update", root=server.course,
                                   db_url=grading.sqlite_url(server.course), capture=True, check=False)
    assert f"NOT COLLECTED {victim}" in collect.stdout and forger in collect.stdout, collect.stdout
    assert collected.read_bytes() == before
