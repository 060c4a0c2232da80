"""The student's half of a graded call: runs in the student's kernel, on the grader's request.

The grader sends a request (pickled by the grader: the student's process may read anything the tests
hand to it) and reads back a reply written by `wire`, which carries data only. Nothing here is trusted:
student code can replace any of it, and the grader treats the reply as the student's word.
"""

import contextlib
import socket
import traceback
import warnings

import cloudpickle
import torch

from .. import checks
from . import wire
from .frames import FRAME

FORBIDDEN_KEYS = ("CompositeImplicitAutograd", "CompositeExplicitAutograd", "CPU", "Autograd", "AutogradCPU")


class _Session:
    def __init__(self):
        self.reset()

    def reset(self):
        self.handles: dict[int, object] = {}
        self.handle_ids: dict[int, int] = {}
        self.calls: dict[int, tuple] = {}
        self.numbers = 0

    def handle(self, value) -> list:
        key = id(value)
        if key not in self.handle_ids:
            self.handle_ids[key] = len(self.handles) + 1
            self.handles[self.handle_ids[key]] = value
        kind = type(value)
        return ["handle", self.handle_ids[key], {
            "type": f"{kind.__module__}.{kind.__qualname__}", "callable": callable(value),
            "module": isinstance(value, torch.nn.Module), "name": getattr(value, "__name__", kind.__name__)}]


SESSION = _Session()


def lookup_name(name: str):
    """The object a graded name has in the student's notebook (used when a proxy crosses back)."""
    return _user_namespace()[name]


def lookup_handle(number: int):
    return SESSION.handles[number]


def _user_namespace() -> dict:
    from IPython import get_ipython

    return get_ipython().user_ns


@contextlib.contextmanager
def _forbidden(ops: list[str], hits: list):
    """Make the named aten operators unavailable in every thread of the process while the call runs."""
    if not ops:
        yield
        return

    def refuse(name):
        def kernel(*args, **kwargs):
            hits.append(name)
            raise RuntimeError(f"torch's {name} is not available in this test")
        return kernel

    library = torch.library.Library("aten", "IMPL")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for op in ops:
                for overload in _overloads(op.removeprefix("aten::")):
                    for key in FORBIDDEN_KEYS:
                        with contextlib.suppress(Exception):
                            library.impl(overload, refuse(op), key)
        yield
    finally:
        library._destroy()


def _overloads(name: str) -> list[str]:
    """Every overload of an aten operator (`conv2d` and `conv2d.padding`, the `.out` forms, ...)."""
    packet = getattr(torch.ops.aten, name, None)
    try:
        overloads = packet.overloads() if packet is not None else ["default"]
    except Exception:  # noqa: BLE001 - an operator this build of torch lacks
        overloads = ["default"]
    return [name if o == "default" else f"{name}.{o}" for o in overloads]


@contextlib.contextmanager
def _without_autograd(refuse: bool, hits: list):
    if not refuse:
        yield
        return
    owner = torch.autograd.variable.Variable
    engine, owner._execution_engine = owner._execution_engine, checks._NoEngine(hits)
    try:
        yield
    finally:
        owner._execution_engine = engine


@contextlib.contextmanager
def _recording(record: dict, counts: dict):
    """Count the calls of these graded names made through the notebook's namespace (running the test's
    replacement instead where it gave one)."""
    namespace = _user_namespace()
    originals = {name: namespace[name] for name in record if name in namespace}
    for name, original in originals.items():
        def counting(*args, _target=record[name] or original, _name=name, **kwargs):
            counts[_name] = counts.get(_name, 0) + 1
            return _target(*args, **kwargs)
        namespace[name] = counting
    try:
        yield
    finally:
        namespace.update(originals)


def _error(error: BaseException) -> dict:
    builtin = next((k.__name__ for k in type(error).__mro__ if k.__module__ == "builtins"), "Exception")
    frames = traceback.extract_tb(error.__traceback__)
    where = next((f"line {f.lineno} of your code: {f.line}" for f in reversed(frames)
                  if f.filename.startswith("<ipython-input") or "/ipykernel_" in f.filename), "")
    return {"builtin": builtin, "type": type(error).__qualname__, "message": str(error)[:2000], "where": where}


