"""A byte limit on each cell's outputs and on each notebook's outputs, display data included.

nbgrader's LimitOutput counts lines of text: one printed line of 240 MB, or images and HTML, pass it,
and the whole output then sits in the grading process, the autograded notebook and the feedback.
`OutputBudget` admits outputs one at a time, as they arrive; once a cell (or the notebook) is over its
limit it keeps only what nbgrader scores by, shortened:

* errors (ename, and the start of the message and traceback): a failing cell still fails;
* the first `execute_result` (nbgrader reads partial credit from it), shortened to its text;
* a stderr output that the warning pattern (IgnorePattern) would not remove, shortened to its start,
  when the cell holds none yet: a cell that wrote to stderr still loses its points, and one that
  only printed warnings still keeps them;

and leaves out everything else (stdout, display data), with a note in the cell that says how much was
left out, so that the student and the instructor see it. A cell is scored the same way as without
the limit, unless its own error message is what is over the limit (it still fails, with its start).

`LimitOutputBytes` (a mixin for nbclient's Execute step) applies the budget while the kernel's output
arrives, so that the grader never holds more than the limit; `OutputByteLimit` (a preprocessor for after
the Execute step) applies it to a finished notebook, for outputs replaced in place (update_display_data).
"""

import re
from dataclasses import dataclass, field

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Integer, Unicode
from traitlets.config import Configurable

from .sandbox import METADATA_KEY, SandboxedExecute, record_event

CELL_BYTES = 2 * 1024 * 1024
NOTEBOOK_BYTES = 8 * 1024 * 1024
KEPT_PREFIX = 1024
NOTE_PREFIX = "[grading] "


def output_bytes(output) -> int:
    """The bytes of text an output holds (stream text, every MIME type's data, error message and traceback)."""
    def size(value) -> int:
        if isinstance(value, str):
            return len(value.encode("utf-8", "surrogatepass"))
        if isinstance(value, (list, tuple)):
            return sum(size(v) for v in value)
        if isinstance(value, dict):
            return sum(size(v) for v in value.values())
        return 0
    return sum(size(output.get(key)) for key in ("text", "data", "evalue", "traceback", "ename"))


def _prefix(text: str, limit: int, at_line: bool = False) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    if at_line and "\n" in cut:
        cut = cut[:cut.rindex("\n") + 1]
    return cut


def _size(count: int) -> str:
    return f"{count / 2**20:g} MB" if count >= 2**20 else f"{count:,} bytes"


def shortened_error(output):
    output.evalue = _prefix(output.get("evalue", ""), KEPT_PREFIX) + ("…" if len(output.get("evalue", "")) > KEPT_PREFIX else "")
    traceback = [_prefix(line, KEPT_PREFIX) for line in output.get("traceback", [])[-8:]]
    output.traceback = traceback
    return output


def shortened_result(output):
    text = output.get("data", {}).get("text/plain", "")
    text = "".join(text) if isinstance(text, list) else text
    output.data = {"text/plain": _prefix(text, KEPT_PREFIX)}
    return output


@dataclass
class _CellState:
    used: int = 0
    note: object = None
    left_out: int = 0
    has_result: bool = False
    has_scored_stderr: bool = False
    why: str = ""


