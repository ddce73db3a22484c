"""Honest figures: each check reads what a plot holds (axis limits, artists, legend entries, colour limits) — close
accuracies as dots, not zoomed bars; loss terms labelled with their weights; a legend entry for every coloured
mark; a colour scale per quantity; no axis narrower than a sensible span; panels that save as an image."""
import base64
from io import BytesIO

import nbformat
import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgba
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.image import imread

from kd_lab import viz
from kd_lab.data import FASHION_CLASSES
from kd_lab.methods import METHODS, make_method
from kd_lab.models import build_model
from kd_lab.train import History
from kd_lab.viz._common import BAR_COLOR, TOP_COLOR

pytestmark = pytest.mark.usefixtures("no_pyplot_figures")  # viz never touches pyplot

CLASSES = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def y_span(ax) -> float:
    lo, hi = ax.get_ylim()
    return hi - lo


def run_history(config: dict, terms: list[str], epochs=((1, 0.1035, 0.1037),)) -> History:
    """A History with 30 steps of ``terms`` and the given (epoch, train_acc, test_acc) records."""
    steps = [{"step": i + 1, "epoch": 1, "total": 1.0, **{t: 0.5 for t in terms}, "lr": 0.1} for i in range(30)]
    return History(method="m", config=config, steps=steps,
                   epochs=[{"epoch": e, "train_acc": a, "test_acc": t} for e, a, t in epochs])


# ------------------------------------------------------------------------ 1. dots, not zoomed bars
def test_close_accuracies_are_dots_with_error_bars_on_an_axis_of_at_least_one_point():
    results = {"scratch": [80.1, 80.3, 80.2], "KD": [80.4, 80.6, 80.5]}      # a 0.3-point gap
    ax = viz.plot_runs_bar(results).axes[0]
    assert not ax.patches                                                   # nothing whose length means anything
    dots = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert [c.lines[0].get_ydata()[0] for c in dots] == pytest.approx([80.2, 80.5])
    lo, hi = ax.get_ylim()
    assert hi - lo >= 1.0 and lo < 80.1 and hi > 80.6                       # zoomed, but not to a cliff
    assert set(legend_texts(ax)) == {"mean ± std over seeds", "one seed"}


def test_runs_of_another_quantity_zoom_to_a_relative_span():
    ax = viz.plot_runs_bar({"RKD-D": [0.951, 0.952], "RKD-A": [0.953]}, ylabel="relation agreement").axes[0]
    assert 0.05 * 0.953 <= y_span(ax) < 0.2


def test_comparison_draws_each_method_as_a_dot_not_a_bar():
    results = {"scratch": {"accuracy": [80.0, 80.2], "wall_s": [10, 11]},
               "kd": {"accuracy": [80.3, 80.5], "wall_s": [20, 22]}}
    acc_ax, cost_ax = viz.plot_comparison(results).axes[:2]
    assert not acc_ax.patches and len([c for c in acc_ax.containers if isinstance(c, ErrorbarContainer)]) == 2
    assert y_span(acc_ax) >= 1.0 and y_span(cost_ax) >= 1.0


# --------------------------------------------------------------------- 2. weighted loss terms
METHOD_TERMS = {   # method -> (extra options, {term: the label its legend shows})
    "kd": ({}, {"ce": "ce ×(1−α)=0.1", "kd": "kd ×α=0.9"}),
    "dkd": ({}, {"ce": "ce", "tckd": "tckd ×α=1", "nckd": "nckd ×β=8"}),
    "dkd ": ({"warmup": 0.1}, {"tckd": "tckd ×α=1 (ramped in)"}),
    "ofd+kd": ({}, {"ce": "ce ×(1−κ)=0.1", "kd": "kd ×κ=0.9", "ofd_2": "ofd_2 ×λ_F=0.001·w_i"}),
    "fitnet": ({}, {"ce": "ce ×(1−κ)=1", "fitnet_1": "fitnet_1 ×λ_F=1"}),
    "rkd": ({}, {"ce": "ce ×(1−κ)=1", "rkd_d": "rkd_d ×λ_D=25", "rkd_a": "rkd_a ×λ_A=50"}),
    "dml": ({"k": 3, "kl_weight": 0.5}, {"ce_0": "ce_0", "kl_2": "kl_2 ×w/(K−1)=0.25"}),
    "udml": ({}, {"kl_1": "kl_1 ×w/(K−1)=1", "feat_0": "feat_0 ×λ_F/(K−1)=1"}),
    "ssld": ({}, {"ssld": "ssld"}),
    "scratch": ({}, {"ce": "ce"}),
}


