"""The test cells' process: runs the tests, never the student's code.

The grading command starts one clean process that has torch loaded (`serve`); it forks a process for each test
cell, which isolates itself under the submission's test user before it reads anything of the submission
(`enter_sandbox`) and is then sent the cell. Here the graded names are proxies: calling one sends the arguments to
the student's kernel (through the grader), runs the student's function there, and brings back data only (see
`wire`). Every expected value is computed here, every comparison is made here, and a test's outcome is what
happens here, whatever the student's process prints or displays.

A call may change in its arguments only what its task says (`contract`: a module's buffers, its
parameters' gradients, its layers); those changes are made here too, so tests that look at them after the
call work as they do in one kernel. Any other change fails the test, and the test's objects keep what they
held before the call.
Results that need a gradient get one: their backward pass runs in the student's process again.
"""

import ast
import base64
import builtins
import contextlib
import enum
import io
import json
import os
import socketserver
import struct
import sys
import tempfile
import traceback

import cloudpickle
import torch

from .. import checks, i18n
from . import contract, kernel_launcher, kernel_source, student_side, wire
from .lifetime import die_with_parent
from .no_exec import refuse_new_programs

TEST_MODULE = "__batchcourse_test__"
REFUSED_EXCEPTIONS = (StopIteration, StopAsyncIteration, GeneratorExit, KeyboardInterrupt, SystemExit)


class StudentCodeError(RuntimeError):
    """The student's process could not answer (it died, timed out, or sent something unreadable)."""


# ----------------------------------------------------------------------------------------
# Proxies.

class RemoteCallable(wire.Handle):
    """A graded name, or something the student's process holds, seen from here."""

    def __init__(self, remote, target, label, info=None):
        object.__setattr__(self, "_remote", remote)
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_label", label)
        object.__setattr__(self, "_info", info or {})

    def __call__(self, *args, **kwargs):
        return self._remote.call(self._target, self._label, args, kwargs)

    def __reduce__(self):
        kind, key = self._target
        return (student_side.lookup_name, (key,)) if kind == "name" else (student_side.lookup_handle, (key,))

    def __repr__(self):
        return f"<{self._label} in the student's notebook>"


class RemoteObject(RemoteCallable):
    """An object of a class the student wrote (or a function the student returned): used through its handle."""

    def __iter__(self):
        items = self._remote.call(self._target, f"list({self._label})", (), {}, call=False, iterate=True)
        return iter(items if isinstance(items, list) else [])

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._remote.call(self._target, f"{self._label}.{name}", (), {}, getattr_name=name, call=False)

    def __setattr__(self, name, value):
        self._remote.call(self._target, f"{self._label}.{name} = ...", (value,), {}, setattr_name=name)


class _FromStudent(torch.autograd.Function):
    """Ties the results of a call to its tensor arguments; the backward pass runs in the student's process."""

    @staticmethod
    def forward(ctx, link, anchor, *tensors):
        ctx.link = link
        return tuple(value.detach().clone() for value in tensors[link["inputs"]:])

    @staticmethod
    def backward(ctx, *grads):
        link = ctx.link
        input_grads = link["remote"].backward(link, grads)
        return (None, None, *input_grads, *([None] * len(grads)))


# ----------------------------------------------------------------------------------------
# Keeping the arguments here in step with the student's copies.

class ChangedArgumentError(AssertionError):
    """A graded call changed one of its arguments in a way its task does not allow."""


def same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal shape, dtype and bits (NaNs and signed zeros included): the copy came back as it went."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    a, b = a.detach().reshape(-1), b.detach().reshape(-1)
    if a.dtype != torch.bool and a.numel():
        a, b = a.view(torch.uint8), b.view(torch.uint8)
    return torch.equal(a, b)


def module_settings(module):
    if wire.is_listed(type(module)) and not wire.built_from_members(type(module)):
        return wire.constructor_arguments(module)
    return wire.plain_attributes(module)


