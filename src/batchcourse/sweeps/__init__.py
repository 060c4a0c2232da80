"""Experiments too long to run live in a notebook: each assignment that has one ships its full results.

`python3 tasks.py sweep ID` runs the experiment of assignment ID (the module named after the id
without its number, e.g. `batch_size_one` for `05_batch_size_one`) and writes
`data/sweeps/ID.json`: the results, with the command, the machine and the time it took. A notebook
runs a reduced version of the same experiment live and plots it next to `load(ID)`.

An experiment module defines `run(quick: bool = False) -> dict` returning JSON-ready results. A "headline" entry in
them goes to the top level of the file: a list of the comparisons a page states, each
{"claim": id, "metric": "test accuracy" or "test error %", "better": {"label", "runs"}, "worse": {"label", "runs"}}
with one value per seed in "runs" (tests/test_sweeps.py checks each claim's gap).
"""

import importlib
import json
import os
import platform
import time
from datetime import date
from pathlib import Path

import torch

from ..paths import DATA_DIR

SWEEPS_DIR = DATA_DIR / "sweeps"


def module_name(assignment: str) -> str:
    return f"{__name__}.{assignment.split('_', 1)[1]}"


def results_path(assignment: str) -> Path:
    return SWEEPS_DIR / f"{assignment}.json"


def machine() -> dict:
    return {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "processor": platform.machine(),
            "system": platform.system(), "python": platform.python_version(), "torch": torch.__version__}


def run(assignment: str, quick: bool = False) -> Path:
    """Run the assignment's full experiment (or a quick one, to try it) and write its results file."""
    experiment = importlib.import_module(module_name(assignment))
    start = time.perf_counter()
    results = experiment.run(quick=quick)
    record = {
        "assignment": assignment,
        "command": f"python3 tasks.py sweep {assignment}" + (" --quick" if quick else ""),
        "measured_on": str(date.today()),
        "machine": machine(),
        "seconds": round(time.perf_counter() - start, 1),
        "results": results,
    }
    if "headline" in results:  # the comparisons a page states, with every seed's result: kept at the top level
        record["headline"] = results.pop("headline")
    path = results_path(assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def load(assignment: str) -> dict:
    """The shipped record of an assignment's full experiment (results under "results")."""
    path = results_path(assignment)
    if not path.is_file():
        raise FileNotFoundError(
            f"The results file {path} is missing: restore it with `git checkout -- data/sweeps` "
            f"or remake it with `python3 tasks.py sweep {assignment}`.")
    return json.loads(path.read_text())


@torch.no_grad()
def batchnorm_inputs(model: torch.nn.Module, images) -> list[tuple[torch.nn.BatchNorm2d, torch.Tensor]]:
    """Each BatchNorm2d layer of an eval-mode copy of `model`, with what it receives when `images` go through."""
    import copy

    model = copy.deepcopy(model).eval()
    inputs = {}
    layers = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    hooks = [layer.register_forward_hook(lambda layer, args, out: inputs.__setitem__(layer, args[0])) for layer in layers]
    model(images)
    for hook in hooks:
        hook.remove()
    return [(layer, inputs[layer]) for layer in layers]
