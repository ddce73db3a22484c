"""Notebook panels: thin ipywidgets wrappers over :mod:`kd_lab.train` and :mod:`kd_lab.viz`.

* :class:`TrainingPanel` — sliders for a method's knobs, Train and Stop buttons, live plots of every loss
  term and of test accuracy, the method's live view (e.g. KD's logits on probe images, redrawn at each
  evaluation), and a table of the runs done so far. Training runs in a background thread
  so the notebook stays responsive; ``sync=True`` runs it in the caller's thread (tests, nbval).
* :class:`SoftTargetPanel` — a temperature slider over a teacher's real logits: one image's soft targets
  and the class-by-class "dark knowledge" matrix.
* :class:`RelationPanel` — classes, batch size and anchor over real test images: the teacher's and a
  student's distance matrices, their difference, and the angle matrices of one anchor (RKD's relations).

Plots are rendered to PNG into ``ipywidgets.Image`` widgets (no pyplot, safe from a thread); the last
drawn Figure is kept as ``panel.figure`` so that tests can read what was drawn. A displayed panel also carries a
static PNG of its plots, which a notebook saved without widget state shows (nbconvert, nbviewer, GitHub).
"""
from __future__ import annotations

import html
import threading
import time
from dataclasses import fields
from io import BytesIO

import ipywidgets as w
import numpy as np
from matplotlib.figure import Figure

from . import viz
from .analysis import class_sorted_batch, embeddings, relation_agreement, soft_targets_by_class
from .checks import check_integer
from .experiments import Setting, method_teacher, train_method
from .losses import rkd_angle_loss, rkd_distance_loss
from .methods import Knob, check_options, method_info, method_options
from .stats import format_number
from .train import History, pick_device

__all__ = ["TrainingPanel", "SoftTargetPanel", "RelationPanel", "ComparisonPanel", "SETTING_KNOBS", "knob_widget"]

# Sliders of the run's setting (fields of Setting); a method's own knobs come from its registration
# (kd_lab.methods: @register(..., knobs={...})).
SETTING_KNOBS = {
    "labeled": Knob(100, 60000, 100, "labeled images", scale="int"),
    "epochs": Knob(1, 100, 1, "epochs", scale="int"),
    "steps": Knob(10, 5000, 10, "optimizer steps (budget)", scale="int"),
}
_SETTING_FIELDS = {f.name for f in fields(Setting)}


def knob_widget(knob: Knob, value) -> w.Widget:
    """The widget of ``knob`` set to ``value``; ``knob.scale`` picks it: ``"linear"`` a FloatSlider, ``"int"``
    an IntSlider, ``"log"`` a FloatLogSlider (base 10), ``"multiple"`` a SelectMultiple of its choices."""
    common = dict(description=knob.label, style={"description_width": "initial"}, layout=w.Layout(width="420px"))
    if knob.scale == "multiple":
        chosen = knob.parse(value) if knob.parse else tuple(value)
        return w.SelectMultiple(options=knob.choices, value=chosen, rows=len(knob.choices), **common)
    if knob.scale == "log":
        low, high = knob.exponents
        return w.FloatLogSlider(value=value, base=10, min=low, max=high, step=knob.step, readout_format=".1e",
                                continuous_update=False, **common)
    cls = w.IntSlider if knob.scale == "int" else w.FloatSlider
    return cls(value=value, min=knob.low, max=knob.high, step=knob.step, continuous_update=False, **common)


def _knob(method: str, name: str) -> Knob:
    """The knob ``name`` of ``method`` (its registration's), or of the run's setting."""
    knobs = {**SETTING_KNOBS, **method_info(method).knobs}
    if name not in knobs:
        raise ValueError(f"no slider for knob {name!r} of method {method!r}; its knobs: {sorted(knobs)}")
    return knobs[name]


WIDGET_VIEW_MIMETYPE = "application/vnd.jupyter.widget-view+json"


def _images(widget: w.Widget) -> list[w.Image]:
    """The ``Image`` widgets inside ``widget`` (its boxes walked depth-first, in display order)."""
    if isinstance(widget, w.Image):
        return [widget]
    return [image for child in getattr(widget, "children", ()) for image in _images(child)]