def same_settings(a, b) -> bool:
    """Equal plain settings; a transform or module inside (a Compose's steps) compared by its own settings."""
    if type(a) is not type(b):
        return False
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same_settings(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return a.keys() == b.keys() and all(same_settings(a[k], b[k]) for k in a)
    if wire.is_listed(type(a)) and not isinstance(a, (type, enum.Enum)):
        return same_settings(module_settings(a), module_settings(b))
    return a == b or (a != a and b != b)


def reconcile(target, fresh, allowed: set[str], path: str, changes: list[str]) -> None:
    """Bring into `target` the changes of `fresh` that `allowed` names (see `contract`); list the others in
    `changes` and leave them out, so `target` keeps what it held."""
    if isinstance(fresh, wire.Handle):
        if isinstance(target, (torch.Tensor, torch.nn.Module)):  # it went as data and came back with code on it
            changes.append(f"{path} itself (an attribute, hook or method was attached to it)")
        return
    if isinstance(target, torch.Tensor):
        if not isinstance(fresh, torch.Tensor) or not same_tensor(target, fresh):
            changes.append(f"the values of {path}")
        return
    if not isinstance(target, torch.nn.Module):
        return
    if type(fresh) is not type(target):
        changes.append(f"{path} itself")
        return
    if target.training != fresh.training:
        changes.append(f"the mode of {path} (train or eval)")
    if wire.is_listed(type(target)):
        if not same_settings(module_settings(target), module_settings(fresh)):
            changes.append(f"the settings of {path}")
    else:
        # A class the tests defined: its plain attributes are the test's own records (the batch sizes a
        # forward saw, say), taken back as they are.
        for name, value in (wire.plain_attributes(fresh) or {}).items():
            object.__setattr__(target, name, value)
    _reconcile_parameters(target, fresh, allowed, path, changes)
    _reconcile_buffers(target, fresh, allowed, path, changes)
    _reconcile_children(target, fresh, allowed, path, changes)


def _reconcile_parameters(target, fresh, allowed, path, changes) -> None:
    for name in dict.fromkeys([*target._parameters, *fresh._parameters]):
        old, new = target._parameters.get(name), fresh._parameters.get(name)
        if old is None or new is None:
            if (old is None) != (new is None):
                changes.append(f"{path}.{name}")
            continue
        if not same_tensor(old, new):
            changes.append(f"the values of {path}.{name}")
        elif old.requires_grad != new.requires_grad:
            changes.append(f"whether {path}.{name} requires grad")
        elif contract.GRADIENTS in allowed:
            with contextlib.suppress(RuntimeError, TypeError):
                old.grad = new.grad


def _reconcile_buffers(target, fresh, allowed, path, changes) -> None:
    for name in dict.fromkeys([*target._buffers, *fresh._buffers]):
        old, new = target._buffers.get(name), fresh._buffers.get(name)
        if (old is None and new is None) or (old is not None and new is not None and same_tensor(old, new)):
            continue
        if contract.BUFFERS not in allowed:
            changes.append(f"the values of {path}.{name}")
        elif old is not None and new is not None and old.shape == new.shape and old.dtype == new.dtype:
            with torch.no_grad():
                old.copy_(new)
        else:
            target._buffers[name] = new


def _reconcile_children(target, fresh, allowed, path, changes) -> None:
    same_layers = list(target._modules) == list(fresh._modules) and all(
        type(target._modules[n]) is type(fresh._modules[n]) for n in target._modules)
    if not same_layers and contract.CHILDREN not in allowed:
        changes.append(f"the layers of {path}")
        return
    layers = {}
    for name, new in fresh._modules.items():
        old = target._modules.get(name)
        if old is not None and new is not None and type(old) is type(new):
            reconcile(old, new, allowed, f"{path}.{name}", changes)
            layers[name] = old
        else:
            layers[name] = new
    if not same_layers:
        target._modules.clear()
        target._modules.update(layers)


def replace_identical(value, replacements: dict):
    """`value` with the tensors in `replacements` (by identity) swapped for their new versions."""
    if id(value) in replacements:
        return replacements[id(value)]
    if type(value) in (list, tuple):
        return type(value)(replace_identical(v, replacements) for v in value)
    if type(value) is dict:
        return {k: replace_identical(v, replacements) for k, v in value.items()}
    return value


class _Pickler(cloudpickle.Pickler):
    """Pickles a call's arguments; tensors in the middle of a graph cross as leaves."""

    def reducer_override(self, obj):
        if type(obj) is torch.Tensor and not obj.is_leaf:
            return _leaf, (obj.detach(), obj.requires_grad)
        return super().reducer_override(obj)


def _leaf(tensor, requires_grad):
    return tensor.requires_grad_(requires_grad)


def dumps(value) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=5).dump(value)
    return buffer.getvalue()


