"""The instructor's grading day, as the README tells it: grade an LMS download, hand-grade, feedback, export.

One Canvas-style download of 00_orientation (a correct, a half-correct, a late blank, a corrupt, a misnamed,
another assignment's and a non-notebook file) is graded once in a scratch course and shared by the tests.
"""

import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

from batchcourse import cli, grading
from batchcourse.grading import instructor, lifetime, lms
from batchcourse.grading.feedback import path_scrubber
from batchcourse.paths import REPO_ROOT, SOLUTIONS_DIR

A = "00_orientation"
HALF_WRONG = """
def split_batch(x, batch_size):
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    return [x[i * batch_size:(i + 1) * batch_size] for i in range(len(x) // batch_size)]
"""
ZIP_TIME = (2026, 11, 20, 9, 30, 0)
LATE_TIME = (2026, 11, 22, 23, 59, 0)


def cli_run(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("NBGRADER_DB_URL", "BATCHCOURSE_UNSAFE_NO_SANDBOX")}
    environment.update(env)
    return subprocess.run([sys.executable, "-m", "batchcourse.cli", *args], cwd=REPO_ROOT, env=environment,
                          capture_output=True, text=True, timeout=900)


def notebooks(root: Path) -> tuple:
    student = grading.read(root / "notebooks" / A / f"{A}.ipynb")
    return student, grading.solution_code(grading.read(SOLUTIONS_DIR / A / f"{A}.ipynb"))


def released_course(parent: Path) -> Path:
    root = grading.scratch_course(A, parent)
    grading.release(A, root=root, db_url=grading.sqlite_url(root))
    return root


def write_download(root: Path, files: dict[str, tuple[str, tuple]]) -> None:
    archive = root / "autograde" / "downloaded" / A / "archive"
    archive.mkdir(parents=True)
    with zipfile.ZipFile(archive / "submissions.zip", "w") as bundle:
        for name, (text, when) in files.items():
            bundle.writestr(zipfile.ZipInfo(name, when), text)


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """Grade the download, hand-grade ada's written answer as Formgrader would, then feedback and export."""
    from nbgrader.api import Gradebook

    root = released_course(tmp_path_factory.mktemp("grading-day"))
    student, solution = notebooks(root)
    half = grading.make_submission(student, {"stack_images": solution["stack_images"], "split_batch": HALF_WRONG})
    write_download(root, {
        f"ada_1234_5678_{A}.ipynb": (nbformat.writes(grading.make_submission(student, solution)), ZIP_TIME),
        f"ben_1240_5690_{A}.ipynb": (nbformat.writes(half), ZIP_TIME),
        f"bob_LATE_1235_5679_{A}-1.ipynb": (nbformat.writes(student), LATE_TIME),
        f"dave_1236_5680_{A}.ipynb": ('{"cells": [', ZIP_TIME),
        f"{A}.ipynb": (nbformat.writes(student), ZIP_TIME),
        f"carl_1237_5681_01_conv_batch_independence.ipynb": (nbformat.writes(student), ZIP_TIME),
        "eve_1238_5682_notes.pdf": ("%PDF-1.4", ZIP_TIME),
    })
    graded = cli_run("grade", "--zip", "--course-root", str(root), A)
    feedback_after_grade = sorted((root / "autograde" / "feedback").glob("*/*/*.html"))
    with Gradebook(grading.sqlite_url(root)) as gradebook:
        gradebook.find_grade("answer_batch_dimension", A, A, "ada").manual_score = 1
        gradebook.db.commit()
    feedback = cli_run("feedback", "--course-root", str(root))
    exported = cli_run("export", "--course-root", str(root), A)
    return {"root": root, "grade": graded, "feedback_after_grade": feedback_after_grade, "feedback": feedback,
            "export": exported}


