"""Plots of the course: soft targets, dark knowledge, training curves, seed comparisons, sweeps, images,
relation matrices and embeddings (RKD).

Every function takes data (torch tensors, numpy arrays or plain lists/dicts), optionally an ``ax`` (or
``axes``) to draw on, and returns the matplotlib ``Figure``. Figures are built with
``matplotlib.figure.Figure`` only, never ``pyplot``: no global state, safe from background threads, and
nothing is shown until the caller displays the figure (or renders it with :func:`figure_to_png`).
Importing this module changes no global state (no rcParams, style or backend).
"""
from __future__ import annotations

import math
from io import BytesIO

import numpy as np
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullLocator

__all__ = [
    "plot_soft_targets", "plot_temperatures", "plot_dark_knowledge", "most_similar_pairs", "plot_history",
    "plot_runs_bar", "plot_sweep", "plot_per_class", "plot_images", "plot_gradient_norms", "plot_peers",
    "figure_to_png", "plot_relation_matrices", "plot_angle_matrix", "plot_embedding_2d", "plot_epoch_metrics",
    "plot_relation_agreement", "plot_confidence_histogram", "plot_class_balance", "plot_mining_grid",
    "plot_unlabeled_curve",
]

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


def _softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits / temperature
    e = np.exp(z - z.max())
    return e / e.sum()


def _mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for one value; NaN for none)."""
    v = _np(values).ravel()
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), (float(v.std(ddof=1)) if v.size > 1 else 0.0)


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


# ----------------------------------------------------------------------------------- soft targets
def plot_soft_targets(logits, temperature, classes, ax=None):
    """Bar chart of softmax(logits / T) for one image; the top class in a different colour."""
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
    _class_ticks(ax, classes)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    ax.set_title(f"T = {temperature:g}, entropy {entropy:.2f} nats")
    return fig


def plot_temperatures(logits, temperatures, classes, axes=None):
    """One soft-target bar chart per temperature, side by side, with a shared y axis."""
    temperatures = list(temperatures)
    if axes is None:
        fig = Figure(figsize=(3.2 * len(temperatures), 3.4), layout="constrained")
        axes = fig.subplots(1, len(temperatures), sharey=True, squeeze=False)[0]
    axes = list(axes)
    if len(axes) != len(temperatures):
        raise ValueError(f"{len(temperatures)} temperatures but {len(axes)} axes")
    for i, (ax, t) in enumerate(zip(axes, temperatures)):
        plot_soft_targets(logits, t, classes, ax=ax)
        if i:
            ax.set_ylabel("")
    return axes[0].figure


# --------------------------------------------------------------------------------- dark knowledge
def plot_dark_knowledge(soft_targets, classes, temperature, ax=None, annotate=True, hide_diagonal=True):
    """Heatmap of the teacher's mean soft target (columns) for each true class (rows)."""
    import seaborn as sns  # imported here: importing seaborn pulls in pyplot

    m = _np(soft_targets)
    k = len(classes)
    if m.shape != (k, k):
        raise ValueError(f"soft_targets must be ({k}, {k}) for {k} classes, got {m.shape}")
    fig, ax = _fig_ax(ax, (7.5, 6))
    mask = np.eye(k, dtype=bool) if hide_diagonal else None
    sns.heatmap(m, mask=mask, ax=ax, annot=annotate, fmt=".3f", annot_kws={"fontsize": 7}, cmap="viridis",
                xticklabels=list(classes), yticklabels=list(classes), square=True,
                cbar_kws={"label": "mean soft-target probability"})
    ax.set_xticklabels(list(classes), rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticklabels(list(classes), rotation=0)
    ax.set_xlabel("class in the soft target")
    ax.set_ylabel("true class")
    hidden = " (diagonal hidden)" if hide_diagonal else ""
    ax.set_title(f"Teacher's mean soft targets at T = {temperature:g}{hidden}")
    return fig


def most_similar_pairs(soft_targets, classes, k=5) -> list[tuple[str, str, float]]:
    """The ``k`` class pairs with the largest symmetric off-diagonal value (m[i,j] + m[j,i]) / 2."""
    m = _np(soft_targets)
    if m.shape != (len(classes), len(classes)):
        raise ValueError(f"soft_targets must be ({len(classes)}, {len(classes)}), got {m.shape}")
    sym = (m + m.T) / 2
    rows, cols = np.triu_indices(len(classes), k=1)
    order = np.argsort(-sym[rows, cols], kind="stable")[:k]
    return [(classes[rows[o]], classes[cols[o]], float(sym[rows[o], cols[o]])) for o in order]


# ------------------------------------------------------------------------------------- training
def _series(history, key, scale=1.0, where="steps", x="step"):
    """``(x, y)`` arrays of ``key`` over the history's steps or epochs, skipping missing/None values."""
    rows = [r for r in getattr(history, where) if r.get(key) is not None]
    return np.array([r[x] for r in rows], dtype=float), np.array([r[key] for r in rows], dtype=float) * scale


def _history_axes(axes):
    if axes is None:
        fig = Figure(figsize=(11, 3.8), layout="constrained")
        axes = fig.subplots(1, 2)
    loss_ax, acc_ax = axes
    loss_ax.set(title="Training loss", xlabel="step", ylabel="loss")
    acc_ax.set(title="Accuracy", xlabel="epoch", ylabel="accuracy (%)")
    acc_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return loss_ax, acc_ax


def _finish(ax, empty_text):
    if ax.lines:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, empty_text, transform=ax.transAxes, ha="center", va="center", color="gray")


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


