"""kd_lab.viz: each plot is checked for what it draws (axes, titles, labels, bar heights, ranges), not only
that it runs; no pyplot figure is ever created and importing the module changes no global state."""
import importlib
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import assert_exports_union_of_families
from matplotlib.colors import to_rgba
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.figure import Figure

from kd_lab import viz
from kd_lab.train import History

CLASSES = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat"]
K = len(CLASSES)


pytestmark = pytest.mark.usefixtures("no_pyplot_figures")  # viz never touches pyplot


def fresh_ax():
    fig = Figure(layout="constrained")
    return fig, fig.add_subplot()


def bar_patches(ax):
    return [p for p in ax.patches if p.get_height() is not None]


def seed_dots(ax):
    return [ln for ln in ax.lines if ln.get_marker() == "o"]


def mean_dots(ax):
    """The mean ± std markers of plot_runs_bar: one error-bar container per label."""
    return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


def history(n_steps=30, n_epochs=3, test=True):
    steps = [{"step": i, "epoch": i // 10, "total": 2.0 - 0.01 * i, "ce": 1.0 - 0.005 * i, "kd": 1.0 - 0.005 * i,
              "lr": 0.1} for i in range(n_steps)]
    epochs = [{"epoch": e, "train_acc": 0.5 + 0.1 * e, "test_acc": (0.4 + 0.1 * e) if test else None}
              for e in range(1, n_epochs + 1)]
    return History(steps=steps, epochs=epochs)


# ---------------------------------------------------------------------------------- soft targets
def test_soft_target_bars_are_the_tempered_softmax_and_the_title_gives_its_entropy():
    logits = torch.tensor([2.0, -1.0, 0.5, 3.0, 0.0])
    fig = viz.plot_soft_targets(logits, 2.0, CLASSES)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    p = torch.softmax(logits / 2.0, 0)
    heights = [b.get_height() for b in ax.patches]
    assert np.allclose(heights, p.numpy(), atol=1e-6)
    entropy = float(-(p * p.log()).sum())
    assert ax.get_title() == f"T = 2, entropy {entropy:.2f} nats"
    assert [t.get_text() for t in ax.get_xticklabels()] == CLASSES
    assert ax.get_ylim() == (0.0, 1.0)
    assert ax.get_ylabel()
    top = int(p.argmax())
    colors = [to_rgba(b.get_facecolor()) for b in ax.patches]
    assert all(colors[i] != colors[top] for i in range(K) if i != top)
    assert len({c for i, c in enumerate(colors) if i != top}) == 1


def test_soft_targets_accept_lists_and_draw_into_a_given_ax():
    fig, ax = fresh_ax()
    out = viz.plot_soft_targets([0.0] * K, 1, CLASSES, ax=ax)
    assert out is ax.figure and fig.axes == [ax]
    assert np.allclose([b.get_height() for b in ax.patches], 1 / K)
    assert f"entropy {math.log(K):.2f} nats" in ax.get_title()


def test_soft_targets_reject_bad_input():
    with pytest.raises(ValueError):
        viz.plot_soft_targets(torch.zeros(K), 0.0, CLASSES)
    with pytest.raises(ValueError):
        viz.plot_soft_targets(torch.zeros(K + 1), 1.0, CLASSES)


def test_temperatures_one_subplot_per_temperature_in_one_row_with_shared_y():
    logits = torch.tensor([4.0, 1.0, 0.0, -1.0, 2.0])
    temps = [1, 4, 10]
    fig = viz.plot_temperatures(logits, temps, CLASSES)
    assert len(fig.axes) == 3
    assert [ax.get_title().split(",")[0] for ax in fig.axes] == ["T = 1", "T = 4", "T = 10"]
    assert len({ax.get_position().y0 for ax in fig.axes}) == 1                  # one row
    assert fig.axes[1].get_shared_y_axes().joined(fig.axes[0], fig.axes[2])
    for ax, t in zip(fig.axes, temps):
        assert np.allclose([b.get_height() for b in ax.patches], torch.softmax(logits / t, 0).numpy(), atol=1e-6)
    # higher temperature -> softer targets -> higher entropy in the titles
    entropies = [float(ax.get_title().split("entropy ")[1].split()[0]) for ax in fig.axes]
    assert entropies == sorted(entropies) and entropies[0] < entropies[-1]


