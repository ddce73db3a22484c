"""Paired effects of a sweep, drawn as they are measured (lesson 01: KD's gain over the labeled-set size, the
controls, the DKD grid, T and α): for each arm or grid point the mean paired difference to the baseline arm
d̄ = mean_s (acc(arm, s) − acc(baseline, s)) as a dot, its 95 % Student-t interval as an error bar, every seed's
own difference as a small grey point, and a line at zero — an interval that crosses it is within noise.

The records are those of :func:`kd_lab.reference.lesson_results` (:func:`kd_lab.results.summarize_sweep`): dicts
with ``arm``, ``point``, ``baseline``, ``differences``, ``pairs``, ``diff_mean``, ``ci_low`` and ``ci_high``.
Figures are built with ``matplotlib.figure.Figure`` only, never ``pyplot``.
"""
from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_paired_effects"]

ZERO_LABEL = "no difference"
MEAN_LABEL = "mean paired difference, 95 % CI"
ONE_PAIR_LABEL = "one pair (no interval)"
SEED_LABEL = "one seed's difference"


def _positions(records, x) -> tuple[np.ndarray, bool]:
    """``(x positions, categorical)``: 0, 1, … for arm labels (``x=None``), else the grid field ``x`` of each
    record's point or the numbers ``x`` gives, one per record."""
    if x is None:
        return np.arange(len(records), dtype=float), True
    values = [r["point"].get(x) for r in records] if isinstance(x, str) else list(x)
    if len(values) != len(records) or any(v is None for v in values):
        raise ValueError(f"x must give a number for each of the {len(records)} records, got {values}; map a grid "
                         "value None ('all') to its size first")
    return np.asarray(values, dtype=float), False


def _seed_offset(xs: np.ndarray, categorical: bool, log_x: bool) -> np.ndarray:
    """Where the per-seed points go: a little right of their dot, so that the error bar stays readable."""
    if categorical:
        return xs + 0.18
    if log_x:
        return xs * 1.15
    span = float(np.ptp(xs)) if xs.size > 1 else 1.0
    return xs + 0.03 * (span or 1.0)


def plot_paired_effects(records, x=None, ax=None, title=None, xlabel=None, log_x=False, ylabel=None,
                        tick_labels=None):
    """Dots at each record's ``diff_mean`` with its 95 % interval (``ci_low`` … ``ci_high``) as error bars, the
    per-seed differences as small grey points, and a labelled zero line.

    ``x``: None (one position per record, ticks labelled with the arms), the name of a numeric grid field
    (``"labeled"``), or one number per record. ``tick_labels``: text of the ticks at numeric positions (e.g.
    ``"all"`` for the whole training split). Records without a pair are left out (their tick stays). Returns the
    Figure."""
    records = list(records)
    if ax is None:
        fig = Figure(figsize=(max(5.0, 0.9 * len(records) + 2.5) if x is None else 6.0, 3.8), layout="constrained")
        ax = fig.add_subplot()
    fig = ax.figure
    xs, categorical = _positions(records, x)
    ax.axhline(0.0, color="black", lw=0.9, ls="--", label=ZERO_LABEL, zorder=1)
    _draw_seeds(ax, records, _seed_offset(xs, categorical, log_x))
    _draw_means(ax, records, xs)
    if log_x:
        ax.set_xscale("log")
    if categorical or tick_labels is not None:
        ax.set_xticks(xs)
        ax.set_xticklabels(tick_labels if tick_labels is not None else [r["arm"] for r in records],
                           rotation=30 if categorical else 0, ha="right" if categorical else "center",
                           rotation_mode="anchor")
        ax.minorticks_off()
    baselines = sorted({r["baseline"] for r in records if r.get("baseline")})
    ax.set(xlabel=xlabel or ("" if categorical else str(x)), title=title or "",
           ylabel=ylabel or f"difference to {' / '.join(baselines) or 'the baseline'} (points)")
    ax.legend(fontsize=8)
    return fig


def _draw_seeds(ax, records, xs) -> None:
    px = [xi for xi, r in zip(xs, records) for _ in r["differences"]]
    py = [d for r in records for d in r["differences"]]
    if py:
        ax.scatter(px, py, s=12, color="grey", alpha=0.8, label=SEED_LABEL, zorder=2)


def _draw_means(ax, records, xs) -> None:
    with_ci = [i for i, r in enumerate(records) if r["pairs"] >= 2 and not math.isnan(r["ci_low"])]
    one = [i for i, r in enumerate(records) if r["pairs"] == 1 or (r["pairs"] >= 2 and i not in with_ci)]
    if with_ci:
        mean = np.array([records[i]["diff_mean"] for i in with_ci])
        low = np.array([records[i]["ci_low"] for i in with_ci])
        high = np.array([records[i]["ci_high"] for i in with_ci])
        ax.errorbar(xs[with_ci], mean, yerr=[mean - low, high - mean], fmt="o", color="tab:blue", capsize=4,
                    label=MEAN_LABEL, zorder=3)
    if one:
        ax.plot(xs[one], [records[i]["diff_mean"] for i in one], "o", mfc="white", color="tab:blue",
                label=ONE_PAIR_LABEL, zorder=3)
