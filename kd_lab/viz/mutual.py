"""Plots of lesson 03, mutual learning without a teacher (``notebooks/03_dml.ipynb``: Deep Mutual Learning,
Zhang et al. 2018): each peer's test accuracy, the ensemble's, and how often the peers agree, over epochs.
"""
from __future__ import annotations

from matplotlib.figure import Figure

from ._common import _epoch_axis, _finish, _min_y_span, _series

__all__ = ["plot_peers"]


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
