"""Nothing outlives a grading run.

Each process a run starts dies with the process that started it: every link of the chain (grading
command, nbgrader process, sandbox, kernel, test processes) gets a parent-death signal from the Linux
kernel (prctl PR_SET_PDEATHSIG, through `setpriv --pdeathsig` for a command, or set in a forked child),
and a sandboxed kernel is the first process of its own PID namespace, so whatever it started ends with it.
So even SIGKILL of the grading command ends the whole run, link by link.

Every process of a run also carries the run's mark in its environment, BATCHCOURSE_GRADING_RUN=<id>.
When the grading command is stopped by a signal it can catch (SIGINT, SIGTERM, SIGHUP), it kills every
process with its mark at once, then ends. A process that starts grading processes some other way (a
kernel forked from a preloaded one, say) keeps the chain: it sets the parent-death signal in each child
(`die_with_parent`) and passes the mark on.

Only the standard library is imported here, so the test processes can use it (tasks.py, which runs before the
course environment exists, sets its own parent-death signal the same way).
"""

import contextlib
import ctypes
import os
import shutil
import signal
import sys
import time
import uuid
from pathlib import Path

RUN_VARIABLE = "BATCHCOURSE_GRADING_RUN"
# What a grading run's kernels and test processes see of the grader's environment: nbgrader's mode, the locale,
# the search paths, the thread counts, the run's mark.
KEPT_VARIABLES = ("NBGRADER_", "LANG", "LC_", "PATH", "PYTHON", "OMP_", "MKL_", RUN_VARIABLE)
PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# A grading command that was told to stop ends within this time, whatever it was doing.
STOP_SECONDS = 3


def kept_environment(environ=None) -> dict[str, str]:
    return {k: v for k, v in (os.environ if environ is None else environ).items() if k.startswith(KEPT_VARIABLES)}


class GradingStoppedBySignal(BaseException):
    """The grading command was told to stop (SIGINT, SIGTERM, SIGHUP); every process of its run was killed."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def run_id() -> str:
    return os.environ.get(RUN_VARIABLE, "")


def start_run() -> str:
    """Mark this process and everything it starts as one grading run (keeps a mark it was given)."""
    if not run_id():
        os.environ[RUN_VARIABLE] = uuid.uuid4().hex[:12]
    return run_id()


def dies_with_parent(argv: list[str]) -> list[str]:
    """`argv` as a command that gets SIGKILL when the thread that started it ends."""
    if sys.platform != "linux" or not shutil.which("setpriv"):
        return list(argv)
    return ["setpriv", "--pdeathsig=KILL", *argv]


def die_with_parent(parent_pid: int, signum: int = signal.SIGKILL) -> None:
    """In a child just forked or started by `parent_pid`: get `signum` when that parent ends (exit at once
    if it already has)."""
    if sys.platform != "linux":
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def _marked(pid: str, mark: bytes) -> bool:
    try:
        if Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] == b"Z":
            return False  # a zombie: dead, waiting for its parent to collect it
        return mark in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False


def processes_of_run(run: str) -> list[int]:
    """The live processes that carry the mark of `run` (those this user may see)."""
    mark = f"{RUN_VARIABLE}={run}".encode()
    return sorted(int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _marked(p.name, mark))


def ancestors() -> set[int]:
    """This process and those above it: never killed as part of the run."""
    found, pid = set(), os.getpid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return found


def run_alive(run: str) -> bool:
    """Whether a process of `run` other than this one and its ancestors is alive."""
    return bool(set(processes_of_run(run)) - ancestors())


def kill_run(run: str, rounds: int = 10) -> None:
    """SIGKILL every process of `run` but this one and its ancestors; again while new ones appear."""
    spared = ancestors()
    for _ in range(rounds):
        left = [pid for pid in processes_of_run(run) if pid not in spared]
        if not left:
            return
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def end_now(code: int) -> None:
    """End this process at once, with its run: Python's own clean-up at exit can take seconds of CPU (torch's
    objects) on a busy machine, and a stopped grading command must be gone within seconds."""
    kill_run(run_id())
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


stopping = False


@contextlib.contextmanager
def grading_run():
    """The block is one grading run (see the module docstring): yields its id. On SIGINT, SIGTERM or SIGHUP
    every process of the run is killed and GradingStoppedBySignal raised; when the block ends, whatever of
    the run is still alive is killed."""
    global stopping
    run = start_run()
    if sys.platform != "linux":
        yield run
        return

    def stop(signum, frame):
        global stopping
        if stopping:
            return  # a second signal (Ctrl-C reaches this process both directly and through tasks.py)
        stopping = True
        signal.alarm(STOP_SECONDS)  # the default action of SIGALRM ends the process, if unwinding hangs
        kill_run(run)
        raise GradingStoppedBySignal(signum)

    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        yield run
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        kill_run(run)
        stopping = False
