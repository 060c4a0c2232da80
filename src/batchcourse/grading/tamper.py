"""Find code in a submission that changes what grading relies on, and report it.

`TamperCheck` is an nbgrader preprocessor that runs right after execution. It reads the code
cells the student controls (nbgrader has already put the locked and test cells back) and looks
for constructs that change torch, numpy, builtins, the course's checks or the kernel's error
reporting. Blocking findings withhold the automatic score: every test cell gets an error that
names the line, so the student sees it in the feedback and the instructor can review it in
Formgrader. Other findings (subprocesses, sockets, shell escapes, endless loops) are reported only.

`tamper_report()` collects, for every autograded notebook of an assignment, those findings, the
limits the sandbox hit, and the test cells the student edited, deleted or duplicated (which
nbgrader restores before grading).
"""

import ast
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.utils import compute_checksum

from .sandbox import METADATA_KEY, fail_cell, is_test_cell

MODULE_NAMES = {"torch", "F", "nn", "np", "numpy", "checks", "batchcourse", "math", "builtins", "sys",
                "torchvision", "functional", "data", "plotting", "models", "operator", "functools"}
ALLOWED_ASSIGNMENT_PREFIXES = ("torch.backends.",)
BLOCKING_NAMES = {
    "__builtins__": "touches __builtins__", "__code__": "replaces a function's code",
    "__globals__": "reaches into a function's globals", "__closure__": "reaches into a function's closure",
    "_execution_engine": "replaces torch's autograd engine", "showtraceback": "hides error reports",
    "TorchFunctionMode": "intercepts torch functions", "TorchDispatchMode": "intercepts torch operators",
    "_python_dispatch": "intercepts torch operators", "excepthook": "changes how errors are reported",
    "settrace": "traces the interpreter", "setprofile": "traces the interpreter",
    "get_ipython": "reaches into the kernel", "do_execute": "changes how the kernel runs cells",
    "run_cell": "changes how the kernel runs cells", "InteractiveShell": "reaches into the kernel",
    "student_side": "reaches into the grading channel", "_DYNAMIC_CLASS_TRACKER_BY_CLASS": "reaches into the grading channel",
    "_compiled_call_impl": "replaces what a module's call runs",
}
# Shown to the instructor for review, not refused: ways to reach torch's operators beside the public API.
NOTED_ATTRIBUTES = {"_C": "reaches torch._C", "ops": "calls torch operators through torch.ops",
                    "_ImperativeEngine": "makes an autograd engine of its own", "overloads": "lists operator overloads",
                    "no_stats": "names an operator overload", "default": "names an operator overload"}
BLOCKING_MODULES = {"builtins", "ctypes", "torch.library", "torch.utils._python_dispatch", "torch.overrides", "cffi",
                    "ipykernel", "IPython", "zmq", "jupyter_client", "batchcourse.grading", "cloudpickle"}
NOTED_MODULES = {"subprocess", "socket", "urllib", "requests", "http", "signal", "multiprocessing", "gc",
                 "importlib", "sqlite3", "shutil"}
NOTED_CALLS = {"exec", "eval", "compile", "__import__", "fork", "system", "popen", "kill"}


@dataclass(frozen=True)
class Finding:
    cell: int
    line: int
    blocking: bool
    what: str
    code: str


