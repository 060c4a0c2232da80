"""The course on a hub whose servers all run as one Unix user, as on Zero to JupyterHub, with ngshare as nbgrader's
exchange: autograde/jupyterhub/kubernetes/ tried on one machine.

A real JupyterHub (the one test_jupyterhub_real.py builds) runs as one unprivileged account and starts every
user's server as that same account (SimpleLocalProcessSpawner), as every pod runs as uid 1000 on Kubernetes. Users
log in through the hub's login form with a shared password, standing in for the university's single sign-on. The
hub's services and roles are read from kubernetes/config.yaml (as Zero to JupyterHub turns them into its
configuration); ngshare runs with the environment variables of kubernetes/ngshare.yaml, as an account of its own,
from its own environment (kubernetes/requirements-ngshare.txt); the servers read kubernetes/nbgrader_config.py and
import ngshare_exchange (kubernetes/requirements-users.txt). The instructor follows the README's Kubernetes steps
in a hub terminal; students fetch, submit and fetch feedback through the Assignment List's endpoints.

What keeps students apart here is ngshare, which knows each of them by their hub token: another student's
submission or feedback, a submission in another's name, a submission by someone outside the course. On one machine
every server shares one account and one file system, so a student's terminal can read another's home; on
Kubernetes each server is a pod with its own volume, which this test cannot show.
"""

import pwd
import secrets
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
import yaml

from batchcourse import grading
from batchcourse.paths import AUTOGRADE_DIR, REPO_ROOT
from test_jupyterhub import A
from test_jupyterhub_real import (BUILD, HUB_FILES, HUB_VENV, Browser, build_hub_environment, building, free_port,
                                  fetch_and_submit, local_hub, tasks, wait_for_hub, why_no_proxy)

KUBERNETES = HUB_FILES / "kubernetes"
NGSHARE_VENV = BUILD / "ngshare"
EXCHANGE_PLUGIN = BUILD / "ngshare-exchange"  # ngshare_exchange, on the servers' PYTHONPATH
COURSE = "batchcourse"
# the users' image has its environment first on PATH; here a hub terminal's login shell sets PATH again
ON_PATH = f"export PATH={HUB_VENV / 'bin'}:$PATH; "

pytestmark = [pytest.mark.notebooks, pytest.mark.skipif(bool(why_no_proxy()), reason=why_no_proxy() or "")]


def build_ngshare_environments() -> None:
    """ngshare's own environment (its pod's), and the exchange plugin the users' image adds to the course's pins."""
    with building():
        if not list(NGSHARE_VENV.glob("lib/python3.*/site-packages/ngshare")):
            shutil.rmtree(NGSHARE_VENV, ignore_errors=True)
            subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "python"), "-m", "venv", "--copies", str(NGSHARE_VENV)],
                           check=True)
            pip_install(NGSHARE_VENV / "bin" / "python", "-r", KUBERNETES / "requirements-ngshare.txt")
        if not (EXCHANGE_PLUGIN / "ngshare_exchange").is_dir():
            # its dependencies (nbgrader, rapidfuzz, traitlets, jupyter_core) are the course's pins
            pip_install(HUB_VENV / "bin" / "python", "--no-deps", "--target", EXCHANGE_PLUGIN,
                        "-r", KUBERNETES / "requirements-users.txt")


def pip_install(python: Path, *arguments) -> None:
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *map(str, arguments)], check=True, capture_output=True)


def chart_values() -> dict:
    """The hub's part of kubernetes/config.yaml, as Zero to JupyterHub turns it into JupyterHub's settings."""
    hub = yaml.safe_load((KUBERNETES / "config.yaml").read_text())["hub"]
    services = [{"name": name, **service} for name, service in hub["services"].items()]
    roles = [{"name": name, **role} for name, role in hub["loadRoles"].items()]
    return {"services": services, "roles": roles}


