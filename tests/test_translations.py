"""The Chinese and Russian editions: complete, current, built from the English, and giving hints in their language.

- every markdown cell and every message is translated, from the English as it is now (`translations/`);
- each edition is the English student notebook with only its markdown translated: same code, same grade ids;
- the translation of messages (test hints, figure text, printed lines) works on templates, nested ones too;
- the Chinese font has every character the Chinese edition uses, and figures draw them;
- a wrong answer gets its hint in the notebook's language, in the learner's kernel (the self-check) and in the
  grader's test process (the graded notebook and the feedback). The gates (test_notebooks.py) also grade
  translated submissions.
"""

import os
import re
import subprocess
import sys
import time

import nbformat
import pytest

from test_notebooks import SCRIPTS
from test_browser import (CHROMIUM, CHROMIUM_FLAGS, KERNEL_IDLE, course_copy, ensure_chromium, lab_server,  # noqa: F401
                          printed_text)

from batchcourse import editions, grading, i18n
from batchcourse.i18n import Catalog
from batchcourse.paths import NOTEBOOKS_DIR, REPO_ROOT, assignment_ids

ASSIGNMENTS = assignment_ids()
LANGS = editions.TRANSLATED
STATUS = ".venv/bin/python -m batchcourse.editions status"


def in_language(text: str, lang: str) -> bool:
    return bool(SCRIPTS[lang].search(text))


@pytest.mark.parametrize("lang", LANGS)
def test_every_cell_and_message_is_translated_from_the_current_english(lang):
    found = editions.problems(lang, ASSIGNMENTS)
    listed = [f"{where}: {problem}" for where, problems in found.items() for problem in problems]
    assert not listed, (f"{len(listed)} translation problem(s) in translations/{lang}/ (`{STATUS} --lang {lang}` "
                        "lists them; `scaffold` adds what is missing):\n" + "\n".join(listed[:40]))


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_edition_is_the_english_notebook_with_its_text_translated(assignment, lang):
    path = editions.edition_path(lang, assignment)
    assert path.is_file(), f"{path.relative_to(REPO_ROOT)} is missing: run `python3 tasks.py release`"
    committed, english = grading.read(path), grading.read(NOTEBOOKS_DIR / assignment / f"{assignment}.ipynb")
    assert committed == editions.edition(lang, assignment), (
        f"{path.relative_to(REPO_ROOT)} is not what release builds from notebooks/ and translations/: "
        "run `python3 tasks.py release`")
    assert committed.metadata.get("batchcourse") == {"lang": lang}, f"{path.name} does not record its language"
    assert [(c.id, c.cell_type) for c in committed.cells] == [(c.id, c.cell_type) for c in english.cells], (
        f"the cells of {path.name} differ from the English ones")
    for ours, theirs in zip(committed.cells, english.cells):
        assert ours.metadata == theirs.metadata, f"cell {ours.id} of {path.name}: its metadata (grade id) differs"
        if ours.cell_type == "code" or editions.is_answer_cell(ours):
            assert ours.source == theirs.source, f"cell {ours.id} of {path.name} differs from the English"
        elif re.search(r"[A-Za-z]{3}", theirs.source):
            assert in_language(ours.source, lang), f"cell {ours.id} of {path.name} is not translated"


def test_messages_translate_through_templates():
    catalog = Catalog({
        "{what} has shape {a} but should have shape {b}{hint}.": "{what}：形状应为 {b}，实际为 {a}{hint}。",
        "conv2d(x) for x of shape {shape}": "conv2d(x)，x 的形状为 {shape}",
        " (are two dimensions swapped?)": "（是否交换了两个维度？）",
        "{what} returned {kind}; return a plain torch.Tensor": "{what} 返回了{kind}；请返回普通的 torch.Tensor",
        " (not a subclass of it).": "（不要返回它的子类）。",
        "a tensor": "一个张量",
    })
    assert catalog.translate("conv2d(x) for x of shape (2, 3) has shape (3, 2) but should have shape (2, 3)"
                             " (are two dimensions swapped?).") == (
        "conv2d(x)，x 的形状为 (2, 3)：形状应为 (2, 3)，实际为 (3, 2)（是否交换了两个维度？）。")
    assert catalog.translate("f(x) returned a tensor; return a plain torch.Tensor (not a subclass of it).") == (
        "f(x) 返回了一个张量；请返回普通的 torch.Tensor（不要返回它的子类）。")
    assert catalog.translate("no message like this one") == "no message like this one"
    assert i18n.translate("a tensor", "en") == "a tensor"