def _dotted(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _root_is_module(node, module_aliases: set[str]) -> bool:
    dotted = _dotted(node)
    return dotted is not None and dotted.split(".")[0] in module_aliases


def _module_aliases(tree) -> set[str]:
    aliases = set(MODULE_NAMES)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in {"torch", "numpy", "batchcourse"}:
            aliases.update(a.asname or a.name for a in node.names)
    return aliases


def _assignment_finding(target, aliases: set[str]) -> str | None:
    """Why assigning to (or deleting) `target` tampers with grading, or None."""
    if isinstance(target, ast.Attribute):
        if target.attr in {"__dict__", "__class__"}:
            return f"writes {target.attr}"
        dotted = _dotted(target)
        if _root_is_module(target, aliases) and not dotted.startswith(ALLOWED_ASSIGNMENT_PREFIXES):
            return f"changes {dotted}"
    if isinstance(target, ast.Subscript):
        container = target.value
        if _dotted(container) == "sys.modules":
            return "changes sys.modules"
        if isinstance(container, ast.Attribute) and container.attr == "__dict__":
            return "writes __dict__"
        if isinstance(container, ast.Call) and _dotted(container.func) == "vars" and container.args \
                and _root_is_module(container.args[0], aliases):
            return f"writes vars({_dotted(container.args[0])})"
    return None


def _python_source(source: str) -> str:
    """The cell without IPython's magics and shell escapes, so that ast can parse it."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def scan_source(source: str, cell_index: int) -> list[Finding]:
    findings = []
    lines = source.splitlines()

    def add(node_or_line, blocking: bool, what: str) -> None:
        line = node_or_line if isinstance(node_or_line, int) else getattr(node_or_line, "lineno", 1)
        code = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        findings.append(Finding(cell_index, line, blocking, what, code[:200]))

    for number, line in enumerate(lines, 1):
        if line.lstrip().startswith("!") or re.match(r"\s*%%?(system|bash|sh|script)\b", line):
            add(number, False, "runs a shell command")
    try:
        tree = ast.parse(_python_source(source))
    except SyntaxError:
        return findings
    aliases = _module_aliases(tree)
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, (ast.Assign, ast.Delete)):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            for part in (target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]):
                what = _assignment_finding(part, aliases)
                if what:
                    add(node, True, what)
                elif isinstance(part, ast.Subscript) and isinstance(part.value, ast.Call) \
                        and _dotted(part.value.func) == "vars":
                    add(node, False, "writes an object's attributes through vars()")
        if isinstance(node, ast.Call):
            name = _dotted(node.func) or ""
            last = name.rsplit(".", 1)[-1]
            if last in {"setattr", "delattr"} and node.args and _root_is_module(node.args[0], aliases):
                add(node, True, f"{last} on {_dotted(node.args[0])}")
            elif name in {"object.__setattr__", "type.__setattr__", "object.__delattr__", "type.__delattr__"}:
                add(node, True, f"calls {name}")
            elif last == "vars" and node.args and _root_is_module(node.args[0], aliases):
                add(node, True, f"reaches into vars({_dotted(node.args[0])})")
            elif last in NOTED_CALLS:
                add(node, False, f"calls {last}()")
        if isinstance(node, ast.Attribute):
            if node.attr in BLOCKING_NAMES:
                add(node, True, BLOCKING_NAMES[node.attr])
            elif node.attr == "modules" and _dotted(node.value) == "sys":
                add(node, True, "uses sys.modules")
            elif node.attr in NOTED_ATTRIBUTES and (node.attr in {"_C", "ops", "_ImperativeEngine"}
                                                    or "ops" in (_dotted(node) or "").split(".")):
                add(node, False, NOTED_ATTRIBUTES[node.attr])
        if isinstance(node, ast.Name) and node.id in BLOCKING_NAMES:
            add(node, True, BLOCKING_NAMES[node.id])
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if isinstance(node, ast.ImportFrom):
                modules += [f"{node.module}.{a.name}" for a in node.names]
            for module in modules:
                if module in BLOCKING_MODULES:
                    add(node, True, f"imports {module}")
                elif module.split(".")[0] in NOTED_MODULES:
                    add(node, False, f"imports {module}")
        if isinstance(node, ast.While) and isinstance(node.test, ast.Constant) and node.test.value is True:
            add(node, False, "has a `while True` loop")
    return findings


def student_cells(notebook) -> list[tuple[int, str]]:
    """Index and source of each code cell the student controls (everything but locked and test cells)."""
    cells = []
    for index, cell in enumerate(notebook.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code" and not meta.get("locked") and not (meta.get("grade") and not meta.get("solution")):
            cells.append((index, cell.source))
    return cells


def scan_notebook(notebook) -> list[Finding]:
    return [finding for index, source in student_cells(notebook) for finding in scan_source(source, index)]


class TamperCheck(NbGraderPreprocessor):
    """Record findings in the notebook's metadata; withhold the automatic score on blocking ones."""

    def preprocess(self, nb, resources):
        findings = scan_notebook(nb)
        nb.metadata.setdefault(METADATA_KEY, {})["findings"] = [asdict(f) for f in findings]
        blocking = [f for f in findings if f.blocking]
        if blocking:
            first = blocking[0]
            reason = (f"the automatic score is withheld because code cell {first.cell} (line {first.line}: "
                      f"`{first.code}`) {first.what}; remove code that changes torch, numpy, builtins or the "
                      "course's checks, and ask your instructor to review the grade")
            for cell in nb.cells:
                if is_test_cell(cell):
                    fail_cell(cell, "TamperingDetected", reason)
        return nb, resources


# ----------------------------------------------------------------------------------------
# The report.

def edited_test_cells(submitted, released) -> list[str]:
    """Test and locked cells of the release that the submission changed, deleted or duplicated."""
    notes = []
    released_cells = {c.metadata.nbgrader["grade_id"]: c for c in released.cells
                      if c.get("metadata", {}).get("nbgrader", {}).get("grade_id")}
    seen: dict[str, int] = {}
    for cell in submitted.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id is None:
            continue
        seen[grade_id] = seen.get(grade_id, 0) + 1
        original = released_cells.get(grade_id)
        if original is None:
            notes.append(f"{grade_id}: not in the released notebook")
        elif original.metadata.nbgrader.get("locked") and compute_checksum(cell) != compute_checksum(original):
            notes.append(f"{grade_id}: edited (restored before grading)")
    for grade_id, original in released_cells.items():
        if original.metadata.nbgrader.get("locked") and grade_id not in seen:
            notes.append(f"{grade_id}: deleted (restored before grading)")
        elif seen.get(grade_id, 0) > 1:
            notes.append(f"{grade_id}: duplicated {seen[grade_id]} times")
    return notes


def tamper_report(root: Path, assignment: str) -> dict[str, dict]:
    """For each student with suspicious code, limits hit or edited test cells: what was found."""
    released = nbformat.read(root / "notebooks" / assignment / f"{assignment}.ipynb", as_version=4)
    report = {}
    for graded in sorted((root / "autograde" / "autograded").glob(f"*/{assignment}/{assignment}.ipynb")):
        student = graded.parts[-3]
        notebook = nbformat.read(graded, as_version=4)
        meta = notebook.metadata.get(METADATA_KEY, {})
        submitted_path = root / "autograde" / "submitted" / student / assignment / f"{assignment}.ipynb"
        try:
            edits = edited_test_cells(nbformat.read(submitted_path, as_version=4), released)
        except Exception as error:  # noqa: BLE001 - an unreadable submission is itself worth reporting
            edits = [f"the submitted notebook could not be read: {error}"]
        entry = {"findings": meta.get("findings", []), "limits": meta.get("events", []),
                 "test_cells": edits + meta.get("repairs", [])}
        if any(entry.values()):
            report[student] = entry
    return report


def write_report(root: Path, assignment: str) -> Path:
    report = tamper_report(root, assignment)
    path = root / "autograde" / f"tamper_report_{assignment}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    for student, entry in report.items():
        blocking = [f for f in entry["findings"] if f["blocking"]]
        status = "SCORE WITHHELD" if blocking else "review"
        details = [f"{f['what']} (cell {f['cell']}, line {f['line']})" for f in entry["findings"]] + entry["limits"] + entry["test_cells"]
        print(f"  {status:14} {student}: " + "; ".join(details[:4]) + (" ..." if len(details) > 4 else ""))
    return path