# ----------------------------------------------------------------------------------------
# The session with the student's process.

class Remote:
    def __init__(self, channel, sources: dict[str, str]):
        self.channel, self.sources = channel, sources
        self.handles: dict[int, RemoteObject] = {}
        self.forbidding: list[tuple[tuple[str, ...], str]] = []
        self.recording: dict[str, int] | None = None
        self.replacements: dict = {}

    def reset(self) -> None:
        self.handles.clear()
        self._send({"op": "reset"})

    def _send(self, request: dict) -> bytes:
        return self.channel.ask(dumps(request))

    def _handle(self, number, info):
        number = int(number)
        if number not in self.handles:
            info = info if isinstance(info, dict) else {}
            self.handles[number] = RemoteObject(self, ("handle", number), str(info.get("name", "object"))[:80], info)
        return self.handles[number]

    @staticmethod
    def _test_class(token):
        from cloudpickle import cloudpickle as internals

        kind = internals._DYNAMIC_CLASS_TRACKER_BY_ID.get(str(token))
        if kind is None:
            raise wire.WireError("a class the tests did not define")
        return kind

    def _ops(self) -> list[str]:
        routines = {r for group, _ in self.forbidding for r in group}
        return sorted(set().union(*(checks.ROUTINES[r] for r in routines if r in checks.ROUTINES)))

    def _no_autograd(self) -> bool:
        return any(checks.AUTOGRAD in group for group, _ in self.forbidding)

    def _read(self, data: bytes, shipped=()) -> tuple[wire.Reader, dict]:
        try:
            reader = wire.Reader(data, shipped, self._test_class, self._handle)
            if not isinstance(reader.tree, dict):
                raise wire.WireError("the reply is not a dict")
            return reader, reader.tree
        except (wire.WireError, ValueError, TypeError, KeyError, IndexError, struct.error) as error:
            raise StudentCodeError(f"the notebook's kernel sent an unreadable reply ({error})") from None

    def _check_reply(self, tree: dict, label: str) -> None:
        hits = tree.get("hits") or []
        if hits and self.forbidding:
            routines, what = self.forbidding[-1]
            raise checks.ForbiddenRoutineError(
                f"{what} called torch's own {' or '.join(routines)} ({str(hits[0])[:80]}); this function must be "
                "written from scratch with basic tensor operations.")
        if self.recording is not None:
            for name, count in (tree.get("counts") or {}).items():
                if name in self.recording and isinstance(count, int):
                    self.recording[name] += count
        error = tree.get("error")
        if isinstance(error, dict):
            raise_student_error(error, label)

    def call(self, target, label, args, kwargs, getattr_name=None, call=True, setattr_name=None, iterate=False):
        if target[0] == "name" and self.forbidding:
            found = static_forbidden(self.sources, target[1], self.forbidding[-1][0])
            if found:
                raise checks.ForbiddenRoutineError(
                    f"{self.forbidding[-1][1]} uses torch's own {found}; this function must be written from scratch "
                    "with basic tensor operations.")
        shipped, top = wire.shipped_objects((args, kwargs))
        request = {"op": "call", "target": list(target), "args": args, "kwargs": kwargs,
                   "grads": [s.grad if isinstance(s, torch.Tensor) and s.is_leaf else None for s in shipped],
                   "forbidden": self._ops(), "no_autograd": self._no_autograd(), "rng": torch.get_rng_state(), "record": {n: self.replacements.get(n) for n in self.recording or {}},
                   "getattr": getattr_name, "setattr": setattr_name, "call": call, "iterate": iterate}
        reader, tree = self._read(self._send(request), shipped)
        self._check_reply(tree, label)
        try:
            result = reader.read(tree.get("result"))
            mirror = [reader.read(node) for node in tree.get("mirror", [])]
        except (wire.WireError, ValueError, TypeError, KeyError, IndexError) as error:
            raise StudentCodeError(f"{label} returned something that cannot be checked: {error}") from None
        self._take_back(target, label, args, kwargs, shipped, top, mirror)
        self._follow_rng(reader, tree.get("rng"))
        if reader.graph_outputs and "call" in tree:
            result = self._attach_graph(result, reader.graph_outputs, shipped, tree["call"])
        return result

    @staticmethod
    def _take_back(target, label, args, kwargs, shipped, top, mirror) -> None:
        """Bring back the changes the task allows; fail the test for any other."""
        if len(mirror) != len(top):
            raise StudentCodeError(f"{label} sent back its arguments in a form that cannot be checked")
        function = target[1] if target[0] == "name" else ""
        names = contract.argument_names(function, len(args), kwargs)
        changes: list[str] = []
        for index, owner, fresh in zip(top, wire.top_owners(args, kwargs), mirror):
            name = names[owner] if isinstance(owner, int) else str(owner)
            reconcile(shipped[index], fresh, contract.allowed_changes(function, name), name, changes)
        if changes:
            listed = ", ".join(dict.fromkeys(changes[:3]))
            raise ChangedArgumentError(f"{label} changed {listed} in place, which its task does not allow: work on "
                                       "a copy and leave every argument as it was given.")

    @staticmethod
    def _follow_rng(reader, node) -> None:
        """The global random generator moves as the student's function moved it in the kernel."""
        with contextlib.suppress(wire.WireError, ValueError, TypeError, KeyError, IndexError, RuntimeError):
            state = reader.read(node)
            if type(state) is torch.Tensor and state.dtype == torch.uint8 and state.shape == torch.get_rng_state().shape:
                torch.set_rng_state(state)

    def _attach_graph(self, result, outputs: dict, shipped: list, number):
        order = sorted(outputs)
        values = [outputs[i] for i in order]
        inputs = [i for i, s in enumerate(shipped) if isinstance(s, torch.Tensor) and s.requires_grad]
        link = {"remote": self, "call": number, "inputs": len(inputs), "input_positions": inputs}
        anchor = torch.zeros((), requires_grad=True)
        for value in values:
            value.requires_grad_(False)
        attached = _FromStudent.apply(link, anchor, *[shipped[i] for i in inputs], *values)
        return replace_identical(result, {id(v): a for v, a in zip(values, attached)})

    def backward(self, link, grads) -> list:
        request = {"op": "backward", "call": link["call"], "forbidden": self._ops(), "no_autograd": self._no_autograd(),
                   "grads": [g.detach() if isinstance(g, torch.Tensor) else None for g in grads]}
        reader, tree = self._read(self._send(request))
        self._check_reply(tree, "the backward pass")
        try:
            values = reader.read(tree.get("grads"))
        except (wire.WireError, ValueError, TypeError, KeyError, IndexError) as error:
            raise StudentCodeError(f"the backward pass sent gradients that cannot be used: {error}") from None
        values = values if isinstance(values, list) else []
        return [values[i] if i < len(values) and type(values[i]) is torch.Tensor else None
                for i in link["input_positions"]]


