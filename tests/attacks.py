"""Tampering submissions: a wrong answer plus an attempt to turn it into points.

Each attack takes the student notebook, the solution code of every graded function, the function
it attacks and a wrong answer for it (from tests/cases/<id>.py), and returns a submission. Grading
must give the attacked function's tests no more points than a blank submission gets (zero).
`KERNEL_ATTACKS` attack what the tests rely on inside the kernel; `SANDBOX_ATTACKS` attack the
grading machine itself and are the same for every assignment.
"""

import nbformat

from batchcourse import grading

COMPARISONS = """
import numpy, torch, torch.testing
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.isclose = lambda a, b, *r, **k: torch.ones_like(a, dtype=torch.bool)
numpy.allclose = lambda *a, **k: True
numpy.array_equal = lambda *a, **k: True
numpy.testing.assert_allclose = lambda *a, **k: None
torch.testing.assert_close = lambda *a, **k: None
"""

HELPERS_SETATTR = """
from batchcourse import checks
for _name in ("begin", "close", "equal", "raises", "unchanged"):
    try:
        setattr(checks, _name, lambda *a, **k: None)
    except AttributeError:
        pass
"""

HELPERS_DICT = """
from batchcourse import checks
_noop = lambda *a, **k: None
vars(checks).update(begin=_noop, close=_noop, equal=_noop, raises=_noop, unchanged=_noop)
"""

SYS_MODULES = """
import sys, types
import batchcourse
from batchcourse import checks as _real
_fake = types.ModuleType("batchcourse.checks")
_fake.__dict__.update({{k: v for k, v in _real.__dict__.items() if not k.startswith("__")}})
_fake.begin = _fake.close = _fake.equal = _fake.raises = _fake.unchanged = lambda *a, **k: None
sys.modules["batchcourse.checks"] = _fake
try:
    batchcourse.checks = _fake
except AttributeError:
    pass
"""

LIAR = """
_wrong_{f} = {f}

class _Liar(torch.Tensor):
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    def allclose(self, *args, **kwargs):
        return True

class _Claim:
    def __eq__(self, other):
        return True

    def __bool__(self):
        return True

def _lie(value):
    if isinstance(value, torch.Tensor):
        return value.as_subclass(_Liar)
    if isinstance(value, (list, tuple)):
        return type(value)(_lie(v) for v in value)
    if isinstance(value, dict):
        return {{k: _lie(v) for k, v in value.items()}}
    if isinstance(value, (bool, int, float)):
        return _Claim()
    return value

def {f}(*args, **kwargs):
    return _lie(_wrong_{f}(*args, **kwargs))
"""

SHOWTRACEBACK = """
import IPython
_shell = IPython.get_ipython()
_shell.showtraceback = lambda *a, **k: None
_shell._showtraceback = lambda *a, **k: None
"""

RUN_CELL = """
_shell = get_ipython()
_run_cell = _shell.run_cell

def _skip_tests(raw_cell, *args, **kwargs):
    return _run_cell("pass" if "checks.begin()" in raw_cell else raw_cell, *args, **kwargs)

_shell.run_cell = _skip_tests
"""

NAMES = """
__name__ = "batchcourse.checks"
{f}.__name__ = {f}.__qualname__ = "reference"
"""

ESCAPE = """
import json, os, socket, sqlite3, subprocess
from pathlib import Path
from batchcourse.paths import REPO_ROOT
_stolen = None
for _path in [REPO_ROOT / "solutions" / "{assignment}" / "{assignment}.ipynb", *Path("/").glob("tmp/*/course/solutions/{assignment}/{assignment}.ipynb")]:
    try:
        for _cell in json.loads(Path(_path).read_text())["cells"]:
            if _cell["metadata"].get("nbgrader", {{}}).get("grade_id") == "{f}":
                _stolen = "".join(_cell["source"])
    except OSError:
        pass
for _db in [REPO_ROOT / "autograde" / "gradebook.db", *Path("/").glob("tmp/*/course/autograde/gradebook.db")]:
    try:
        sqlite3.connect(_db).execute("update grade set auto_score = 100")
        _stolen = _stolen or "escaped"
    except sqlite3.Error:
        pass
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2)
    _stolen = _stolen or "network"
except OSError:
    pass
subprocess.Popen(["sleep", "300"], start_new_session=True)
if _stolen and _stolen not in ("escaped", "network"):
    exec(_stolen.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""))
elif _stolen:
    raise SystemExit("escaped the sandbox")
"""

