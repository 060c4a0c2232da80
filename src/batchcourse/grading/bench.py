"""The benchmark: execution time and peak memory of every solution notebook, and autograde
time per submission for a synthetic class. Writes benchmarks/results.json. With --class-size N (opt-in,
a few minutes): a class of N submissions graded with 1 and with 2 workers, to measure parallel grading.

Budgets on the course's reference machine (2 CPU cores): a solution notebook executes in 60 s
at most, one submission autogrades in 45 s at most, a kernel peaks at 2 GB at most.
"""

import importlib.util
import io
import json
import os
import platform
import resource
import tempfile
import time
from datetime import date
from pathlib import Path

import nbformat
import torch
from nbclient import NotebookClient

from .. import grading
from . import parallel
from ..paths import REPO_ROOT, SOLUTIONS_DIR

RESULTS = REPO_ROOT / "benchmarks" / "results.json"
CASES_DIR = REPO_ROOT / "tests" / "cases"
BUDGETS = {"execute_seconds": 60, "autograde_seconds_per_submission": 45, "peak_memory_mb": 2048}
PEAK_RSS_CELL = "import resource; print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def _execute(notebook, workdir: Path) -> tuple[float, float]:
    """Execute a notebook; return (seconds, the kernel's peak memory in MB)."""
    notebook.cells.append(nbformat.v4.new_code_cell(PEAK_RSS_CELL))
    start = time.perf_counter()
    NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}).execute()
    seconds = time.perf_counter() - start
    text = "".join(o.get("text", "") for o in notebook.cells[-1].outputs)
    peak_kb = int(text.split("PEAK_RSS_KB")[1].split()[0])
    return seconds, peak_kb / 1024


