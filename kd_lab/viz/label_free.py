"""Plots of lesson 02, label-free distillation (``notebooks/02_ssld.ipynb``: SSLD, Cui et al. 2021): the
teacher's confidence on the unlabeled pool, the class balance of the mined set, the images kept and rejected
per class (drawn by :func:`plot_images`), accuracy against the amount of unlabeled data, and the training
panel's live view of the pseudo-labels and the student's predictions on the unlabeled images.
"""
from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import NullLocator

from ._common import BAR_COLOR, TOP_COLOR, _class_ticks, _fig_ax, _np, live_view
from .response import plot_sweep

__all__ = ["plot_images", "plot_confidence_histogram", "plot_class_balance", "plot_mining_grid",
           "plot_unlabeled_curve", "plot_pseudo_label_view"]

KEPT_COLOR, REJECTED_COLOR = "tab:blue", "tab:gray"


# ---------------------------------------------------------------------------------------- images
def _display_images(images) -> np.ndarray:
    """(N, H, W) or (N, H, W, 3) floats in [0, 1], each image rescaled on its own."""
    x = _np(images)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[0] == 0:
        raise ValueError(f"images must be (N, C, H, W) with N > 0 and C in (1, 3), got {x.shape}")
    lo = x.min(axis=(1, 2, 3), keepdims=True)
    hi = x.max(axis=(1, 2, 3), keepdims=True)
    x = (x - lo) / np.where(hi > lo, hi - lo, 1.0)
    return x[:, 0] if x.shape[1] == 1 else x.transpose(0, 2, 3, 1)


