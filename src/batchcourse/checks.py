"""Checks that test cells call: compare a student's result with torch's, and say why it differs.

Test cells run in the student's own kernel, after the student's code. This module is
imported by each notebook's locked set-up cell, before any student code runs, and then:

* `begin()` (the first call of every test cell) puts back the torch, numpy and builtins
  functions, torch.nn classes and `sys.modules` entries that student code replaced, drops
  torch function/dispatch modes that student code left active, and refuses to go on when
  student code registered its own kernels for torch operators;
* the module itself is read-only: assigning to `batchcourse.checks.close` raises;
* comparisons never call a method of the student's object: a result must be a plain
  `torch.Tensor` (not a subclass, not an object claiming equality), and is copied to
  numpy before anything is compared;
* `forbidden("conv2d")` makes a torch routine unavailable at the dispatcher, so calling it
  through any alias, `torch.ops` or an `nn` module is caught.

Every failure is an AssertionError whose message is one sentence a student can act on.
"""

import builtins
import contextlib
import math
import sys
import types
from pathlib import Path

import numpy
import torch
import torch.autograd.functional
import torch.autograd.graph
import torch.autograd.variable
import torch.library
import torch.nn
import torch.nn.functional
import torch.testing
from torch.utils._python_dispatch import TorchDispatchMode

from . import i18n

i18n.install_in_kernel()  # a notebook in another language: its hints, figures and printed lines too

_isinstance, _type, _len, _getattr, _setattr = builtins.isinstance, builtins.type, builtins.len, builtins.getattr, builtins.setattr
_Tensor, _ndarray = torch.Tensor, numpy.ndarray


class TamperError(AssertionError):
    """Student code changed what the checks rely on."""


class ForbiddenRoutineError(AssertionError):
    """A from-scratch function called the torch routine it re-implements."""


# ----------------------------------------------------------------------------------------
# The pristine environment, captured when this module is first imported.

_MODULE_NAMES = (
    "builtins", "math", "operator", "functools", "numpy", "numpy.linalg", "numpy.testing",
    "torch", "torch.nn", "torch.nn.functional", "torch.nn.init", "torch.linalg", "torch.fft",
    "torch.special", "torch.autograd", "torch.autograd.functional", "torch.autograd.graph",
    "torch.autograd.variable", "torch.testing", "torch.func", "torch.library", "torch.overrides",
    "torch.utils._python_dispatch", "torch._C", "torch._C._nn", "torch._C._VariableFunctions",
    "batchcourse", "batchcourse.data", "batchcourse.models",
)
_ALLOWED_CODE_DIRS = tuple(
    str(Path(p).resolve())
    for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, Path(__file__).resolve().parent}
)


def _namespaces():
    for name in _MODULE_NAMES:
        module = sys.modules.get(name)
        if module is not None:
            yield name, module
    yield "torch.Tensor", torch.Tensor
    yield "torch.autograd.Variable", torch.autograd.variable.Variable
    for name, value in vars(torch.nn).items():
        if _isinstance(value, _type) and issubclass(value, torch.nn.Module):
            yield f"torch.nn.{name}", value


def _foreign_code(value) -> str | None:
    """The file of a Python function that comes from outside torch, numpy and this package."""
    code = _getattr(value, "__code__", None)
    if code is None or not _isinstance(code, types.CodeType):
        return None
    filename = code.co_filename
    if filename.startswith("<frozen") or filename.startswith(_ALLOWED_CODE_DIRS):
        return None
    try:
        if str(Path(filename).resolve()).startswith(_ALLOWED_CODE_DIRS):
            return None
    except (OSError, ValueError):
        pass
    return filename


