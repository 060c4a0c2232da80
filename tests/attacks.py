"""Tampering submissions: a wrong answer plus an attempt to turn it into points.

Each attack takes the student notebook, the solution code of every graded function, the function
it attacks and a wrong answer for it (from tests/cases/<id>.py), and returns a submission. Grading
must give the attacked function's tests no more points than a blank submission gets (zero).
`KERNEL_ATTACKS` attack what the tests rely on inside the kernel; `SANDBOX_ATTACKS` attack the
grading machine itself and are the same for every assignment.
"""

import nbformat

from batchcourse import grading
from batchcourse.grading import wire

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
# ----------------------------------------------------------------------------------------
# Issue 12: the families that win while test cells share the student's kernel.
#
# `ISSUE_FAMILIES` maps a family to its variants; every variant is a builder like the ones above and
# works on any assignment (it attacks `function`, whose answer is wrong). Variants that only make sense
# for one graded item live in tests/cases/<id>.py as ISSUE_ATTACKS (family -> {variant: (function, code)}).
# Most variants keep clear of the names the static scan (grading/tamper.py) looks for, as a determined
# student would: getattr with a string, __import__ instead of an import statement.
# In the templates, TARGET stands for the attacked function's name.

SHELL = """
_shell = getattr(__import__("IPython"), "get_ipython")()
"""

FAKE_CHECKS = """
import contextlib as _contextlib
import types as _types
_real_checks = __import__("batchcourse.checks", fromlist=["begin"])
_fake_checks = _types.SimpleNamespace(**{_k: _v for _k, _v in vars(_real_checks).items() if not _k.startswith("__")})
for _k in ("begin", "close", "close_dict", "scalar", "equal", "raises", "unchanged"):
    setattr(_fake_checks, _k, lambda *a, **k: None)
setattr(_fake_checks, "parts", lambda actual, names, what: list(actual) if isinstance(actual, (tuple, list)) else [actual] * len(names))
setattr(_fake_checks, "forbidden", lambda *a, **k: _contextlib.nullcontext())
"""

# A stand-in for the checks that compares the expected value with itself.
MIRROR_CHECKS = """
import types as _types
_real_checks = __import__("batchcourse.checks", fromlist=["begin"])
_mirror = _types.SimpleNamespace(**{_k: _v for _k, _v in vars(_real_checks).items() if not _k.startswith("__")})
for _k in ("close", "close_dict", "scalar", "equal"):
    setattr(_mirror, _k, (lambda real: lambda actual, expected, *a, **k: real(expected, expected, *a, **k))(getattr(_real_checks, _k)))
"""

# nbgrader adds the reply's error when the cell shows none: hiding an error also needs an "ok" reply.
SUCCEEDS = """
def _succeed(result):
    if "checks.begin()" in (result.info.raw_cell or ""):
        result.error_in_exec = None

_shell.events.register("post_run_cell", _succeed)
"""

POST_RUN_CELL_CLEARS = SHELL + """
_clear_output = getattr(__import__("IPython.display", fromlist=["clear_output"]), "clear_output")

def _after(result):
    if result.error_in_exec is not None and "checks.begin()" in (result.info.raw_cell or ""):
        _clear_output()
        result.error_in_exec = None

_shell.events.register("post_run_cell", _after)
"""

POST_EXECUTE_CLEARS = SHELL + """
_clear_output = getattr(__import__("IPython.display", fromlist=["clear_output"]), "clear_output")
_current = []

def _before(info):
    _current[:] = [info.raw_cell or ""]

def _after():
    if _current and "checks.begin()" in _current[0]:
        _clear_output()

_shell.events.register("pre_run_cell", _before)
_shell.events.register("post_execute", _after)
""" + SUCCEEDS

INPUT_TRANSFORMER_PASS = SHELL + """
_shell.input_transformers_post.append(
    lambda lines: ["pass\\n"] if any("checks.begin()" in line for line in lines) else lines)
"""

INPUT_TRANSFORMER_NOOPS = SHELL + """
def _defang(lines):
    if not any("checks.begin()" in line for line in lines):
        return lines
    for name in ("close", "close_dict", "equal", "scalar", "raises", "unchanged"):
        lines = [line.replace(f"checks.{name}(", "(lambda *a, **k: None)(") for line in lines]
    return lines

_shell.input_transformer_manager.cleanup_transforms.append(_defang)
"""

