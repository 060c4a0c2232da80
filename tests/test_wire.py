"""The wire from the student's process to the grader's: data crosses, code does not."""

import json
from collections import OrderedDict

import pytest
import torch
from torch import nn

from batchcourse.grading import wire
from batchcourse.grading.trusted import reconcile, static_forbidden


def roundtrip(value, **reader_options):
    handles = []

    def handle(obj):
        handles.append(obj)
        return ["handle", len(handles), {"name": type(obj).__name__}]

    data = wire.Writer(handle=handle).message(value)
    made = []

    def proxy(number, info):
        made.append((number, info))
        return ("proxy", number)

    return wire.Reader(data, handle=proxy, **reader_options).value(), handles, made


def test_plain_values_and_tensors_cross_exactly():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    x.grad = torch.ones(3, 4, dtype=torch.float64)
    value = {"x": x, "n": 3, "f": float("nan"), "t": (1, [2.5, None]), "s": {1, 2}, "dtype": torch.float16,
             "size": torch.Size([2, 3]), "half": torch.arange(4, dtype=torch.bfloat16), "od": OrderedDict(a=1)}
    back, handles, _ = roundtrip(value)
    assert torch.equal(back["x"], x) and back["x"].requires_grad and torch.equal(back["x"].grad, x.grad)
    assert back["n"] == 3 and back["f"] != back["f"] and back["t"] == (1, [2.5, None]) and back["s"] == {1, 2}
    assert back["dtype"] is torch.float16 and back["size"] == torch.Size([2, 3]) and type(back["od"]) is OrderedDict
    assert torch.equal(back["half"], value["half"]) and not handles


def test_torch_modules_are_rebuilt_and_compute_what_their_class_computes():
    conv = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3)).eval()
    back, _, _ = roundtrip(conv)
    x = torch.randn(2, 2, 5, 5)
    assert type(back) is nn.Sequential and type(back[0]) is nn.Conv2d
    assert torch.equal(back(x), conv(x))


def test_student_classes_and_functions_cross_only_as_handles():
    class Folded(nn.Conv2d):
        pass

    back, handles, made = roundtrip([Folded(1, 1, 1), lambda t: t])
    assert back == [("proxy", 1), ("proxy", 2)] and len(handles) == 2 and len(made) == 2


@pytest.mark.parametrize("tamper", ["hook", "forward", "compiled"])
def test_a_torch_module_with_its_behaviour_replaced_crosses_only_as_a_handle(tamper):
    conv = nn.Conv2d(1, 1, 1)
    if tamper == "hook":
        conv.register_forward_hook(lambda module, args, out: out * 0)
    elif tamper == "forward":
        conv.forward = lambda t: t
    else:
        conv._compiled_call_impl = lambda t: t
    back, handles, _ = roundtrip(conv)
    assert back == ("proxy", 1) and handles == [conv]


def message(tree, blobs=()):
    text = json.dumps(tree).encode()
    return wire.HEADER.pack(len(text)) + text + b"".join(wire.HEADER.pack(len(b)) + b for b in blobs)


def conv_node(extra_arguments=None, extra_attributes=None):
    """A Conv2d(1, 1, 1) as the student's process would describe it, with what an attack adds."""
    data = wire.Writer(handle=lambda obj: ["handle", 1, {}])
    tree = data.write(nn.Conv2d(1, 1, 1))
    tree[2]["arguments"].update(extra_arguments or {})
    tree[2].update(extra_attributes or {})
    return message(tree, data.blobs)


@pytest.mark.parametrize("attack", [
    {"extra_arguments": {"_compiled_call_impl": ["handle", 1, {}]}},
    {"extra_arguments": {"forward": "x"}},
    {"extra_attributes": {"attributes": {"_compiled_call_impl": ["handle", 1, {}]}}},
])
def test_a_module_is_built_from_its_constructor_and_nothing_else(attack):
    with pytest.raises(wire.WireError):
        wire.Reader(conv_node(**attack), handle=lambda *spec: lambda t: t).value()


def test_a_module_of_a_class_the_tests_defined_takes_only_plain_public_attributes():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = 2.0

        def forward(self, t):
            return t * self.scale

    tokens = {"token": Scaled}
    writer = wire.Writer(handle=lambda obj: ["handle", 1, {}], class_token=lambda kind: "token" if kind is Scaled else None)
    tree = writer.write(Scaled())
    back = wire.Reader(message(tree, writer.blobs), test_class=tokens.get).value()
    assert type(back) is Scaled and back.scale == 2.0
    tree[2]["attributes"]["_compiled_call_impl"] = ["handle", 1, {}]
    with pytest.raises(wire.WireError):
        wire.Reader(message(tree, writer.blobs), test_class=tokens.get, handle=lambda *s: print).value()


def test_a_reply_cannot_name_one_blob_twice_or_hold_too_many_values():
    writer = wire.Writer()
    node = writer.write(torch.zeros(1000))
    with pytest.raises(wire.WireError):
        wire.Reader(message(["l", [node, node]], writer.blobs)).value()
    with pytest.raises(wire.WireError):
        wire.Reader(message(["l", [["i", "1"]] * (wire.MAX_NODES + 1)])).value()
    nested = None
    for _ in range(wire.MAX_DEPTH + 1):
        nested = ["l", [nested]]
    with pytest.raises(wire.WireError):
        wire.Reader(message(nested)).value()