def raise_student_error(error: dict, label: str):
    name = str(error.get("builtin", "Exception"))
    kind = getattr(builtins, name, Exception)
    if not (isinstance(kind, type) and issubclass(kind, BaseException)) or issubclass(kind, REFUSED_EXCEPTIONS):
        kind = RuntimeError
    message = str(error.get("message", ""))[:2000]
    if str(error.get("type")) != kind.__name__:
        message = f"{str(error.get('type'))[:80]}: {message}"
    raise kind(message)


# ----------------------------------------------------------------------------------------
# The from-scratch rule, read from the source as well.

FORBIDDEN_ATTRIBUTES = {
    "conv2d": {"conv2d", "Conv2d", "convolution", "_convolution", "_conv_forward", "im2col", "Unfold",
               "mkldnn_convolution", "thnn_conv2d", "_slow_conv2d_forward", "conv_transpose2d", "LazyConv2d"},
    "batch_norm": {"batch_norm", "native_batch_norm", "_native_batch_norm_legit", "BatchNorm1d", "BatchNorm2d",
                   "BatchNorm3d", "_BatchNorm", "_NormBase", "LazyBatchNorm2d", "instance_norm", "InstanceNorm2d",
                   "batch_norm_elemt", "batch_norm_stats", "_batch_norm_impl_index", "SyncBatchNorm"},
}
FORBIDDEN_ATTRIBUTES["conv2d"] |= {"conv1d", "conv3d", "conv_transpose1d", "conv_transpose3d", "convolution_backward",
                                   "Conv1d", "Conv3d", "ConvTranspose2d", "conv_tbc"}
