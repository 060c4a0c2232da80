"""nbgrader's global configuration in the users' image on Zero to JupyterHub: /etc/jupyter/nbgrader_config.py.

Every server runs as the same uid there, so the course uses ngshare (a hub service that tells users apart by their
hub token) as nbgrader's exchange, through the ngshare_exchange plugin (0.5.2, in the users' image).
"""

import ngshare_exchange

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

c.CourseDirectory.course_id = "batchcourse"
# the hub's proxy, inside the cluster; ngshare is the hub service named "ngshare" (config.yaml)
ngshare_exchange.configureExchange(c, "http://proxy-public/services/ngshare")
