"""The checking helpers: right verdicts, actionable messages, and resistance to tampering."""

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from batchcourse import checks


def message_of(function, *args, **kwargs) -> str:
    with pytest.raises(AssertionError) as failure:
        function(*args, **kwargs)
    return str(failure.value)


def test_close_accepts_rounding_differences():
    x = checks.randn(3, 4, seed=0)
    checks.close(x * (1 + 1e-7), x, "f(x)")
    checks.close(x.double() * (1 + 1e-12), x.double(), "f(x)")


def test_close_names_shape_dtype_and_largest_error():
    x = checks.randn(2, 3, 4, 5, seed=0)
    assert "shape (2, 3, 5, 4) but should have shape (2, 3, 4, 5)" in message_of(checks.close, x.transpose(2, 3), x, "f(x)")
    assert "dtype torch.float64 but should have dtype torch.float32" in message_of(checks.close, x.double(), x, "f(x)")
    wrong = x.clone()
    wrong[1, 2, 3, 4] += 1.0
    text = message_of(checks.close, wrong, x, "f(x)")
    assert "largest error is 1 at index (1, 2, 3, 4)" in text and "only samples [1]" in text


def test_close_recognises_the_unbiased_variance_factor():
    x = checks.randn(8, 3, seed=1)
    n = 8
    assert "n/(n-1) with n=8" in message_of(checks.close, x * n / (n - 1), x, "var(x)", n=n)
    assert "sqrt(n/(n-1))" in message_of(checks.close, x * (n / (n - 1)) ** 0.5, x, "bn(x)", n=n)


def test_close_uses_the_tests_known_mistakes():
    x = checks.randn(4, 4, seed=2)
    text = message_of(checks.close, x + 1, x, "f(x)", mistakes={"you added one.": x + 1})
    assert text.endswith("you added one.")


def test_close_rejects_tensor_subclasses_and_other_objects():
    class Liar(torch.Tensor):
        def __eq__(self, other):
            return True

    class Claims:
        def __eq__(self, other):
            return True

    x = checks.randn(2, 2, seed=3)
    assert "not a subclass" in message_of(checks.close, x.as_subclass(Liar), x, "f(x)")
    assert "return a plain torch.Tensor" in message_of(checks.close, Claims(), x, "f(x)")
    assert "return True or False" in message_of(checks.equal, Claims(), True, "f(x)")


def test_close_reports_nan():
    x = checks.randn(3, seed=4)
    assert "NaN" in message_of(checks.close, torch.full((3,), float("nan")), x, "f(x)")


def test_equal_compares_structures_exactly():
    checks.equal({"a": True, "b": (1, 2)}, {"a": True, "b": (1, 2)}, "f()")
    assert "['a'] returned False but should return True" in message_of(checks.equal, {"a": False}, {"a": True}, "f()")
    assert "return a Python int" in message_of(checks.equal, torch.tensor(3), 3, "f()")


def test_raises():
    def bad(x):
        raise RuntimeError("boom")

    checks.raises(ValueError, int, "x", what="int('x')")
    assert "raised RuntimeError" in message_of(checks.raises, ValueError, bad, 1, what="bad(1)")
    assert "returned normally" in message_of(checks.raises, ValueError, abs, 1, what="abs(1)")
    hints = {"torch raises that; raise ValueError yourself.": (RuntimeError, "boom"), "never this one.": (RuntimeError, "")}
    assert message_of(checks.raises, ValueError, bad, 1, what="bad(1)", mistakes=hints).endswith(
        "should raise ValueError: torch raises that; raise ValueError yourself.")
    assert message_of(checks.raises, ValueError, bad, 1, what="bad(1)", mistakes={"a hint.": (TypeError, "")}).endswith(
        "should raise ValueError.")


def test_seeded_inputs_ignore_the_global_generator():
    torch.manual_seed(123)
    a = checks.randn(5, seed=7)
    torch.rand(100)
    assert torch.equal(a, checks.randn(5, seed=7))


def test_forbidden_catches_aliases_modules_and_swallowed_errors():
    x, w = checks.randn(1, 2, 5, 5, seed=0), checks.randn(3, 2, 3, 3, seed=1)
    alias = F.conv2d

    def via_alias():
        return alias(x, w)

    def swallowed():
        try:
            return torch.nn.Conv2d(2, 3, 3)(x)
        except Exception:
            return None

    def via_ops():
        return torch.ops.aten.convolution(x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)

    for function in (via_alias, swallowed, via_ops):
        with pytest.raises(checks.ForbiddenRoutineError, match="must be written from scratch"):
            with checks.forbidden("conv2d", what="conv2d(x, w)"):
                function()
    with checks.forbidden("conv2d", what="ok"):
        (x.unfold(2, 3, 1).unfold(3, 3, 1) * 2).sum()
    assert torch.allclose(alias(x, w), F.conv2d(x, w))