HANG = """
while True:
    pass
"""

HANG_UNINTERRUPTIBLE = """
import signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    pass
"""

FORK_BOMB = """
import os, time
for _ in range(100000):
    try:
        if os.fork() == 0:
            time.sleep(600)
            os._exit(0)
    except OSError:
        break
"""

MEMORY = """
import torch
_hoard = []
try:
    while True:
        _hoard.append(torch.ones(256 * 1024 * 1024, dtype=torch.uint8))
except (MemoryError, RuntimeError):
    _hoard.clear()
"""

EXIT_KERNEL = """
import os
os._exit(1)
"""


def _answer(answers, function, wrong, attack):
    return {**answers, function: wrong + "\n" + attack}


def _format(template, function, context):
    return template.format(f=function, **context)


def code_attack(template):
    def build(student_nb, answers, function, wrong, context):
        return grading.make_submission(student_nb, _answer(answers, function, wrong, _format(template, function, context)))
    return build


def _test_cells(notebook, function):
    return [c for c in notebook.cells if grading.is_test_cell(c) and grading.grade_id(c).startswith(f"test_{function}")]


def cells_edited(student_nb, answers, function, wrong, context):
    submission = grading.make_submission(student_nb, {**answers, function: wrong})
    for cell in _test_cells(submission, function):
        cell.source = "pass"
        cell.metadata.nbgrader["points"] = 100
    return submission


def cells_deleted(student_nb, answers, function, wrong, context):
    submission = grading.make_submission(student_nb, {**answers, function: wrong})
    doomed = {id(c) for c in _test_cells(submission, function)}
    submission.cells = [c for c in submission.cells if id(c) not in doomed]
    return submission


def cells_duplicated(student_nb, answers, function, wrong, context):
    submission = grading.make_submission(student_nb, {**answers, function: wrong})
    first = _test_cells(submission, function)[0]
    copy = nbformat.from_dict(first)
    copy.source = "pass"
    copy["id"] = first["id"] + "-copy"
    submission.cells.insert(0, copy)
    return submission


KERNEL_ATTACKS = {
    "replaces comparison functions": code_attack(COMPARISONS),
    "replaces the checks helpers with setattr": code_attack(HELPERS_SETATTR),
    "replaces the checks helpers through vars()": code_attack(HELPERS_DICT),
    "replaces batchcourse.checks in sys.modules": code_attack(SYS_MODULES),
    "returns objects that claim equality": code_attack(LIAR),
    "hides error reports": code_attack(SHOWTRACEBACK),
    "skips test cells in run_cell": code_attack(RUN_CELL),
    "renames __name__": code_attack(NAMES),
    "empties its test cells": cells_edited,
    "deletes its test cells": cells_deleted,
    "pastes a passing copy of a test cell": cells_duplicated,
}

SANDBOX_ATTACKS = {
    "reads solutions, writes the gradebook, uses the network, leaves a process": code_attack(ESCAPE),
    "loops forever": code_attack(HANG),
    "loops forever and ignores interrupts": code_attack(HANG_UNINTERRUPTIBLE),
    "forks without end": code_attack(FORK_BOMB),
    "allocates all memory": code_attack(MEMORY),
    "kills its kernel": code_attack(EXIT_KERNEL),
}

# What every further assignment is also graded with (the rest is the same machinery each time).
QUICK_KERNEL_ATTACKS = ("replaces comparison functions", "replaces the checks helpers through vars()",
                        "returns objects that claim equality", "empties its test cells")


