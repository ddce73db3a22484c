"""Plots of lesson 06, every method on one budget (``notebooks/06_compare.ipynb``, ``python -m kd_lab
compare``): test accuracy per method over seeds, and accuracy against training cost.
"""
from __future__ import annotations

from matplotlib.figure import Figure

from ._common import _mean_std, _min_y_span, plot_runs_bar

__all__ = ["plot_comparison"]

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
    _min_y_span(ax)
    if not costs:                                 # each point carries its method's name: no legend needed
        ax.text(0.5, 0.5, "no finished run", transform=ax.transAxes, ha="center", va="center", color="gray")


def plot_comparison(results, cost="wall_s", axes=None, log_cost=None, title=None):
    """Lesson 06: left, test accuracy per method (:func:`plot_runs_bar`: mean ± std as a dot with error bars,
    one grey dot per seed; dots, not bars, since close accuracies are compared on a zoomed axis); right, mean
    accuracy against mean cost (``cost``: a key of each entry, e.g. ``"wall_s"``, ``"images_per_s"``), both ± std.

    ``results``: ``{method: {"accuracy": [per seed], cost: [per seed], ...}}``, as
    :func:`kd_lab.results.per_method` returns it. ``log_cost=None`` uses a log x axis when costs span > 20×.
    """
    if axes is None:
        fig = Figure(figsize=(max(10.0, 0.9 * len(results) + 6), 4.2), layout="constrained")
        axes = fig.subplots(1, 2, width_ratios=[max(1.0, 0.25 * len(results)), 1])
    bar_ax, cost_ax = axes
    plot_runs_bar({m: r["accuracy"] for m, r in results.items()}, ax=bar_ax,
                  title=title or "Test accuracy, mean ± std over seeds (grey dots: seeds)")
    _cost_panel(cost_ax, results, cost, log_cost)
    return bar_ax.figure