def test_forbidden_autograd():
    def uses_autograd():
        x = checks.randn(3, seed=0).requires_grad_()
        (x * x).sum().backward()

    with pytest.raises(checks.ForbiddenRoutineError):
        with checks.forbidden("autograd", what="backward()"):
            uses_autograd()
    uses_autograd()


def test_module_state_and_unchanged():
    layer = torch.nn.BatchNorm2d(3)
    before = checks.module_state(layer)
    checks.unchanged(layer, before, "f(layer)")
    layer(checks.randn(2, 3, 4, 4, seed=0))
    assert "changed running_mean" in message_of(checks.unchanged, layer, before, "f(layer)")
    layer.eval()
    assert "wrong mode" in message_of(checks.unchanged, layer, checks.module_state(torch.nn.BatchNorm2d(3)), "f(layer)")


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_begin_restores_replaced_functions_and_refuses_overrides():
    result = run_python("""
        import torch, numpy, torch.nn.functional as F
        from batchcourse import checks
        real_allclose, real_bn, real_isclose = torch.allclose, F.batch_norm, numpy.isclose
        torch.allclose = lambda *a, **k: True
        F.batch_norm = lambda *a, **k: a[0]
        numpy.isclose = lambda *a, **k: True
        torch.Tensor.__eq__ = lambda *a: True
        import sys; real_torch = sys.modules["torch"]; sys.modules["torch"] = object()
        checks.begin()
        assert torch.allclose is real_allclose and F.batch_norm is real_bn and numpy.isclose is real_isclose
        assert sys.modules["torch"] is real_torch and "__eq__" not in vars(torch.Tensor)
        assert "torch.allclose" in checks.tampering_seen()
        for target, name in ((checks, "close"), (__import__("batchcourse"), "checks")):
            try:
                setattr(target, name, None)
            except AttributeError:
                pass
            else:
                raise SystemExit(f"{name} could be replaced")
        from torch.overrides import TorchFunctionMode
        TorchFunctionMode().__enter__()
        checks.begin()
        assert torch._C._len_torch_function_stack() == 0
        lib = torch.library.Library("aten", "IMPL")
        lib.impl("native_batch_norm", lambda *a, **k: None, "CPU")
        try:
            checks.begin()
        except checks.TamperError as error:
            print("refused:", error)
    """)
    assert result.returncode == 0, result.stderr
    assert "refused: Code in this notebook registered its own kernel" in result.stdout


def test_begin_refuses_functions_replaced_before_import():
    result = run_python("""
        import torch
        exec("def fake(*a, **k):\\n    return True", globals())
        torch.allclose = fake
        from batchcourse import checks
        try:
            checks.begin()
        except checks.TamperError as error:
            print("refused:", error)
    """)
    assert "refused: torch.allclose was replaced before" in result.stdout, result.stderr


def test_close_dict_names_the_key():
    expected = {"weight": torch.ones(2), "bias": torch.zeros(1)}
    checks.close_dict({"weight": torch.ones(2), "bias": torch.zeros(1)}, expected, "grads")
    with pytest.raises(AssertionError, match=r"grads has keys \['weight'\] but should have keys"):
        checks.close_dict({"weight": torch.ones(2)}, expected, "grads")
    with pytest.raises(AssertionError, match=r"grads\['bias'\] is wrong"):
        checks.close_dict({"weight": torch.ones(2), "bias": torch.ones(1)}, expected, "grads")
    with pytest.raises(AssertionError, match="return a dict"):
        checks.close_dict([torch.ones(2)], expected, "grads")


def test_scalar_accepts_numbers_and_detached_tensors_only():
    checks.scalar(0.5, 0.5, "loss")
    checks.scalar(torch.tensor(0.5, dtype=torch.float64), 0.5, "loss")
    with pytest.raises(AssertionError, match="detached"):
        checks.scalar(torch.tensor(0.5, requires_grad=True) * 1, 0.5, "loss")
    with pytest.raises(AssertionError, match="is 0.6 but should be 0.5"):
        checks.scalar(0.6, 0.5, "loss")
    with pytest.raises(AssertionError, match="single number"):
        checks.scalar(torch.ones(2), 0.5, "loss")
    with pytest.raises(AssertionError, match="should be 0.5: you averaged"):
        checks.scalar(0.7, 0.5, "loss", mistakes={"you averaged": 0.7})


def test_parts_names_the_expected_tuple():
    assert checks.parts((1, 2), ("a", "b"), "f()") == [1, 2]
    with pytest.raises(AssertionError, match=r"returned 1 items; return the 2 items \(a, b\)"):
        checks.parts((1,), ("a", "b"), "f()")
    with pytest.raises(AssertionError, match=r"return the tuple \(a, b\)"):
        checks.parts(torch.ones(2), ("a", "b"), "f()")