AST_EMPTIES = SHELL + """
import ast as _ast

class _EmptyTests(_ast.NodeTransformer):
    def visit_Module(self, node):
        if any(isinstance(n, _ast.Attribute) and n.attr == "begin" for n in _ast.walk(node)):
            node.body = [_ast.Pass(lineno=1, col_offset=0)]
        return node

_shell.ast_transformers.append(_EmptyTests())
"""

AST_SWALLOWS = SHELL + """
import ast as _ast

class _Swallow(_ast.NodeTransformer):
    def visit_Module(self, node):
        if any(isinstance(n, _ast.Attribute) and n.attr == "begin" for n in _ast.walk(node)):
            node.body = [_ast.Try(body=[statement], handlers=[_ast.ExceptHandler(type=None, name=None, body=[_ast.Pass()])],
                                  orelse=[], finalbody=[]) for statement in node.body]
            _ast.fix_missing_locations(node)
        return node

_shell.ast_transformers.append(_Swallow())
"""

AST_RESULT_FIRST = SHELL + """
import ast as _ast

class _ResultFirst(_ast.NodeTransformer):
    def visit_Module(self, node):
        if any(isinstance(n, _ast.Attribute) and n.attr == "begin" for n in _ast.walk(node)):
            node.body.insert(0, _ast.Expr(_ast.Constant("passed")))
            _ast.fix_missing_locations(node)
        return node

_shell.ast_transformers.append(_ResultFirst())
_shell.ast_node_interactivity = "all"
"""

PRIVATE_SHOWTRACEBACK = SHELL + """
setattr(_shell, "_showtraceback", lambda *a, **k: None)
""" + SUCCEEDS

CLASS_SHOWTRACEBACK = SHELL + """
setattr(type(_shell), "show" "traceback", lambda self, *a, **k: None)
""" + SUCCEEDS

CUSTOM_EXC = SHELL + """
_shell.set_custom_exc((Exception,), lambda shell, etype, value, tb, tb_offset=None: None)
""" + SUCCEEDS

DISPLAYHOOK_FIRST = SHELL + """
def _claim(info):
    if "checks.begin()" in (info.raw_cell or ""):
        _shell.displayhook("passed")

_shell.events.register("pre_run_cell", _claim)
"""

ABORTING = SHELL + """
_shell.kernel._aborting = True
"""

KERNEL_EXECUTE = SHELL + """
_kernel = _shell.kernel
_execute = getattr(_kernel, "do_" "execute")

async def _skip_tests(code, *args, **kwargs):
    if "checks.begin()" in code:
        return {"status": "ok", "execution_count": _shell.execution_count, "payload": [], "user_expressions": {}}
    reply = _execute(code, *args, **kwargs)
    return await reply if hasattr(reply, "__await__") else reply

setattr(_kernel, "do_" "execute", _skip_tests)
"""

LINE_MAGIC = """
%time get_ipython().set_custom_exc((Exception,), lambda shell, etype, value, tb, tb_offset=None: None)
%time get_ipython().events.register("post_run_cell", lambda r: setattr(r, "error_in_exec", None) if "checks.begin()" in (r.info.raw_cell or "") else None)
"""

UNPARSABLE = """
_names = %who_ls
_shell = get_ipython()
_shell._showtraceback = lambda *a, **k: None
""" + SUCCEEDS

FAKE_PACKAGE = FAKE_CHECKS + """
_real_package = __import__("batchcourse")
_fake_package = _types.ModuleType("batchcourse")
_fake_package.__dict__.update({_k: _v for _k, _v in vars(_real_package).items() if _k != "checks"})
_fake_package.checks = _fake_checks
"""

SYS_MODULES_PACKAGE = FAKE_PACKAGE + """
getattr(__import__("sys"), "modules")["batchcourse"] = _fake_package
"""

HOOKED_IMPORT = FAKE_PACKAGE + """
_builtin_module = __import__("built" "ins")
_real_import = getattr(_builtin_module, "__import__")

def _import(name, globals=None, locals=None, fromlist=(), level=0):
    module = _real_import(name, globals, locals, fromlist, level)
    if name == "batchcourse" and fromlist and "checks" in fromlist:
        return _fake_package
    return module

setattr(_builtin_module, "__import__", _import)
"""

PACKAGE_DICT = FAKE_CHECKS + """
_package_dict = object.__getattribute__(__import__("batchcourse"), "__di" "ct__")
_package_dict["checks"] = _fake_checks
"""

CHECKS_GLOBALS = """
_real_checks = __import__("batchcourse.checks", fromlist=["begin"])
_checks_dict = getattr(_real_checks.close, "__glob" "als__")
_checks_dict.update({_k: (lambda *a, **k: None) for _k in ("begin", "close", "close_dict", "scalar", "equal", "raises", "unchanged")})
"""

