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
JupyterLab names in JPY_SESSION_NAME, or given in BATCHCOURSE_LANG (the grader sets it; on Colab, `%env`), or read
from the notebook in the kernel's working folder (nbconvert and Validate start kernels there).
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

_chosen: str | None = None


def notebook_language(notebook: dict) -> str:
    """The language a notebook's metadata names; English when it names none we have."""
    lang = notebook.get("metadata", {}).get("batchcourse", {}).get("lang", "en")
    return lang if lang in LANGUAGES else "en"


def _language_of_file(path: Path) -> str | None:
    try:
        return notebook_language(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, AttributeError):
        return None


def language() -> str:
    """The learner's language: set_language's, else the open notebook's, else BATCHCOURSE_LANG, else that of the
    notebook in the working folder, else English."""
    if _chosen:
        return _chosen
    session = os.environ.get("JPY_SESSION_NAME", "")  # JupyterLab's kernels know their notebook
    if session.endswith(".ipynb") and Path(session).is_file():
        return _language_of_file(Path(session)) or "en"
    given = os.environ.get(VARIABLE)
    if given in LANGUAGES:
        return given
    found = {_language_of_file(p) for p in Path.cwd().glob("*.ipynb")} - {None}
    return found.pop() if len(found) == 1 else "en"


def set_language(lang: str) -> None:
    global _chosen
    _chosen = lang if lang in LANGUAGES else "en"


class Catalog:
    """English messages and templates, and their translations."""

    def __init__(self, entries: dict[str, str]):
        self.exact = dict(entries)
        self.templates = []
        for key, value in entries.items():
            literals = PLACEHOLDER.split(key)
            if len(literals) == 1:
                continue
            names = PLACEHOLDER.findall(key)
            # Placeholders with no text between them ("{shape}{hint}") share one group, split when filled in.
            groups, pattern = [[names[0]]], re.escape(literals[0]) + "(.*?)"
            for name, literal in zip(names[1:], literals[1:-1]):
                if literal:
                    groups.append([name])
                    pattern += re.escape(literal) + "(.*?)"
                else:
                    groups[-1].append(name)
            pattern += re.escape(literals[-1])
            self.templates.append((sum(map(len, literals)), max(literals, key=len), re.compile(pattern, re.DOTALL),
                                   groups, value, bool(literals[-1])))
        self.templates.sort(key=lambda t: -t[0])  # the most specific template first

    def _split(self, text: str, names: list[str]) -> list[str]:
        """Text that several adjacent placeholders filled: the last takes the longest known message it ends with."""
        if len(names) == 1:
            return [text]
        for start in range(len(text) + 1):
            if text[start:] in self.exact or start == len(text):
                return [*self._split(text[:start], names[:-1]), text[start:]]
        return [text]

    def _filled(self, match, groups, value, depth: int) -> str:
        parts = {}
        for names, text in zip(groups, match.groups()):
            for name, part in zip(names, self._split(text, names)):
                parts.setdefault(name, self.translate(part, depth + 1) if part else part)
        return PLACEHOLDER.sub(lambda m: parts.get(m.group(0), m.group(0)), value)

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - a catalog lives as long as the process
    def translate(self, text: str, depth: int = 0) -> str:
        if text in self.exact:
            return self.exact[text]
        if depth > 4 or not LETTERS.search(text):
            return text
        candidates = [t for t in self.templates if t[1] in text]
        for _, _, pattern, groups, value, _ in candidates:
            match = pattern.fullmatch(text)
            if match:
                return self._filled(match, groups, value, depth)
        # A message joined from two (`f"..." + (" (a note)." if ... else ".")`): a template, then the rest.
        for _, _, pattern, groups, value, ends_in_text in candidates:
            match = pattern.match(text) if ends_in_text else None
            if match:
                return self._filled(match, groups, value, depth) + self.translate(text[match.end():], depth + 1)
        for key, value in self.exact.items():
            if len(key) > 8 and text.startswith(key) and not PLACEHOLDER.search(key):
                return value + self.translate(text[len(key):], depth + 1)
        return text


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
                return write(translate(text, lang), *args, **kwargs)

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
