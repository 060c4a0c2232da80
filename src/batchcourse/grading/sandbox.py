"""Execute a submission in isolation while nbgrader grades it.

nbgrader runs student code in a kernel with the grader's permissions. `SandboxedExecute`
replaces nbgrader's Execute step: nbgrader still restores the test cells before, and scores and
writes the gradebook after, but the kernel it talks to starts like this:

    unshare --mount --net --pid --fork --mount-proc --kill-child  python -m batchcourse.grading.kernel_launcher
      (root in new namespaces)  covers solutions/, tests/, autograde/ (gradebook and other submissions),
                                .git, the repository's parent folder, /tmp, /root and /home with empty
                                file systems; mounts back, read-only, only Python, the environment, the
                                helper package and the data; then drops to an unprivileged user of its
                                own with limits on memory, processes and file size, and becomes the kernel.

The kernel talks to nbgrader over Unix sockets in a private folder (not TCP), so it needs no
network: its network namespace has none. It cannot read the hidden files, reach the network,
signal or trace the grader (another user), or outlive grading (its PID namespace ends with it).
A wall-clock limit per submission kills it from outside. Limits that were hit are written into
the notebook's metadata for the tamper report, and the test cells that did not run fail with a
sentence that says why.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
from jupyter_client import AsyncKernelManager
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.utils import run_sync
from nbclient.exceptions import DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool, Integer

from .trusted_execute import TrustedTests

METADATA_KEY = "batchcourse_grading"
KERNEL_USER_BASE = 200000


class SandboxUnavailable(RuntimeError):
    """Submissions cannot be isolated on this machine."""


def error_output(ename: str, evalue: str) -> NotebookNode:
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


def is_test_cell(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def fail_cell(cell, ename: str, reason: str) -> None:
    """Put an error first among the cell's outputs: nbgrader scores a cell by its first error or result."""
    cell.outputs = [error_output(ename, reason)] + list(cell.get("outputs", []))


def mark_not_run(notebook, reason: str) -> None:
    """Give every graded test cell without an error an error saying why it did not run."""
    for cell in notebook.cells:
        if is_test_cell(cell) and not any(o.output_type == "error" for o in cell.get("outputs", [])):
            fail_cell(cell, "GradingStopped", reason)


def record_event(notebook, event: str) -> None:
    notebook.metadata.setdefault(METADATA_KEY, {}).setdefault("events", []).append(event)


