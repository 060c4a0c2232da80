"""Execute a submission in isolation while nbgrader grades it.

nbgrader runs student code in a kernel with the grader's permissions. `SandboxedExecute`
replaces nbgrader's Execute step: nbgrader still restores the test cells before, and scores and
writes the gradebook after, but the kernel it talks to starts inside `sandbox_argv(...)`:

    setpriv --pdeathsig=KILL unshare [--user --map-root-user] --mount --net --pid --ipc --fork --mount-proc
            --kill-child python -m batchcourse.grading.kernel_launcher
      (root in new namespaces)  covers solutions/, tests/, autograde/ (gradebook and other submissions),
                                .git, the repository's parent folder, /tmp, /run, /dev/shm, /var/tmp, /root
                                and /home with empty file systems of its own; mounts back only Python, the
                                environment, the helper package and the data; makes every mount read-only
                                but its own /tmp and /dev/shm; then becomes a user of its own with limits on
                                memory, processes and file size, and becomes the kernel.

The kernel is forked from a preloaded kernel source (kernel_source.py), whose child makes the same namespaces
itself and then isolates itself with the same code (kernel_launcher.isolate); the command above is the way
when the source is switched off (BATCHCOURSE_PRELOADED=0) or cannot start.

Two modes. As root ("root"): a fresh uid per submission, control groups for memory and processes.
As a normal user where the Linux kernel allows unprivileged user namespaces ("user namespace"):
`--user --map-root-user`, rlimits instead of control groups, and the kernel runs as the grader's own
user outside its namespaces (README.md, "Grading", says what this weakens).

The kernel talks to nbgrader over Unix sockets in a private folder (not TCP), so it needs no
network: its network namespace has none. It cannot read the hidden files, write outside its own
folders, reach the network, see, signal or trace any process outside (PID namespace), reach another
sandbox's System V IPC objects or POSIX message queues (IPC namespace), or outlive grading: `unshare`
dies with the grader's process, the kernel with `unshare` (parent-death signals, see lifetime.py), and
everything the kernel started with the kernel (its PID and IPC namespaces end with it). A wall-clock
limit per submission kills it from outside. Limits that were hit are written into the notebook's
metadata for the tamper report, and the test cells that did not run fail with a sentence that says why.
"""

import atexit
import contextlib
import fcntl
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
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.notebooknode import NotebookNode
from nbgrader.preprocessors import Execute
from traitlets import Bool, Integer

from ..i18n import notebook_language
from . import is_test_cell, lifetime
from .kernel_source import KernelSource
from .lifetime import dies_with_parent
from .trusted_execute import TrustedTests

METADATA_KEY = "batchcourse_grading"
KERNEL_USER_BASE = 200000
KERNEL_USERS = 100000
TEST_USER_OFFSET = KERNEL_USERS  # a submission's test processes run as its kernel's uid plus this
ROOT, USER_NAMESPACE = "root", "user namespace"
NAMESPACES = ["--mount", "--net", "--pid", "--ipc", "--fork", "--mount-proc"]
FOLDER_PREFIX = "batchcourse-sandbox-"  # then the run's id, "-" and mkdtemp's letters
KERNEL_SOURCE_VARIABLE = "BATCHCOURSE_KERNEL_SOURCE"  # the socket of the grading command's kernel source
PRELOADED_VARIABLE = "BATCHCOURSE_PRELOADED"  # "0": every kernel and grader starts as a new process


class SandboxUnavailable(RuntimeError):
    """Submissions cannot be isolated on this machine."""


def error_output(ename: str, evalue: str) -> NotebookNode:
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


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


