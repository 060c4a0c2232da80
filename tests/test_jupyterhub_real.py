"""The course on a real JupyterHub, as the README's "On JupyterHub" section sets it up, driven over HTTP as a browser.

JupyterHub (autograde/jupyterhub/requirements-hub.txt, installed on top of the course's pins into build/hub/venv)
runs with PAM login, the default spawner and configurable-http-proxy (from the npm registry, into build/hub/node),
all on 127.0.0.1, with the course's hub fragment (names filled in), its global nbgrader configuration, its
profile.d file, and the lab settings and locked extensions in the users' environment. Four real Unix accounts log
in through the hub's login form: the instructor, two students of the course and an outsider. The instructor's
commands run in a hub terminal, as the instructor; students fetch and submit through the Assignment List's
endpoints; Formgrader is opened through the hub. One hub serves every check.
"""

import asyncio
import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import nbformat
import pytest
import requests

from batchcourse import grading
from batchcourse.paths import AUTOGRADE_DIR, REPO_ROOT
from test_jupyterhub import A, why_not_here

HUB_FILES = AUTOGRADE_DIR / "jupyterhub"
BUILD = REPO_ROOT / "build" / "hub"
HUB_VENV = BUILD / "venv"
PROXY = BUILD / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
PROXY_VERSION = "5.3.0"
PROFILE_D = Path("/etc/profile.d/batchcourse.sh")
LOCKED = ["@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:course-list"]
ARTIFACTS = REPO_ROOT / "tests" / "artifacts" / "jupyterhub"


def why_no_proxy() -> str | None:
    if why_not_here():
        return why_not_here()
    if not shutil.which("node") or not shutil.which("npm"):
        return "needs node and npm (Debian's nodejs and npm packages) for configurable-http-proxy"
    return None


def why_no_hub() -> str | None:
    if why_no_proxy():
        return why_no_proxy()
    if not shutil.which("chpasswd"):
        return "needs chpasswd, to give the accounts passwords for the hub's PAM login"
    if PROFILE_D.exists():
        return f"{PROFILE_D} exists already; the test installs its own there"
    return None


pytestmark = [pytest.mark.notebooks, pytest.mark.skipif(bool(why_no_hub()), reason=why_no_hub() or "")]


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3.*/site-packages"))


@contextlib.contextmanager
def building():
    """One test worker at a time builds in build/hub (the hub tests may run side by side)."""
    BUILD.mkdir(parents=True, exist_ok=True)
    with open(BUILD / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build_hub_environment() -> None:
    """The hub's environment: the course's pins (its .venv, seen through a .pth file) plus JupyterHub's own, the
    users' lab settings and locked extensions (README step 3), and configurable-http-proxy."""
    with building():
        _build_hub_environment()
        users_environment_setup()


def _build_hub_environment() -> None:
    if not (HUB_VENV / "bin" / "jupyterhub").exists():
        subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "python"), "-m", "venv", "--copies", str(HUB_VENV)],
                       check=True)
        (site_packages(HUB_VENV) / "batchcourse-course-env.pth").write_text(
            f"import site; site.addsitedir({str(site_packages(REPO_ROOT / '.venv'))!r})\n")
        subprocess.run([str(HUB_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "-r", str(HUB_FILES / "requirements-hub.txt")], check=True)
    course_scripts_in_hub_environment()
    for data, sign in (("share/jupyter", "lab/static"), ("etc/jupyter", "jupyter_server_config.d")):
        if not (HUB_VENV / data / sign).is_dir():  # JupyterLab's files and the server extensions it enables
            shutil.copytree(REPO_ROOT / ".venv" / data, HUB_VENV / data, dirs_exist_ok=True)
    if not PROXY.exists():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--save-exact", "--prefix", str(PROXY.parents[2]),
                        f"configurable-http-proxy@{PROXY_VERSION}"], check=True, capture_output=True)


def course_scripts_in_hub_environment() -> None:
    """The course's commands (jupyter, nbgrader, ...) in the hub environment's bin, run by its Python: the users'
    servers run there, and their terminals find nbgrader there."""
    course_python = f"#!{REPO_ROOT / '.venv' / 'bin' / 'python'}"
    for script in (REPO_ROOT / ".venv" / "bin").iterdir():
        ours = HUB_VENV / "bin" / script.name
        if ours.exists() or script.is_symlink() or not script.is_file():
            continue
        with open(script, "rb") as head:
            if not head.read(len(course_python) + 2).decode(errors="replace").startswith(course_python):
                continue
        lines = script.read_text().splitlines(keepends=True)
        ours.write_text(f"#!{HUB_VENV / 'bin' / 'python'}\n" + "".join(lines[1:]))
        ours.chmod(0o755)