@pytest.mark.notebooks
def test_every_file_of_the_download_is_accounted_for(day):
    result = day["grade"]
    assert result.returncode == instructor.EXIT_NOT_ALL_GRADED, result.stdout + result.stderr
    out = result.stdout
    assert f"NOT GRADED  submissions/{A}.ipynb: no student id in the file name" in out
    assert "NOT GRADED  submissions/carl_1237_5681_01_conv_batch_independence.ipynb: a notebook of another assignment" in out
    assert "NOT GRADED  submissions/eve_1238_5682_notes.pdf: not a notebook" in out
    assert f"NOT GRADED  submissions/dave_1236_5680_{A}.ipynb: not valid JSON" in out
    assert "nbgrader's zip_collect: 4 files collected, 3 files skipped" in out
    assert "3 of 7 files of the download graded" in out and "4 file(s) or submission(s) were not graded" in out
    record = {row["file"].split("/")[-1]: row for row in read_csv(lms.record_path(day["root"], A))}
    assert len(record) == 7
    assert {name for name, row in record.items() if row["graded"] == "True"} == {
        f"ada_1234_5678_{A}.ipynb", f"ben_1240_5690_{A}.ipynb", f"bob_LATE_1235_5679_{A}-1.ipynb"}
    assert all(row["reason"] for row in record.values() if row["graded"] == "False")


@pytest.mark.notebooks
def test_a_corrupt_notebook_is_set_aside_and_never_scored_as_blank(day):
    from nbgrader.api import Gradebook

    root = day["root"]
    assert (root / "autograde" / "unreadable" / "dave" / A / f"{A}.ipynb").is_file()
    assert not (root / "autograde" / "submitted" / "dave").exists()
    assert "dave" not in {row["student_id"] for row in read_csv(root / "autograde" / "grades.csv")}
    assert "dave" not in {row["Student"] for row in read_csv(root / "autograde" / f"canvas_{A}.csv")}
    with Gradebook(grading.sqlite_url(root)) as gradebook:
        assert "dave" not in {s.id for s in gradebook.students}


@pytest.mark.notebooks
def test_exports_for_canvas_and_the_download_record(day):
    root = day["root"]
    assert day["export"].returncode == 0, day["export"].stdout + day["export"].stderr
    rows = read_csv(root / "autograde" / f"canvas_{A}.csv")
    assert list(rows[0]) == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", A]
    assert rows[0]["Student"] == "Points Possible" and float(rows[0][A]) == 10
    scores = {row["Student"]: (row["ID"], float(row[A])) for row in rows[1:]}
    # ada: 9 automatic points and 1 given by hand; ben: stack_images and split_batch's error check; bob: blank.
    assert scores == {"ada": ("1234", 10.0), "ben": ("1240", 4.0), "bob": ("1235", 0.0)}
    record = {row["student_id"]: row for row in read_csv(lms.record_path(root, A)) if row["student_id"]}
    assert record["bob"]["late"] == "True" and record["ada"]["late"] == "False"
    assert record["bob"]["submitted_at"] == "2026-11-22 23:59:00"
    nbgrader_rows = {row["student_id"]: row for row in read_csv(root / "autograde" / "grades.csv")}
    assert nbgrader_rows["bob"]["timestamp"].startswith("2026-11-22 23:59:00")
    assert float(nbgrader_rows["ada"]["score"]) == 10


