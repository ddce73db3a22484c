"""Plots of lesson 04, feature-based distillation (``notebooks/04_feature_overhaul.ipynb``: OFD, Heo et al.
2019; FitNet; U-DML): the BatchNorm-derived margin against real pre-ReLU values, OFD's partial L2 on one
feature map, grids of feature maps, the per-stage feature distance to the teacher over epochs, and the training
panel's live view of the teacher's targets against the student's connected features.
"""
from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from ._common import BAR_COLOR, _fig_ax, _finish, _heatmap, _np, live_view, plot_epoch_metrics

__all__ = ["plot_margin_histograms", "plot_margin_agreement", "plot_partial_l2", "plot_feature_maps",
           "plot_stage_distances", "plot_feature_view"]


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


# ----------------------------------------------------------------------------------------- margin
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
        ax.axvline(0.0, color="gray", lw=0.8, label="0: the ReLU keeps x > 0")
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


# ------------------------------------------------------------------------------------ partial L2
_PARTIAL_L2_PANELS = (("teacher", "teacher t (pre-ReLU)"), ("student", "student s through connector"),
                      ("target", "target t' = max(t, m)"), ("mask", "mask: s > t' or t' > 0"),
                      ("error", "loss: mask · (s − t')²"))


def plot_partial_l2(maps, axes=None, suptitle=None):
    """OFD's partial L2 (Heo et al. 2019) on one channel of one image, from
    :func:`kd_lab.features.partial_l2_maps`: teacher, student through the connector and target on one
    symmetric colour scale (red > 0, blue < 0) — one quantity, in the teacher's feature space, which the loss
    compares position by position — then the mask (white: the loss is active, its own 0–1 scale) and the
    squared error it keeps (its own scale, from 0)."""
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


# ---------------------------------------------------------------------------------- feature maps
def plot_feature_maps(rows, channels=None, ncols=8, title=None, share_scale=False, image=None):
    """Grids of feature maps of one image: one row per entry of ``rows`` (``{label: (C, H, W)}``), the same
    ``channels`` in each row (default the first ``ncols``), red > 0 and blue < 0.

    Each row has its own symmetric colour scale, ±max|value| over its channels, and its own colour bar: rows
    from different networks differ in size (a teacher's taps can be ten times smaller than an untrained
    student's), and one scale for all would wash the smaller ones out to white. ``share_scale=True`` puts every
    row on one scale, for rows of the same quantity (a teacher and a student through its trained connector).
    ``image``: the input image, (H, W) or (1, H, W), drawn in grey in a first column (the other rows leave it
    empty), so that the maps can be read against what the network saw."""
    maps = {label: _np(m) for label, m in rows.items()}
    bad = {label: m.shape for label, m in maps.items() if m.ndim != 3}
    if not maps or bad:
        raise ValueError(f"rows must map labels to (C, H, W) maps, got shapes {bad or 'none'}")
    channels = list(range(min(ncols, min(m.shape[0] for m in maps.values())))) if channels is None else list(channels)
    short = {label: m.shape[0] for label, m in maps.items() if max(channels, default=0) >= m.shape[0]}
    if not channels or short:
        raise ValueError(f"channels {channels} out of range for rows with {short} channels")
    spans = {label: float(np.abs(m[channels]).max()) or 1.0 for label, m in maps.items()}
    if share_scale:
        spans = dict.fromkeys(spans, max(spans.values()))
    first = 0 if image is None else 1                  # the column of the input image
    fig = Figure(figsize=(1.35 * (len(channels) + first) + 1.6, 1.45 * len(maps) + 0.4), layout="constrained")
    grid = fig.subplots(len(maps), len(channels) + first, squeeze=False)
    if image is not None:
        picture = _np(image).squeeze()
        if picture.ndim != 2:
            raise ValueError(f"image must be (H, W) or (1, H, W), got shape {_np(image).shape}")
        grid[0][0].imshow(picture, cmap="gray", interpolation="nearest")
        grid[0][0].set_title("input", fontsize=8)
        grid[0][0].set_axis_off()
        for ax in grid[1:, 0]:
            ax.remove()
        grid = grid[:, 1:]
    for r, (label, m) in enumerate(maps.items()):
        for ax, c in zip(grid[r], channels):
            im = ax.imshow(m[c], cmap="RdBu_r", vmin=-spans[label], vmax=spans[label], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"ch {c}", fontsize=8)
        grid[r][0].set_ylabel(label, fontsize=8)
        fig.colorbar(im, ax=list(grid[r]), shrink=0.9, pad=0.01)
    if title:
        fig.suptitle(title)
    return fig


def plot_stage_distances(history, stages=(0, 1, 2), ax=None):
    """The per-stage feature distance that the feature-distillation methods measure with the test accuracy
    (``feat_dist_i``, :meth:`kd_lab.methods.FeatureKD.epoch_metrics`), against epoch, on a log scale (the
    distances span orders of magnitude); one History or a list of ``(label, History)``. The dashed line at 1 is
    the distance of a student whose connected map is all zeros, ‖0 − ReLU(t)‖² / ‖ReLU(t)‖²: below it the
    student has matched part of the teacher's map, above it it is further off than predicting nothing."""
    keys = [f"feat_dist_{i}" for i in stages]
    fig = plot_epoch_metrics(history, keys, ax=ax, ylabel="‖ReLU(c(s)) − ReLU(t)‖² / ‖ReLU(t)‖² (log scale)",
                             title="Feature distance to the teacher, per stage")
    target = ax if ax is not None else fig.axes[0]
    if target.lines:
        target.axhline(1.0, color="gray", ls="--", lw=1, label="1: a student map of zeros")
        target.legend(fontsize=8)
        target.set_yscale("log")
        target.autoscale(axis="y")                   # limits of a log axis, not the linear minimum span
    return fig


# ------------------------------------------------------------------------------------ live view
@live_view("features")
def plot_feature_view(view, ncols=6):
    """Lesson 04's live view (:meth:`kd_lab.methods.FeatureKD.live_view`): for one test image and each distilled
    stage, three rows of its first ``ncols`` channels — the teacher's target (OFD: after the margin), the
    student's connector output, and their difference — each row on its own colour scale — beside the input image
    (:func:`plot_feature_maps`)."""
    target = "teacher\nafter margin" if view["method"].startswith("ofd") else "teacher"
    rows = {}
    for i, maps in view["stages"].items():
        rows[f"stage {i}:\n{target}"] = maps["target"]
        rows[f"stage {i}:\nstudent (conn.)"] = maps["student"]
        rows[f"stage {i}:\nstudent − target"] = _np(maps["student"]) - _np(maps["target"])
    channels = min(ncols, min(_np(m).shape[0] for m in rows.values()))
    return plot_feature_maps(rows, ncols=channels, image=view.get("image"),
                             title=f"Live view: the features {view['method']} compares, test image 0 "
                                   f"({view['classes'][view['label']]})")