def users_environment_setup() -> None:
    """README step: the course's lab settings into the users' environment, the instructors' tools locked off."""
    settings = HUB_VENV / "share" / "jupyter" / "lab" / "settings"
    settings.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / "src" / "batchcourse" / "lab_settings" / "overrides.json", settings / "overrides.json")
    jupyter = str(HUB_VENV / "bin" / "jupyter")
    for action in ("disable", "lock"):
        subprocess.run([jupyter, "labextension", action, "--level=sys_prefix", *LOCKED], check=True,
                       capture_output=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def filled_in_fragment(instructor: str, course: Path, exchange: Path, students: list[str]) -> str:
    """The course's jupyterhub_config.py with its names filled in, as the README tells the administrator."""
    text = (HUB_FILES / "jupyterhub_config.py").read_text()
    for name, value in (("INSTRUCTOR", instructor), ("COURSE_ROOT", str(course)), ("EXCHANGE", str(exchange)),
                        ("STUDENTS", students)):
        text, count = re.subn(rf"^{name} = .*$", f"{name} = {value!r}", text, count=1, flags=re.M)
        assert count == 1, f"{name} is not in jupyterhub_config.py"
    return text


def local_hub(scratch: Path, hub_port: int) -> str:
    """A test hub's own settings: everything on 127.0.0.1, free ports, its state in the scratch folder."""
    return f"""
c = get_config()
c.JupyterHub.bind_url = "http://127.0.0.1:{hub_port}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {free_port()}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"
c.ConfigurableHTTPProxy.command = [{str(PROXY)!r}]
c.JupyterHub.db_url = "sqlite:///{scratch}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{scratch}/cookie_secret"
c.JupyterHub.pid_file = "{scratch}/jupyterhub.pid"
c.Spawner.ip = "127.0.0.1"
c.Spawner.start_timeout = 300
c.Spawner.http_timeout = 300
"""


def hub_config(scratch: Path, fragment: Path, hub_port: int, service_port: int, outsider: str) -> str:
    """The test hub's own settings, then the course's fragment."""
    etc_jupyter = scratch / "etc-jupyter"
    return local_hub(scratch, hub_port) + f"""
# /etc/jupyter of this machine stays untouched: the global nbgrader configuration comes from the scratch folder
c.Spawner.environment = {{"JUPYTER_CONFIG_PATH": {str(etc_jupyter)!r}}}
exec(compile(open({str(fragment)!r}).read(), {str(fragment)!r}, "exec"))
c.Authenticator.allowed_users.add({outsider!r})  # the university's hub serves more people than the course
service = c.JupyterHub.services[0]
service["url"] = "http://127.0.0.1:{service_port}"
service["command"][0] = {str(HUB_VENV / 'bin' / 'python')!r}  # the course's .venv plus JupyterHub
service["environment"]["JUPYTER_CONFIG_PATH"] = {f"{AUTOGRADE_DIR}:{etc_jupyter}"!r}
"""


class Browser:
    """One person's browser on the hub: the login form, then their server's pages and endpoints with its cookies."""

    def __init__(self, base: str, user: str, password: str):
        self.base, self.user, self.session = base, user, requests.Session()
        self.session.get(f"{base}/hub/login").raise_for_status()
        answer = self.session.post(f"{base}/hub/login", allow_redirects=False,
                                   data={"username": user, "password": password, "_xsrf": self.xsrf("/hub/")})
        assert answer.status_code == 302, f"{user} could not log in: {answer.status_code} {answer.text[:300]}"

    def xsrf(self, path: str) -> str:
        """The _xsrf cookie the page at `path` set, which a browser's scripts send back with each request."""
        cookies = [cookie for cookie in self.session.cookies if cookie.name == "_xsrf" and path.startswith(cookie.path)]
        return max(cookies, key=lambda cookie: len(cookie.path)).value

    def start_server(self) -> None:
        """The hub's Start My Server button."""
        answer = self.session.post(f"{self.base}/hub/api/users/{self.user}/server",
                                   headers={"X-XSRFToken": self.xsrf("/hub/")})
        assert answer.status_code in (201, 202, 400), answer.text

    def wait_for_server(self) -> None:
        for _ in range(600):
            model = self.session.get(f"{self.base}/hub/api/users/{self.user}",
                                     headers={"X-XSRFToken": self.xsrf("/hub/")}).json()
            if model.get("servers", {}).get("", {}).get("ready"):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"the server of {self.user} did not start")
        self.session.get(self.url("/lab")).raise_for_status()  # the hub's OAuth, then the server's cookies

    def url(self, path: str) -> str:
        return f"{self.base}/user/{self.user}{path}"

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.session.post(self.url(path), headers={"X-XSRFToken": self.xsrf(f"/user/{self.user}/")}, **kwargs)

    def assignment_action(self, action: str) -> requests.Response:
        """A button of the Assignment List (Fetch, Submit, Fetch Feedback)."""
        return self.post(f"/assignments/{action}", data={"course_id": "batchcourse", "assignment_id": A})

    def terminal(self, command: str, timeout: float = 900) -> tuple[int, str]:
        """`command` typed into a new hub terminal; its exit code and what the terminal showed."""
        name = self.post("/api/terminals").json()["name"]
        try:
            return asyncio.run(self._type(name, command, timeout))
        finally:
            self.session.delete(self.url(f"/api/terminals/{name}"),
                                headers={"X-XSRFToken": self.xsrf(f"/user/{self.user}/")})

    async def _type(self, name: str, command: str, timeout: float) -> tuple[int, str]:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        cookies = "; ".join(f"{c.name}={c.value}" for c in self.session.cookies
                            if f"/user/{self.user}/".startswith(c.path) or c.path == "/")
        xsrf = self.xsrf(f"/user/{self.user}/")
        request = HTTPRequest(self.url(f"/terminals/websocket/{name}?_xsrf={xsrf}").replace("http", "ws", 1),
                              headers={"Cookie": cookies, "Origin": self.base})
        socket_ = await websocket_connect(request)
        await socket_.write_message(json.dumps(["stdin", f"{command}; echo __EXIT$((0+$?))__\r"]))
        shown, deadline = "", time.monotonic() + timeout
        while not (found := re.search(r"__EXIT(\d+)__", shown)):
            message = await asyncio.wait_for(socket_.read_message(), max(1.0, deadline - time.monotonic()))
            assert message is not None, f"the terminal closed:\n{shown}"
            kind, *content = json.loads(message)
            if kind == "stdout":
                shown += re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", content[0])
        socket_.close()
        return int(found.group(1)), shown