FORBIDDEN_ATTRIBUTES["autograd"] = {"backward", "autograd", "vjp", "jvp", "jacrev", "jacfwd", "jacobian", "hessian",
                                    "enable_grad", "set_grad_enabled", "_ImperativeEngine", "_execution_engine"}
FORBIDDEN_ATTRIBUTES["normalization"] = FORBIDDEN_ATTRIBUTES["batch_norm"] | {
    "group_norm", "native_group_norm", "GroupNorm", "layer_norm", "native_layer_norm", "LayerNorm", "rms_norm",
    "RMSNorm", "InstanceNorm1d", "InstanceNorm3d", "LocalResponseNorm"}
DYNAMIC_CALLS = {"eval", "exec", "compile", "__import__", "getattr"}
DYNAMIC_ATTRIBUTES = {"import_module", "ops", "__getattribute__", "__getattr__", "__dict__", "_C"}


def _defining_source(sources: dict[str, str], name: str) -> str | None:
    for source in sources.values():
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        if any(isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name for n in tree.body):
            return source
    return None


def static_forbidden(sources: dict[str, str], name: str, routines) -> str | None:
    """The first use of a forbidden torch routine in the cell that defines `name`, or None."""
    source = _defining_source(sources, name)
    if source is None:
        return None
    names = set().union(*(FORBIDDEN_ATTRIBUTES.get(r, set()) for r in routines))
    if not names:
        return None
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and (node.attr in names or node.attr in DYNAMIC_ATTRIBUTES):
            return f"{node.attr} (line {node.lineno})"
        if isinstance(node, ast.Attribute) and node.attr == "unfold" and isinstance(node.value, (ast.Name, ast.Attribute)) \
                and (getattr(node.value, "id", None) == "F" or getattr(node.value, "attr", None) == "functional"):
            return f"unfold (line {node.lineno})"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in DYNAMIC_CALLS \
                and (node.func.id != "getattr" or _suspicious_getattr(node, names)):
            return f"{node.func.id}() (line {node.lineno})"
        if isinstance(node, ast.ImportFrom) and any(a.name in names | DYNAMIC_ATTRIBUTES for a in node.names):
            found = next(a.name for a in node.names if a.name in names | DYNAMIC_ATTRIBUTES)
            return f"{node.module}.{found} (line {node.lineno})"
    return None


TORCH_ROOTS = {"torch", "F", "nn", "functional", "aten", "_C", "_VariableFunctions"}


def _suspicious_getattr(call: ast.Call, names: set[str]) -> bool:
    """getattr of a forbidden routine's name, or of a computed name on torch or one of its modules."""
    if len(call.args) < 2:
        return False
    name = call.args[1]
    if isinstance(name, ast.Constant):
        return name.value in names | {"unfold"}
    root = call.args[0]
    while isinstance(root, ast.Attribute):
        if root.attr in TORCH_ROOTS:
            return True
        root = root.value
    return isinstance(root, ast.Name) and root.id in TORCH_ROOTS


# ----------------------------------------------------------------------------------------
# Running test cells.

class Channel:
    """Length-free JSON lines to the grader: requests out, replies in (payloads in base64)."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    def send(self, message: dict) -> None:
        self.writer.write(json.dumps(message) + "\n")
        self.writer.flush()

    def receive(self) -> dict:
        line = self.reader.readline()
        if not line:
            raise EOFError("the grader closed the channel")
        return json.loads(line)

    def ask(self, payload: bytes) -> bytes:
        self.send({"op": "call", "payload": base64.b64encode(payload).decode("ascii")})
        reply = self.receive()
        if reply.get("error"):
            raise StudentCodeError(reply["error"])
        return base64.b64decode(reply["payload"])


def error_output(error: BaseException) -> dict:
    ename = type(error).__name__
    evalue = i18n.translate(str(error))
    lines = [f"{ename}: {evalue}"]
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == "<test cell>"]
    if frames:
        lines.insert(0, f"line {frames[-1].lineno} of the test: {frames[-1].line}")
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": lines}


def imports_of(source: str) -> str:
    """Only the import statements of the set-up cell: names the tests may rely on, without its work."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ""
    return "\n".join(ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)))


