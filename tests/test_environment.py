"""The pins: torch and torchvision a matching pair, environment.yml in step with requirements.txt."""

import re
from pathlib import Path

import pytest
import torch
import torchvision

from batchcourse.environment import check_environment, pinned_versions

ROOT = Path(__file__).resolve().parents[1]


def test_every_requirement_is_pinned_exactly():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            # An environment marker may follow: the CUDA libraries are installed only where torch needs them.
            assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[^\s=;]+( ; \S.*)?", line.strip()), f"not an exact pin: {line}"


def test_cuda_only_packages_are_limited_to_linux():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if re.match(r"(nvidia-|cuda-|triton==)", line):
            assert "sys_platform == 'linux'" in line, f"installs on macOS and Windows too: {line}"


def test_torch_and_torchvision_are_the_pinned_pair():
    pins = pinned_versions()
    assert torch.__version__.split("+")[0] == pins["torch"]
    assert torchvision.__version__.split("+")[0] == pins["torchvision"]
    torch_minor = int(pins["torch"].split(".")[1])
    assert pins["torchvision"].startswith(f"0.{torch_minor + 15}."), "torchvision 0.(k+15) pairs with torch 2.k"


def test_environment_yml_uses_requirements_txt():
    text = (ROOT / "environment.yml").read_text()
    assert "- -r requirements.txt" in text
    python = re.search(r"- python=(\d+\.\d+)", text).group(1)
    assert python == "3.11"


def test_environment_check_passes_here():
    found = check_environment()
    assert found["data"].startswith("MNIST subset")


def test_other_versions_outside_the_course_environment_get_a_note_not_an_error(monkeypatch):
    from batchcourse import environment

    monkeypatch.setattr(environment, "pinned_versions", lambda: {"torch": "2.0.0"})
    monkeypatch.setattr(environment, "in_course_environment", lambda: False)
    note = check_environment()["note"]
    assert f"torch {torch.__version__} (course: 2.0.0)" in note and "pip install torch==2.0.0" in note
    monkeypatch.setattr(environment, "in_course_environment", lambda: True)
    with pytest.raises(environment.EnvironmentProblem, match="run `python3 tasks.py setup`"):
        check_environment()

