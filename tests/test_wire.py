"""The wire from the student's process to the grader's: data crosses, code does not."""

import json
from collections import OrderedDict

import pytest
import torch
from torch import nn

from batchcourse.grading import wire
from batchcourse.grading.trusted import merge, static_forbidden


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


@pytest.mark.parametrize("tamper", ["hook", "forward"])
def test_a_torch_module_with_its_behaviour_replaced_is_refused(tamper):
    conv = nn.Conv2d(1, 1, 1)
    if tamper == "hook":
        conv.register_forward_hook(lambda module, args, out: out * 0)
    else:
        conv.forward = lambda t: t
    with pytest.raises(wire.WireError):
        roundtrip(conv)


@pytest.mark.parametrize("node", [
    ["object", ["py", "os", "system"], {}, 0],            # a module outside torch
    ["object", ["py", "torch.nn", "__class__"], {}, 0],    # dunder walking
    ["class", "subprocess", "Popen"],
    ["function", "builtins", "eval"],
    ["dtype", "object"],
    ["enum", "torch", "float32", 1],
])
def test_the_reader_refuses_anything_but_known_data(node):
    tree = json.dumps(node).encode()
    with pytest.raises(wire.WireError):
        wire.Reader(wire.HEADER.pack(len(tree)) + tree).value()


def test_merge_keeps_identity_and_brings_back_changes():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    layer, weight = model[1], model[0].weight
    changed = roundtrip(model)[0]
    changed[1].running_mean.fill_(3.0)
    changed[0].weight.grad = torch.ones(2, 2)
    changed.eval()
    assert merge(model, changed)
    assert model[1] is layer and model[0].weight is weight and not model.training
    assert torch.equal(layer.running_mean, torch.full((2,), 3.0)) and torch.equal(weight.grad, torch.ones(2, 2))


def test_the_from_scratch_rule_reads_the_defining_cell():
    sources = {"3": "import torch.nn.functional as F\ndef conv2d(x, w):\n    return F.conv2d(x, w)\n",
               "4": "def other():\n    return 1\n"}
    assert static_forbidden(sources, "conv2d", ("conv2d",)).startswith("conv2d")
    sliding = {"3": "def conv2d(x, w):\n    return x.unfold(2, 3, 1)\n"}
    assert static_forbidden(sliding, "conv2d", ("conv2d",)) is None
    hidden = {"3": "def conv2d(x, w):\n    return getattr(torch.nn.functional, 'conv2d')(x, w)\n"}
    assert static_forbidden(hidden, "conv2d", ("conv2d",)) is not None
