#!/usr/bin/env python3
"""The course's task runner. Needs only Python (3.11 to 3.14); it builds everything else itself.

    python3 tasks.py lab                 open the course in JupyterLab (student notebooks)
    python3 tasks.py test                run the whole test suite (what CI runs)
    python3 tasks.py check NOTEBOOK      self-check a notebook; exit code 1 when a test fails
    python3 tasks.py release             regenerate notebooks/ from solutions/ (instructors)
    python3 tasks.py grade [--zip]       autograde autograde/submitted/ (or an LMS download; Linux only)
    python3 tasks.py publish [ID ...]    JupyterHub: release to students through nbgrader's exchange
                                         (--feedback: the feedback written by `feedback`)
    python3 tasks.py collect [ID ...]    JupyterHub: collect submissions from the exchange (then `grade`)
    python3 tasks.py feedback [ID ...]   write the students' HTML feedback (after hand grading)
    python3 tasks.py export [ID ...]     write grades.csv and the Canvas import again
    python3 tasks.py bench [ID ...]      execute and grade; write benchmarks/results.json
    python3 tasks.py sweep ID            run an assignment's long experiment; write data/sweeps/ID.json
    python3 tasks.py handout [ID ...]    write the workshop handout (pages and a PDF, offline) to build/handout/
    python3 tasks.py wheel               build the course package with its data: dist/batchcourse-*.whl
    python3 tasks.py setup               only create or update the environment in .venv/

On Windows, type `py tasks.py ...` instead of `python3 tasks.py ...`.

Every task first makes sure .venv/ exists and matches requirements.txt; the first run
downloads the pinned packages (a few GB on Linux: torch's Linux wheels bring CUDA libraries,
which also run on CPU). No task downloads anything after that.

Conda users: with BATCHCOURSE_ACTIVE_ENV=1 (environment.yml sets it) the tasks run in the
active environment instead of .venv/, and nothing is installed.
"""

import hashlib
import os
import platform
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / "installed-requirements.sha256"
PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
PACKAGE = ROOT / "src" / "batchcourse"
TASKS = ("lab", "test", "check", "release", "grade", "publish", "collect", "feedback", "export", "bench", "sweep",
         "handout", "wheel", "setup")
SETUP = "py tasks.py setup" if os.name == "nt" else "python3 tasks.py setup"
ACTIVE_ENV = os.environ.get("BATCHCOURSE_ACTIVE_ENV") == "1"
# Where `python` imports batchcourse from, without running the package ("" when it has none).
WHERE_IS_BATCHCOURSE = "import importlib.util as u; s = u.find_spec('batchcourse'); print(s.origin if s else '')"


def learner_language(argv: list[str]) -> str:
    """The language of tasks.py's messages: `--lang` of the task, else BATCHCOURSE_LANG, else English."""
    if "--lang" in argv[:-1]:
        return argv[argv.index("--lang") + 1]
    return os.environ.get("BATCHCOURSE_LANG", "en")


LANG = learner_language(sys.argv[1:])


def translated(text: str) -> str:
    if LANG == "en":
        return text
    sys.path.insert(0, str(PACKAGE.parent))  # batchcourse.i18n needs only Python's own modules
    try:
        from batchcourse.i18n import translate
    except Exception:  # noqa: BLE001 - an unsupported Python, say: its message in English beats none
        return text
    return translate(text, LANG)


def say(text: str, flush: bool = False) -> None:
    print(translated(text), flush=flush)


def stop(text: str):
    sys.exit(translated(text))