def test_temperatures_into_given_axes():
    fig = Figure()
    axes = fig.subplots(1, 2)
    assert viz.plot_temperatures(torch.zeros(K), [1, 2], CLASSES, axes=axes) is fig
    assert len(fig.axes) == 2
    with pytest.raises(ValueError):
        viz.plot_temperatures(torch.zeros(K), [1, 2, 3], CLASSES, axes=axes)


# -------------------------------------------------------------------------------- dark knowledge
def soft_matrix():
    m = np.full((K, K), 0.01)
    np.fill_diagonal(m, 0.9)
    m[0, 2], m[2, 0] = 0.06, 0.02          # T-shirt <-> Pullover: 0.04
    m[2, 4], m[4, 2] = 0.05, 0.07          # Pullover <-> Coat: 0.06
    return m / m.sum(1, keepdims=True)


def test_dark_knowledge_heatmap_masks_the_diagonal_and_names_the_classes():
    m = soft_matrix()
    fig = viz.plot_dark_knowledge(torch.tensor(m), CLASSES, 4.0)
    ax = fig.axes[0]
    assert len(fig.axes) == 2                                             # heatmap + colour bar
    assert "T = 4" in ax.get_title()
    assert [t.get_text() for t in ax.get_xticklabels()] == CLASSES
    assert [t.get_text() for t in ax.get_yticklabels()] == CLASSES
    assert "true" in ax.get_ylabel().lower()
    values = ax.collections[0].get_array()
    assert np.ma.getmaskarray(values).reshape(K, K).tolist() == np.eye(K, dtype=bool).tolist()
    assert np.allclose(values.reshape(K, K)[~np.eye(K, dtype=bool)], m[~np.eye(K, dtype=bool)])
    assert len(ax.texts) == K * K - K                                     # annotations, off-diagonal only
    # the colour scale is set by the off-diagonal entries, not by the large diagonal
    assert ax.collections[0].get_clim()[1] == pytest.approx(m[~np.eye(K, dtype=bool)].max())


def test_dark_knowledge_without_mask_or_annotations_into_a_given_ax():
    fig, ax = fresh_ax()
    out = viz.plot_dark_knowledge(soft_matrix(), CLASSES, 2, ax=ax, annotate=False, hide_diagonal=False)
    assert out is fig and fig.axes[0] is ax and len(fig.axes) == 2      # the colour bar is the only new axes
    assert len(ax.texts) == 0
    assert not np.ma.getmaskarray(ax.collections[0].get_array()).any()
    with pytest.raises(ValueError):
        viz.plot_dark_knowledge(np.ones((K, K + 1)), CLASSES, 2)


def test_most_similar_pairs_on_a_hand_made_matrix():
    m = soft_matrix()
    pairs = viz.most_similar_pairs(m, CLASSES, k=2)
    assert [(a, b) for a, b, _ in pairs] == [("Pullover", "Coat"), ("T-shirt", "Pullover")]
    assert pairs[0][2] == pytest.approx((m[2, 4] + m[4, 2]) / 2)
    assert pairs[1][2] == pytest.approx((m[0, 2] + m[2, 0]) / 2)
    everything = viz.most_similar_pairs(torch.tensor(m), CLASSES, k=100)
    assert len(everything) == K * (K - 1) // 2
    assert [v for *_, v in everything] == sorted((v for *_, v in everything), reverse=True)
    assert all(CLASSES.index(a) < CLASSES.index(b) for a, b, _ in everything)
    assert all(isinstance(v, float) for *_, v in everything)


# -------------------------------------------------------------------------------------- history
def test_history_plots_every_term_and_accuracy_in_percent():
    h = history()
    fig = viz.plot_history(h, smooth=5)
    loss_ax, acc_ax = fig.axes
    assert (loss_ax.get_xlabel(), acc_ax.get_xlabel()) == ("step", "epoch")
    assert "%" in acc_ax.get_ylabel() and loss_ax.get_title() and acc_ax.get_title()
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()] == ["total", "ce", "kd"]
    assert len(loss_ax.lines) == 6                                          # raw (faint) + smoothed per term
    raw, smooth = loss_ax.lines[0], loss_ax.lines[1]
    assert raw.get_alpha() < 1 and np.allclose(raw.get_ydata(), [s["total"] for s in h.steps])
    y = np.array([s["total"] for s in h.steps])
    assert smooth.get_ydata()[-1] == pytest.approx(y[-5:].mean())
    assert smooth.get_ydata()[0] == pytest.approx(y[0])
    train, test = acc_ax.lines
    assert np.allclose(train.get_ydata(), [60, 70, 80]) and np.allclose(test.get_ydata(), [50, 60, 70])
    assert list(train.get_xdata()) == [1, 2, 3] and train.get_marker() == "o"


