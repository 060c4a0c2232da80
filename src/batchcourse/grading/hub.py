"""nbgrader's exchange on a shared server (JupyterHub): publish assignments to students, collect their submissions.

The exchange is a folder every account can reach (NBGRADER_EXCHANGE, e.g. /srv/nbgrader/exchange); the course
folder, with solutions/, the gradebook and the submissions, is closed to every account but the instructor's.
"""

import json
import os
import pwd
import stat
import urllib.error
import urllib.request
from pathlib import Path

from nbgrader.exchange.default.collect import ExchangeCollect

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


def students_group() -> str:
    """The hub's group of the course's students (autograde/jupyterhub/jupyterhub_config.py)."""
    return f"nbgrader-{course_id()}"


def hub_group_members(group: str) -> set[str]:
    """The members of a hub group, asked of the hub with this server's token (a hub terminal has both)."""
    url = os.environ["JUPYTERHUB_API_URL"].rstrip("/") + f"/groups/{group}"
    request = urllib.request.Request(url, headers={"Authorization": f"token {os.environ['JUPYTERHUB_API_TOKEN']}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return set(json.load(answer)["users"])
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"the hub refused to name the members of its group {group} (HTTP {error.code}); this "
                           f"account needs the scope read:groups!group={group} (jupyterhub_config.py gives it to "
                           f"the group formgrade-{course_id()})") from error


def roster(db_url: str) -> tuple[set[str], str]:
    """The course's students, and where that list comes from: in a hub terminal, the hub's group of students;
    elsewhere, the students in the gradebook (`nbgrader db student add` or `import`)."""
    if os.environ.get("JUPYTERHUB_API_URL") and os.environ.get("JUPYTERHUB_API_TOKEN"):
        return hub_group_members(students_group()), f"the hub's group {students_group()}"
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gradebook:
        return {student.id for student in gradebook.students}, "the gradebook's students"


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



class RosterCollect(ExchangeCollect):
    """nbgrader's collect, Formgrader's Collect button included (autograde/nbgrader_config.py names it), limited
    like `tasks.py collect`: only the course's students (`roster`), and only submissions their own account made."""

    def init_src(self):
        super().init_src()
        try:
            students, source = roster(self.coursedir.db_url)
        except RuntimeError as error:
            self.fail(str(error))
        kept = []
        for record in self.src_records:
            student = record["username"]
            owner = submission_owner(Path(self.inbound_path) / record["filename"])
            if student not in students:
                self.log.warning(f"NOT COLLECTED {student}: not a student of the course (not in {source})")
            elif owner != student:
                self.log.error(f"NOT COLLECTED {student}: the submission in this name was made by {owner}")
            else:
                kept.append(record)
        self.src_records = kept
