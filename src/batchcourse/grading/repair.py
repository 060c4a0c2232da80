"""Make a damaged submission gradable before nbgrader's own checks see it.

nbgrader restores the source of test and read-only cells, but a submission whose cells were
deleted, duplicated or given made-up grade ids either loses those tests or stops nbgrader with
a metadata error (a duplicated cell is left with empty nbgrader metadata, which nbgrader then
rejects as "an old version" and refuses to grade). `RepairSubmission` runs first and:

* strips the nbgrader metadata of cells whose grade id the assignment does not have, and of every
  copy of a duplicated cell but the last (the one nbgrader keeps);
* puts back read-only and test cells that the student deleted, after the cell that preceded them;
* gives every cell with a grade id of the assignment the nbgrader metadata of the source again (a test
  cell marked `solution: true` or `grade: false`, or given other points, is graded as released instead of
  stopping nbgrader with "Inconsistent checksums" or dropping out of the grades), and its cell type.

What it changed is written into the notebook's metadata for the tamper report.
"""

import nbformat
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor

from .sandbox import METADATA_KEY


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _locked(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return bool(meta.get("locked") or (meta.get("grade") and not meta.get("solution")))


GRADING_KEYS = ("grade", "solution", "locked", "points", "task", "schema_version")


def restore_metadata(notebook, source) -> list[str]:
    """Give each cell with a grade id of `source` that cell's grading metadata and type; say which changed."""
    originals = {_grade_id(c): c for c in source.cells if _grade_id(c)}
    repairs = []
    for index, cell in enumerate(notebook.cells):
        original = originals.get(_grade_id(cell))
        if original is None:
            continue
        meta, wanted = cell.metadata.nbgrader, original.metadata.nbgrader
        changed = sorted(k for k in GRADING_KEYS if meta.get(k) != wanted.get(k))
        if cell.cell_type != original.cell_type:
            notebook.cells[index] = nbformat.from_dict(original)
            repairs.append(f"cell {_grade_id(cell)!r} was turned into a {cell.cell_type} cell; put back as released")
        elif changed:
            for key in GRADING_KEYS:
                if key in wanted:
                    meta[key] = wanted[key]
                else:
                    meta.pop(key, None)
            repairs.append(f"cell {_grade_id(cell)!r} had its {', '.join(changed)} changed; graded as released")
    return repairs


def repair(notebook, source) -> list[str]:
    """Repair `notebook` against the assignment's `source` notebook in place; say what was changed."""
    known = {_grade_id(c) for c in source.cells if _grade_id(c)}
    repairs = []
    last_index = {}
    for index, cell in enumerate(notebook.cells):
        if _grade_id(cell):
            last_index[_grade_id(cell)] = index
    for index, cell in enumerate(notebook.cells):
        grade_id = _grade_id(cell)
        if grade_id is None and "nbgrader" in cell.get("metadata", {}):
            del cell.metadata["nbgrader"]
        elif grade_id is not None and (grade_id not in known or last_index[grade_id] != index):
            del cell.metadata["nbgrader"]
            repairs.append(f"cell {index} with grade id {grade_id!r} is {'a copy' if grade_id in known else 'unknown'}; graded as plain code")
    present = {_grade_id(c) for c in notebook.cells if _grade_id(c)}
    previous = None
    for cell in source.cells:
        grade_id = _grade_id(cell)
        if grade_id and grade_id not in present and _locked(cell):
            position = 0 if previous is None else 1 + max(i for i, c in enumerate(notebook.cells) if _grade_id(c) == previous)
            notebook.cells.insert(position, nbformat.from_dict(cell))
            present.add(grade_id)
            repairs.append(f"cell {grade_id!r} was deleted; put back")
        if grade_id in present:
            previous = grade_id
    return repairs + restore_metadata(notebook, source)


class RepairSubmission(NbGraderPreprocessor):
    """Repair the submission against the assignment's source notebook (see the module docstring)."""

    def preprocess(self, nb, resources):
        coursedir = CourseDirectory(config=self.config)
        info = resources["nbgrader"]
        path = f"{coursedir.format_path(coursedir.source_directory, '.', info['assignment'])}/{info['notebook']}.ipynb"
        repairs = repair(nb, nbformat.read(path, as_version=4))
        if repairs:
            nb.metadata.setdefault(METADATA_KEY, {})["repairs"] = repairs
        return nb, resources