def test_history_empty_and_without_epochs_and_chosen_terms():
    fig = viz.plot_history(History())
    assert len(fig.axes) == 2 and all(ax.get_title() for ax in fig.axes)
    assert all(len(ax.lines) == 0 for ax in fig.axes)
    fig = viz.plot_history(history(n_epochs=0), terms=["kd"])
    loss_ax, acc_ax = fig.axes
    assert len(loss_ax.lines) == 2 and len(acc_ax.lines) == 0
    fig = viz.plot_history(history(test=False))                         # test_acc None: train line only
    assert len(fig.axes[1].lines) == 1


def test_history_overlays_several_runs_into_given_axes():
    fig = Figure()
    axes = fig.subplots(1, 2)
    runs = [("scratch", history()), ("KD", history(n_steps=20, n_epochs=2)), ("new", History())]
    assert viz.plot_history(runs, axes=axes) is fig and len(fig.axes) == 2
    loss_ax, acc_ax = axes
    assert [ln.get_label() for ln in loss_ax.lines] == ["scratch", "KD"]
    assert [ln.get_label() for ln in acc_ax.lines] == ["scratch", "KD"]
    assert np.allclose(acc_ax.lines[1].get_ydata(), [50, 60])


# --------------------------------------------------------------------------------- runs and sweeps
def test_runs_bar_draws_mean_dots_with_sample_std_error_bars_and_every_seed():
    results = {"scratch": [80.0, 82.0, 81.0], "KD": [84.5, 85.5], "one seed": [83.0]}
    fig = viz.plot_runs_bar(results, title="Fashion-MNIST")
    ax = fig.axes[0]
    assert len(fig.axes) == 1 and ax.get_title() == "Fashion-MNIST" and "%" in ax.get_ylabel()
    assert not ax.patches and not [c for c in ax.containers if isinstance(c, BarContainer)]   # no length encodes
    dots = mean_dots(ax)
    assert len(dots) == 3
    means = [np.mean(v) for v in results.values()]
    stds = [np.std(v, ddof=1) if len(v) > 1 else np.nan for v in results.values()]   # one seed: no spread
    assert np.allclose([c.lines[0].get_ydata()[0] for c in dots], means)
    assert [c.lines[0].get_xdata()[0] for c in dots] == [0, 1, 2]
    segments = [c.lines[2][0].get_segments()[0] for c in dots]
    heights = [s[1][1] - s[0][1] if len(s) else np.nan for s in segments]          # a NaN std draws no bar
    assert np.allclose(heights, [2 * s for s in stds], equal_nan=True)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(results)
    dots = np.concatenate([ln.get_ydata() for ln in seed_dots(ax)])
    assert sorted(dots) == sorted(sum(results.values(), []))
    assert [t.get_text() for t in ax.texts] == ["81.00 ± 1.00", "85.00 ± 0.71", "83.00 ± –"]
    lo, hi = ax.get_ylim()
    assert 70 < lo < 80 and 85.5 < hi < 95                       # zoomed to the data: dots encode no length
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"mean ± std over seeds", "one seed"}


def test_runs_bar_jitter_is_deterministic_and_ax_is_reused():
    results = {"a": [1.0, 2.0, 3.0, 4.0]}
    xs = [seed_dots(viz.plot_runs_bar(results).axes[0])[0].get_xdata() for _ in range(2)]
    assert np.array_equal(xs[0], xs[1]) and len(set(xs[0])) == 4
    fig, ax = fresh_ax()
    assert viz.plot_runs_bar(results, ax=ax, ylabel="loss") is fig and fig.axes == [ax]
    assert ax.get_ylabel() == "loss"


