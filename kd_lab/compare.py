"""Lesson 06: every method of the course on one budget, over seeds, with its cost — one sweep.

:func:`run_comparison` builds a sweep spec in memory (:func:`comparison_spec`: one arm per method at its
defaults, a grid over labeled-set sizes, the given seeds and :class:`~kd_lab.experiments.Setting`) and runs it
with :func:`kd_lab.sweep.run_sweep`: every (labeled-set size, seed, method) goes through the generic
:func:`kd_lab.experiments.train_method` — the same data, student, budget, optimizer and seeds for every method —
and gets one CSV row when it finishes (one write, flushed and fsync'ed, so Ctrl-C or a kill leaves a valid
file). A run that raises gets a ``failed`` row with its error and the others go on. Rerunning the same
comparison skips every run whose latest row is ``ok``: an interrupted comparison resumes.
``experiments/compare.toml`` is the same sweep as a spec file (``python -m kd_lab sweep experiments/compare.toml``
and ``python -m kd_lab compare --steps 400`` share their rows).

Each row carries its ``cell_key`` (a hash of the complete setting, the method's options, the seed and the device
type) and the ``setting_key`` of the shared setting (every Setting field but the labeled-set size, and the device
type), so runs of another budget, or of a method whose defaults changed, never mix with these. Columns:
:data:`kd_lab.results.SWEEP_COLUMNS`; cost columns: see :mod:`kd_lab.sweep`.

This module is the running half; reading the CSV and aggregating it (``read_rows``, ``summarize``, ``effects``,
``markdown_table``, ...) is :mod:`kd_lab.results`, whose names are re-exported here for lesson 06's cells.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from .experiments import Setting
from .methods import METHODS, method_names
from .results import (
    COLUMNS,
    SWEEP_COLUMNS,
    current_rows,
    effects,
    labeled_sizes,
    latest_rows,
    markdown_table,
    options_text,
    per_method,
    read_rows,
    setting_of,
    summarize,
    write_report,
)
from .sweep import Spec, run_sweep, setting_key, spec_from_dict

__all__ = ["COLUMNS", "SWEEP_COLUMNS", "resolve_methods", "parse_labeled", "setting_key", "default_out",
           "comparison_spec", "run_comparison", "read_rows", "latest_rows", "labeled_sizes", "per_method",
           "summarize", "current_rows", "effects", "setting_of", "markdown_table", "write_report", "options_text"]


# ------------------------------------------------------------------------------------------ input
def resolve_methods(methods=None) -> list[str]:
    """Registered method names in course order (:func:`kd_lab.methods.method_names`: by lesson, then in
    registration order): ``None``/``"all"`` = every one, else a comma list or list."""
    order = method_names()
    if methods is None or methods == "all":
        return order
    names = [n.strip() for n in methods.split(",")] if isinstance(methods, str) else [str(n) for n in methods]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in METHODS]
    if not names or unknown:
        raise ValueError(f"unknown method(s) {unknown or methods!r}; choose from {order} (or 'all')")
    return list(dict.fromkeys(names))


def parse_labeled(labeled) -> list[int | None]:
    """Labeled-set sizes: an int, ``"all"``/``None`` (every training image), or a comma list/list of them."""
    items = labeled.split(",") if isinstance(labeled, str) else labeled if isinstance(labeled, (list, tuple)) \
        else [labeled]
    sizes = []
    for item in items:
        text = str(item).strip().lower()
        if item is None or text == "all":
            sizes.append(None)
        elif text.isdigit() and int(text) > 0:
            sizes.append(int(text))
        else:
            raise ValueError(f"labeled sizes must be positive integers or 'all', got {item!r}")
    if not sizes:
        raise ValueError("give at least one labeled size")
    return list(dict.fromkeys(sizes))


def _seeds(seeds) -> list[int]:
    """``N`` -> seeds 0..N−1; a list of ints is kept as given."""
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds <= 0:
            raise ValueError(f"seeds must be a positive number of seeds, got {seeds}")
        return list(range(seeds))
    values = list(seeds)
    if not values or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in values):
        raise ValueError(f"seeds must be a positive count or a list of non-negative integers, got {seeds!r}")
    return list(dict.fromkeys(values))


def default_out(dataset: str = "fashion-mnist", quick: bool = False) -> Path:
    """``results/compare-<dataset>.csv`` (``-quick`` added in quick mode, so tiny runs stay apart)."""
    return Path("results") / f"compare-{dataset}{'-quick' if quick else ''}.csv"


# ------------------------------------------------------------------------------------- the sweep
def comparison_spec(methods=None, seeds=3, labeled=1000, setting: Setting | None = None,
                    name: str = "compare-fashion-mnist", baseline: str = "scratch") -> Spec:
    """The comparison as a sweep spec: one arm per method (:func:`resolve_methods`) at its defaults, labelled by
    its name, compared with ``baseline`` (the first method when it is not compared); a grid over the labeled
    sizes (:func:`parse_labeled`); ``seeds`` a count N (0..N−1) or a list; every other field of ``setting``."""
    methods, seeds, sizes = resolve_methods(methods), _seeds(seeds), parse_labeled(labeled)
    setting = setting or Setting.default()
    fields = {k: v for k, v in asdict(setting).items() if k != "labeled" and v is not None}
    if setting.test_size is None:
        fields["test_size"] = "all"
    if baseline not in methods:
        baseline = methods[0]
    data = {"name": name, "seeds": seeds, "methods": methods, "baseline": baseline,
            "grid": {"labeled": ["all" if n is None else n for n in sizes]}, **fields}
    return spec_from_dict(data, "python -m kd_lab compare", quick=False)


def run_comparison(methods=None, seeds=3, labeled=1000, setting: Setting | None = None, device="auto",
                   out=None, resume: bool = True, progress: bool = True, baseline: str = "scratch") -> list[dict]:
    """Train every (labeled size, seed, method) on ``setting`` (its ``labeled`` replaced by each size),
    appending a row per run to the CSV ``out`` and writing its report next to it (``.md``); returns the latest
    row of every run of the grid, seed-major (every method of seed 0 first).

    ``methods``: see :func:`resolve_methods`; ``seeds``: a count N (seeds 0..N−1) or a list;
    ``labeled``: see :func:`parse_labeled`. ``resume`` skips runs whose latest row is ``ok``; with
    ``resume=False`` every run is done again and its new row supersedes the old one.
    """
    setting = setting or Setting.default()
    out = Path(out) if out is not None else default_out(setting.dataset)
    spec = comparison_spec(methods, seeds, labeled, setting, name=out.stem, baseline=baseline)
    return run_sweep(spec, device=device, out=out, resume=resume, progress=progress)