class _Pristine:
    def __init__(self):
        self.namespaces = {label: (obj, dict(vars(obj))) for label, obj in _namespaces()}
        self.modules = {name: sys.modules[name] for name in _MODULE_NAMES if name in sys.modules}
        self.aten_impls = {key for key in torch.library._impls if key.startswith("aten/")}
        self.engine = torch.autograd.variable.Variable._execution_engine
        self.foreign_at_import = sorted(
            f"{label}.{key}"
            for label, (obj, saved) in self.namespaces.items()
            for key, value in saved.items()
            if _foreign_code(value)
        )

    def restore(self) -> list[str]:
        """Undo changes to the captured namespaces; return what had been changed. The grader's test process
        runs no student code, so there is nothing to undo."""
        changed = []
        if _REMOTE[0] is not None:
            return changed
        for name, module in self.modules.items():
            if sys.modules.get(name) is not module:
                sys.modules[name] = module
                changed.append(f"sys.modules[{name!r}]")
        for label, (obj, saved) in self.namespaces.items():
            current = vars(obj)
            is_class = _isinstance(obj, _type)
            for key, value in saved.items():
                if key not in current or current[key] is not value:
                    with contextlib.suppress(AttributeError, TypeError):
                        _setattr(obj, key, value)
                    changed.append(f"{label}.{key}")
            if is_class:
                for key in [k for k in current if k not in saved]:
                    with contextlib.suppress(AttributeError, TypeError):
                        delattr(obj, key)
                    changed.append(f"{label}.{key}")
        if torch.autograd.variable.Variable._execution_engine is not self.engine:
            torch.autograd.variable.Variable._execution_engine = self.engine
            changed.append("torch.autograd.Variable._execution_engine")
        while torch._C._len_torch_function_stack() > 0:
            torch._C._pop_torch_function_stack()
            changed.append("an active TorchFunctionMode")
        while torch._C._len_torch_dispatch_stack() > 0:
            torch._C._pop_torch_dispatch_stack()
            changed.append("an active TorchDispatchMode")
        return changed

    def new_aten_kernels(self) -> list[str]:
        """Kernels registered for torch operators since import, for the keys that compute results.

        torch registers some kernels lazily itself (torch.func adds FuncTorch* ones on first use);
        those keys are not ones a reference computation on CPU goes through.
        """
        return sorted(k for k in torch.library._impls
                      if k.startswith("aten/") and k not in self.aten_impls and k.rsplit("/", 1)[-1] in _RESULT_KEYS)


_RESULT_KEYS = {"", "CPU", "CompositeImplicitAutograd", "CompositeExplicitAutograd",
                "CompositeExplicitAutogradNonFunctional", "Autograd", "AutogradCPU", "Math", "DefaultBackend"}
_PRISTINE = _Pristine()
_TAMPERING: list[str] = []


def tampering_seen() -> list[str]:
    """Every change to the checked environment that `begin()` has undone in this kernel."""
    return list(_TAMPERING)


def begin() -> None:
    """Start a test: restore the environment the checks rely on and reset torch's global modes."""
    changed = _PRISTINE.restore()
    _TAMPERING.extend(c for c in changed if c not in _TAMPERING)
    kernels = _PRISTINE.new_aten_kernels()
    if kernels:
        raise TamperError(
            f"Code in this notebook registered its own kernel for a torch operator ({kernels[0]}); "
            "remove that code, restart the kernel and run all cells."
        )
    if _PRISTINE.foreign_at_import:
        raise TamperError(
            f"{_PRISTINE.foreign_at_import[0]} was replaced before the course's checks were loaded; "
            "keep the set-up cell first, restart the kernel and run all cells."
        )
    torch.set_grad_enabled(True)
    torch.set_default_dtype(torch.float32)


# ----------------------------------------------------------------------------------------
# Seeded inputs that do not touch (or depend on) the global random generator.

def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int, dtype: torch.dtype = torch.float32, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    """Normal samples `shift + scale * N(0, 1)` from a private generator."""
    return torch.randn(*shape, generator=_generator(seed), dtype=dtype) * scale + shift


