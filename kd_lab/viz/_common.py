"""What every lesson's plots share: figures without pyplot, colours, numbers from tensors, and the plots of
every lesson — the loss and accuracy curves of a training run (:func:`plot_history`, drawn by every
``TrainingPanel``), the numbers a method measures each epoch (:func:`plot_epoch_metrics`), mean ± std over
seeds (:func:`plot_runs_bar`), PNG rendering for the widgets (:func:`figure_to_png`) and a training panel's
live view (:func:`plot_live_view`, drawn by the plot a family registers for its kind with :func:`live_view`).

Honest figures: a comparison of close accuracies is drawn as dots with error bars (a bar's length would claim
a ratio the numbers do not have, once its axis does not start at 0); a y axis never zooms below a minimum
span (:func:`_min_y_span`: one point or a flat line does not become a cliff); a loss plot says that its terms
are the weighted ones the trainer sums, and by what; every coloured mark has a legend entry.

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

__all__ = ["plot_history", "plot_epoch_metrics", "plot_runs_bar", "figure_to_png", "plot_live_view"]

BAR_COLOR, TOP_COLOR, SEED_COLOR = "tab:blue", "tab:orange", "0.45"
PERCENT_SPAN = 1.0      # a y axis in % spans at least 1 percentage point
RELATIVE_SPAN = 0.05    # any other linear y axis at least 5 % of its largest |value| (1 when every value is 0)


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


def _finish(ax, empty_text, legend_title=None):
    """A legend (titled ``legend_title``) where lines were drawn, otherwise ``empty_text`` in the middle of the axes."""
    if ax.lines:
        ax.legend(fontsize=8, title=legend_title, title_fontsize=8)
    else:
        ax.text(0.5, 0.5, empty_text, transform=ax.transAxes, ha="center", va="center", color="gray")


def _min_span(ax, lo: float, hi: float) -> float:
    """The smallest y span worth drawing for values in [lo, hi]: :data:`PERCENT_SPAN` when the y label says %,
    else :data:`RELATIVE_SPAN` of the largest |value| (1 when both are 0)."""
    if "%" in ax.get_ylabel():
        return PERCENT_SPAN
    return RELATIVE_SPAN * max(abs(lo), abs(hi)) or 1.0


def _min_y_span(ax) -> None:
    """Widen a linear y axis to at least :func:`_min_span`, centred on what is drawn, where matplotlib's
    automatic range would be tinier: one point or a flat line would read "10.35–10.40", a cliff of noise.
    Call it after the y label is set; an axis without data, or a log axis, is left alone."""
    lo, hi = ax.dataLim.intervaly
    if ax.get_yscale() != "linear" or not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        return
    span = _min_span(ax, lo, hi)
    if hi - lo < span:
        half = max(span, 1.1 * (hi - lo)) / 2
        ax.set_ylim((lo + hi) / 2 - half, (lo + hi) / 2 + half)


def _epoch_axis(ax) -> None:
    """Integer epoch ticks; after a single epoch, the x axis spans it ± 1 (not 0.95–1.05 with ten ticks)."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    lo, hi = ax.dataLim.intervalx
    if np.isfinite(lo) and np.isfinite(hi) and hi - lo < 1:
        ax.set_xlim((lo + hi) / 2 - 1, (lo + hi) / 2 + 1)


# --------------------------------------------------------------------------------- loss weights
def _term_label(term: str, weights: dict) -> str:
    """``term`` and its weight, e.g. "kd ×α=0.9" or "ofd_1 ×λ_F=0.001·w_i"; a term without one as it is."""
    key = term if term in weights else next((k for k in weights if k.endswith("_") and term.startswith(k)), None)
    if key is None:
        return term
    symbol, value, note = weights[key]
    return f"{term} ×{symbol}={float(value):.3g}{note}"


def _loss_labels(history, terms) -> dict[str, str]:
    """The legend label of each term of ``history``, with the weight its method declared
    (:meth:`kd_lab.methods.Method.term_weights`, recorded by ``fit`` in the config); bare names without one."""
    weights = (history.config or {}).get("term_weights") or {}
    return {t: _term_label(t, weights) for t in terms}


# ------------------------------------------------------------------------------------- training
def _history_axes(axes):
    if axes is None:
        fig = Figure(figsize=(11, 3.8), layout="constrained")
        axes = fig.subplots(1, 2)
    loss_ax, acc_ax = axes
    loss_ax.set(title="Training loss", xlabel="step", ylabel="weighted loss terms (as summed by the trainer)")
    acc_ax.set(title="Accuracy", xlabel="epoch", ylabel="accuracy (%)")
    return loss_ax, acc_ax


