"""Where the course's folders are, whether run from a clone or a copy of one notebook."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("BATCHCOURSE_DATA", REPO_ROOT / "data"))
SOLUTIONS_DIR = REPO_ROOT / "solutions"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
AUTOGRADE_DIR = REPO_ROOT / "autograde"


def assignment_ids() -> list[str]:
    """The assignments present, in course order (their ids start with a two-digit number)."""
    return sorted(p.name for p in SOLUTIONS_DIR.iterdir() if (p / f"{p.name}.ipynb").is_file())


def is_autograding() -> bool:
    """True while nbgrader grades a notebook: long demos shrink then."""
    return os.environ.get("NBGRADER_EXECUTION") in {"autograde", "validate"}