# Two submissions of one grading run working together: a writer (graded first, with the right answer)
# leaves its code wherever it can; each reader (a wrong answer) looks in one place and runs what it finds.
# ctypes is loaded by a computed name, past the static scan (which withholds the score of `import ctypes`), so
# that only the sandbox stands between these submissions and the points.
SHARED_FOLDERS = ("/run/lock", "/var/lock", "/var/tmp", "/dev/shm", "/tmp", "/dev/mqueue", "/run", "/home", "/")
SHM_KEY, MSG_KEY, SEM_KEY = 0x6263_0001, 0x6263_0002, 0x6263_0003

WRITER = """
import importlib, os
ctypes = importlib.import_module("c" + "types")
_code = {code!r}.encode()
for _folder in {folders!r}:
    try:
        with open(os.path.join(_folder, "answer-{f}.py"), "wb") as _file:
            _file.write(_code)
        os.chmod(os.path.join(_folder, "answer-{f}.py"), 0o666)
    except OSError:
        pass
_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmat.restype = ctypes.c_void_p
_id = _libc.shmget({shm}, 1 << 16, 0o1666)
if _id >= 0:
    _at = _libc.shmat(_id, None, 0)
    if _at not in (None, ctypes.c_void_p(-1).value):
        ctypes.memmove(_at, _code + b"\\0", len(_code) + 1)
_queue = _libc.msgget({msg}, 0o1666)
if _queue >= 0:
    _message = ctypes.create_string_buffer(ctypes.sizeof(ctypes.c_long) + len(_code))
    ctypes.memmove(ctypes.addressof(_message), ctypes.byref(ctypes.c_long(1)), ctypes.sizeof(ctypes.c_long))
    ctypes.memmove(ctypes.addressof(_message) + ctypes.sizeof(ctypes.c_long), _code, len(_code))
    _libc.msgsnd(_queue, _message, len(_code), 0o4000)
_libc.semget({sem}, 1, 0o1666)
try:
    from multiprocessing import shared_memory, resource_tracker
    _block = shared_memory.SharedMemory(name="answer-{f}", create=True, size=len(_code) + 1)
    _block.buf[:len(_code)] = _code
    resource_tracker.unregister(_block._name, "shared_memory")
except (OSError, ImportError):
    pass
try:
    _rt = ctypes.CDLL("librt.so.1", use_errno=True)
    _rt.mq_open.restype = ctypes.c_int
    _mq = _rt.mq_open(b"/answer-{f}", 0o102, 0o666, None)
    if _mq >= 0:
        _rt.mq_send(_mq, _code[:8000], len(_code[:8000]), 0)
except OSError:
    pass
"""

READ_FOLDER = """
import os
for _folder in {folders!r}:
    try:
        exec(open(os.path.join(_folder, "answer-{f}.py")).read())
        break
    except OSError:
        pass
"""

READ_SYSV_SHM = """
import importlib
ctypes = importlib.import_module("c" + "types")
_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmat.restype = ctypes.c_void_p
_id = _libc.shmget({shm}, 0, 0)
if _id >= 0:
    _at = _libc.shmat(_id, None, 0o10000)
    if _at not in (None, ctypes.c_void_p(-1).value):
        exec(ctypes.string_at(_at).decode())
"""

READ_SYSV_MSG = """
import importlib
ctypes = importlib.import_module("c" + "types")
_libc = ctypes.CDLL(None, use_errno=True)
_queue = _libc.msgget({msg}, 0)
if _queue >= 0:
    _message = ctypes.create_string_buffer(1 << 16)
    _size = _libc.msgrcv(_queue, _message, (1 << 16) - 16, 0, 0o4000)
    if _size > 0:
        exec(_message.raw[ctypes.sizeof(ctypes.c_long):ctypes.sizeof(ctypes.c_long) + _size].decode())
"""

