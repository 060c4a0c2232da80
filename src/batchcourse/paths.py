"""Where the course's folders are, whether run from a clone or from an installed package.

In a clone (and its editable install) the files live in the repository: data/, requirements.txt,
autograde/. A non-editable install (`pip install .`, or the wheel from `python3 tasks.py wheel`)
carries copies of them in `batchcourse/shipped/`, laid out as in the repository (setup.py copies them).
"""

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SHIPPED_DIR = PACKAGE_DIR / "shipped"
REPO_ROOT = PACKAGE_DIR.parents[1]
INSTALLED = SHIPPED_DIR.is_dir()
# The folder that holds data/, requirements.txt and autograde/nbgrader_config.py.
COURSE_FILES = SHIPPED_DIR if INSTALLED else REPO_ROOT
DATA_DIR = Path(os.environ.get("BATCHCOURSE_DATA", COURSE_FILES / "data"))
SOLUTIONS_DIR = REPO_ROOT / "solutions"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
AUTOGRADE_DIR = REPO_ROOT / "autograde"


def assignment_ids() -> list[str]:
    """The assignments present, in course order (their ids start with a two-digit number)."""
    return sorted(p.name for p in SOLUTIONS_DIR.iterdir() if (p / f"{p.name}.ipynb").is_file())


def is_autograding() -> bool:
    """True while nbgrader grades a notebook: long demos shrink then."""
    return os.environ.get("NBGRADER_EXECUTION") in {"autograde", "validate"}