@pytest.mark.notebooks
def test_feedback_is_its_own_step_and_shows_verdicts_without_hidden_tests_or_paths(day):
    from bs4 import BeautifulSoup

    assert day["feedback_after_grade"] == [], "grade must leave feedback to the feedback task"
    assert "python3 tasks.py feedback" in day["grade"].stdout
    assert day["feedback"].returncode == 0, day["feedback"].stdout + day["feedback"].stderr
    source = grading.read(SOLUTIONS_DIR / A / f"{A}.ipynb")
    released = "\n".join(cell.source for cell in grading.read(day["root"] / "notebooks" / A / f"{A}.ipynb").cells)
    hidden_lines = [line.strip() for cell in source.cells if "BEGIN HIDDEN TESTS" in cell.source
                    for line in cell.source.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0].splitlines()
                    if len(line.strip()) > 12 and line.strip() not in released]
    assert len(hidden_lines) > 5
    for student in ("ada", "ben", "bob"):
        page = (day["root"] / "autograde" / "feedback" / student / A / f"{A}.html").read_text()
        text = BeautifulSoup(page, "html.parser").get_text()
        for leak in ["HIDDEN TESTS", "Traceback (most recent call last)", "site-packages", str(day["root"]),
                     str(REPO_ROOT), sys.prefix, *hidden_lines]:
            assert leak not in text, f"{student}'s feedback shows {leak!r}"
        assert "white-space: pre-wrap" in page
    page = BeautifulSoup((day["root"] / "autograde" / "feedback" / "ben" / A / f"{A}.html").read_text(), "html.parser")
    verdicts = {row.find_all("td")[0].get_text(): [td.get_text() for td in row.find_all("td")[1:]]
                for row in page.find("table", class_="batchcourse-verdicts").find_all("tr")[1:]}
    assert verdicts["test_stack_images_values"] == ["passed", "1 / 1", ""]
    assert verdicts["test_split_batch_errors"] == ["passed", "1 / 1", ""]
    verdict, points, message = verdicts["test_split_batch_values"]
    assert verdict == "failed" and points == "0 / 1" and message.endswith(".") and "NotImplementedError" not in message
    assert verdicts["test_to_nchw_visible"][2].startswith("not done yet")
    text = page.get_text()
    assert "range(len(x) // batch_size)" in text, "the student's own code must stay"
    assert "stack_images(three images of shape (1, 28, 28))" in text, "the visible tests must stay"
    ada = (day["root"] / "autograde" / "feedback" / "ada" / A / f"{A}.html").read_text()
    assert "written answer</td><td>1 / 1" in ada


def stopped_course(parent: Path) -> Path:
    root = released_course(parent)
    student, solution = notebooks(root)
    grading.place_submission(grading.make_submission(student, solution), root, "ada", A)
    return root


@pytest.mark.notebooks
@pytest.mark.parametrize("env, cause", [
    ({"PATH": "/nonexistent"}, "cannot be isolated here"),  # no `unshare`: the sandbox cannot be made
    ({"BATCHCOURSE_WALL_SECONDS": "1"}, "wall-clock limit of 1 s"),  # every kernel is killed at once
], ids=["no-sandbox", "kernel-killed"])
def test_a_grader_side_failure_stops_before_any_score(tmp_path, env, cause):
    from nbgrader.api import Gradebook

    root = stopped_course(tmp_path)
    result = cli_run("grade", "--course-root", str(root), A, **env)
    assert result.returncode == instructor.EXIT_STOPPED, result.stdout + result.stderr
    assert "GRADING STOPPED before any score was written" in result.stdout and cause in result.stdout
    assert not (root / "autograde" / "grades.csv").exists()
    assert not (root / "autograde" / "autograded").exists()
    with Gradebook(grading.sqlite_url(root)) as gradebook:
        assert gradebook.assignment_submissions(A) == []


# ----------------------------------------------------------------------------------------
# PostgreSQL: a real server on a private Unix socket, started and stopped by the test.

def postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def install_postgres() -> str | None:
    """None when PostgreSQL's server programs are here (installing Debian's package if need be), else why not."""
    if postgres_bin():
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "PostgreSQL is not installed, and installing Debian's `postgresql` needs root and apt-get"
    quiet = dict(capture_output=True, text=True, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    subprocess.run(["apt-get", "update"], **quiet)
    install = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "postgresql"], **quiet)
    return None if postgres_bin() else f"apt-get install postgresql failed: {install.stderr.strip()[-300:]}"


