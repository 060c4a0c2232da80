"""A preloaded process that forks one child per request: what kernels and graders start from.

Starting Python and importing torch, ipykernel or nbgrader takes seconds of CPU; a child forked from a process
that has imported them costs milliseconds (copy-on-write). A fork server imports a fixed list of modules once,
then for every request on its Unix socket (in a private folder) forks a child that handles that request alone
and exits. The server itself runs no request's code, so each child is a fresh copy of the same clean process.

Lifetimes (lifetime.py): the server dies with the process that started it, each child with the server. The
process that made a request keeps its connection open while the child lives, and gets the child's exit code
(negative: the signal that ended it); when that connection closes first (the requester ended or was killed),
the server kills the child.

Only the standard library is imported here: `python -I forkserver.py ask SOCKET DATA ARGS...` is the short-lived
command that asks for a kernel.
"""

import contextlib
import importlib
import json
import os
import selectors
import signal
import socket
import sys
from pathlib import Path


def ask(socket_path: str, data: dict, args: list[str] | None = None) -> int:
    """Have the server fork a child for (data, args), and wait for it: the child's exit code."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(socket_path)
        connection.sendall(json.dumps({"data": data, "args": args or []}).encode() + b"\n")
        for line in connection.makefile("rb"):
            word, _, value = line.decode().partition(" ")
            if word == "ended":
                return int(value)
    return 70  # the server ended before the child did


def serve(socket_path: str, preload: list[str], handler: str) -> None:
    """Import `preload`, then fork for every request on `socket_path` a child that calls
    `handler`(data, args, server_pid) ("module:function"), until killed."""
    for name in preload:
        importlib.import_module(name)
    module, _, function = handler.partition(":")
    handle = getattr(importlib.import_module(module), function)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path + ".new")
    listener.listen(64)
    os.rename(socket_path + ".new", socket_path)  # the socket appears when the server is ready
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    children = {}  # pid -> [connection to its requester, or None once that has gone; pidfd]
    while True:
        for key, _ in selector.select():
            if key.data is None:
                _fork(listener, selector, children, handle)
                continue
            event, pid = key.data
            connection, pidfd = children[pid]
            if event == "requester gone":
                selector.unregister(connection)
                connection.close()
                children[pid][0] = None
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                continue
            _, status = os.waitpid(pid, 0)
            selector.unregister(pidfd)
            os.close(pidfd)
            del children[pid]
            if connection is not None:
                selector.unregister(connection)
                with contextlib.suppress(OSError):
                    connection.sendall(f"ended {os.waitstatus_to_exitcode(status)}\n".encode())
                connection.close()


def _fork(listener, selector, children, handle) -> None:
    connection, _ = listener.accept()
    connection.settimeout(30)
    try:
        request = json.loads(connection.makefile("rb").readline())
    except (OSError, ValueError):
        connection.close()
        return
    server = os.getpid()
    pid = os.fork()
    if pid == 0:
        selector.close()
        listener.close()
        for other, pidfd in children.values():
            os.close(pidfd)
            if other is not None:
                other.close()
        connection.close()
        code = 70
        try:
            from .lifetime import die_with_parent

            die_with_parent(server)
            os.setsid()  # a process group of its own: a child's kill(0, ...) reaches none of the server's
            handle(request["data"], request["args"], server)
            code = 0
        except SystemExit as end:
            code = end.code if isinstance(end.code, int) else (0 if end.code is None else 1)
        except BaseException:  # noqa: BLE001 - the reason goes to the server's log; the requester gets the code
            import traceback

            traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)
    pidfd = os.pidfd_open(pid)
    children[pid] = [connection, pidfd]
    selector.register(connection, selectors.EVENT_READ, ("requester gone", pid))
    selector.register(pidfd, selectors.EVENT_READ, ("child ended", pid))


class ForkServer:
    """A running fork server, started by the grader (`start`) or reached through its socket."""

    def __init__(self, socket_path: str, process=None, folder: Path | None = None):
        self.socket, self.process, self.folder = socket_path, process, folder
        self.name, self.log = "fork", None

    @classmethod
    def start(cls, name: str, preload: list[str], handler: str, env: dict[str, str],
              startup_seconds: float = 120, title_room: int = 0, wait: bool = True) -> "ForkServer":
        """Start a server (its folder and log are named after `name`) with environment `env`; its children can
        show command lines (`retitle`) of about its own length plus `title_room` characters. Unless `wait`,
        return at once: `ready` waits for it."""
        import subprocess
        import tempfile

        from .lifetime import dies_with_parent

        folder = Path(tempfile.mkdtemp(prefix=f"batchcourse-{name}-"))
        socket_path = str(folder / "server.sock")
        log = open(folder / "log.txt", "w+")
        command = [sys.executable, "-m", __name__, "serve", socket_path, json.dumps(preload), handler, " " * title_room]
        process = subprocess.Popen(dies_with_parent(command), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                   cwd=folder, env=env, start_new_session=True)
        server = cls(socket_path, process, folder)
        server.name, server.log = name, log
        if wait:
            server.ready(startup_seconds)
        return server

    def ready(self, startup_seconds: float = 120) -> "ForkServer":
        """Wait until the server takes requests; raise RuntimeError (and close it) if it ended or took too long."""
        import time

        deadline = time.monotonic() + startup_seconds
        while not Path(self.socket).exists():
            if self.process is None or self.process.poll() is not None or time.monotonic() > deadline:
                message = "no process"
                if self.log is not None:
                    self.log.seek(0)
                    message = self.log.read()[-2000:] or f"exit code {self.process.poll()}"
                self.close()
                raise RuntimeError(f"the {self.name} server did not start: {message}")
            time.sleep(0.05)
        return self

    def alive(self) -> bool:
        return Path(self.socket).exists() and (self.process is None or self.process.poll() is None)

    def close(self) -> None:
        import shutil

        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.log is not None:
            self.log.close()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def retitle(words: list[str]) -> None:
    """Show `words` as this process's command line (ps, /proc/PID/cmdline), cut to the space the original
    one had: a forked child keeps its server's otherwise. Overwrites the memory the kernel reads it from,
    as setproctitle does."""
    import ctypes

    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    start, end = int(fields[45]), int(fields[46])  # arg_start and arg_end (fields 48 and 49 of proc(5))
    text = "\0".join(words).encode()[: end - start - 1]
    ctypes.memmove(start, text + b"\0" * (end - start - len(text)), end - start)


if __name__ == "__main__":
    if sys.argv[1] == "ask":
        code = ask(sys.argv[2], json.loads(sys.argv[3]), sys.argv[4:])
        sys.exit(code if code >= 0 else 128 - code)
    serve(sys.argv[2], json.loads(sys.argv[3]), sys.argv[4])
