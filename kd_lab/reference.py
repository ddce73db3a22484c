"""Reference mode: a lesson's experiments read from the committed results of its sweeps.

A lesson's claims rest on sweeps (``experiments/*.toml``, run by ``python -m kd_lab sweep``), many seeded runs
that take from minutes to hours on a laptop. The results are committed under ``results/``, so by default a
lesson *reads* them — every figure and number of its experiment sections computed from those files in the cell
that shows them — and trains only what a student asks for in its panels. :func:`lesson_results` is the one
switch:

* **reference** (the default): read ``results/<name>.csv`` of the spec as committed, the full spec's cells,
  even in quick mode (the tests then check the lesson against the real results);
* **live** (``live=True``, or the environment variable ``KD_LAB_LIVE=1``): run the spec's missing cells first
  (:func:`kd_lab.sweep.run_sweep`, resuming from what is there; in quick mode the spec's ``[quick]`` cells into
  ``results/<name>-quick.csv``), then read them.

:class:`SweepResults` holds what a lesson needs: the rows, one record per (grid point, arm) with mean ± std and
the effect paired by seed (:func:`kd_lab.results.summarize_sweep`), the arm chosen on validation, the devices.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path

from . import sweep
from .experiments import Setting
from .results import best_on_validation, cell_rows, paired_fields, read_rows, summarize_sweep

__all__ = ["REPOSITORY", "SweepResults", "lesson_results", "load_sweeps", "live_mode", "spec_path"]

REPOSITORY = Path(__file__).resolve().parents[1]     # the course's checkout (the package is installed editable)
_SETTING_FIELDS = {f.name for f in fields(Setting)}


def live_mode() -> bool:
    """True when ``KD_LAB_LIVE=1``: lessons re-run their sweeps (resuming) instead of reading the results."""
    value = os.environ.get("KD_LAB_LIVE", "0").strip()
    if value not in ("0", "1", ""):
        raise ValueError(f"KD_LAB_LIVE must be 0 (read the committed results) or 1 (re-run the sweeps), got {value!r}")
    return value == "1"


def spec_path(name: str | os.PathLike) -> Path:
    """The spec file ``name``: a path, or a file name under the course's ``experiments/`` folder, with or without
    ``.toml`` (``"01_label_budget"``)."""
    path = Path(name)
    if path.exists():
        return path
    candidate = REPOSITORY / "experiments" / (path.name if path.suffix == ".toml" else f"{path.name}.toml")
    if not candidate.exists():
        known = sorted(p.stem for p in (REPOSITORY / "experiments").glob("*.toml"))
        raise ValueError(f"no sweep spec {str(name)!r}; the course's specs: {known}")
    return candidate


@dataclass
class SweepResults:
    """One sweep's results as a lesson reads them: ``rows`` (the latest row of each of the spec's cells, in plan
    order), ``records`` (one per grid point and arm, :func:`kd_lab.results.summarize_sweep`), and the ``plan``."""

    spec: sweep.Spec
    path: Path
    rows: list[dict]
    records: list[dict]
    plan: list[dict]
    live: bool

    def record(self, arm: str, **point) -> dict:
        """The record of ``arm`` at the grid point given by keyword (none needed for a sweep of one point)."""
        found = [r for r in self.records if r["arm"] == arm and _at(r, point)]
        if len(found) != 1:
            arms = list(dict.fromkeys(r["arm"] for r in self.records))
            points = list(dict.fromkeys(r["point_key"] for r in self.records))
            raise ValueError(f"{self.spec.name}: {len(found)} records of arm {arm!r} at {point or 'any point'}; "
                           f"arms: {arms}; grid points: {points}")
        return found[0]

    def points(self, key: str) -> list:
        """The values of grid field ``key`` in the spec's order (None: every image, "all")."""
        return list(dict.fromkeys(r["point"][key] for r in self.records))

    def best(self, arms=None, **point) -> dict:
        """The record of the arm with the highest mean **validation** accuracy among ``arms`` (default: all) at one
        grid point; the test set chooses nothing (:func:`kd_lab.results.best_on_validation`)."""
        by_key = {r["cell_key"]: r for r in self.rows}
        rows = [{**by_key[p["cell_key"]], "arm": p["arm"]} for p in self.plan
                if _at(p, point) and p["cell_key"] in by_key]
        return self.record(best_on_validation(rows, arms)["arm"], **point)

    def best_over_grid(self, arms, **point) -> dict:
        """The record with the highest mean **validation** accuracy among ``arms`` over every grid point that
        matches ``point`` (e.g. an arm's weights ``feature_weight`` at one ``labeled``): a setting chosen on
        validation, its test accuracy reported, never used to choose. Records without a run are skipped."""
        arms = [arms] if isinstance(arms, str) else list(arms)
        found = [r for r in self.records if r["arm"] in arms and _at(r, point) and r["n"]]
        if not found:
            raise ValueError(f"{self.spec.name}: no run of the arms {arms} at {point or 'any point'} yet")
        return max(found, key=lambda r: r["val_mean"])          # max keeps the first of equal values

    def reference(self, *arms, **point) -> dict[str, dict[int, float]]:
        """``arm -> {seed: test accuracy in %}`` of ``arms`` at one grid point, the first arm the baseline: the
        bands a :class:`kd_lab.widgets.TrainingPanel` draws (give the panel :meth:`setting` of the same point)."""
        return {arm: dict(self.record(arm, **point)["test"]) for arm in arms}

    def metric(self, arm: str, name: str, **point) -> dict[int, float]:
        """``{seed: value}`` of the method's measurement ``name`` at the end of each ok run of ``arm`` (the rows'
        ``metrics``, e.g. DML's ``acc_1``, ``ece_0``, ``agree_0_1``; fractions as measured, not percent)."""
        rec = self.record(arm, **point)
        lacking = [s for s, m in rec["metrics"].items() if name not in m]
        if lacking:
            held = sorted({k for m in rec["metrics"].values() for k in m})
            raise ValueError(f"{self.spec.name}: the runs of arm {arm!r} (seeds {lacking}) hold no metric {name!r}; "
                             f"they hold {held or 'none'}")
        return {s: float(m[name]) for s, m in rec["metrics"].items()}

    def paired(self, arm: str, baseline: str, metric: str | None = None, scale: float = 1.0, **point) -> dict:
        """The effect of ``arm`` over ``baseline`` at one grid point, paired by seed, as a record the effect plots
        draw (:func:`kd_lab.viz.plot_paired_effects`): on test accuracy (``metric`` None), or on ``scale`` times
        the measurement ``metric`` (e.g. ``metric="acc_1", scale=100``: peer 1's accuracy in points)."""
        def by_seed(a):
            if metric is None:
                return self.record(a, **point)["test"]
            return {s: scale * v for s, v in self.metric(a, metric, **point).items()}
        return {"arm": arm, "baseline": baseline, "point": dict(point), "metric": metric or "accuracy",
                **paired_fields(by_seed(arm), by_seed(baseline))}

    def setting(self, **point) -> Setting:
        """The :class:`~kd_lab.experiments.Setting` the sweep's runs at ``point`` trained with (full mode): a panel
        that trains with it is comparable with :meth:`reference`."""
        with _quick_mode(False):
            base = sweep.base_setting(self.spec)
        return replace(base, **{k: v for k, v in point.items() if k in _SETTING_FIELDS})

    @property
    def devices(self) -> list[str]:
        """The devices the rows ran on, as recorded (``cpu (2 threads)``, a GPU's model)."""
        return sorted({r["device"] for r in self.rows})

    @property
    def missing(self) -> int:
        """Cells of the spec without an ok row (a sweep still running, or stopped)."""
        return sum(r["missing"] + r["failed"] for r in self.records)

    def frame(self):
        """The records as a pandas DataFrame: grid values, arm, n, test and validation mean ± std, the paired
        effect over the baseline with its 95 % interval, images/s."""
        import pandas as pd
        cols = ["arm", "baseline", "n", "acc_mean", "acc_std", "val_mean", "val_std", "diff_mean", "ci_low",
                "ci_high", "pairs", "images_per_s"]
        return pd.DataFrame([{**r["point"], **{c: r[c] for c in cols}} for r in self.records])