@pytest.mark.parametrize("method", list(METHOD_TERMS))
def test_the_loss_legend_gives_each_terms_weight_from_the_runs_config(method):
    extra, labels = METHOD_TERMS[method]
    torch.manual_seed(0)
    name = method.strip()
    teacher = build_model("student").eval() if METHODS[name].needs_teacher else None
    student = build_model("student" if name in ("dml", "udml") else "student-tiny")   # DML's peers: "student"s
    built = make_method(name, student, teacher, **extra)
    config = {"epochs": 2, "lr": 0.05, **built.options(), "term_weights": built.term_weights()}   # as fit records
    loss_ax = viz.plot_history(run_history(config, list(labels))).axes[0]
    assert legend_texts(loss_ax) == ["total", *labels.values()]
    assert loss_ax.get_ylabel() == "weighted loss terms (as summed by the trainer)"
    assert loss_ax.get_legend().get_title().get_text() == "mean of the last 10 steps (faint: each step)"


def test_overlaid_runs_say_their_total_is_the_sum_of_weighted_terms():
    runs = [("KD", run_history({"alpha": 0.9}, ["ce", "kd"])), ("scratch", run_history({}, ["ce"]))]
    loss_ax = viz.plot_history(runs).axes[0]
    assert legend_texts(loss_ax) == ["KD", "scratch"]
    assert loss_ax.get_ylabel() == "total loss (sum of the weighted terms)"


def test_a_config_without_weights_keeps_the_bare_term_names():
    loss_ax = viz.plot_history(run_history({"alpha": 0.9}, ["ce", "kd"])).axes[0]
    assert legend_texts(loss_ax) == ["total", "ce", "kd"]


# ------------------------------------------------------------------- 3. a legend for every mark
def test_the_orange_top_class_bar_has_a_legend_entry():
    logits = torch.tensor([0.0, 3.0, 1.0, -1.0, 0.5])
    ax = viz.plot_soft_targets(logits, 2.0, CLASSES).axes[0]
    handles = ax.get_legend().legend_handles
    assert legend_texts(ax) == ["largest probability", "other classes"]
    assert [to_rgba(h.get_facecolor()) for h in handles] == [to_rgba(TOP_COLOR), to_rgba(BAR_COLOR)]
    assert to_rgba(ax.patches[1].get_facecolor()) == to_rgba(TOP_COLOR)
    assert len(ax.patches) == len(CLASSES)                                  # the legend adds no bar
    axes = viz.plot_temperatures(logits, [1, 4, 10], CLASSES).axes
    assert [ax.get_legend() is not None for ax in axes] == [True, False, False]   # one legend for the row


def test_the_highlighted_class_has_a_band_named_in_the_legend():
    ax = viz.plot_per_class({"teacher": [0.9] * 5, "student": [0.8] * 5}, CLASSES, highlight=4).axes[0]
    assert legend_texts(ax) == ["Coat (highlighted)", "teacher", "student"]
    band = ax.get_legend().legend_handles[0]
    assert to_rgba(band.get_facecolor())[:3] == to_rgba("red")[:3]
    (span,) = [p for p in ax.patches if p.get_label() == "Coat (highlighted)"]
    x0 = span.get_x() if hasattr(span, "get_x") else span.get_xy()[:, 0].min()
    assert x0 == pytest.approx(3.55)


def test_wrong_predictions_in_red_have_a_legend_and_right_ones_none():
    images, labels = torch.rand(4, 1, 6, 6), [0, 1, 2, 3]
    fig = viz.plot_images(images, labels, CLASSES, predictions=[0, 1, 4, 3])
    assert ["wrong prediction" in t.get_text() for t in fig.legends[0].get_texts()] == [True]
    assert not viz.plot_images(images, labels, CLASSES, predictions=labels).legends


def test_the_relu_line_of_a_margin_histogram_is_in_its_legend():
    taps, margins = torch.randn(20, 2, 3, 3), torch.tensor([-0.5, -0.4])
    ax = viz.plot_margin_histograms(taps, margins, channels=[0]).axes[0]
    assert legend_texts(ax)[0] == "0: the ReLU keeps x > 0" and len(legend_texts(ax)) == len(ax.lines)


# ------------------------------------------------------------------------ 4. colour scales
def image_rows(fig):
    return [ax for ax in fig.axes if ax.images]


