"""The course's part of the hub's configuration: load it from the hub's jupyterhub_config.py with
`exec(open("/etc/jupyterhub/batchcourse_hub.py").read())` (a copy of this file) and fill in the names below.

It needs a hub that gives each person a Unix account of their own (the default LocalProcessSpawner, or
SystemdSpawner): nbgrader's exchange tells students apart by the owner of their files. For Zero to JupyterHub on
Kubernetes, where every server runs as the same account, see kubernetes/ and the README.

- Formgrader runs as a hub service named after the course, as the instructor's account, in the course folder,
  with the course's environment and configuration (autograde/nbgrader_config.py), at /services/batchcourse/formgrader.
  The hub makes the service's token itself.
- Group formgrade-batchcourse: instructors and graders; they may open that service and read the students' group.
- Group nbgrader-batchcourse: students; they see the course in the Assignment List, fetch and submit, and
  `tasks.py collect` collects only them.
- Every server gets NBGRADER_EXCHANGE, so students and instructor use the same exchange, and
  BATCHCOURSE_USERS_BIN, which profile.d/batchcourse.sh puts first on PATH in the hub's terminals.
- Before a server starts, its user's home is closed to other accounts (mode 700).
"""

import os
import pwd
import stat
import sys

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

COURSE = "batchcourse"
INSTRUCTOR = "instructor"  # the Unix account that owns the course folder
COURSE_ROOT = f"/home/{INSTRUCTOR}/batchcourse"  # where that account cloned the course and ran `python3 tasks.py setup`
EXCHANGE = "/srv/nbgrader/exchange"  # outside every home; `tasks.py publish` creates it (mode 1777) when it may
STUDENTS = []  # the students' hub user names (or add them later to the group on the hub's admin page)
USERS_BIN = os.path.dirname(sys.executable)  # the bin folder of the Python the users' servers run (here: the hub's)


def close_home(spawner) -> None:
    """A user's home closed to group and others before their server starts (useradd makes it 755 on Debian)."""
    home = pwd.getpwnam(spawner.user.name).pw_dir
    mode = stat.S_IMODE(os.stat(home).st_mode)
    if mode & 0o077:
        os.chmod(home, mode & ~0o077)


c.Spawner.pre_spawn_hook = close_home
c.Spawner.cmd = [os.path.join(USERS_BIN, "jupyterhub-singleuser")]
c.Spawner.environment.update({"NBGRADER_EXCHANGE": EXCHANGE, "BATCHCOURSE_USERS_BIN": USERS_BIN})
# no calls to the internet from JupyterLab (its news and update checks; lab settings in the README keep it from asking)
c.Spawner.args = ["--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
c.Authenticator.allowed_users.update({INSTRUCTOR, *STUDENTS})

c.JupyterHub.load_groups = {
    f"formgrade-{COURSE}": {"users": [INSTRUCTOR]},
    f"nbgrader-{COURSE}": {"users": STUDENTS},
}
c.JupyterHub.load_roles = [
    # the instructors' and graders' way into Formgrader; reading the students' group is `tasks.py collect`'s roster
    {"name": f"formgrade-{COURSE}", "groups": [f"formgrade-{COURSE}"],
     "scopes": [f"access:services!service={COURSE}", f"read:groups!group=nbgrader-{COURSE}"]},
    # students: membership of the group is their role (nbgrader reads it); they get no extra scope
    {"name": f"nbgrader-{COURSE}", "groups": [f"nbgrader-{COURSE}"], "scopes": []},
    # the service reads users and their groups, for nbgrader's list of students and courses
    {"name": f"{COURSE}-service", "services": [COURSE],
     "scopes": ["list:users", "read:users", "read:users:groups", f"read:groups!group=nbgrader-{COURSE}"]},
    # a single-user server may read its own user's groups (nbgrader's course list), and an instructor's the roster
    {"name": "server", "scopes": ["inherit"]},
]
c.JupyterHub.services = [
    {
        "name": COURSE,
        "url": "http://127.0.0.1:9999",
        "command": [f"{COURSE_ROOT}/.venv/bin/python", "-m", "jupyterhub.singleuser",
                    f"--ServerApp.root_dir={COURSE_ROOT}", "--KernelManager.transport_encryption=auto"],
        "user": INSTRUCTOR,
        "cwd": COURSE_ROOT,
        "environment": {
            "JUPYTER_CONFIG_PATH": f"{COURSE_ROOT}/autograde",
            "JUPYTER_PLATFORM_DIRS": "1",
            "NBGRADER_EXCHANGE": EXCHANGE,
            "JUPYTERHUB_DEFAULT_URL": "/lab",
        },
        "oauth_no_confirm": True,
    },
]