def test_sweep_lines_of_means_with_bands_and_a_baseline():
    x = [1, 2, 4, 8]
    results = {"KD": [[80, 82], [83, 85], [86, 86], [84]], "FitNets": [[81], [82], [83], [84]]}
    fig = viz.plot_sweep(x, results, "temperature T", baseline={"scratch": [79, 81]}, log_x=True)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "temperature T" and "%" in ax.get_ylabel()
    kd, fit, base = ax.lines
    assert np.allclose(kd.get_ydata(), [81, 84, 86, 84]) and list(kd.get_xdata()) == x
    assert np.allclose(base.get_ydata(), [80, 80])
    assert len(ax.collections) == 2                                       # one ± std band per label
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "4", "8"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["KD", "FitNets", "scratch"]
    with pytest.raises(ValueError):
        viz.plot_sweep(x, {"KD": [[1]]}, "T")


def test_sweep_linear_into_a_given_ax():
    fig, ax = fresh_ax()
    assert viz.plot_sweep([0.1, 0.5, 0.9], {"KD": [[1, 2], [2, 3], [3, 4]]}, "alpha", ax=ax) is fig
    assert fig.axes == [ax] and ax.get_xscale() == "linear"


def test_per_class_grouped_bars_in_percent_with_highlighted_class():
    per_class = {"teacher": [0.9, 0.8, 0.7, 0.95, 0.6], "student": [85, 75, 0, 90, 55]}
    fig = viz.plot_per_class(per_class, CLASSES, highlight=2)
    ax = fig.axes[0]
    assert sum(len(c) for c in ax.containers) == 2 * K                     # + the highlight's band
    assert np.allclose([p.get_height() for p in ax.containers[0]], [90, 80, 70, 95, 60])
    assert np.allclose([p.get_height() for p in ax.containers[1]], per_class["student"])
    assert ax.get_ylim()[1] >= 100 and "%" in ax.get_ylabel()
    ticks = ax.get_xticklabels()
    assert [t.get_text() for t in ticks] == CLASSES
    assert to_rgba(ticks[2].get_color()) == to_rgba("red") and ticks[2].get_fontweight() == "bold"
    assert to_rgba(ticks[0].get_color()) != to_rgba("red")
    # bars of one class sit side by side around the class tick
    centers = [p.get_x() + p.get_width() / 2 for p in ax.containers[0]]
    assert all(c < i < c + 0.5 for i, c in enumerate(centers))