@dataclass
class OutputBudget:
    """Admit outputs one by one under a per-cell and a per-notebook byte limit (see the module docstring)."""

    cell_bytes: int = CELL_BYTES
    notebook_bytes: int = NOTEBOOK_BYTES
    ignore_pattern: str = ""
    total: int = 0
    cells: dict = field(default_factory=dict)

    def _ignored(self, output) -> bool:
        return bool(self.ignore_pattern) and re.search(self.ignore_pattern, output.get("text", "")) is not None

    def admit(self, outs: list, output, key, keep_slot: bool = False) -> str | None:
        """Apply the budget to `output`, the last item of `outs` (shortened, or taken out of `outs`; emptied
        in place instead when `keep_slot`, as nbclient points display ids at list positions).

        Returns a sentence the first time this cell goes over a limit, else None."""
        state = self.cells.setdefault(key, _CellState())
        size = output_bytes(output)
        kind = output.get("output_type")
        is_stderr = kind == "stream" and output.get("name") == "stderr"
        room = min(self.cell_bytes - state.used, self.notebook_bytes - self.total)
        if state.note is None and size <= room:
            self._count(state, size)
            state.has_result |= kind == "execute_result"
            state.has_scored_stderr |= is_stderr and not self._ignored(output)
            return None
        first_time = state.note is None
        if first_time:
            state.why = (f"the output of this cell passed {_size(self.cell_bytes)}"
                         if self.cell_bytes - state.used <= self.notebook_bytes - self.total else
                         f"the notebook's output passed {_size(self.notebook_bytes)}")
        kept = self._shorten(output, kind, is_stderr, state, max(room, 0))
        if kept is None:
            state.left_out += size
            if keep_slot:
                output.data, output.metadata = {"text/plain": ""}, {}
            elif outs and outs[-1] is output:
                outs.pop()
        else:
            state.left_out += max(size - output_bytes(kept), 0)
            self._count(state, output_bytes(kept))
        if first_time:
            state.note = nbformat.v4.new_output("stream", name="stdout", text="")
            outs.append(state.note)
        state.note.text = (f"\n{NOTE_PREFIX}output left out: {state.why} (the grading limit); "
                           f"{state.left_out:,} bytes of output were not kept.\n")
        return state.why if first_time else None

    def _shorten(self, output, kind, is_stderr, state, room):
        """What is kept of an output that does not fit: None to leave it out."""
        if kind == "error":
            return shortened_error(output)
        if kind == "execute_result":
            if state.has_result:
                return None
            state.has_result = True
            return shortened_result(output)
        if is_stderr:
            if self._ignored(output) or state.has_scored_stderr:
                return None
            state.has_scored_stderr = True
            output.text = _prefix(output.text, max(room, KEPT_PREFIX), at_line=True)
            return output
        if kind == "stream" and room > 0:
            output.text = _prefix(output.text, room)
            return output
        return None

    def _count(self, state, size: int) -> None:
        state.used += size
        self.total += size

    def forget(self, key, outs: list) -> None:
        """The cell's outputs were cleared (down to `outs`): count only what is left."""
        state = self.cells.pop(key, None)
        if state is not None:
            self.total -= state.used
        remaining = list(outs)
        outs[:] = []
        for output in remaining:
            outs.append(output)
            self.admit(outs, output, key)


class _Limits(Configurable):
    cell_output_bytes = Integer(CELL_BYTES, help="Bytes of output kept for one cell").tag(config=True)
    notebook_output_bytes = Integer(NOTEBOOK_BYTES, help="Bytes of output kept for one notebook").tag(config=True)
    ignored_stderr = Unicode("", help="The pattern of stderr outputs that grading removes (IgnorePattern)").tag(config=True)

    def _new_budget(self) -> OutputBudget:
        return OutputBudget(self.cell_output_bytes, self.notebook_output_bytes, self.ignored_stderr)


class LimitOutputBytes(_Limits):
    """Mixin for nbclient's NotebookClient (nbgrader's Execute): apply an OutputBudget as output arrives.

    Put it first among the bases: `class LimitedExecute(LimitOutputBytes, SandboxedExecute)`."""

    def preprocess(self, nb, resources=None, km=None):
        self._budget = self._new_budget()
        return super().preprocess(nb, resources, km)

    def output(self, outs, msg, display_id, cell_index):
        out = super().output(outs, msg, display_id, cell_index)
        budget = getattr(self, "_budget", None)
        if out is None or budget is None or not outs or outs[-1] is not out:
            return out
        why = budget.admit(outs, out, cell_index, keep_slot=bool(display_id))
        if why:
            record_event(self.nb, f"output of cell {cell_index} cut: {why}")
        return out if any(o is out for o in outs) else None

    def clear_output(self, outs, msg, cell_index):
        super().clear_output(outs, msg, cell_index)
        budget = getattr(self, "_budget", None)
        if budget is not None and not outs:
            budget.forget(cell_index, outs)


def _is_note(output) -> bool:
    return output.get("output_type") == "stream" and output.get("text", "").startswith(f"\n{NOTE_PREFIX}")


class OutputByteLimit(_Limits, NbGraderPreprocessor):
    """Apply an OutputBudget to an executed notebook (a safety net after the Execute step)."""

    def preprocess(self, nb, resources):
        budget = self._new_budget()
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if any(_is_note(o) for o in cell.get("outputs", [])):
                budget.total += sum(output_bytes(o) for o in cell.outputs)  # already cut while it ran
                continue
            outs = []
            for output in cell.get("outputs", []):
                outs.append(output)
                why = budget.admit(outs, output, index)
                if why:
                    record_event(nb, f"output of cell {index} cut: {why}")
            cell.outputs = outs
        return nb, resources


class LimitedSandboxedExecute(LimitOutputBytes, SandboxedExecute):
    """The sandboxed Execute step with the output budget applied as output arrives."""
