"""One check of every number the course takes: method options, the run's setting, command-line options,
slider values and sweep specs all go through :func:`check_number`.

A number is accepted when it is a real number (an ``int`` or a ``float``, NumPy scalars included; a
``bool`` is *not* a number, nor is a string), finite (no NaN, no ±inf) and in its range; an integer option
also needs an integral value. Anything else raises a ``ValueError`` that names the option, the allowed set
and the bad value, e.g. ``alpha must be a finite number in [0.0, 1.0], got nan``.

No torch and no other module of the course: every module may import this one.
"""
from __future__ import annotations

import math
import numbers

__all__ = ["check_number", "check_integer", "describe_range"]


def describe_range(low=None, high=None, *, low_open: bool = False, integer: bool = False) -> str:
    """The allowed set as the messages say it: ``"in [0.0, 1.0]"``, ``">= 0.0"``, ``"> 0"``, ``"in 2..4"``;
    an integer with only ``low = 1`` is ``"positive"`` (``"a positive integer"``)."""
    if integer and high is not None and low is not None:
        return f"in {low}..{high}"
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}]"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    if high is not None:
        return f"<= {high}"
    return ""


def _allowed_text(kind: str, low, high, low_open: bool, integer: bool, none_ok: bool) -> str:
    """``"a number in [0.0, 1.0]"``, ``"a positive integer or None"``, ..."""
    if integer and low == 1 and high is None and not low_open:
        text = "a positive integer"
    else:
        text = " ".join(filter(None, [kind, describe_range(low, high, low_open=low_open, integer=integer)]))
    return text + (" or None" if none_ok else "")


def check_number(name: str, value, low=None, high=None, *, low_open: bool = False, integer: bool = False,
                 none_ok: bool = False):
    """``value`` as a ``float`` (an ``int`` when ``integer``), after checking it is a finite real number in
    ``[low, high]`` (``(low, high]`` when ``low_open``; a bound of None is no bound); ``None`` passes through
    when ``none_ok``. Raises ``ValueError`` naming ``name``, the allowed set and ``value``.

    >>> check_number("alpha", 0.5, 0.0, 1.0)
    0.5
    >>> check_number("alpha", float("nan"), 0.0, 1.0)
    Traceback (most recent call last):
    ValueError: alpha must be a finite number in [0.0, 1.0], got nan
    """
    if value is None and none_ok:
        return None
    kind = "an integer" if integer else "a number"
    allowed = _allowed_text(kind, low, high, low_open, integer, none_ok)
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not real or (integer and not isinstance(value, numbers.Integral)):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    if not isinstance(value, numbers.Integral) and not math.isfinite(value):
        finite = allowed.replace("a number", "a finite number", 1)
        raise ValueError(f"{name} must be {finite}, got {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    if too_low or (high is not None and value > high):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return int(value) if integer else float(value)


def check_integer(name: str, value, low=None, high=None, *, none_ok: bool = False):
    """:func:`check_number` for an integer option: ``3`` passes, ``3.0``, ``True`` and ``"3"`` do not."""
    return check_number(name, value, low, high, integer=True, none_ok=none_ok)