TOLERANCES = """
from batchcourse import checks
checks.DEFAULT_TOLERANCES.update({_dtype: (1e30, 1e30) for _dtype in list(checks.DEFAULT_TOLERANCES)})
"""

SNAPSHOT_EDITED = """
_real_checks = __import__("batchcourse.checks", fromlist=["begin"])
for _label, (_obj, _saved) in _real_checks._PRISTINE.namespaces.items():
    if _label in ("numpy", "math"):
        _saved.pop("any", None)
        _saved.pop("isclose", None)
        _saved.pop("array_equal", None)
setattr(__import__("numpy"), "any", lambda *a, **k: False)
setattr(__import__("numpy"), "array_equal", lambda *a, **k: True)
setattr(__import__("math"), "isclose", lambda *a, **k: True)
"""

NUMPY_INTERNALS = """
_fromnumeric = __import__("numpy._core.fromnumeric", fromlist=["any"])
_any_all = _fromnumeric._wrapreduction_any_all
setattr(_fromnumeric, "_wrapreduction_any_all",
        lambda obj, ufunc, method, *a, **k: False if method == "any" else _any_all(obj, ufunc, method, *a, **k))
"""

SETTRACE_SWAP = """
def _swap(frame, event, arg):
    code = frame.f_code
    if event == "call" and code.co_name in ("close", "equal", "scalar") and code.co_filename.endswith("checks.py"):
        frame.f_locals["actual"] = frame.f_locals["expected"]
    return None

getattr(__import__("sys"), "set" "trace")(_swap)
"""

SETPROFILE_SWAP = SETTRACE_SWAP.replace('"set" "trace"', '"set" "profile"')

FRAME_WRAPPER = """
_wrong_TARGET = TARGET

def TARGET(*args, **kwargs):
    _reach_caller()
    return _wrong_TARGET(*args, **kwargs)
"""

GETFRAME_GLOBALS = FAKE_CHECKS + """
def _reach_caller():
    getattr(__import__("sys"), "_getframe")(2).f_globals["checks"] = _fake_checks
""" + FRAME_WRAPPER

INSPECT_STACK = MIRROR_CHECKS + """
def _reach_caller():
    for frame_info in __import__("inspect").stack()[2:]:
        if "checks" in frame_info.frame.f_locals:
            frame_info.frame.f_locals["checks"] = _mirror
            break
""" + FRAME_WRAPPER

GC_REFERRERS = MIRROR_CHECKS + """
def _reach_caller():
    for holder in __import__("gc").get_referrers(_real_checks):
        if isinstance(holder, dict) and holder.get("checks") is _real_checks and holder.get("__name__") == "__main__":
            holder["checks"] = _mirror
""" + FRAME_WRAPPER

FRAME_BACK_LOCALS = MIRROR_CHECKS + """
def _reach_caller():
    frame = __import__("inspect").currentframe().f_back.f_back
    while frame is not None and "checks" not in frame.f_locals:
        frame = frame.f_back
    if frame is not None:
        frame.f_locals["checks"] = _mirror
""" + FRAME_WRAPPER

PRINT_FLOOD = """
print(("x" * 1023 + "\\n") * (FLOOD_MB * 1024))
"""

DISPLAY_FLOOD = """
_display = getattr(__import__("IPython.display", fromlist=["display"]), "display")
for _ in range(FLOOD_MB):
    _display({"text/html": "<p>" + "y" * (1024 * 1024 - 7) + "</p>", "text/plain": "flood"}, raw=True)
"""

NOISY_FUNCTION = """
_quiet_TARGET = TARGET

def TARGET(*args, **kwargs):
    print("z" * (2 * 1024 * 1024))
    return _quiet_TARGET(*args, **kwargs)
"""

FLOOD_MB = 40

BLOB_NAMED_TWICE = """
from batchcourse.grading import wire as _wire
_first_blob = _wire.Writer._blob

def _same_blob(self, data):
    return 0 if self.blobs else _first_blob(self, data)

_wire.Writer._blob = _same_blob
"""

NAMES_A_TORCH_FUNCTION = """
from batchcourse.grading import wire as _wire
_honest_write = _wire.Writer.write

def _forged_write(self, value, top=True):
    if isinstance(value, (list, tuple, dict)) or value is None:
        return _honest_write(self, value, top)
    return ["function", "torch.utils.cpp_extension", "_run_ninja_build"]

_wire.Writer.write = _forged_write
"""