def test_messages_are_found_in_code():
    code = 'x = f"{what} is wrong at {n} values"\ny = "BatchNorm2d"\nz = "you forgot the bias."\n"""A docstring."""'
    assert editions.messages_in(code) == ["{what} is wrong at {n} values", "you forgot the bias."]


def test_the_chinese_font_has_every_character_of_the_chinese_edition():
    from fontTools.ttLib import TTFont

    text = "".join(p.read_text(encoding="utf-8") for p in (i18n.TRANSLATIONS_DIR / "zh-CN").iterdir())
    glyphs = TTFont(i18n.CJK_FONT, fontNumber=0).getBestCmap()
    missing = sorted({ch for ch in text if ord(ch) > 0x2E7F and ord(ch) not in glyphs})
    assert not missing, f"{i18n.CJK_FONT.name} has no glyph for {''.join(missing[:40])}: figures would show boxes"


@pytest.mark.parametrize("lang", LANGS)
def test_figures_draw_the_translation_without_missing_glyphs(lang, tmp_path):
    title = {"zh-CN": "批量大小与准确率", "ru": "Размер батча и точность"}[lang]
    script = f"""
import warnings, matplotlib
matplotlib.use("Agg")
from batchcourse import i18n
i18n._translate_figures({lang!r})
import matplotlib.pyplot as plt
fig, ax = plt.subplots()
ax.set_title({title!r}); ax.plot([1, 2], label={title!r}); ax.legend()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    fig.savefig({str(tmp_path / 'figure.png')!r})
print([str(w.message) for w in caught if "missing from" in str(w.message)])
"""
    drawn = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert drawn.returncode == 0, drawn.stderr[-2000:]
    assert drawn.stdout.strip() == "[]", f"glyphs missing when drawing {lang} text: {drawn.stdout[:500]}"


@pytest.mark.parametrize("lang", LANGS)
def test_tasks_py_speaks_the_learners_language(lang):
    probe = ("import sys; sys.argv = ['tasks.py', 'lab', '--lang', %r]; sys.path.insert(0, %r); import tasks; "
             "print(tasks.translated('Installing the pinned packages (the first time takes a few minutes) ...'))"
             % (lang, str(REPO_ROOT)))
    said = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert in_language(said.stdout, lang), f"tasks.py did not translate its message into {lang}: {said.stdout}{said.stderr}"


def wrong_submission(lang: str, assignment: str = "00_orientation") -> nbformat.NotebookNode:
    """The edition in `lang`, solved, but with the first wrong answer of its cases file."""
    from test_notebooks import load_cases

    function, answers = next(iter(load_cases(assignment).WRONG.items()))
    solution = grading.solution_code(grading.read(REPO_ROOT / "solutions" / assignment / f"{assignment}.ipynb"))
    return grading.make_submission(grading.read(editions.edition_path(lang, assignment)),
                                   {**solution, function: answers[0][1]})


@pytest.mark.notebooks
def test_the_self_check_gives_the_hint_in_the_notebooks_language(tmp_path):
    """The learner's kernel (Validate and `tasks.py check` run the notebook the same way)."""
    path = tmp_path / "00_orientation.ipynb"
    nbformat.write(wrong_submission("zh-CN"), path)
    checked = subprocess.run([sys.executable, "-m", "batchcourse.cli", "check", str(path)], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=600)
    failures = [line for line in checked.stdout.splitlines() if line.startswith("FAIL")]
    assert checked.returncode == 1 and failures, f"the wrong answer did not fail the self-check:\n{checked.stdout[-3000:]}"
    untranslated = [line for line in failures if not in_language(line, "zh-CN")]
    assert not untranslated, f"hints not in Chinese: {untranslated}"


