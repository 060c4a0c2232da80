"""The benchmark: execution time and peak memory of every solution notebook, and autograde
time per submission for a synthetic class. Writes benchmarks/results.json. With --class-size N (opt-in,
a few minutes): a class of N submissions graded with 1 and with 2 workers, to measure parallel grading.
With --side-by-side N: for 00 and 04, in the same run, what grading a class of N right answers costs per
submission (`tasks.py grade`'s path, 1 and 2 workers) next to a plain `jupyter nbconvert --execute` of the same
notebook (one alone, then two at once: the speed-up the machine itself gives a second run), and the proportional
memory (PSS: shared pages counted once) of the grading processes and kernels.

Budgets on the course's reference machine (2 CPU cores): a solution notebook executes in 60 s
at most, one submission autogrades in 45 s at most, a kernel peaks at 2 GB at most.
"""

import importlib.util
import io
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
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


class PssSampler:
    """Samples the proportional set size of this process's descendants while a block runs: the peak of the
    whole tree, of one kernel, and of one grading process (nbgrader) with its test processes."""

    KERNEL_WORDS = ("ipykernel", "kernel_launcher")

    def __init__(self, interval: float = 0.25):
        self.interval, self.peaks = interval, {"tree_mb": 0.0, "kernel_mb": 0.0, "grader_mb": 0.0}
        self._stop = threading.Event()

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.wait(self.interval):
            processes = _descendants(os.getpid())
            pss = {pid: _pss_mb(pid) for pid in processes}
            kernels = [pid for pid, line in processes.items() if any(w in line for w in self.KERNEL_WORDS)]
            graders = [pid for pid, line in processes.items() if "nbgrader" in line and pid not in kernels]
            self.peaks["tree_mb"] = max(self.peaks["tree_mb"], sum(pss.values()))
            self.peaks["kernel_mb"] = max([self.peaks["kernel_mb"], *(pss[pid] for pid in kernels)])
            self.peaks["grader_mb"] = max([self.peaks["grader_mb"], *(pss[pid] for pid in graders)])


def _descendants(root: int) -> dict[int, str]:
    """pid -> command line of every process below `root` (read from /proc; Linux only)."""
    parents, lines = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:  # a process may end between the two reads: keep it only when both worked
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            line = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        parents[int(stat.parent.name)], lines[int(stat.parent.name)] = parent, line
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = lines[pid]
                frontier.append(pid)
    return found


def _pss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def plain_execute_seconds(notebook, *workdirs: Path) -> float:
    """A plain `jupyter nbconvert --execute` of the notebook, as a learner or an instructor would run it; given
    several folders, one in each at the same time, with the cores shared as grading workers share them."""
    commands = []
    for workdir in workdirs:
        nbformat.write(notebook, workdir / "plain.ipynb")
        commands.append(([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                          "--ExecutePreprocessor.timeout=900", "--output", "plain-executed.ipynb", "plain.ipynb"],
                         workdir))
    with parallel.threads_per_worker(len(workdirs)):
        start = time.perf_counter()
        running = [subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                   for argv, cwd in commands]
        for process in running:
            _, errors = process.communicate()
            if process.returncode:
                raise RuntimeError(f"nbconvert --execute failed: {errors.decode()[-2000:]}")
        return time.perf_counter() - start


def memory_peaks(assignment: str, scratch: Path, submission, workers: int) -> dict:
    """Peak PSS while `workers` workers grade two submissions each. Measured apart from the timed class: reading
    every process's memory map four times a second takes CPU from the grading it measures (a class of 8 of
    00_orientation gave a speed-up of 1.41 with the sampler running and 1.87 without)."""
    course = grading.ScratchCourse.create(assignment, scratch)
    course.submit({f"student{i:03d}": submission for i in range(2 * workers)})
    with PssSampler() as sampler, parallel.grading_servers(workers):
        parallel.grade_all(assignment, course.root, course.db_url, workers, stream=io.StringIO())
    return sampler.peaks


def machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since it started (Linux /proc/stat), None elsewhere."""
    try:
        user, nice, system, idle, iowait, *rest = map(int, Path("/proc/stat").read_text().split("\n")[0].split()[1:])
    except (OSError, ValueError):
        return None
    return (user + nice + system + sum(rest[:3])) / os.sysconf("SC_CLK_TCK")


def per_workers(workers: int) -> str:
    """A results key: 1_worker, 2_workers."""
    return f"{workers}_worker{'s' if workers > 1 else ''}"


def grading_versus_execution(assignment: str, class_size: int, memory: bool = True) -> dict:
    """Grading a class of `class_size` right answers (one worker, then two) next to a plain execution of the
    same notebook, in one run: seconds per submission, their ratio, the speed-up, and (measured apart) peak PSS. The
    preloaded servers start once per grading command, whatever the class (`grade` starts them before it grades the
    solution): their start is timed on its own, and the speed-up is given without it and with it."""
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        seconds, started, peaks, busy = {}, {}, {}, {}
        for workers in (1, 2):
            course = grading.ScratchCourse.create(assignment, scratch / f"workers{workers}")
            right = grading.make_submission(course.student_nb, grading.solution_code(course.solution_nb))
            course.submit({f"student{i:03d}": right for i in range(class_size)})
            if workers == 1:
                folders = [shutil.copytree(SOLUTIONS_DIR / assignment, scratch / f"plain{k}") for k in (1, 2)]
                execute = [plain_execute_seconds(right, folder) for folder in folders]
                side_by_side = plain_execute_seconds(right, *folders)
            start = time.perf_counter()
            with parallel.grading_servers(workers):  # as `grade` starts them, before it checks the grader
                started[workers] = time.perf_counter() - start
                busy_before = machine_busy_seconds()
                not_graded = parallel.grade_all(assignment, course.root, course.db_url, workers, stream=io.StringIO())
                seconds[workers] = time.perf_counter() - start - started[workers]
                if busy_before is not None:
                    busy[workers] = machine_busy_seconds() - busy_before
            assert not not_graded, f"{workers} worker(s) could not grade {not_graded}"
            if memory:
                peaks[workers] = memory_peaks(assignment, scratch / f"memory{workers}", right, workers)
    plain = sum(execute) / len(execute)
    per_submission = seconds[1] / class_size
    speedup = seconds[1] / seconds[2]
    # two plain executions at once against one after the other: what the machine itself gives a second notebook run
    # beside the first, with no grader at all
    plain_speedup = sum(execute) / side_by_side
    return {
        "class_size": class_size,
        "plain_nbconvert_execute_seconds": round(plain, 2),
        "grading_seconds_per_submission_1_worker": round(per_submission, 2),
        "grading_over_execute_ratio": round(per_submission / plain, 2),
        "grading_seconds_per_submission_2_workers": round(seconds[2] / class_size, 2),
        "speedup_2_workers": round(speedup, 2),
        "plain_nbconvert_execute_seconds_2_side_by_side": round(side_by_side, 2),
        "plain_speedup_2_side_by_side": round(plain_speedup, 2),
        "speedup_2_workers_over_plain_speedup": round(speedup / plain_speedup, 2),
        "servers_start_seconds": {per_workers(w): round(t, 2) for w, t in started.items()},
        "speedup_2_workers_start_included": round((seconds[1] + started[1]) / (seconds[2] + started[2]), 2),
        # how many cores one worker already keeps busy (its kernel, grader and test processes overlap): 2 workers on
        # 2 cores can be at most 2 / that many times faster
        "busy_cpu_seconds_per_submission": {per_workers(w): round(b / class_size, 2) for w, b in busy.items()},
        "cores_busy_1_worker": round(busy[1] / seconds[1], 2) if 1 in busy else None,
        "peak_pss_mb": {per_workers(workers): {k: round(v) for k, v in p.items()}
                        for workers, p in peaks.items()},
    }


def median_of_rounds(rounds: list[dict]) -> dict:
    """One result for several rounds of grading_versus_execution: each timing its median over the rounds (the class
    size and the memory figures are the first round's, the only one that measures memory), and each round's
    speed-ups."""
    def median(values: list):
        if isinstance(values[0], dict):
            return {key: median([v[key] for v in values]) for key in values[0]}
        return None if values[0] is None else round(statistics.median(values), 2)

    first_round_only = ("class_size", "peak_pss_mb")
    result = {key: rounds[0][key] if key in first_round_only else median([r[key] for r in rounds]) for key in rounds[0]}
    result["rounds"] = len(rounds)
    for key in ("speedup_2_workers", "plain_speedup_2_side_by_side"):
        result[f"{key}_each_round"] = [r[key] for r in rounds]
    return result


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


SIDE_BY_SIDE = ("00_orientation", "04_running_stats_and_eval")


def run_benchmark(submissions: int, assignments: list[str], class_size: int = 0, side_by_side: int = 0,
                  rounds: int = 1) -> int:
    """Measure the given assignments; the figures of assignments not measured now stay as they were.

    With `class_size`, also grade a class of that size with 1 and 2 workers (on the first assignment).
    With `side_by_side`, grade a class of that size of 00 and 04 next to a plain execution of each, `rounds` times
    (the medians are kept: on a machine shared with others, one round's speed-up can be off by a tenth)."""
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
    if side_by_side:
        results["grading_versus_execution"] = {}
        for assignment in SIDE_BY_SIDE:
            measured = [grading_versus_execution(assignment, side_by_side, memory=r == 0) for r in range(rounds)]
            results["grading_versus_execution"][assignment] = median_of_rounds(measured)
            print(f"grading versus execution, {assignment}: {results['grading_versus_execution'][assignment]}", flush=True)
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
