"""nbgrader processes forked from a preloaded one: a submission's grader starts without importing anything.

`tasks.py grade` grades each submission in an nbgrader process of its own (parallel.py), so that a crash costs
only that student. A new process imports nbgrader, SQLAlchemy, nbconvert and the course's grading steps again,
seconds of CPU per submission. The grading command starts one fork server with them imported
(forkserver.py); each submission's grader is a child of it that runs `nbgrader autograde ...` in the process it was
forked as, with the command line (shown in ps as well), working folder and environment the separate process had,
and its output in a file. A grader that crashes or is killed is still that child alone: the grading thread that
asked for it gets its exit code as before, and a killed grading command takes the server and its children along.
"""

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import grading
from . import forkserver

SHARED_VARIABLE = "BATCHCOURSE_GRADER_SOURCE"  # the socket of the grading command's grader server
PRELOADED = ["nbgrader.apps.nbgraderapp", "nbgrader.apps.autogradeapp", "nbgrader.converters.autograde",
             "batchcourse.grading.feedback", "batchcourse.grading.output_limit", "batchcourse.grading.repair",
             "batchcourse.grading.sandbox", "batchcourse.grading.tamper"]


def grade_here(data: dict, args: list[str], server: int) -> None:
    """In a child of the server: be the nbgrader process `data` describes (argv, cwd, env, output file)."""
    forkserver.retitle(["nbgrader", *data["argv"]])
    os.chdir(data["cwd"])
    os.environ.clear()
    os.environ.update(data["env"])
    output = os.open(data["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    sys.argv = ["nbgrader", *data["argv"]]
    from nbgrader.apps.nbgraderapp import main

    main()


def run_forked(socket_path: str, *args: str, root: Path, db_url: str) -> subprocess.CompletedProcess:
    """What `grading.run_nbgrader(*args, root=root, db_url=db_url, capture=True, check=False)` returns, from a
    grader forked by the server at `socket_path`."""
    arguments = grading.nbgrader_arguments(args, root, db_url)
    with tempfile.NamedTemporaryFile("w+", prefix="batchcourse-grader-", suffix=".log") as output:
        data = {"argv": arguments, "cwd": str(root), "env": grading.nbgrader_environment(), "output": output.name}
        code = forkserver.ask(socket_path, data)
        output.seek(0)
        return subprocess.CompletedProcess(["nbgrader", *arguments], code, stdout=output.read())


@contextlib.contextmanager
def shared_grader_source():
    """A grader server for the nbgrader processes of the block, started without waiting for it (`socket` waits);
    inside another such block, the one it shares. None where preloading is off: graders then start as new processes."""
    from .sandbox import PRELOADED_VARIABLE

    shared = shared_socket()
    if shared:
        yield forkserver.ForkServer(shared)
        return
    if os.environ.get(PRELOADED_VARIABLE, "1") == "0":
        yield None
        return
    server = forkserver.ForkServer.start("graders", PRELOADED, f"{__name__}:grade_here", grading.nbgrader_environment(),
                                         title_room=1024, wait=False)
    try:
        yield server
    finally:
        if os.environ.get(SHARED_VARIABLE) == server.socket:
            del os.environ[SHARED_VARIABLE]
        server.close()


def socket(server: forkserver.ForkServer | None) -> str | None:
    """The server's socket once it takes requests, shared from then on with the block's `run_nbgrader` calls;
    None (graders start as new processes) if it did not start."""
    if server is None:
        return None
    try:
        path = server.ready().socket
    except RuntimeError:
        return None
    os.environ[SHARED_VARIABLE] = path
    return path


def shared_socket() -> str | None:
    """The socket of the grader server this process's grading command shares, if any."""
    shared = os.environ.get(SHARED_VARIABLE)
    return shared if shared and Path(shared).exists() else None