def requirements_digest() -> str:
    digest = hashlib.sha256()
    for name in ("requirements.txt", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def write_replacing(path: Path, content: bytes) -> None:
    """Write a new file in place of the old one (a copy made with hard links keeps its own)."""
    scratch = path.with_name(path.name + ".new")
    scratch.write_bytes(content)
    os.replace(scratch, path)


def batchcourse_origin(python: Path) -> str | None:
    """The folder `python` imports batchcourse from ("" when it has none); None when `python` does not run here."""
    try:
        probe = subprocess.run([str(python), "-c", WHERE_IS_BATCHCOURSE], capture_output=True, text=True, timeout=120)
    except OSError:
        return None
    if probe.returncode != 0:
        return None
    origin = probe.stdout.strip()
    return str(Path(origin).resolve().parent) if origin else ""


def refuse_unsupported_machine() -> None:
    if sys.platform == "darwin" and platform.machine() == "x86_64":
        stop("torch 2.14.1, which the course pins, has no build for Intel Macs. On an Apple-silicon Mac, use an "
                 "arm64 Python (python.org's installer); on an Intel Mac, use the Colab route in README.md.")


def install(requirements: bool) -> None:
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-qq"]
    if requirements:
        refuse_unsupported_machine()
        say("Installing the pinned packages (the first time takes a few minutes) ...", flush=True)
        subprocess.run([*pip, "-r", str(ROOT / "requirements.txt")], check=True)
    subprocess.run([*pip, "--no-deps", "--no-build-isolation", "--editable", str(ROOT)], check=True)


def repoint_scripts(old_venv: Path) -> None:
    """The scripts in a moved .venv/bin name the old folder's Python: make them name this one (POSIX)."""
    for script in (VENV / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        content = script.read_bytes()
        if b"\0" not in content and str(old_venv).encode() in content:
            mode = script.stat().st_mode
            write_replacing(script, content.replace(str(old_venv).encode(), str(VENV).encode()))
            script.chmod(mode)


def repair_moved_environment(old_root: Path, task: str) -> None:
    """.venv/ was moved or copied here from the course folder `old_root`, whose code it still imports."""
    if os.name == "nt" and task != "setup":
        stop(f"The environment in {VENV} imports the course package from {old_root}, not from this folder "
                 f"(was the folder moved or copied?): run `{SETUP}` to rebuild it here.")
    say(f"The environment in {VENV} imported the course package from {old_root}: pointing it at {ROOT} ...", flush=True)
    if os.name == "nt":  # the launchers of its programs name the old folder: only a new environment is right
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        return
    install(requirements=False)
    repoint_scripts(old_root / ".venv")
    if batchcourse_origin(PYTHON) != str(PACKAGE):
        stop(f"The environment in {VENV} could not be pointed at this folder: run `{SETUP}`.")


def ensure_environment(task: str) -> Path:
    """Make .venv/ ready (or check the active environment); return the Python that runs the tasks."""
    if not (3, 11) <= sys.version_info < (3, 15):
        stop(f"Python 3.11 to 3.14 is needed (the pinned packages have wheels for those); this is "
                 f"{sys.version.split()[0]}.")
    if ACTIVE_ENV:
        if batchcourse_origin(Path(sys.executable)) != str(PACKAGE):
            stop(f"BATCHCOURSE_ACTIVE_ENV=1, but this environment ({sys.prefix}) does not import the course package "
                     f"from {ROOT}: run `pip install --no-deps --no-build-isolation -e .` in this folder, or unset "
                     "BATCHCOURSE_ACTIVE_ENV to let tasks.py make its own environment in .venv/.")
        return Path(sys.executable)
    origin = batchcourse_origin(PYTHON) if PYTHON.exists() else None
    if PYTHON.exists() and origin is None:
        if task != "setup":
            stop(f"The environment in {VENV} does not run on this machine (made on another machine, or its "
                     f"Python is gone): run `{SETUP}` to rebuild it.")
        say(f"Rebuilding the environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    elif origin and origin != str(PACKAGE):
        repair_moved_environment(Path(origin).parents[1], task)
    if not PYTHON.exists():
        say(f"Creating the environment in {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = requirements_digest()
    if not (STAMP.exists() and STAMP.read_text().strip() == wanted):
        install(requirements=True)
        write_replacing(STAMP, f"{wanted}\n".encode())
    elif origin == "":
        install(requirements=False)  # the packages are there, the course package is not
    return PYTHON


def build_wheel(python: Path) -> int:
    """The course package with its data and configuration, for `pip install` anywhere (e.g. on Colab)."""
    dist = ROOT / "dist"
    code = subprocess.call([str(python), "-m", "pip", "wheel", "--disable-pip-version-check", "-q", "--no-deps",
                            "--no-build-isolation", "-w", str(dist), str(ROOT)])
    if code == 0:
        say(f"written to {max(dist.glob('batchcourse-*.whl'), key=os.path.getmtime)}")
    return code


def ends_with_parent(parent: int):
    """For a task's process: it gets SIGTERM when this process ends, however (a time limit, a closed terminal)."""

    def set_parent_death_signal() -> None:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)

    return set_parent_death_signal


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in TASKS:
        print(__doc__)
        return 2
    python = ensure_environment(argv[0])
    if argv[0] == "setup":
        return 0
    if argv[0] == "wheel":
        return build_wheel(python)
    env = dict(os.environ, JUPYTER_CONFIG_PATH=str(ROOT / "autograde"), JUPYTER_PLATFORM_DIRS="1",
               PATH=os.pathsep.join([str(python.parent), os.environ.get("PATH", "")]))
    with subprocess.Popen([str(python), "-m", "batchcourse.cli", *argv], cwd=ROOT, env=env,
                          preexec_fn=ends_with_parent(os.getpid()) if sys.platform == "linux" else None) as task:
        try:
            return task.wait()
        except KeyboardInterrupt:  # Ctrl-C reached the task too; `kill -INT` of this process did not
            task.send_signal(signal.SIGINT)
            return task.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
