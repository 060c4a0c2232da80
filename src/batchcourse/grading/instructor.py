"""The instructor's grading day behind `tasks.py grade`, `feedback` and `export` (see the README).

grade:    collect an LMS download (every file accounted for), set aside files that are not notebooks, grade the
          solution first to check the grader, then autograde, and export the grades. Exit codes below.
feedback: after hand grading, each student's HTML feedback (batchcourse/feedback.py shapes it).
export:   after hand grading, nbgrader's grades.csv and the Canvas import again.
publish:  on JupyterHub, copy the student versions into nbgrader's exchange (hub.py), the course folder closed first.
collect:  on JupyterHub, nbgrader's collect from the exchange into autograde/submitted/, before `grade`.
"""

from pathlib import Path

from .. import grading
from . import lms, parallel

EXIT_NOT_ALL_GRADED = 1  # some files or submissions were not graded; each is named with the reason
EXIT_STOPPED = 3  # grading stopped before any score was written (the grader, not a student, has a problem)


def has_submissions(root: Path, assignment: str, folder: str = "submitted") -> bool:
    return any((root / "autograde" / folder).glob(f"*/{assignment}"))


def prepare(root: Path, db_url: str, assignments: list[str], collect: bool):
    """Everything before the first score: collect downloads, set aside unreadable notebooks, check the grader."""
    config = grading.nbgrader_config()  # the configuration run_nbgrader gives nbgrader, whatever the root
    downloads, problems = {}, {}
    for assignment in assignments:
        grading.record_in_gradebook(assignment, root, db_url)
        if collect:
            print(f"{assignment}: nbgrader's zip_collect: {grading.zip_collect(assignment, root, db_url)}")
            downloads[assignment] = lms.account_for_download(root, assignment, config)
        problems[assignment] = {student: f"{why}; set aside in autograde/unreadable/"
                                for student, why in grading.set_aside_unreadable(assignment, root).items()}
    for assignment in assignments:
        if has_submissions(root, assignment):
            print(f"{assignment}: grading the solution first, to check that the grader works ...", flush=True)
            grading.check_grader(assignment, root)
    return downloads, problems


def report_download(root: Path, assignment: str, records, problems: dict[str, str],
                    part: tuple[int, int] | None = None) -> int:
    """Say what became of every file of the download; write autograde/download_<id>.csv; count those not graded.

    The problems of students whose file is in the download are taken out of `problems`. With a slice, the files
    of other slices' students are recorded as left to their graders, and neither listed nor counted here."""
    others = 0
    for record in records:
        if record.student_id and not parallel.in_slice(record.student_id, part):
            record.reason, record.graded = f"left to the grader of another slice than {part[0]}/{part[1]}", False
            others += 1
            continue
        if record.student_id and not record.reason:
            record.reason = problems.pop(record.student_id, "")
            record.graded = not record.reason
        if not record.graded:
            print(f"  NOT GRADED  {record.file}: {record.reason}")
    if others:
        print(f"{assignment}: {others} file(s) of the download belong to other slices")
    print(f"{assignment}: {sum(r.graded for r in records)} of {len(records) - others} files of the download "
          f"graded; account in {lms.write_download_record(root, assignment, records)}")
    return sum(not r.graded for r in records) - others


def write_exports(root: Path, db_url: str, assignments: list[str]) -> None:
    print(f"grades written to {grading.export_grades(root, db_url)}")
    for assignment in assignments:
        if has_submissions(root, assignment, "autograded"):
            print(f"{assignment}: Canvas gradebook import written to {lms.write_canvas_csv(root, assignment, db_url)}")


def grade(root: Path, db_url: str, assignments: list[str], collect: bool = False, workers: int | None = None,
          part: tuple[int, int] | None = None) -> int:
    """`workers` submissions are graded at once (default: one per core); `part` (K, N) grades only slice K
    of N of the students, for several graders sharing one PostgreSQL gradebook (see parallel.py). One kernel
    source serves every kernel of the command (kernel_source.py), one grader server every grader, one source of
    test processes every test: started once, while the command checks the grader on the solution."""
    assignments = assignments or grading.course_assignments(root)
    with parallel.grading_servers(workers or parallel.default_workers()):
        return _grade(root, db_url, assignments, collect, workers, part)


def _grade(root: Path, db_url: str, assignments: list[str], collect: bool, workers: int | None,
           part: tuple[int, int] | None) -> int:
    from .tamper import write_report

    try:
        downloads, problems = prepare(root, db_url, assignments, collect)
    except (grading.GradingStopped, RuntimeError) as error:
        print(f"GRADING STOPPED before any score was written: {error}")
        return EXIT_STOPPED
    not_graded = 0
    for assignment in assignments:
        if has_submissions(root, assignment):
            problems[assignment].update(parallel.grade_all(assignment, root, db_url, workers, part))
            print(f"{assignment}: tamper report in {write_report(root, assignment)}")
        else:
            print(f"{assignment}: no submissions under {root / 'autograde' / 'submitted'}/<student>/{assignment}/")
        if assignment in downloads:
            not_graded += report_download(root, assignment, downloads[assignment], problems[assignment], part)
        problems[assignment] = {s: why for s, why in problems[assignment].items() if parallel.in_slice(s, part)}
        for student, why in problems[assignment].items():
            print(f"  NOT GRADED  {student}: {why}")
            not_graded += 1
    write_exports(root, db_url, assignments)
    print("Next: hand-grade the written answers in Formgrader, then run `python3 tasks.py feedback` and "
          "`python3 tasks.py export` (grade writes no feedback).")
    if not_graded:
        print(f"{not_graded} file(s) or submission(s) were not graded and have no score (listed above as NOT GRADED).")
        return EXIT_NOT_ALL_GRADED
    return 0


