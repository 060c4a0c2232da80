"""tasks.py: the environment it runs the tasks in is this folder's, or it stops with a sentence saying what to do."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("tasks", ROOT / "tasks.py")
tasks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tasks)


def test_the_course_environment_imports_this_folder():
    assert tasks.batchcourse_origin(Path(sys.executable)) == str(ROOT / "src" / "batchcourse")


def test_an_environment_that_does_not_run_here_says_to_run_setup(tmp_path, monkeypatch):
    broken = tmp_path / ".venv" / "bin" / "python"
    broken.parent.mkdir(parents=True)
    broken.write_text("not a program")
    monkeypatch.setattr(tasks, "PYTHON", broken)
    monkeypatch.setattr(tasks, "ACTIVE_ENV", False)
    with pytest.raises(SystemExit, match=r"does not run on this machine .*: run `python3 tasks.py setup`"):
        tasks.ensure_environment("lab")


def test_an_active_environment_that_imports_another_folder_is_refused(tmp_path):
    (tmp_path / "batchcourse").mkdir()
    (tmp_path / "batchcourse" / "__init__.py").write_text("")
    env = dict(os.environ, BATCHCOURSE_ACTIVE_ENV="1", PYTHONPATH=str(tmp_path))
    result = subprocess.run([sys.executable, str(ROOT / "tasks.py"), "setup"], env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert "does not import the course package from" in result.stderr and "pip install --no-deps" in result.stderr


def test_scripts_of_a_moved_environment_name_the_new_folder(tmp_path, monkeypatch):
    old, new = tmp_path / "old" / ".venv", tmp_path / "new" / ".venv"
    (new / "bin").mkdir(parents=True)
    script = new / "bin" / "jupyter-lab"
    script.write_text(f"#!{old}/bin/python\nimport sys\n")
    script.chmod(0o755)
    (new / "bin" / "python").write_bytes(b"\x7fELF\0binary naming " + str(old).encode())
    monkeypatch.setattr(tasks, "VENV", new)
    tasks.repoint_scripts(old)
    assert script.read_text() == f"#!{new}/bin/python\nimport sys\n"
    assert script.stat().st_mode & 0o777 == 0o755
    assert str(old).encode() in (new / "bin" / "python").read_bytes()