@pytest.mark.notebooks
def test_grading_and_feedback_give_hints_in_the_submissions_language(tmp_path, with_grading_servers):
    course = grading.ScratchCourse.create("00_orientation", tmp_path)
    course.submit({lang: wrong_submission(lang) for lang in LANGS})
    run = course.autograde()
    assert run.returncode == 0 and not grading.ungraded(course.assignment, course.root), run.stdout[-3000:]
    grading.run_nbgrader("generate_feedback", course.assignment, "--force", root=course.root, db_url=course.db_url,
                         capture=True)
    for lang in LANGS:
        graded = grading.read(course.root / "autograde" / "autograded" / lang / course.assignment /
                              f"{course.assignment}.ipynb")
        errors = [o.evalue for c in graded.cells for o in c.get("outputs", []) if o.output_type == "error" and o.evalue]
        assert errors, f"the {lang} wrong answer failed no test"
        assert all(in_language(e, lang) for e in errors), f"{lang} hints not translated: {errors}"
        printed = "".join(o.get("text", "") for c in graded.cells for o in c.get("outputs", [])
                          if o.output_type == "stream")
        assert in_language(printed, lang), f"the {lang} notebook's printed lines are not translated: {printed[:500]}"
        assert any("image/png" in o.get("data", {}) for c in graded.cells for o in c.get("outputs", [])), (
            f"the graded {lang} notebook holds no figure")
        feedback = next((course.root / "autograde" / "feedback" / lang / course.assignment).glob("*.html")).read_text()
        hint = max(re.findall(SCRIPTS[lang].pattern + "+", errors[0]), key=len)
        assert hint in feedback, f"the {lang} feedback does not show the hint {hint!r}"


def fontconfig_with_course_fonts(folder) -> str:
    """A fontconfig file adding the course's fonts to the machine's: Chromium here has no Chinese font of its own."""
    path = folder / "fonts.conf"
    path.write_text('<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
                    f'<include ignore_missing="yes">/etc/fonts/fonts.conf</include><dir>{i18n.CJK_FONT.parent}</dir>'
                    '</fontconfig>')
    return str(path)


@pytest.mark.notebooks
def test_the_editions_in_jupyterlab(lab_server, tmp_path):
    """A wrong answer in each edition, run in JupyterLab and validated: text, figures and hints in its language.
    Screenshots go to tests/artifacts/editions/."""
    ensure_chromium()
    from playwright.sync_api import sync_playwright

    base, token, course = lab_server
    artifacts = REPO_ROOT / "tests" / "artifacts" / "editions"
    artifacts.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "FONTCONFIG_FILE": fontconfig_with_course_fonts(tmp_path)}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True, env=env)
        for lang in LANGS:
            relative = editions.edition_path(lang, "00_orientation").relative_to(NOTEBOOKS_DIR.parent)
            nbformat.write(wrong_submission(lang), course / relative)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{base}/lab/tree/{relative.as_posix()}?reset&token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell >> visible=true", timeout=60_000)
            page.get_by_text(KERNEL_IDLE).wait_for(timeout=120_000)
            title = page.locator(".jp-MarkdownCell h1 >> visible=true").first.inner_text()
            assert in_language(title, lang), f"the {lang} notebook's title is not in {lang}: {title}"
            page.screenshot(path=str(artifacts / f"{lang}-1-open.png"))
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_text("Run All Cells", exact=True).click()
            page.wait_for_selector(".jp-RenderedImage img >> visible=true", timeout=120_000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=180_000)
            failure = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                                   has_text="AssertionError").first
            failure.scroll_into_view_if_needed()
            assert in_language(failure.text_content(), lang), f"the failing test's hint is not in {lang}: {failure.text_content()[:500]}"
            page.screenshot(path=str(artifacts / f"{lang}-2-hint.png"))
            page.locator(".jp-RenderedImage img >> visible=true").first.scroll_into_view_if_needed()
            page.screenshot(path=str(artifacts / f"{lang}-3-figure.png"))
            page.keyboard.press("Control+s")
            deadline = time.monotonic() + 60  # the save is asynchronous: Validate reads the file
            while not printed_text(course / relative) and time.monotonic() < deadline:
                time.sleep(0.5)
            page.locator(".validate-button >> visible=true").first.click()
            dialog = page.locator(".jp-Dialog", has_text="Validation Results")
            dialog.wait_for(timeout=300_000)
            page.screenshot(path=str(artifacts / f"{lang}-4-validate.png"))
            assert in_language(dialog.inner_text(), lang), f"Validate's verdict is not in {lang}: {dialog.inner_text()[:800]}"
            dialog.get_by_role("button").last.click()
            page.close()
        browser.close()
