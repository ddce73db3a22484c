"""What every lesson's plots share: figures without pyplot, colours, numbers from tensors, and the plots of
every lesson — the loss and accuracy curves of a training run (:func:`plot_history`, drawn by every
``TrainingPanel``), the numbers a method measures each epoch (:func:`plot_epoch_metrics`), mean ± std over
seeds (:func:`plot_runs_bar`) and PNG rendering for the widgets (:func:`figure_to_png`).

Figures are built with ``matplotlib.figure.Figure`` only, never ``pyplot``.
"""
from __future__ import annotations

from io import BytesIO

import numpy as np
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..stats import format_mean_std, mean_std

__all__ = ["plot_history", "plot_epoch_metrics", "plot_runs_bar", "figure_to_png"]

BAR_COLOR, TOP_COLOR = "tab:blue", "tab:orange"


# ----------------------------------------------------------------------------------------- helpers
def _np(x, dtype=np.float64) -> np.ndarray:
    """A numpy array from a torch tensor (detached, on the CPU), a numpy array or a list."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _fig_ax(ax, figsize):
    """``(figure, ax)``: a new constrained-layout figure with one axes, or ``ax`` and its figure."""
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _mean_std(values) -> tuple[float, float]:
    """:func:`kd_lab.stats.mean_std` of a tensor, array or list: ddof=1; NaN std for one value (no error bar)."""
    return mean_std(_np(values).ravel().tolist())


def _moving_average(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` values (fewer at the start); same length as ``y``."""
    if window <= 1 or y.size == 0:
        return y
    c = np.concatenate([[0.0], np.cumsum(y)])
    idx = np.arange(1, y.size + 1)
    start = np.maximum(idx - window, 0)
    return (c[idx] - c[start]) / (idx - start)


def _class_ticks(ax, classes, rotation=45) -> None:
    ax.set_xticks(np.arange(len(classes)))
    ax.set_xticklabels(list(classes), rotation=rotation, ha="right" if rotation else "center",
                       rotation_mode="anchor")


def _heatmap(ax, m, title, cmap, vmin, vmax):
    """``m`` (H, W) as an image with its colour bar and ``title``; returns the image."""
    im = ax.imshow(m, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.figure.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(title, fontsize=10)
    return im


def _series(history, key, scale=1.0, where="steps", x="step"):
    """``(x, y)`` arrays of ``key`` over the history's steps or epochs, skipping missing/None values."""
    rows = [r for r in getattr(history, where) if r.get(key) is not None]
    return np.array([r[x] for r in rows], dtype=float), np.array([r[key] for r in rows], dtype=float) * scale


def _finish(ax, empty_text):
    """A legend where lines were drawn, otherwise ``empty_text`` in the middle of the axes."""
    if ax.lines:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, empty_text, transform=ax.transAxes, ha="center", va="center", color="gray")


# ------------------------------------------------------------------------------------- training
def _history_axes(axes):
    if axes is None:
        fig = Figure(figsize=(11, 3.8), layout="constrained")
        axes = fig.subplots(1, 2)
    loss_ax, acc_ax = axes
    loss_ax.set(title="Training loss", xlabel="step", ylabel="loss")
    acc_ax.set(title="Accuracy", xlabel="epoch", ylabel="accuracy (%)")
    acc_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return loss_ax, acc_ax


def _plot_one_run(loss_ax, acc_ax, history, terms, smooth):
    for i, term in enumerate(terms or ["total", *history.term_names]):
        x, y = _series(history, term)
        if x.size:
            loss_ax.plot(x, y, color=f"C{i}", alpha=0.25, lw=0.8)                    # raw, faint
            loss_ax.plot(x, _moving_average(y, smooth), color=f"C{i}", label=term)   # smoothed
    for key, name in (("train_acc", "train"), ("test_acc", "test")):
        x, y = _series(history, key, 100.0, "epochs", "epoch")
        if x.size:
            acc_ax.plot(x, y, marker="o", label=name)


def _plot_many_runs(loss_ax, acc_ax, runs, smooth):
    for i, (label, h) in enumerate(runs):
        x, y = _series(h, "total")
        if x.size:
            loss_ax.plot(x, _moving_average(y, smooth), color=f"C{i}", label=label)
        x, y = _series(h, "test_acc", 100.0, "epochs", "epoch")
        if x.size:
            acc_ax.plot(x, y, marker="o", color=f"C{i}", label=label)
    loss_ax.set_title("Training loss (total)")
    acc_ax.set_title("Test accuracy")