def test_each_feature_map_row_has_its_own_symmetric_scale_and_colour_bar():
    g = torch.Generator().manual_seed(0)
    rows = {"teacher": torch.randn(4, 5, 5, generator=g) * 0.22, "student": torch.randn(4, 5, 5, generator=g) * 3}
    fig = viz.plot_feature_maps(rows, channels=[0, 1, 2])
    grid = image_rows(fig)
    for r, m in enumerate(rows.values()):
        span = float(m[[0, 1, 2]].abs().max())
        assert [ax.images[0].get_clim() for ax in grid[3 * r: 3 * r + 3]] == [pytest.approx((-span, span))] * 3
    assert grid[0].images[0].get_clim()[1] < 0.25 * grid[3].images[0].get_clim()[1]     # not washed out
    assert len([ax for ax in fig.axes if not ax.images]) == 2                           # a colour bar per row
    shared = image_rows(viz.plot_feature_maps(rows, channels=[0, 1, 2], share_scale=True))
    assert shared[0].images[0].get_clim() == shared[3].images[0].get_clim()


def dark_matrix(seed: int, sharpness: float) -> np.ndarray:
    z = np.random.default_rng(seed).normal(size=(5, 5)) * sharpness
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def test_dark_knowledge_matrices_side_by_side_share_one_colour_scale():
    mats = {"teacher": dark_matrix(0, 1.0), "scratch": dark_matrix(1, 3.0), "KD": dark_matrix(2, 1.5)}
    fig = viz.plot_dark_knowledge_row(mats, CLASSES, 4.0)
    heatmaps = [ax for ax in fig.axes if ax.collections and ax.get_title()]
    off = np.concatenate([m[~np.eye(5, dtype=bool)] for m in mats.values()])
    assert [ax.collections[0].get_clim() for ax in heatmaps] == [pytest.approx((off.min(), off.max()))] * 3
    assert [ax.get_title() for ax in heatmaps] == [f"{n}: mean soft targets, T = 4 (diagonal hidden)" for n in mats]
    ax = viz.plot_dark_knowledge(mats["KD"], CLASSES, 4.0, vmin=0.0, vmax=0.5).axes[0]
    assert ax.collections[0].get_clim() == (0.0, 0.5)


def test_partial_l2_keeps_one_scale_for_the_maps_the_loss_compares():
    from kd_lab.features import partial_l2_maps
    maps = partial_l2_maps(torch.tensor([[2.0, 0.5], [-0.2, -1.0]]), torch.tensor([[1.0, 1.0], [-0.9, -0.3]]), -0.5)
    panels = image_rows(viz.plot_partial_l2(maps))
    assert len({ax.images[0].get_clim() for ax in panels[:3]}) == 1               # teacher, student, target
    assert panels[3].images[0].get_clim() == (0, 1) and panels[4].images[0].get_clim()[0] == 0


# ------------------------------------------------------------------------ 5. degenerate axes
def test_one_epoch_of_accuracy_spans_at_least_one_point_and_two_epochs_of_x():
    acc_ax = viz.plot_history(run_history({}, ["ce"])).axes[1]
    lo, hi = acc_ax.get_ylim()
    assert hi - lo >= 1.0 and lo < 10.35 < 10.37 < hi and (lo + hi) / 2 == pytest.approx(10.36)
    assert acc_ax.get_xlim() == pytest.approx((0.0, 2.0))


def test_a_sweep_with_one_point_spans_at_least_one_point():
    ax = viz.plot_sweep([1000], {"SSLD": [[10.37, 10.38]]}, "unlabeled images").axes[0]
    assert y_span(ax) >= 1.0 and ax.get_ylim()[0] < 10.37
    ax = viz.plot_unlabeled_curve([0, 1000], {"SSLD": [[80.01], [80.02]]}).axes[0]
    assert y_span(ax) >= 1.0


def test_a_wide_range_keeps_its_automatic_limits():
    ax = viz.plot_sweep([1, 2], {"KD": [[70.0], [85.0]]}, "T").axes[0]
    lo, hi = ax.get_ylim()
    assert 69 < lo < 70 and 85 < hi < 86


def test_epoch_metrics_and_peers_span_a_minimum_and_a_log_axis_stays_automatic():
    h = History(epochs=[{"epoch": 1, "relation_agreement": 0.951, "feat_dist_1": 0.0101,
                         "acc_0": 0.8001, "acc_1": 0.8002, "agree_0_1": 0.9}])
    assert y_span(viz.plot_relation_agreement(h).axes[0]) == pytest.approx(0.05 * 0.951)
    acc_ax, agree_ax = viz.plot_peers(h).axes[:2]
    assert y_span(acc_ax) >= 1.0 and y_span(agree_ax) >= 1.0
    ax = viz.plot_stage_distances(h, stages=[1]).axes[0]
    assert ax.get_yscale() == "log" and 0 < ax.get_ylim()[0] < 0.0101 < ax.get_ylim()[1]


