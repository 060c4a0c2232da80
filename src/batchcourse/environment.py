"""The environment check that 00_orientation runs first: it fails loudly when something is off.

In the course's own environment (.venv/ made by tasks.py) every version must be the pinned one.
Anywhere else (Colab, a conda or pip environment of the learner's own) torch and friends may be
other versions: the check then says what differs and how to get the pinned ones, and goes on.
"""

import platform
import re
import sys
from pathlib import Path

import matplotlib
import torch
import torchvision

from .data import verify_mnist_files
from .paths import COURSE_FILES, DATA_DIR, INSTALLED, REPO_ROOT

SETUP_FIX = "run `python3 tasks.py setup` from the course folder, then restart the kernel"


class EnvironmentProblem(RuntimeError):
    """The course environment is not as the course expects."""


def pinned_versions() -> dict[str, str]:
    requirements = COURSE_FILES / "requirements.txt"
    if not requirements.is_file():
        return {}
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", requirements.read_text(), flags=re.MULTILINE)
    return {name.lower(): version for name, version in pins}


def in_course_environment() -> bool:
    """True when this Python is the clone's .venv/, which tasks.py keeps at the pinned versions."""
    return not INSTALLED and Path(sys.prefix).resolve() == (REPO_ROOT / ".venv").resolve()


def _public(version: str) -> str:
    return version.split("+")[0]


def check_environment() -> dict[str, str]:
    """Check torch, torchvision, matplotlib and the data; return what was found.

    Raises EnvironmentProblem with one sentence saying what is wrong and how to fix it.
    """
    strict = in_course_environment()
    found = {"python": platform.python_version(), "torch": torch.__version__,
             "torchvision": torchvision.__version__, "matplotlib": matplotlib.__version__}
    pins = pinned_versions()
    differ = {name: pins[name] for name in found if name in pins and _public(found[name]) != pins[name]}
    if differ and strict:
        name, version = next(iter(differ.items()))
        raise EnvironmentProblem(f"{name} {found[name]} is installed but the course pins {version}: {SETUP_FIX}.")
    try:
        torchvision.ops.box_area(torch.tensor([[0.0, 0.0, 2.0, 3.0]]))
        torchvision.ops.nms(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([1.0]), 0.5)
    except Exception as error:  # noqa: BLE001 - any failure here means a torch/torchvision mismatch
        fix = SETUP_FIX if strict else (
            "install the torchvision made for this torch (torch 2.k goes with torchvision 0.(k+15)), "
            "then restart the kernel")
        raise EnvironmentProblem(f"torchvision's compiled operators do not work with this torch ({error}): {fix}.") from error
    found["data"] = f"MNIST {verify_mnist_files(DATA_DIR)} in {DATA_DIR}"
    found["device"] = "cpu" + (" (a CUDA GPU is also available)" if torch.cuda.is_available() else "")
    found["threads"] = str(torch.get_num_threads())
    if differ:
        listed = ", ".join(f"{name} {found[name]} (course: {version})" for name, version in differ.items())
        wanted = " ".join(f"{name}=={version}" for name, version in differ.items())
        found["note"] = (f"this environment has {listed}; the course was tested only with its pinned versions. "
                         f"If a cell fails or a result looks off: `pip install {wanted}` (in a notebook: "
                         "`%pip install ...`), then restart the kernel.")
    return found