def feedback(root: Path, db_url: str, assignments: list[str]) -> int:
    for assignment in assignments or [a for a in grading.course_assignments(root) if has_submissions(root, a, "autograded")]:
        if not has_submissions(root, assignment, "autograded"):
            print(f"{assignment}: nothing autograded yet; run `python3 tasks.py grade {assignment}` first")
            continue
        grading.generate_feedback(assignment, root, db_url)
        print(f"{assignment}: feedback in {root / 'autograde' / 'feedback'}/<student>/{assignment}/")
        waiting = grading.waiting_for_hand_grading(assignment, db_url)
        if waiting:
            print(f"{assignment}: {len(waiting)} submission(s) still wait for hand grading, so their feedback shows "
                  f"no score for those answers: {', '.join(waiting)}")
    return 0


def export(root: Path, db_url: str, assignments: list[str]) -> int:
    write_exports(root, db_url, assignments or grading.course_assignments(root))
    return 0


def publish(root: Path, db_url: str, assignments: list[str], feedback: bool = False, lang: str = "en") -> int:
    """Close the course folder to other accounts, then copy each student version (in `lang`'s edition; or, with
    `feedback`, the feedback that `tasks.py feedback` wrote) into nbgrader's exchange (JupyterHub)."""
    from . import hub

    hub.close_course(root)
    exchange = hub.exchange_root()
    hub.ensure_shared_exchange(exchange, root)
    if feedback:
        for assignment in assignments or grading.course_assignments(root):
            if not has_submissions(root, assignment, "feedback"):
                print(f"{assignment}: no feedback yet; run `python3 tasks.py feedback {assignment}` first")
                continue
            grading.run_nbgrader("release_feedback", assignment, root=root, db_url=db_url, capture=True)
            print(f"{assignment}: students can fetch their feedback (Assignment List, or `nbgrader fetch_feedback`)")
        return 0
    released = "notebooks" if lang == "en" else f"notebooks/{lang}"
    for assignment in assignments or grading.course_assignments(root):
        if not (root / released / assignment).is_dir():
            print(f"{assignment}: no student version in {released}/; run `python3 tasks.py release {assignment}` first")
            return EXIT_NOT_ALL_GRADED
        grading.run_nbgrader("release_assignment", assignment, "--force",
                             f"--CourseDirectory.release_directory={released}", root=root, db_url=db_url, capture=True)
        print(f"{assignment}: students can fetch it from {exchange / hub.course_id() / 'outbound' / assignment}/")
    return 0


def collect(root: Path, db_url: str, assignments: list[str]) -> int:
    """nbgrader's collect: each student's newest submission from the exchange into autograde/submitted/.

    Only the course's students are collected (hub.roster: the hub's group, else the gradebook's students). A
    submission in a student's name made by another account is not collected, and neither is that student."""
    from . import hub

    hub.close_course(root)
    try:
        students_of_course, source = hub.roster(db_url)
    except RuntimeError as error:
        print(f"NOTHING COLLECTED: {error}")
        return EXIT_STOPPED
    if not students_of_course:
        print(f"NOTHING COLLECTED: {source} is empty. Add the students to the hub's group {hub.students_group()} "
              "(run collect in a hub terminal), or to the gradebook (`nbgrader db student import`).")
        return EXIT_STOPPED
    not_collected = 0
    for assignment in assignments or grading.course_assignments(root):
        forged = hub.forged_names(assignment)
        named = {student for student, _ in hub.submissions_in_exchange(assignment).values()}
        outsiders = sorted(named - students_of_course - set(forged))
        students = sorted(named & students_of_course - set(forged))
        if not named:
            print(f"{assignment}: no submissions in {hub.exchange_root() / hub.course_id() / 'inbound'}/")
            continue
        for student, owners in forged.items():
            print(f"  NOT COLLECTED  {student}: a submission in this name was made by the account(s) "
                  f"{', '.join(sorted(set(owners)))}; an administrator removes it from the exchange, "
                  "then collect again")
        for outsider in outsiders:
            print(f"  NOT COLLECTED  {outsider}: not a student of the course (not in {source})")
        runs = [[]] if not (forged or outsiders) else [[f"--student={student}"] for student in students]
        for extra in runs:
            grading.run_nbgrader("collect", assignment, "--update", *extra, root=root, db_url=db_url, capture=True)
        submitted = root / "autograde" / "submitted"
        print(f"{assignment}: {len(students)} submission(s) in {submitted}/<student>/{assignment}/")
        not_collected += len(forged) + len(outsiders)
    print("Next: `python3 tasks.py grade " + " ".join(assignments) + "` (without --zip).")
    return EXIT_NOT_ALL_GRADED if not_collected else 0