def ngshare_environment(hub_port: int, ngshare_port: int, token: str) -> dict[str, str]:
    """kubernetes/ngshare.yaml's environment, with this machine's addresses for the cluster's."""
    manifest = next(part for part in yaml.safe_load_all((KUBERNETES / "ngshare.yaml").read_text())
                    if part["kind"] == "Deployment")
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    env = {}
    for variable in container["env"]:
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        else:  # the token Zero to JupyterHub made for the service, from its secret
            env[variable["name"]] = token
    env["JUPYTERHUB_API_URL"] = env["JUPYTERHUB_API_URL"].replace("http://hub:8081", f"http://127.0.0.1:{hub_port}")
    env["JUPYTERHUB_SERVICE_URL"] = env["JUPYTERHUB_SERVICE_URL"].replace(":8080", f":{ngshare_port}")
    return env


def hub_config(scratch: Path, hub_port: int, ngshare_port: int, token: str, users: list[str], password: str) -> str:
    values = chart_values()
    for service in values["services"]:
        service["url"] = service["url"].replace("http://ngshare:8080", f"http://127.0.0.1:{ngshare_port}")
        service["api_token"] = token
    return local_hub(scratch, hub_port) + f"""c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = {password!r}
c.Authenticator.allowed_users = {set(users)!r}
# every server as the hub's own account, in a home of its own (a pod's volume on Kubernetes)
c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.SimpleLocalProcessSpawner.home_dir_template = "{scratch}/home/{{username}}"
c.Spawner.cmd = [{str(HUB_VENV / "bin" / "jupyterhub-singleuser")!r}]
c.Spawner.args = ["--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
c.Spawner.environment = {{"JUPYTER_CONFIG_PATH": "{scratch}/etc-jupyter", "PYTHONPATH": {str(EXCHANGE_PLUGIN)!r},
                         "PATH": "{HUB_VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin"}}
# config.yaml's hub.services and hub.loadRoles
c.JupyterHub.services = {values["services"]!r}
c.JupyterHub.load_roles = {values["roles"]!r}
"""


def started_as(account: str, command: list, cwd: Path, log: Path, env: dict) -> subprocess.Popen:
    entry = pwd.getpwnam(account)
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])


def instructors_course(home: Path) -> Path:
    """The instructor's course in their server's home (on Kubernetes: a clone, `tasks.py setup` run, on the
    server's volume), with the course's nbgrader configuration naming it, and the home's nbgrader_config.py that
    loads it, so that Formgrader in the instructor's server shows the course (README, On Kubernetes, step 4)."""
    course = grading.scratch_course(A, home)
    config = course / "autograde" / "nbgrader_config.py"
    shutil.copy(AUTOGRADE_DIR / "nbgrader_config.py", config)
    (home / "nbgrader_config.py").write_text(f"c = get_config()\nload_subconfig({str(config)!r})\n")
    grading.release(A, root=course, db_url=grading.sqlite_url(course))
    return course


