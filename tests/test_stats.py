"""kd_lab.stats: mean ± sample std (NaN for one seed, "–" when shown), Student-t critical values, effects
paired by seed with their 95 % interval — each against numbers computed by hand."""
import math
import subprocess
import sys

import numpy as np
import pytest

from kd_lab import stats
from kd_lab.stats import (
    PairedEffect,
    format_effect,
    format_mean_std,
    format_number,
    mean_std,
    paired_differences,
    paired_effect,
    t_critical,
)


# ------------------------------------------------------------------------------------ mean ± std
def test_mean_std_is_the_mean_and_the_sample_std_by_hand():
    assert mean_std([80.0, 82.0, 84.0]) == pytest.approx((82.0, 2.0))           # Σ(x − x̄)² = 8, / (3 − 1) = 4
    m, s = mean_std([1, 2, 3, 4])                                                # Σ(x − x̄)² = 5, / 3
    assert m == 2.5 and s == pytest.approx(math.sqrt(5 / 3))
    assert mean_std(x for x in (10.0, 14.0)) == pytest.approx((12.0, math.sqrt(8)))   # any iterable
    assert mean_std(np.array([3.0, 5.0])) == pytest.approx((4.0, math.sqrt(2)))      # NumPy scalars


def test_one_value_has_no_std_and_no_value_has_no_mean():
    m, s = mean_std([81.5])
    assert m == 81.5 and math.isnan(s)
    m, s = mean_std(iter([]))
    assert math.isnan(m) and math.isnan(s)


def test_mean_std_leaves_out_missing_values():
    m, s = mean_std([80.0, None, 84.0])                                          # a failed run: no accuracy
    assert m == 82.0 and s == pytest.approx(math.sqrt(8))
    m, s = mean_std([None, 7.0])
    assert m == 7.0 and math.isnan(s)


def test_formatters_show_a_missing_value_as_a_dash():
    assert format_mean_std(82.0, 2.0) == "82.00 ± 2.00"
    assert format_mean_std(*mean_std([81.5])) == "81.50 ± –"
    assert format_mean_std(*mean_std([])) == "– ± –"
    assert format_mean_std(1234.5, 6.25, ",.1f") == "1,234.5 ± 6.2"
    assert format_number(None) == "–" and format_number(math.nan, "+.2f") == "–"
    assert format_number(3.0, "+.2f") == "+3.00"


# ------------------------------------------------------------------------------ t critical values
@pytest.mark.parametrize("df,t", [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (30, 2.042)])
def test_t_critical_matches_the_table_of_student_t(df, t):
    assert t_critical(df) == pytest.approx(t, abs=5e-4)


@pytest.mark.parametrize("df,t", [(31, 2.0395), (40, 2.0211), (60, 2.0003), (120, 1.9799), (10**6, 1.9600)])
def test_t_critical_beyond_the_table_matches_the_exact_quantile(df, t):
    assert t_critical(df) == pytest.approx(t, abs=1e-4)