def _stack_pngs(pngs: list[bytes]) -> bytes:
    """One PNG of several, one under the other, left-aligned on white."""
    if len(pngs) == 1:
        return pngs[0]
    from matplotlib.image import imread, imsave
    images = [imread(BytesIO(png), format="png") for png in pngs]             # (H, W, 3 or 4) floats in [0, 1]
    canvas = np.ones((sum(im.shape[0] for im in images), max(im.shape[1] for im in images), 4))
    top = 0
    for im in images:
        canvas[top: top + im.shape[0], : im.shape[1], : im.shape[2]] = im
        top += im.shape[0]
    out = BytesIO()
    imsave(out, canvas, format="png")
    return out.getvalue()


class _Panel:
    """Shared plumbing: render a Figure into an Image widget, and display ``self.widget`` with a static PNG of
    its plots."""

    widget: w.Widget

    def _show(self, image: w.Image, fig) -> None:
        self.figure = fig
        image.value = viz.figure_to_png(fig)

    def static_png(self) -> bytes | None:
        """The panel's plots as they are now, one PNG (its visible ``Image`` widgets stacked); None before any."""
        shown = [bytes(im.value) for im in _images(self.widget) if im.value and im.layout.display != "none"]
        return _stack_pngs(shown) if shown else None

    def _repr_mimebundle_(self, include=None, exclude=None):
        """What a notebook shows and saves of the panel: the live widget (its view, which a running Jupyter
        renders in preference to every other type), a PNG of its plots as they are at display time (what
        nbconvert, nbviewer and GitHub show of a notebook saved without widget state: they skip a widget view
        whose state is missing and take the next type, the image) and a line of text (a terminal)."""
        view = {"version_major": 2, "version_minor": 0, "model_id": self.widget.model_id}
        text = f"{type(self).__name__}: an interactive panel (run the notebook to use it)"
        png = self.static_png()
        return {WIDGET_VIEW_MIMETYPE: view, "text/plain": text, **({"image/png": png} if png else {})}