@pytest.mark.parametrize("node", [
    ["object", ["py", "os", "system"], {}, 0],            # a module outside torch
    ["module", ["py", "torch.nn", "__class__"], {}, 0],    # dunder walking
    ["class", "subprocess", "Popen"],
    ["class", "torch.utils.cpp_extension", "BuildExtension"],  # in torch, but not a listed class
    ["function", "torch.utils.cpp_extension", "_run_ninja_build"],
    ["function", "builtins", "eval"],
    ["dtype", "object"],
    ["enum", "torch", "float32", 1],
    ["transform", ["py", "torchvision.transforms.v2", "Lambda"], {"arguments": {"lambd": ["handle", 1, {}]}}, 0],
])
def test_the_reader_refuses_anything_but_known_data(node):
    tree = json.dumps(node).encode()
    with pytest.raises(wire.WireError):
        wire.Reader(wire.HEADER.pack(len(tree)) + tree, handle=lambda *spec: print).value()


def test_reconcile_takes_back_only_what_the_task_allows():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    layer, weight = model[1], model[0].weight
    changed = roundtrip(model)[0]
    changed[1].running_mean.fill_(3.0)
    changed[0].weight.grad = torch.ones(2, 2)
    changes = []
    reconcile(model, changed, {"buffers", "gradients"}, "model", changes)
    assert not changes and model[1] is layer and model[0].weight is weight
    assert torch.equal(layer.running_mean, torch.full((2,), 3.0)) and torch.equal(weight.grad, torch.ones(2, 2))

    changed = roundtrip(model)[0]
    changed.eval()
    changed[0].weight.data.zero_()
    changed[1].momentum = 0.5
    changed[1].running_var.fill_(7.0)
    reconcile(model, changed, set(), "model", changes)
    assert changes == ["the mode of model (train or eval)", "the mode of model.0 (train or eval)",
                       "the values of model.0.weight", "the mode of model.1 (train or eval)",
                       "the settings of model.1", "the values of model.1.running_var"]
    assert model.training and not torch.equal(weight, torch.zeros(2, 2)) and layer.momentum == 0.1
    assert torch.equal(layer.running_var, torch.ones(2))

    x = torch.randn(3)
    zeroed = torch.zeros(3)
    changes = []
    reconcile(x, zeroed, set(), "x", changes)
    assert changes == ["the values of x"] and not torch.equal(x, zeroed)


def test_an_argument_that_comes_back_with_code_attached_is_a_change():
    """A call that changes a module's buffers and then plants code on it crosses back as a handle, not data: that
    must not hide the change (coming back as a handle is a change itself), nor for a layer inside (which cannot
    cross at all)."""
    model = nn.Sequential(nn.BatchNorm1d(2))
    changed = roundtrip(model)[0]
    changed[0].running_mean.fill_(3.0)
    changed._compiled_call_impl = lambda t: t
    assert roundtrip(changed)[1] == [changed], "a module with code planted on it must cross as a handle"
    changes = []
    reconcile(model, wire.Handle(), {"buffers"}, "model", changes)
    assert changes == ["model itself (an attribute, hook or method was attached to it)"]
    assert torch.equal(model[0].running_mean, torch.zeros(2))

    del changed._compiled_call_impl
    changed[0]._compiled_call_impl = lambda t: t
    with pytest.raises(wire.WireError):
        roundtrip(changed)


def test_the_from_scratch_rule_reads_the_defining_cell():
    sources = {"3": "import torch.nn.functional as F\ndef conv2d(x, w):\n    return F.conv2d(x, w)\n",
               "4": "def other():\n    return 1\n"}
    assert static_forbidden(sources, "conv2d", ("conv2d",)).startswith("conv2d")
    sliding = {"3": "def conv2d(x, w):\n    return x.unfold(2, 3, 1)\n"}
    assert static_forbidden(sliding, "conv2d", ("conv2d",)) is None
    hidden = {"3": "def conv2d(x, w):\n    return getattr(torch.nn.functional, 'conv2d')(x, w)\n"}
    assert static_forbidden(hidden, "conv2d", ("conv2d",)) is not None


def test_the_contract_names_every_graded_function_with_its_parameters():
    import ast
    from pathlib import Path

    import nbformat

    from batchcourse.grading import contract

    found = {}
    for path in sorted(Path(__file__).parents[1].glob("notebooks/*/*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
                for node in ast.parse(cell.source).body:
                    if isinstance(node, ast.FunctionDef):
                        found[node.name] = tuple(a.arg for a in node.args.args)
    assert found == {name: contract.PARAMETERS[name] for name in found}, "contract.PARAMETERS differs from the stubs"
    assert set(contract.PARAMETERS) == set(found), "contract.PARAMETERS names a function no assignment grades"
    for function, arguments in contract.MAY_CHANGE.items():
        assert set(arguments) <= set(contract.PARAMETERS[function])


def test_a_huge_layer_described_in_a_small_reply_allocates_nothing():
    writer = wire.Writer()
    tree = writer.write(nn.Linear(2, 2))
    tree[2]["arguments"].update(in_features=["i", str(10**6)], out_features=["i", str(10**6)])
    back = wire.Reader(message(tree, writer.blobs)).value()
    assert back.weight.shape == (2, 2) and back.in_features == 10**6


def test_the_test_process_can_start_no_program():
    import subprocess
    import sys

    code = ("import subprocess\nfrom batchcourse.grading.no_exec import refuse_new_programs\n"
            "assert refuse_new_programs()\n"
            "try:\n    subprocess.run(['true'])\nexcept PermissionError:\n    print('refused')\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.stdout.strip() == "refused", run.stderr
