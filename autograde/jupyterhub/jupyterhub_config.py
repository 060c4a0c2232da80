"""The course's part of the hub's configuration: add it to the hub's jupyterhub_config.py (or load it from there
with `exec(open(".../autograde/jupyterhub/jupyterhub_config.py").read())`) and fill in the four names below.

It needs a hub that gives each person a Unix account of their own (the default LocalProcessSpawner, or
SystemdSpawner): nbgrader's exchange tells students apart by the owner of their files.

- Formgrader runs as a hub service named after the course, as the instructor's account, in the course folder,
  with the course's environment and configuration (autograde/nbgrader_config.py).
- Group formgrade-batchcourse: instructors and graders; they may open that service.
- Group nbgrader-batchcourse: students; they see the course in the Assignment List, fetch and submit.
- Every server gets NBGRADER_EXCHANGE, so students and instructor use the same exchange.
"""

import os

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

COURSE = "batchcourse"
INSTRUCTOR = "instructor"  # the Unix account that owns the course folder
COURSE_ROOT = f"/home/{INSTRUCTOR}/batchcourse"  # where that account cloned the course and ran `python3 tasks.py setup`
EXCHANGE = "/srv/nbgrader/exchange"  # outside every home; `tasks.py publish` creates it (mode 1777) when it may
STUDENTS = []  # the students' hub user names (or add them later on the hub's admin page)

c.Spawner.environment.update({"NBGRADER_EXCHANGE": EXCHANGE})

c.JupyterHub.load_groups = {
    f"formgrade-{COURSE}": {"users": [INSTRUCTOR]},
    f"nbgrader-{COURSE}": {"users": STUDENTS},
}
c.JupyterHub.load_roles = [
    # the instructors' and graders' way into Formgrader
    {"name": f"formgrade-{COURSE}", "groups": [f"formgrade-{COURSE}"], "scopes": [f"access:services!service={COURSE}"]},
    # students: membership of the group is their role (nbgrader reads it); they get no extra scope
    {"name": f"nbgrader-{COURSE}", "groups": [f"nbgrader-{COURSE}"], "scopes": []},
    # the service reads users and their groups, for nbgrader's list of students and courses
    {"name": f"{COURSE}-service", "services": [COURSE], "scopes": ["list:users", "read:users", "read:users:groups"]},
    # a single-user server may read its own user's groups (nbgrader's course list)
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
        # a secret the hub and the service share, e.g. `openssl rand -hex 32`, in the hub's environment
        "api_token": os.environ["BATCHCOURSE_FORMGRADER_TOKEN"],
        "oauth_no_confirm": True,
    },
]