def user_namespace_problem() -> str | None:
    """None when a normal user can make the sandbox's namespaces here; else why not."""
    probe = subprocess.run(["unshare", "--user", "--map-root-user", *NAMESPACES, "mount", "-t", "tmpfs", "tmpfs", "/mnt"],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else (probe.stderr.strip() or f"exit code {probe.returncode}")


def sandbox_mode() -> tuple[str | None, str | None]:
    """(ROOT or USER_NAMESPACE, None) when the sandbox can be made here; otherwise (None, the reason why not)."""
    if sys.platform != "linux":
        return None, "the sandbox is made of Linux namespaces, and this is not Linux"
    if not all(shutil.which(command) for command in ("unshare", "setpriv", "mount")):
        return None, "the commands unshare, setpriv and mount (util-linux) are needed"
    if os.geteuid() == 0:
        probe = subprocess.run(["unshare", *NAMESPACES, "true"], capture_output=True, text=True)
        return (ROOT, None) if probe.returncode == 0 else (None, f"unshare failed: {probe.stderr.strip()}")
    problem = user_namespace_problem()
    if problem is None:
        return USER_NAMESPACE, None
    return None, ("grading runs as a normal user, and this Linux kernel does not let a normal user create "
                  f"namespaces ({problem}); see README.md, Grading, for the settings to check")


def sandbox_available() -> str | None:
    """None when the sandbox can be made here; otherwise the reason why not."""
    return sandbox_mode()[1]


def uid_folder(mode: str) -> Path:
    if mode == ROOT:
        return Path("/run/batchcourse-kernel-uids")
    return Path(tempfile.gettempdir()) / f"batchcourse-kernel-uids-{os.getuid()}"


def claim_uid(mode: str) -> tuple[int, int]:
    """A kernel uid no submission graded since boot has had (on this machine, by any grader process), and a
    lock held while it is in use: (uid, file descriptor of the lock; close it when the sandbox has ended).

    A counter under /run (root) or the grader's temporary folder (user namespaces, where the uid only
    names the kernel's user inside its namespace) hands out the uids in turn."""
    folder = uid_folder(mode)
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.lstat().st_uid != os.getuid() or folder.is_symlink():
        raise SandboxUnavailable(f"{folder} belongs to another user")
    counter = os.open(folder / "next", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(counter, fcntl.LOCK_EX)
        start = int(os.pread(counter, 32, 0) or b"0")
        for step in range(KERNEL_USERS):
            uid = KERNEL_USER_BASE + (start + step) % KERNEL_USERS
            lock = os.open(folder / str(uid), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(lock)
                continue
            os.ftruncate(counter, 0)
            os.pwrite(counter, str((start + step + 1) % KERNEL_USERS).encode(), 0)
            return uid, lock
        raise SandboxUnavailable(f"all {KERNEL_USERS} kernel uids are in use")
    finally:
        os.close(counter)


def release_uid(mode: str, uid: int, lock: int) -> None:
    folder = uid_folder(mode)
    counter = os.open(folder / "next", os.O_RDWR | os.O_NOFOLLOW)
    try:
        fcntl.flock(counter, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            (folder / str(uid)).unlink()
        os.close(lock)
    finally:
        os.close(counter)


def sandbox_settings(mode: str, folder: Path, uid: int, memory_mb: int, max_processes: int,
                     command: list[str] | None = None, lang: str = "en") -> dict:
    return {"folder": str(folder), "uid": uid, "mode": mode, "memory_mb": memory_mb,
            "max_processes": max_processes, "command": command, "lang": lang}


def sandbox_argv(mode: str, folder: Path, uid: int, memory_mb: int = 4096, max_processes: int = 256,
                 command: list[str] | None = None, lang: str = "en") -> list[str]:
    """The command that runs `command` isolated (see the module docstring), as `uid`, with `folder` its only
    folder shared with the grader; append the connection file's path. `command` defaults to an ipykernel;
    "{connection_file}" in it becomes the private copy of that file. The sandbox ends when the thread that
    started it does (lifetime.py)."""
    settings = sandbox_settings(mode, folder, uid, memory_mb, max_processes, command, lang)
    user = ["--user", "--map-root-user"] if mode == USER_NAMESPACE else []
    return dies_with_parent(["unshare", *user, *NAMESPACES, "--kill-child", sys.executable, "-m",
                             "batchcourse.grading.kernel_launcher", json.dumps(settings)])


_own_source: KernelSource | None = None


def kernel_source(log=None) -> KernelSource | None:
    """Where this process's sandboxed kernels come from (kernel_source.py): the grading command's source,
    shared by all its nbgrader processes, or one of this process's own. None when preloaded kernels are
    switched off or the source cannot start: kernels then start as new processes, as `sandbox_argv` says."""
    global _own_source
    if os.environ.get(PRELOADED_VARIABLE, "1") == "0":
        return None
    shared = os.environ.get(KERNEL_SOURCE_VARIABLE)
    if shared and Path(shared).exists():
        return KernelSource(shared)
    if _own_source is None or not _own_source.alive():
        try:
            _own_source = KernelSource.start()
        except (OSError, RuntimeError) as error:
            if log is not None:
                log.warning("kernels start as new processes: %s", error)
            return None
        atexit.register(_own_source.close)
    return _own_source


@contextlib.contextmanager
def shared_kernel_source(wait: bool = True):
    """One kernel source for every nbgrader process started in the block (`grade`, all its workers); the one
    already shared, inside another such block. None (each nbgrader process then starts its own, or none)
    when preloaded kernels are off, there is no sandbox, or the source does not start. Unless `wait`, the
    block begins while the source starts: call `settle` on it before grading."""
    shared = os.environ.get(KERNEL_SOURCE_VARIABLE)
    if shared and Path(shared).exists():
        yield KernelSource(shared)
        return
    if os.environ.get(PRELOADED_VARIABLE, "1") == "0" or sandbox_mode()[1]:
        yield None
        return
    try:
        source = KernelSource.start(wait=wait)
    except (OSError, RuntimeError):
        yield None
        return
    os.environ[KERNEL_SOURCE_VARIABLE] = source.socket
    try:
        yield source
    finally:
        os.environ.pop(KERNEL_SOURCE_VARIABLE, None)
        source.close()


def settle(source: KernelSource | None) -> None:
    """Wait for a shared source started without waiting; if it does not start, kernels start without it."""
    if source is None:
        return
    try:
        source.ready()
    except RuntimeError:
        os.environ.pop(KERNEL_SOURCE_VARIABLE, None)


@contextlib.contextmanager
def sandbox_folder(mode: str):
    """(folder, uid) for one sandboxed process: a fresh uid and a private folder for its sockets (as root a
    small file system of its own, so nothing else can grow there); both go when the block ends."""
    uid, lock = claim_uid(mode)
    folder = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{lifetime.run_id() or 'none'}-"))
    try:
        if mode == ROOT:
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=4m,mode=700,uid={uid},gid={uid}", "tmpfs", str(folder)],
                           check=True, capture_output=True)
        yield folder, uid
    finally:
        if mode == ROOT:
            subprocess.run(["umount", "--lazy", str(folder)], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
        if mode == ROOT:
            remove_control_groups(folder.name)
        release_uid(mode, uid, lock)


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


def remove_folders_of_ended_runs() -> list[Path]:
    """Remove what sandboxes of grading runs that have ended left behind (a grader killed outright cannot
    unmount its sandbox's folder or remove its control groups); returns the folders removed."""
    def ours(folder: Path) -> bool:
        owner = folder.lstat().st_uid
        return owner == os.getuid() or (os.geteuid() == 0 and 0 <= owner - KERNEL_USER_BASE < KERNEL_USERS)

    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{FOLDER_PREFIX}*-*"):
        run = folder.name[len(FOLDER_PREFIX):].rsplit("-", 1)[0]
        if run == "none" or folder.is_symlink() or not ours(folder) or lifetime.run_alive(run):
            continue
        if os.geteuid() == 0:
            subprocess.run(["umount", "--lazy", str(folder)], capture_output=True)
            remove_control_groups(folder.name)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


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
    interrupt_seconds = Integer(10, help="Time a cell interrupted at its time limit has to stop, in seconds; "
                                         "then grading of the notebook stops").tag(config=True)
    _interrupted_after: int | None = None  # the time limit of the cell last interrupted, if it was
    _sandbox: tuple[str, int] | None = None  # (mode, the kernel's uid) while a submission is graded
    _output_seconds = 60  # how long nbclient waits for a cell's last output; set from iopub_timeout when grading

    def preprocess(self, nb, resources=None, km=None):
        self._output_seconds = self.iopub_timeout
        if not self.isolate:
            return self._execute(nb, resources, km)
        # nbclient interrupts a cell whose output arrives over 4 s after its reply, which a loaded grading
        # machine reaches while a sandboxed kernel starts: wait longer (the cell's own limit still holds).
        self.iopub_timeout = self._output_seconds = max(self.iopub_timeout, 30)
        mode, reason = sandbox_mode()
        if reason:
            if not self.allow_unsafe:
                raise SandboxUnavailable(
                    f"Submissions cannot be isolated here ({reason}). Grade as root, or as a user on a Linux "
                    "that allows unprivileged user namespaces, or set BATCHCOURSE_UNSAFE_NO_SANDBOX=1 to grade "
                    "without isolation (only for trusted notebooks).")
            self.log.warning("GRADING WITHOUT ISOLATION: %s", reason)
            return self._execute(nb, resources, km)
        with sandbox_folder(mode) as (folder, uid):
            km = self._sandboxed_kernel_manager(folder, uid, mode, notebook_language(nb))
            try:
                nb.metadata.setdefault(METADATA_KEY, {}).update(kernel_uid=uid, sandbox=mode)
                self._sandbox = (mode, uid)
                return self._execute(nb, resources, km)
            finally:
                self._sandbox = None
                self._stop(km)

    def test_sandbox(self, seconds: int) -> dict | None:
        if self._sandbox is None:
            return None
        mode, uid = self._sandbox
        return {"mode": mode, "uid": uid + TEST_USER_OFFSET, "memory_mb": self.memory_mb,
                "max_processes": self.max_processes, "seconds": seconds}

    def kernel_uid(self) -> int | None:
        if self._sandbox is None:
            return None
        mode, uid = self._sandbox
        return uid if mode == ROOT else os.getuid()  # without root, the kernel is the grader's user outside

    @staticmethod
    def _stop(km) -> None:
        """nbclient leaves a kernel manager it was given running: kill the sandbox and its kernel."""
        kill_sandbox(km)
        with contextlib.suppress(Exception):
            run_sync(km.cleanup_resources)()

    def _sandboxed_kernel_manager(self, folder: Path, uid: int, mode: str = ROOT,
                                  lang: str = "en") -> AsyncKernelManager:
        source = kernel_source(self.log)
        if source is None:
            command = sandbox_argv(mode, folder, uid, self.memory_mb, self.max_processes, lang=lang)
        else:
            command = source.argv(sandbox_settings(mode, folder, uid, self.memory_mb, self.max_processes, lang=lang))
        spec = KernelSpec(
            argv=[*command, "{connection_file}"],
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
            if isinstance(error, CellTimeoutError) and self._interrupted_after:
                reason = (f"a cell ran past its {self._interrupted_after} s limit and had not stopped "
                          f"{self.interrupt_seconds} s after it was interrupted")
                record_event(nb, reason)
            else:
                reason = f"{type(error).__name__}: {error}"
                record_event(nb, f"execution failed: {reason}")
            mark_not_run(nb, f"grading stopped: {reason}")
        finally:
            if timer is not None:
                timer.cancel()
        return nb, resources

    async def async_execute_cell(self, *args, **kwargs):
        self.iopub_timeout = self._output_seconds
        self._interrupted_after = None
        return await super().async_execute_cell(*args, **kwargs)

    async def _async_handle_timeout(self, timeout, cell=None):
        """After the interrupt, nbclient waits for the cell's last output as long as for any cell's: a kernel
        that ignores the interrupt would hold grading that long for nothing."""
        reply = await super()._async_handle_timeout(timeout, cell)
        self.iopub_timeout = min(self.iopub_timeout, self.interrupt_seconds)
        self._interrupted_after = timeout
        return reply

    def _kill(self, km, nb) -> None:
        record_event(nb, f"wall-clock limit of {self.wall_seconds} s reached")
        kill_sandbox(km)
