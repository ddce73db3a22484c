"""Plots of lesson 03, mutual learning without a teacher (``notebooks/03_dml.ipynb``: Deep Mutual Learning,
Zhang et al. 2018): each peer's test accuracy, the ensemble's, and how often the peers agree, over epochs; the
training panel's live view of the peers' agreement and predictive entropy; and a sweep's runs paired by seed.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ._common import _class_ticks, _epoch_axis, _finish, _heatmap, _min_y_span, _np, _series, live_view

__all__ = ["plot_peers", "plot_peer_view", "plot_paired_seeds"]


def _peer_labels(history) -> list[str]:
    """"peer i (preset)" for every peer whose accuracy ``acc_i`` an epoch record holds."""
    keys = {key for e in history.epochs for key in e}
    k = sum(1 for key in keys if key.startswith("acc_") and key[4:].isdigit())
    names = [n for n in str(history.config.get("peers") or "").split(",") if n]
    return [f"peer {i} ({names[i]})" if i < len(names) else f"peer {i}" for i in range(k)]


def plot_peers(history, axes=None):
    """Deep Mutual Learning (Zhang et al. 2018) over epochs, from a DML History's epoch records: each
    peer's test accuracy and the ensemble's (mean of the peers' softmax) in % (left), and how often each
    peer predicts the same class as peer 0, in % of the test images (right). Both y axes span at least 1 point."""
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
        _finish(ax, "no measured epoch yet")
        _epoch_axis(ax)
        _min_y_span(ax)
    return acc_ax.figure


def plot_paired_seeds(pairs, ax=None, ylabel="test accuracy (%)", title=None, labels=("alone", "DML")):
    """Runs paired by seed, side by side: for each group (``pairs``: ``{group: ({seed: value}, {seed: value})}``,
    e.g. ``{"student": (alone, dml)}``) the two conditions at two neighbouring positions, one grey line per seed
    joining its two values, and each condition's mean ± sample std as a dot with an error bar. Shows at once a
    shift (the lines slope one way) and a change of spread (one end of the lines is tighter). Returns the Figure."""
    pairs = dict(pairs)
    if ax is None:
        fig = Figure(figsize=(max(5.0, 3.2 * len(pairs) + 1.5), 4.0), layout="constrained")
        ax = fig.add_subplot()
    for g, (left, right) in enumerate(pairs.values()):
        seeds = [s for s in left if s in right]
        xs = (3 * g, 3 * g + 1)
        for s in seeds:
            ax.plot(xs, (left[s], right[s]), color="grey", lw=0.8, alpha=0.7, zorder=1,
                    label="one seed" if g == 0 and s == seeds[0] else None)
        for x, values, colour, name in zip(xs, (left, right), ("C0", "C3"), labels):
            v = np.array([values[s] for s in seeds], dtype=float)
            std = v.std(ddof=1) if v.size > 1 else 0.0
            ax.errorbar([x], [v.mean()], yerr=[std], fmt="o", color=colour, capsize=4, zorder=3,
                        label=f"{name}: mean ± std" if g == 0 else None)
    ax.set_xticks([3 * g + d for g in range(len(pairs)) for d in (0, 1)])
    ax.set_xticklabels([f"{group}\n{name}" for group in pairs for name in labels], fontsize=8)
    ax.set(ylabel=ylabel, title=title or "")
    ax.legend(fontsize=8)
    _min_y_span(ax)
    return ax.figure


# ------------------------------------------------------------------------------------ live view
def _entropy(logits: np.ndarray) -> np.ndarray:
    """Per-image entropy (nats) of softmax(logits) (N, C)."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=1)


@live_view("peers")
def plot_peer_view(view):
    """Lesson 03's live view (:meth:`kd_lab.methods.DML.live_view`) on the probe images: how often each pair of
    peers predicts the same class (left, K × K, in %), which classes peers 0 and 1 predict together (middle:
    fraction of the images with peer 0's class as row and peer 1's as column; off the diagonal they disagree), and
    each peer's predictive entropy per image (right: DML pulls each peer towards the others' distributions).
    ``view`` holds ``logits`` (K arrays (N, C)), ``names``, ``labels`` and ``classes``."""
    logits, names, classes = [_np(z) for z in view["logits"]], list(view["names"]), list(view["classes"])
    k, (n, c) = len(logits), logits[0].shape
    preds = np.stack([z.argmax(axis=1) for z in logits])                          # (K, N)
    agree = 100 * (preds[:, None, :] == preds[None, :, :]).mean(axis=2)           # (K, K)
    joint = np.zeros((c, c))
    np.add.at(joint, (preds[0], preds[1]), 1.0 / n)
    fig = Figure(figsize=(15, 4.6), layout="constrained")
    ax_agree, ax_joint, ax_entropy = fig.subplots(1, 3, width_ratios=[0.8, 1.1, 1.1])
    _heatmap(ax_agree, agree, f"same prediction (% of {n} images)", "Greens", 0, 100)
    for i in range(k):
        for j in range(k):
            ax_agree.text(j, i, f"{agree[i, j]:.1f}", ha="center", va="center", fontsize=8,
                          color="white" if agree[i, j] > 60 else "black")
    ax_agree.set_xticks(range(k), [f"peer {i}" for i in range(k)])
    ax_agree.set_yticks(range(k), [f"peer {i}" for i in range(k)])
    _heatmap(ax_joint, joint, f"{names[0]} (rows) vs {names[1]} (columns)", "Blues", 0, max(joint.max(), 1e-6))
    _class_ticks(ax_joint, classes)
    ax_joint.set_yticks(range(c), classes, fontsize=7)
    bins = np.linspace(0, np.log(c), 21)
    for i, z in enumerate(logits):
        h = _entropy(z)
        ax_entropy.hist(h, bins=bins, histtype="step", lw=1.5, color=f"C{i}", label=f"{names[i]}: mean {h.mean():.2f}")
    ax_entropy.set(title="predictive entropy per image", xlabel="entropy of softmax (nats)", ylabel="images")
    ax_entropy.legend(fontsize=7)
    fig.suptitle("Live view: what the peers predict, on fixed test images", fontsize=10)
    return fig