def _at(entry: dict, point: dict) -> bool:
    return all(entry["point"].get(k) == v for k, v in point.items())


def lesson_results(spec, *, live: bool | None = None, results_dir=None, progress: bool = True) -> SweepResults:
    """The results of sweep ``spec`` (a spec file, or a name under ``experiments/``): read from the committed
    ``results/<name>.csv`` (the default, the full spec even in quick mode), or, when ``live`` (default
    :func:`live_mode`), after running its missing cells (quick mode: the ``[quick]`` cells). Reference mode
    without a committed row is an error that says how to make them."""
    live = live_mode() if live is None else live
    path = spec_path(spec)
    results_dir = Path(results_dir) if results_dir is not None else REPOSITORY / "results"
    with _quick_mode(None if live else False):            # reference mode: the full spec's cells and file
        loaded = sweep.load_spec(path)
        out = sweep.default_out(loaded, results_dir)
        if live:
            sweep.run_sweep(loaded, out=out, progress=progress)
        latest = cell_rows(read_rows(out))
        device = next((json.loads(r["setting"])["device"] for r in latest.values() if r["setting"]), "auto")
        cells, plan = sweep.plan_cells(loaded, device)   # keyed by the device type the rows ran on
    rows = [latest[c["cell_key"]] for c in cells if c["cell_key"] in latest]
    if not rows:
        raise FileNotFoundError(f"{out} holds no results of {path.name}: run `python -m kd_lab sweep {path}` "
                                "(or set KD_LAB_LIVE=1 to run it from the lesson)")
    return SweepResults(loaded, out, rows, summarize_sweep(rows, plan), plan, live)


@contextmanager
def _quick_mode(value: bool | None):
    """Within the block :func:`kd_lab.train.quick_mode` is ``value`` (None: unchanged)."""
    saved = os.environ.get("KD_LAB_QUICK")
    if value is not None:
        os.environ["KD_LAB_QUICK"] = "1" if value else "0"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("KD_LAB_QUICK", None)
        else:
            os.environ["KD_LAB_QUICK"] = saved


def load_sweeps(specs: dict, *, live: bool | None = None, results_dir=None) -> dict[str, SweepResults | None]:
    """``{name: results}`` of a lesson's sweeps (``{name: spec}``, :func:`lesson_results`), printing for each the
    file, the runs, the cells still missing, the budget and the devices; a sweep without results yet is None
    (and says how to make them)."""
    out = {}
    for name, spec in specs.items():
        try:
            res = out[name] = lesson_results(spec, live=live, results_dir=results_dir, progress=False)
        except FileNotFoundError as err:
            print(f"{name}: not run yet — {err}")
            out[name] = None
            continue
        where = res.path.relative_to(REPOSITORY) if res.path.is_relative_to(REPOSITORY) else res.path
        budget = res.spec.setting.get("steps") or res.spec.setting.get("epochs")
        unit = "steps" if "steps" in res.spec.setting else "epochs"
        print(f"{name:<13} {where}: {sum(r['n'] for r in res.records)} runs, {res.missing} cells missing, "
              f"{budget} {unit} per run, device: {', '.join(res.devices)}")
    return out
