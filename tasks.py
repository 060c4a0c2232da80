#!/usr/bin/env python3
"""The course's task runner. Needs only Python 3.11+; it builds everything else itself.

    python3 tasks.py lab                 open the course in JupyterLab (student notebooks)
    python3 tasks.py test                run the whole test suite (what CI runs)
    python3 tasks.py check NOTEBOOK      self-check a notebook; exit code 1 when a test fails
    python3 tasks.py release             regenerate notebooks/ from solutions/ (instructors)
    python3 tasks.py grade [--zip]       autograde autograde/submitted/ (or an LMS download)
    python3 tasks.py bench [ID ...]      execute and grade; write benchmarks/results.json
    python3 tasks.py sweep ID            run an assignment's long experiment; write data/sweeps/ID.json
    python3 tasks.py handout [ID ...]    write the workshop handout (pages and a PDF, offline) to build/handout/
    python3 tasks.py setup               only create or update the environment in .venv/

Every task first makes sure .venv/ exists and matches requirements.txt; the first run
downloads the pinned packages (a few GB: torch's Linux wheels bring CUDA libraries, which
also run on CPU). No task downloads anything after that.
"""

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / "installed-requirements.sha256"
PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
TASKS = ("lab", "test", "check", "release", "grade", "bench", "sweep", "handout", "setup")


def requirements_digest() -> str:
    digest = hashlib.sha256()
    for name in ("requirements.txt", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def ensure_environment() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}.")
    wanted = requirements_digest()
    if PYTHON.exists() and STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    if not PYTHON.exists():
        print(f"Creating the environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("Installing the pinned packages (the first time takes a few minutes) ...", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-qq"]
    subprocess.run([*pip, "-r", str(ROOT / "requirements.txt")], check=True)
    subprocess.run([*pip, "--no-deps", "--no-build-isolation", "--editable", str(ROOT)], check=True)
    STAMP.write_text(wanted + "\n")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in TASKS:
        print(__doc__)
        return 2
    ensure_environment()
    if argv[0] == "setup":
        return 0
    env = dict(os.environ, JUPYTER_CONFIG_PATH=str(ROOT / "autograde"), JUPYTER_PLATFORM_DIRS="1",
               PATH=os.pathsep.join([str(PYTHON.parent), os.environ.get("PATH", "")]))
    return subprocess.call([str(PYTHON), "-m", "batchcourse.cli", *argv], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