# ---------------------------------------------------------------------------------------- images
def test_images_grid_titles_and_wrong_predictions_in_red():
    images = torch.randint(0, 256, (10, 1, 8, 8), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
    preds = labels.clone()
    preds[3] = 0
    fig = viz.plot_images(images, labels, CLASSES, ncols=4, predictions=preds)
    assert len(fig.axes) == 10                                             # unused grid cells removed
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "T-shirt" and titles[3] == "Dress → T-shirt"
    assert to_rgba(fig.axes[3].title.get_color()) == to_rgba("red")
    assert to_rgba(fig.axes[0].title.get_color()) != to_rgba("red")
    img = fig.axes[0].images[0]
    assert img.get_cmap().name == "gray" and img.get_array().shape == (8, 8)
    assert img.get_array().min() == 0 and img.get_array().max() == 1     # rescaled to [0, 1]


def test_images_color_normalized_float_and_mosaic_into_a_given_ax():
    images = torch.randn(5, 3, 6, 7)
    fig = viz.plot_images(images, [0, 1, 2, 3, 4], CLASSES, ncols=8)
    assert len(fig.axes) == 5 and fig.axes[0].images[0].get_array().shape == (6, 7, 3)
    fig, ax = fresh_ax()
    assert viz.plot_images(images, [0, 1, 2, 3, 4], CLASSES, ncols=3, ax=ax) is fig
    assert fig.axes == [ax] and len(ax.images) == 1 and ax.get_title() == ""
    mosaic = np.asarray(ax.images[0].get_array())
    assert mosaic.shape == (2 * 6 + 1, 3 * 7 + 2, 3)                     # 2 rows x 3 columns, 1-px gaps
    assert mosaic.min() >= 0 and mosaic.max() <= 1
    first = (images[0] - images[0].min()) / (images[0].max() - images[0].min())
    assert np.allclose(mosaic[:6, :7], first.permute(1, 2, 0).numpy(), atol=1e-6)


# -------------------------------------------------------------------------------- gradient norms
def test_gradient_norms_log_y_one_line_per_label():
    temps = [1, 2, 4, 8]
    norms = {"with T²": [1.0, 1.0, 1.0, 1.0], "without T²": [1 / t ** 2 for t in temps]}
    fig = viz.plot_gradient_norms(temps, norms)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and "T" in ax.get_xlabel()
    assert [ln.get_label() for ln in ax.lines] == list(norms)
    assert np.allclose(ax.lines[1].get_ydata(), [1, 0.25, 0.0625, 0.015625])
    fig2, ax2 = fresh_ax()
    assert viz.plot_gradient_norms(temps, norms, ax=ax2) is fig2 and fig2.axes == [ax2]


# ------------------------------------------------------------------------------------ rendering
def test_figure_to_png_returns_png_bytes_and_every_plot_renders():
    h = history()
    figs = [viz.plot_soft_targets(torch.zeros(K), 1, CLASSES),
            viz.plot_temperatures(torch.zeros(K), [1, 2], CLASSES),
            viz.plot_dark_knowledge(soft_matrix(), CLASSES, 4),
            viz.plot_history(h), viz.plot_history(History()),
            viz.plot_runs_bar({"a": [1.0, 2.0]}), viz.plot_sweep([1, 2], {"a": [[1], [2]]}, "x", log_x=True),
            viz.plot_per_class({"a": [0.5] * K}, CLASSES, highlight=0),
            viz.plot_images(torch.zeros(3, 1, 4, 4), [0, 1, 2], CLASSES),
            viz.plot_gradient_norms([1, 2], {"a": [1.0, 0.5]})]
    for fig in figs:
        png = viz.figure_to_png(fig, dpi=30)
        assert isinstance(png, bytes) and png.startswith(b"\x89PNG\r\n\x1a\n")
    # a highlighted tick label keeps its colour through a real draw
    assert to_rgba(figs[7].axes[0].get_xticklabels()[0].get_color()) == to_rgba("red")


def test_importing_viz_changes_no_global_state():
    # the raw dict values: reading rcParams["backend"] the ordinary way would itself resolve the backend
    code = ("import sys, matplotlib; r = matplotlib.rcParams; "
            "snap = lambda: {k: dict.__getitem__(r, k) for k in dict.keys(r)}; before = snap(); "
            "import kd_lab.viz; assert snap() == before and len(before) > 100; "
            "assert 'matplotlib.pyplot' not in sys.modules and 'seaborn' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ------------------------------------------------------------------------------------- DML peers
def dml_history():
    """Three peers; epoch 2 was not measured (no peer metrics), as with eval_every > 1."""
    def measured(e, base):
        return {"epoch": e, "train_acc": 0.5, "test_acc": base, "acc_0": base, "acc_1": base - 0.05,
                "acc_2": base - 0.1, "acc_ensemble": base + 0.02, "agree_0_1": 0.6 + 0.1 * e,
                "agree_0_2": 0.5 + 0.1 * e, "kl_0_1": 0.3, "kl_0_2": 0.4}
    epochs = [measured(1, 0.6), {"epoch": 2, "train_acc": None, "test_acc": None}, measured(3, 0.8)]
    return History(method="dml", config={"peers": "student,student-tiny,student"}, epochs=epochs)


def test_peers_plot_each_peer_the_ensemble_and_the_agreement_in_percent():
    fig = viz.plot_peers(dml_history())
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    acc_ax, agree_ax = fig.axes
    labels = [ln.get_label() for ln in acc_ax.lines]
    assert labels == ["peer 0 (student)", "peer 1 (student-tiny)", "peer 2 (student)", "ensemble"]
    assert np.allclose(acc_ax.lines[0].get_xdata(), [1, 3])                  # the unmeasured epoch is skipped
    assert np.allclose(acc_ax.lines[1].get_ydata(), [55, 75])
    assert np.allclose(acc_ax.lines[3].get_ydata(), [62, 82]) and acc_ax.lines[3].get_linestyle() == "--"
    assert [ln.get_label() for ln in agree_ax.lines] == ["peer 0 vs peer 1", "peer 0 vs peer 2"]
    assert np.allclose(agree_ax.lines[0].get_ydata(), [70, 90]) and np.allclose(agree_ax.lines[1].get_ydata(), [60, 80])
    assert acc_ax.get_title() == "Test accuracy of each peer" and agree_ax.get_title() == "Agreement with peer 0"
    assert "%" in acc_ax.get_ylabel() and "%" in agree_ax.get_ylabel() and agree_ax.get_xlabel() == "epoch"
    assert acc_ax.get_legend() is not None and agree_ax.get_legend() is not None


def test_peers_plot_into_given_axes_and_without_measurements():
    fig = Figure()
    axes = fig.subplots(1, 2)
    assert viz.plot_peers(History(), axes=axes) is fig and len(fig.axes) == 2
    for ax in axes:
        assert not ax.lines and "no measured epoch yet" in [t.get_text() for t in ax.texts]
    unnamed = History(epochs=[{"epoch": 1, "acc_0": 0.5, "acc_1": 0.4}])      # no peers in the config
    acc_ax, agree_ax = viz.plot_peers(unnamed).axes
    assert [ln.get_label() for ln in acc_ax.lines] == ["peer 0", "peer 1"] and not agree_ax.lines
    assert viz.figure_to_png(viz.plot_peers(dml_history()), dpi=30).startswith(b"\x89PNG")


# ------------------------------------------------------------------------------- relations (RKD)
def embedding_batch(seed=0, n=12, d=6):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g)


def image_data(ax):
    return torch.as_tensor(np.asarray(ax.images[0].get_array()), dtype=torch.float32)


def test_relation_matrices_teacher_student_and_difference_sorted_by_class():
    from kd_lab.losses import rkd_distance_matrix
    s, t = embedding_batch(0, 12, 4), embedding_batch(1, 12, 8)
    labels = torch.tensor([2, 0, 1, 0, 2, 1, 0, 2, 1, 0, 1, 2])
    fig = viz.plot_relation_matrices(s, t, labels, CLASSES)
    heat = [ax for ax in fig.axes if ax.images]
    assert len(heat) == 3 and len(fig.axes) == 6                          # three heatmaps with colour bars
    order = torch.argsort(labels, stable=True)
    d_t, d_s = rkd_distance_matrix(t[order]), rkd_distance_matrix(s[order])
    torch.testing.assert_close(image_data(heat[0]), d_t)
    torch.testing.assert_close(image_data(heat[1]), d_s)
    torch.testing.assert_close(image_data(heat[2]), d_s - d_t)
    assert heat[0].get_title().startswith("teacher") and heat[1].get_title().startswith("student")
    assert f"mean |Δ| = {float((d_s - d_t).abs().mean()):.3f}" in heat[2].get_title()
    assert heat[0].images[0].get_clim() == heat[1].images[0].get_clim()  # one colour scale for both
    lo, hi = heat[2].images[0].get_clim()
    assert lo == pytest.approx(-hi)                                       # the difference is centred on 0
    assert [t.get_text() for t in heat[0].get_xticklabels()] == CLASSES[:3]
    assert np.allclose(heat[0].get_xticks(), [1.5, 5.5, 9.5])             # block centres of 4 images each


def test_relation_matrices_into_given_axes_and_bad_input():
    fig = Figure()
    axes = fig.subplots(1, 3)
    e = embedding_batch(2, 5, 3)
    out = viz.plot_relation_matrices(e, e, [0, 0, 1, 1, 1], CLASSES, axes=axes, student_name="RKD student")
    assert out is fig and "RKD student" in axes[1].get_title()
    assert np.allclose(image_data(axes[2]), 0, atol=1e-6)                 # identical embeddings: no difference
    with pytest.raises(ValueError, match="4 labels for 5 student and 5 teacher embeddings"):
        viz.plot_relation_matrices(e, e, [0, 0, 1, 1], CLASSES)
    with pytest.raises(ValueError, match="needs 3 axes, got 2"):
        viz.plot_relation_matrices(e, e, [0] * 5, CLASSES, axes=axes[:2])


def test_angle_matrix_is_the_anchor_slice_of_the_angle_tensor():
    from kd_lab.losses import rkd_angle_tensor
    e = embedding_batch(3, 9, 5)
    fig = viz.plot_angle_matrix(e, 4)
    ax = fig.axes[0]
    a = image_data(ax)
    torch.testing.assert_close(a, rkd_angle_tensor(e)[:, 4, :])
    assert torch.all(a[4] == 0) and torch.all(a[:, 4] == 0)               # no direction from x_j to itself
    assert torch.allclose(a.diagonal()[torch.arange(9) != 4], torch.ones(8))   # angle between x_i and itself
    assert ax.images[0].get_clim() == (-1, 1) and "anchor j = 4" in ax.get_title()
    assert ax.get_xlabel() == "k" and ax.get_ylabel() == "i"


def test_angle_matrix_with_classes_into_a_given_ax_and_bad_anchor():
    fig, ax = fresh_ax()
    e = embedding_batch(4, 6, 3)
    assert viz.plot_angle_matrix(e, 0, ax=ax, labels=[1, 1, 1, 3, 3, 3], classes=CLASSES, title="mine") is fig
    assert ax.get_title() == "mine" and [t.get_text() for t in ax.get_yticklabels()] == ["Trouser", "Dress"]
    with pytest.raises(ValueError, match=r"anchor must be in \[0, 5\] for a batch of 6, got 6"):
        viz.plot_angle_matrix(e, 6)


def test_embedding_2d_one_scatter_per_class_at_the_given_points():
    points = torch.arange(16, dtype=torch.float32).view(8, 2)
    labels = torch.tensor([0, 3, 0, 3, 1, 1, 0, 3])
    fig = viz.plot_embedding_2d(points, labels, CLASSES)
    ax = fig.axes[0]
    assert [c.get_label() for c in ax.collections] == ["T-shirt", "Trouser", "Dress"]
    for coll, cls in zip(ax.collections, (0, 1, 3)):
        assert np.allclose(coll.get_offsets(), points[labels == cls].numpy())
        assert np.allclose(coll.get_facecolor()[0][:3], to_rgba(f"C{cls}")[:3])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["T-shirt", "Trouser", "Dress"]
    assert ax.get_xlabel() == "PC 1" and ax.get_ylabel() == "PC 2"
    fig2, ax2 = fresh_ax()
    assert viz.plot_embedding_2d(points, labels, CLASSES, ax=ax2, title="after") is fig2 and ax2.get_title() == "after"
    with pytest.raises(ValueError, match=r"points_2d must be \(N, 2\) with N = 8 labels, got \(8, 3\)"):
        viz.plot_embedding_2d(torch.zeros(8, 3), labels, CLASSES)


def rkd_history(values, label="rkd"):
    epochs = [{"epoch": i + 1, "train_acc": 0.5, "test_acc": 0.5 if v is not None else None,
               **({"relation_agreement": v} if v is not None else {})} for i, v in enumerate(values)]
    return History(method=label, epochs=epochs)


def test_relation_agreement_against_epoch_skips_unmeasured_epochs():
    fig = viz.plot_relation_agreement(rkd_history([0.2, None, 0.6, 0.8]))
    ax = fig.axes[0]
    assert len(ax.lines) == 1 and ax.lines[0].get_label() == "relation_agreement"
    assert np.allclose(ax.lines[0].get_xdata(), [1, 3, 4]) and np.allclose(ax.lines[0].get_ydata(), [0.2, 0.6, 0.8])
    assert ax.get_title() == "Relation agreement with the teacher" and ax.get_xlabel() == "epoch"
    runs = [("RKD-D", rkd_history([0.3, 0.5])), ("RKD-A", rkd_history([0.1, 0.4]))]
    fig2, ax2 = fresh_ax()
    assert viz.plot_relation_agreement(runs, ax=ax2) is fig2
    assert [ln.get_label() for ln in ax2.lines] == ["RKD-D", "RKD-A"]
    empty = viz.plot_epoch_metrics(History(), ["relation_agreement", "other"]).axes[0]
    assert not empty.lines and "no measured epoch yet" in [t.get_text() for t in empty.texts]
    for f in (fig, fig2):
        assert viz.figure_to_png(f, dpi=30).startswith(b"\x89PNG")


def test_epoch_metrics_one_line_per_key_labelled_by_default():
    h = History(epochs=[{"epoch": 1, "a": 0.1, "b": 2.0}, {"epoch": 2, "a": 0.3, "b": None}])
    ax = viz.plot_epoch_metrics(h, ["a", "b"]).axes[0]
    assert [ln.get_label() for ln in ax.lines] == ["a", "b"] and ax.get_ylabel() == "a, b"
    assert np.allclose(ax.lines[0].get_ydata(), [0.1, 0.3]) and np.allclose(ax.lines[1].get_xdata(), [1])
    assert ax.get_title() == "Measured with the test accuracy"


# --------------------------------------------------------------------------------- package layout
VIZ_FAMILIES = {    # module of kd_lab.viz -> (its lesson, its public plots)
    "_common": ("every lesson", {"plot_history", "plot_epoch_metrics", "plot_runs_bar", "figure_to_png",
                                 "plot_live_view"}),
    "response": ("lesson 01", {"plot_soft_targets", "plot_temperatures", "plot_dark_knowledge",
                               "plot_dark_knowledge_row", "most_similar_pairs", "plot_gradient_norms", "plot_sweep",
                               "plot_per_class", "plot_logit_view"}),
    "effects": ("lesson 01", {"plot_paired_effects"}),
    "label_free": ("lesson 02", {"plot_images", "plot_confidence_histogram", "plot_class_balance",
                                 "plot_mining_grid", "plot_unlabeled_curve", "plot_pseudo_label_view"}),
    "mutual": ("lesson 03", {"plot_peers", "plot_peer_view", "plot_paired_seeds"}),
    "feature": ("lesson 04", {"plot_margin_histograms", "plot_margin_agreement", "plot_partial_l2",
                              "plot_feature_maps", "plot_stage_distances", "plot_feature_view"}),
    "relation": ("lesson 05", {"plot_relation_matrices", "plot_angle_matrix", "plot_embedding_2d",
                               "plot_relation_agreement", "plot_relation_view"}),
    "comparison": ("lesson 06", {"plot_comparison"}),
}


@pytest.mark.parametrize("family", list(VIZ_FAMILIES))
def test_each_viz_family_defines_its_lessons_plots_and_viz_reexports_them(family):
    lesson, names = VIZ_FAMILIES[family]
    module = importlib.import_module(f"kd_lab.viz.{family}")
    assert lesson in module.__doc__
    assert sorted(module.__all__) == sorted(names)
    for name in module.__all__:
        fn = getattr(module, name)
        assert callable(fn) and fn.__module__ == module.__name__, f"{name} is not defined in {module.__name__}"
        assert getattr(viz, name) is fn and name in viz.__all__


def test_viz_exports_exactly_the_union_of_its_family_modules():
    assert_exports_union_of_families(viz, VIZ_FAMILIES)


def test_a_live_view_of_an_unknown_kind_names_the_known_ones():
    with pytest.raises(ValueError, match=r"kind 'nope'.*'logits'"):
        viz.plot_live_view({"kind": "nope"})


def test_the_logit_view_refuses_logits_that_do_not_match_the_classes():
    view = {"kind": "logits", "student": np.zeros((2, 3)), "teacher": np.zeros((2, 3)), "labels": [0, 1],
            "classes": ["a", "b"], "temperature": 4.0}
    with pytest.raises(ValueError, match="2 classes"):
        viz.plot_live_view(view)


def test_paired_seeds_joins_each_seeds_two_values_and_marks_mean_and_spread():
    alone, dml = {0: 83.0, 1: 84.5, 2: 82.0}, {0: 83.4, 1: 83.6, 2: 83.5}
    fig = viz.plot_paired_seeds({"student": (alone, dml), "ensemble": ({0: 84.0, 1: 85.0}, {0: 84.2, 1: 84.9, 5: 1.0})},
                                title="spread")
    ax = fig.axes[0]
    lines = [ln for ln in ax.lines if ln.get_color() == "grey"]
    assert [tuple(ln.get_ydata()) for ln in lines[:3]] == [(83.0, 83.4), (84.5, 83.6), (82.0, 83.5)]
    assert len(lines) == 5 and tuple(lines[3].get_xdata()) == (3, 4)     # seed 5 has no pair: no line
    means = [c for c in ax.containers]                                   # one error bar per condition and group
    assert len(means) == 4
    y = means[0].lines[0].get_ydata()[0]
    assert y == pytest.approx(sum(alone.values()) / 3)
    top = means[0].lines[1][1].get_ydata()[0]                            # the upper cap: mean + sample std
    assert top == pytest.approx(y + float(np.std(list(alone.values()), ddof=1)))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["student\nalone", "student\nDML", "ensemble\nalone",
                                                            "ensemble\nDML"]
    assert ax.get_title() == "spread" and ax.get_ylabel() == "test accuracy (%)"
