"""Kernels forked from the preloaded kernel source: sandboxed like a new kernel, and gone with their command."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jupyter_client import BlockingKernelClient
from jupyter_client.utils import run_sync

from batchcourse.grading import kernel_launcher, sandbox
from batchcourse.paths import REPO_ROOT
from batchcourse.grading.kernel_source import KERNEL_TITLE, KernelSource
from test_tampering import grading_user  # noqa: F401 - a fixture

PROBE = """
import json, os
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({"pid": os.getpid(), "uid": os.getuid(), "cap_eff": status["CapEff"].strip(),
                  "cap_prm": status["CapPrm"].strip(), "no_new_privs": status["NoNewPrivs"].strip(),
                  "cmdline": open("/proc/self/cmdline").read(), "repo_visible": os.path.exists(%r),
                  "torch_loaded": "torch" in __import__("sys").modules}))
"""

mode, why_not = sandbox.sandbox_mode()
pytestmark = pytest.mark.skipif(why_not is not None, reason=f"no sandbox here: {why_not}")


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(child) for child in task.read_text().split()]
    return found


def run_probe(km) -> dict:
    client = BlockingKernelClient()
    client.load_connection_info(km.get_connection_info())
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        client.execute(PROBE % str(REPO_ROOT / "solutions"))
        while True:
            message = client.get_iopub_msg(timeout=60)
            if message["msg_type"] == "stream":
                return json.loads(message["content"]["text"])
    finally:
        client.stop_channels()


def test_a_forked_kernel_is_sandboxed_and_ends_with_its_command(monkeypatch):
    source = KernelSource.start()
    monkeypatch.setenv(sandbox.KERNEL_SOURCE_VARIABLE, source.socket)
    try:
        with sandbox.sandbox_folder(mode) as (folder, uid):
            km = sandbox.SandboxedExecute()._sandboxed_kernel_manager(folder, uid, mode)
            run_sync(km.start_kernel)()
            try:
                found = run_probe(km)
                assert found["pid"] == 1, "the kernel must be the first process of its own PID namespace"
                assert found["uid"] == uid and found["cap_eff"] == found["cap_prm"] == "0" * 16
                assert found["no_new_privs"] == "1" and KERNEL_TITLE in found["cmdline"]
                assert found["torch_loaded"], "the kernel should come with torch already imported"
                assert not found["repo_visible"], "the course's solutions must be hidden from the kernel"
                assert children(source.process.pid), "the kernel should be a child of the source"
                os.kill(km.provisioner.pid, signal.SIGKILL)  # what nbgrader's kill and a killed grader come to
                deadline = time.monotonic() + 5
                while children(source.process.pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert not children(source.process.pid), "the kernel outlived its kernel command"
            finally:
                sandbox.SandboxedExecute._stop(km)
    finally:
        source.close()


TEST_CELL_PROBE = """
import json, os, socket, sys, time
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
try:
    os.execv("/bin/true", ["true"])
    started_a_program = True
except OSError:
    started_a_program = False
try:
    socket.create_connection(("127.0.0.1", %d), timeout=2).close()
    reached_the_grader = True
except OSError:
    reached_the_grader = False
if os.fork() == 0:  # a process that would sleep past its cell
    time.sleep(60)
    os._exit(0)
print(json.dumps({"pid": os.getpid(), "uid": os.getuid(), "cap_eff": status["CapEff"].strip(),
                  "no_new_privs": status["NoNewPrivs"].strip(), "solutions_visible": os.path.exists(%r),
                  "source_folder_visible": os.path.exists(%r), "homes": os.listdir("/home"),
                  "grader_tmp": sorted(os.listdir("/tmp")), "started_a_program": started_a_program,
                  "reached_the_grader": reached_the_grader, "writable_repo": os.access(%r, os.W_OK)}))
"""


def run_test_cell(processes, source: str, sandbox_settings: dict, seconds: float = 60):
    """Send one test cell to a source of test processes, as the grader does; its outputs, or None if the
    process ended without reporting."""
    with processes.connect() as connection:
        for message in ({"op": "setup", "setup": "", "graded": [], "sources": {}, "lang": "en", "sandbox": sandbox_settings},
                        {"op": "run", "source": source}):
            connection.sendall((json.dumps(message) + "\n").encode())
        connection.settimeout(seconds)
        for line in connection.makefile("rb"):
            message = json.loads(line)
            if message.get("op") == "call":  # the cell's one request here: forget the last cell's handles
                connection.sendall(b'{"op": "reply", "payload": ""}\n')
            elif message.get("op") == "done":
                return message["outputs"]
    return None


def descendants(pid: int) -> list[int]:
    found = children(pid)
    return found + [p for child in found for p in descendants(child)]


def check_test_cell_sandbox() -> None:
    """Each test cell's process isolates itself under the submission's test user before it takes any data: its
    own PID namespace (what it starts ends with it), no network, no course files, no program, a time limit."""
    import socket as sockets

    from batchcourse.grading.trusted_execute import TestProcesses

    listener = sockets.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    processes = TestProcesses(120)
    test_uid = sandbox.KERNEL_USER_BASE + 4321 + sandbox.TEST_USER_OFFSET
    settings = {"mode": mode, "uid": test_uid, "memory_mb": 4096, "max_processes": 256, "seconds": 30}
    try:
        probe = TEST_CELL_PROBE % (listener.getsockname()[1], str(REPO_ROOT / "solutions"), str(processes.folder),
                                   str(REPO_ROOT / "src"))
        outputs = run_test_cell(processes, probe, settings)
        assert outputs and outputs[0]["output_type"] == "stream", f"the probe failed: {outputs}"
        found = json.loads(outputs[0]["text"])
        assert found["pid"] == 1, "a test cell's process must be the first of its own PID namespace"
        assert found["uid"] == test_uid and found["cap_eff"] == "0" * 16 and found["no_new_privs"] == "1", found
        assert not found["solutions_visible"] and not found["source_folder_visible"] and found["homes"] == [], found
        # /tmp is the process's own: its home, and the way to the kept folders when the course lives under /tmp
        kept_under_tmp = {path.parts[2] for path in kernel_launcher.hidden_and_kept(None)[1] if path.parts[1] == "tmp"}
        assert set(found["grader_tmp"]) == {"home"} | kept_under_tmp, f"the grader's /tmp must be hidden: {found['grader_tmp']}"
        assert not found["started_a_program"] and not found["reached_the_grader"] and not found["writable_repo"], found
        deadline = time.monotonic() + 5
        while descendants(processes.process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not descendants(processes.process.pid), "a process started by a test cell outlived the cell"

        started = time.monotonic()
        endless = run_test_cell(processes, "while True:\n    pass\n", {**settings, "seconds": 2}, seconds=30)
        assert endless is None and time.monotonic() - started < 10, "a test cell's process must end at its time limit"
    finally:
        processes.close()
        listener.close()


def test_a_test_cell_process_is_sandboxed_like_a_kernel():
    check_test_cell_sandbox()


def test_a_test_cell_process_is_sandboxed_without_root(grading_user):  # noqa: F811 - the fixture
    """The same, graded by a normal user: the test process in user namespaces, as the kernel is."""
    user, home = grading_user
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_kernel_source as t; t.check_test_cell_sandbox()"
    run = subprocess.run(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", "--inh-caps=-all",
                          sys.executable, "-c", code], cwd=home, env={**os.environ, "HOME": str(home)},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"as {user.pw_name}:\n{run.stdout[-2000:]}{run.stderr[-4000:]}"