def _mosaic(x: np.ndarray, ncols: int, pad: int = 1) -> np.ndarray:
    """The images in a grid of ``ncols`` columns, ``pad`` white pixels between them."""
    n, h, w = x.shape[:3]
    nrows = math.ceil(n / ncols)
    out = np.ones((nrows * (h + pad) - pad, ncols * (w + pad) - pad, *x.shape[3:]))
    for i, img in enumerate(x):
        r, c = divmod(i, ncols)
        out[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = img
    return out


def _title_cell(ax, classes, label, prediction) -> None:
    wrong = prediction is not None and prediction != label
    title = f"{classes[label]} → {classes[prediction]}" if wrong else classes[label]
    ax.set_title(title, fontsize=7, color="red" if wrong else "black")


def plot_images(images, labels, classes, ncols=8, ax=None, predictions=None):
    """A grid of images titled by class ("true → predicted" in red when a prediction is wrong, as a legend
    below the grid says).

    With ``ax`` given, the grid is drawn as one mosaic image inside it, without titles.
    """
    x = _display_images(images)
    cmap = "gray" if x.ndim == 3 else None
    ncols = max(1, min(ncols, len(x)))
    if ax is not None:
        ax.imshow(_mosaic(x, ncols), cmap=cmap, vmin=0, vmax=1)
        ax.set_axis_off()
        return ax.figure
    nrows = math.ceil(len(x) / ncols)
    fig = Figure(figsize=(1.3 * ncols, 1.45 * nrows), layout="constrained")
    grid = fig.subplots(nrows, ncols, squeeze=False).ravel()
    y = None if labels is None else _np(labels, np.int64).ravel()
    p = None if predictions is None else _np(predictions, np.int64).ravel()
    for a in grid[len(x):]:
        a.remove()                                                   # unused cells of the last row
    for i, a in enumerate(grid[: len(x)]):
        a.imshow(x[i], cmap=cmap, vmin=0, vmax=1)
        a.set_axis_off()
        if y is not None:
            _title_cell(a, classes, int(y[i]), None if p is None else int(p[i]))
    if y is not None and p is not None and (y[: len(x)] != p[: len(x)]).any():
        fig.legend(handles=[Patch(color="red", label="red title: wrong prediction, true → predicted class")],
                   loc="outside lower center", fontsize=8, frameon=False)
    return fig


# ----------------------------------------------------------------------------------------- mining
def plot_confidence_histogram(confidence, kept, ax=None, bins=40):
    """Histogram of the teacher's confidence (its largest softmax probability) on the unlabeled pool, the images
    SSLD's mining kept stacked on the rejected ones; log y, since a good teacher is sure of most images."""
    c, k = _np(confidence).ravel(), _np(kept, bool).ravel()
    if c.size != k.size:
        raise ValueError(f"confidence has {c.size} values but kept has {k.size}")
    fig, ax = _fig_ax(ax, (6.0, 3.6))
    edges = np.linspace(0.0, 1.0, bins + 1)
    ax.hist([c[~k], c[k]], bins=edges, stacked=True, color=[REJECTED_COLOR, KEPT_COLOR],
            label=[f"rejected ({int((~k).sum()):,})", f"kept ({int(k.sum()):,})"])
    ax.set_yscale("log")
    ax.set(xlim=(0, 1), xlabel="teacher's confidence (largest softmax probability)", ylabel="images (log)",
           title="Teacher's confidence on the unlabeled pool")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def plot_class_balance(kept, classes, available=None, correct=None, k=None, ax=None):
    """Images kept per class (bars), with optionally the pool's candidates per class (outlines), how many kept
    teacher labels are right (hatched: the wrong ones) and the quota ``k`` (dashed line)."""
    kept_n = _np(kept).ravel()
    for name, v in (("kept", kept_n), ("available", available), ("correct", correct)):
        if v is not None and _np(v).size != len(classes):
            raise ValueError(f"{name} has {_np(v).size} counts for {len(classes)} classes")
    fig, ax = _fig_ax(ax, (max(6.0, 0.7 * len(classes)), 3.8))
    x = np.arange(len(classes))
    if available is not None:
        ax.bar(x, _np(available).ravel(), 0.8, fill=False, edgecolor=REJECTED_COLOR, label="candidates in the pool")
    ax.bar(x, kept_n, 0.8, color=KEPT_COLOR, label="kept")
    if correct is not None:
        wrong = kept_n - _np(correct).ravel()
        ax.bar(x, wrong, 0.8, bottom=kept_n - wrong, color="tab:red", hatch="//", alpha=0.6,
               label="kept, teacher's label wrong")
    if k is not None:
        ax.axhline(k, color="black", ls="--", lw=1, label=f"k = {k}")
    _class_ticks(ax, classes)
    top = max([*kept_n, *(_np(available).ravel() if available is not None else []), k or 0, 1])
    ax.set(ylim=(0, 1.3 * top), ylabel="images", title="Class balance of the mined set")
    ax.legend(fontsize=8, loc="upper center", ncols=4)            # in the free band above the bars
    return fig


def _grid_cell(ax, images, text) -> None:
    if images is None or len(images) == 0:
        ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes, color="gray")
        ax.set_axis_off()
    else:
        plot_images(images, None, None, ncols=len(images), ax=ax)
        ax.images[-1].set_interpolation("nearest")        # crisp 28-pixel images, and a PNG a third the size
    ax.set_title(text, fontsize=8, loc="left")


def plot_mining_grid(kept_images, rejected_images, classes, kept_title="kept: most confident",
                     rejected_title="rejected: most confident below the cut"):
    """One row per class: images the mining kept (left) and rejected (right), ``kept_images[c]`` and
    ``rejected_images[c]`` being (n, C, H, W) tensors (possibly empty)."""
    if not len(kept_images) == len(rejected_images) == len(classes):
        raise ValueError(f"need one entry per class ({len(classes)}), got {len(kept_images)} kept and "
                         f"{len(rejected_images)} rejected")
    fig = Figure(figsize=(10, 0.8 * len(classes) + 0.4), layout="constrained")
    axes = fig.subplots(len(classes), 2, squeeze=False)
    for c, name in enumerate(classes):
        _grid_cell(axes[c, 0], kept_images[c], f"{name} · {kept_title}")
        _grid_cell(axes[c, 1], rejected_images[c], f"{name} · {rejected_title}")
    return fig