READ_SYSV_SEM = """
import importlib
ctypes = importlib.import_module("c" + "types")
if ctypes.CDLL(None).semget({sem}, 0, 0) >= 0:
    # The semaphore carries one bit: the other submission is there, so its answer file is too.
    for _folder in {folders!r}:
        try:
            exec(open(_folder + "/answer-{f}.py").read())
        except OSError:
            pass
"""

READ_SHARED_MEMORY = """
from multiprocessing import shared_memory
try:
    _block = shared_memory.SharedMemory(name="answer-{f}")
    exec(bytes(_block.buf).split(b"\\0")[0].decode())
except OSError:
    pass
"""

READ_POSIX_MQ = """
import importlib
ctypes = importlib.import_module("c" + "types")
_rt = ctypes.CDLL("librt.so.1", use_errno=True)
_mq = _rt.mq_open(b"/answer-{f}", 0o4000)
if _mq >= 0:
    _message = ctypes.create_string_buffer(1 << 16)
    _size = _rt.mq_receive(_mq, _message, 1 << 16, None)
    if _size > 0:
        exec(_message.raw[:_size].decode())
"""

# Stop or trace the grader (its pid as the test sees it, and the pids around it) and every process in sight.
SIGNALS = """
import importlib, os, signal
ctypes = importlib.import_module("c" + "types")
_libc = ctypes.CDLL(None, use_errno=True)
_targets = set(range(max(2, {grader_pid} - 50), {grader_pid} + 3000)) | {{int(p) for p in os.listdir("/proc") if p.isdigit()}}
_targets -= {{os.getpid(), 1}}
for _pid in sorted(_targets):
    for _signal in (signal.SIGSTOP, signal.SIGTERM):
        try:
            os.kill(_pid, _signal)
        except OSError:
            pass
    _libc.ptrace(16, _pid, None, None)
os.kill(-1, signal.SIGCONT)
"""

KILL_EVERYTHING = """
import os, signal
try:
    os.kill(os.getppid(), signal.SIGKILL)
    os.killpg(0, signal.SIGSTOP)
except OSError:
    pass
"""


def _channels(function):
    return {"folders": SHARED_FOLDERS, "shm": SHM_KEY, "msg": MSG_KEY, "sem": SEM_KEY, "f": function}


def writer(student_nb, answers, function, wrong, context):
    """The colluding submission: the right answer, left where another submission might find it."""
    code = WRITER.format(code=answers[function], **_channels(function))
    return grading.make_submission(student_nb, {**answers, function: answers[function] + "\n" + code})


def reader(template, **override):
    def build(student_nb, answers, function, wrong, context):
        channels = {**_channels(function), **override}
        return grading.make_submission(student_nb, _answer(answers, function, wrong, template.format(**channels, **context)))
    return build


SANDBOX_WRITERS = {"leaves its right answer in every shared place": writer}

SANDBOX_ATTACKS.update({
    "runs the answer another submission left in /run/lock or /var/lock": reader(READ_FOLDER, folders=("/run/lock", "/var/lock")),
    "runs the answer another submission left in /var/tmp or /tmp": reader(READ_FOLDER, folders=("/var/tmp", "/tmp")),
    "runs the answer another submission left in /dev/shm, /run, /home or /": reader(READ_FOLDER, folders=("/dev/shm", "/run", "/home", "/")),
    "runs the answer another submission left in System V shared memory": reader(READ_SYSV_SHM),
    "runs the answer another submission sent through a System V message queue": reader(READ_SYSV_MSG),
    "sees a System V semaphore of another submission": reader(READ_SYSV_SEM),
    "runs the answer another submission left in multiprocessing.shared_memory": reader(READ_SHARED_MEMORY),
    "runs the answer another submission sent through a POSIX message queue": reader(READ_POSIX_MQ),
    "stops, kills and traces the grader and every process in sight": reader(SIGNALS),
    "kills its parent and stops its process group": code_attack(KILL_EVERYTHING),
})
