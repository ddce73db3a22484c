"""The lessons in a real browser: JupyterLab + Chromium (Playwright), cells run and widgets moved from the UI.

Each lesson is one entry of ``LESSONS``: which cells to run, then which control to move in which panel and
which plot must change (``SliderPlot``, ``DropdownPlot``), or which sliders to move before Train, the
accuracy readout, the loss curve, Stop and the runs table (``TrainStop``). Screenshots of every step go
to ``test-artifacts/browser/``.

Needs Playwright (the dev extra) and a Chromium (Debian's ``chromium``; ``make test`` installs it as root).
Without them the tests skip, or fail when ``KD_LAB_REQUIRE_BROWSER=1`` (CI).
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from lab_browser import (
    LabServer,
    LessonPage,
    choose_option,
    copy_lessons,
    drag_slider,
    find_chromium,
    kernel_executables,
    wait_image_changed,
)

from kd_lab.methods import method_info, method_names
from kd_lab.widgets import SETTING_KNOBS

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "browser"
WIDGET_S = 90                          # a redraw or a first epoch, on two busy cores


@dataclass(frozen=True)
class SliderPlot:
    """Drag ``slider`` of the panel shown by the cell containing ``cell``; image number ``plot`` must change."""

    cell: str
    slider: str
    plot: int = 0
    by: float = 0.3                    # how far to drag, as a fraction of the slider's width


@dataclass(frozen=True)
class DropdownPlot:
    """Choose ``option`` in ``dropdown`` of the panel shown by the cell containing ``cell``; image ``plot`` must
    change."""

    cell: str
    dropdown: str
    option: str
    plot: int = 0


@dataclass(frozen=True)
class TrainStop:
    """In a TrainingPanel: drag sliders, press Train, see the accuracy readout and the loss curve update,
    press Stop, and find the run, stopped, with the sliders' values in the runs table. With ``stop=False``
    the run (a short one) is left to finish instead. With ``live_view=True`` the panel's live view (its second
    image) must appear and be redrawn during the run: at least two pictures shown (one per evaluation)."""

    cell: str
    drag: dict = field(default_factory=lambda: {"epochs": 1.0})      # label -> fraction of the width
    stop: bool = True
    live_view: bool = False


@dataclass(frozen=True)
class Lesson:
    """``run``: "all" (Run All Cells), "above" (the cells above the last checked panel, and the panel's), or
    texts of cells to run after the set-up (the first code cell after the install cell) and before the panels'
    cells."""

    notebook: str
    checks: tuple
    run: str | tuple = "above"
    run_s: float = 300                 # time allowed for running the cells


LESSONS = (
    Lesson("01_response_kd.ipynb", run="all", run_s=900, checks=(
        SliderPlot("soft_panel = SoftTargetPanel(", "temperature T", plot=0),
        TrainStop("panel = TrainingPanel(", drag={"temperature T": 0.3}, stop=False, live_view=True),
    )),
    Lesson("02_ssld.ipynb", run_s=600, checks=(   # set-up may train the quick first20k teacher; a step budget:
                                                   # the quick run is short, let it finish
        TrainStop('panel = TrainingPanel("ssld"', drag={"temperature T": 0.1}, stop=False),
    )),
    Lesson("03_dml.ipynb", run=(), checks=(
        TrainStop('panel = TrainingPanel("dml"', drag={"w (weight of the KL to the peers)": 0.25}),
    )),
    Lesson("04_feature_overhaul.ipynb", run=(), checks=(     # accuracy every 5 epochs: the quick run ends first
        TrainStop('panel = TrainingPanel("ofd"', drag={"λ_F (weight of the feature loss, log scale)": 0.2},
                  stop=False),
    )),
    Lesson("05_rkd.ipynb", run=(), checks=(
        SliderPlot("relation_panel = RelationPanel(", "anchor j", plot=1),
    )),
    Lesson("06_compare.ipynb", run=("KEY = rows[-1]",), checks=(
        DropdownPlot("panel = ComparisonPanel(", "cost axis", "training images/s"),
    )),
)


def _required() -> bool:
    return os.environ.get("KD_LAB_REQUIRE_BROWSER", "0").lower() not in ("", "0", "false", "no")


def _missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (it is in the dev extra: make setup, or pip install -e '.[dev]')"
    chromium = find_chromium()
    if chromium is None or not os.access(chromium, os.X_OK):
        return (f"no Chromium executable ({chromium or 'none on PATH'}): install the system package "
                "(Debian/Ubuntu: apt-get install chromium; make test does it as root) or set KD_LAB_CHROMIUM")
    return None


@pytest.fixture(scope="module")
def browser():
    """Chromium from the system, driven by Playwright (its own browser download is not used)."""
    missing = _missing()
    if missing and _required():
        pytest.fail(f"KD_LAB_REQUIRE_BROWSER=1 but the browser tests cannot run: {missing}", pytrace=False)
    if missing:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=find_chromium())
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def lab(browser, tmp_path_factory):
    """JupyterLab over a temporary copy of notebooks/, quick mode; stopped with its kernels even on failure."""
    home = tmp_path_factory.mktemp("lab")
    server = LabServer(copy_lessons(REPO / "notebooks", home / "notebooks"), home / "home", env={"KD_LAB_QUICK": "1"})
    try:
        yield server.start()
    finally:
        server.stop()
        if server.log.is_file():                     # the server's and kernels' log, next to the screenshots
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            (ARTIFACTS / "jupyterlab.log").write_bytes(server.log.read_bytes())
    assert not server.leftovers(), f"JupyterLab or a kernel still runs after stop(): pids {server.leftovers()}"


def test_every_lesson_has_a_browser_check():
    lessons = sorted(p.name for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    covered = {lesson.notebook for lesson in LESSONS}
    missing = [name for name in lessons if name not in covered]
    assert not missing, f"add an entry to LESSONS in tests/test_browser.py for {missing} (a slider and a plot)"


@pytest.mark.parametrize("lesson", LESSONS, ids=[Path(x.notebook).stem for x in LESSONS])
def test_lesson_in_jupyterlab(lesson, lab, browser):
    if not (REPO / "notebooks" / lesson.notebook).is_file():
        pytest.skip(f"{lesson.notebook} is not in notebooks/ (yet)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob(f"{Path(lesson.notebook).stem}-*.png"):
        old.unlink()
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    lp = LessonPage(context.new_page(), lab, lesson.notebook, ARTIFACTS)
    try:
        run_lesson(lp, lesson)
    except BaseException:
        with contextlib.suppress(Exception):
            lp.page_shot("FAILED")                   # what the page showed, next to the step screenshots
        raise
    finally:
        context.close()
        with contextlib.suppress(OSError):
            lab.shutdown_kernels()                   # the next lesson gets the cores


def run_lesson(lp: LessonPage, lesson: Lesson) -> None:
    start = time.monotonic()
    lp.open()
    kernels = kernel_executables(lp.server)
    assert kernels == [sys.executable], f"the lesson's kernel runs {kernels}, not this venv's {sys.executable}"
    cells = [lp.cell_index(check.cell) for check in lesson.checks]
    if lesson.run == "all":
        lp.run_all(lesson.run_s)
    elif lesson.run == "above":
        lp.run_through(max(cells), lesson.run_s)
    else:
        lp.run_cells(sorted({lp.first_code_cell(), *map(lp.cell_index, lesson.run), *cells}), lesson.run_s)
    lp.page_shot("cells-ran")
    ran = time.monotonic()
    for check, index in zip(lesson.checks, cells):
        panel = lp.cell(index).locator(".jp-OutputArea-output .widget-vbox").first
        CHECKS[type(check)](lp, panel, check)
    print(f"\n{lesson.notebook}: cells ran in {ran - start:.0f} s, widgets checked in {time.monotonic() - ran:.0f} s")


def check_slider_plot(lp: LessonPage, panel, check: SliderPlot) -> None:
    image = panel.locator("img.widget-image").nth(check.plot)
    _check_plot_changes(lp, panel, image, check.slider, lambda: drag_slider(lp.page, panel, check.slider, check.by))


def check_dropdown_plot(lp: LessonPage, panel, check: DropdownPlot) -> None:
    image = panel.locator("img.widget-image").nth(check.plot)
    _check_plot_changes(lp, panel, image, check.dropdown, lambda: choose_option(panel, check.dropdown, check.option))


def _check_plot_changes(lp: LessonPage, panel, image, label: str, move) -> None:
    """Screenshot, ``move()`` the control (returns its value before and after), wait for ``image`` to change."""
    name = re.sub(r"\W+", "-", label).strip("-")
    lp.shot(panel, f"{name}-before")
    plot_before = image.screenshot(animations="disabled")
    old, new = move()
    try:
        _, changed = wait_image_changed(lp.page, image, plot_before, WIDGET_S)
    except TimeoutError as err:
        lp.shot(panel, f"{name}-unchanged")
        raise AssertionError(f"{lp.notebook}: moved {label!r} from {old} to {new}, but the plot "
                             f"did not change ({err})") from None
    lp.shot(panel, f"{name}-after-{changed}px-changed")


def check_train_stop(lp: LessonPage, panel, check: TrainStop) -> None:
    moved = {label: drag_slider(lp.page, panel, label, by)[1] for label, by in check.drag.items()}
    lp.shot(panel, "sliders-moved")
    rows = panel.locator(".widget-html-content table tr")
    runs_before = max(rows.count() - 1, 0)                  # the table shows its header from the first run on
    view = panel.locator("img.widget-image").nth(1)         # the live view, under the curves
    if check.live_view:                                     # every picture it shows during the run, in order
        view.evaluate("img => { window.kdViewSrcs = []; new MutationObserver(() => window.kdViewSrcs.push(img.src))"
                      ".observe(img, {attributes: true, attributeFilter: ['src']}); }")
    _train_until_progress(lp, panel, run=runs_before + 1)
    if check.stop:
        panel.locator("button", has_text="Stop").click()
    row = _ended_run(lp, panel, rows, runs_before + 1, "stopped" if check.stop else "finished")
    if check.live_view:
        shown = lp.page.evaluate("window.kdViewSrcs")
        assert view.is_visible() and len(set(shown)) >= 2, (
            f"{lp.notebook}: the live view showed {len(set(shown))} picture(s) during the run, not one per evaluation")
        lp.shot(panel, "live-view")
    assert re.fullmatch(r"\d+\.\d\d %", row["test acc"]), f"no test accuracy in the runs table: {row}"
    knob = {k.label: name for m in method_names() for name, k in method_info(m).knobs.items()}   # label -> name
    knob.update({k.label: name for name, k in SETTING_KNOBS.items()})
    for label, readout in moved.items():
        assert _rounds_to(float(row[knob[label]]), readout), f"{label}: slider shows {readout}, runs table {row}"


def _train_until_progress(lp: LessonPage, panel, run: int) -> None:
    """Press Train; wait for this run's accuracy readout and for the loss curve to change."""
    from playwright.sync_api import expect

    status, loss_plot = panel.locator(".widget-html-content").first, panel.locator("img.widget-image").first
    plot_before = loss_plot.screenshot(animations="disabled")
    panel.locator("button", has_text="Train").click()
    # "run 2 · step 8 · epoch 1/100 · test acc 71.10 %" while it trains, "run 2 finished: test accuracy …" after
    expect(status, f"{lp.notebook}: no accuracy readout after Train").to_contain_text(
        re.compile(rf"^run {run}\b.*test acc(uracy)? \d+\.\d\d %"), timeout=WIDGET_S * 1000)
    try:
        wait_image_changed(lp.page, loss_plot, plot_before, WIDGET_S)
    except TimeoutError as err:
        raise AssertionError(f"{lp.notebook}: training runs but the loss curve did not update ({err})") from None
    lp.shot(panel, "training")


def _ended_run(lp: LessonPage, panel, rows, run: int, end: str) -> dict:
    """Wait until row ``run`` of the runs table says ``end``; returns the row, column name -> text."""
    from playwright.sync_api import expect

    expect(rows, f"{lp.notebook}: run {run} is not in the runs table").to_have_count(run + 1, timeout=WIDGET_S * 1000)
    header = rows.first.locator("th").all_inner_texts()
    expect(rows.nth(run).locator("td").nth(header.index("status")),
           f"{lp.notebook}: run {run} did not end {end}").to_have_text(end, timeout=WIDGET_S * 1000)
    expect(panel.locator("button", has_text="Train"), "Train stays disabled after the run").to_be_enabled()
    lp.shot(panel, end)
    return dict(zip(header, rows.nth(run).locator("td").all_inner_texts()))


def _rounds_to(value: float, readout: str) -> bool:
    """True when ``value`` agrees with a slider's readout to its last digit ("2.00", "100", "1.8e-2")."""
    mantissa, _, exponent = readout.lower().partition("e")
    half_unit = 0.5 * 10.0 ** (int(exponent or 0) - len(mantissa.partition(".")[2]))
    return abs(value - float(readout)) <= half_unit * (1 + 1e-9)


CHECKS = {SliderPlot: check_slider_plot, DropdownPlot: check_dropdown_plot, TrainStop: check_train_stop}