@pytest.fixture
def postgres_url():
    reason = install_postgres()
    if reason:
        pytest.skip(reason)
    if os.geteuid() != 0:
        pytest.skip("the test runs the server as the `postgres` user, which needs root")
    bin_dir = postgres_bin()
    folder = Path(tempfile.mkdtemp(prefix="batchcourse-pg-"))
    shutil.chown(folder, "postgres")

    def as_postgres(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True, cwd=folder)

    data, log = folder / "data", folder / "server.log"
    try:
        made = as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust")
        assert made.returncode == 0, made.stderr
        started = as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o",
                              f"-k {folder} -c listen_addresses=''", "start")
        assert started.returncode == 0, started.stderr + (log.read_text() if log.exists() else "")
        created = as_postgres(str(bin_dir / "createdb"), "-h", str(folder), "-U", "postgres", "course")
        assert created.returncode == 0, created.stderr
        yield f"postgresql://postgres@/course?host={folder}"
    finally:
        as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.notebooks
def test_grades_into_a_postgresql_gradebook(tmp_path, postgres_url):
    from nbgrader.api import Gradebook

    root = released_course(tmp_path)
    (root / "autograde" / "gradebook.db").unlink()
    student, solution = notebooks(root)
    grading.place_submission(grading.make_submission(student, solution), root, "ada", A)
    grading.place_submission(student, root, "bob", A)
    result = cli_run("grade", "--course-root", str(root), A, NBGRADER_DB_URL=postgres_url)
    assert result.returncode == 0, result.stdout + result.stderr
    with Gradebook(postgres_url) as gradebook:
        scores = {s.student.id: s.score for s in gradebook.assignment_submissions(A)}
    assert scores == {"ada": 9, "bob": 0}
    assert not (root / "autograde" / "gradebook.db").exists(), "the SQLite gradebook must not be used"
    feedback = cli_run("feedback", "--course-root", str(root), NBGRADER_DB_URL=postgres_url)
    assert feedback.returncode == 0 and (root / "autograde" / "feedback" / "ada" / A / f"{A}.html").is_file()


# ----------------------------------------------------------------------------------------
# Without a kernel.

@pytest.mark.parametrize("name, expected", [
    (f"jdoe_1234_5678_{A}.ipynb", ("jdoe", "1234", False)),
    (f"bob_LATE_1235_5679_{A}-1.ipynb", ("bob", "1235", True)),
    (f"jdoe_{A}.ipynb", ("jdoe", "", False)),
    (f"{A}.ipynb", "no student id in the file name"),
    ("My notebook.ipynb", "no student id in the file name"),
    ("carl_1237_5681_01_conv_batch_independence.ipynb", "a notebook of another assignment"),
    (f"eve_1238_5682_{A}.py", "not a notebook"),
])
def test_download_file_names(name, expected):
    found = lms.classify(Path("/x/extracted/submissions") / name, A,
                        grading.nbgrader_config().FileNameCollectorPlugin.named_regexp)
    if isinstance(expected, str):
        assert isinstance(found, str) and found.startswith(expected)
    else:
        assert (found.student_id, found.lms_user_id, found.late) == expected


def test_notebook_problems(tmp_path):
    cases = {"garbage.ipynb": "not json", "list.ipynb": "[1, 2]", "bad.ipynb": '{"cells": 3, "metadata": {}}'}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
    assert grading.notebook_problem(tmp_path / "garbage.ipynb").startswith("not valid JSON")
    assert grading.notebook_problem(tmp_path / "list.ipynb").startswith("JSON, but not a notebook")
    assert grading.notebook_problem(tmp_path / "bad.ipynb").startswith("not a valid notebook")
    good = tmp_path / "good.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), good)
    assert grading.notebook_problem(good) is None