class TrainingPanel(_Panel):
    """Train a student with ``method`` from a notebook, with sliders for ``knobs``.

    ``knobs`` maps knob names to initial values, e.g. ``{"temperature": 4.0, "alpha": 0.9, "labeled": 1000}``;
    a knob is either a field of :class:`kd_lab.experiments.Setting` (:data:`SETTING_KNOBS`) or an option of the
    method with a :class:`~kd_lab.methods.Knob` in its registration. ``knobs=None``: every knob of the method
    at its default (an option whose default is None has no slider then).

    A press of Train trains the number of seeds the "seeds" slider says (1 to ``max_seeds``: seeds ``seed``,
    ``seed`` + 1, …), one after the other. ``reference`` (``label -> {seed: final test accuracy in %}``, e.g.
    :meth:`kd_lab.reference.SweepResults.reference` of the lesson's sweep *at this panel's setting*) is drawn as
    mean ± std bands on the accuracy plot, and the runs table gives each run's difference to the first label
    (the baseline) of the same seed. ``options``: method options without a slider, fixed for every run (e.g.
    DML's ``peers``). Each run's record keeps the trained ``method`` (its peers, its connector) and ``student``.
    """

    def __init__(self, method: str = "kd", knobs: dict | None = None, setting: Setting | None = None,
                 seed: int = 0, device="auto", teacher=None, sync: bool = False, redraw_s: float = 0.5,
                 callback_every: int = 5, reference: dict | None = None, max_seeds: int = 3,
                 options: dict | None = None):
        info = method_info(method)              # an unknown method is an error that lists the registered ones
        self.method, self.seed, self.sync, self.redraw_s = method, seed, sync, redraw_s
        self.reference = {label: {int(k): float(v) for k, v in by_seed.items()}
                          for label, by_seed in (reference or {}).items()}
        self.baseline = next(iter(self.reference), None)
        self.max_seeds = check_integer("max_seeds", max_seeds, 1)
        self.callback_every = callback_every
        self.setting = setting or Setting.default()
        self.device = pick_device(device)
        self.teacher = teacher
        allowed = set(method_options(method)) | _SETTING_FIELDS
        knobs = knobs if knobs is not None else {k: v for k, v in method_options(method).items()
                                                 if k in info.knobs and v is not None}
        unknown = sorted(set(knobs) - allowed)
        if unknown:
            raise ValueError(f"method {method!r} has no knob(s) {unknown}; allowed: {sorted(allowed)}")
        for name, value in knobs.items():       # a slider would clamp a bad value without a word
            _knob(method, name).validate(name, value)
        self.options = check_options(method, dict(options or {}))
        both = sorted(set(self.options) & set(knobs))
        if both:
            raise ValueError(f"{both} given both as knob(s) (a slider) and as fixed options; give each once")
        self.sliders = {name: knob_widget(_knob(method, name), value) for name, value in knobs.items()}
        self.runs: list[dict] = []
        self.figure = None
        self._stop = threading.Event()
        self._busy = False                      # a run is in progress (set by train, cleared when it ends)
        self._thread: threading.Thread | None = None
        self._last_draw = 0.0
        self._current: dict | None = None       # the record of the run in progress
        self._build()

    def _build(self) -> None:
        self.train_button = w.Button(description="Train", button_style="success", icon="play")
        self.stop_button = w.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.train_button.on_click(lambda _: self.train())
        self.stop_button.on_click(lambda _: self.stop())
        self.seeds = w.IntSlider(value=1, min=1, max=self.max_seeds, description="seeds (runs per press)",
                                 style={"description_width": "initial"}, layout=w.Layout(width="420px"),
                                 disabled=self.max_seeds == 1)
        fixed = ", ".join(f"{k}={v}" for k, v in self.options.items())
        self.status = w.HTML(f"ready: <b>{self.method}</b>{f' ({html.escape(fixed)})' if fixed else ''} "
                             f"on {self.device}")
        self.plot = w.Image(format="png", layout=w.Layout(width="760px"))
        self.live_metrics = tuple(method_info(self.method).cls.live_metrics)    # epoch metrics drawn live
        self.metrics_plot = w.Image(format="png",
                                    layout=w.Layout(width="480px", display="" if self.live_metrics else "none"))
        self.view_plot = w.Image(format="png", layout=w.Layout(width="900px", display="none"))  # the live view
        self.view_figure, self._drawn_view = None, None
        self.table = w.HTML()
        self.widget = w.VBox([*self.sliders.values(), self.seeds, w.HBox([self.train_button, self.stop_button]),
                              self.status, self.plot, self.view_plot, self.metrics_plot, self.table])
        self._show(self.plot, viz.plot_history(History(), reference=self.reference))
        self._draw_metrics(History())

    @property
    def running(self) -> bool:
        """True from Train until the run has ended (in its thread, or in the caller's with ``sync=True``)."""
        return self._busy or (self._thread is not None and self._thread.is_alive())

    def values(self) -> dict:
        return {name: s.value for name, s in self.sliders.items()}

    def train(self) -> dict | None:
        """Start a run with the sliders' values for each seed the seeds slider asks for; returns the first run's
        record (every run has one in ``self.runs``)."""
        if self.running:
            self.status.value = "a run is in progress: press Stop first"
            return None
        values = self.values()
        setting = Setting(**{**vars(self.setting), **{k: v for k, v in values.items() if k in _SETTING_FIELDS}})
        options = {**self.options, **{k: v for k, v in values.items() if k not in _SETTING_FIELDS}}
        records = [{"run": len(self.runs) + 1 + i, "seed": seed, **values, "history": History(), "status": "queued"}
                   for i, seed in enumerate(range(self.seed, self.seed + self.seeds.value))]
        self.runs.extend(records)
        self._stop.clear()
        self._busy = True
        self.train_button.disabled, self.stop_button.disabled = True, False
        job = lambda: self._run_all(records, setting, options)  # noqa: E731
        if self.sync:
            job()
        else:
            self._thread = threading.Thread(target=job, daemon=True)
            self._thread.start()
        return records[0]

    def stop(self) -> None:
        """Ask the run to stop after the current step; its curves and history are kept. With no run in
        progress there is nothing to stop, and the status says so."""
        if not self.running:
            self.status.value = "nothing is running: press Train to start a run"
            return
        self._stop.set()
        self.status.value = "stopping…"

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run_all(self, records: list[dict], setting: Setting, options: dict) -> None:
        try:
            for record in records:
                if self._stop.is_set():                  # Stop also cancels the seeds not started yet
                    record["status"] = "not run"
                    continue
                self._run(record, setting, options)
        finally:                                        # each run has redrawn its own final state (_run)
            self._busy = False
            self.train_button.disabled, self.stop_button.disabled = False, True

    def _run(self, record: dict, setting: Setting, options: dict) -> None:
        h = record["history"]
        record["status"], self._current = "running", record
        try:
            if self.teacher is None and method_info(self.method).cls.needs_teacher:
                self.status.value = "loading the teacher…"
                self.teacher = method_teacher(self.method, setting.dataset, self.device, verbose=False)
            self.status.value = f"training run {record['run']} (seed {record['seed']})…"
            method, _ = train_method(self.method, setting, seed=record["seed"], device=self.device,
                                     teacher=self.teacher, progress=False, callback=self._on_progress,
                                     callback_every=self.callback_every, stop=self._stop, history=h, **options)
            record["method"], record["student"] = method, method.student     # for the cells after the panel
            record["status"] = h.status
            self.status.value = (f"run {record['run']} {h.status} after {len(h.steps)} steps: "
                                 f"test accuracy {_pct(h.test_acc)}")
        except Exception as err:  # noqa: BLE001 - shown in the panel; the history is kept
            record["status"] = "failed"
            self.status.value = f"<span style='color:#b00'>run {record['run']} failed: {html.escape(str(err))}</span>"
        self._redraw(h, force=True)

    def _on_progress(self, h: History) -> None:
        last = h.epochs[-1] if h.epochs else None
        epoch_text = f"· epoch {last['epoch']}/{h.config.get('epochs')} · test acc {_pct(h.test_acc)}" if last else ""
        self.status.value = f"run {self._current['run']} · step {len(h.steps)} {epoch_text}"
        self._redraw(h)

    def _redraw(self, h: History, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < self.redraw_s:
            return
        self._last_draw = now
        self._show(self.plot, viz.plot_history(h, reference=self.reference))
        self._draw_view(h)
        self._draw_metrics(h)
        self.table.value = self.runs_table_html()

    def _draw_view(self, h: History) -> None:
        """The method's live view (:meth:`kd_lab.methods.Method.live_view`, e.g. KD's logits on probe images),
        redrawn when an evaluation has made a new one; kept as ``view_figure``."""
        if h.view is None or h.view is self._drawn_view:
            return
        self._drawn_view = h.view
        self.view_figure = viz.plot_live_view(h.view)
        self.view_plot.value = viz.figure_to_png(self.view_figure)
        self.view_plot.layout.display = ""

    def _draw_metrics(self, h: History) -> None:
        """The method's ``live_metrics`` (e.g. RKD's relation agreement) against epoch, kept as ``metrics_figure``."""
        if self.live_metrics:
            self.metrics_figure = viz.plot_epoch_metrics(h, self.live_metrics)
            self.metrics_plot.value = viz.figure_to_png(self.metrics_figure)

    def runs_table_html(self) -> str:
        """The runs of this session: seed, knob values, status, accuracy, its difference to the reference
        baseline of the same seed (with a reference), speed."""
        paired = [f"Δ vs {self.baseline} (same seed)"] if self.baseline else []
        head = ["run", "seed", *self.sliders, "status", "test acc", *paired, "images/s", "wall s"]
        rows = []
        for r in self.runs:
            h = r["history"]
            cells = [r["run"], r["seed"], *(r[k] for k in self.sliders), r["status"], _pct(h.test_acc),
                     *([self.paired_difference(r)] if paired else []),
                     f"{h.images_per_s:.0f}" if h.images_per_s else "–", f"{h.wall_s:.1f}"]
            rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
        header = "<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in head) + "</tr>"
        return f"<table>{header}{''.join(rows)}</table>"

    def paired_difference(self, record: dict) -> str:
        """The run's final test accuracy minus the reference baseline's of the same seed, in points ("–" when the
        run has not finished or the reference has no run of that seed)."""
        base, acc = self.reference[self.baseline].get(record["seed"]), record["history"].test_acc
        if base is None or acc is None or record["status"] != "finished":
            return "–"
        return f"{100 * acc - base:+.2f}"


def _pct(acc) -> str:
    return f"{100 * acc:.2f} %" if acc is not None else "–"


class SoftTargetPanel(_Panel):
    """Temperature slider over a teacher's logits: one image's soft targets, and the dark-knowledge matrix.

    ``logits`` (N, K) are the teacher's logits on ``labels`` (N,) real test images.
    """

    def __init__(self, logits, labels, classes, temperature: float = 4.0, index: int = 0):
        self.logits, self.labels, self.classes = logits.float().cpu(), labels.cpu(), list(classes)
        knob = method_info("kd").knobs["temperature"]
        self.temperature = knob_widget(knob, knob.validate("temperature", temperature))
        self.index = w.IntSlider(value=index, min=0, max=len(self.logits) - 1, description="test image",
                                 continuous_update=False)
        self.bars = w.Image(format="png", layout=w.Layout(width="520px"))
        self.matrix = w.Image(format="png", layout=w.Layout(width="520px"))
        self.pairs = w.HTML()
        self.temperature.observe(lambda _: self.redraw(), names="value")
        self.index.observe(lambda _: self.redraw(), names="value")
        self.widget = w.VBox([self.temperature, self.index, w.HBox([self.bars, self.matrix]), self.pairs])
        self.redraw()

    def redraw(self) -> None:
        t, i = self.temperature.value, self.index.value
        fig = viz.plot_soft_targets(self.logits[i], t, self.classes)
        fig.axes[0].set_title(f"true class: {self.classes[int(self.labels[i])]} · " + fig.axes[0].get_title())
        self.bars_figure = fig
        self._show(self.bars, fig)
        soft = soft_targets_by_class(self.logits, self.labels, t, len(self.classes))
        self.matrix_figure = viz.plot_dark_knowledge(soft, self.classes, t, annotate=False)
        self.matrix.value = viz.figure_to_png(self.matrix_figure)
        pairs = viz.most_similar_pairs(soft, self.classes, k=3)
        self.pairs.value = "most similar classes: " + "; ".join(f"{a} ↔ {b} ({v:.3f})" for a, b, v in pairs)


class RelationPanel(_Panel):
    """What relational distillation (Park et al. 2019, "Relational Knowledge Distillation") compares, on real
    test images: pick classes, a batch size and an anchor j. The panel redraws the teacher's and a student's
    normalised distance matrices and their difference (RKD-D's relation), and the angle matrices
    cos∠(x_i, x_j, x_k) of the anchor for both (RKD-A's relation), with the batch sorted by class.

    ``students`` is one model or a dict ``name -> model`` (a dropdown picks one; :meth:`add_student` adds
    one later); ``data`` holds real images (:class:`kd_lab.data.ImageData`), the first ones of each class
    are used.
    """

    def __init__(self, teacher, students, data, classes=None, batch_size: int = 40, anchor: int = 0):
        self.teacher, self.data, self.names = teacher, data, list(data.classes)
        self.students = dict(students) if isinstance(students, dict) else {"student": students}
        picked = tuple(range(len(self.names))) if classes is None else tuple(classes)
        self.classes = w.SelectMultiple(options=[(n, i) for i, n in enumerate(self.names)], value=picked,
                                        description="classes", rows=min(10, len(self.names)))
        self.batch_size = w.IntSlider(value=batch_size, min=4, max=128, description="batch size",
                                      continuous_update=False)
        self.anchor = w.IntSlider(value=anchor, min=0, max=batch_size - 1, description="anchor j",
                                  continuous_update=False)
        self.student = w.Dropdown(options=list(self.students), description="student")
        self.relations = w.Image(format="png", layout=w.Layout(width="900px"))
        self.angles = w.Image(format="png", layout=w.Layout(width="720px"))
        self.status = w.HTML()
        self._drawing = False
        for control in (self.classes, self.batch_size, self.anchor, self.student):
            control.observe(lambda _: self.redraw(), names="value")
        self.widget = w.VBox([w.HBox([self.classes, w.VBox([self.batch_size, self.anchor, self.student])]),
                              self.status, self.relations, self.angles])
        self.redraw()

    def add_student(self, name: str, model) -> None:
        """Add (or replace) a student and show it."""
        self.students[name] = model
        self.student.options = list(self.students)
        self.student.value = name
        self.redraw()

    def batch(self):
        """Labels ``(B,)`` and the student's and teacher's embeddings ``(B, D_s)``, ``(B, D_t)`` of the batch."""
        idx = class_sorted_batch(self.data.y, sorted(self.classes.value), self.batch_size.value)
        images = self.data.subset(idx.to(self.data.device))
        student = self.students[self.student.value]
        return images.y.cpu(), embeddings(student, images), embeddings(self.teacher, images)

    def redraw(self) -> None:
        if self._drawing:                       # a control changed while we adjust the anchor's range
            return
        self._drawing = True
        try:
            self._draw()
        finally:
            self._drawing = False

    def _draw(self) -> None:
        if not self.classes.value:
            self.status.value = "pick at least one class"
            return
        labels, emb_s, emb_t = self.batch()
        if len(labels) < 3:
            self.status.value = f"only {len(labels)} image(s): pick a larger batch"
            return
        self.anchor.max = len(labels) - 1
        j, name = self.anchor.value, self.student.value
        self.relation_figure = viz.plot_relation_matrices(emb_s, emb_t, labels, self.names, student_name=name)
        self._show(self.relations, self.relation_figure)
        self.angle_figure = self._angle_figure(labels, emb_s, emb_t, j)
        self.angles.value = viz.figure_to_png(self.angle_figure)
        self.status.value = (f"{len(labels)} test images · anchor j = {j} ({self.names[int(labels[j])]}) · "
                             f"relation agreement {relation_agreement(emb_s, emb_t):.3f} · "
                             f"RKD-D loss {float(rkd_distance_loss(emb_s, emb_t)):.4f} · "
                             f"RKD-A loss {float(rkd_angle_loss(emb_s, emb_t)):.4f}")

    def _angle_figure(self, labels, emb_s, emb_t, j):
        fig = Figure(figsize=(11, 4.6), layout="constrained")
        axes = fig.subplots(1, 2)
        for ax, (who, emb) in zip(axes, (("teacher", emb_t), (self.student.value, emb_s))):
            viz.plot_angle_matrix(emb, j, ax=ax, labels=labels, classes=self.names,
                                  title=f"{who}: cos∠(x_i, x_j, x_k), anchor j = {j}")
        return fig


class ComparisonPanel(_Panel):
    """Lesson 06: the rows of a comparison (:func:`kd_lab.results.read_rows`, one setting) with a method
    picker (ctrl/shift-click), the labeled-set size and the cost axis; redraws
    :func:`kd_lab.viz.plot_comparison` and a mean ± std table (Δ against ``baseline``) on every change."""

    COSTS = (("wall seconds per run", "wall_s"), ("training seconds per run", "train_s"),
             ("training images/s", "images_per_s"), ("peak memory (MB)", "peak_mem_mb"))

    def __init__(self, rows: list[dict], methods=None, labeled=None, cost: str = "wall_s", baseline: str = "scratch"):
        from . import results
        ok = [r for r in rows if r["status"] == "ok"]
        if not ok:
            raise ValueError("the comparison has no finished (ok) run to show")
        self.rows, self.baseline = rows, baseline
        names = results.in_course_order(r["method"] for r in ok)
        sizes = results.labeled_sizes(ok)
        self.methods = w.SelectMultiple(options=names, value=tuple(methods or names), rows=min(len(names), 13),
                                        description="methods")
        self.labeled = w.Dropdown(options=sizes, value=sizes[0] if labeled is None else labeled,
                                  description="labeled images", style={"description_width": "initial"})
        self.cost = w.Dropdown(options=self.COSTS, value=cost, description="cost axis")
        self.image, self.table = w.Image(format="png"), w.HTML()
        for control in (self.methods, self.labeled, self.cost):
            control.observe(lambda change: self.redraw(), names="value")
        self.widget = w.VBox([w.HBox([self.methods, w.VBox([self.labeled, self.cost])]), self.image, self.table])
        self.redraw()

    def redraw(self) -> None:
        from . import results
        data = results.per_method(self.rows, labeled=self.labeled.value)
        chosen = {m: data[m] for m in self.methods.value if m in data}
        self._show(self.image, viz.plot_comparison(chosen, cost=self.cost.value))
        self.records = [r for r in results.summarize(self.rows, self.baseline)
                        if r["labeled"] == self.labeled.value and r["method"] in self.methods.value]
        self.table.value = _records_html(self.records, self.baseline)


def _records_html(records: list[dict], baseline: str) -> str:
    """An HTML table of :func:`kd_lab.results.summarize` records."""
    num = format_number                                      # NaN -> dash
    head = ["method", "n", "failed", "test accuracy %", f"Δ vs {baseline}", "images/s", "wall s", "peak MB"]
    body = "".join(
        f"<tr><td>{html.escape(r['method'])}</td><td>{r['n']}</td><td>{r['failed']}</td>"
        f"<td>{num(r['acc_mean'], '.2f')} ± {num(r['acc_std'], '.2f')}</td><td>{num(r['delta'], '+.2f')}</td>"
        f"<td>{num(r['images_per_s'], ',.0f')}</td><td>{num(r['wall_s'], '.1f')}</td>"
        f"<td>{num(r['peak_mem_mb'], '.0f')}</td></tr>" for r in records)
    return f"<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{body}</table>"

