"""nbgrader's exchange on a shared server (JupyterHub): publish assignments to students, collect their submissions.

The exchange is a folder every account can reach (NBGRADER_EXCHANGE, e.g. /srv/nbgrader/exchange); the course
folder, with solutions/, the gradebook and the submissions, is closed to every account but the instructor's.
"""

import os
import pwd
import stat
from pathlib import Path

from .. import grading

SHARED_EXCHANGE_MODE = 0o1777  # anyone may create their course folder; the sticky bit: nobody may move another's


def course_id() -> str:
    """The course's name in the exchange (CourseDirectory.course_id in autograde/nbgrader_config.py)."""
    return grading.nbgrader_config().CourseDirectory.course_id


def exchange_root() -> Path:
    """The exchange the course's configuration names (NBGRADER_EXCHANGE, else autograde/exchange)."""
    return Path(grading.nbgrader_config().Exchange.root)


def close_course(root: Path) -> None:
    """Take every right on the course folder from the group and other accounts (`chmod go-rwx`), so that no
    student can read solutions/, the gradebook or the submissions; what is inside keeps its modes."""
    mode = stat.S_IMODE(root.stat().st_mode)
    if mode & 0o077:
        root.chmod(mode & ~0o077)
        print(f"{root} is now closed to other accounts (mode {mode & ~0o077:o}, was {mode:o})")


def ensure_shared_exchange(exchange: Path, root: Path) -> None:
    """Create the exchange with the mode nbgrader expects, plus the sticky bit; say when students cannot reach it."""
    if not exchange.is_dir():
        exchange.mkdir(parents=True)
        exchange.chmod(SHARED_EXCHANGE_MODE)
    elif exchange.stat().st_uid == os.geteuid() and stat.S_IMODE(exchange.stat().st_mode) != SHARED_EXCHANGE_MODE:
        exchange.chmod(SHARED_EXCHANGE_MODE)
    if exchange.resolve().is_relative_to(root.resolve()):
        print(f"Note: the exchange {exchange} is inside the course folder, which other accounts cannot open; for "
              "students with accounts of their own, set NBGRADER_EXCHANGE to a shared folder (README: On JupyterHub).")


def submission_owner(path: Path) -> str:
    uid = path.lstat().st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"user id {uid}"


def submissions_in_exchange(assignment: str, exchange: Path | None = None) -> dict[Path, tuple[str, str]]:
    """Each submission of `assignment` in the exchange's inbound folder -> (the student it names, its owner).

    nbgrader names a submission `student+assignment+time+random`."""
    inbound = (exchange or exchange_root()) / course_id() / "inbound"
    return {path: (path.name.rsplit("+", 3)[0], submission_owner(path))
            for path in sorted(inbound.glob(f"*+{assignment}+*"))}


def forged_names(assignment: str, exchange: Path | None = None) -> dict[str, list[str]]:
    """Students with a submission made by another account -> those accounts (nbgrader itself only warns)."""
    forged = {}
    for student, owner in submissions_in_exchange(assignment, exchange).values():
        if student != owner:
            forged.setdefault(student, []).append(owner)
    return forged