def _plot_one_run(loss_ax, acc_ax, history, terms, smooth):
    """Each loss term (raw and smoothed), labelled with its weight, and the train and test accuracy in %."""
    terms = terms or ["total", *history.term_names]
    labels = _loss_labels(history, terms)
    for i, term in enumerate(terms):
        x, y = _series(history, term)
        if x.size:
            loss_ax.plot(x, y, color=f"C{i}", alpha=0.25, lw=0.8)                            # raw, faint
            loss_ax.plot(x, _moving_average(y, smooth), color=f"C{i}", label=labels[term])   # smoothed
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
    loss_ax.set(title="Training loss (total)", ylabel="total loss (sum of the weighted terms)")
    acc_ax.set_title("Test accuracy")


def _reference_bands(acc_ax, reference: dict) -> None:
    """One horizontal band per ``label -> {seed: final test accuracy in %}`` of ``reference``: mean ± sample std
    over its seeds (a line where one seed), labelled in the legend; grey tones, so a run's colours stay its own."""
    for i, (label, by_seed) in enumerate(reference.items()):
        values = list(by_seed.values())
        if not values:
            continue
        mean, std = _mean_std(values)
        color = ("0.35", "tab:green", "tab:purple", "tab:brown")[i % 4]
        text = f"{label}: {mean:.2f} ± {std:.2f} % ({len(values)} seeds, reference)"
        if len(values) > 1 and std > 0:
            acc_ax.axhspan(mean - std, mean + std, color=color, alpha=0.18, lw=0, label=text)
        acc_ax.axhline(mean, color=color, lw=1, ls="--", label=None if len(values) > 1 and std > 0 else text)


def plot_history(history, axes=None, terms=None, smooth=10, reference=None):
    """Loss terms against step (left) and train/test accuracy in % against epoch (right).

    ``history`` is one :class:`kd_lab.train.History`, or a list of ``(label, History)`` to overlay runs
    (then the smoothed total loss and the test accuracy of each run, one line per run). Losses are
    smoothed by a moving average over ``smooth`` steps, the raw values drawn faintly behind.
    The terms are the method's weighted ones, which the trainer sums into "total": KD's CE term is
    (1 − α)·CE, at 0 for α = 1. The legend gives each term's weight where the run's config has it
    (e.g. "ce ×(1−α)=0.1", "kd ×α=0.9"). The accuracy axis spans at least 1 percentage point.
    ``reference`` (``label -> {seed: final test accuracy in %}``, e.g. a lesson's committed sweep results for the
    same setting) draws each label's mean ± std over seeds as a band on the accuracy axis, so a run is read
    against seed noise.
    """
    loss_ax, acc_ax = _history_axes(axes)
    if reference:
        _reference_bands(acc_ax, reference)
    one_run = hasattr(history, "steps")
    if one_run:
        _plot_one_run(loss_ax, acc_ax, history, terms, smooth)
    else:
        _plot_many_runs(loss_ax, acc_ax, history, smooth)
    averaged = f"mean of the last {smooth} steps" if smooth > 1 else "each step"
    _finish(loss_ax, "no steps yet", averaged + (" (faint: each step)" if one_run and smooth > 1 else ""))
    _finish(acc_ax, "no finished epoch yet")
    _epoch_axis(acc_ax)
    _min_y_span(acc_ax)
    return loss_ax.figure


def plot_epoch_metrics(history, keys, ax=None, ylabel=None, title="Measured with the test accuracy"):
    """Numbers a method adds to the epoch records (``Method.epoch_metrics``) against epoch, one line per key;
    ``history`` is one History or a list of ``(label, History)`` (one line per run and key). The y label
    defaults to the keys; the y axis spans at least :func:`_min_span` (one measured epoch is not a cliff)."""
    fig, ax = _fig_ax(ax, (5.5, 3.6))
    ylabel = ", ".join(keys) if ylabel is None else ylabel
    runs = [("", history)] if hasattr(history, "epochs") else list(history)
    for i, (label, h) in enumerate(runs):
        for j, key in enumerate(keys):
            x, y = _series(h, key, where="epochs", x="epoch")
            name = label if label and len(keys) == 1 else " · ".join(p for p in (label, key) if p)
            if x.size:
                ax.plot(x, y, marker="o", color=f"C{i * len(keys) + j}", label=name)
    ax.set(xlabel="epoch", ylabel=ylabel, title=title)
    _finish(ax, "no measured epoch yet")
    _epoch_axis(ax)
    _min_y_span(ax)
    return fig