# ------------------------------------------------------------------------------ comparing runs
def _zoom_and_label(ax, results, means, stds) -> None:
    """y limits around the seeds and the error bars (not from 0); "mean ± std" above each bar."""
    values = np.concatenate([_np(v).ravel() for v in results.values()] + [means - stds, means + stds])
    lo, hi = np.nanmin(values), np.nanmax(values)
    span = max(hi - lo, 1e-3 * max(abs(hi), 1.0))
    ax.set_ylim(lo - 0.25 * span, hi + 0.3 * span)
    for i, (m, s) in enumerate(zip(means, stds)):
        ax.text(i, m + s + 0.05 * span, f"{m:.2f} ± {s:.2f}", ha="center", va="bottom", fontsize=8)


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


def plot_sweep(x_values, results, xlabel, ax=None, ylabel="test accuracy (%)", baseline=None, log_x=False):
    """Mean ± std over seeds against a swept setting, one line per label; optional baseline bands."""
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
    return fig


def plot_per_class(per_class, classes, ax=None, highlight=None):
    """Grouped bars: accuracy (%) of each class, one bar per label; ``highlight`` marks one class in red."""
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
        tick = ax.get_xticklabels()[highlight]
        tick.set_color("red")
        tick.set_fontweight("bold")
    ax.set(ylim=(0, 120), yticks=range(0, 101, 20), ylabel="accuracy (%)", title="Accuracy per class")
    if per_class:
        ax.legend(fontsize=8, loc="upper center", ncols=len(per_class))     # in the free band above 100 %
    return fig


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
    """A grid of images titled by class ("true → predicted" in red when a prediction is wrong).

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
    return fig


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


# ------------------------------------------------------------------------------------- DML peers
def _peer_labels(history) -> list[str]:
    """"peer i (preset)" for every peer whose accuracy ``acc_i`` an epoch record holds."""
    keys = {key for e in history.epochs for key in e}
    k = sum(1 for key in keys if key.startswith("acc_") and key[4:].isdigit())
    names = [n for n in str(history.config.get("peers") or "").split(",") if n]
    return [f"peer {i} ({names[i]})" if i < len(names) else f"peer {i}" for i in range(k)]


def plot_peers(history, axes=None):
    """Deep Mutual Learning (Zhang et al. 2018) over epochs, from a DML History's epoch records: each
    peer's test accuracy and the ensemble's (mean of the peers' softmax) in % (left), and how often each
    peer predicts the same class as peer 0, in % of the test images (right)."""
    if axes is None:
        fig = Figure(figsize=(11, 3.8), layout="constrained")
        axes = fig.subplots(1, 2)
    acc_ax, agree_ax = axes
    labels = _peer_labels(history)
    series = [(acc_ax, f"acc_{i}", dict(color=f"C{i}", marker="o", label=lab)) for i, lab in enumerate(labels)]
    series.append((acc_ax, "acc_ensemble", dict(color="black", marker="s", ls="--", label="ensemble")))
    series += [(agree_ax, f"agree_0_{j}", dict(color=f"C{j}", marker="o", label=f"peer 0 vs peer {j}"))
               for j in range(1, len(labels))]
    for ax, key, style in series:
        x, y = _series(history, key, 100.0, "epochs", "epoch")
        if x.size:
            ax.plot(x, y, **style)
    acc_ax.set(title="Test accuracy of each peer", xlabel="epoch", ylabel="accuracy (%)")
    agree_ax.set(title="Agreement with peer 0", xlabel="epoch", ylabel="same prediction (% of test images)")
    for ax in (acc_ax, agree_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _finish(ax, "no measured epoch yet")
    return acc_ax.figure


# ----------------------------------------------------------------------------- relations (RKD)
def _relation(kind: str, emb):
    """RKD's relations as numpy arrays (torch is imported here): ``"distance"`` (B, B) normalised
    distances, ``"angle"`` (B, B, B) triplet cosines (Park et al. 2019; :mod:`kd_lab.losses`)."""
    import torch

    from .losses import rkd_angle_tensor, rkd_distance_matrix

    e = torch.as_tensor(_np(emb), dtype=torch.float32)
    return (rkd_distance_matrix(e) if kind == "distance" else rkd_angle_tensor(e)).numpy()


def _class_blocks(ax, labels, classes) -> None:
    """White lines between the class blocks of a class-sorted batch; class names at the blocks' centres."""
    starts = np.concatenate([[0], np.flatnonzero(np.diff(labels)) + 1])
    ends = np.concatenate([starts[1:], [labels.size]])
    for edge in starts[1:] - 0.5:
        ax.axhline(edge, color="white", lw=1)
        ax.axvline(edge, color="white", lw=1)
    centres, names = (starts + ends - 1) / 2, [classes[labels[s]] for s in starts]
    ax.set_xticks(centres)
    ax.set_xticklabels(names, rotation=45, ha="right", rotation_mode="anchor", fontsize=7)
    ax.set_yticks(centres)
    ax.set_yticklabels(names, fontsize=7)


def _heatmap(ax, m, title, cmap, vmin, vmax, labels=None, classes=None):
    im = ax.imshow(m, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.figure.colorbar(im, ax=ax, shrink=0.8)
    if labels is not None and classes is not None:
        _class_blocks(ax, labels, classes)
    ax.set_title(title, fontsize=10)
    return im


def plot_relation_matrices(student_emb, teacher_emb, labels, classes, axes=None, student_name="student"):
    """RKD-D's relation side by side: the normalised distance matrices ||x_i − x_j|| / μ (Park et al.
    2019) of the teacher's and the student's embeddings (B, D_t) and (B, D_s) of one batch, and their
    difference student − teacher. The batch is sorted by class (stable), so classes form blocks."""
    lab = _np(labels, int).ravel()
    if lab.size != len(_np(student_emb)) or lab.size != len(_np(teacher_emb)):
        raise ValueError(f"{lab.size} labels for {len(_np(student_emb))} student and "
                         f"{len(_np(teacher_emb))} teacher embeddings")
    order = np.argsort(lab, kind="stable")
    d_t = _relation("distance", _np(teacher_emb)[order])               # (B, B)
    d_s = _relation("distance", _np(student_emb)[order])               # (B, B)
    if axes is None:
        fig = Figure(figsize=(15, 4.6), layout="constrained")
        axes = fig.subplots(1, 3)
    if len(axes) != 3:
        raise ValueError(f"plot_relation_matrices needs 3 axes, got {len(axes)}")
    top, diff = max(d_t.max(), d_s.max()), d_s - d_t
    span = max(np.abs(diff).max(), 1e-6)
    _heatmap(axes[0], d_t, "teacher: distance / mean distance", "viridis", 0, top, lab[order], classes)
    _heatmap(axes[1], d_s, f"{student_name}: distance / mean distance", "viridis", 0, top, lab[order], classes)
    _heatmap(axes[2], diff, f"{student_name} − teacher (mean |Δ| = {np.abs(diff).mean():.3f})", "RdBu_r",
             -span, span, lab[order], classes)
    return axes[0].figure


def plot_angle_matrix(emb, anchor, ax=None, labels=None, classes=None, title=None):
    """RKD-A's relation for one anchor j: the (B, B) matrix cos∠(x_i, x_j, x_k) = <e_ij, e_kj>, the slice
    ``rkd_angle_tensor(emb)[:, anchor, :]`` (Park et al. 2019). Row and column j are 0 (no direction
    from x_j to itself). ``labels``/``classes`` (in the order of ``emb``) mark the class blocks."""
    b = len(_np(emb))
    if not 0 <= anchor < b:
        raise ValueError(f"anchor must be in [0, {b - 1}] for a batch of {b}, got {anchor}")
    a = _relation("angle", emb)[:, anchor, :]                          # (B, B)
    fig, ax = _fig_ax(ax, (5.2, 4.6))
    lab = _np(labels, int).ravel() if labels is not None else None
    _heatmap(ax, a, title or f"angles at anchor j = {anchor}: cos∠(x_i, x_j, x_k)", "coolwarm", -1, 1, lab, classes)
    if lab is None:
        ax.set(xlabel="k", ylabel="i")
    return fig


def plot_embedding_2d(points_2d, labels, classes, ax=None, title="embeddings, first two principal components"):
    """Scatter of 2-D points (N, 2), e.g. :func:`kd_lab.analysis.pca_2d` of embeddings, one colour per
    class (C0, C1, … by class index) with a legend of the classes present."""
    p, lab = _np(points_2d), _np(labels, int).ravel()
    if p.ndim != 2 or p.shape[1] != 2 or len(p) != lab.size:
        raise ValueError(f"points_2d must be (N, 2) with N = {lab.size} labels, got {p.shape}")
    fig, ax = _fig_ax(ax, (5.5, 4.6))
    for c in np.unique(lab):
        ax.scatter(p[lab == c, 0], p[lab == c, 1], s=8, color=f"C{c}", label=classes[c], alpha=0.8)
    ax.set(xlabel="PC 1", ylabel="PC 2", title=title)
    if lab.size:
        ax.legend(fontsize=7, markerscale=2, loc="best")
    return fig


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


def plot_relation_agreement(history, ax=None):
    """The ``relation_agreement`` that :class:`kd_lab.methods.RKD` measures each epoch: the correlation of the
    student's and the teacher's distance matrices on 256 fixed test images (1 = the same structure)."""
    return plot_epoch_metrics(history, ["relation_agreement"], ax=ax, ylabel="correlation of distance matrices",
                              title="Relation agreement with the teacher")


# ------------------------------------------------------------------------------------- rendering
def figure_to_png(fig, dpi=80) -> bytes:
    """PNG bytes of ``fig`` rendered with Agg (for ``ipywidgets.Image``)."""
    if type(fig.canvas) is FigureCanvasBase:   # a bare Figure; leave a pyplot/ipympl canvas alone
        FigureCanvasAgg(fig)
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


# ------------------------------------------------------------------------------ mining (lesson 02, SSLD)
KEPT_COLOR, REJECTED_COLOR = "tab:blue", "tab:gray"


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


# ------------------------------------------------------------------ comparing methods (lesson 06)
COST_LABELS = {"wall_s": "wall seconds per run", "train_s": "training seconds per run",
               "images_per_s": "training images/s (right = cheaper per image)", "peak_mem_mb": "peak memory (MB)"}


def _cost_panel(ax, results, cost: str, log_cost) -> None:
    """Mean accuracy against mean cost, one point per method with both std error bars, labeled."""
    costs = []
    for i, (label, r) in enumerate(results.items()):
        if cost not in r:
            raise ValueError(f"{label!r} has no {cost!r} values; it has {sorted(r)}")
        (am, as_), (cm, cs) = _mean_std(r["accuracy"]), _mean_std(r[cost])
        ax.errorbar([cm], [am], xerr=[cs], yerr=[as_], fmt="o", color=f"C{i}", capsize=3, label=label)
        ax.annotate(label, (cm, am), textcoords="offset points", xytext=(5, 4), fontsize=8)
        costs.append(cm)
    if costs and (log_cost or (log_cost is None and min(costs) > 0 and max(costs) / min(costs) > 20)):
        ax.set_xscale("log")
    ax.set(xlabel=COST_LABELS.get(cost, cost), ylabel="test accuracy (%)", title="Accuracy against training cost")
    if not costs:                                 # each point carries its method's name: no legend needed
        ax.text(0.5, 0.5, "no finished run", transform=ax.transAxes, ha="center", va="center", color="gray")


def plot_comparison(results, cost="wall_s", axes=None, log_cost=None, title=None):
    """Lesson 06: left, test accuracy per method (mean ± std bars, one dot per seed); right, mean accuracy
    against mean cost (``cost``: a key of each entry, e.g. ``"wall_s"``, ``"images_per_s"``), both ± std.

    ``results``: ``{method: {"accuracy": [per seed], cost: [per seed], ...}}``, as
    :func:`kd_lab.compare.per_method` returns it. ``log_cost=None`` uses a log x axis when costs span > 20×.
    """
    if axes is None:
        fig = Figure(figsize=(max(10.0, 0.9 * len(results) + 6), 4.2), layout="constrained")
        axes = fig.subplots(1, 2, width_ratios=[max(1.0, 0.25 * len(results)), 1])
    bar_ax, cost_ax = axes
    plot_runs_bar({m: r["accuracy"] for m, r in results.items()}, ax=bar_ax,
                  title=title or "Test accuracy, mean ± std over seeds (dots: seeds)")
    _cost_panel(cost_ax, results, cost, log_cost)
    return bar_ax.figure


__all__ += ["plot_comparison"]


# ------------------------------------------------------------------- feature distillation (lesson 04)
def _negative_mean_np(values: np.ndarray) -> float:
    neg = values[values < 0]
    return float(neg.mean()) if neg.size else math.nan


def _grid_axes(n: int, ncols: int, cell: tuple[float, float]):
    """``n`` axes in rows of ``ncols`` on a new figure (cells of ``cell`` inches); unused cells removed."""
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(cell[0] * ncols, cell[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.remove()
    return axes[:n]


def plot_margin_histograms(taps, margins, channels=None, ncols=4, bins=60, axes=None):
    """OFD's margin (Heo et al. 2019) on real data: for each channel of one stage's pre-ReLU taps
    (N, C, H, W) or (N, C), a histogram of its values, the BN-derived margin m (``margins`` (C,), red) and
    the empirical mean of its negative values E[x | x < 0] (black, dashed); the ReLU keeps x > 0 (grey line).
    ``channels``: the channel indices to draw (default the first 8)."""
    x, m = _np(taps), _np(margins).ravel()
    if x.ndim not in (2, 4) or x.shape[1] != m.size:
        raise ValueError(f"taps must be (N, C, H, W) or (N, C) with C = {m.size} margins, got shape {x.shape}")
    channels = list(range(min(8, m.size))) if channels is None else [int(c) for c in channels]
    if not channels or any(not 0 <= c < m.size for c in channels):
        raise ValueError(f"channels must be indices in [0, {m.size - 1}], got {channels}")
    axes = _grid_axes(len(channels), ncols, (3.2, 2.5)) if axes is None else axes
    for ax, c in zip(axes, channels):
        values = np.moveaxis(x, 1, 0)[c].ravel()
        ax.hist(values, bins=bins, density=True, color=BAR_COLOR, alpha=0.7)
        ax.axvline(0.0, color="gray", lw=0.8)
        ax.axvline(m[c], color="red", lw=1.5, label=f"BN margin {m[c]:.2f}")
        ax.axvline(_negative_mean_np(values), color="black", ls="--", lw=1.2,
                   label=f"E[x | x<0] = {_negative_mean_np(values):.2f}")
        ax.set_title(f"channel {c}", fontsize=9)
        ax.legend(fontsize=6, loc="upper right")
    return axes[0].figure


def plot_margin_agreement(stages, ax=None):
    """Every channel's BN-derived margin (x) against the empirical E[x | x < 0] of its real pre-ReLU values
    (y), one colour per stage, with the diagonal y = x. ``stages``: ``{label: (margins (C,), empirical (C,))}``;
    channels without a negative value (NaN) are left out."""
    fig, ax = _fig_ax(ax, (5, 4.4))
    lo, hi = 0.0, -1e-3
    for i, (label, (margin, empirical)) in enumerate(stages.items()):
        m, e = _np(margin).ravel(), _np(empirical).ravel()
        if m.size != e.size:
            raise ValueError(f"{label!r}: {m.size} margins but {e.size} empirical values")
        keep = np.isfinite(e)
        ax.scatter(m[keep], e[keep], s=12, color=f"C{i}", alpha=0.7, label=f"{label} ({keep.sum()} channels)")
        lo = min(lo, np.nanmin(m, initial=0.0), np.nanmin(e, initial=0.0))
    ax.plot([lo, hi], [lo, hi], color="gray", ls="--", lw=1, label="y = x")
    ax.set(xlabel="margin from the BN: E[x | x<0], x ~ N(β, γ²)", ylabel="measured E[x | x<0] on test images",
           title="OFD margin: BatchNorm estimate against the data")
    _finish(ax, "no channels")
    return fig


_PARTIAL_L2_PANELS = (("teacher", "teacher t (pre-ReLU)"), ("student", "student s through connector"),
                      ("target", "target t' = max(t, m)"), ("mask", "mask: s > t' or t' > 0"),
                      ("error", "loss: mask · (s − t')²"))


def plot_partial_l2(maps, axes=None, suptitle=None):
    """OFD's partial L2 (Heo et al. 2019) on one channel of one image, from
    :func:`kd_lab.features.partial_l2_maps`: teacher, student through the connector and target on one
    symmetric colour scale (red > 0, blue < 0), the mask (white: the loss is active), and the squared error
    it keeps."""
    missing = [k for k, _ in _PARTIAL_L2_PANELS if k not in maps]
    if missing:
        raise ValueError(f"maps is missing {missing}; pass the dict of kd_lab.features.partial_l2_maps")
    if axes is None:
        fig = Figure(figsize=(16, 3.4), layout="constrained")
        axes = fig.subplots(1, len(_PARTIAL_L2_PANELS))
    span = max(float(np.abs(_np(maps[k])).max()) for k in ("teacher", "student", "target")) or 1.0
    for ax, (key, title) in zip(axes, _PARTIAL_L2_PANELS):
        data = _np(maps[key])
        styles = {"mask": ("gray", 0, 1), "error": ("magma", 0, max(data.max(), 1e-12))}
        style = styles.get(key, ("RdBu_r", -span, span))
        _heatmap(ax, data, title, *style)
        ax.set_axis_off()
    axes[-1].set_title(f"{_PARTIAL_L2_PANELS[-1][1]}\nsum {float(_np(maps['error']).sum()):.2f}, "
                       f"active on {100 * float(_np(maps['mask']).mean()):.0f} % of the map", fontsize=10)
    if suptitle:
        axes[0].figure.suptitle(suptitle)
    return axes[0].figure


def plot_feature_maps(rows, channels=None, ncols=8, title=None):
    """Grids of feature maps of one image: one row per entry of ``rows`` (``{label: (C, H, W)}``), the same
    ``channels`` in each row (default the first ``ncols``), on one symmetric colour scale for the whole figure
    (red > 0, blue < 0)."""
    maps = {label: _np(m) for label, m in rows.items()}
    bad = {label: m.shape for label, m in maps.items() if m.ndim != 3}
    if not maps or bad:
        raise ValueError(f"rows must map labels to (C, H, W) maps, got shapes {bad or 'none'}")
    channels = list(range(min(ncols, min(m.shape[0] for m in maps.values())))) if channels is None else list(channels)
    short = {label: m.shape[0] for label, m in maps.items() if max(channels, default=0) >= m.shape[0]}
    if not channels or short:
        raise ValueError(f"channels {channels} out of range for rows with {short} channels")
    span = max(float(np.abs(m[channels]).max()) for m in maps.values()) or 1.0
    fig = Figure(figsize=(1.35 * len(channels) + 1.2, 1.45 * len(maps) + 0.4), layout="constrained")
    grid = fig.subplots(len(maps), len(channels), squeeze=False)
    for r, (label, m) in enumerate(maps.items()):
        for ax, c in zip(grid[r], channels):
            im = ax.imshow(m[c], cmap="RdBu_r", vmin=-span, vmax=span, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"ch {c}", fontsize=8)
        grid[r][0].set_ylabel(label, fontsize=8)
    fig.colorbar(im, ax=grid, shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def plot_stage_distances(history, stages=(0, 1, 2), ax=None):
    """The per-stage feature distance that the feature-distillation methods measure with the test accuracy
    (``feat_dist_i``, :meth:`kd_lab.methods.FeatureKD.epoch_metrics`), against epoch, on a log scale (the
    distances span orders of magnitude); one History or a list of ``(label, History)``."""
    keys = [f"feat_dist_{i}" for i in stages]
    fig = plot_epoch_metrics(history, keys, ax=ax, ylabel="‖ReLU(c(s)) − ReLU(t)‖² / ‖ReLU(t)‖² (log scale)",
                             title="Feature distance to the teacher, per stage")
    target = ax if ax is not None else fig.axes[0]
    if target.lines:
        target.set_yscale("log")
    return fig


__all__ += ["plot_margin_histograms", "plot_margin_agreement", "plot_partial_l2", "plot_feature_maps",
            "plot_stage_distances"]
