"""The Chinese and Russian editions: built from the English student notebooks and the translations, and checked.

`translations/<lang>/<id>.md` holds the translation of each markdown cell of assignment <id>, keyed by the cell's
id and recording a hash of the English text it translates:

    <!-- cell c004 en:3f2a9c1e0b7d -->
    translated markdown ...

`translations/<lang>/<id>.json` holds the messages of the assignment's code (test hints, figure text, printed
lines), and `course.json` those of the course package and tasks.py, English -> translation (`batchcourse.i18n`).
A cell whose English changed, or a message no longer in the code, is stale until translated again.

    python -m batchcourse.editions status [--lang L] [ID ...]     what is missing or stale
    python -m batchcourse.editions scaffold --lang L ID ...       add what is missing, in English, marked TODO
"""

import argparse
import ast
import hashlib
import json
import re
import sys
from pathlib import Path

import nbformat

from .i18n import LANGUAGES, PLACEHOLDER, TRANSLATIONS_DIR
from .paths import DATA_DIR, NOTEBOOKS_DIR, PACKAGE_DIR, REPO_ROOT, SOLUTIONS_DIR, assignment_ids

TRANSLATED = tuple(lang for lang in LANGUAGES if lang != "en")
HEADER = re.compile(r"^<!-- cell (\S+) en:([0-9a-f]{12})( TODO)? -->$", re.MULTILINE)
WORDS = re.compile(r"[A-Za-z]{2,}")
# The course's own code whose messages a learner meets: test hints and the self-check, the environment check,
# the data loader, what the grader writes into a graded notebook, and tasks.py.
COURSE_MODULES = ("checks.py", "selfcheck.py", "environment.py", "data.py", "plotting.py", "cli.py", "handout.py",
                  "grading/trusted.py", "grading/wire.py", "grading/student_side.py", "grading/tamper.py",
                  "grading/output_limit.py", "grading/trusted_execute.py")
TASKS_FILE = REPO_ROOT / "tasks.py"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def is_answer_cell(cell) -> bool:
    """A written answer: the learner's own text, never translated."""
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution"))


def english_cells(assignment: str) -> dict[str, str]:
    """Cell id -> English text of each markdown cell to translate, in the order of the notebook."""
    notebook = nbformat.read(SOLUTIONS_DIR / assignment / f"{assignment}.ipynb", as_version=4)
    return {c.id: c.source for c in notebook.cells if c.cell_type == "markdown" and not is_answer_cell(c)}


def cells_file(lang: str, assignment: str) -> Path:
    return TRANSLATIONS_DIR / lang / f"{assignment}.md"


def read_cells(lang: str, assignment: str) -> dict[str, tuple[str, str, bool]]:
    """Cell id -> (hash of the English it translates, translation, still marked TODO)."""
    path = cells_file(lang, assignment)
    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8")
    headers = list(HEADER.finditer(text))
    cells = {}
    for header, following in zip(headers, [*headers[1:], None]):
        body = text[header.end():following.start() if following else len(text)]
        cells[header.group(1)] = (header.group(2), body.strip("\n"), bool(header.group(3)))
    return cells


def write_cells(lang: str, assignment: str, cells: dict[str, tuple[str, str, bool]]) -> None:
    blocks = [f"<!-- cell {cid} en:{h}{' TODO' if todo else ''} -->\n{body}\n" for cid, (h, body, todo) in cells.items()]
    path = cells_file(lang, assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(blocks), encoding="utf-8")


# -- messages ------------------------------------------------------------------------------------------

def _template(node, source: str) -> str:
    if isinstance(node, ast.Constant):
        return node.value
    return "".join(part.value if isinstance(part, ast.Constant)
                   else "{" + (ast.get_source_segment(source, part.value) or "?") + "}" for part in node.values)


def is_prose(text: str) -> bool:
    """A message a learner reads: at least two words of text outside its placeholders."""
    literal = PLACEHOLDER.sub("", text)
    return " " in literal.strip() and len(WORDS.findall(literal)) >= 2


def _is_not_prose(node) -> bool:
    """A regular expression (an argument of re's functions) or a page template (a constant named *TEMPLATE)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return isinstance(node.func.value, ast.Name) and node.func.value.id == "re"
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id.endswith(("TEMPLATE", "PATTERN")) for t in node.targets)
    return False


def messages_in(source: str) -> list[str]:
    """The English messages written in Python code: string literals and f-string templates, not docstrings."""
    source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    skipped = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            skipped.add(id(body[0].value))  # a docstring
        if isinstance(node, ast.JoinedStr):
            skipped.update(id(inner) for inner in ast.walk(node) if inner is not node)
        if _is_not_prose(node):
            skipped.update(id(inner) for inner in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            text = _template(node, source)
            if is_prose(text) and text not in found:
                found.append(text)
    return found


def english_messages(name: str) -> list[str]:
    """The messages of an assignment's code cells, or of the course's code ("course")."""
    if name == "course":
        sources = [(PACKAGE_DIR / m).read_text() for m in COURSE_MODULES] + [TASKS_FILE.read_text()]
    else:
        notebook = nbformat.read(SOLUTIONS_DIR / name / f"{name}.ipynb", as_version=4)
        sources = [c.source for c in notebook.cells if c.cell_type == "code"]
    found = []
    for source in sources:
        found += [m for m in messages_in(source) if m not in found]
    return found + [m for m in sweep_labels(name) if m not in found]


def sweep_labels(assignment: str) -> list[str]:
    """The names in the assignment's shipped sweeps (data/sweeps/<nn>_*.json) that its figures and tables show."""
    def strings(value):
        if isinstance(value, dict):
            for key, inner in value.items():
                yield key
                yield from strings(inner)
        elif isinstance(value, list):
            for inner in value:
                yield from strings(inner)
        elif isinstance(value, str):
            yield value

    found = {}
    for path in sorted((DATA_DIR / "sweeps").glob(f"{assignment[:3]}*.json")):
        found.update(dict.fromkeys(s for s in strings(json.loads(path.read_text()))
                                   if is_prose(s) and len(s) < 80 and not s.startswith("python3 ")))
    return list(found)