# ------------------------------------------------------------------------------ comparing runs
def _jitter(n: int) -> np.ndarray:
    """``n`` deterministic horizontal offsets in [-0.06, 0.06], so that equal seeds stay visible side by side."""
    return np.linspace(-0.06, 0.06, n) if n > 1 else np.zeros(n)


def _zoom_to_runs(ax, results, means, stds) -> None:
    """y limits around every seed and error bar, spanning at least :func:`_min_span`, with room above for the
    "mean ± std" written over each dot (``"81.00 ± 1.00"``)."""
    values = np.concatenate([_np(v).ravel() for v in results.values()] + [means - stds, means + stds])
    lo, hi = np.nanmin(values), np.nanmax(values)
    span = max(hi - lo, _min_span(ax, lo, hi))
    mid = (lo + hi) / 2
    ax.set_ylim(mid - 0.75 * span, mid + 0.8 * span)
    for i, (m, s) in enumerate(zip(means, stds)):
        ax.text(i, m + np.nan_to_num(s) + 0.05 * span, format_mean_std(m, s), ha="center", va="bottom", fontsize=8)


def plot_runs_bar(results, ax=None, ylabel="test accuracy (%)", title=None):
    """Mean ± std (ddof=1) over seeds per label, as a dot with error bars, and every seed as a small grey dot
    beside it; "mean ± std" is written above each. ``results``: label -> the per-seed values.

    Dots, not bars (the name is kept for the lessons that call it): a bar encodes its value by its length,
    so a bar axis must start at 0, and close accuracies would then look the same. A dot encodes only its
    position, so the y axis may zoom to the data; it spans at least 1 percentage point for values in %."""
    fig, ax = _fig_ax(ax, (max(4.0, 1.3 * len(results) + 1.5), 3.8))
    labels = list(results)
    stats = np.array([_mean_std(results[k]) for k in labels], dtype=float).reshape(-1, 2)
    means, stds = stats[:, 0], stats[:, 1]
    ax.set_ylabel(ylabel)
    for i, label in enumerate(labels):
        ax.errorbar([i], [means[i]], yerr=[stds[i]], fmt="D", ms=7, capsize=6, color=BAR_COLOR, zorder=3,
                    label="mean ± std over seeds" if i == 0 else None)
        seeds = _np(results[label]).ravel()
        ax.plot(i + 0.22 + _jitter(seeds.size), seeds, "o", color=SEED_COLOR, ms=4, zorder=2,
                label="one seed" if i == 0 else None)
    if labels:
        _zoom_to_runs(ax, results, means, stds)
        ax.set_xlim(-0.5, len(labels) - 0.5)
        ax.legend(fontsize=8)
    tilt = len(labels) > 3
    ax.set_xticks(np.arange(len(labels)))
    ax.set_xticklabels(labels, rotation=20 if tilt else 0, ha="right" if tilt else "center")
    ax.set_title(title if title is not None else "mean ± std over seeds (grey dots: single seeds)")
    return fig


# ------------------------------------------------------------------------------------- rendering
def figure_to_png(fig, dpi=80) -> bytes:
    """PNG bytes of ``fig`` rendered with Agg (for ``ipywidgets.Image``)."""
    if type(fig.canvas) is FigureCanvasBase:   # a bare Figure; leave a pyplot/ipympl canvas alone
        FigureCanvasAgg(fig)
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------- live views
LIVE_VIEWS: dict = {}       # Method.live_view's "kind" -> the plot that draws it (registered by each family)


def live_view(kind: str):
    """Register the decorated plot as the one that draws live views of ``kind``."""
    def register(plot):
        LIVE_VIEWS[kind] = plot
        return plot
    return register


def plot_live_view(view: dict):
    """The figure of a method's live view (:meth:`kd_lab.methods.Method.live_view`), by its ``"kind"``: what a
    ``TrainingPanel`` draws at each evaluation."""
    kind = view.get("kind")
    if kind not in LIVE_VIEWS:
        raise ValueError(f"no plot for a live view of kind {kind!r}; known kinds: {sorted(LIVE_VIEWS)}")
    return LIVE_VIEWS[kind](view)
