"""The course's messages in the learner's language: test hints, figure text and printed demo lines.

English is the source. Each language's catalogs, `translations/<lang>/*.json`, map an English message to its
translation. A message may be a template: `{...}` stands for any text, e.g. the key
`"{what}: expected {n} values"` translates "conv2d(x): expected 3 values", and what `{what}` stood for is
translated again on its own. So tests and demos keep writing plain English f-strings; the text is translated
where a learner sees it:

* a test's failure message, in the kernel (JupyterLab, Validate, the self-check) and in the grader's test process;
* every text matplotlib draws (titles, labels, legends), with a CJK font for Chinese;
* lines the notebook prints.

The language is the notebook's (`{"batchcourse": {"lang": "zh-CN"}}` in its metadata): read from the notebook
JupyterLab names in JPY_SESSION_NAME, or from the notebook in the kernel's working folder (nbconvert and Validate
start kernels there), or given in BATCHCOURSE_LANG (the grader's sandboxed kernels; on Colab, `%env`).
"""

import functools
import json
import os
import re
import sys
from pathlib import Path

from .paths import COURSE_FILES, DATA_DIR

LANGUAGES = ("en", "zh-CN", "ru")
VARIABLE = "BATCHCOURSE_LANG"
TRANSLATIONS_DIR = COURSE_FILES / "translations"
CJK_FONT = DATA_DIR / "fonts" / "DroidSansFallbackFull.ttf"
PLACEHOLDER = re.compile(r"\{[^{}\n]+\}")
LETTERS = re.compile(r"[A-Za-z]{2}")
LONGEST = 2000  # longer text is not one message (printed lines are translated one by one)

_chosen: str | None = None


def named_language(notebook: dict) -> str | None:
    """The language a notebook's metadata names; None when it names none we have (an English notebook)."""
    lang = notebook.get("metadata", {}).get("batchcourse", {}).get("lang")
    return lang if lang in LANGUAGES else None


def notebook_language(notebook: dict) -> str:
    return named_language(notebook) or "en"


def _language_of_file(path: Path) -> str | None:
    """The language a notebook file names in its metadata; None when it names none."""
    try:
        return named_language(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, AttributeError):
        return None


def language() -> str:
    """The learner's language: set_language's, else the open notebook's, else that of the notebook in the working
    folder, else BATCHCOURSE_LANG, else English."""
    if _chosen:
        return _chosen
    session = os.environ.get("JPY_SESSION_NAME", "")  # JupyterLab's kernels know their notebook
    if session.endswith(".ipynb") and Path(session).is_file():
        return _language_of_file(Path(session)) or "en"  # a notebook that names no language is English
    found = {_language_of_file(p) for p in Path.cwd().glob("*.ipynb")} - {None}
    if len(found) == 1:
        return found.pop()
    given = os.environ.get(VARIABLE)
    return given if given in LANGUAGES else "en"


def set_language(lang: str) -> None:
    global _chosen
    _chosen = lang if lang in LANGUAGES else "en"


class Template:
    """An English message with placeholders, cut at its placeholders; adjacent placeholders share one gap."""

    def __init__(self, key: str, value: str):
        pieces = PLACEHOLDER.split(key)
        names = PLACEHOLDER.findall(key)
        self.value, self.literals, self.gaps = value, [pieces[0]], [[names[0]]]
        for name, piece in zip(names[1:], pieces[1:-1]):
            if piece:
                self.literals.append(piece)
                self.gaps.append([name])
            else:
                self.gaps[-1].append(name)
        self.literals.append(pieces[-1])
        self.known = sum(map(len, self.literals))

    def could_match(self, text: str) -> bool:
        return text.startswith(self.literals[0]) and text.endswith(self.literals[-1]) and all(
            piece in text for piece in self.literals[1:-1])

    def matches(self, text: str, limit: int = 48):
        """Every way `text` fills the gaps (up to `limit`): lists of the gaps' texts."""
        first, last = self.literals[0], self.literals[-1]
        body_end = len(text) - len(last)
        found = []

        def place(index: int, position: int, gaps: list[str]):
            if len(found) >= limit:
                return
            if index == len(self.literals) - 1:
                if position <= body_end:
                    found.append([*gaps, text[position:body_end]])
                return
            piece = self.literals[index]
            at = text.find(piece, position)
            while at != -1 and at + len(piece) <= body_end and len(found) < limit:
                place(index + 1, at + len(piece), [*gaps, text[position:at]])
                at = text.find(piece, at + 1)

        if len(text) >= len(first) + len(last):
            place(1, len(first), [])
        return found