# --------------------------------------------------------------------- 6. panels saved as images
@pytest.fixture()
def soft_panel():
    from kd_lab.widgets import SoftTargetPanel
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(30, 10, generator=g) * 4, torch.arange(30) % 10
    return SoftTargetPanel(logits, labels, FASHION_CLASSES, temperature=2.0, index=1)


def test_a_panel_displays_its_widget_view_and_a_png_of_its_plots(soft_panel):
    from IPython.core.formatters import DisplayFormatter
    data, _ = DisplayFormatter().format(soft_panel)                       # what IPython publishes
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == soft_panel.widget.model_id
    assert "VBox(" not in data["text/plain"]
    png = data["image/png"]
    assert png.startswith(PNG_SIGNATURE)
    image = imread(BytesIO(png), format="png")                             # a valid PNG: both plots, stacked
    parts = [imread(BytesIO(bytes(im.value)), format="png") for im in (soft_panel.bars, soft_panel.matrix)]
    assert image.shape[0] == sum(p.shape[0] for p in parts) and image.shape[1] == max(p.shape[1] for p in parts)
    soft_panel.temperature.value = 10.0                                    # a later display shows the new plots
    assert soft_panel._repr_mimebundle_()["image/png"] != png


def notebook_with(bundle: dict, widget_state: dict | None = None):
    """A one-cell notebook whose output is ``bundle`` as a kernel saves it (the PNG in base64)."""
    data = {**bundle, "image/png": base64.b64encode(bundle["image/png"]).decode()}
    cell = nbformat.v4.new_code_cell("panel", outputs=[nbformat.v4.new_output("display_data", data=data)])
    nb = nbformat.v4.new_notebook(cells=[cell])
    if widget_state is not None:
        nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
            "version_major": 2, "version_minor": 0, "state": widget_state}}
    return nb, data["image/png"]


def test_nbconvert_shows_the_png_of_a_panel_saved_without_widget_state(soft_panel):
    from nbconvert import HTMLExporter
    bundle = soft_panel._repr_mimebundle_()
    nb, png_b64 = notebook_with(bundle)
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert html.count("<img ") == 1 and f'src="data:image/png;base64,{png_b64}"' in html
    assert "VBox(" not in html and "SoftTargetPanel: an interactive panel" not in html
    # with the widget state saved, the exporter embeds the live widget view instead, as Jupyter would show it
    model_id = bundle["application/vnd.jupyter.widget-view+json"]["model_id"]
    nb, png_b64 = notebook_with(bundle, {model_id: {"model_name": "VBoxModel", "state": {}}})
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert 'type="application/vnd.jupyter.widget-view+json"' in html and png_b64 not in html


def test_a_training_panel_saves_its_loss_plot_before_any_run():
    from kd_lab.experiments import Setting
    from kd_lab.models import build_model
    from kd_lab.widgets import TrainingPanel
    panel = TrainingPanel("kd", {"temperature": 4.0}, Setting(labeled=100, epochs=1), device="cpu",
                          teacher=build_model("student").eval(), sync=True)
    png = panel._repr_mimebundle_()["image/png"]
    assert png == bytes(panel.plot.value)                 # its only visible plot (KD draws no live metrics)
    assert isinstance(panel.figure, Figure)


def _run_in_a_kernel(source: str) -> list[dict]:
    """Execute ``source`` as one notebook cell in a real kernel; returns the cell's saved outputs."""
    import nbclient
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    return nb.cells[0].outputs


def test_a_saved_progress_bar_shows_its_final_state_not_zero_percent():
    outputs = _run_in_a_kernel(
        "from kd_lab.train import progress_bar\n"
        "kept = progress_bar(total=5, desc='kept')\n"
        "gone = progress_bar(total=5, desc='gone', leave=False)\n"
        "for bar in (kept, gone):\n"
        "    bar.update(5); bar.close()\n")
    texts = [o["data"]["text/plain"] for o in outputs if o["output_type"] == "display_data"]
    assert len(texts) == 2, outputs
    assert "kept: 100%" in texts[0] and "5/5" in texts[0], texts[0]
    assert "application/vnd.jupyter.widget-view+json" in outputs[0]["data"]      # still the live widget
    assert texts[1] == "", texts[1]                                                 # leave=False: nothing left
    assert not any("0%" in t and "100%" not in t for t in texts)


def test_a_progress_bar_outside_a_notebook_is_plain_tqdm():
    from tqdm import tqdm

    from kd_lab.train import progress_bar
    bar = progress_bar(total=3, desc="x", disable=True)
    assert isinstance(bar, tqdm)
    bar.close()
