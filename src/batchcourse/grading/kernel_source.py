"""Sandboxed kernels forked from a preloaded process: a submission's kernel starts in milliseconds.

A new kernel process spends seconds importing torch and ipykernel before it runs a line of the student's
code, for every submission. A kernel source is a clean process that imports them once and waits: for each
submission, the kernel command that nbgrader starts (`python kernel_source.py kernel ...`, standard library
only) asks it for a kernel through a Unix socket in a private folder. The source forks; the child makes the
sandbox's namespaces itself (what `unshare` does for a new process, sandbox.py), isolates itself exactly as
kernel_launcher.py does, drops every capability, and becomes the kernel. The source never runs student code,
reads no course file and holds nothing secret: it has the environment a kernel gets, and each kernel is a
fresh copy of it, so nothing of one submission reaches the next.

Lifetimes (lifetime.py): the source dies with the process that started it, each child with the source, and
the kernel (the first process of its PID namespace, so everything it starts too) with that child. The kernel
command holds its connection to the source while the kernel lives and exits with the kernel's exit code; when
the kernel command is killed (nbgrader stopping the kernel, the wall-clock limit, a killed grader), the source
sees the connection close and kills that kernel's sandbox.
"""

import contextlib
import ctypes
import importlib
import json
import os
import selectors
import signal
import socket
import sys
from pathlib import Path

# Imported by the source, so that no kernel imports them again.
PRELOADED = ("torch", "numpy", "ipykernel.kernelapp", "ipykernel.ipkernel", "IPython", "zmq", "jupyter_client.session")
KERNEL_TITLE = "ipykernel_launcher (forked, sandboxed)"
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC = 0x20000, 0x10000000, 0x20000000, 0x40000000, 0x8000000
MS_REC, MS_PRIVATE, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x4000, 0x40000, 0x2, 0x4, 0x8
PR_SET_PDEATHSIG = 1


def request_kernel(socket_path: str, settings: str, connection_file: str) -> int:
    """The kernel command: have the source start a kernel, and live as long as it does; its exit code."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(socket_path)
        request = {"settings": json.loads(settings), "connection_file": connection_file}
        connection.sendall(json.dumps(request).encode() + b"\n")
        replies = connection.makefile("rb")
        for line in replies:
            word, _, value = line.decode().partition(" ")
            if word == "ended":
                code = int(value)
                return code if code >= 0 else 128 - code
    return 70  # the source ended before the kernel did


class KernelSource:
    """A running source (see the module docstring), started by the grader; `argv` is a kernel's command."""

    def __init__(self, socket_path: str, process=None, folder: Path | None = None):
        self.socket, self.process, self.folder = socket_path, process, folder

    @classmethod
    def start(cls, startup_seconds: float = 120) -> "KernelSource":
        import subprocess
        import tempfile
        import time

        from .lifetime import RUN_VARIABLE, dies_with_parent

        folder = Path(tempfile.mkdtemp(prefix="batchcourse-kernels-"))
        socket_path = str(folder / "kernels.sock")
        env = {key: value for key, value in os.environ.items()
               if key.startswith(("NBGRADER_", "LANG", "LC_", "PATH", "PYTHON", "OMP_", "MKL_", RUN_VARIABLE))}
        env.update(HOME=str(folder), TMPDIR=str(folder))
        log = open(folder / "log.txt", "w+")
        process = subprocess.Popen(dies_with_parent([sys.executable, "-m", __name__, "serve", socket_path]),
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=folder, env=env,
                                   start_new_session=True)
        source = cls(socket_path, process, folder)
        deadline = time.monotonic() + startup_seconds
        while not Path(socket_path).exists():
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                message = log.read()[-2000:] or f"exit code {process.poll()}"
                source.close()
                raise RuntimeError(f"the kernel source did not start: {message}")
            time.sleep(0.05)
        return source

    def alive(self) -> bool:
        return Path(self.socket).exists() and (self.process is None or self.process.poll() is None)

    def argv(self, settings: dict) -> list[str]:
        """The kernel command nbgrader starts, before the connection file's path."""
        from .lifetime import dies_with_parent

        return dies_with_parent([sys.executable, "-I", __file__, "kernel", self.socket, json.dumps(settings)])

    def close(self) -> None:
        import shutil

        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        raise OSError(ctypes.get_errno(), what)