@pytest.fixture(scope="module")
def one_uid_hub():
    try:
        build_hub_environment()
        build_ngshare_environments()
    except subprocess.CalledProcessError as error:
        pytest.skip(f"could not install JupyterHub, ngshare or configurable-http-proxy (no package registry?): "
                    f"{error}\n{error.stderr}")
    suffix = uuid.uuid4().hex[:5]
    account, ngshare_account = f"bcjov{suffix}", f"bcngs{suffix}"  # every server's account; ngshare's pod's
    instructor, students, outsider = f"ins{suffix}", [f"st{suffix}a", f"st{suffix}b"], f"out{suffix}"
    people = [instructor, *students, outsider]
    scratch = Path(tempfile.mkdtemp(prefix="batchcourse-oneuid-"))
    scratch.chmod(0o755)
    hub_home, ngshare_home = scratch / "hub", scratch / "ngshare"
    made, processes = [], []
    try:
        for name, folder in ((account, hub_home), (ngshare_account, ngshare_home)):
            subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/bash", name], check=True)
            made.append(name)
            folder.mkdir(mode=0o700)
            shutil.chown(folder, name, name)
        course = instructors_course(hub_home / "home" / instructor)
        hub_port, ngshare_port, token, password = free_port(), free_port(), secrets.token_hex(16), secrets.token_hex(8)
        (hub_home / "etc-jupyter").mkdir()
        (hub_home / "etc-jupyter" / "nbgrader_config.py").write_text(  # the hub's proxy is here, not in a cluster
            (KUBERNETES / "nbgrader_config.py").read_text().replace("http://proxy-public",
                                                                    f"http://127.0.0.1:{hub_port}"))
        (hub_home / "jupyterhub_config.py").write_text(
            hub_config(hub_home, hub_port, ngshare_port, token, people, password))
        subprocess.run(["chown", "-R", f"{account}:{account}", str(hub_home)], check=True)
        ngshare = [str(NGSHARE_VENV / "bin" / "python"), "-m", "ngshare", "--admins", instructor,
                   "--database", f"sqlite:///{ngshare_home}/ngshare.db", "--storage", f"{ngshare_home}/files/"]
        processes.append(started_as(ngshare_account, ngshare, ngshare_home, scratch / "ngshare.log",
                                    {"PATH": "/usr/bin:/bin", **ngshare_environment(hub_port, ngshare_port, token)}))
        hub = [str(HUB_VENV / "bin" / "jupyterhub"), "-f", str(hub_home / "jupyterhub_config.py")]
        env = {"PATH": f"{HUB_VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin", "HOME": str(hub_home), "LANG": "C.UTF-8"}
        processes.append(started_as(account, hub, hub_home, scratch / "jupyterhub.log", env))
        base = f"http://127.0.0.1:{hub_port}"
        wait_for_hub(base, processes[-1], scratch / "jupyterhub.log")
        browsers = {person: Browser(base, person, password) for person in people}
        for browser in browsers.values():
            browser.start_server()
        for browser in browsers.values():
            browser.wait_for_server()
        state = {"base": base, "course": course, "instructor": instructor, "students": students, "outsider": outsider,
                 "browsers": browsers, "scratch": scratch, "ngshare_home": ngshare_home, "runs": {}}
        round_trip(state)
        yield state
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        for name in made:
            subprocess.run(["userdel", "--force", name], capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)


def typed(person: Browser, command: str) -> tuple[int, str]:
    """`command` in a hub terminal of `person`, with the users' environment on PATH as in the users' image."""
    return person.terminal(ON_PATH + command)


def in_course(state, command: str) -> str:
    """An nbgrader command in the course's autograde/ folder, whose nbgrader_config.py names the course."""
    return f"cd {state['course'] / 'autograde'} && {command}"


def round_trip(state) -> None:
    """README, On Kubernetes, step 4: the course in ngshare, release, fetch, submit (and what others try), collect,
    grade, feedback."""
    browsers, course, runs = state["browsers"], state["course"], state["runs"]
    instructor, outsider = browsers[state["instructor"]], browsers[state["outsider"]]
    first, second = (browsers[student] for student in state["students"])
    manage = EXCHANGE_PLUGIN / "bin" / "ngshare-course-management"
    runs["course"] = typed(instructor, in_course(state, " && ".join(
        [f"{manage} create_course {COURSE} {instructor.user}",
         *(f"{manage} add_student {COURSE} {student}" for student in state["students"])])))
    runs["release"] = typed(instructor, in_course(state, f"nbgrader release_assignment {A}"))
    fetch_and_submit(state)
    runs["in another's name"] = typed(second, f"nbgrader submit {A} --course {COURSE} --student={first.user}")
    runs["inbound"] = typed(second, f"nbgrader list --inbound --course {COURSE}")
    runs["outsider"] = typed(outsider, f"nbgrader fetch_assignment {A} --course {COURSE}; mkdir -p {A} && "
                                       f"cp /dev/null {A}/x.txt; nbgrader submit {A} --course {COURSE}")
    runs["collect"] = typed(instructor, in_course(state, f"nbgrader collect {A}"))
    runs["grade"] = typed(instructor, tasks("grade", course))
    runs["feedback"] = typed(instructor, tasks("feedback", course))
    runs["release feedback"] = typed(instructor, in_course(state, f"nbgrader release_feedback {A}"))
    runs["fetch feedback"] = first.assignment_action("fetch_feedback").json()
    ngshare = f"{state['base']}/services/ngshare"
    ask = 'curl -s -o /dev/null -w "HTTP%{http_code}\\n" -H "Authorization: token $JUPYTERHUB_API_TOKEN"'
    runs["another's feedback"] = typed(second, f"{ask} {ngshare}/feedback/{COURSE}/{A}/{first.user}")
    runs["another's submission"] = typed(second, f"{ask} {ngshare}/submission/{COURSE}/{A}/{first.user}")
    runs["ngshare's files"] = typed(second, f"ls {state['ngshare_home']}")


