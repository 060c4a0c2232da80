"""Data that crosses from the student's process to the grader's: written without pickle, read without running code.

A message is a JSON tree followed by the raw bytes of its tensors. Reading one builds only plain values,
tensors and instances of classes the reader already holds (torch.nn, torchvision's transforms, the course's
models, classes the tests defined), filled in attribute by attribute: no student code runs, no module is
imported, and nothing is unpickled. Anything else the student's process holds (its own classes and
functions) crosses as a handle, which the grader can only call back.
"""

import enum
import json
import math
import struct
import sys
from collections import OrderedDict

import numpy
import torch

HEADER = struct.Struct("<Q")
MAX_BYTES = 256 * 1024 * 1024
ALLOWED_MODULES = ("torch", "torchvision", "batchcourse.models")
HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
              "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
              "_load_state_dict_post_hooks", "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs",
              "_forward_hooks_always_called")
DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8, torch.int8, torch.int16,
    torch.int32, torch.int64, torch.bool, torch.complex64, torch.complex128)}


class WireError(ValueError):
    """A message that is not what the student's process should have sent."""


def allowed_module(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in ALLOWED_MODULES)


def _float(value: float):
    return value if math.isfinite(value) else repr(value)


def shipped_objects(value) -> tuple[list, list[int]]:
    """The tensors and modules among a call's arguments, in an order both processes compute alike, and the
    positions of those that are not inside another (their state is what crosses back after the call)."""
    found, top, seen = [], [], set()

    def visit(item, outer: bool):
        if isinstance(item, (torch.nn.Module, torch.Tensor)):
            if id(item) in seen:
                return
            seen.add(id(item))
            if outer:
                top.append(len(found))
            found.append(item)
            if isinstance(item, torch.nn.Module):
                for _, tensor in list(item.named_parameters()) + list(item.named_buffers()):
                    visit(tensor, False)
                for child in item.children():
                    visit(child, False)
        elif isinstance(item, (list, tuple, set, frozenset)):
            for inner in item:
                visit(inner, outer)
        elif isinstance(item, dict):
            for inner in item.values():
                visit(inner, outer)

    visit(value, True)
    return found, top


# ----------------------------------------------------------------------------------------
# Writing (in the student's process).

