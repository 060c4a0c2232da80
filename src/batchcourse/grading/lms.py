"""LMS downloads in and grades out: account for every file of a download, and export what Canvas imports.

nbgrader's zip_collect copies the notebooks it can name into autograde/submitted/ and skips the rest with a
warning. `account_for_download` looks at every file the download held, with the same file-name pattern
(FileNameCollectorPlugin.named_regexp in autograde/nbgrader_config.py), and says what became of it; it also
writes each collected submission's time into nbgrader's timestamp.txt, so the gradebook records it.

`write_download_record` keeps that account in autograde/download_<id>.csv (with the Canvas user id, the late
flag and the submission time); `write_canvas_csv` writes autograde/canvas_<id>.csv, Canvas's gradebook import.
"""

import csv
import re
import zipfile
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

CANVAS_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
ZIP_SUFFIXES = {".zip"}


@dataclass
class DownloadFile:
    """One file of an LMS download and what became of it."""

    file: str
    student_id: str = ""
    lms_user_id: str = ""
    late: bool = False
    submitted_at: str = ""
    graded: bool = False
    reason: str = ""


def download_folder(root: Path, assignment: str, config) -> Path:
    return root / config.ZipCollectApp.downloaded_directory / assignment


def recorded_times(archive: Path) -> dict[str, str]:
    """File name -> the time the download records for it: a zip entry's date, or a loose file's modification time."""
    times = {}
    for path in sorted(p for p in archive.rglob("*") if p.is_file()):
        if path.suffix in ZIP_SUFFIXES:
            try:
                with zipfile.ZipFile(path) as bundle:
                    for info in bundle.infolist():
                        times[Path(info.filename).name] = datetime(*info.date_time).isoformat(" ")
            except zipfile.BadZipFile:
                continue
        else:
            modified = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).replace(tzinfo=None)
            times[path.name] = modified.isoformat(" ", "seconds")
    return times


def classify(path: Path, assignment: str, pattern: str) -> DownloadFile | str:
    """The submission a file of the download holds, or why nbgrader's zip_collect skipped it."""
    if path.suffix != ".ipynb":
        return f"not a notebook ({path.suffix or 'no extension'})"
    match = re.match(pattern, path.as_posix())
    if not match:
        return "no student id in the file name (expected e.g. jdoe_1234_5678_00_orientation.ipynb)"
    info = match.groupdict()
    if info["file_id"] != assignment:
        return f"a notebook of another assignment ({info['file_id']})"
    return DownloadFile(file="", student_id=info["student_id"], lms_user_id=info.get("lms_user_id") or "",
                        late=bool(info.get("late")))


def account_for_download(root: Path, assignment: str, config) -> list[DownloadFile]:
    """Every file of the extracted download, with the submission it holds or why it was skipped.

    Run after nbgrader's zip_collect; writes timestamp.txt beside each collected submission that has none."""
    folder = download_folder(root, assignment, config)
    extracted = folder / config.ZipCollectApp.extracted_directory
    times = recorded_times(folder / config.ZipCollectApp.archive_directory)
    pattern = config.FileNameCollectorPlugin.named_regexp
    records = []
    for path in sorted(p for p in extracted.rglob("*") if p.is_file()):
        found = classify(path, assignment, pattern)
        name = path.relative_to(extracted).as_posix()
        if isinstance(found, str):
            records.append(DownloadFile(file=name, reason=found))
            continue
        found.file, found.submitted_at = name, times.get(path.name, "")
        stamp = root / config.CourseDirectory.submitted_directory / found.student_id / assignment / "timestamp.txt"
        if found.submitted_at and stamp.parent.is_dir() and not stamp.exists():
            stamp.write_text(found.submitted_at)
        records.append(found)
    return records


def record_path(root: Path, assignment: str) -> Path:
    return root / "autograde" / f"download_{assignment}.csv"


def write_download_record(root: Path, assignment: str, records: list[DownloadFile]) -> Path:
    path = record_path(root, assignment)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(DownloadFile)])
        writer.writeheader()
        writer.writerows(asdict(record) for record in records)
    return path


def read_download_record(root: Path, assignment: str) -> list[DownloadFile]:
    path = record_path(root, assignment)
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [DownloadFile(**{**row, "late": row["late"] == "True", "graded": row["graded"] == "True"})
                for row in csv.DictReader(handle)]


def write_canvas_csv(root: Path, assignment: str, db_url: str) -> Path:
    """Canvas's gradebook import for one assignment: a row per graded submission, after a Points Possible row.

    Canvas matches rows by its user id (the ID column, from the download's file names) and the assignment by
    the column's name; a column it does not know becomes a new assignment, so nothing else is written here."""
    from nbgrader.api import Gradebook

    lms_ids = {r.student_id: r.lms_user_id for r in read_download_record(root, assignment) if r.student_id}
    path = root / "autograde" / f"canvas_{assignment}.csv"
    with Gradebook(db_url) as gradebook, path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*CANVAS_COLUMNS, assignment])
        writer.writerow(["Points Possible", "", "", "", "", f"{gradebook.find_assignment(assignment).max_score:g}"])
        for submission in sorted(gradebook.assignment_submissions(assignment), key=lambda s: s.student.id):
            score = submission.score - (submission.late_submission_penalty or 0)
            writer.writerow([submission.student.id, lms_ids.get(submission.student.id, ""), "", "", "", f"{score:g}"])
    return path
