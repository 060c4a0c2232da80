"""nbgrader's Execute step with the test cells taken out of the student's kernel.

The student's cells run in the (sandboxed) kernel as before. Each test cell runs instead in a test process
(`batchcourse.grading.trusted`), forked for it from a clean source and sandboxed like the kernel, under the
submission's test user (the kernel's uid plus sandbox.TEST_USER_OFFSET); a graded
name called there makes the grader run one request in the kernel and hand the reply back (a test cell's
requests are answered by one execution in the kernel, on a socket of their own: see KernelCalls). The cell's
outputs are what the test process reports, so nothing the kernel prints, displays or raises becomes a test
result. A call that does not finish in the cell's time limit is interrupted and fails the test.
"""

import atexit
import base64
import contextlib
import json
import os
import secrets
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client.utils import run_sync
from nbclient.exceptions import DeadKernelError
from traitlets import Bool, HasTraits, Integer

from ..i18n import notebook_language, translate
from . import is_test_cell
from .lifetime import dies_with_parent, kept_environment
from .frames import FRAME

USER_NAMESPACE = ["unshare", "--user", "--map-root-user", "--net", "--ipc"]
MAX_REPLY_BYTES = 300 * 1024 * 1024


class TestProcessError(RuntimeError):
    """The test process itself failed: a grader problem, never the student's."""


def defined_names(source: str) -> list[str]:
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def graded_names(nb) -> list[str]:
    """The names the solution cells define: in a test, each is a proxy to the student's object."""
    setup_names = set(defined_names(setup_source(nb)))
    return sorted({name for c in nb.cells if c.cell_type == "code" and c.get("metadata", {}).get("nbgrader", {}).get("solution")
                   for name in defined_names(c.source)} - setup_names)


def student_sources(nb) -> dict[str, str]:
    """The code cells the student wrote, by index: read (never run) for the from-scratch rule."""
    return {str(i): c.source for i, c in enumerate(nb.cells) if c.cell_type == "code" and not is_test_cell(c)
            and not c.get("metadata", {}).get("nbgrader", {}).get("locked")}


def setup_source(nb) -> str:
    """The locked set-up cell: the first locked code cell that is not a test."""
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("locked") and not is_test_cell(cell):
            return cell.source
    return ""


class _Lines:
    """Lines from a pipe, with a deadline."""

    def __init__(self, fd: int):
        self.fd, self.buffer = fd, b""

    def readline(self, deadline: float) -> bytes:
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                chunk = os.read(self.fd, 1 << 20)
                if not chunk:
                    raise EOFError
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line


def peer_uid(connection: socket.socket) -> int:
    """The user of the process at the other end of a Unix socket, as the system saw it when it connected."""
    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", credentials)[1]


class SharedTestProcesses:
    """A source of test processes reached through its socket: one that a parent grading command started for all
    its nbgrader processes (and the base of the one a grading process starts for itself)."""

    def __init__(self, socket_path: str):
        self.socket = Path(socket_path)

    def connect(self) -> socket.socket:
        """A connection to the source, which runs as the grader's user (a socket put there by anyone else is
        refused)."""
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(str(self.socket))
        if peer_uid(connection) != os.geteuid():
            connection.close()
            raise TestProcessError(f"the test processes' socket {self.socket} belongs to another user")
        return connection

    def alive(self) -> bool:
        return self.socket.exists()

    def tail(self) -> str:
        return "see the grading command's output"

    def close(self) -> None:
        pass


class TestProcesses(SharedTestProcesses):
    """The grader's source of test processes: a clean process with torch loaded and without network, that forks
    one process per test cell; each isolates itself before it takes the submission's data (trusted.enter_sandbox),
    so the source runs as the grader (as root, to give each its user; without root, as root of a user namespace).
    One per grading process, started on first use; it and the processes it forks are killed when the thread that
    started it ends. Its socket is in a folder only the grader's user can reach, which no sandbox sees."""

    def __init__(self, startup_seconds: int):
        self.folder = Path(tempfile.mkdtemp(prefix="batchcourse-tests-"))
        super().__init__(str(self.folder / "tests.sock"))
        command = [sys.executable, "-m", "batchcourse.grading.trusted", str(self.socket)]
        if os.geteuid() == 0 and shutil.which("setpriv") and shutil.which("unshare"):
            command = ["unshare", "--net", "--ipc", *dies_with_parent(command)]
        elif shutil.which("unshare") and subprocess.run(USER_NAMESPACE + ["true"], capture_output=True).returncode == 0:
            command = [*USER_NAMESPACE, *dies_with_parent(command)]
        env = kept_environment()
        env.update(HOME=str(self.folder), TMPDIR=str(self.folder), MPLCONFIGDIR=str(self.folder), MPLBACKEND="Agg")
        self.log = open(self.folder / "log.txt", "w+")
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                        cwd=self.folder, env=env)
        deadline = time.monotonic() + startup_seconds
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                message = self.tail()
                self.close()
                raise TestProcessError(f"the test process did not start: {message}")
            time.sleep(0.05)
        atexit.register(self.close)

    def tail(self) -> str:
        try:
            self.log.seek(0)
            return self.log.read()[-2000:] or "no message"
        except (ValueError, OSError):
            return "no message"

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