@pytest.fixture(scope="module")
def hub():
    try:
        build_hub_environment()
    except subprocess.CalledProcessError as error:
        pytest.skip(f"could not install JupyterHub or configurable-http-proxy (no package registry?): {error}")
    scratch = Path(tempfile.mkdtemp(prefix="batchcourse-realhub-"))
    scratch.chmod(0o755)
    suffix = uuid.uuid4().hex[:5]
    instructor, students, outsider = f"bcins{suffix}", [f"bcst{suffix}a", f"bcst{suffix}b"], f"bcout{suffix}"
    people = [instructor, *students, outsider]
    passwords = {person: secrets.token_hex(8) for person in people}
    made, process = [], None
    try:
        for person in people:  # useradd as Debian's, which leaves the home readable by everyone (755)
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", person], check=True)
            made.append(person)
        subprocess.run(["chpasswd"], input="".join(f"{p}:{pw}\n" for p, pw in passwords.items()), text=True,
                       check=True)
        # README install steps, as the instructor and the administrator
        course = grading.scratch_course(A, Path("/home") / instructor)
        # a clone's autograde/nbgrader_config.py names its own folder; this scratch course borrows the repository's
        (course / "nbgrader_config.py").write_text(f"c = get_config()\nc.CourseDirectory.root = {str(course)!r}\n"
                                                   f"c.CourseDirectory.db_url = {grading.sqlite_url(course)!r}\n")
        grading.release(A, root=course, db_url=grading.sqlite_url(course))
        subprocess.run(["chown", "-R", f"{instructor}:{instructor}", str(course)], check=True)
        exchange = scratch / "srv" / "nbgrader" / "exchange"
        exchange.mkdir(parents=True)
        exchange.chmod(0o1777)
        (scratch / "etc-jupyter").mkdir(mode=0o755)
        shutil.copy(HUB_FILES / "nbgrader_config.py", scratch / "etc-jupyter" / "nbgrader_config.py")
        shutil.copy(HUB_FILES / "profile.d" / "batchcourse.sh", PROFILE_D)
        fragment = scratch / "batchcourse_hub.py"
        fragment.write_text(filled_in_fragment(instructor, course, exchange, students))
        hub_port, service_port = free_port(), free_port()
        (scratch / "jupyterhub_config.py").write_text(hub_config(scratch, fragment, hub_port, service_port, outsider))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "NBGRADER", "BATCHCOURSE"))}
        env["PATH"] = f"{HUB_VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin"
        log = open(scratch / "jupyterhub.log", "w")
        process = subprocess.Popen([str(HUB_VENV / "bin" / "jupyterhub"), "-f", str(scratch / "jupyterhub_config.py")],
                                   cwd=scratch, env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{hub_port}"
        wait_for_hub(base, process, scratch / "jupyterhub.log")
        browsers = {person: Browser(base, person, passwords[person]) for person in people}
        for browser in browsers.values():
            browser.start_server()
        for browser in browsers.values():
            browser.wait_for_server()
        state = {"base": base, "course": course, "exchange": exchange, "instructor": instructor,
                 "students": students, "outsider": outsider, "browsers": browsers, "scratch": scratch, "runs": {}}
        round_trip(state)
        yield state
    finally:
        if process:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        PROFILE_D.unlink(missing_ok=True)
        for person in made:
            subprocess.run(["userdel", "--force", "--remove", person], capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)


def wait_for_hub(base: str, process: subprocess.Popen, log: Path) -> None:
    for _ in range(240):
        if process.poll() is not None:
            raise AssertionError(f"the hub stopped:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{base}/hub/health", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the hub did not answer:\n{log.read_text()[-3000:]}")


def tasks(command: str, course: Path) -> str:
    """An instructor's command as typed in a hub terminal (the course here is a scratch copy of one assignment)."""
    return f"cd {REPO_ROOT} && python3 tasks.py {command} --course-root {course} {A}"


def saved_answer(state) -> dict:
    """The student's notebook with every solution cell answered, as JupyterLab saves it."""
    student = state["browsers"][state["students"][0]]
    fetched = student.session.get(student.url(f"/api/contents/{A}/{A}.ipynb")).json()["content"]
    solution = grading.solution_code(grading.read(state["course"] / "solutions" / A / f"{A}.ipynb"))
    answered = grading.make_submission(nbformat.from_dict(fetched), solution)
    return {"type": "notebook", "format": "json", "content": answered}


def fetch_and_submit(state) -> None:
    """The Assignment List of the first student and of the outsider; both students fetch, the first saves an answer
    and submits."""
    browsers, runs = state["browsers"], state["runs"]
    first, second = (browsers[student] for student in state["students"])
    for name, person in (("list first", first), ("list outsider", browsers[state["outsider"]])):
        runs[name] = person.session.get(person.url("/assignments"), params={"course_id": "batchcourse"}).json()
    for student in (first, second):
        runs[f"fetch {student.user}"] = student.assignment_action("fetch").json()
    answer = first.session.put(first.url(f"/api/contents/{A}/{A}.ipynb"), json=saved_answer(state),
                               headers={"X-XSRFToken": first.xsrf(f"/user/{first.user}/")})
    answer.raise_for_status()
    runs["submit"] = first.assignment_action("submit").json()


def round_trip(state) -> None:
    """publish, fetch, submit (the outsider too, past the Assignment List), collect, grade, feedback."""
    browsers, course, runs = state["browsers"], state["course"], state["runs"]
    instructor, outsider = browsers[state["instructor"]], browsers[state["outsider"]]
    first = browsers[state["students"][0]]
    runs["publish"] = instructor.terminal(tasks("publish", course))
    fetch_and_submit(state)
    runs["outsider"] = outsider.terminal(f"unset JUPYTERHUB_API_TOKEN; nbgrader fetch_assignment {A} --course "
                                         f"batchcourse && nbgrader submit {A} --course batchcourse")
    runs["collect"] = instructor.terminal(tasks("collect", course))
    runs["grade"] = instructor.terminal(tasks("grade", course))
    runs["feedback"] = instructor.terminal(tasks("feedback", course))
    runs["publish feedback"] = instructor.terminal(tasks("publish --feedback", course))
    runs["fetch feedback"] = first.assignment_action("fetch_feedback").json()


def test_the_round_trip_through_the_hub(hub):
    runs, (first, second), outsider = hub["runs"], hub["students"], hub["outsider"]
    for name in ("publish", "grade", "feedback", "publish feedback"):
        assert runs[name][0] == 0, f"{name} failed in the instructor's terminal:\n{runs[name][1][-3000:]}"
    assert [item["assignment_id"] for item in runs["list first"]["value"]] == [A], runs["list first"]
    assert runs[f"fetch {first}"]["success"] and runs[f"fetch {second}"]["success"]
    assert runs["submit"]["success"], runs["submit"]
    assert runs["outsider"][0] == 0, runs["outsider"][1][-2000:]
    scores = grading.scores(A, grading.sqlite_url(hub["course"]))
    assert set(scores) == {first}, scores
    auto = [cell for cell in scores[first].values() if cell.auto]
    assert auto and all(cell.score == cell.max_score for cell in auto), scores
    assert (Path("/home") / first / A / "feedback").is_dir(), runs["fetch feedback"]


def test_the_instructor_grades_as_their_own_account(hub):
    gradebook = hub["course"] / "autograde" / "gradebook.db"
    assert gradebook.stat().st_uid == Path("/home", hub["instructor"]).stat().st_uid


def test_an_outsider_sees_no_course_and_is_not_collected(hub):
    runs, outsider = hub["runs"], hub["outsider"]
    assert runs["list outsider"]["value"] == [], runs["list outsider"]
    code, shown = runs["collect"]
    assert code == 1 and f"NOT COLLECTED  {outsider}: not a student of the course" in shown, shown[-3000:]
    assert not (hub["course"] / "autograde" / "submitted" / outsider).exists()


@pytest.mark.parametrize("relative", ["", f"{A}/{A}.ipynb", f"{A}/feedback", ".local/share/jupyter/nbgrader_cache"])
def test_a_student_cannot_read_another_students_home(hub, relative):
    first, second = hub["students"]
    target = Path("/home") / first / relative
    code, shown = hub["browsers"][second].terminal(f"ls -la {target}")
    assert code != 0 and "Permission denied" in shown, shown[-1000:]
    assert Path("/home", first).stat().st_mode & 0o077 == 0


def test_a_student_cannot_open_formgrader(hub):
    student = hub["browsers"][hub["students"][0]]
    answer = student.session.get(f"{hub['base']}/services/batchcourse/formgrader")
    assert answer.status_code == 403, (answer.status_code, answer.url)


def test_formgrader_through_the_hub(hub):
    instructor = hub["browsers"][hub["instructor"]]
    page = instructor.session.get(f"{hub['base']}/services/batchcourse/formgrader")
    assert page.status_code == 200 and "formgrader" in page.text.lower(), page.url
    answer = instructor.session.get(f"{hub['base']}/services/batchcourse/formgrader/api/assignments")
    assert answer.status_code == 200, (answer.status_code, answer.url, answer.text[:500])
    (ours,) = [item for item in answer.json() if item["name"] == A]
    assert ours["num_submissions"] == 1, ours


def test_nbgrader_is_on_path_in_a_hub_terminal(hub):
    code, shown = hub["browsers"][hub["students"][1]].terminal("command -v nbgrader")
    assert code == 0 and str(HUB_VENV / "bin" / "nbgrader") in shown, shown[-1000:]


def test_students_lab_has_the_course_settings_and_locked_tools(hub):
    student = hub["browsers"][hub["students"][1]]
    settings = student.session.get(student.url("/lab/api/settings/@jupyterlab/apputils-extension:notification"))
    # the overrides become the settings' defaults
    assert settings.json()["schema"]["properties"]["fetchNews"]["default"] == "false", settings.text[:500]
    page = student.session.get(student.url("/lab")).text
    config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page,
                                  re.S).group(1))
    assert set(LOCKED) <= set(config.get("lockedExtensions", [])) and set(LOCKED) <= set(config["disabledExtensions"])