def run_cell(source: str, namespace: dict, remote: Remote, graded: list[str]) -> list[dict]:
    remote.reset()
    for name in graded:
        namespace[name] = RemoteCallable(remote, ("name", name), name)
    printed = io.StringIO()
    outputs = []
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        try:
            exec(compile(source, "<test cell>", "exec"), namespace)
            error = None
        except BaseException as caught:  # noqa: BLE001 - the test's outcome, whatever it is
            if isinstance(caught, (KeyboardInterrupt, SystemExit)):
                raise
            error = caught
    if printed.getvalue():
        outputs.append({"output_type": "stream", "name": "stdout", "text": i18n.translate_lines(printed.getvalue()[:100_000])})
    if error is not None:
        outputs.insert(0, error_output(error))
    return outputs


def enter_sandbox(settings: dict | None) -> None:
    """Isolate this test cell's process before it takes any of the submission's data, as the kernel is isolated
    (kernel_launcher.py): mount, PID, network and IPC namespaces of its own (whatever it starts ends with it), the
    course, homes and shared folders hidden, the Python environment and the course package read-only, the
    submission's test user (`settings["uid"]`), limits on memory, processes and time, and no capability left.
    Without settings (grading without a sandbox) it stays as it was forked."""
    if not settings:
        return
    mode, uid = settings["mode"], settings["uid"]
    kernel_source.enter_new_namespaces(mode, settings["seconds"])
    kernel_launcher.isolate_files(None)
    home = kernel_launcher.private_home(uid, mode)
    kernel_launcher.set_limits(settings["memory_mb"], settings["max_processes"], contained=False)
    kernel_launcher.drop_privileges(uid, mode)
    kernel_source.drop_capabilities()
    os.chdir(home)
    os.environ.update(HOME=str(home), TMPDIR=str(home), MPLCONFIGDIR=str(home / ".matplotlib"))
    tempfile.tempdir = None


def session(reader, writer) -> None:
    """One test cell: set up, run, report; `reader` and `writer` are the grader's end of the connection."""
    channel = Channel(reader, writer)
    setup = channel.receive()
    enter_sandbox(setup.get("sandbox"))
    i18n.set_language(setup.get("lang", "en"))  # the submission's language: the test's hints in it
    remote = Remote(channel, setup.get("sources", {}))
    checks.use_remote(remote)
    namespace = {"__name__": TEST_MODULE, "__builtins__": builtins}
    with contextlib.suppress(Exception):
        exec(compile(imports_of(setup.get("setup", "")), "<set-up>", "exec"), namespace)
    message = channel.receive()
    if message.get("op") == "run":
        outputs = run_cell(message["source"], namespace, remote, list(setup.get("graded", [])))
        channel.send({"op": "done", "outputs": outputs})


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        session(io.TextIOWrapper(self.rfile, encoding="utf-8"), io.TextIOWrapper(self.wfile, encoding="utf-8"))


class _Server(socketserver.ForkingMixIn, socketserver.UnixStreamServer):
    """Each connection is one test cell, run in a process forked for it from this clean one."""

    block_on_close = False

    def finish_request(self, request, client_address):
        die_with_parent(self.pid)
        super().finish_request(request, client_address)


def serve(socket_path: str) -> None:
    """Load torch and the checks once, then fork a fresh process for every test cell the grader sends."""
    import torch.nn.functional  # noqa: F401 - loaded before forking, so that each test starts at once
    import torch.utils.data  # noqa: F401
    import torchvision.transforms  # noqa: F401
    import torchvision.transforms.v2  # noqa: F401

    from .. import data, models, paths, plotting  # noqa: F401

    sys.stdout = sys.stderr
    if not refuse_new_programs():
        print("note: this machine cannot refuse new programs to the test process (seccomp)", file=sys.stderr)
    with _Server(socket_path, _Handler) as server:
        server.pid = os.getpid()
        print("ready", file=sys.stderr, flush=True)
        server.serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1])