SHARED_VARIABLE = "BATCHCOURSE_TEST_PROCESSES"


def shared_test_source() -> SharedTestProcesses | None:
    """The source of test processes this process's grading command shares, if any."""
    shared = os.environ.get(SHARED_VARIABLE)
    return SharedTestProcesses(shared) if shared and Path(shared).exists() else None


@contextlib.contextmanager
def shared_test_processes(startup_seconds: int = 120):
    """Start one source of test processes for every nbgrader process started in the block (`grade --workers`),
    so that each submission does not load torch again for its tests; inside another such block, the one it shares."""
    shared = shared_test_source()
    if shared:
        yield shared
        return
    try:
        processes = TestProcesses(startup_seconds)
    except TestProcessError:
        yield None  # each grader tries for itself, and says why it cannot in the submission's test cells
        return
    os.environ[SHARED_VARIABLE] = str(processes.socket)
    try:
        yield processes
    finally:
        os.environ.pop(SHARED_VARIABLE, None)
        processes.close()


class TrustedTests(HasTraits):
    """A mixin for nbgrader's Execute: test cells run in processes of their own (see the module docstring)."""

    trusted_tests = Bool(True, help="Run test cells in a separate process, never in the student's kernel").tag(config=True)
    test_startup_seconds = Integer(120, help="Time the test process may take to start").tag(config=True)
    _processes: TestProcesses | None = None

    def preprocess_cell(self, cell, resources, index):
        if not (self.trusted_tests and is_test_cell(cell)):
            return super().preprocess_cell(cell, resources, index)
        try:
            outputs = self._run_test(cell.source)
        except (TestProcessError, OSError):
            # The grader's own test process failed (killed, out of memory): start a new one and try once more,
            # so that a fault of the grader does not cost the student the test.
            self._restart_test_processes()
            outputs = self._run_test(cell.source)
        cell.outputs = [nbformat.from_dict(o) for o in outputs]
        cell.execution_count = None
        return cell, resources

    def test_sandbox(self, seconds: int) -> dict | None:
        """What a test cell's process isolates itself with (trusted.enter_sandbox): None, no sandbox."""
        return None

    def kernel_uid(self) -> int | None:
        """The user the kernel runs as, seen from the grader: None, any (no sandbox)."""
        return None

    def _test_processes(self) -> TestProcesses:
        shared = shared_test_source()
        if shared:
            return shared
        if TrustedTests._processes is None or not TrustedTests._processes.alive():
            TrustedTests._processes = TestProcesses(self.test_startup_seconds)
        return TrustedTests._processes

    def _restart_test_processes(self) -> None:
        if TrustedTests._processes is not None:
            TrustedTests._processes.close()
            TrustedTests._processes = None

    def _run_test(self, source: str) -> list[dict]:
        deadline = time.monotonic() + (self.timeout or 120)
        processes = self._test_processes()
        with processes.connect() as connection, contextlib.closing(KernelCalls(self, deadline)) as kernel:
            lines = _Lines(connection.fileno())

            def send(message: dict) -> None:
                connection.sendall((json.dumps(message) + "\n").encode())

            send({"op": "setup", "setup": setup_source(self.nb), "graded": graded_names(self.nb),
                  "sources": student_sources(self.nb), "lang": notebook_language(self.nb),
                  "sandbox": self.test_sandbox(int(deadline - time.monotonic()) + 10)})
            send({"op": "run", "source": source})
            while True:
                try:
                    message = json.loads(lines.readline(deadline))
                except TimeoutError:
                    return [_error("CellTimeoutError", translate(f"the test did not finish within {self.timeout} s",
                                                                 notebook_language(self.nb)))]
                except (EOFError, ValueError) as error:
                    raise TestProcessError(f"a test process stopped: {processes.tail()}") from error
                if message.get("op") == "call":
                    send(kernel.request(message["payload"]))
                elif message.get("op") == "done":
                    return message["outputs"]

    async def _interrupt(self):
        await self.km.interrupt_kernel()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                message = await self.kc.get_iopub_msg(timeout=1.0)
            except Exception:  # noqa: BLE001
                continue
            if message["msg_type"] == "status" and message["content"].get("execution_state") == "idle":
                return