class Catalog:
    """English messages and templates, and their translations.

    A message is translated by the reading that explains most of its English: each template that fits, in each
    way it fits, with what its placeholders hold translated in turn (a message, a template, or a message joined
    from two, such as "{summary}: {hint}" built by two f-strings)."""

    def __init__(self, entries: dict[str, str]):
        self.exact = {k: v for k, v in entries.items() if not PLACEHOLDER.search(k)}
        self.prefixes = [k for k in self.exact if len(k) >= 8 and LETTERS.search(k)]
        self.templates = [Template(k, v) for k, v in entries.items() if PLACEHOLDER.search(k)]

    @functools.lru_cache(maxsize=8192)  # noqa: B019 - a catalog lives as long as the process
    def best(self, text: str, depth: int = 0) -> tuple[int, str]:
        """(how many characters of `text` the catalog explains, the translation)."""
        if text in self.exact:
            return len(text), self.exact[text]
        if depth > 5 or len(text) > LONGEST or not LETTERS.search(text):
            return 0, text
        core = text.strip()
        if core != text and core in self.exact:  # a name padded to a column's width
            start = text.index(core)
            return len(core), text[:start] + self.exact[core] + text[start + len(core):]
        best = (0, text)
        for template in self.templates:
            if template.known <= best[0]:
                continue
            if template.could_match(text):
                for gaps in template.matches(text):
                    reading = self._filled(template, gaps, depth)
                    if reading[0] > best[0]:
                        best = reading
            elif template.literals[-1] and template.literals[-1] in text:  # a template, then more text
                end = text.rfind(template.literals[-1]) + len(template.literals[-1])
                if template.could_match(text[:end]):
                    rest = self.best(text[end:], depth + 1)
                    for gaps in template.matches(text[:end]):
                        reading = self._filled(template, gaps, depth)
                        if reading[0] + rest[0] > best[0]:
                            best = (reading[0] + rest[0], reading[1] + rest[1])
        for key in self.prefixes:  # a message, then more text ("  images per GPU: " + str(n))
            if len(key) > best[0] and text.startswith(key) and len(text) > len(key):
                rest = self.best(text[len(key):], depth + 1)
                best = max(best, (len(key) + rest[0], self.exact[key] + rest[1]))
        for joint in (": ", "; ", ". ", " ("):  # two messages joined
            at = text.find(joint)
            while at > 0:
                head = self.best(text[:at], depth + 1)
                tail = max(self.best(text[at:], depth + 1), self._after(joint, text[at + len(joint):], depth))
                if head[0] + tail[0] > best[0] and head[0]:
                    best = (head[0] + tail[0], head[1] + tail[1])
                at = text.find(joint, at + 1)
        return best

    def _after(self, joint: str, text: str, depth: int) -> tuple[int, str]:
        score, translated = self.best(text, depth + 1)
        return score, joint + translated

    def _filled(self, template: Template, gaps: list[str], depth: int) -> tuple[int, str]:
        known, parts = template.known, {}
        for names, text in zip(template.gaps, gaps):
            for name, part in zip(names, self._split(text, names)):
                if name not in parts:
                    score, parts[name] = self.best(part, depth + 1) if part else (0, part)
                    known += score
        return known, PLACEHOLDER.sub(lambda m: parts.get(m.group(0), m.group(0)), template.value)

    def _split(self, text: str, names: list[str]) -> list[str]:
        """Text that several adjacent placeholders filled: the last takes the longest known message it ends with."""
        if len(names) == 1:
            return [text]
        for start in range(len(text) + 1):
            if text[start:] in self.exact or start == len(text):
                return [*self._split(text[:start], names[:-1]), text[start:]]
        return [text]

    def translate(self, text: str) -> str:
        return self.best(text)[1]


@functools.cache
def catalog(lang: str) -> Catalog:
    entries = {}
    for path in sorted((TRANSLATIONS_DIR / lang).glob("*.json")):
        entries.update({k: v for k, v in json.loads(path.read_text(encoding="utf-8")).items() if v})
    return Catalog(entries)


def translate(text, lang: str | None = None):
    """`text` in `lang` (the learner's language by default); anything not a known message comes back as is."""
    lang = lang or language()
    if lang == "en" or not isinstance(text, str) or not text:
        return text
    return catalog(lang).translate(text)


def translate_lines(text: str, lang: str | None = None) -> str:
    """Printed text: as a whole when it is one known message, else line by line."""
    whole = translate(text, lang)
    if whole != text or "\n" not in text:
        return whole
    return "\n".join(translate(line, lang) for line in text.split("\n"))


# -- in a notebook's kernel ----------------------------------------------------------------------------

def _translate_figures(lang: str) -> None:
    import matplotlib
    from matplotlib import font_manager
    from matplotlib.text import Text

    if lang == "zh-CN" and CJK_FONT.is_file():
        font_manager.fontManager.addfont(str(CJK_FONT))
        name = font_manager.FontProperties(fname=str(CJK_FONT)).get_name()
        matplotlib.rcParams["font.family"] = ["DejaVu Sans", name]  # glyph by glyph: Latin as in English
    original = Text.set_text

    def set_text(self, s):
        original(self, translate(s, lang) if isinstance(s, str) else s)

    Text.set_text = set_text


def _translate_printed(shell, lang: str) -> None:
    """Wrap the `write` of stdout at the start of every cell: IPython gives each cell a `write` of its own."""

    def wrap(*_):
        write = sys.stdout.write
        if not getattr(write, "translates", False):
            def translating_write(text, *args, **kwargs):
                return write(translate_lines(text, lang), *args, **kwargs)

            translating_write.translates = True
            sys.stdout.write = translating_write

    wrap()
    shell.events.register("pre_run_cell", wrap)


def _translate_errors(shell, lang: str) -> None:
    def show(shell, etype, value, tb, tb_offset=None):
        if value.args and isinstance(value.args[0], str):
            value.args = (translate(value.args[0], lang), *value.args[1:])
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)

    shell.set_custom_exc((AssertionError,), show)


def install_in_kernel() -> None:
    """In a notebook's kernel whose notebook is not English: translate failures, figures and printed lines."""
    if "IPython" not in sys.modules:
        return
    shell = sys.modules["IPython"].get_ipython()
    lang = language()
    if shell is None or lang == "en" or getattr(shell, "_batchcourse_lang", None):
        return
    shell._batchcourse_lang = lang
    _translate_figures(lang)
    _translate_printed(shell, lang)
    _translate_errors(shell, lang)