# ------------------------------------------------------------------------------ unlabeled data
def plot_unlabeled_curve(amounts, results, baseline=None, ax=None, xlabel="unlabeled images used"):
    """Test accuracy (mean ± std over seeds) against the number of unlabeled images, one line per label of
    ``results`` (label -> one list of seed accuracies per amount); ``baseline`` runs as dashed bands.
    The x axis is linear up to the smallest non-zero amount and logarithmic beyond (SSLD's claim: more helps)."""
    fig = plot_sweep(amounts, results, xlabel, ax=ax, baseline=baseline)
    ax = fig.axes[0] if ax is None else ax
    positive = _np(amounts)[_np(amounts) > 0]
    if positive.size:
        ax.set_xscale("symlog", linthresh=float(positive.min()))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(_np(amounts).ravel())
        ax.set_xticklabels([f"{v:,.0f}" for v in _np(amounts).ravel()])
    ax.set_title("Test accuracy against the amount of unlabeled data (mean ± std over seeds)")
    return fig


# ------------------------------------------------------------------------------------ live view
@live_view("pseudo_labels")
def plot_pseudo_label_view(view):
    """Lesson 02's live view (:meth:`kd_lab.methods.SSLD.live_view`) on unlabeled images the student trains on:
    the class balance of the teacher's pseudo-labels against the images' hidden true labels (left), and per
    hidden class how often the pseudo-label is right (grey bars: the teacher's precision, fixed) and how often
    the student is right now (blue) and agrees with the pseudo-label (orange) (right). ``view`` holds
    ``pseudo``, ``hidden`` and ``student`` (N,) class indices and ``classes``."""
    pseudo, hidden, student = (_np(view[k], int).ravel() for k in ("pseudo", "hidden", "student"))
    classes = list(view["classes"])
    c, n, x = len(classes), pseudo.size, np.arange(len(classes))
    fig = Figure(figsize=(13, 4.2), layout="constrained")
    ax_balance, ax_right = fig.subplots(1, 2)
    width = 0.4
    ax_balance.bar(x - width / 2, np.bincount(pseudo, minlength=c), width, color="0.55", label="teacher's pseudo-label")
    ax_balance.bar(x + width / 2, np.bincount(hidden, minlength=c), width, color=BAR_COLOR, label="hidden true label")
    ax_balance.set(ylabel="images", title=f"class balance of {n} unlabeled images ({view.get('unlabeled', '')})")
    _class_ticks(ax_balance, classes)
    ax_balance.legend(fontsize=7)
    per_class = {name: np.array([100 * (a[hidden == k] == b[hidden == k]).mean() if (hidden == k).any() else np.nan
                                 for k in range(c)]) for name, (a, b) in
                 {"teacher": (pseudo, hidden), "student": (student, hidden), "agree": (student, pseudo)}.items()}
    ax_right.bar(x, per_class["teacher"], 0.7, color="0.8",
                 label=f"pseudo-label right: {100 * (pseudo == hidden).mean():.1f} %")
    ax_right.plot(x, per_class["student"], "o", color=BAR_COLOR,
                  label=f"student right: {100 * (student == hidden).mean():.1f} %")
    ax_right.plot(x, per_class["agree"], "D", color=TOP_COLOR, ms=4,
                  label=f"student = pseudo-label: {100 * (student == pseudo).mean():.1f} %")
    ax_right.set(ylim=(0, 105), ylabel="% of the images of the class", title="per hidden class")
    _class_ticks(ax_right, classes)
    ax_right.legend(fontsize=7, loc="lower left")
    fig.suptitle("Live view: the pseudo-labels SSLD trains on, and the student", fontsize=10)
    return fig