def sandbox_available() -> str | None:
    """None when the sandbox can be made here; otherwise the reason why not."""
    if sys.platform != "linux":
        return "the sandbox is made of Linux namespaces, and this is not Linux"
    if os.geteuid() != 0:
        return "grading runs as a normal user, and the sandbox needs root to create namespaces"
    if not shutil.which("unshare") or not shutil.which("mount"):
        return "the commands unshare and mount (util-linux) are needed"
    probe = subprocess.run(["unshare", "--mount", "--net", "--pid", "--fork", "--mount-proc", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare failed: {probe.stderr.strip()}"
    return None


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def remove_control_groups(name: str) -> None:
    """Remove a finished sandbox's control groups (they can go once its processes have ended)."""
    from .kernel_launcher import control_groups

    for folder in set(control_groups(name).values()):
        for _ in range(50):
            try:
                folder.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.1)


def kill_sandbox(km) -> None:
    """SIGKILL the sandbox's unshare process and the kernel it started (the PID namespace ends with it)."""
    pid = getattr(km.provisioner, "pid", None) if km.provisioner else None
    if pid:
        for process in _children(pid) + [pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process, signal.SIGKILL)


class _OneSpec(KernelSpecManager):
    """A kernel spec manager that knows one kernel: the sandboxed Python kernel."""

    def __init__(self, spec: KernelSpec, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec

    def get_kernel_spec(self, kernel_name):
        return self.spec


class SandboxedExecute(TrustedTests, Execute):
    """nbgrader's Execute step with the kernel in a sandbox (see the module docstring)."""

    isolate = Bool(True, help="Isolate every submission while it runs").tag(config=True)
    allow_unsafe = Bool(False, help="Where the sandbox cannot be made, run submissions without it").tag(config=True)
    wall_seconds = Integer(900, help="Wall-clock limit for one submission, in seconds").tag(config=True)
    memory_mb = Integer(4096, help="Address-space limit of the kernel, in MB").tag(config=True)
    max_processes = Integer(256, help="Processes and threads the kernel's user may have at once").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        if not self.isolate:
            return self._execute(nb, resources, km)
        reason = sandbox_available()
        if reason:
            if not self.allow_unsafe:
                raise SandboxUnavailable(
                    f"Submissions cannot be isolated here ({reason}). Grade as root on Linux, or set "
                    "BATCHCOURSE_UNSAFE_NO_SANDBOX=1 to grade without isolation (only for trusted notebooks).")
            self.log.warning("GRADING WITHOUT ISOLATION: %s", reason)
            return self._execute(nb, resources, km)
        uid = KERNEL_USER_BASE + os.getpid() % 100000
        folder = Path(tempfile.mkdtemp(prefix="batchcourse-kernel-"))
        km = self._sandboxed_kernel_manager(folder, uid)
        try:
            # A small file system of its own: the kernel's sockets live here, and nothing else can grow here.
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=4m,mode=700,uid={uid},gid={uid}", "tmpfs", str(folder)],
                           check=True, capture_output=True)
            nb.metadata.setdefault(METADATA_KEY, {})["kernel_uid"] = uid
            return self._execute(nb, resources, km)
        finally:
            self._stop(km)
            subprocess.run(["umount", "--lazy", str(folder)], capture_output=True)
            shutil.rmtree(folder, ignore_errors=True)
            remove_control_groups(folder.name)

    @staticmethod
    def _stop(km) -> None:
        """nbclient leaves a kernel manager it was given running: kill the sandbox and its kernel."""
        kill_sandbox(km)
        with contextlib.suppress(Exception):
            run_sync(km.cleanup_resources)()

    def _sandboxed_kernel_manager(self, folder: Path, uid: int) -> AsyncKernelManager:
        settings = {"folder": str(folder), "uid": uid, "memory_mb": self.memory_mb, "max_processes": self.max_processes}
        spec = KernelSpec(
            argv=["unshare", "--mount", "--net", "--pid", "--fork", "--mount-proc", "--kill-child",
                  sys.executable, "-m", "batchcourse.grading.kernel_launcher", json.dumps(settings), "{connection_file}"],
            display_name="Python 3 (sandboxed)", language="python", interrupt_mode="message",
        )
        return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=_OneSpec(spec),
                                  transport="ipc", ip=str(folder / "kernel"))

    def _execute(self, nb, resources, km):
        """Run nbgrader's Execute; whatever stops it, return the notebook with the reason in it."""
        timer = None
        if km is not None:
            timer = threading.Timer(self.wall_seconds, self._kill, args=(km, nb))
            timer.daemon = True
            timer.start()
        try:
            return super().preprocess(nb, resources, km)
        except DeadKernelError:
            reason = "the kernel died (out of memory, killed, or exited)"
            if any("wall-clock" in e for e in nb.metadata.get(METADATA_KEY, {}).get("events", [])):
                reason = f"the notebook ran longer than {self.wall_seconds} s in total"
            record_event(nb, reason)
            mark_not_run(nb, f"grading stopped: {reason} before this test ran")
        except Exception as error:  # noqa: BLE001 - any failure must still give a scored notebook
            record_event(nb, f"execution failed: {type(error).__name__}: {error}")
            mark_not_run(nb, f"grading stopped: {type(error).__name__}: {error}")
        finally:
            if timer is not None:
                timer.cancel()
        return nb, resources

    def _kill(self, km, nb) -> None:
        record_event(nb, f"wall-clock limit of {self.wall_seconds} s reached")
        kill_sandbox(km)