def _target(request: dict):
    kind, key = request["target"]
    if kind == "name":
        namespace = _user_namespace()
        if key not in namespace:
            raise NameError(f"name '{key}' is not defined")
        return namespace[key]
    return SESSION.handles[key]


def _call(request: dict) -> tuple["wire.Writer", dict]:
    args, kwargs = request["args"], request["kwargs"]
    shipped, top = wire.shipped_objects((args, kwargs))
    for value, grad in zip(shipped, request["grads"]):
        if grad is not None and isinstance(value, torch.Tensor) and value.is_leaf:
            value.grad = grad
    grads_before = [s.grad.clone() if isinstance(s, torch.Tensor) and s.grad is not None else None for s in shipped]
    hits, counts = [], {}
    target = _target(request)
    if request.get("getattr"):
        target = getattr(target, request["getattr"])
    reply = {"hits": hits, "counts": counts}
    try:
        if isinstance(request.get("rng"), torch.Tensor):
            torch.set_rng_state(request["rng"])
        with _forbidden(request.get("forbidden", []), hits), _recording(request.get("record") or {}, counts), \
                _without_autograd(request.get("no_autograd", False), hits):
            if request.get("setattr"):
                setattr(target, request["setattr"], args[0])
                result = None
            else:
                result = target(*args, **kwargs) if request.get("call", True) else target
                if request.get("iterate"):
                    result = list(result)
    except BaseException as error:  # noqa: BLE001 - everything the student's code raises goes back as data
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        reply["error"] = _error(error)
        result = None
    SESSION.numbers += 1
    number = SESSION.numbers
    known = {id(s): ["arg", i] for i, s in enumerate(shipped)}
    writer = wire.Writer(known=known, handle=SESSION.handle, class_token=_class_token)
    reply["result"] = writer.write(result)
    known.clear()
    reply["mirror"] = [writer.write(shipped[i], False) for i in top]
    reply["rng"] = writer.write(torch.get_rng_state(), False)
    if writer.graph_outputs:
        SESSION.calls[number] = (writer.graph_outputs, shipped, grads_before)
        reply["call"] = number
    return writer, reply


def _class_token(kind):
    from cloudpickle import cloudpickle as internals

    return internals._DYNAMIC_CLASS_TRACKER_BY_CLASS.get(kind)


def _backward(request: dict):
    outputs, shipped, grads_before = SESSION.calls.pop(request["call"])
    pairs = [(o, g) for o, g in zip(outputs, request["grads"]) if g is not None]
    hits = []
    reply = {"hits": hits}
    try:
        with _forbidden(request.get("forbidden", []), hits), _without_autograd(request.get("no_autograd", False), hits):
            torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])
    except Exception as error:  # noqa: BLE001
        reply["error"] = _error(error)
    grads = []
    for value, before in zip(shipped, grads_before):
        if isinstance(value, torch.Tensor) and value.requires_grad and value.grad is not None:
            grads.append(value.grad.detach() - before if before is not None else value.grad.detach())
        else:
            grads.append(None)
    writer = wire.Writer(handle=SESSION.handle)
    reply["grads"] = writer.write(grads)
    return writer, reply


def answer(data: bytes) -> bytes:
    """The reply to one request of the grader."""
    request = cloudpickle.loads(data)
    if request["op"] == "reset":
        SESSION.reset()
        writer, reply = wire.Writer(), {}
    elif request["op"] == "backward":
        writer, reply = _backward(request)
    else:
        writer, reply = _call(request)
    return writer.pack(reply)


def _read_exactly(channel: socket.socket, size: int) -> bytes | None:
    parts = []
    while size:
        part = channel.recv(min(size, 1 << 20))
        if not part:
            return None
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def serve_calls(address, token: str) -> None:
    """Answer the grader's requests of one test cell, each a frame (length, then bytes) on a socket of their own,
    until the grader closes it. `address` is a Unix socket's path or a local TCP port."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as channel:
        channel.connect(address if isinstance(address, str) else ("127.0.0.1", address))
        channel.sendall(FRAME.pack(len(token)) + token.encode())
        while (header := _read_exactly(channel, FRAME.size)) is not None:
            request = _read_exactly(channel, FRAME.unpack(header)[0])
            if request is None:
                return
            reply = answer(request)
            channel.sendall(FRAME.pack(len(reply)) + reply)