def test_the_round_trip_through_ngshare(one_uid_hub):
    runs, (first, second) = one_uid_hub["runs"], one_uid_hub["students"]
    for name in ("course", "release", "grade", "feedback", "release feedback"):
        assert runs[name][0] == 0, f"{name} failed in the instructor's terminal:\n{runs[name][1][-3000:]}"
    assert [item["assignment_id"] for item in runs["list first"]["value"]] == [A], runs["list first"]
    assert runs[f"fetch {first}"]["success"] and runs[f"fetch {second}"]["success"], runs
    assert runs["submit"]["success"], runs["submit"]
    submitted = one_uid_hub["course"] / "autograde" / "submitted"
    assert sorted(path.name for path in submitted.iterdir()) == [first], runs["collect"][1][-3000:]
    scores = grading.scores(A, grading.sqlite_url(one_uid_hub["course"]))
    auto = [cell for cell in scores[first].values() if cell.auto]
    assert set(scores) == {first} and auto and all(cell.score == cell.max_score for cell in auto), scores
    assert runs["fetch feedback"]["success"], runs["fetch feedback"]
    home = one_uid_hub["scratch"] / "hub" / "home"
    assert list((home / first / A / "feedback").glob(f"*/{A}.html")), runs["fetch feedback"]


def test_a_student_cannot_submit_in_another_students_name(one_uid_hub):
    code, shown = one_uid_hub["runs"]["in another's name"]
    assert "not possible with ngshare" in shown, shown[-2000:]


def test_formgrader_in_the_instructors_server(one_uid_hub):
    instructor = one_uid_hub["browsers"][one_uid_hub["instructor"]]
    answer = instructor.session.get(instructor.url("/formgrader/api/assignments"))
    assert answer.status_code == 200, (answer.status_code, answer.url, answer.text[:500])
    (ours,) = [item for item in answer.json() if item["name"] == A]
    assert ours["num_submissions"] == 1, ours


def refused(shown: str, endpoint: str) -> bool:
    """ngshare_exchange's log of a request that ngshare refused (it reports them with exit code 0)."""
    return f"ngshare endpoint {endpoint} returned failure: Permission denied" in shown


def test_a_student_cannot_list_the_submissions(one_uid_hub):
    code, shown = one_uid_hub["runs"]["inbound"]
    assert refused(shown, f"/submissions/{COURSE}/{A}"), shown[-2000:]


@pytest.mark.parametrize("what", ["another's feedback", "another's submission"])
def test_a_student_cannot_download_another_students_work(one_uid_hub, what):
    code, shown = one_uid_hub["runs"][what]
    assert "HTTP403" in shown, shown[-2000:]


def test_an_outsider_sees_no_course_and_cannot_submit(one_uid_hub):
    runs = one_uid_hub["runs"]
    assert not runs["list outsider"].get("value"), runs["list outsider"]
    code, shown = runs["outsider"]
    assert refused(shown, f"/assignment/{COURSE}/{A}") and refused(shown, f"/submission/{COURSE}/{A}"), shown[-2000:]
    submitted = one_uid_hub["course"] / "autograde" / "submitted"
    assert one_uid_hub["outsider"] not in {path.name for path in submitted.iterdir()}


def test_the_servers_cannot_read_ngshares_files(one_uid_hub):
    code, shown = one_uid_hub["runs"]["ngshare's files"]
    assert code != 0 and "Permission denied" in shown, shown[-1000:]