class Writer:
    """Turns a value into a JSON tree and a list of byte blobs.

    `known` maps id(object) -> node for objects the reader already has (the call's arguments);
    `handle` turns any other object into a handle node; `class_token` names a class the tests sent.
    """

    def __init__(self, known=None, handle=None, class_token=None):
        self.known, self.handle, self.class_token = known or {}, handle, class_token
        self.blobs: list[bytes] = []
        self.size = 0
        self.memo: dict[int, int] = {}
        self.graph_outputs: list[torch.Tensor] = []

    def _blob(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > MAX_BYTES:
            raise WireError(f"the result is larger than {MAX_BYTES // 2**20} MB")
        self.blobs.append(data)
        return len(self.blobs) - 1

    def _tensor(self, t: torch.Tensor, top: bool) -> list:
        plain = t.detach().to("cpu")
        if plain.is_conj():
            plain = plain.resolve_conj()
        data = plain.contiguous().numpy().tobytes() if plain.dtype != torch.bfloat16 else \
            plain.contiguous().view(torch.int16).numpy().tobytes()
        node = {"dtype": str(plain.dtype).removeprefix("torch."), "shape": list(plain.shape), "blob": self._blob(data),
                "requires_grad": bool(t.requires_grad), "parameter": isinstance(t, torch.nn.Parameter)}
        if t.is_leaf and t.grad is not None:
            node["grad"] = self._tensor(t.grad, False)[1]
        if top and t.requires_grad and t.grad_fn is not None:
            node["graph_output"] = len(self.graph_outputs)
            self.graph_outputs.append(t)
        return ["T", node]

    def write(self, value, top: bool = True):
        if id(value) in self.known:
            return self.known[id(value)]
        if value is None or isinstance(value, (bool, str)):
            return value
        kind = type(value)
        if kind is int:
            return ["i", str(value)]
        if kind is float:
            return ["f", _float(value)]
        if isinstance(value, numpy.generic):
            return self.write(value.item(), top)
        if kind is complex:
            return ["c", _float(value.real), _float(value.imag)]
        if isinstance(value, torch.dtype):
            return ["dtype", str(value).removeprefix("torch.")]
        if kind is torch.Size:
            return ["size", [int(v) for v in value]]
        if kind is torch.device:
            return ["device", str(value)]
        if isinstance(value, torch.Tensor):
            if id(value) in self.memo:
                return ["ref", self.memo[id(value)]]
            node = self._tensor(value, top)
            self.memo[id(value)] = len(self.memo)
            node[1]["memo"] = self.memo[id(value)]
            return node
        if kind is numpy.ndarray and value.dtype.kind in "biufc":
            return ["ndarray", str(value.dtype), list(value.shape), self._blob(numpy.ascontiguousarray(value).tobytes())]
        if kind in (list, tuple, set, frozenset):
            return [{list: "l", tuple: "t", set: "set", frozenset: "fset"}[kind], [self.write(v, top) for v in value]]
        if kind in (dict, OrderedDict):
            return ["od" if kind is OrderedDict else "d", [[self.write(k, top), self.write(v, top)] for k, v in value.items()]]
        if isinstance(value, enum.Enum) and allowed_module(kind.__module__):
            return ["enum", kind.__module__, kind.__qualname__, self.write(value.value)]
        if isinstance(value, type) and allowed_module(value.__module__):
            return ["class", value.__module__, value.__qualname__]
        reference = self._class_reference(kind)
        if reference is not None and hasattr(value, "__dict__") and not hasattr(kind, "__slots__"):
            if id(value) in self.memo:
                return ["ref", self.memo[id(value)]]
            self.memo[id(value)] = index = len(self.memo)
            state = {key: self.write(v, False) for key, v in vars(value).items()}
            return ["object", reference, state, index]
        if callable(value) and getattr(value, "__module__", None) and allowed_module(value.__module__) \
                and getattr(sys.modules.get(value.__module__), value.__qualname__, None) is value:
            return ["function", value.__module__, value.__qualname__]
        return self.handle(value)

    def _class_reference(self, kind):
        if self.class_token is not None:
            token = self.class_token(kind)
            if token is not None:
                return ["test", token]
        if allowed_module(kind.__module__) and getattr(sys.modules.get(kind.__module__), kind.__qualname__, None) is kind:
            return ["py", kind.__module__, kind.__qualname__]
        return None

    def pack(self, tree) -> bytes:
        """A message: the JSON tree (already written), then the blobs the writing collected."""
        text = json.dumps(tree).encode()
        return HEADER.pack(len(text)) + text + b"".join(HEADER.pack(len(b)) + b for b in self.blobs)

    def message(self, value) -> bytes:
        return self.pack(self.write(value))


# ----------------------------------------------------------------------------------------
# Reading (in the grader's process).

class Reader:
    """Builds values from a message. `arguments` resolves ["arg", k] nodes to the caller's own objects,
    `test_class` a token to a class the tests defined, `handle` a handle node to a proxy."""

    def __init__(self, data: bytes, arguments=(), test_class=None, handle=None):
        if len(data) > MAX_BYTES + 2**20:
            raise WireError("the message is too large")
        (length,) = HEADER.unpack_from(data, 0)
        try:
            self.tree = json.loads(data[HEADER.size:HEADER.size + length])
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise WireError(f"the message is not valid JSON ({error})") from None
        self.blobs, offset = [], HEADER.size + length
        while offset < len(data):
            (size,) = HEADER.unpack_from(data, offset)
            self.blobs.append(memoryview(data)[offset + HEADER.size:offset + HEADER.size + size])
            offset += HEADER.size + size
        self.arguments, self.test_class, self.handle = list(arguments), test_class, handle
        self.memo: dict[int, object] = {}
        self.graph_outputs: dict[int, torch.Tensor] = {}

    def value(self):
        return self.read(self.tree)

    def read(self, node):
        if node is None or isinstance(node, (bool, str)):
            return node
        if not isinstance(node, list) or not node or not isinstance(node[0], str):
            raise WireError(f"unexpected node {str(node)[:80]}")
        tag, rest = node[0], node[1:]
        reader = getattr(self, f"_read_{tag}", None)
        if reader is None:
            raise WireError(f"unknown node type {tag!r}")
        return reader(*rest)

    def _read_i(self, text):
        return int(text)

    def _read_f(self, value):
        return float(value)

    def _read_c(self, real, imag):
        return complex(float(real), float(imag))

    def _read_dtype(self, name):
        if name not in DTYPES:
            raise WireError(f"unknown dtype {name!r}")
        return DTYPES[name]

    def _read_size(self, values):
        return torch.Size(int(v) for v in values)

    def _read_device(self, name):
        return torch.device(str(name))

    def _read_T(self, spec):
        dtype = self._read_dtype(spec["dtype"])
        shape = [int(s) for s in spec["shape"]]
        raw = self.blobs[int(spec["blob"])]
        if dtype == torch.bfloat16:
            tensor = torch.frombuffer(bytearray(raw), dtype=torch.int16).view(torch.bfloat16) if len(raw) else torch.empty(0, dtype=dtype)
        else:
            tensor = torch.frombuffer(bytearray(raw), dtype=dtype) if len(raw) else torch.empty(0, dtype=dtype)
        tensor = tensor.reshape(shape)
        if spec.get("parameter"):
            tensor = torch.nn.Parameter(tensor, requires_grad=bool(spec.get("requires_grad")))
        elif spec.get("requires_grad") and (dtype.is_floating_point or dtype.is_complex):
            tensor.requires_grad_(True)
        if "grad" in spec:
            tensor.grad = self._read_T(spec["grad"])
        if "graph_output" in spec:
            self.graph_outputs[int(spec["graph_output"])] = tensor
        if "memo" in spec:
            self.memo[int(spec["memo"])] = tensor
        return tensor

    def _read_ref(self, index):
        if int(index) not in self.memo:
            raise WireError("a reference to a value not yet read")
        return self.memo[int(index)]

    def _read_arg(self, index):
        return self.arguments[int(index)]

    def _read_ndarray(self, dtype, shape, blob):
        kind = numpy.dtype(str(dtype))
        if kind.kind not in "biufc":
            raise WireError(f"arrays of {dtype} do not cross")
        return numpy.frombuffer(bytes(self.blobs[int(blob)]), dtype=kind).reshape([int(s) for s in shape]).copy()

    def _read_l(self, items):
        return [self.read(v) for v in items]

    def _read_t(self, items):
        return tuple(self.read(v) for v in items)

    def _read_set(self, items):
        return set(self.read(v) for v in items)

    def _read_fset(self, items):
        return frozenset(self.read(v) for v in items)

    def _read_d(self, pairs):
        return {self.read(k): self.read(v) for k, v in pairs}

    def _read_od(self, pairs):
        return OrderedDict((self.read(k), self.read(v)) for k, v in pairs)

    def _lookup(self, module: str, qualname: str):
        """A name of a module the grader has already imported, inside the allowed packages."""
        if not allowed_module(str(module)) or str(module) not in sys.modules:
            raise WireError(f"{module}.{qualname} is not something the grader knows")
        value = sys.modules[str(module)]
        for part in str(qualname).split("."):
            if part.startswith("__"):
                raise WireError(f"{module}.{qualname} is not something the grader knows")
            value = getattr(value, part, None)
        if value is None:
            raise WireError(f"{module}.{qualname} is not something the grader knows")
        return value

    def _read_enum(self, module, qualname, value):
        kind = self._lookup(module, qualname)
        if not (isinstance(kind, type) and issubclass(kind, enum.Enum)):
            raise WireError(f"{module}.{qualname} is not an enum")
        return kind(self.read(value))

    def _read_class(self, module, qualname):
        kind = self._lookup(module, qualname)
        if not isinstance(kind, type):
            raise WireError(f"{module}.{qualname} is not a class")
        return kind

    def _read_function(self, module, qualname):
        value = self._lookup(module, qualname)
        if not callable(value) or isinstance(value, type):
            raise WireError(f"{module}.{qualname} is not a function")
        return value

    def _read_handle(self, *spec):
        if self.handle is None:
            raise WireError("a handle where only data may cross")
        return self.handle(*spec)

    def _read_object(self, reference, state, index):
        if reference[0] == "test" and self.test_class is not None:
            kind = self.test_class(reference[1])
        elif reference[0] == "py":
            kind = self._read_class(reference[1], reference[2])
        else:
            raise WireError(f"unknown class reference {reference!r}")
        if not isinstance(kind, type) or issubclass(kind, (type, BaseException)):
            raise WireError(f"{kind!r} cannot be rebuilt")
        instance = kind.__new__(kind)
        self.memo[int(index)] = instance
        attributes = {str(key): self.read(value) for key, value in state.items()}
        if isinstance(instance, torch.nn.Module):
            check_module_attributes(kind, attributes)
        if isinstance(instance, torch.nn.Module):
            instance.__dict__.update(attributes)
        else:
            object.__setattr__(instance, "__dict__", attributes)
        return instance


class Handle:
    """Marks a proxy the reader made for a handle (the student's process keeps the object)."""


def check_module_attributes(kind: type, attributes: dict) -> None:
    """A module rebuilt from the student's data must compute what its class computes: no hooks, and no
    instance attribute that stands in for a method (a `forward` set on the instance, say)."""
    for name in HOOK_DICTS:
        if attributes.get(name):
            raise WireError(f"the returned {kind.__name__} carries hooks ({name}); return a plain module")
    for name, value in attributes.items():
        if name in ("_modules",):
            continue
        if isinstance(value, Handle) or (name in dir(kind) and callable(getattr(kind, name, None))):
            raise WireError(f"the returned {kind.__name__} has its own {name!r} attribute, which replaces what "
                            f"{kind.__name__} computes; return a plain {kind.__name__}")