def enter_new_namespaces(mode: str) -> None:
    """What `unshare [--user --map-root-user] --mount --net --pid --ipc --fork --mount-proc --kill-child` does,
    in this process: returns in the child, the first process of the new PID namespace; the parent waits for it,
    exits with its code, and takes it along if killed."""
    libc = _libc()
    uid, gid, as_user = os.getuid(), os.getgid(), mode != "root"
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC
    _check(libc.unshare(flags | (CLONE_NEWUSER if as_user else 0)), "unshare")
    if as_user:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
    child = os.fork()
    if child:
        _, status = os.waitpid(child, 0)
        os._exit(os.waitstatus_to_exitcode(status) % 256)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    _check(libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None), "mount proc")


def drop_capabilities() -> None:
    """No capability left, in any namespace: a kernel that does not exec keeps the ones a new user namespace
    gives (an exec as a user other than 0 would have cleared them)."""
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    libc = _libc()
    for capability in range(64):
        libc.prctl(24, capability, 0, 0, 0)  # PR_CAPBSET_DROP; fails quietly for numbers past the last one
    libc.prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL
    data = (ctypes.c_uint32 * 6)()
    _check(libc.capset(ctypes.byref(Header(0x20080522, 0)), data), "capset")


def retitle(title: str) -> None:
    """Show `title` as this process's command line (ps, /proc/PID/cmdline): a forked kernel keeps the
    source's otherwise. Overwrites the memory the command line was read from, as setproctitle does."""
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    start, end = int(fields[45]), int(fields[46])  # arg_start and arg_end (fields 48 and 49 of proc(5))
    text = title.encode()[: end - start - 1]
    ctypes.memmove(start, text + b"\0" * (end - start - len(text)), end - start)


def become_kernel(request: dict, source: int) -> None:
    """In a child of the source (process `source`): enter the sandbox and run the kernel in this process;
    never returns."""
    from . import kernel_launcher, lifetime

    code = 0
    try:
        lifetime.die_with_parent(source)
        os.setsid()  # a group of its own: a kernel's kill(0, ...) must reach no process of the grader's group
        settings = request["settings"]
        enter_new_namespaces(settings.get("mode", "root"))
        argv, env = kernel_launcher.isolate(settings, request["connection_file"])
        drop_capabilities()
        if settings.get("command"):
            os.execve(argv[0], argv, env)
        retitle(KERNEL_TITLE)
        os.environ.clear()
        os.environ.update(env)
        import tempfile

        tempfile.tempdir = None
        sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
        sys.argv = ["ipykernel_launcher", *argv[3:]]
        from ipykernel import kernelapp

        kernelapp.launch_new_instance()
    except SystemExit as end:
        code = end.code if isinstance(end.code, int) else 1
    except BaseException:  # noqa: BLE001 - the reason goes to the source's log; the kernel command sees the code
        import traceback

        traceback.print_exc()
        code = 70
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


def serve(socket_path: str) -> None:
    """The source: preload, then fork a kernel for every request on `socket_path` until killed."""
    for name in (*PRELOADED, "batchcourse.grading.kernel_launcher"):
        importlib.import_module(name)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path + ".new")
    listener.listen(64)
    os.rename(socket_path + ".new", socket_path)  # the socket appears when the source is ready
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    kernels = {}  # pid -> [connection to its kernel command or None once that has gone, pidfd]
    while True:
        for key, _ in selector.select():
            if key.data is None:
                _start(listener, selector, kernels)
                continue
            event, pid = key.data
            connection, pidfd = kernels[pid]
            if event == "command gone":  # nbgrader stopped or killed the kernel command: end its kernel
                selector.unregister(connection)
                connection.close()
                kernels[pid][0] = None
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                continue
            _, status = os.waitpid(pid, 0)
            selector.unregister(pidfd)
            os.close(pidfd)
            del kernels[pid]
            if connection is not None:
                selector.unregister(connection)
                with contextlib.suppress(OSError):
                    connection.sendall(f"ended {os.waitstatus_to_exitcode(status)}\n".encode())
                connection.close()


def _start(listener, selector, kernels) -> None:
    connection, _ = listener.accept()
    connection.settimeout(30)
    try:
        request = json.loads(connection.makefile("rb").readline())
    except (OSError, ValueError):
        connection.close()
        return
    source = os.getpid()
    pid = os.fork()
    if pid == 0:
        selector.close()
        listener.close()
        for other, pidfd in kernels.values():
            os.close(pidfd)
            if other is not None:
                other.close()
        connection.close()
        become_kernel(request, source)
    pidfd = os.pidfd_open(pid)
    kernels[pid] = [connection, pidfd]
    selector.register(connection, selectors.EVENT_READ, ("command gone", pid))
    selector.register(pidfd, selectors.EVENT_READ, ("kernel ended", pid))


if __name__ == "__main__":
    if sys.argv[1] == "kernel":
        sys.exit(request_kernel(*sys.argv[2:5]))
    serve(sys.argv[2])