def messages_file(lang: str, name: str) -> Path:
    return TRANSLATIONS_DIR / lang / f"{name}.json"


def read_messages(lang: str, name: str) -> dict[str, str | None]:
    path = messages_file(lang, name)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def write_messages(lang: str, name: str, messages: dict[str, str | None]) -> None:
    path = messages_file(lang, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(messages, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


# -- what is missing or stale ----------------------------------------------------------------------------

def cell_problems(lang: str, assignment: str) -> list[str]:
    english, translated = english_cells(assignment), read_cells(lang, assignment)
    problems = []
    for cid, text in english.items():
        if cid not in translated:
            problems.append(f"cell {cid}: not translated")
        elif translated[cid][0] != digest(text):
            problems.append(f"cell {cid}: stale (the English changed since it was translated)")
        elif translated[cid][2]:
            problems.append(f"cell {cid}: marked TODO")
    problems += [f"cell {cid}: no such markdown cell in English any more" for cid in translated if cid not in english]
    return problems


def message_problems(lang: str, name: str) -> list[str]:
    english, translated = english_messages(name), read_messages(lang, name)
    problems = [f"message not translated: {m!r}" for m in english if not translated.get(m)]
    problems += [f"message no longer in the code: {m!r}" for m in translated if m not in english]
    for key, value in translated.items():
        if value and not set(PLACEHOLDER.findall(value)) <= set(PLACEHOLDER.findall(key)):
            problems.append(f"message {key!r}: its translation has a placeholder the English does not")
    return problems


def disagreements(lang: str) -> list[str]:
    """A message that two files translate differently (at run time one would win)."""
    seen: dict[str, dict[str, str]] = {}
    for path in sorted((TRANSLATIONS_DIR / lang).glob("*.json")):
        for key, value in json.loads(path.read_text(encoding="utf-8")).items():
            if value:
                seen.setdefault(key, {})[path.name] = value
    return [f"message {key!r} is translated differently in {', '.join(files)}"
            for key, files in seen.items() if len(set(files.values())) > 1]


def problems(lang: str, assignments: list[str]) -> dict[str, list[str]]:
    found = {f"{lang}/{a}": cell_problems(lang, a) + message_problems(lang, a) for a in assignments}
    found[f"{lang}/course"] = message_problems(lang, "course") + disagreements(lang)
    return {where: listed for where, listed in found.items() if listed}


# -- building the editions --------------------------------------------------------------------------------

def edition_path(lang: str, assignment: str) -> Path:
    return NOTEBOOKS_DIR / lang / assignment / f"{assignment}.ipynb"


def edition(lang: str, assignment: str) -> nbformat.NotebookNode:
    """The English student notebook with its markdown translated (English where a translation is missing)."""
    notebook = nbformat.read(NOTEBOOKS_DIR / assignment / f"{assignment}.ipynb", as_version=4)
    english, translated = english_cells(assignment), read_cells(lang, assignment)
    for cell in notebook.cells:
        entry = translated.get(cell.id)
        if cell.id in english and entry and entry[0] == digest(english[cell.id]) and not entry[2]:
            cell.source = entry[1]
    notebook.metadata["batchcourse"] = {"lang": lang}
    return notebook


def build(assignment: str) -> list[Path]:
    written = []
    for lang in TRANSLATED:
        path = edition_path(lang, assignment)
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(edition(lang, assignment), path)
        written.append(path)
    return written


def scaffold(lang: str, assignment: str) -> None:
    """Add every missing cell and message in English, marked TODO (cells) or empty (messages)."""
    translated = read_cells(lang, assignment)
    cells = {}
    for cid, text in english_cells(assignment).items():
        old = translated.get(cid)
        fresh = old is not None and old[0] == digest(text)
        cells[cid] = old if fresh else (digest(text), old[1] if old else text, True)
    write_cells(lang, assignment, cells)
    for name in (assignment, "course"):
        old = read_messages(lang, name)
        write_messages(lang, name, {m: old.get(m) for m in english_messages(name)})


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m batchcourse.editions")
    parser.add_argument("action", choices=("status", "scaffold"))
    parser.add_argument("--lang", choices=TRANSLATED)
    parser.add_argument("assignments", nargs="*")
    args = parser.parse_intermixed_args(argv)
    langs = [args.lang] if args.lang else list(TRANSLATED)
    assignments = args.assignments or assignment_ids()
    if args.action == "scaffold":
        if not args.lang:
            parser.error("scaffold needs --lang")
        for assignment in assignments:
            scaffold(args.lang, assignment)
        return 0
    found = {}
    for lang in langs:
        found.update(problems(lang, assignments))
    for where, listed in found.items():
        print(f"{where}: {len(listed)} problem(s)")
        for problem in listed:
            print(f"  {problem}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
