"""The parts of tamper-proof grading that need no kernel: the scanner, the repair, the sandbox's refusal."""

import nbformat
import pytest

from batchcourse.grading import sandbox
from batchcourse.grading.repair import repair
from batchcourse.grading.sandbox import SandboxedExecute, SandboxUnavailable
from batchcourse.grading.tamper import scan_source


def blocking(source: str) -> list[str]:
    return [f.what for f in scan_source(source, 0) if f.blocking]


@pytest.mark.parametrize("source", [
    "import torch\ntorch.allclose = lambda *a, **k: True",
    "import torch.nn.functional as G\nG.conv2d = None",
    "import numpy as np\nnp.testing.assert_allclose = print",
    "from batchcourse import checks\nsetattr(checks, 'close', print)",
    "from batchcourse import checks\nvars(checks)['close'] = print",
    "import sys\nsys.modules['torch'] = None",
    "import torch\ntorch.Tensor.__eq__ = lambda *a: True",
    "get_ipython().showtraceback = print",
    "import builtins",
    "from torch.overrides import TorchFunctionMode",
    "f.__code__ = g.__code__",
])
def test_scanner_blocks_tampering(source):
    assert blocking(source), f"not flagged: {source}"


@pytest.mark.parametrize("source", [
    "import torch\nx = torch.zeros(3)\nx.data = torch.ones(3)",
    "model.weight = torch.nn.Parameter(torch.zeros(2))",
    "import torch\ntorch.backends.cudnn.deterministic = True",
    "plt.rcParams['figure.figsize'] = (4, 3)",
    "%matplotlib inline\nimport torch",
    "def conv2d(x, w):\n    out = x.unfold(2, 3, 1)\n    return out.sum()",
])
def test_scanner_leaves_honest_code_alone(source):
    assert not blocking(source), f"flagged: {blocking(source)}"


def notebook(*cells):
    nb = nbformat.v4.new_notebook()
    for kind, grade_id, locked in cells:
        cell = nbformat.v4.new_code_cell(f"# {grade_id or kind}")
        if grade_id:
            cell.metadata["nbgrader"] = {"grade_id": grade_id, "locked": locked, "grade": kind == "test",
                                         "solution": kind == "solution", "schema_version": 3}
        nb.cells.append(cell)
    return nb


def test_repair_puts_back_deleted_cells_and_demotes_copies():
    source = notebook(("setup", "setup", True), ("solution", "f", False), ("test", "test_f", True))
    submitted = notebook(("test", "test_f", True), ("solution", "f", False), ("plain", None, False),
                         ("test", "made_up", True))
    repairs = repair(submitted, source)
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in submitted.cells]
    assert ids == ["setup", "test_f", "f", None, None]
    assert any("deleted" in r for r in repairs) and any("unknown" in r for r in repairs)


def test_grading_refuses_to_run_unisolated_unless_asked(monkeypatch):
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(sandbox, "user_namespace_problem", lambda: "unshare: Operation not permitted")
    assert "normal user" in sandbox.sandbox_available() and "README" in sandbox.sandbox_available()
    with pytest.raises(SandboxUnavailable, match="BATCHCOURSE_UNSAFE_NO_SANDBOX=1"):
        SandboxedExecute().preprocess(nbformat.v4.new_notebook(), {})
