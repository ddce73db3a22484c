"""kd_lab.viz.effects: paired differences drawn as dots with their 95 % interval, per-seed points and a zero line."""
import math

import numpy as np
import pytest

from kd_lab import viz
from kd_lab.stats import paired_effect
from kd_lab.viz import effects

pytestmark = pytest.mark.usefixtures("no_pyplot_figures")


def _record(arm, diffs, labeled=1000, baseline="scratch"):
    e = paired_effect(dict(enumerate(diffs)), dict.fromkeys(range(len(diffs)), 0.0))
    return {"arm": arm, "point": {"labeled": labeled}, "baseline": baseline, "differences": list(e.differences),
            "pairs": e.n, "diff_mean": e.mean, "ci_low": e.ci_low, "ci_high": e.ci_high}


RECORDS = [_record("kd", [3.0, 4.0, 5.5]), _record("label smoothing 0.1", [-0.5, 0.4, 0.2]),
           _record("kd, non-targets shuffled", [-2.0, -1.5, -2.6])]


def _errorbar(ax):
    (container,) = [c for c in ax.containers if c.get_label() == effects.MEAN_LABEL]
    line, _caps, (bars,) = container.lines
    return line, bars


def test_error_bars_end_at_the_interval_and_dots_sit_at_the_mean():
    ax = viz.plot_paired_effects(RECORDS, title="controls").axes[0]
    line, bars = _errorbar(ax)
    assert np.allclose(line.get_ydata(), [r["diff_mean"] for r in RECORDS])
    segments = bars.get_segments()
    assert np.allclose([s[:, 1].min() for s in segments], [r["ci_low"] for r in RECORDS])
    assert np.allclose([s[:, 1].max() for s in segments], [r["ci_high"] for r in RECORDS])
    assert ax.get_title() == "controls" and ax.get_ylabel() == "difference to scratch (points)"
    assert [t.get_text() for t in ax.get_xticklabels()] == [r["arm"] for r in RECORDS]


def test_zero_line_seed_points_and_legend():
    ax = viz.plot_paired_effects(RECORDS).axes[0]
    (zero,) = [ln for ln in ax.lines if ln.get_label() == effects.ZERO_LABEL]
    assert np.allclose(zero.get_ydata(), 0)
    (seeds,) = ax.collections[:1]
    assert seeds.get_label() == effects.SEED_LABEL
    assert sorted(seeds.get_offsets()[:, 1]) == sorted(d for r in RECORDS for d in r["differences"])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert set(legend) == {effects.ZERO_LABEL, effects.SEED_LABEL, effects.MEAN_LABEL}


def test_numeric_grid_field_on_a_log_axis_with_tick_labels():
    records = [_record("kd", [1.0, 2.0, 3.0], labeled=n) for n in (100, 1000, 10000)]
    ax = viz.plot_paired_effects(records, x="labeled", log_x=True, xlabel="labeled images",
                                 tick_labels=["100", "1k", "all"]).axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "labeled images"
    line, _ = _errorbar(ax)
    assert np.allclose(line.get_xdata(), [100, 1000, 10000])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["100", "1k", "all"]
    assert viz.plot_paired_effects(records, x="labeled").axes[0].get_xscale() == "linear"


def test_one_pair_has_no_interval_and_an_empty_record_is_left_out():
    one = _record("kd", [2.0])
    empty = _record("dkd", [])
    assert math.isnan(one["ci_low"])
    ax = viz.plot_paired_effects([one, empty]).axes[0]
    assert not [c for c in ax.containers if c.get_label() == effects.MEAN_LABEL]
    (dot,) = [ln for ln in ax.lines if ln.get_label() == effects.ONE_PAIR_LABEL]
    assert np.allclose(dot.get_ydata(), [2.0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["kd", "dkd"]


def test_draws_on_a_given_axes_and_refuses_a_missing_x():
    from matplotlib.figure import Figure
    fig = Figure()
    ax = fig.add_subplot()
    assert viz.plot_paired_effects(RECORDS[:1], ax=ax) is fig
    with pytest.raises(ValueError, match="map a grid value None"):
        viz.plot_paired_effects([_record("kd", [1.0, 2.0], labeled=None)], x="labeled")
    with pytest.raises(ValueError, match="a number for each"):
        viz.plot_paired_effects(RECORDS, x=[1, 2])
