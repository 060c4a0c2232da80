"""The tasks behind tasks.py, run inside the course environment."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

from . import editions, grading
from .i18n import LANGUAGES, translate
from .paths import NOTEBOOKS_DIR, REPO_ROOT, assignment_ids


LAB_SETTINGS = Path(__file__).parent / "lab_settings"


def lab_command(root: Path = REPO_ROOT, extra: list[str] = (), lang: str = "en") -> list[str]:
    """JupyterLab on the course, opened on the first student notebook (of the edition in `lang`), with no calls to
    the internet.

    The settings in lab_settings/ also keep JupyterLab from asking whether to fetch its news."""
    first = NOTEBOOKS_DIR / "00_orientation" / "00_orientation.ipynb"
    if lang != "en":
        first = editions.edition_path(lang, "00_orientation")
    command = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={root}",
               f"--LabApp.default_url=/lab/tree/{first.relative_to(REPO_ROOT).as_posix()}",
               f"--LabApp.app_settings_dir={LAB_SETTINGS}",
               "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               # encrypted kernel sockets: no warning about plain-text TCP, which a learner could do nothing about
               "--KernelManager.transport_encryption=auto", *extra]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # Windows has no root, and no geteuid
        command.append("--allow-root")
    return command


def lab(args) -> int:
    grading.ensure_exchange()
    return subprocess.call(lab_command(extra=args.jupyter_args, lang=args.lang), cwd=REPO_ROOT)


def test(args) -> int:
    # loadgroup: the tests that share a module-wide fixture (a graded batch) run on one worker, in the order
    # tests/conftest.py gives (longest first), not xdist's (groups with the most tests first)
    workers = ["-n", str(args.workers), "--dist", "loadgroup", "--no-loadscope-reorder"] if args.workers > 1 else []
    env = dict(os.environ)
    if args.workers > 1:
        # Each worker runs notebook kernels side by side: one torch thread each keeps them off each other's cores.
        env.setdefault("OMP_NUM_THREADS", "1")
    report = [] if args.pytest_args else ["--durations=25"]  # where the whole suite's time goes
    code = subprocess.call([sys.executable, "-m", "pytest", *workers, *report, *args.pytest_args], cwd=REPO_ROOT, env=env)
    return 0 if code == 5 and args.pytest_args else code


def check(args) -> int:
    from .selfcheck import self_check

    path = Path(args.notebook)
    if not path.is_file():
        print(translate(f"No notebook at {path}: give the path of your .ipynb file, e.g. "
                        "notebooks/00_orientation/00_orientation.ipynb"))
        return 2
    return self_check(path.resolve())


def course(args) -> tuple[Path, str]:
    """The course root an instructor command works on, and its gradebook (NBGRADER_DB_URL when set)."""
    root = Path(args.course_root).resolve()
    return root, grading.default_db_url(root)


def release(args) -> int:
    root, db_url = course(args)
    for assignment in args.assignments or grading.course_assignments(root):
        grading.release(assignment, root, db_url)
        print(f"released {assignment} -> {root / 'notebooks' / assignment}/")
        if root == REPO_ROOT:
            for path in editions.build(assignment):
                print(f"  edition {path.relative_to(root)}")
    return 0


def grade(args) -> int:
    from .grading import instructor, lifetime, parallel, sandbox

    try:
        part = parallel.parse_slice(args.slice) if args.slice else None
    except ValueError as problem:
        print(problem)
        return 2
    with lifetime.grading_run():
        sandbox.remove_folders_of_ended_runs()  # those of runs stopped before: their graders could not
        try:
            return instructor.grade(*course(args), args.assignments, collect=args.zip, workers=args.workers, part=part)
        except lifetime.GradingStoppedBySignal as stop:
            print(f"\nGRADING STOPPED by {stop}: every process of this grading run was ended. Submissions graded "
                  "before keep their scores; those listed as NOT graded have none. Run grade again to grade them.",
                  flush=True)
            lifetime.end_now(128 + stop.signum)


def feedback(args) -> int:
    from .grading import instructor

    return instructor.feedback(*course(args), args.assignments)


def export(args) -> int:
    from .grading import instructor

    return instructor.export(*course(args), args.assignments)


def publish(args) -> int:
    from .grading import instructor

    return instructor.publish(*course(args), args.assignments, feedback=args.feedback, lang=args.lang)


def collect(args) -> int:
    from .grading import instructor

    return instructor.collect(*course(args), args.assignments)


def sweep(args) -> int:
    from . import sweeps

    print(f"written to {sweeps.run(args.assignment, quick=args.quick).relative_to(REPO_ROOT)}")
    return 0


def handout(args) -> int:
    from .handout import HANDOUT_DIR, build

    try:
        out = REPO_ROOT / args.out if args.out else HANDOUT_DIR / ("" if args.lang == "en" else args.lang)
        build(args.assignments or assignment_ids(), out, pdf=not args.no_pdf, lang=args.lang)
    except (RuntimeError, ValueError) as problem:
        print(problem)
        return 1
    return 0


def bench(args) -> int:
    from .grading.bench import run_benchmark

    return run_benchmark(submissions=args.submissions, assignments=args.assignments or assignment_ids(),
                         class_size=args.class_size, side_by_side=args.side_by_side, rounds=args.rounds)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tasks.py")
    sub = parser.add_subparsers(dest="task", required=True)
    p = sub.add_parser("lab", help="open the course in JupyterLab")
    p.add_argument("--lang", choices=LANGUAGES, default="en", help="the edition: en, zh-CN (简体中文) or ru (русский)")
    p.add_argument("jupyter_args", nargs=argparse.REMAINDER)
    p.set_defaults(run=lab)
    p = sub.add_parser("test", help="run the whole test suite")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("pytest_args", nargs=argparse.REMAINDER)
    p.set_defaults(run=test)
    p = sub.add_parser("check", help="self-check a notebook (exit code 1 when a test fails)")
    p.add_argument("notebook")
    p.set_defaults(run=check)
    for name, run, text in [
        ("release", release, "regenerate notebooks/ from solutions/"),
        ("grade", grade, "autograde submissions; write grades.csv and the Canvas import"),
        ("feedback", feedback, "write each student's HTML feedback (after hand grading)"),
        ("export", export, "write grades.csv and the Canvas import again (after hand grading)"),
        ("publish", publish, "JupyterHub: put the student versions in nbgrader's exchange for students to fetch"),
        ("collect", collect, "JupyterHub: collect the students' submissions from nbgrader's exchange"),
    ]:
        p = sub.add_parser(name, help=text)
        if name == "grade":
            p.add_argument("--zip", action="store_true",
                           help="first collect an LMS download from autograde/downloaded/<id>/archive/")
            p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                           help="submissions graded at once, each in its own sandbox (default: the number of cores)")
            p.add_argument("--slice", metavar="K/N", help="grade only slice K of N of the students (several graders "
                           "sharing one PostgreSQL gradebook)")
        if name == "publish":
            p.add_argument("--feedback", action="store_true", help="the feedback of `tasks.py feedback` instead")
            p.add_argument("--lang", choices=LANGUAGES, default="en", help="the edition students fetch")
        p.add_argument("--course-root", default=str(REPO_ROOT), help="work on another copy of the course")
        p.add_argument("assignments", nargs="*")
        p.set_defaults(run=run)
    p = sub.add_parser("sweep", help="run an assignment's full experiment; write data/sweeps/<id>.json")
    p.add_argument("assignment")
    p.add_argument("--quick", action="store_true", help="a small version, to try the command")
    p.set_defaults(run=sweep)
    p = sub.add_parser("bench", help="execute and grade everything; write benchmarks/results.json")
    p.add_argument("--submissions", type=int, default=20)
    p.add_argument("--class-size", type=int, default=0,
                   help="also grade a class of this size with 1 and 2 workers (on the first assignment)")
    p.add_argument("--side-by-side", type=int, default=0, metavar="N",
                   help="also grade a class of N right answers of 00 and 04 (1 and 2 workers) next to a plain "
                        "`jupyter nbconvert --execute` of the same notebook, with peak PSS memory")
    p.add_argument("--rounds", type=int, default=1, metavar="R",
                   help="measure --side-by-side R times and keep the medians")
    p.add_argument("assignments", nargs="*")
    p.set_defaults(run=bench)
    p = sub.add_parser("handout", help="write the workshop handout: static pages and a PDF, readable offline")
    p.add_argument("--out", help="the folder to write, relative to the course folder (default: build/handout, "
                   "build/handout/<lang> for another language)")
    p.add_argument("--lang", choices=LANGUAGES, default="en", help="the edition: en, zh-CN (简体中文) or ru (русский)")
    p.add_argument("--no-pdf", action="store_true", help="only the pages (the PDF needs Chromium)")
    p.add_argument("assignments", nargs="*")
    p.set_defaults(run=handout)
    args, extra = parser.parse_known_args(argv)
    if extra and args.task not in ("lab", "test"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.task == "lab":
        args.jupyter_args = [*extra, *args.jupyter_args]
    if args.task == "test":
        args.pytest_args = [*extra, *args.pytest_args]
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