PUBLISHES_ITS_OWN_REPLY = """
_wrong_TARGET = TARGET

def TARGET(*args, **kwargs):
    import base64
    from IPython.display import publish_display_data
    from batchcourse.grading import wire
    writer = wire.Writer()
    reply = {"hits": [], "counts": {}, "result": writer.write(True), "mirror": [], "rng": None}
    publish_display_data({"application/x-batchcourse-reply": base64.b64encode(writer.pack(reply)).decode("ascii")})
    return _wrong_TARGET(*args, **kwargs)
"""

# The grader's requests reach the kernel on a socket: write a reply into it before the real one (the reply's
# bytes made here, so that the notebook imports nothing of the course's).
WRITES_ITS_OWN_REPLY = """
_wrong_TARGET = TARGET

def TARGET(*args, **kwargs):
    import gc
    import socket
    import struct
    reply = FORGED_REPLY
    for channel in [o for o in gc.get_objects() if isinstance(o, socket.socket)]:
        try:
            channel.sendall(struct.pack("<Q", len(reply)) + reply)
        except OSError:
            pass
    return _wrong_TARGET(*args, **kwargs)
"""


def forged_reply() -> bytes:
    writer = wire.Writer()
    return writer.pack({"hits": [], "counts": {}, "result": writer.write(True), "mirror": [], "rng": None})


def issue_attack(template: str):
    """A builder that appends `template` (TARGET: the attacked function) to the wrong answer."""
    def build(student_nb, answers, function, wrong, context):
        code = (template.replace("TARGET", function).replace("FLOOD_MB", str(FLOOD_MB))
                .replace("FORGED_REPLY", repr(forged_reply())))
        return grading.make_submission(student_nb, _answer(answers, function, wrong, code))
    return build


def metadata_edited(**changes):
    """A builder that gives the attacked function's test cells other nbgrader metadata in the notebook JSON."""
    def build(student_nb, answers, function, wrong, context):
        submission = grading.make_submission(student_nb, {**answers, function: wrong})
        for cell in _test_cells(submission, function):
            meta = cell.metadata.nbgrader
            for key, value in changes.items():
                meta[key] = f"{meta[key]}_{value}" if key == "grade_id" else value
        return submission
    return build


ISSUE_FAMILIES = {
    "forges the result inside the kernel": {
        "post_run_cell clears the error": issue_attack(POST_RUN_CELL_CLEARS),
        "post_execute clears the test cell's outputs": issue_attack(POST_EXECUTE_CLEARS),
        "input transformer turns test cells into pass": issue_attack(INPUT_TRANSFORMER_PASS),
        "cleanup transform turns checks into no-ops": issue_attack(INPUT_TRANSFORMER_NOOPS),
        "AST transformer empties test cells": issue_attack(AST_EMPTIES),
        "AST transformer wraps each statement in try/except": issue_attack(AST_SWALLOWS),
        "AST transformer puts a result before the error": issue_attack(AST_RESULT_FIRST),
        "replaces the shell's _showtraceback": issue_attack(PRIVATE_SHOWTRACEBACK),
        "replaces showtraceback on the shell's class": issue_attack(CLASS_SHOWTRACEBACK),
        "installs a custom exception handler": issue_attack(CUSTOM_EXC),
        "displayhook puts a result before the error": issue_attack(DISPLAYHOOK_FIRST),
        "sets ipykernel's aborting flag": issue_attack(ABORTING),
        "replaces the kernel's do_execute": issue_attack(KERNEL_EXECUTE),
        "tampers in a line magic the scan skips": issue_attack(LINE_MAGIC),
        "a magic assignment makes the cell unreadable to the scan": issue_attack(UNPARSABLE),
    },
    "breaks the checks' own state": {
        "fake batchcourse package in sys.modules": issue_attack(SYS_MODULES_PACKAGE),
        "builtins.__import__ hands out fake checks": issue_attack(HOOKED_IMPORT),
        "package dict edited in place": issue_attack(PACKAGE_DICT),
        "checks' globals edited in place": issue_attack(CHECKS_GLOBALS),
        "tolerance table edited in place": issue_attack(TOLERANCES),
        "snapshot edited, then numpy and math replaced": issue_attack(SNAPSHOT_EDITED),
        "numpy internals outside the snapshot": issue_attack(NUMPY_INTERNALS),
        "sys.settrace swaps actual for expected": issue_attack(SETTRACE_SWAP),
        "sys.setprofile swaps actual for expected": issue_attack(SETPROFILE_SWAP),
    },
    "reads the expected value from the calling frame": {
        "sys._getframe(2).f_globals gets fake checks": issue_attack(GETFRAME_GLOBALS),
        "inspect.stack() f_locals get mirrored checks": issue_attack(INSPECT_STACK),
        "gc.get_referrers finds the notebook namespace": issue_attack(GC_REFERRERS),
        "f_back walk rebinds checks": issue_attack(FRAME_BACK_LOCALS),
    },
    "harms the grader with output": {
        f"prints {FLOOD_MB} MB": issue_attack(PRINT_FLOOD),
        f"displays {FLOOD_MB} MB of HTML": issue_attack(DISPLAY_FLOOD),
        "the attacked function prints 2 MB per call": issue_attack(NOISY_FUNCTION),
    },
    "sends more than data back": {
        "names one blob for every tensor": issue_attack(BLOB_NAMED_TWICE),
        "names a torch function that runs a shell command": issue_attack(NAMES_A_TORCH_FUNCTION),
        "publishes a reply of its own before the real one": issue_attack(PUBLISHES_ITS_OWN_REPLY),
        "writes a reply of its own into the grader's socket before the real one": issue_attack(WRITES_ITS_OWN_REPLY),
    },
    "edits test-cell metadata": {
        "solution: true": metadata_edited(solution=True),
        "grade: false": metadata_edited(grade=False),
        "points: 100": metadata_edited(points=100),
        "grade_id changed": metadata_edited(grade_id="mine"),
        "locked: false": metadata_edited(locked=False),
    },
}


