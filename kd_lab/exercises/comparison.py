"""Self-checks of lesson 06, reading a comparison of methods (``notebooks/06_compare.ipynb``): the mean and
sample std over seeds of one method's runs, and the Pareto front of accuracy against cost.
"""
from __future__ import annotations

import torch

from ._common import _call, _report

__all__ = ["check_seed_summary", "check_pareto_front"]


def _summary_rows() -> list[dict]:
    """Rows like :func:`kd_lab.results.read_rows` gives: two methods, one failed run (accuracy None)."""
    acc = {"scratch": [81.2, 82.6, 80.9], "kd": [85.1, 86.9, 85.8]}
    rows = [{"method": m, "seed": s, "status": "ok", "accuracy": a} for m, v in acc.items() for s, a in enumerate(v)]
    return rows + [{"method": "kd", "seed": 3, "status": "failed", "accuracy": None}]


def _summary_mistake(out, rows, method) -> str:
    vals = torch.tensor([r["accuracy"] for r in rows if r["method"] == method and r["status"] == "ok"],
                        dtype=torch.float64)
    everyone = torch.tensor([r["accuracy"] for r in rows if r["status"] == "ok"], dtype=torch.float64)
    if abs(out[0] - float(everyone.mean())) < 1e-6:
        return "the mean is over every method's runs: keep only the rows of `method`"
    if abs(out[0] - float(vals.mean())) > 1e-6:
        return f"mean {out[0]:.4f} differs from {float(vals.mean()):.4f}"
    if abs(out[1] - float(vals.std(unbiased=False))) < 1e-6:
        return "that is the population std (divide by n): seeds are a sample, divide by n − 1 (torch's default)"
    return f"std {out[1]:.4f} differs from the sample std of the seeds"


def check_seed_summary(fn) -> bool:
    """``fn(rows, method) -> (mean, std)``: the mean and sample std (n − 1) of the test accuracy of the ``ok``
    runs of ``method`` in comparison rows (dicts with method, seed, status, accuracy)."""
    rows = _summary_rows()
    for method in ("kd", "scratch"):
        out, problem = _call(fn, [dict(r) for r in rows], method)
        if problem and "None" in problem:
            problem += " (a failed run's accuracy is None: keep the rows whose status is 'ok')"
        if problem is None and (not isinstance(out, (tuple, list)) or len(out) != 2):
            problem = f"return a pair (mean, std), got {out!r}"
        if problem is None:
            want = torch.tensor([r["accuracy"] for r in rows if r["method"] == method and r["status"] == "ok"],
                                dtype=torch.float64)
            if abs(float(out[0]) - float(want.mean())) < 1e-6 and abs(float(out[1]) - float(want.std())) < 1e-6:
                continue
            problem = f"method {method!r}: {_summary_mistake([float(v) for v in out], rows, method)}"
        return _report(False, problem)
    return _report(True, "mean and sample std over the ok runs of one method, failed runs left out")


def _pareto(points: dict, sign: float = 1.0) -> set:
    """Methods no other method beats: at least as accurate and at least as cheap, one of them strictly."""
    def beats(a, b):
        return a[0] >= b[0] and sign * a[1] <= sign * b[1] and (a[0] > b[0] or a[1] != b[1])
    return {m for m, p in points.items() if not any(beats(q, p) for n, q in points.items() if n != m)}


def _pareto_cases() -> list[dict]:
    g = torch.Generator().manual_seed(6)
    rand = {f"m{i}": (float(a), float(c)) for i, (a, c) in
            enumerate(zip(80 + 8 * torch.rand(12, generator=g), 10 + 90 * torch.rand(12, generator=g)))}
    return [{"scratch": (82.0, 15.0), "kd": (86.0, 40.0), "dkd": (84.0, 42.0), "dml": (85.0, 30.0)},
            {"a": (80.0, 10.0), "b": (80.0, 10.0), "c": (80.0, 12.0)}, rand]


def check_pareto_front(fn) -> bool:
    """``fn(points) -> names``: the methods on the Pareto front of ``points`` = {method: (accuracy, cost)} —
    those that no other method matches or beats on both (accuracy ≥, cost ≤, one of them strictly)."""
    for points in _pareto_cases():
        out, problem = _call(fn, dict(points))
        if problem is None and (out is None or isinstance(out, str)):
            problem = f"return a list or set of method names, got {out!r}"
        if problem:
            return _report(False, problem)
        got, want = set(out), _pareto(points)
        if got == want:
            continue
        if got == _pareto(points, -1.0):
            return _report(False, "you kept the most expensive methods: a lower cost is better")
        extra, missing = sorted(got - want), sorted(want - got)
        if extra:
            m = extra[0]
            by = next(n for n, q in points.items() if n != m and m not in _pareto({m: points[m], n: q}))
            return _report(False, f"{m} {points[m]} is not on the front: {by} {points[by]} is at least as accurate "
                                  f"and at least as cheap")
        return _report(False, f"{missing[0]} {points[missing[0]]} is on the front: no other method is more accurate "
                              f"at no more cost, or cheaper at no less accuracy (an equal point does not beat it)")
    return _report(True, "your front keeps exactly the methods no other beats on accuracy and cost, ties included")