def test_t_critical_falls_towards_the_normal_quantile_without_a_jump():
    values = [t_critical(df) for df in range(1, 200)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert t_critical(30) - t_critical(31) < 0.005 and t_critical(199) > 1.96


@pytest.mark.parametrize("df", [0, -1, 2.5, True, "3"])
def test_t_critical_rejects_a_bad_degree_of_freedom(df):
    with pytest.raises(ValueError, match=f"degrees of freedom must be a positive integer, got {df!r}"):
        t_critical(df)


# ---------------------------------------------------------------------------- paired differences
def test_paired_differences_pair_by_seed_and_leave_out_unpaired_seeds():
    a = {0: 85.0, 1: 86.0, 2: 87.0, 3: 90.0}           # seed 3 has no reference run
    b = {2: 83.0, 0: 82.0, 1: 82.0, 4: 70.0}           # seed 4 has no method run
    assert paired_differences(a, b) == {0: 3.0, 1: 4.0, 2: 4.0}
    assert paired_differences({0: 1.0, 1: None}, {0: 0.5, 1: 2.0}) == {0: 0.5}        # a failed run
    assert paired_differences([3.0, 5.0], [1.0, 1.5]) == {0: 2.0, 1: 3.5}             # sequences: by position


def test_paired_differences_reject_inputs_that_do_not_pair():
    with pytest.raises(ValueError, match="need the same length, got 2 and 3"):
        paired_differences([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="both as sequences, not one of each"):
        paired_differences({0: 1.0}, [1.0])


def test_paired_effect_and_its_interval_by_hand():
    # d = (3, 4, 5): d̄ = 4, s_d = 1, half-width t(0.975, 2) · 1 / √3 = 4.303 / 1.7321 = 2.4843
    e = paired_effect({0: 83.0, 1: 85.0, 2: 86.0}, {0: 80.0, 1: 81.0, 2: 81.0})
    assert e.seeds == (0, 1, 2) and e.differences == (3.0, 4.0, 5.0) and e.n == 3
    assert (e.mean, e.std) == pytest.approx((4.0, 1.0))
    assert (e.ci_low, e.ci_high) == pytest.approx((4.0 - 2.4843, 4.0 + 2.4843), abs=1e-4)
    assert e.verdict == "higher"
    # d = (2, 4, 6): s_d = 2, half-width 4.9687: the interval holds 0
    wide = paired_effect([82.0, 84.0, 86.0], [80.0, 80.0, 80.0])
    assert (wide.ci_low, wide.ci_high) == pytest.approx((-0.9687, 8.9687), abs=1e-4)
    assert wide.verdict == "within noise"
    assert paired_effect([80.0, 80.0, 80.0], [83.0, 84.0, 85.0]).verdict == "lower"     # d = (−3, −4, −5)


def test_pairing_sees_an_effect_that_the_seed_noise_hides():
    """The same seed moves both methods alike: the differences are steady while each side varies a lot."""
    scratch = [78.0, 83.0, 88.0]
    kd = [79.0, 84.0, 89.5]
    e = paired_effect(kd, scratch)
    assert e.mean == pytest.approx(1.1667, abs=1e-4) and e.verdict == "higher"
    se_unpaired = math.sqrt(mean_std(kd)[1] ** 2 / 3 + mean_std(scratch)[1] ** 2 / 3)
    assert abs(e.mean) < 2 * se_unpaired                        # unpaired, this is within the noise


def test_one_pair_has_no_interval():
    e = paired_effect({0: 85.0}, {0: 82.0, 1: 81.0})
    assert e.n == 1 and e.mean == 3.0 and math.isnan(e.std) and math.isnan(e.ci_low) and math.isnan(e.ci_high)
    assert e.verdict == "one seed"
    assert format_effect(e) == "+3.00 ± – (95 % CI –, n = 1)"
    none = paired_effect({0: 85.0}, {1: 82.0})
    assert none.n == 0 and math.isnan(none.mean) and none.verdict == "one seed"


def test_format_effect_reads_mean_std_interval_and_n():
    e = paired_effect([2.85, 3.65, 4.45], [0.0, 0.0, 0.0])          # d̄ = 3.65, s_d = 0.80
    assert format_effect(e) == "+3.65 ± 0.80 (95 % CI +1.66 … +5.64, n = 3)"
    assert str(e) == format_effect(e)
    assert format_effect(e, ".1f") == "3.6 ± 0.8 (95 % CI 1.7 … 5.6, n = 3)"
    assert isinstance(e, PairedEffect)


def test_stats_needs_no_torch():
    script = "import sys, kd_lab.stats; assert 'torch' not in sys.modules, 'torch was imported'; print('light')"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "light"


def _pitman_morgan_accepts(a, b, variance_ratio):
    """The Pitman–Morgan test of Var(a) = λ·Var(b), by its definition: the correlation of a + √λ·b and a − √λ·b
    is zero; True where a two-sided 5 % t-test does not reject that."""
    u = [x + math.sqrt(variance_ratio) * y for x, y in zip(a, b)]
    v = [x - math.sqrt(variance_ratio) * y for x, y in zip(a, b)]
    (mu, su), (mv, sv) = stats.mean_std(u), stats.mean_std(v)
    n = len(a)
    r = sum((x - mu) * (y - mv) for x, y in zip(u, v)) / ((n - 1) * su * sv)
    return r * r * (n - 2) / (1 - r * r) <= stats.t_critical(n - 2) ** 2


def test_spread_ratio_interval_is_where_the_pitman_morgan_test_accepts():
    a = [84.1, 83.2, 85.0, 83.9, 84.6, 82.8, 84.4, 83.5, 85.3, 83.0]
    b = [84.0, 83.9, 84.3, 84.1, 84.2, 83.8, 84.2, 84.0, 84.4, 83.9]
    res = stats.spread_ratio(dict(enumerate(a)), dict(enumerate(b)))
    assert res.ratio == pytest.approx(stats.mean_std(a)[1] / stats.mean_std(b)[1])
    assert res.ci_low < res.ratio < res.ci_high and res.n == 10
    for limit in (res.ci_low, res.ci_high):      # the limits are where the test turns: accepted inside, not outside
        assert _pitman_morgan_accepts(a, b, (limit * 0.999) ** 2) != _pitman_morgan_accepts(a, b, (limit * 1.001) ** 2)
    assert _pitman_morgan_accepts(a, b, res.ratio ** 2)
    assert "×" in str(res) and "n = 10" in str(res)


def test_spread_ratio_pairs_by_seed_and_needs_three_seeds_with_a_spread():
    res = stats.spread_ratio({0: 1.0, 1: 3.0, 2: 2.0, 7: 9.0}, {2: 2.0, 1: 1.5, 0: 1.0})
    assert res.seeds == (0, 1, 2)
    with pytest.raises(ValueError, match="at least 3 seeds"):
        stats.spread_ratio({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0})
    with pytest.raises(ValueError, match="a spread on both sides"):
        stats.spread_ratio([1.0, 2.0, 3.0], [5.0, 5.0, 5.0])
