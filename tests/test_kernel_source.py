"""Kernels forked from the preloaded kernel source: sandboxed like a new kernel, and gone with their command."""

import json
import os
import signal
import time
from pathlib import Path

import pytest
from jupyter_client import BlockingKernelClient
from jupyter_client.utils import run_sync

from batchcourse.grading import sandbox
from batchcourse.paths import REPO_ROOT
from batchcourse.grading.kernel_source import KERNEL_TITLE, KernelSource

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
