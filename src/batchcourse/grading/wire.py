"""Data that crosses from the student's process to the grader's: written without pickle, read without running code.

A message is a JSON tree followed by the raw bytes of its tensors. Reading one builds only plain values
(numbers, strings, None, lists, tuples, dicts), tensors, and modules and transforms of listed classes
(torch.nn, torchvision's transforms, the course's models, classes the tests defined). The reader builds
each of those itself: a layer from its constructor's plain arguments, then its parameters, buffers,
children and mode; never by copying an attribute dict, so nothing the student's process sends can stand in
for a method. No function or class is looked up by a name the message gives, no module is imported, and
nothing is unpickled. Anything else the student's process holds (its own classes and functions) crosses as
a handle, which the grader can only call back. Each blob is read once and a message has a node budget, so
a small message cannot grow into a large one.
"""

import enum
import functools
import inspect
import json
import math
import struct
import sys
from collections import OrderedDict

import numpy
import torch

HEADER = struct.Struct("<Q")
MAX_BYTES = 256 * 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 64
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


_LISTED: dict[tuple[str, str], type] = {}


def listed_classes() -> dict[tuple[str, str], type]:
    """The classes whose instances a message may describe: torch.nn's modules, torchvision's transforms and
    tensor types, InterpolationMode, and the course's models, by (module, qualified name)."""
    if not _LISTED:
        import torchvision.transforms
        import torchvision.transforms.v2
        import torchvision.tv_tensors

        from .. import models

        for namespace in (torch.nn, torchvision.transforms, torchvision.transforms.v2, torchvision.tv_tensors, models):
            for value in vars(namespace).values():
                if isinstance(value, type) and allowed_module(value.__module__):
                    _LISTED[(value.__module__, value.__qualname__)] = value
    return _LISTED


def is_listed(kind: type) -> bool:
    return listed_classes().get((kind.__module__, kind.__qualname__)) is kind


def built_from_members(kind: type) -> bool:
    """Containers (and the course's models, which are containers) are rebuilt from their children; every
    other listed module from its constructor's arguments."""
    containers = (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict, torch.nn.ParameterList,
                  torch.nn.ParameterDict)
    return kind is torch.nn.Module or issubclass(kind, containers) or kind.__module__.startswith("batchcourse.")


FACTORY_ARGUMENTS = ("device", "dtype")


def constructor_arguments(value) -> dict | None:
    """The arguments that rebuild `value` through its class's constructor, read from the attributes of the
    same names (a bias parameter becomes bias=True); None when one is not plain data."""
    arguments = {}
    for name, parameter in constructor_parameters(type(value)).items():
        if name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD) \
                or _is_factory_argument(type(value), name):
            continue
        if not hasattr(value, name):
            continue
        setting = getattr(value, name)
        if isinstance(parameter.default, bool) and (setting is None or isinstance(setting, torch.Tensor)):
            setting = setting is not None
        if not is_plain(setting, allow_listed=True):
            return None
        arguments[name] = setting
    return arguments


@functools.cache
def constructor_parameters(kind: type):
    """The parameters of a class's constructor, read once per class (every module of every reply asks)."""
    return inspect.signature(kind.__init__).parameters


def _is_factory_argument(kind: type, name: str) -> bool:
    """torch.nn's device= and dtype= (the tensors that cross carry both), not ToDtype's dtype."""
    accepted = constructor_parameters(kind)
    return name in FACTORY_ARGUMENTS and all(n in accepted for n in FACTORY_ARGUMENTS)


def plain_attributes(value) -> dict | None:
    """The instance attributes of a module of a class the tests defined: plain data under public names
    that the class does not define; None when another kind of value is there."""
    found = {}
    for name, setting in vars(value).items():
        if name.startswith("_") or name == "training":
            continue
        if hasattr(type(value), name) or not is_plain(setting):
            return None
        found[name] = setting
    return found


def is_plain(value, allow_listed: bool = False, depth: int = 0) -> bool:
    """Numbers, strings, None, dtypes, listed enums and classes, and lists, tuples and dicts of them (with
    `allow_listed`, also modules and transforms of listed classes, as a Compose holds them)."""
    if depth > 16:
        return False
    if value is None or type(value) in (bool, int, float, str, complex, torch.dtype, torch.Size):
        return True
    if isinstance(value, enum.Enum) or isinstance(value, type):
        return is_listed(value if isinstance(value, type) else type(value))
    if type(value) in (list, tuple):
        return all(is_plain(v, allow_listed, depth + 1) for v in value)
    if type(value) is dict:
        return all(is_plain(k, False, depth + 1) and is_plain(v, allow_listed, depth + 1) for k, v in value.items())
    return allow_listed and is_listed(type(value)) and not isinstance(value, torch.Tensor)


def _has_own_behaviour(module: torch.nn.Module) -> bool:
    """Hooks, a compiled stand-in, or an instance attribute that replaces one of the class's methods."""
    state = vars(module)
    if any(state.get(name) for name in HOOK_DICTS) or state.get("_compiled_call_impl") is not None:
        return True
    return any(name in state and callable(getattr(type(module), name, None)) for name in dir(type(module))
               if not name.startswith("__"))


