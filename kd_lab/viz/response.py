"""Plots of lesson 01, response-based distillation (``notebooks/01_response_kd.ipynb``: Hinton et al. 2015,
DKD): soft targets softmax(z / T) at one or several temperatures, the teacher's dark knowledge between
classes, the size of the KD gradient against T, accuracy against a swept setting, accuracy per class, and
the training panel's live view of the student's and the teacher's logits.
Lessons 02 and 03 reuse the soft targets, the sweep and the per-class bars.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import NullLocator

from ._common import BAR_COLOR, TOP_COLOR, _class_ticks, _fig_ax, _mean_std, _min_y_span, _np, live_view

__all__ = ["plot_soft_targets", "plot_temperatures", "plot_dark_knowledge", "plot_dark_knowledge_row",
           "most_similar_pairs", "plot_gradient_norms", "plot_sweep", "plot_per_class", "plot_logit_view"]

HIGHLIGHT_COLOR = "red"


def _softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits / temperature
    e = np.exp(z - z.max())
    return e / e.sum()


# ----------------------------------------------------------------------------------- soft targets
def plot_soft_targets(logits, temperature, classes, ax=None, legend=True):
    """Bar chart of softmax(logits / T) for one image; the top class in a different colour, which the legend
    names (``legend=False``: none, e.g. on all but one of a row of such charts)."""
    z = _np(logits).ravel()
    if len(classes) != z.size:
        raise ValueError(f"{z.size} logits but {len(classes)} class names")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    p = _softmax(z, float(temperature))
    entropy = float(-(p[p > 0] * np.log(p[p > 0])).sum())
    fig, ax = _fig_ax(ax, (5, 3.2))
    colors = [BAR_COLOR] * z.size
    colors[int(p.argmax())] = TOP_COLOR
    ax.bar(np.arange(z.size), p, color=colors)
    if legend:
        ax.legend(handles=[Patch(color=TOP_COLOR, label="largest probability"),
                           Patch(color=BAR_COLOR, label="other classes")], fontsize=7, loc="best")
    _class_ticks(ax, classes)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    ax.set_title(f"T = {temperature:g}, entropy {entropy:.2f} nats")
    return fig


def plot_temperatures(logits, temperatures, classes, axes=None):
    """One soft-target bar chart per temperature, side by side, with a shared y axis; the first one has the legend."""
    temperatures = list(temperatures)
    if axes is None:
        fig = Figure(figsize=(3.2 * len(temperatures), 3.4), layout="constrained")
        axes = fig.subplots(1, len(temperatures), sharey=True, squeeze=False)[0]
    axes = list(axes)
    if len(axes) != len(temperatures):
        raise ValueError(f"{len(temperatures)} temperatures but {len(axes)} axes")
    for i, (ax, t) in enumerate(zip(axes, temperatures)):
        plot_soft_targets(logits, t, classes, ax=ax, legend=i == 0)
        if i:
            ax.set_ylabel("")
    return axes[0].figure


# --------------------------------------------------------------------------------- dark knowledge
def plot_dark_knowledge(soft_targets, classes, temperature, ax=None, annotate=True, hide_diagonal=True,
                        vmin=None, vmax=None, title=None):
    """Heatmap of the teacher's mean soft target (columns) for each true class (rows).

    The colour scale spans the entries shown (off the diagonal, when it is hidden), unless ``vmin``/``vmax``
    fix it: several matrices of the same quantity side by side belong on one scale
    (:func:`plot_dark_knowledge_row` does that). ``title`` replaces the teacher's title (e.g. for a student)."""
    import seaborn as sns  # imported here: importing seaborn pulls in pyplot

    m = _np(soft_targets)
    k = len(classes)
    if m.shape != (k, k):
        raise ValueError(f"soft_targets must be ({k}, {k}) for {k} classes, got {m.shape}")
    fig, ax = _fig_ax(ax, (7.5, 6))
    mask = np.eye(k, dtype=bool) if hide_diagonal else None
    sns.heatmap(m, mask=mask, ax=ax, annot=annotate, fmt=".3f", annot_kws={"fontsize": 7}, cmap="viridis",
                vmin=vmin, vmax=vmax, xticklabels=list(classes), yticklabels=list(classes), square=True,
                cbar_kws={"label": "mean soft-target probability"})
    ax.set_xticklabels(list(classes), rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticklabels(list(classes), rotation=0)
    ax.set_xlabel("class in the soft target")
    ax.set_ylabel("true class")
    hidden = " (diagonal hidden)" if hide_diagonal else ""
    ax.set_title(title or f"Teacher's mean soft targets at T = {temperature:g}{hidden}")
    return fig


def _shown_entries(m: np.ndarray, hide_diagonal: bool) -> np.ndarray:
    """The entries of a (K, K) matrix that its heatmap colours: all, or those off the diagonal."""
    return m[~np.eye(len(m), dtype=bool)] if hide_diagonal else m.ravel()


def plot_dark_knowledge_row(matrices, classes, temperature, axes=None, annotate=False, hide_diagonal=True):
    """Several dark-knowledge matrices side by side on ONE colour scale, e.g. ``{"teacher": ..., "scratch
    student": ..., "KD student": ...}`` (each (K, K), :func:`kd_lab.analysis.soft_targets_by_class`): the same
    colour is the same probability in every panel, so the panels can be compared."""
    mats = {name: _np(m) for name, m in matrices.items()}
    if axes is None:
        fig = Figure(figsize=(6.2 * len(mats), 5.2), layout="constrained")
        axes = fig.subplots(1, len(mats), squeeze=False)[0]
    if len(axes) != len(mats):
        raise ValueError(f"{len(mats)} matrices but {len(axes)} axes")
    shown = np.concatenate([_shown_entries(m, hide_diagonal) for m in mats.values()])
    hidden = " (diagonal hidden)" if hide_diagonal else ""
    for ax, (name, m) in zip(axes, mats.items()):
        plot_dark_knowledge(m, classes, temperature, ax=ax, annotate=annotate, hide_diagonal=hide_diagonal,
                            vmin=float(shown.min()), vmax=float(shown.max()),
                            title=f"{name}: mean soft targets, T = {temperature:g}{hidden}")
    return axes[0].figure


def most_similar_pairs(soft_targets, classes, k=5) -> list[tuple[str, str, float]]:
    """The ``k`` class pairs with the largest symmetric off-diagonal value (m[i,j] + m[j,i]) / 2."""
    m = _np(soft_targets)
    if m.shape != (len(classes), len(classes)):
        raise ValueError(f"soft_targets must be ({len(classes)}, {len(classes)}), got {m.shape}")
    sym = (m + m.T) / 2
    rows, cols = np.triu_indices(len(classes), k=1)
    order = np.argsort(-sym[rows, cols], kind="stable")[:k]
    return [(classes[rows[o]], classes[cols[o]], float(sym[rows[o], cols[o]])) for o in order]


# -------------------------------------------------------------------------------- gradient norms
def plot_gradient_norms(temperatures, norms, ax=None):
    """Gradient norm of the KD loss against T (log y): without T² it falls like 1/T²."""
    fig, ax = _fig_ax(ax, (5.5, 3.8))
    t = _np(temperatures).ravel()
    for i, (label, values) in enumerate(norms.items()):
        v = _np(values).ravel()
        if v.size != t.size:
            raise ValueError(f"{label!r} has {v.size} values for {t.size} temperatures")
        ax.plot(t, v, marker="o", color=f"C{i}", label=label)
    ax.set_yscale("log")
    ax.set_xticks(t)
    ax.set_xticklabels([f"{v:g}" for v in t])
    ax.set(xlabel="temperature T", ylabel="gradient norm (log scale)",
           title="Size of the KD loss gradient against temperature")
    if norms:
        ax.legend(fontsize=8)
    return fig


# ------------------------------------------------------------------------------ comparing runs
def plot_sweep(x_values, results, xlabel, ax=None, ylabel="test accuracy (%)", baseline=None, log_x=False):
    """Mean ± std over seeds against a swept setting, one line per label; optional baseline bands. The y axis
    spans at least 1 percentage point for values in % (one value per x, or a flat line, is not a cliff)."""
    fig, ax = _fig_ax(ax, (6, 3.8))
    x = _np(x_values).ravel()
    for i, (label, per_x) in enumerate(results.items()):
        if len(per_x) != x.size:
            raise ValueError(f"{label!r} has {len(per_x)} entries for {x.size} x values")
        m, s = np.array([_mean_std(v) for v in per_x]).T
        ax.plot(x, m, marker="o", color=f"C{i}", label=label)
        ax.fill_between(x, m - s, m + s, color=f"C{i}", alpha=0.2)
    for j, (label, seeds) in enumerate((baseline or {}).items(), start=len(results)):
        m, s = _mean_std(seeds)
        ax.axhline(m, color=f"C{j}", ls="--", label=label)
        ax.axhspan(m - s, m + s, color=f"C{j}", alpha=0.12)
    if log_x:
        ax.set_xscale("log", base=2)
        ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(x)
    ax.set_xticklabels([f"{v:g}" for v in x])
    ax.set(xlabel=xlabel, ylabel=ylabel, title=f"{ylabel} against {xlabel} (mean ± std over seeds)")
    if ax.lines:
        ax.legend(fontsize=8)
    _min_y_span(ax)
    return fig


def plot_per_class(per_class, classes, ax=None, highlight=None):
    """Grouped bars: accuracy (%) of each class, one bar per label; ``highlight`` (a class index) marks one class
    with a red band behind its bars and a red tick label, named in the legend."""
    fig, ax = _fig_ax(ax, (max(6.0, 0.8 * len(classes)), 3.8))
    k, n = len(classes), max(len(per_class), 1)
    width = 0.8 / n
    for i, (label, acc) in enumerate(per_class.items()):
        a = _np(acc).ravel()
        if a.size != k:
            raise ValueError(f"{label!r} has {a.size} accuracies for {k} classes")
        a = a * 100 if np.nanmax(a, initial=0) <= 1 else a          # fractions -> %
        ax.bar(np.arange(k) - 0.4 + width * (i + 0.5), a, width, color=f"C{i}", label=label)
    _class_ticks(ax, classes)
    if highlight is not None:
        ax.axvspan(highlight - 0.45, highlight + 0.45, color=HIGHLIGHT_COLOR, alpha=0.12, zorder=0,
                   label=f"{classes[highlight]} (highlighted)")
        tick = ax.get_xticklabels()[highlight]
        tick.set_color(HIGHLIGHT_COLOR)
        tick.set_fontweight("bold")
    ax.set(ylim=(0, 120), yticks=range(0, 101, 20), ylabel="accuracy (%)", title="Accuracy per class")
    if per_class or highlight is not None:                                  # in the free band above 100 %
        ax.legend(fontsize=8, loc="upper center", ncols=len(per_class) + (highlight is not None))
    return fig


# ----------------------------------------------------------------------------------- live view
TEACHER_COLOR = "0.55"


@live_view("logits")
def plot_logit_view(view, fig=None):
    """Lesson 01's live view (:func:`kd_lab.methods.response.logit_view`): for each probe image, the teacher's
    and the student's raw logits (top row) and their softened probabilities softmax(z / T) (bottom row), and
    a scatter of every student logit against the teacher's with the line y = x (right). ``view`` holds
    ``student``, ``teacher`` (N, K), ``labels`` (N,), ``classes`` and ``temperature``."""
    s, t = _np(view["student"]), _np(view["teacher"])                     # (N, K) each
    labels, classes, temp = _np(view["labels"], int).ravel(), list(view["classes"]), float(view["temperature"])
    if s.shape != t.shape or s.shape[1] != len(classes) or len(labels) != len(s):
        raise ValueError(f"student logits {s.shape}, teacher logits {t.shape}, {len(labels)} labels and "
                         f"{len(classes)} classes do not match")
    n, k = s.shape
    fig = fig or Figure(figsize=(3.1 * n + 3.6, 5.4), layout="constrained")
    mosaic = [[f"z{i}" for i in range(n)] + ["scatter"], [f"p{i}" for i in range(n)] + ["scatter"]]
    axes = fig.subplot_mosaic(mosaic, width_ratios=[1] * n + [1.15])
    x, width = np.arange(k), 0.4
    for i in range(n):
        pt, ps = _softmax(t[i], temp), _softmax(s[i], temp)
        for key, (a, b) in (("z", (t[i], s[i])), ("p", (pt, ps))):
            ax = axes[f"{key}{i}"]
            ax.bar(x - width / 2, a, width, color=TEACHER_COLOR, label="teacher")
            ax.bar(x + width / 2, b, width, color=BAR_COLOR, label="student")
            ax.axvspan(labels[i] - 0.5, labels[i] + 0.5, color=TOP_COLOR, alpha=0.15, label="true class")
            if key == "p":
                _class_ticks(ax, classes)
            else:
                ax.set_xticks(x, [""] * k)
        axes[f"z{i}"].axhline(0, color="black", lw=0.5)
        axes[f"z{i}"].set_title(f"image {i}: {classes[labels[i]]}", fontsize=9)
        axes[f"p{i}"].set_ylim(0, 1)
    axes["z0"].set_ylabel("raw logit z")
    axes["p0"].set_ylabel(f"softmax(z / T), T = {temp:g}")
    axes["z0"].legend(fontsize=7, loc="best")
    ax = axes["scatter"]
    lo, hi = float(min(s.min(), t.min())), float(max(s.max(), t.max()))
    ax.plot([lo, hi], [lo, hi], color="black", lw=0.8, ls="--", label="student = teacher")
    is_label = np.zeros_like(s, dtype=bool)
    is_label[np.arange(n), labels] = True
    ax.scatter(t[~is_label], s[~is_label], s=14, color=BAR_COLOR, label="non-target logits")
    ax.scatter(t[is_label], s[is_label], s=30, color=TOP_COLOR, marker="D", label="target logits")
    r = float(np.corrcoef(t.ravel(), s.ravel())[0, 1]) if s.std() > 0 and t.std() > 0 else float("nan")
    ax.set_xlabel("teacher logit")
    ax.set_ylabel("student logit")
    ax.set_title(f"all {n}×{k} logits, correlation r = {r:.2f}", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("Live view: the outputs KD compares, on fixed test images", fontsize=10)
    return fig