def test_path_scrubber_keeps_file_names_only():
    scrub = path_scrubber(Path("/srv/course"), Path(sys.prefix))
    text = scrub(f"/srv/course/autograde/x.py:3: {sys.prefix}/lib/python3/site-packages/torch/nn/f.py:7: UserWarning: /opt/a/dist-packages/b.py")
    assert text == "x.py:3: f.py:7: UserWarning: b.py"


def test_every_instructor_command_takes_a_course_root_and_the_database_url(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("NBGRADER_DB_URL", "postgresql://grader@db.example/course")
    assert grading.default_db_url(tmp_path) == "postgresql://grader@db.example/course"
    monkeypatch.delenv("NBGRADER_DB_URL")
    assert grading.default_db_url(tmp_path) == f"sqlite:///{tmp_path / 'autograde' / 'gradebook.db'}"
    for task in ("release", "grade", "feedback", "export"):
        with pytest.raises(SystemExit):
            cli.main([task, "--help"])
        assert "--course-root" in capsys.readouterr().out, task


# ----------------------------------------------------------------------------------------
# Parallel grading: the same scores with two workers as with one, on SQLite and PostgreSQL.

def batch_course(parent: Path, extra_students: tuple[str, ...] = ()) -> Path:
    """The solution (ada), a blank (bob), one wrong answer (ben) and a broken notebook (dave); `extra_students`
    hand in the solution too."""
    root = released_course(parent)
    student, solution = notebooks(root)
    half = grading.make_submission(student, {"stack_images": solution["stack_images"], "split_batch": HALF_WRONG})
    for name, notebook in {"ada": grading.make_submission(student, solution), "bob": student, "ben": half,
                           **{name: grading.make_submission(student, solution) for name in extra_students}}.items():
        grading.place_submission(notebook, root, name, A)
    broken = root / "autograde" / "submitted" / "dave" / A
    broken.mkdir(parents=True)
    (broken / f"{A}.ipynb").write_text('{"cells": [')
    return root


def points(db_url: str) -> dict[str, dict[str, float]]:
    return {student: {grade: cell.score for grade, cell in cells.items()}
            for student, cells in grading.scores(A, db_url).items()}


def descendants(pid: int) -> list[int]:
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return children + [d for child in children for d in descendants(child)]


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not: it only waits for its parent to collect it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def crash_grader_of(student: str, root: Path, outcome: dict) -> threading.Thread:
    """Kill (SIGKILL) the nbgrader process grading `student` in `root` once it has started writing its output,
    as a crash would; `outcome["left"]` gets the processes it had started that are alive 5 s later."""
    marker, folder = f"--student={student}", root / "autograde" / "autograded" / student / A

    def watch() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            for proc in Path("/proc").iterdir():
                try:
                    command = (proc / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if marker.encode() in command and f"--CourseDirectory.root={root}".encode() in command:
                    while not folder.exists() and time.monotonic() < deadline:
                        time.sleep(0.05)
                    pid = int(proc.name)
                    started = descendants(pid)
                    os.kill(pid, signal.SIGKILL)
                    deadline = time.monotonic() + 5
                    while (left := [p for p in started if alive(p)]) and time.monotonic() < deadline:
                        time.sleep(0.05)
                    outcome["left"] = left
                    return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def serial_points(tmp_path_factory):
    root = batch_course(tmp_path_factory.mktemp("serial"))
    result = cli_run("grade", "--workers", "1", "--course-root", str(root), A)
    assert result.returncode == instructor.EXIT_NOT_ALL_GRADED, result.stdout + result.stderr
    found = points(grading.sqlite_url(root))
    assert set(found) == {"ada", "ben", "bob"} and sum(filter(None, found["ada"].values())) == 9
    assert not any(found["bob"].values())
    return found


@pytest.mark.notebooks
def test_two_workers_give_the_serial_scores_and_a_crash_costs_only_its_own_grade(tmp_path, serial_points):
    root = batch_course(tmp_path, extra_students=("carl",))
    crash = {}
    watcher = crash_grader_of("carl", root, crash)
    run = f"crash{os.getpid()}"
    result = cli_run("grade", "--workers", "2", "--course-root", str(root), A, **{lifetime.RUN_VARIABLE: run})
    watcher.join(timeout=10)
    assert crash.get("left") == [], f"the killed grader's sandbox outlived it: {crash}"
    assert not lifetime.processes_of_run(run), "processes of the grading run outlived it"
    out = result.stdout
    assert result.returncode == instructor.EXIT_NOT_ALL_GRADED, out + result.stderr
    assert "NOT GRADED  carl: its grader process was killed (signal 9)" in out
    assert "NOT GRADED  dave: not valid JSON" in out and "2 file(s) or submission(s) were not graded" in out
    assert "[4/4]" in out and "ETA" in out and "4 submission(s) through 2 worker(s)" in out
    assert out.index("grading the solution first") < out.index("[1/4]")
    assert not (root / "autograde" / "autograded" / "carl" / A).exists(), "a killed grader's output must go"
    found = points(grading.sqlite_url(root))
    assert {student: found[student] for student in serial_points} == serial_points


@pytest.mark.notebooks
def test_two_workers_into_a_postgresql_gradebook_give_the_serial_scores(tmp_path, postgres_url, serial_points):
    root = batch_course(tmp_path)
    (root / "autograde" / "gradebook.db").unlink()
    result = cli_run("grade", "--workers", "2", "--course-root", str(root), A, NBGRADER_DB_URL=postgres_url)
    assert result.returncode == instructor.EXIT_NOT_ALL_GRADED, result.stdout + result.stderr
    assert points(postgres_url) == serial_points
    assert not (root / "autograde" / "gradebook.db").exists()


def test_slices_split_any_class_into_disjoint_parts():
    from batchcourse.grading.parallel import in_slice, parse_slice, worker_db_url

    students = [f"s{i}" for i in range(300)]
    parts = [{s for s in students if in_slice(s, (k, 3))} for k in (1, 2, 3)]
    assert set.union(*parts) == set(students) and sum(map(len, parts)) == len(students)
    assert all(len(part) > 50 for part in parts)
    assert parse_slice("2/3") == (2, 3)
    for wrong in ("0/3", "4/3", "3", "a/b"):
        with pytest.raises(ValueError):
            parse_slice(wrong)
    assert worker_db_url("sqlite:////x/gradebook.db") == "sqlite:////x/gradebook.db?timeout=120"
    assert worker_db_url("postgresql://u@/course?host=/tmp") == "postgresql://u@/course?host=/tmp"


def test_a_slice_reports_only_its_own_files_of_the_download(tmp_path, capsys):
    from batchcourse.grading.parallel import in_slice

    students = [f"s{i}" for i in range(8)]
    mine = [s for s in students if in_slice(s, (1, 2))]
    assert 0 < len(mine) < len(students)
    records = [lms.DownloadFile(file=f"{s}_{A}.ipynb", student_id=s) for s in students]
    records.append(lms.DownloadFile(file="notes.pdf", reason="not a notebook"))
    problems = {mine[0]: "nbgrader could not grade it: boom"}
    (tmp_path / "autograde").mkdir()
    not_graded = instructor.report_download(tmp_path, A, records, problems, part=(1, 2))
    out = capsys.readouterr().out
    assert not_graded == 2 and problems == {}
    assert f"{len(mine) - 1} of {len(mine) + 1} files of the download graded" in out
    assert f"{len(students) - len(mine)} file(s) of the download belong to other slices" in out
    assert f"NOT GRADED  {mine[0]}_{A}.ipynb: nbgrader could not grade it: boom" in out
    recorded = {r.student_id: r for r in lms.read_download_record(tmp_path, A) if r.student_id}
    assert len(recorded) == len(students), "the record keeps every file, for the Canvas ids of the export"