def plot_history(history, axes=None, terms=None, smooth=10):
    """Loss terms against step (left) and train/test accuracy in % against epoch (right).

    ``history`` is one :class:`kd_lab.train.History`, or a list of ``(label, History)`` to overlay runs
    (then the smoothed total loss and the test accuracy of each run, one line per run). Losses are
    smoothed by a moving average over ``smooth`` steps, the raw values drawn faintly behind.
    """
    loss_ax, acc_ax = _history_axes(axes)
    if hasattr(history, "steps"):
        _plot_one_run(loss_ax, acc_ax, history, terms, smooth)
    else:
        _plot_many_runs(loss_ax, acc_ax, history, smooth)
    _finish(loss_ax, "no steps yet")
    _finish(acc_ax, "no finished epoch yet")
    return loss_ax.figure


def plot_epoch_metrics(history, keys, ax=None, ylabel=None, title="Measured with the test accuracy"):
    """Numbers a method adds to the epoch records (``Method.epoch_metrics``) against epoch, one line per key;
    ``history`` is one History or a list of ``(label, History)`` (one line per run and key). The y label
    defaults to the keys."""
    fig, ax = _fig_ax(ax, (5.5, 3.6))
    ylabel = ", ".join(keys) if ylabel is None else ylabel
    runs = [("", history)] if hasattr(history, "epochs") else list(history)
    for i, (label, h) in enumerate(runs):
        for j, key in enumerate(keys):
            x, y = _series(h, key, where="epochs", x="epoch")
            name = label if label and len(keys) == 1 else " · ".join(p for p in (label, key) if p)
            if x.size:
                ax.plot(x, y, marker="o", color=f"C{i * len(keys) + j}", label=name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    _finish(ax, "no measured epoch yet")
    return fig


# ------------------------------------------------------------------------------ comparing runs
def _zoom_and_label(ax, results, means, stds) -> None:
    """y limits around the seeds and the error bars (not from 0); "mean ± std" above each bar."""
    values = np.concatenate([_np(v).ravel() for v in results.values()] + [means - stds, means + stds])
    lo, hi = np.nanmin(values), np.nanmax(values)
    span = max(hi - lo, 1e-3 * max(abs(hi), 1.0))
    ax.set_ylim(lo - 0.25 * span, hi + 0.3 * span)
    for i, (m, s) in enumerate(zip(means, stds)):
        ax.text(i, m + np.nan_to_num(s) + 0.05 * span, format_mean_std(m, s), ha="center", va="bottom", fontsize=8)


def plot_runs_bar(results, ax=None, ylabel="test accuracy (%)", title=None):
    """Mean ± std (ddof=1) bar per label, each seed as a black dot; y zoomed to the data."""
    fig, ax = _fig_ax(ax, (max(4.0, 1.3 * len(results) + 1.5), 3.8))
    labels = list(results)
    stats = np.array([_mean_std(results[k]) for k in labels], dtype=float).reshape(-1, 2)
    means, stds = stats[:, 0], stats[:, 1]
    x = np.arange(len(labels))
    ax.bar(x, means, yerr=stds, capsize=5, color=[f"C{i}" for i in x], alpha=0.75)
    for i, label in enumerate(labels):
        seeds = _np(results[label]).ravel()
        jitter = np.linspace(-0.15, 0.15, seeds.size) if seeds.size > 1 else np.zeros(seeds.size)
        ax.plot(i + jitter, seeds, "o", color="black", ms=4, zorder=3)    # deterministic jitter
    if labels:
        _zoom_and_label(ax, results, means, stds)
    tilt = len(labels) > 3
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=20 if tilt else 0, ha="right" if tilt else "center")
    ax.set_ylabel(ylabel)
    ax.set_title(title if title is not None else "mean ± std over seeds (dots: single seeds)")
    return fig


# ------------------------------------------------------------------------------------- rendering
def figure_to_png(fig, dpi=80) -> bytes:
    """PNG bytes of ``fig`` rendered with Agg (for ``ipywidgets.Image``)."""
    if type(fig.canvas) is FigureCanvasBase:   # a bare Figure; leave a pyplot/ipympl canvas alone
        FigureCanvasAgg(fig)
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
