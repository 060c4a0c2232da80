"""Grade a class side by side: one nbgrader process per submission, several at once, into one gradebook.

Each submission is graded by its own `nbgrader autograde ID --student=STUDENT`, so it runs in its own sandbox
(SandboxedExecute) and a grader process that crashes or is killed takes only its own student's grade with it:
that student is then listed as not graded, and nothing it half-wrote stays in autograded/.

All processes write the one gradebook. PostgreSQL takes concurrent writers as it is; SQLite lets one writer
at a time and makes the others wait up to its busy timeout, which Python sets to 5 s: the workers get a
generous one instead, so that they wait their turn rather than fail with "database is locked"
(nbgrader's writes are short: a few milliseconds per submission).
"""

import contextlib
import glob
import os
import shutil
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .. import grading
from . import grader_source, lifetime
from .grader_source import shared_grader_source
from .sandbox import settle, shared_kernel_source
from .trusted_execute import shared_test_processes

SQLITE_BUSY_SECONDS = 120


def worker_db_url(db_url: str) -> str:
    """The gradebook URL a worker uses: for SQLite, with a busy timeout long enough to wait for the others."""
    if not db_url.startswith("sqlite") or "timeout=" in db_url:
        return db_url
    return f"{db_url}{'&' if '?' in db_url else '?'}timeout={SQLITE_BUSY_SECONDS}"


def parse_slice(text: str) -> tuple[int, int]:
    """'2/3' -> (2, 3): this grader's slice number and the number of slices."""
    number, _, count = text.partition("/")
    if not (number.isdigit() and count.isdigit() and 1 <= int(number) <= int(count)):
        raise ValueError(f"--slice takes K/N with 1 <= K <= N (e.g. 2/3), not {text!r}")
    return int(number), int(count)


def in_slice(student: str, part: tuple[int, int] | None) -> bool:
    """Whether `student` belongs to slice K of N: fixed by the student id alone, whoever else submitted."""
    if part is None:
        return True
    number, count = part
    return zlib.crc32(student.encode()) % count == number - 1


def submitted_students(assignment: str, root: Path, part: tuple[int, int] | None = None) -> list[str]:
    folders = (root / "autograde" / "submitted").glob(f"*/{assignment}")
    return sorted(s for s in (p.parent.name for p in folders if p.is_dir()) if in_slice(s, part))


def graded_notebook(assignment: str, root: Path, student: str) -> Path:
    return root / "autograde" / "autograded" / student / assignment / f"{assignment}.ipynb"


def grade_student(assignment: str, root: Path, db_url: str, student: str, graders: str | None = None) -> str | None:
    """Autograde one student's submission in its own nbgrader process (forked by the grader server at socket
    `graders`, grader_source.py, when given); None when graded, else why not.

    While it runs, a mark says so (grading.grading_mark): when the whole run is killed, the next one knows
    that this student's autograded notebook, if any, is not a grade."""
    mark = grading.grading_mark(assignment, root, student)
    mark.parent.mkdir(parents=True, exist_ok=True)
    mark.write_text(lifetime.run_id())
    try:
        return _grade_student(assignment, root, db_url, student, graders)
    finally:
        mark.unlink(missing_ok=True)


def forget_interrupted(assignment: str, root: Path, part: tuple[int, int] | None = None) -> list[str]:
    """Remove what a killed run half-wrote for the students it was grading; returns those students."""
    students = [s for s in grading.interrupted(assignment, root) if in_slice(s, part)]
    for student in students:
        shutil.rmtree(graded_notebook(assignment, root, student).parent, ignore_errors=True)
        grading.grading_mark(assignment, root, student).unlink(missing_ok=True)
    return students


def _grade_student(assignment: str, root: Path, db_url: str, student: str, graders: str | None) -> str | None:
    args = ("autograde", assignment, "--force", f"--student={glob.escape(student)}")
    try:
        if graders:
            run = grader_source.run_forked(graders, *args, root=root, db_url=worker_db_url(db_url))
        else:
            run = grading.run_nbgrader(*args, root=root, db_url=worker_db_url(db_url), capture=True, check=False)
    except Exception as error:  # noqa: BLE001 - a grader that cannot even start must not stop the others
        run, cause = None, f"the grader process failed to run: {type(error).__name__}: {error}"
    if run is not None and run.returncode == 0 and graded_notebook(assignment, root, student).is_file():
        return None
    if run is not None:
        cause = f"nbgrader could not grade it: {grading.nbgrader_cause(run.stdout, student)}"
        if run.returncode < 0:
            cause = f"its grader process was killed (signal {-run.returncode})"
    # A grader killed midway can leave a folder without a notebook: remove it, so nothing looks graded.
    shutil.rmtree(root / "autograde" / "autograded" / student / assignment, ignore_errors=True)
    return cause


def duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """A progress bar naming the students being graded, with an ETA; one line per finished submission
    when the output is not a terminal (a log file, CI)."""

    def __init__(self, assignment: str, total: int, workers: int, stream=None):
        self.assignment, self.total, self.workers = assignment, total, workers
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty()
        self.done, self.running, self.start = 0, [], time.monotonic()
        self.lock = threading.Lock()

    def eta(self) -> str:
        if not self.done:
            return "ETA after the first submission"
        elapsed = time.monotonic() - self.start
        return f"ETA {duration(elapsed / self.done * (self.total - self.done))}"

    def started(self, student: str) -> None:
        with self.lock:
            self.running.append(student)
            self._draw()

    def finished(self, student: str, seconds: float, cause: str | None) -> None:
        with self.lock:
            self.running.remove(student)
            self.done += 1
            if not self.live:
                verdict = "graded" if cause is None else "NOT graded"
                print(f"  [{self.done}/{self.total}] {student} {verdict} in {seconds:.1f} s; {self.eta()}",
                      file=self.stream, flush=True)
            self._draw()

    def _draw(self) -> None:
        if not self.live:
            return
        width = 24
        filled = width * self.done // max(self.total, 1)
        line = (f"{self.assignment} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                f"{self.eta()}  grading: {', '.join(self.running) or '-'}")
        print(f"\r\x1b[K{line[:shutil.get_terminal_size().columns - 1]}", end="", file=self.stream, flush=True)

    def close(self) -> None:
        if self.live:
            print(file=self.stream, flush=True)
        print(f"{self.assignment}: {self.total} submission(s) through {self.workers} worker(s) in "
              f"{duration(time.monotonic() - self.start)}", file=self.stream, flush=True)


def default_workers() -> int:
    return os.cpu_count() or 1


@contextlib.contextmanager
def threads_per_worker(workers: int):
    """Workers side by side share the cores: each kernel and test process started here gets its share of torch's
    threads (unless OMP_NUM_THREADS says otherwise), so that two workers do not run four threads on two cores."""
    if workers < 2 or "OMP_NUM_THREADS" in os.environ:
        yield
        return
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    try:
        yield
    finally:
        os.environ.pop("OMP_NUM_THREADS", None)


@contextlib.contextmanager
def grading_servers(workers: int):
    """The preloaded processes a grading command's nbgrader processes share: forked graders, kernels and test
    processes (grader_source.py, kernel_source.py, trusted_execute.py), started side by side; inside another such
    block, the ones it started. Yields the graders' socket (None: each grader starts as a new process)."""
    # The grader and kernel servers import while the test processes' server starts.
    with threads_per_worker(workers), shared_grader_source() as grader_server, \
            shared_kernel_source(wait=False) as kernel_server, shared_test_processes():
        settle(kernel_server)
        yield grader_source.socket(grader_server)


def grade_all(assignment: str, root: Path, db_url: str, workers: int | None = None,
              part: tuple[int, int] | None = None, stream=None) -> dict[str, str]:
    """Autograde every submission of `assignment` (or those of one slice), `workers` at a time.

    Returns student -> why, for the submissions that could not be graded."""
    lifetime.start_run()
    for student in forget_interrupted(assignment, root, part):
        print(f"  {student}: a grading run that was stopped did not finish this submission; it is graded again",
              file=stream or sys.stdout, flush=True)
    students = submitted_students(assignment, root, part)
    workers = max(1, min(workers or default_workers(), len(students) or 1))
    progress = Progress(assignment, len(students), workers, stream)

    def grade_one(student: str) -> str | None:
        if lifetime.stopping:
            return "grading was stopped before this submission"
        progress.started(student)
        start = time.monotonic()
        cause = grade_student(assignment, root, db_url, student, graders)
        progress.finished(student, time.monotonic() - start, cause)
        return cause

    with grading_servers(workers) as graders, ThreadPoolExecutor(max_workers=workers) as pool:
        causes = dict(zip(students, pool.map(grade_one, students)))
    progress.close()
    return {student: cause for student, cause in causes.items() if cause}