def _float(value: float):
    return value if math.isfinite(value) else repr(value)


def shipped_objects(value) -> tuple[list, list[int]]:
    """The tensors and modules among a call's arguments, in an order both processes compute alike, and the
    positions of those that are not inside another (their state is what crosses back after the call)."""
    found, top, _ = _shipped(value)
    return found, top


def top_owners(args, kwargs) -> list:
    """For each top-level object of `shipped_objects((args, kwargs))`, the argument it came in: a position
    or a keyword."""
    owners = []
    seen: set[int] = set()
    for owner, argument in [*enumerate(args), *kwargs.items()]:
        _, top, _ = _shipped(argument, seen)
        owners += [owner] * len(top)
    return owners


def _shipped(value, seen=None):
    found, top, seen = [], [], set() if seen is None else seen

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
    return found, top, seen


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
        if isinstance(value, enum.Enum) and is_listed(kind):
            return ["enum", kind.__module__, kind.__qualname__, self.write(value.value)]
        if isinstance(value, type) and is_listed(value):
            return ["class", value.__module__, value.__qualname__]
        if id(value) in self.memo:
            return ["ref", self.memo[id(value)]]
        return self._built(value, kind) or self.handle(value)

    def _built(self, value, kind):
        """A module or transform of a listed class (or a module class the tests defined), as the reader
        rebuilds it; None when it must stay a handle (a class of the student's, hooks, a method replaced,
        a setting that is not plain data)."""
        reference = self._class_reference(kind)
        if reference is None:
            return None
        is_module = isinstance(value, torch.nn.Module)
        if is_module and _has_own_behaviour(value):
            return None
        if is_module and (reference[0] == "test" or built_from_members(kind)):
            settings = {"attributes": plain_attributes(value) if reference[0] == "test" else {}}
        elif reference[0] == "py":
            settings = {"arguments": constructor_arguments(value)}
        else:
            return None
        if None in settings.values():
            return None
        self.memo[id(value)] = index = len(self.memo)
        spec = {key: {name: self.write(v, False) for name, v in part.items()} for key, part in settings.items()}
        if not is_module:
            return ["transform", reference, spec, index]
        spec["parameters"] = {name: self.write(p, False) for name, p in value._parameters.items()}
        spec["buffers"] = {name: self.write(b, False) for name, b in value._buffers.items()}
        spec["persistent"] = [name for name in value._buffers if name not in value._non_persistent_buffers_set]
        spec["children"] = {name: self.write(m, False) for name, m in value._modules.items()}
        spec["training"] = bool(value.training)
        return ["module", reference, spec, index]

    def _class_reference(self, kind):
        if self.class_token is not None:
            token = self.class_token(kind)
            if token is not None:
                return ["test", token]
        return ["py", kind.__module__, kind.__qualname__] if is_listed(kind) else None

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
        self.blobs_read: set[int] = set()
        self.nodes = self.depth = 0

    def value(self):
        return self.read(self.tree)

    def read(self, node):
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise WireError(f"the reply holds more than {MAX_NODES} values")
        if node is None or isinstance(node, (bool, str)):
            return node
        if not isinstance(node, list) or not node or not isinstance(node[0], str):
            raise WireError(f"unexpected node {str(node)[:80]}")
        tag, rest = node[0], node[1:]
        reader = getattr(self, f"_read_{tag}", None)
        if reader is None:
            raise WireError(f"unknown node type {tag!r}")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise WireError(f"the reply is nested more than {MAX_DEPTH} levels deep")
        try:
            return reader(*rest)
        finally:
            self.depth -= 1

    def _blob(self, index) -> memoryview:
        """Each blob backs one value only: a reply cannot name a large blob many times to grow here."""
        index = int(index)
        if index in self.blobs_read or not 0 <= index < len(self.blobs):
            raise WireError("a reply that names one block of data twice (or one it does not hold)")
        self.blobs_read.add(index)
        return self.blobs[index]

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
        raw = self._blob(spec["blob"])
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
        return numpy.frombuffer(bytes(self._blob(blob)), dtype=kind).reshape([int(s) for s in shape]).copy()

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

    @staticmethod
    def _listed(module, qualname) -> type:
        kind = listed_classes().get((str(module), str(qualname)))
        if kind is None:
            raise WireError(f"{module}.{qualname} is not a class the grader rebuilds")
        return kind

    def _read_enum(self, module, qualname, value):
        kind = self._listed(module, qualname)
        if not issubclass(kind, enum.Enum):
            raise WireError(f"{module}.{qualname} is not an enum")
        return kind(self.read(value))

    def _read_class(self, module, qualname):
        return self._listed(module, qualname)

    def _read_handle(self, *spec):
        if self.handle is None:
            raise WireError("a handle where only data may cross")
        return self.handle(*spec)

    def _kind(self, reference) -> tuple[type, bool]:
        """The class a module or transform node names, and whether the tests defined it."""
        if not isinstance(reference, list) or not reference:
            raise WireError(f"unknown class reference {str(reference)[:80]}")
        if reference[0] == "test" and self.test_class is not None and len(reference) == 2:
            return self.test_class(reference[1]), True
        if reference[0] == "py" and len(reference) == 3:
            return self._listed(reference[1], reference[2]), False
        raise WireError(f"unknown class reference {str(reference)[:80]}")

    def _settings(self, part, what: str) -> dict:
        if not isinstance(part, dict):
            raise WireError(f"the {what} of a module are not a dict")
        return {str(name): self.read(value) for name, value in part.items()}

    def _construct(self, kind: type, spec: dict):
        arguments = self._settings(spec.get("arguments"), "arguments")
        accepted = constructor_parameters(kind)
        for name, value in arguments.items():
            if name == "self" or name not in accepted or _is_factory_argument(kind, name) \
                    or not is_plain(value, allow_listed=True):
                raise WireError(f"{kind.__name__} is not built with {name}={str(value)[:40]}")
        # A setting stored as None where the constructor wants a value (ColorJitter's saturation=0 is
        # stored as None) is the constructor's default.
        defaulted = {n: v for n, v in arguments.items() if v is not None or accepted[n].default is None}
        # Built on the meta device where the class allows it: its own tensors are replaced by the ones sent,
        # and a Linear(10**6, 10**6) allocates nothing here.
        place = {"device": "meta"} if all(n in accepted for n in FACTORY_ARGUMENTS) else {}
        for attempt in ({**arguments, **place}, {**defaulted, **place}):
            try:
                return kind(**attempt)
            except Exception as error:  # noqa: BLE001 - the settings sent do not build this class
                failure = error
        raise WireError(f"a {kind.__name__} cannot be built from the settings sent ({failure})")

    def _read_transform(self, reference, spec, index):
        kind, from_tests = self._kind(reference)
        if from_tests or issubclass(kind, torch.nn.Module) or not isinstance(spec, dict):
            raise WireError(f"{kind.__name__} is not rebuilt as a transform")
        self.memo[int(index)] = instance = self._construct(kind, spec)
        return instance

    def _read_module(self, reference, spec, index):
        kind, from_tests = self._kind(reference)
        if not (isinstance(kind, type) and issubclass(kind, torch.nn.Module)) or not isinstance(spec, dict):
            raise WireError(f"{reference!r} is not a module class")
        from_members = from_tests or built_from_members(kind)
        if (spec.get("attributes") and not from_tests) or (spec.get("arguments") and from_members):
            raise WireError(f"a {kind.__name__} is not rebuilt from the settings sent")
        if from_members:
            instance = kind.__new__(kind)
            torch.nn.Module.__init__(instance)
        else:
            instance = self._construct(kind, spec)
        self.memo[int(index)] = instance
        if from_tests:
            self._set_attributes(instance, self._settings(spec.get("attributes", {}), "attributes"))
        self._fill(instance, "_parameters", self._settings(spec.get("parameters"), "parameters"), from_members,
                   lambda v: type(v) is torch.nn.Parameter)
        self._fill(instance, "_buffers", self._settings(spec.get("buffers"), "buffers"), from_members,
                   lambda v: type(v) is torch.Tensor)
        self._fill(instance, "_modules", self._settings(spec.get("children"), "children"), from_members,
                   lambda v: isinstance(v, torch.nn.Module) and not isinstance(v, Handle))
        persistent = spec.get("persistent", [])
        if from_members and isinstance(persistent, list):
            instance._non_persistent_buffers_set.update(set(instance._buffers) - {str(n) for n in persistent})
        instance.training = spec.get("training") is True
        return instance

    @staticmethod
    def _set_attributes(instance, attributes: dict) -> None:
        for name, value in attributes.items():
            if not name.isidentifier() or name.startswith("_") or name == "training" or hasattr(type(instance), name) \
                    or not is_plain(value):
                raise WireError(f"a {type(instance).__name__} does not carry an attribute {name!r} of that kind")
            object.__setattr__(instance, name, value)

    @staticmethod
    def _fill(instance, slot: str, members: dict, any_name: bool, fits) -> None:
        """Put parameters, buffers or children in their places: any name in a container (or a class the
        tests defined), only the places the constructor made in any other module."""
        places = getattr(instance, slot)
        for name, value in members.items():
            if not (name in places or (any_name and name and "." not in name)):
                raise WireError(f"a {type(instance).__name__} has no place for {name!r}")
            if value is not None and not fits(value):
                raise WireError(f"{name!r} of a {type(instance).__name__} is not what that place holds")
            places[name] = value
        if not any_name and set(members) != set(places):
            raise WireError(f"a {type(instance).__name__} arrived without all of its {slot.strip('_')}")


class Handle:
    """Marks a proxy the reader made for a handle (the student's process keeps the object)."""