def floor() -> dict:
    """Kernel start plus `import torch`: what every notebook pays before its first line."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import torch")])
    seconds, peak_mb = _execute(notebook, REPO_ROOT)
    return {"seconds": round(seconds, 2), "peak_memory_mb": round(peak_mb)}


def _cases(assignment: str):
    path = CASES_DIR / f"{assignment}.py"
    if not path.is_file():
        return {}, {}
    spec = importlib.util.spec_from_file_location(f"cases_{assignment}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.WRONG, module.CORRECT


def synthetic_class(assignment: str, student_nb, solution_nb, size: int) -> list:
    """`size` submissions: the solution, the blank notebook, then every case in turn, repeated."""
    solution = grading.solution_code(solution_nb)
    wrong, correct = _cases(assignment)
    variants = [grading.make_submission(student_nb, solution), student_nb]
    for table in (correct, wrong):
        for function, answers in table.items():
            for answer in answers:  # (why, code, ...): wrong answers may also name the cells that catch them
                variants.append(grading.make_submission(student_nb, {**solution, function: answer[1]}))
    return [variants[i % len(variants)] for i in range(size)]


def _class_of(assignment: str, scratch: Path, submissions: int) -> grading.ScratchCourse:
    course = grading.ScratchCourse.create(assignment, scratch)
    notebooks = synthetic_class(assignment, course.student_nb, course.solution_nb, submissions)
    course.submit({f"student{i:03d}": notebook for i, notebook in enumerate(notebooks)})
    return course


def isolation_overhead(assignment: str, submissions: int = 5) -> dict:
    """Autograde the same submissions with and without the sandbox: what isolation costs per submission."""
    seconds = {}
    with tempfile.TemporaryDirectory() as scratch:
        course = _class_of(assignment, Path(scratch), submissions)
        for label, extra in (("sandboxed", []), ("plain", ["--SandboxedExecute.isolate=False"])):
            start = time.perf_counter()
            course.autograde(*extra)
            seconds[label] = (time.perf_counter() - start) / submissions
    return {"submissions": submissions, "sandboxed_seconds_per_submission": round(seconds["sandboxed"], 1),
            "plain_seconds_per_submission": round(seconds["plain"], 1),
            "overhead_seconds_per_submission": round(seconds["sandboxed"] - seconds["plain"], 1)}


def parallel_grading(assignment: str, size: int = 40) -> dict:
    """The same class of `size` submissions graded with 1 and with 2 workers: wall time, speed-up, throughput.

    Scores must be identical; the canary is left out (it runs once per grading, whatever the class)."""
    seconds, found = {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        for workers in (1, 2):
            course = _class_of(assignment, Path(scratch) / f"workers{workers}", size)
            start = time.perf_counter()
            not_graded = parallel.grade_all(assignment, course.root, course.db_url, workers, stream=io.StringIO())
            seconds[workers] = time.perf_counter() - start
            assert not not_graded, f"{workers} worker(s) could not grade {not_graded}"
            found[workers] = course.scores()
    assert found[1] == found[2], "2 workers gave other scores than 1"
    cores = min(2, os.cpu_count() or 1)
    return {
        "assignment": assignment, "submissions": size, "identical_scores": True,
        "seconds_1_worker": round(seconds[1], 1), "seconds_2_workers": round(seconds[2], 1),
        "speedup": round(seconds[1] / seconds[2], 2),
        "seconds_per_submission_1_worker": round(seconds[1] / size, 2),
        "seconds_per_submission_2_workers": round(seconds[2] / size, 2),
        "submissions_per_minute_per_core": round(60 * size / seconds[2] / cores, 1),
    }


def bench_assignment(assignment: str, submissions: int) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        execute_seconds, peak_mb = _execute(grading.read(SOLUTIONS_DIR / assignment / f"{assignment}.ipynb"),
                                            SOLUTIONS_DIR / assignment)
        course = _class_of(assignment, Path(scratch), submissions)
        start = time.perf_counter()
        course.autograde()
        autograde_seconds = time.perf_counter() - start
    grading_peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "execute_seconds": round(execute_seconds, 1),
        "kernel_peak_memory_mb": round(peak_mb),
        "submissions": submissions,
        "autograde_seconds_total": round(autograde_seconds, 1),
        "autograde_seconds_per_submission": round(autograde_seconds / submissions, 1),
        "grading_peak_memory_mb_so_far": round(grading_peak_mb),
    }


def within_budget(result: dict) -> bool:
    return (result["execute_seconds"] <= BUDGETS["execute_seconds"]
            and result["autograde_seconds_per_submission"] <= BUDGETS["autograde_seconds_per_submission"]
            and result["kernel_peak_memory_mb"] <= BUDGETS["peak_memory_mb"])


def run_benchmark(submissions: int, assignments: list[str], class_size: int = 0) -> int:
    """Measure the given assignments; the figures of assignments not measured now stay as they were.

    With `class_size`, also grade a class of that size with 1 and 2 workers (on the first assignment)."""
    previous = json.loads(RESULTS.read_text()).get("assignments", {}) if RESULTS.is_file() else {}
    results = {
        "measured_on": str(date.today()),
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "python": platform.python_version(), "torch": torch.__version__},
        "budgets": BUDGETS,
        "floor_kernel_start_and_import_torch": floor(),
        "assignments": dict(previous),
    }
    print(f"floor: {results['floor_kernel_start_and_import_torch']}", flush=True)
    results["isolation"] = isolation_overhead(assignments[0])
    print(f"isolation: {results['isolation']}", flush=True)
    if class_size:
        results["parallel_grading"] = parallel_grading(assignments[0], class_size)
        print(f"parallel grading: {results['parallel_grading']}", flush=True)
    for assignment in assignments:
        result = bench_assignment(assignment, submissions)
        result["within_budget"] = within_budget(result)
        result["measured_on"] = str(date.today())
        results["assignments"][assignment] = result
        print(f"{assignment}: {result}", flush=True)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(REPO_ROOT)}")
    return 0 if all(results["assignments"][a]["within_budget"] for a in assignments) else 1
