"""Statistics over seeds, defined once for the whole course: mean ± std, paired effects, their formatting.

Every accuracy of the course is a sample over a few seeds, so:

* :func:`mean_std` gives the mean and the **sample** standard deviation (ddof = 1)

      x̄ = (1/n) Σᵢ xᵢ,    s = √( Σᵢ (xᵢ − x̄)² / (n − 1) ),

  with s = NaN for a single value (one seed says nothing about the spread) and x̄ = s = NaN for none;
  :func:`format_mean_std` shows a NaN as "–".
* :func:`paired_effect` compares two methods run on the same seeds: the per-seed differences
  dᵢ = aᵢ − bᵢ cancel what a seed does to both (its labeled subset, its initialisation, its batch order),
  and their mean d̄ gets the 95 % Student-t confidence interval

      d̄ ± t₀.₉₇₅,ₙ₋₁ · s_d / √n

  (Student, "The probable error of a mean", Biometrika 6(1), 1908; e.g. NIST/SEMATECH e-Handbook of
  Statistical Methods, §1.3.5.2, "Confidence limits for the mean").
  :func:`t_critical` gives t₀.₉₇₅,df without scipy.
* :func:`spread_ratio` compares the seed-to-seed *spread* of two arms run on the same seeds: the ratio of
  their standard deviations s_a / s_b with the 95 % interval of the Pitman–Morgan test (E. J. G. Pitman, "A
  note on normal correlation", Biometrika 31, 1939; W. A. Morgan, "A test for the significance of the
  difference between the two variances in a sample from a normal bivariate population", Biometrika 31, 1939),
  which allows for the correlation r of the paired values: with F = s_a² / s_b² and
  K = 1 + 2 (1 − r²) t²₀.₉₇₅,ₙ₋₂ / (n − 2), the variance ratio lies in F · (K ∓ √(K² − 1)).

No torch: plain floats in, plain floats out.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["mean_std", "t_critical", "paired_differences", "paired_effect", "PairedEffect", "spread_ratio",
           "SpreadRatio", "format_number", "format_mean_std", "format_effect"]

# t₀.₉₇₅,df for df = 1..30 (two-sided 95 %), to 3 decimals, from the table of critical values of Student's t
# in the NIST/SEMATECH e-Handbook of Statistical Methods, §1.3.6.7.2.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
_Z975 = 1.959963984540054          # Φ⁻¹(0.975), the df → ∞ limit


def mean_std(values: Iterable) -> tuple[float, float]:
    """``(x̄, s)`` of ``values``: mean and sample standard deviation (ddof = 1, see the module docstring).

    One value gives ``(x, nan)``, none ``(nan, nan)``. ``None`` entries (a failed run's missing value) are
    left out; any other number (a float, an int, a 0-d tensor or NumPy scalar) is converted with ``float``."""
    xs = [float(v) for v in values if v is not None]
    n = len(xs)
    if n == 0:
        return math.nan, math.nan
    mean = math.fsum(xs) / n
    if n == 1:
        return mean, math.nan
    return mean, math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))


def t_critical(df: int) -> float:
    """t₀.₉₇₅,df: the two-sided 95 % critical value of Student's t with ``df`` degrees of freedom.

    df = 1..30 from the table above; beyond, the Cornish–Fisher expansion of Abramowitz & Stegun (1964),
    eq. 26.7.5, t ≈ z + g₁(z)/df + g₂(z)/df² + g₃(z)/df³ + g₄(z)/df⁴ with z = Φ⁻¹(0.975) = 1.95996, within
    10⁻⁷ of the exact quantile there (at df = 30 it gives 2.04227, the table 2.042)."""
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"degrees of freedom must be a positive integer, got {df!r}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def paired_differences(a, b) -> dict:
    """``{seed: aₛ − bₛ}`` over the seeds both sides have, in ``a``'s order.

    ``a`` and ``b``: mappings ``{seed: value}`` (a seed missing on either side, or whose value is ``None``,
    is left out), or two sequences of the same length, paired by position (position = seed)."""
    a, b = _by_seed(a, b)
    return {s: float(a[s]) - float(b[s]) for s in a if s in b and a[s] is not None and b[s] is not None}


def _by_seed(a, b) -> tuple[Mapping, Mapping]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a, b
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        raise ValueError("give both sides as {seed: value} mappings or both as sequences, not one of each")
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise ValueError(f"sequences are paired by position and need the same length, got {len(a)} and {len(b)}")
    return dict(enumerate(a)), dict(enumerate(b))


@dataclass(frozen=True)
class PairedEffect:
    """The effect of a over b on the same seeds: the differences dₛ = aₛ − bₛ, d̄ ± s_d, the 95 % t-interval."""

    seeds: tuple
    differences: tuple[float, ...]
    mean: float                 # d̄
    std: float                  # s_d (sample std, NaN for one pair)
    ci_low: float               # d̄ − t₀.₉₇₅,ₙ₋₁ s_d / √n
    ci_high: float              # d̄ + t₀.₉₇₅,ₙ₋₁ s_d / √n

    @property
    def n(self) -> int:
        return len(self.differences)

    @property
    def verdict(self) -> str:
        """``higher`` (the interval lies above 0), ``lower`` (below 0), ``within noise`` (it holds 0), or
        ``one seed`` when fewer than two pairs leave no interval."""
        if self.n < 2 or math.isnan(self.ci_low):
            return "one seed"
        return "higher" if self.ci_low > 0 else "lower" if self.ci_high < 0 else "within noise"

    def __str__(self) -> str:
        return format_effect(self)


def paired_effect(a, b) -> PairedEffect:
    """Pair ``a`` and ``b`` by seed (see :func:`paired_differences`) and return d̄, s_d, n and the 95 %
    Student-t interval d̄ ± t₀.₉₇₅,ₙ₋₁ · s_d / √n (NaN with fewer than two pairs)."""
    diffs = paired_differences(a, b)
    mean, std = mean_std(diffs.values())
    n = len(diffs)
    half = t_critical(n - 1) * std / math.sqrt(n) if n > 1 else math.nan
    return PairedEffect(seeds=tuple(diffs), differences=tuple(diffs.values()), mean=mean, std=std,
                        ci_low=mean - half, ci_high=mean + half)


@dataclass(frozen=True)
class SpreadRatio:
    """How the spread of a compares with b's on the same seeds: s_a / s_b and its 95 % interval."""

    seeds: tuple
    std_a: float
    std_b: float
    ratio: float                # s_a / s_b
    ci_low: float               # of s_a / s_b (the square roots of the variance ratio's limits)
    ci_high: float
    correlation: float          # r of the paired values

    @property
    def n(self) -> int:
        return len(self.seeds)

    def __str__(self) -> str:
        return (f"{format_number(self.ratio)}× (95 % CI {format_number(self.ci_low)} … "
                f"{format_number(self.ci_high)}, n = {self.n})")


def spread_ratio(a, b) -> SpreadRatio:
    """The ratio of the sample standard deviations of ``a`` and ``b`` over the seeds both have (paired as in
    :func:`paired_differences`), with the Pitman–Morgan 95 % interval (module docstring). Needs 3 pairs or more
    (the test has n − 2 degrees of freedom) and a spread on both sides."""
    a, b = _by_seed(a, b)
    seeds = tuple(s for s in a if s in b and a[s] is not None and b[s] is not None)
    n = len(seeds)
    if n < 3:
        raise ValueError(f"a spread ratio needs at least 3 seeds on both sides, got {n} ({list(seeds)})")
    xa, xb = [float(a[s]) for s in seeds], [float(b[s]) for s in seeds]
    (ma, sa), (mb, sb) = mean_std(xa), mean_std(xb)
    if sa == 0 or sb == 0:
        raise ValueError(f"a spread ratio needs a spread on both sides, got std {sa!r} and {sb!r}")
    r = sum((x - ma) * (y - mb) for x, y in zip(xa, xb)) / ((n - 1) * sa * sb)
    f = sa**2 / sb**2
    k = 1 + 2 * (1 - r * r) * t_critical(n - 2) ** 2 / (n - 2)
    root = math.sqrt(k * k - 1)
    return SpreadRatio(seeds=seeds, std_a=sa, std_b=sb, ratio=sa / sb, ci_low=math.sqrt(f * (k - root)),
                       ci_high=math.sqrt(f * (k + root)), correlation=r)


def format_number(value, spec: str = ".2f") -> str:
    """``format(value, spec)``, or "–" for ``None`` and NaN (no value, or no spread from one seed)."""
    return "–" if value is None or math.isnan(value) else format(value, spec)


def format_mean_std(mean, std, spec: str = ".2f") -> str:
    """``"83.75 ± 0.15"``; a NaN std (one seed) shows as ``"81.50 ± –"``. Use with :func:`mean_std`:
    ``format_mean_std(*mean_std(values))``. A sign in ``spec`` (``"+.2f"``) applies to the mean only."""
    return f"{format_number(mean, spec)} ± {format_number(std, spec.replace('+', ''))}"


def format_effect(effect: PairedEffect, spec: str = "+.2f") -> str:
    """``"+3.65 ± 0.80 (95 % CI +1.66 … +5.64, n = 3)"``: d̄ ± s_d, the t-interval and the number of pairs."""
    ci = "–" if math.isnan(effect.ci_low) else \
        f"{format_number(effect.ci_low, spec)} … {format_number(effect.ci_high, spec)}"
    return f"{format_mean_std(effect.mean, effect.std, spec)} (95 % CI {ci}, n = {effect.n})"