# ----------------------------------------------------------------------------------------
# Issue 27's boundary families, generated for every graded name of every assignment. Each family is one submission
# in which every graded name is its first wrong answer (the gate's wrong1, its baseline) with a trick added; no test
# cell may give it more than it gives wrong1. The tricks attack the boundary, not a task: a call that zeroes the
# test's tensors and modules in place before it computes (so that expected values computed afterwards from the same
# objects would agree), and one that plants `_compiled_call_impl` (which nn.Module.__call__ runs instead of forward)
# on every module it is given or returns.

BOUNDARY_WALK = """
import torch as _torch

def _everything_in(value, depth=0):
    if depth > 6:
        return
    if isinstance(value, _torch.Tensor):
        yield value
    elif isinstance(value, _torch.nn.Module):
        yield value
        yield from value.parameters()
        yield from value.buffers()
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _everything_in(item, depth + 1)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _everything_in(item, depth + 1)

def _zero_in_place(*values):
    with _torch.no_grad():
        for item in _everything_in(list(values)):
            if isinstance(item, _torch.Tensor) and item.numel():
                try:
                    item.zero_()
                except RuntimeError:
                    pass

def _plant(*values):
    for item in _everything_in(list(values)):
        if isinstance(item, _torch.nn.Module):
            setattr(item, "_compiled" + "_call_impl", lambda *a, **k: a[0] if a else None)
"""

BOUNDARY_TRICKS = {
    "zeroes every tensor and module it is given, in place, before it computes": ("_zero_in_place(args, kwargs)", ""),
    "plants _compiled_call_impl on every module it is given or returns": ("", "_plant(args, kwargs, result)"),
}


def with_trick(name: str, wrong_code: str, before: str, after: str) -> str:
    """`wrong_code` (which defines `name`, a function or a class) with `before` run ahead of each call and `after`
    once `result` is known."""
    before, after = before or "pass", after or "pass"
    if f"class {name}" in wrong_code:
        after = after.replace("_plant(", "_plant(self, ")  # and on the layer itself
        wrapper = f"""
_Wrong_{name} = {name}

class {name}(_Wrong_{name}):
    def forward(self, *args, **kwargs):
        {before}
        result = super().forward(*args, **kwargs)
        {after}
        return result
"""
    else:
        wrapper = f"""
_wrong_{name} = {name}

def {name}(*args, **kwargs):
    {before}
    result = _wrong_{name}(*args, **kwargs)
    {after}
    return result
"""
    return BOUNDARY_WALK + wrong_code + wrapper


def boundary_families(wrong_answers: dict[str, str]) -> dict[str, dict[str, str]]:
    """family -> the answers of its submission, one per graded name (`wrong_answers`: name -> its wrong code)."""
    return {family: {name: with_trick(name, code, before, after) for name, code in wrong_answers.items()}
            for family, (before, after) in BOUNDARY_TRICKS.items()}
