"""The environment check that 00_orientation runs first: it fails loudly when something is off."""

import platform
import re

import matplotlib
import torch
import torchvision

from .data import verify_mnist_files
from .paths import DATA_DIR, REPO_ROOT


class EnvironmentProblem(RuntimeError):
    """The course environment is not as the course expects."""


def pinned_versions() -> dict[str, str]:
    requirements = REPO_ROOT / "requirements.txt"
    if not requirements.is_file():
        return {}
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", requirements.read_text(), flags=re.MULTILINE)
    return {name.lower(): version for name, version in pins}


def _public(version: str) -> str:
    return version.split("+")[0]


def check_environment() -> dict[str, str]:
    """Check torch, torchvision, matplotlib and the data; return what was found.

    Raises EnvironmentProblem with one sentence saying what is wrong and how to fix it.
    """
    fix = "run `python3 tasks.py setup` from the course folder, then restart the kernel"
    found = {"python": platform.python_version(), "torch": torch.__version__,
             "torchvision": torchvision.__version__, "matplotlib": matplotlib.__version__}
    for name, version in pinned_versions().items():
        if name in found and _public(found[name]) != version:
            raise EnvironmentProblem(f"{name} {found[name]} is installed but the course pins {version}: {fix}.")
    try:
        torchvision.ops.box_area(torch.tensor([[0.0, 0.0, 2.0, 3.0]]))
        torchvision.ops.nms(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([1.0]), 0.5)
    except Exception as error:  # noqa: BLE001 - any failure here means a torch/torchvision mismatch
        raise EnvironmentProblem(f"torchvision's compiled operators do not work with this torch ({error}): {fix}.") from error
    found["data"] = f"MNIST {verify_mnist_files(DATA_DIR)} in {DATA_DIR}"
    found["device"] = "cpu" + (" (a CUDA GPU is also available)" if torch.cuda.is_available() else "")
    found["threads"] = str(torch.get_num_threads())
    return found