class KernelCalls:
    """One test cell's requests to the student's kernel. The kernel answers them in one execution
    (`student_side.serve_calls`), on a socket of their own that this side listens on: a request costs a
    round trip on that socket, not a cell execution with its messages. The kernel proves it is the one asked
    with a token given in that execution's code."""

    def __init__(self, execute: "TrustedTests", deadline: float):
        self.execute, self.deadline = execute, deadline
        self.channel: socket.socket | None = None
        self.msg_id: str | None = None

    def request(self, payload: str) -> dict:
        if self.channel is None:
            self.channel = self._open()
            if self.channel is None:
                return _reply_error(NO_ANSWER)
        if select.select([self.channel], [], [], 0)[0]:
            self._drop()
            return _reply_error(TWO_REPLIES)
        data = base64.b64decode(payload)
        try:
            self.channel.sendall(FRAME.pack(len(data)) + data)
            reply = header = self._read(FRAME.size)
            if header is not None:
                size = FRAME.unpack(header)[0]
                if size > MAX_REPLY_BYTES:
                    self._drop()
                    return _reply_error(NO_ANSWER)
                reply = self._read(size)
        except TimeoutError:
            self._drop()
            run_sync(self.execute._interrupt)()  # waits until the kernel is idle
            self.msg_id = None
            seconds = self.execute.timeout
            return _reply_error(f"the notebook's code did not finish within {seconds} s of this test")
        except OSError:
            reply = None
        if reply is None:
            self._drop()
            if not run_sync(self.execute.km.is_alive)():
                raise DeadKernelError("the kernel died")
            return _reply_error(NO_ANSWER)
        return {"op": "reply", "payload": base64.b64encode(reply).decode("ascii")}

    def close(self) -> None:
        """End the kernel's execution and wait for it to finish (interrupt it if it does not)."""
        self._drop()
        if self.msg_id is not None and not run_sync(self._finished)(self.deadline + 5):
            run_sync(self.execute._interrupt)()
        self.msg_id = None

    def _drop(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def _read(self, size: int) -> bytes | None:
        parts = []
        while size:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            if not select.select([self.channel], [], [], min(remaining, 1.0))[0]:
                if not run_sync(self.execute.km.is_alive)():
                    return None
                continue
            part = self.channel.recv(min(size, 1 << 20))
            if not part:
                return None
            parts.append(part)
            size -= len(part)
        return b"".join(parts)

    def _open(self) -> socket.socket | None:
        """Start the kernel's execution that answers requests; its connection, or None if it never connects."""
        km, token = self.execute.km, secrets.token_hex(16)
        if km.transport == "ipc":  # the sandbox's folder, where the kernel's own sockets are
            address = f"{km.ip}-calls"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(address)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(address)
            os.chmod(address, 0o666)  # the kernel may run as a user of its own; the token proves who it is
        else:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind(("127.0.0.1", 0))
            address = listener.getsockname()[1]
        with listener:
            listener.listen(4)
            code = SERVE_TEMPLATE.format(address=address, token=token)
            self.msg_id = self.execute.kc.execute(code, silent=False, store_history=False, allow_stdin=False,
                                                  stop_on_error=False)
            try:
                return run_sync(self._accept)(listener, token)
            finally:
                if isinstance(address, str):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(address)

    async def _accept(self, listener: socket.socket, token: str) -> socket.socket | None:
        expected = FRAME.pack(len(token)) + token.encode()
        while time.monotonic() < self.deadline:
            if select.select([listener], [], [], 0.002)[0]:
                connection, _ = listener.accept()
                connection.settimeout(5)
                kernel = self.execute.kernel_uid()
                try:
                    if (connection.family != socket.AF_UNIX or kernel is None or peer_uid(connection) == kernel) and \
                            connection.recv(len(expected), socket.MSG_WAITALL) == expected:
                        connection.settimeout(None)
                        return connection
                except OSError:
                    pass
                connection.close()
            elif await self._finished(time.monotonic() + 0.002):
                self.msg_id = None  # the execution ended without connecting (its code was changed)
                return None
        return None

    async def _finished(self, until: float) -> bool:
        """Whether the execution went idle before `until`."""
        while (remaining := until - time.monotonic()) > 0:
            try:
                message = await self.execute.kc.get_iopub_msg(timeout=remaining)
            except Exception:  # noqa: BLE001 - queue.Empty: nothing yet
                return False
            if (message["parent_header"].get("msg_id") == self.msg_id and message["msg_type"] == "status"
                    and message["content"].get("execution_state") == "idle"):
                return True
        return False


SERVE_TEMPLATE = "__import__('batchcourse.grading.student_side', fromlist=['serve_calls']).serve_calls({address!r}, {token!r})"
NO_ANSWER = ("the notebook's kernel gave no answer (did its code replace the course's grading module, or end "
             "the kernel's answering?)")
TWO_REPLIES = ("the notebook's code wrote into the grader's channel beside the course's answer; a graded function "
               "returns its result and sends nothing of that kind")


def _reply_error(message: str) -> dict:
    return {"op": "reply", "error": message}


def _error(ename: str, evalue: str) -> dict:
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": [f"{ename}: {evalue}"]}

