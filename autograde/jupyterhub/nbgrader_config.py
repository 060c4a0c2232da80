"""nbgrader's global configuration on the hub: copy this file to /etc/jupyter/nbgrader_config.py.

Every account reads it. Students need only this file and nbgrader to fetch and submit (the Assignment List or
`nbgrader fetch_assignment` / `nbgrader submit`); it imports nothing of the course. The instructor's commands
read autograde/nbgrader_config.py on top of it, which uses the same NBGRADER_EXCHANGE.
"""

import os

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

c.CourseDirectory.course_id = "batchcourse"
# The hub sets NBGRADER_EXCHANGE for every server (jupyterhub_config.py here); the default is nbgrader's usual place.
c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE") or "/srv/nbgrader/exchange"

# Under JupyterHub, the hub's groups say who may do what: members of nbgrader-batchcourse fetch and submit,
# members of formgrade-batchcourse open Formgrader. Outside a hub (a terminal on the server) every account may.
if os.environ.get("JUPYTERHUB_API_TOKEN"):
    from nbgrader.auth import JupyterHubAuthPlugin

    c.Authenticator.plugin_class = JupyterHubAuthPlugin