def rand(*shape: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Uniform samples on [0, 1) from a private generator."""
    return torch.rand(*shape, generator=_generator(seed), dtype=dtype)


def randint(low: int, high: int, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Integers in [low, high) from a private generator."""
    return torch.randint(low, high, shape, generator=_generator(seed))


# ----------------------------------------------------------------------------------------
# Comparisons.

DEFAULT_TOLERANCES = {torch.float16: (1e-3, 1e-3), torch.bfloat16: (1e-2, 1e-2), torch.float32: (1e-5, 1e-5), torch.float64: (1e-9, 1e-10)}


def _describe(value) -> str:
    if _type(value) is _Tensor:
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    kind = _type(value)
    return f"an object of type {kind.__module__}.{kind.__qualname__}"


def _plain_tensor(value, what: str) -> torch.Tensor:
    if _type(value) is not _Tensor:
        subclass = _isinstance(value, _Tensor)
        raise AssertionError(
            f"{what} returned {_describe(value)}; return a plain torch.Tensor"
            + (" (not a subclass of it)." if subclass else ".")
        )
    return value


def _as_float64(tensor: torch.Tensor) -> numpy.ndarray:
    return torch.Tensor.numpy(torch.Tensor.to(torch.Tensor.detach(tensor), "cpu", torch.float64, copy=True))


def _index(flat_index: int, shape) -> tuple[int, ...]:
    return tuple(int(i) for i in numpy.unravel_index(flat_index, shape)) if _len(shape) else ()


def _constant_factor(actual: numpy.ndarray, expected: numpy.ndarray) -> float | None:
    """The c for which actual ≈ c * expected, when there is one."""
    denominator = float(numpy.sum(expected * expected))
    if denominator == 0.0:
        return None
    factor = float(numpy.sum(actual * expected)) / denominator
    residual = numpy.max(numpy.abs(actual - factor * expected))
    return factor if residual <= 1e-4 * max(1.0, float(numpy.max(numpy.abs(expected)))) else None


def _factor_hint(factor: float, n: int | None) -> str:
    if n is not None and n > 1:
        named = {
            n / (n - 1): f"n/(n-1) with n={n}: did you use the unbiased variance where the biased one belongs (or the other way round)?",
            (n - 1) / n: f"(n-1)/n with n={n}: did you use the biased variance where the unbiased one belongs (or the other way round)?",
            math.sqrt(n / (n - 1)): f"sqrt(n/(n-1)) with n={n}: did you mix up the biased and the unbiased variance (divide by n, not n-1, in BatchNorm)?",
            math.sqrt((n - 1) / n): f"sqrt((n-1)/n) with n={n}: did you mix up the biased and the unbiased variance (divide by n, not n-1, in BatchNorm)?",
            float(n): f"n={n}: did you sum where a mean belongs?",
            1.0 / n: f"1/n with n={n}: did you take a mean where a sum belongs?",
        }
        for value, hint in named.items():
            if abs(factor - value) <= 1e-3 * abs(value):
                return f"your result is the expected one times {factor:.6g} = {hint}"
    if abs(factor + 1.0) < 1e-4:
        return "your result has the wrong sign everywhere."
    return f"your result is the expected one times {factor:.6g}: look for a missing or extra constant factor."


def _batch_hint(bad: numpy.ndarray, batch_dim: int | None) -> str | None:
    if batch_dim is None or bad.ndim == 0 or bad.shape[batch_dim] < 2:
        return None
    per_sample = numpy.any(numpy.moveaxis(bad, batch_dim, 0).reshape(bad.shape[batch_dim], -1), axis=1)
    wrong = [int(i) for i in numpy.flatnonzero(per_sample)]
    if 0 < _len(wrong) < _len(per_sample):
        return f"only samples {wrong} of the batch are wrong, so your code mixes up or skips samples when the batch has more than one"
    return None


def close(actual, expected, what: str, *, rtol: float | None = None, atol: float | None = None,
          mistakes: dict | None = None, n: int | None = None, batch_dim: int | None = 0,
          check_dtype: bool = True) -> None:
    """Fail with a sentence unless `actual` is a plain tensor equal to `expected` within tolerance.

    `what` names the call being checked, e.g. "conv2d(x, w) for x of shape (2, 3, 5, 7)".
    `mistakes` maps a hint to the result a known mistake gives (computed by the test).
    `n` is the count a mean or variance is taken over, to name n/(n-1)-style factors.
    """
    _PRISTINE.restore()
    actual = _plain_tensor(actual, what)
    expected = _plain_tensor(expected, f"the reference for {what}")
    if tuple(actual.shape) != tuple(expected.shape):
        hint = ""
        if sorted(actual.shape) == sorted(expected.shape):
            hint = " (the same sizes in another order: are two dimensions swapped?)"
        elif actual.numel() == expected.numel():
            hint = " (the same number of elements: reshape or keep the dimensions you reduced over?)"
        raise AssertionError(f"{what} has shape {tuple(actual.shape)} but should have shape {tuple(expected.shape)}{hint}.")
    if check_dtype and actual.dtype != expected.dtype:
        raise AssertionError(
            f"{what} has dtype {actual.dtype} but should have dtype {expected.dtype}: "
            "keep the input's dtype (avoid .float(), .double() or a fixed dtype in torch.tensor/torch.zeros)."
        )
    default_rtol, default_atol = DEFAULT_TOLERANCES.get(expected.dtype, (0.0, 0.0))
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    got, want = _as_float64(actual), _as_float64(expected)

    nan_got, nan_want = numpy.isnan(got), numpy.isnan(want)
    if numpy.any(nan_got & ~nan_want):
        where = _index(int(numpy.argmax(nan_got & ~nan_want)), got.shape)
        raise AssertionError(f"{what} contains NaN (first at index {where}) where a number is expected: look for 0/0 or the square root of a negative number (a missing eps?).")
    error = numpy.where(nan_got & nan_want, 0.0, numpy.abs(got - want))
    error = numpy.where(numpy.isinf(want) & (got == want), 0.0, error)
    bad = error > atol + rtol * numpy.abs(want)
    if not numpy.any(bad):
        return

    worst = int(numpy.argmax(numpy.where(bad, error, -1.0)))
    where = _index(worst, got.shape)
    summary = (f"{what} is wrong at {int(numpy.sum(bad))} of {bad.size} values; the largest error is "
               f"{float(error.flat[worst]):.3g} at index {where} (got {float(got.flat[worst]):.6g}, expected {float(want.flat[worst]):.6g})")
    for hint, mistaken in (mistakes or {}).items():
        if _type(mistaken) is _Tensor and tuple(mistaken.shape) == tuple(actual.shape):
            if numpy.allclose(got, _as_float64(mistaken), rtol=max(rtol, 1e-6), atol=max(atol, 1e-7), equal_nan=True):
                raise AssertionError(f"{summary}: {hint}")
    factor = _constant_factor(got, want)
    if factor is not None:
        raise AssertionError(f"{summary}; {_factor_hint(factor, n)}")
    batch_hint = _batch_hint(bad, batch_dim)
    if batch_hint:
        raise AssertionError(f"{summary}; {batch_hint}.")
    raise AssertionError(f"{summary}.")


def close_dict(actual, expected: dict, what: str, **tolerances) -> None:
    """Fail unless `actual` is a dict with the keys of `expected` and each value `close` to its tensor."""
    _PRISTINE.restore()
    if _type(actual) is not dict:
        raise AssertionError(f"{what} returned {_describe(actual)}; return a dict.")
    keys = list(dict.keys(actual))
    missing, extra = [k for k in expected if k not in keys], [k for k in keys if k not in expected]
    if missing or extra:
        raise AssertionError(f"{what} has keys {sorted(map(str, keys))} but should have keys {sorted(map(str, expected))}.")
    for key, want in expected.items():
        close(dict.__getitem__(actual, key), want, f"{what}[{key!r}]", **tolerances)


def scalar(actual, expected: float, what: str, *, rtol: float = 1e-6, atol: float = 1e-9,
           mistakes: dict | None = None) -> None:
    """Fail unless `actual` is a number (a float or a one-value tensor without a graph) close to `expected`.

    `mistakes` maps a hint to the value a known mistake gives (computed by the test).
    """
    _PRISTINE.restore()
    if _type(actual) is _Tensor:
        if actual.requires_grad:
            raise AssertionError(f"{what} is a tensor that is still part of the autograd graph; return it detached (.detach()).")
        if actual.numel() != 1:
            raise AssertionError(f"{what} is a tensor of shape {tuple(actual.shape)}; return a single number.")
        value = float(_as_float64(actual).reshape(-1)[0])
    elif _type(actual) in (float, int, numpy.float64, numpy.float32):
        value = float(actual)
    else:
        raise AssertionError(f"{what} returned {_describe(actual)}; return a single number.")
    if math.isclose(value, expected, rel_tol=rtol, abs_tol=atol):
        return
    summary = f"{what} is {value:.8g} but should be {expected:.8g}"
    for hint, mistaken in (mistakes or {}).items():
        if math.isclose(value, mistaken, rel_tol=max(rtol, 1e-6), abs_tol=atol):
            raise AssertionError(f"{summary}: {hint}")
    raise AssertionError(f"{summary}.")


def parts(actual, names: tuple[str, ...], what: str) -> list:
    """The items of a returned tuple, after checking it has one item for each of `names`."""
    expected = "(" + ", ".join(names) + ")"
    if _type(actual) not in (tuple, list):
        raise AssertionError(f"{what} returned {_describe(actual)}; return the tuple {expected}.")
    if _len(actual) != _len(names):
        raise AssertionError(f"{what} returned {_len(actual)} items; return the {_len(names)} items {expected}.")
    return list(actual)


def equal(actual, expected, what: str) -> None:
    """Fail unless `actual` equals `expected` exactly.

    Handles bool, int, float, str, None, torch.dtype, tuples, lists, sets, dicts and tensors
    (compared bitwise), without calling any method of the student's objects.
    """
    kind = _type(expected)
    if kind is _Tensor:
        actual = _plain_tensor(actual, what)
        if tuple(actual.shape) != tuple(expected.shape) or actual.dtype != expected.dtype:
            raise AssertionError(f"{what} is {_describe(actual)} but should be {_describe(expected)}.")
        if not numpy.array_equal(_as_float64(actual), _as_float64(expected), equal_nan=True):
            close(actual, expected, what, rtol=0.0, atol=0.0)
        return
    if kind is bool:
        if _type(actual) not in (bool, numpy.bool_):
            raise AssertionError(f"{what} returned {_describe(actual)}; return True or False.")
        if bool(actual) is not expected:
            raise AssertionError(f"{what} returned {bool(actual)} but should return {expected}.")
        return
    if kind is int:
        if _type(actual) not in (int, numpy.int64, numpy.int32):
            raise AssertionError(f"{what} returned {_describe(actual)}; return a Python int.")
        if int(actual) != expected:
            raise AssertionError(f"{what} returned {int(actual)} but should return {expected}.")
        return
    if kind in (tuple, list):
        if _type(actual) not in (tuple, list):
            raise AssertionError(f"{what} returned {_describe(actual)}; return a {kind.__name__}.")
        simple = (int, float, bool, str)
        if all(_type(v) in simple for v in list(expected)) and all(_type(v) in simple for v in list(actual)):
            if list(actual) != list(expected):
                raise AssertionError(f"{what} returned {tuple(actual)!r} but should return {tuple(expected)!r}.")
        if _len(actual) != _len(expected):
            raise AssertionError(f"{what} returned {_len(actual)} items but should return {_len(expected)}.")
        for i, (got, want) in enumerate(zip(list(actual), list(expected))):
            equal(got, want, f"item {i} of {what}")
        return
    if kind is dict:
        if _type(actual) is not dict:
            raise AssertionError(f"{what} returned {_describe(actual)}; return a dict.")
        missing = [k for k in expected if k not in dict.keys(actual)]
        extra = [k for k in dict.keys(actual) if k not in expected]
        if missing or extra:
            raise AssertionError(f"{what} has keys {sorted(map(str, dict.keys(actual)))} but should have keys {sorted(map(str, expected))}.")
        for key, want in expected.items():
            equal(dict.__getitem__(actual, key), want, f"{what}[{key!r}]")
        return
    if kind in (str, float, set, frozenset, type(None), torch.dtype):
        if _type(actual) is not kind and not (kind is float and _type(actual) is int):
            raise AssertionError(f"{what} returned {_describe(actual)} but should return a {kind.__name__}.")
        if actual != expected:
            raise AssertionError(f"{what} returned {actual!r} but should return {expected!r}.")
        return
    raise TypeError(f"checks.equal cannot compare values of type {kind.__name__}")


def raises(exception: type[BaseException], function, *args, what: str, mistakes: dict | None = None, **kwargs) -> None:
    """Fail unless `function(*args, **kwargs)` raises `exception` (or a subclass of it).

    `mistakes` maps a hint to `(exception type, words in its message)` that a known mistake raises instead
    (e.g. torch's own routine raising RuntimeError); the first that matches is added to the failure.
    Returns None, like every check here: a test cell must not end in a value, which nbgrader
    would read as partial credit.
    """
    try:
        function(*args, **kwargs)
    except exception:
        return
    except NotImplementedError:
        raise
    except Exception as error:  # noqa: BLE001 - the student needs to see what was raised instead
        summary = f"{what} raised {_type(error).__name__} ({error}) but should raise {exception.__name__}"
        for hint, (kind, words) in (mistakes or {}).items():
            if _isinstance(error, kind) and words in str(error):
                raise AssertionError(f"{summary}: {hint}") from None
        raise AssertionError(f"{summary}.") from None
    raise AssertionError(f"{what} returned normally but should raise {exception.__name__}.")


# ----------------------------------------------------------------------------------------
# Modules left as they were found.

def module_state(module: torch.nn.Module) -> dict:
    """Mode, parameters and buffers of a module and its children, copied."""
    return {
        "training": {name: m.training for name, m in module.named_modules()},
        "tensors": {name: t.detach().clone() for name, t in list(module.named_parameters()) + list(module.named_buffers())},
        "requires_grad": {name: p.requires_grad for name, p in module.named_parameters()},
        "momentum": {name: _getattr(m, "momentum", None) for name, m in module.named_modules()},
    }


def unchanged(module: torch.nn.Module, before: dict, what: str) -> None:
    """Fail unless `module` has the mode, parameters and buffers recorded in `before`."""
    after = module_state(module)
    for name, training in before["training"].items():
        if after["training"].get(name) != training:
            mode = "train" if training else "eval"
            raise AssertionError(f"{what} left {name or 'the module'} in the wrong mode: it was in {mode} mode; restore the mode it had.")
    for name, tensor in before["tensors"].items():
        now = after["tensors"].get(name)
        if now is None or not numpy.array_equal(_as_float64(now), _as_float64(tensor), equal_nan=True):
            raise AssertionError(f"{what} changed {name}; work on a copy or restore it (running statistics count too).")
    for label in ("requires_grad", "momentum"):
        for name, value in before[label].items():
            if after[label].get(name) != value:
                raise AssertionError(f"{what} changed {label} of {name or 'the module'}; restore it before returning.")


# ----------------------------------------------------------------------------------------
# From-scratch rules: torch routines made unavailable at the dispatcher.

_BATCH_NORM_OPS = frozenset({
    "aten::batch_norm", "aten::_batch_norm_impl_index", "aten::native_batch_norm",
    "aten::_native_batch_norm_legit", "aten::_native_batch_norm_legit_no_training",
    "aten::_native_batch_norm_legit_functional", "aten::_batch_norm_with_update",
    "aten::_batch_norm_with_update_functional", "aten::_batch_norm_no_update",
    "aten::batch_norm_stats", "aten::batch_norm_elemt", "aten::batch_norm_update_stats",
    "aten::batch_norm_gather_stats", "aten::native_batch_norm_backward", "aten::batch_norm_backward",
    "aten::cudnn_batch_norm", "aten::miopen_batch_norm", "aten::instance_norm",
})
_OTHER_NORM_OPS = frozenset({
    "aten::group_norm", "aten::native_group_norm", "aten::layer_norm", "aten::native_layer_norm",
    "aten::rms_norm", "aten::_fused_rms_norm",
})
ROUTINES = {
    "conv2d": frozenset({
        "aten::conv2d", "aten::convolution", "aten::_convolution", "aten::convolution_overrideable",
        "aten::mkldnn_convolution", "aten::_slow_conv2d_forward", "aten::thnn_conv2d",
        "aten::_conv_depthwise2d", "aten::slow_conv_dilated2d", "aten::cudnn_convolution",
        "aten::_nnpack_spatial_convolution", "aten::im2col", "aten::col2im",
        # The same product by other names: a 1-D or 3-D convolution over a unit axis, a transposed one, and
        # the backward kernels (a convolution's weight gradient is itself a convolution).
        "aten::conv1d", "aten::conv3d", "aten::conv_transpose1d", "aten::conv_transpose2d", "aten::conv_transpose3d",
        "aten::conv_tbc", "aten::_convolution_mode", "aten::convolution_backward",
        "aten::convolution_backward_overrideable", "aten::_slow_conv2d_backward", "aten::slow_conv3d",
        "aten::slow_conv3d_forward", "aten::slow_conv_transpose2d", "aten::slow_conv_transpose3d",
        "aten::mkldnn_convolution_backward", "aten::_conv_depthwise2d_backward", "aten::slow_conv_dilated3d",
    }),
    "batch_norm": _BATCH_NORM_OPS,
    "normalization": _BATCH_NORM_OPS | _OTHER_NORM_OPS,
}
AUTOGRAD = "autograd"


class _ForbidOps(TorchDispatchMode):
    def __init__(self, ops: frozenset, routine: str, hits: list):
        super().__init__()
        self.ops, self.routine, self.hits = ops, routine, hits

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        if name in self.ops:
            self.hits.append(name)
            raise ForbiddenRoutineError(f"torch's {self.routine} ({name}) is not available in this test")
        return func(*args, **(kwargs or {}))


class _NoEngine:
    def __init__(self, hits: list):
        self.hits = hits

    def __getattr__(self, name):
        self.hits.append("the autograd engine")
        raise ForbiddenRoutineError("autograd (backward, torch.autograd.grad) is not available in this test")


_REMOTE = [None]


def use_remote(session) -> None:
    """Called by the grader's test process: graded names are proxies to the student's process there, and
    `forbidden` and `calls_recorded` apply to the calls those proxies make."""
    _REMOTE[0] = session


@contextlib.contextmanager
def forbidden(*routines: str, what: str):
    """Run the block with the named torch routines made unavailable.

    `routines` are keys of ROUTINES or AUTOGRAD. The block fails with a sentence naming the
    routine when student code reaches it, by any name, even if it catches the error itself.
    """
    remote = _REMOTE[0]
    if remote is not None:
        remote.forbidding.append((routines, what))
        try:
            yield
        finally:
            remote.forbidding.pop()
        return
    hits: list[str] = []
    ops = frozenset().union(*(ROUTINES[r] for r in routines if r != AUTOGRAD))
    label = " or ".join(routines)
    with contextlib.ExitStack() as stack:
        if AUTOGRAD in routines:
            engine_owner = torch.autograd.variable.Variable
            saved_engine = engine_owner._execution_engine
            engine_owner._execution_engine = _NoEngine(hits)
            stack.callback(_setattr, engine_owner, "_execution_engine", saved_engine)
        if ops:
            stack.enter_context(_ForbidOps(ops, label, hits))
        try:
            yield
        except ForbiddenRoutineError:
            pass
    if hits:
        raise ForbiddenRoutineError(
            f"{what} called torch's own {label} ({hits[0]}); this function must be written from scratch "
            "with basic tensor operations."
        )


@contextlib.contextmanager
def calls_recorded(name: str, replacement=None):
    """Count the calls of the notebook's function `name` while the block runs (by the student's other functions
    too); yields a list with one item per call, complete when the block ends. With a `replacement`, those calls
    run it instead, so that a test grades the calling function alone."""
    calls: list[int] = []
    remote = _REMOTE[0]
    if remote is not None:
        remote.recording = {name: 0}
        remote.replacements = {name: replacement}
        try:
            yield calls
        finally:
            calls.extend([1] * remote.recording.get(name, 0))
            remote.recording, remote.replacements = None, {}
        return
    namespace = sys._getframe(2).f_globals
    original = namespace[name]
    target = original if replacement is None else replacement

    def counting(*args, **kwargs):
        calls.append(1)
        return target(*args, **kwargs)

    namespace[name] = counting
    try:
        yield calls
    finally:
        namespace[name] = original


# ----------------------------------------------------------------------------------------
# Make this module and the package read-only for code that runs after it.

class _ReadOnlyModule(types.ModuleType):
    """A module whose attributes can be added (imports of submodules do that) but not replaced."""

    def __setattr__(self, name, value):
        if name in vars(self):
            raise AttributeError(f"{self.__name__}.{name} is read-only: tests rely on it")
        super().__setattr__(name, value)

    def __delattr__(self, name):
        raise AttributeError(f"{self.__name__} is read-only: tests rely on it")


def _seal(module_name: str) -> None:
    module = sys.modules[module_name]
    if _type(module) is types.ModuleType:
        module.__class__ = _ReadOnlyModule


_seal(__name__)
_seal(__name__.rpartition(".")[0])
