"""Sandboxed kernels forked from a preloaded process: a submission's kernel starts in milliseconds.

A new kernel process spends seconds importing torch and ipykernel before it runs a line of the student's code,
for every submission. A kernel source is a fork server (forkserver.py) that imports them once and waits: for each
submission, the kernel command that nbgrader starts (`python -I forkserver.py ask ...`, standard library only)
asks it for a kernel. The source forks; the child makes the sandbox's namespaces itself (what `unshare` does for a
new process, sandbox.py), isolates itself exactly as kernel_launcher.py does, drops every capability, and becomes
the kernel. The source never runs student code, reads no course file and holds nothing secret: it has the
environment a kernel gets, and each kernel is a fresh copy of it, so nothing of one submission reaches the next.

Lifetimes (lifetime.py): the source dies with the process that started it, each child with the source, and the
kernel (the first process of its PID namespace, so everything it starts too) with that child. The kernel command
holds its connection to the source while the kernel lives and exits with the kernel's exit code; when the kernel
command is killed (nbgrader stopping the kernel, the wall-clock limit, a killed grader), the source sees the
connection close and kills that kernel's sandbox.
"""

import ctypes
import json
import os
import signal
import sys
import tempfile
from pathlib import Path

from . import forkserver

# Imported by the source, so that no kernel imports them again.
# Also what every notebook's set-up cell and the graded calls import: matplotlib (not its inline backend, which
# hooks into the shell it finds when imported), the course's helpers and the kernel's side of the wire.
PRELOADED = ["torch", "torchvision", "torchvision.transforms.v2", "numpy", "ipykernel.kernelapp", "ipykernel.ipkernel",
             "IPython", "zmq", "jupyter_client.session", "matplotlib.pyplot", "batchcourse.checks", "batchcourse.data",
             "batchcourse.models", "batchcourse.plotting", "batchcourse.grading.student_side",
             "batchcourse.grading.kernel_launcher"]
# Run by the kernel before any cell: the course's helpers were imported before there was a shell to hook into.
AT_START = "import batchcourse.i18n as _i18n; _i18n.install_in_kernel(); del _i18n"
KERNEL_TITLE = "ipykernel_launcher (forked, sandboxed)"
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC = 0x20000, 0x10000000, 0x20000000, 0x40000000, 0x8000000
MS_REC, MS_PRIVATE, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x4000, 0x40000, 0x2, 0x4, 0x8
PR_SET_PDEATHSIG = 1


class KernelSource(forkserver.ForkServer):
    """A running source (see the module docstring); `argv` is a kernel's command."""

    @classmethod
    def start(cls, startup_seconds: float = 120, wait: bool = True) -> "KernelSource":
        from .lifetime import kept_environment

        return super().start("kernels", PRELOADED, f"{__name__}:become_kernel", kept_environment(), startup_seconds,
                             wait=wait)

    def argv(self, settings: dict) -> list[str]:
        """The kernel command nbgrader starts, before the connection file's path."""
        from .lifetime import dies_with_parent

        return dies_with_parent([sys.executable, "-I", forkserver.__file__, "ask", self.socket, json.dumps(settings)])


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        raise OSError(ctypes.get_errno(), what)


def enter_new_namespaces(mode: str, seconds: int | None = None) -> None:
    """What `unshare [--user --map-root-user] --mount --net --pid --ipc --fork --mount-proc --kill-child` does,
    in this process: returns in the child, the first process of the new PID namespace; the parent waits for it,
    exits with its code, and takes it along if killed (or, given `seconds`, once they have passed)."""
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
        if seconds:
            signal.alarm(seconds)  # the default action ends this process, and with it the child
        _, status = os.waitpid(child, 0)
        os._exit(os.waitstatus_to_exitcode(status) % 256)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.setsid()  # a process group of its own: the kernel's kill(0, ...) must not reach the parent outside
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


def become_kernel(settings: dict, args: list[str], source: int) -> None:
    """In a child of the source (process `source`): enter the sandbox, as `settings` say (sandbox.py), and run
    the kernel in this process on the connection file args[0]."""
    from . import kernel_launcher

    enter_new_namespaces(settings.get("mode", "root"))
    argv, env = kernel_launcher.isolate(settings, args[0])
    drop_capabilities()
    if settings.get("command"):
        os.execve(argv[0], argv, env)
    forkserver.retitle([KERNEL_TITLE])
    os.environ.clear()
    os.environ.update(env)
    tempfile.tempdir = None
    sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
    if "MPLBACKEND" in env:  # matplotlib read the source's environment when it was imported
        import matplotlib

        matplotlib.rcParams["backend"] = env["MPLBACKEND"]
    sys.argv = ["ipykernel_launcher", *argv[3:], f"--IPKernelApp.exec_lines={[AT_START]!r}"]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()