def test_screenshots_of_the_assignment_list_and_formgrader(hub):
    """What the student and the instructor see, in headless Chromium with their hub cookies."""
    from test_browser import CHROMIUM, CHROMIUM_FLAGS, ensure_chromium

    ensure_chromium()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    student, instructor = hub["browsers"][hub["students"][0]], hub["browsers"][hub["instructor"]]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        try:
            page = page_as(browser, student, student.url("/lab"))
            page.locator("#jp-main-dock-panel").wait_for(timeout=120_000)
            page.get_by_text("Nbgrader", exact=True).click()
            page.get_by_text("Assignment List", exact=True).click()
            page.get_by_text("Submitted assignments").first.wait_for(timeout=60_000)
            page.wait_for_timeout(3000)  # the lists fill in after the panel opens
            page.screenshot(path=str(ARTIFACTS / "1-assignment-list.png"))
            page = page_as(browser, instructor, f"{hub['base']}/services/batchcourse/formgrader")
            page.get_by_text(A).first.wait_for(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "2-formgrader.png"))
        finally:
            browser.close()


def page_as(browser, person: Browser, url: str):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_cookies([{"name": cookie.name, "value": cookie.value, "domain": "127.0.0.1", "path": cookie.path}
                         for cookie in person.session.cookies])
    page = context.new_page()
    page.goto(url)
    return page
