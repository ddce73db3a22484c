"""Experiments as data: a sweep is a TOML spec file under ``experiments/``; this module runs it, resumably.

A spec names a data set, a student, a budget, seeds, the **arms** (a label, a method, its options, overrides of
:class:`~kd_lab.experiments.Setting` fields) and an optional **grid** (a cartesian product over setting fields,
e.g. ``labeled = [100, 300, 1000]``, or over a method option); every arm is compared with a **baseline** arm,
paired by seed. ``experiments/README.md`` documents the format; :func:`load_spec` reads and checks it, and every
error names the file, the key, the bad value and what is allowed.

A **cell** is one run: (arm, grid point, seed). :func:`run_sweep` trains the cells that have no ``ok`` row yet
and appends one CSV row per finished run (:data:`kd_lab.results.SWEEP_COLUMNS`): a single write of the whole
line, flushed and fsync'ed, so a stop at any moment (Ctrl-C, SIGTERM, SIGKILL, a dead worker) leaves a valid
file, a cut last line is dropped, and the same command resumes with the missing and failed cells. A row
carries its ``cell_key``, a hash of everything that determines the run (the complete setting, the method and
its options, the seed, the device type), so a changed spec never mixes with old rows. After the runs,
``results/<name>.md`` gets the setting, the evaluation protocol (:data:`kd_lab.experiments.PROTOCOL`), mean ±
std per arm and the paired effect over its baseline per grid point (:func:`kd_lab.results.summarize_sweep`).

Executors, all running the same top-level :func:`run_cell` on a plain dict and returning its row to the
driver, which alone writes the CSV: ``local`` with ``jobs=1`` (in this process), ``local`` with ``jobs=N``
(N spawned worker processes, ``torch.set_num_threads(max(1, cores // N))`` each, worker i on ``cuda:i % GPUs``),
and ``ray`` (Ray tasks on an existing cluster, ``num_cpus=threads``, ``num_gpus=1`` on CUDA, retried when a
worker dies). On the CPU the same (cell, threads) gives the same row whichever executor runs it.

Cost columns are those of :mod:`kd_lab.compare`: ``images_per_s`` = training images / training seconds,
``train_s``, ``wall_s`` (the whole run), ``peak_mem_mb`` (on CUDA ``max_memory_allocated``; on Linux CPUs the
growth of the process's peak resident set, VmHWM, after ``malloc_trim``; elsewhere the growth of ``getrusage``
maxrss; the ``memory`` column says which).
"""
from __future__ import annotations

import csv
import ctypes
import hashlib
import io
import itertools
import json
import os
import re
import signal
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path

import torch

from .checks import check_number
from .data import DATASETS
from .experiments import (
    Setting,
    load_data,
    method_teacher,
    protocol_text,
    teacher_recipe,
    train_method,
    validation_size,
)
from .methods import METHODS, method_info, method_names
from .models import PRESETS
from .recipes import RECIPES
from .results import OLDER_COLUMNS, SWEEP_COLUMNS, cell_rows, read_rows, summarize_sweep, sweep_markdown
from .train import _check_fit_args, device_name, pick_device, progress_bar, quick_mode

__all__ = ["Arm", "Spec", "SETTING_FIELDS", "load_spec", "spec_from_dict", "base_setting", "setting_key",
           "plan_cells", "todo_cells", "reusable_rows", "reuse_rows", "default_out", "run_sweep", "run_cell",
           "write_sweep_report", "EXECUTORS"]

SETTING_FIELDS = tuple(f.name for f in fields(Setting))
_SETTING_DEFAULTS = {f.name: f.default for f in fields(Setting)}
SPEC_KEYS = ("name", "description", "seeds", "methods", "arms", "grid", "baseline", "quick", *SETTING_FIELDS)
ARM_KEYS = ("label", "method", "options", "baseline", *SETTING_FIELDS)
QUICK_KEYS = ("seeds", "grid", *SETTING_FIELDS)
EXECUTORS = ("local", "ray")


# ------------------------------------------------------------------------------------------ the spec
@dataclass(frozen=True)
class Arm:
    """One arm of a sweep: ``method`` with ``options`` (typed like the defaults) and ``setting`` overrides,
    compared with the arm labelled ``baseline`` (None: the baseline itself)."""

    label: str
    method: str
    options: dict = field(default_factory=dict)
    setting: dict = field(default_factory=dict)
    baseline: str | None = None


@dataclass(frozen=True)
class Spec:
    """A checked sweep spec (quick-mode overrides already applied where they apply)."""

    name: str
    arms: tuple[Arm, ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    setting: dict = field(default_factory=dict)       # Setting fields given at the top level
    grid: dict = field(default_factory=dict)          # Setting field -> values
    option_grid: dict = field(default_factory=dict)   # method option -> values
    description: str = ""
    path: str = "<spec>"


def load_spec(path, quick: bool | None = None) -> Spec:
    """Read and check the TOML spec at ``path``; ``quick`` (default: :func:`kd_lab.train.quick_mode`) applies
    its ``[quick]`` table. Every error is a ``ValueError`` that names the file, the key and the bad value."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such spec file") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML: {err}") from None
    return spec_from_dict(data, str(path), quick)


def spec_from_dict(data: dict, path: str = "<spec>", quick: bool | None = None) -> Spec:
    """Check a spec given as a dict (what :func:`load_spec` reads); ``path`` names it in error messages."""
    _check_keys(path, "", data, SPEC_KEYS)
    quick = quick_mode() if quick is None else quick
    overrides = data.get("quick", {})
    if not isinstance(overrides, dict):
        _fail(path, "quick", overrides, "a table of overrides")
    _check_keys(path, "quick.", overrides, QUICK_KEYS)
    data = _with_quick(data, overrides) if quick else data
    name = data.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        _fail(path, "name", name, "a file name of letters, digits, '.', '_' and '-'")
    setting = {k: _setting_value(path, k, data[k]) for k in SETTING_FIELDS if k in data}
    arms = _arms(path, data)
    grid, option_grid = _grid(path, data.get("grid", {}), arms)
    arms = _with_baselines(path, data, arms)
    description = data.get("description", "")
    if not isinstance(description, str):
        _fail(path, "description", description, "a string")
    return Spec(name=name, arms=arms, seeds=_spec_seeds(path, data.get("seeds", [0, 1, 2])), setting=setting,
                grid=grid, option_grid=option_grid, description=description, path=path)


def _fail(path: str, key: str, value, allowed: str):
    raise ValueError(f"{path}: {key} = {value!r} is not allowed; expected {allowed}")


def _check_keys(path: str, prefix: str, table: dict, allowed) -> None:
    unknown = [k for k in table if k not in allowed]
    if unknown:
        raise ValueError(f"{path}: unknown key {prefix}{unknown[0]} (= {table[unknown[0]]!r}); allowed keys: "
                         f"{', '.join(allowed)}")


def _with_quick(data: dict, overrides: dict) -> dict:
    """``data`` with the ``[quick]`` table applied: its setting fields and seeds replace the top level's (a
    budget given there replaces the other budget too), its ``grid`` replaces the grid's lists it names."""
    out = {k: v for k, v in data.items() if not (k in ("steps", "epochs") and {"steps", "epochs"} & set(overrides))}
    out.update({k: v for k, v in overrides.items() if k != "grid"})
    if "grid" in overrides:
        out["grid"] = {**data.get("grid", {}), **overrides["grid"]}
    return out


def _is_number(value, low=None, *, low_open: bool = False, integer: bool = False) -> bool:
    """Whether :func:`kd_lab.checks.check_number` accepts ``value`` (finite, in range, a bool is no number): the
    spec's errors then say which file and key, in :func:`_fail`."""
    try:
        check_number("value", value, low, low_open=low_open, integer=integer)
    except ValueError:
        return False
    return True


def _positive_int(value) -> bool:
    return _is_number(value, 1, integer=True)


def _setting_value(path: str, key: str, value, name: str | None = None):
    """Setting field ``name`` (default: ``key``, the key the spec gives it under), checked and normalised ("all"
    -> None for sizes, an int lr -> float)."""
    name = name or key
    if name in ("labeled", "test_size") and value == "all":
        return None
    checks = {
        "dataset": (lambda v: v in DATASETS, f"one of {list(DATASETS)}"),
        "student": (lambda v: v in PRESETS, f"a model preset, one of {list(PRESETS)}"),
        "teacher": (lambda v: v in RECIPES, f"a teacher recipe, one of {list(RECIPES)}"),
        "lr": (lambda v: _is_number(v, 0, low_open=True), "a number > 0"),
        "validation": (lambda v: _is_number(v, 0, integer=True), "an integer >= 0 (0: no validation split)"),
        "labeled": (_positive_int, "a positive integer or 'all'"),
        "test_size": (_positive_int, "a positive integer or 'all'"),
    }
    if isinstance(_SETTING_DEFAULTS[name], bool):
        checks[name] = (lambda v: isinstance(v, bool), "true or false")
    ok, allowed = checks.get(name, (_positive_int, "a positive integer"))
    if not ok(value):
        _fail(path, key, value, allowed)
    return float(value) if name == "lr" else value


def _option_value(path: str, key: str, method: str, name: str, value):
    """A method option's value, typed like its default (an int for a float option becomes a float)."""
    defaults = method_info(method).defaults
    if name not in defaults:
        raise ValueError(f"{path}: {key}: method {method!r} has no option {name!r}; its options: "
                         f"{sorted(defaults) or 'none'}")
    default = defaults[name]
    if isinstance(default, bool):
        ok, allowed = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, allowed = _is_number(value, integer=True), "an integer"
    elif isinstance(default, float):
        ok, allowed = _is_number(value), "a finite number"
    elif isinstance(default, str):
        ok, allowed = isinstance(value, str), "a string"
    else:
        ok, allowed = isinstance(value, (bool, int, float, str)), "a string, a number or true/false"
    if not ok:
        _fail(path, key, value, f"{allowed} (the default of {method}'s {name} is {default!r})")
    return float(value) if isinstance(default, float) else value


def _spec_seeds(path: str, seeds) -> tuple[int, ...]:
    allowed = "a non-empty list of distinct integers >= 0"
    if not isinstance(seeds, list) or not seeds:
        _fail(path, "seeds", seeds, allowed)
    for s in seeds:
        if not isinstance(s, int) or isinstance(s, bool) or s < 0:
            _fail(path, "seeds", seeds, allowed)
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        _fail(path, "seeds", seeds, f"{allowed}; {repeated} appear more than once")
    return tuple(seeds)


def _arms(path: str, data: dict) -> list[Arm]:
    """The arms: one per method of ``methods`` ("all" or a list, at its defaults), then each ``[[arms]]``."""
    arms = []
    methods = data.get("methods", [])
    if methods == "all":
        methods = method_names()
    if not isinstance(methods, list):
        _fail(path, "methods", methods, "'all' or a list of method names")
    for i, m in enumerate(methods):
        _method(path, f"methods[{i}]", m)
        arms.append(Arm(label=m, method=m))
    tables = data.get("arms", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        _fail(path, "arms", tables, "an array of tables, [[arms]]")
    for i, table in enumerate(tables):
        arms.append(_arm(path, f"arms[{i}]", table))
    if not arms:
        raise ValueError(f"{path}: no arm; give [[arms]] tables (label, method, options) or methods = [...]")
    labels = [a.label for a in arms]
    repeated = sorted({lab for lab in labels if labels.count(lab) > 1})
    if repeated:
        raise ValueError(f"{path}: arm labels must be distinct; {repeated} appear more than once in {labels}")
    return arms


def _method(path: str, key: str, name) -> str:
    if name not in METHODS:
        _fail(path, key, name, f"a registered method, one of {method_names()}")
    return name


def _arm(path: str, where: str, table: dict) -> Arm:
    _check_keys(path, f"{where}.", table, ARM_KEYS)
    if "method" not in table:
        raise ValueError(f"{path}: {where} has no method; give method = one of {method_names()}")
    method = _method(path, f"{where}.method", table["method"])
    label = table.get("label", method)
    if not isinstance(label, str) or not label.strip() or "|" in label:
        _fail(path, f"{where}.label", label, "a non-empty string without '|'")
    options = table.get("options", {})
    if not isinstance(options, dict):
        _fail(path, f"{where}.options", options, "a table of method options")
    options = {k: _option_value(path, f"{where}.options.{k}", method, k, v) for k, v in options.items()}
    setting = {k: _setting_value(path, f"{where}.{k}", v, k) for k, v in table.items() if k in SETTING_FIELDS}
    return Arm(label=label, method=method, options=options, setting=setting, baseline=table.get("baseline"))


def _grid(path: str, grid, arms: list[Arm]) -> tuple[dict, dict]:
    """``({setting field: values}, {option: values})`` of the ``[grid]`` table, each list checked."""
    if not isinstance(grid, dict):
        _fail(path, "grid", grid, "a table of lists, e.g. [grid] labeled = [100, 1000]")
    _check_keys(path, "grid.", grid, ("options", *SETTING_FIELDS))
    fields_grid = {k: _grid_values(path, f"grid.{k}", v, lambda key, x, k=k: _setting_value(path, key, x, k))
                   for k, v in grid.items() if k != "options"}
    for arm in arms:
        both = sorted(set(arm.setting) & set(fields_grid))
        if both:
            raise ValueError(f"{path}: arm {arm.label!r} sets {both[0]}, which the grid sweeps; remove one of them")
    options = grid.get("options", {})
    if not isinstance(options, dict):
        _fail(path, "grid.options", options, "a table of option lists, e.g. [grid.options] temperature = [2, 4]")
    option_grid = {}
    for name, values in options.items():
        owners = [a for a in arms if name in method_info(a.method).defaults]
        if not owners:
            raise ValueError(f"{path}: grid.options.{name}: no arm's method has an option {name!r}; the arms' "
                             f"options: {sorted({o for a in arms for o in method_info(a.method).defaults})}")
        clash = [a.label for a in owners if name in a.options]
        if clash:
            raise ValueError(f"{path}: arm {clash[0]!r} sets option {name}, which the grid sweeps; remove one")
        option_grid[name] = _grid_values(path, f"grid.options.{name}", values,
                                         lambda key, x, name=name, owners=owners:
                                         [_option_value(path, key, a.method, name, x) for a in owners][0])
    return fields_grid, option_grid


def _grid_values(path: str, key: str, values, check) -> list:
    if not isinstance(values, list) or not values:
        _fail(path, key, values, "a non-empty list of values")
    checked = [check(key, v) for v in values]
    if len(set(map(repr, checked))) != len(checked):
        _fail(path, key, values, "a list of distinct values")
    return checked


def _with_baselines(path: str, data: dict, arms: list[Arm]) -> tuple[Arm, ...]:
    """Each arm with its baseline resolved: its own ``baseline``, else the spec's, else the first arm."""
    labels = [a.label for a in arms]
    default = data.get("baseline", labels[0])
    if default not in labels:
        _fail(path, "baseline", default, f"the label of an arm, one of {labels}")
    out = []
    for arm in arms:
        base = arm.baseline if arm.baseline is not None else default
        if base not in labels:
            _fail(path, f"baseline of arm {arm.label!r}", base, f"the label of an arm, one of {labels}")
        if arm.baseline is not None and base == arm.label:
            _fail(path, f"baseline of arm {arm.label!r}", base, "another arm's label (an arm is not its own baseline)")
        out.append(replace(arm, baseline=None if base == arm.label else base))
    return tuple(out)


# ---------------------------------------------------------------------------------------- cells
def base_setting(spec: Spec) -> Setting:
    """The spec's shared setting: :meth:`Setting.default` (quick mode's when on) with the spec's top-level
    fields; accuracy is measured at the last epoch only unless the spec sets ``eval_every``; the validation size
    resolved (:func:`kd_lab.experiments.validation_size`)."""
    setting = Setting.default(**spec.setting)
    return _resolved(setting, "eval_every" in spec.setting)


def _resolved(setting: Setting, eval_every_given: bool) -> Setting:
    return replace(setting, eval_every=setting.eval_every if eval_every_given else setting.epochs,
                   validation=validation_size(setting))


def setting_key(setting: Setting, device) -> tuple[str, str]:
    """``(key, json)``: a 12-hex hash of the setting without its labeled size (validation size resolved), plus the
    device type: the group a comparison's or a sweep's rows belong to."""
    shared = {k: v for k, v in asdict(setting).items() if k != "labeled"}
    shared["validation"] = validation_size(setting)
    blob = json.dumps({**shared, "device": torch.device(device).type}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12], blob


def _cell_key(setting: dict, method: str, options: dict, seed: int, device_type: str) -> str:
    """A 16-hex hash of everything that determines a run."""
    blob = json.dumps({"setting": setting, "method": method, "options": options, "seed": seed,
                       "device": device_type}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _points(spec: Spec) -> list[tuple[dict, dict]]:
    """Every grid point as ``(setting values, option values)``, in the order of the spec's lists."""
    f_names, o_names = list(spec.grid), list(spec.option_grid)
    f_points = [dict(zip(f_names, vs)) for vs in itertools.product(*spec.grid.values())]
    o_points = [dict(zip(o_names, vs)) for vs in itertools.product(*spec.option_grid.values())]
    return [(f, o) for f in f_points for o in o_points]


def plan_cells(spec: Spec, device="auto") -> tuple[list[dict], list[dict]]:
    """``(cells, plan)``: the distinct cells to run, in order (grid point, then seed, then arm: an interrupted
    sweep is balanced), each a plain dict for :func:`run_cell`; and the plan :func:`kd_lab.results.summarize_sweep`
    reads, one entry per (grid point, arm, seed). An arm whose method lacks a swept option has one cell for every
    value of it."""
    device_type = _device_type(device)
    base = base_setting(spec)
    group, _ = setting_key(base, device_type)
    cells, plan, seen = [], [], set()
    for f_point, o_point in _points(spec):
        for seed in spec.seeds:
            for arm in spec.arms:
                cell = _cell(spec, base, arm, f_point, o_point, seed, device, device_type, group)
                plan.append({"point": {**f_point, **o_point}, "arm": arm.label, "method": arm.method,
                             "baseline": arm.baseline, "seed": seed, "cell_key": cell["cell_key"]})
                if cell["cell_key"] not in seen:
                    seen.add(cell["cell_key"])
                    cells.append(cell)
    return cells, plan


def _cell(spec, base: Setting, arm: Arm, f_point: dict, o_point: dict, seed: int, device, device_type: str,
          group: str) -> dict:
    defaults = method_info(arm.method).defaults
    applied = {k: v for k, v in o_point.items() if k in defaults}
    options = {**defaults, **arm.options, **applied}
    given_eval = "eval_every" in spec.setting or "eval_every" in arm.setting or "eval_every" in f_point
    setting = _resolved(replace(base, **arm.setting, **f_point), given_eval)
    setting = replace(setting, teacher=setting.teacher or teacher_recipe(arm.method, setting.dataset))
    setting_dict = asdict(setting)
    return {"spec": spec.name, "arm": arm.label, "method": arm.method, "options": options, "setting": setting_dict,
            "seed": seed, "grid": {**f_point, **applied}, "device": str(device), "device_type": device_type,
            "setting_key": group, "cell_key": _cell_key(setting_dict, arm.method, options, seed, device_type)}


def _device_type(device) -> str:
    """The type of the device the runs will use (``"auto"``: this machine's pick)."""
    if str(device) == "auto":
        return pick_device("auto").type
    try:
        return torch.device(device).type
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from err


def default_out(spec: Spec, results_dir="results") -> Path:
    """``results/<name>.csv``; ``<name>-quick.csv`` in quick mode, so tests and tries never touch real results."""
    return Path(results_dir) / f"{spec.name}{'-quick' if quick_mode() else ''}.csv"


def todo_cells(cells: list[dict], out, resume: bool = True) -> list[dict]:
    """The cells still to run: all of them, or (``resume``) those whose latest row in ``out`` is not ``ok``."""
    if not resume:
        return list(cells)
    done = {k for k, r in cell_rows(read_rows(out)).items() if r["status"] == "ok"}
    return [c for c in cells if c["cell_key"] not in done]


def reusable_rows(cells: list[dict], out) -> dict[str, tuple[dict, Path]]:
    """``{cell key: (row, file)}``: the ``ok`` rows that other results files in ``out``'s folder hold for
    ``cells`` — the same cell key means the same setting, method, options, seed and device type, so the same
    run. Quick and full results never mix; a CSV that is not a results file is passed over."""
    out = Path(out)
    quick = out.stem.endswith("-quick")
    wanted, found = {c["cell_key"] for c in cells}, {}
    for other in sorted(out.parent.glob("*.csv")):
        if other == out or other.stem.endswith("-quick") != quick:
            continue
        try:
            rows = cell_rows(read_rows(other))
        except ValueError:
            continue
        for key, row in rows.items():
            if key in wanted and row["status"] == "ok" and key not in found:
                found[key] = (row, other)
    return found


def reuse_rows(todo: list[dict], out, progress: bool = True) -> list[dict]:
    """Copy into ``out`` the rows :func:`reusable_rows` finds for cells of ``todo``, relabelled with this spec's
    name, arm and grid; returns the cells still to run. Two specs that share an arm (lesson 01's controls and
    its DKD grid both train KD at 1,000 labels) train it once."""
    found = reusable_rows(todo, out)
    for cell in todo:
        if cell["cell_key"] in found:
            row, _ = found[cell["cell_key"]]
            _append_row(Path(out), {**row, "spec": cell["spec"], "arm": cell["arm"],
                                    "grid": json.dumps(cell["grid"], sort_keys=True)})
    if progress and found:
        print(f"{len(found)} cells copied from other results files in {Path(out).parent} (the same runs)")
    return [c for c in todo if c["cell_key"] not in found]


def _check_cells(cells: list[dict]) -> None:
    """Bad input that every run of a setting would fail on is an error before the first run (loads the data)."""
    for blob in dict.fromkeys(json.dumps(c["setting"], sort_keys=True) for c in cells):
        s = Setting(**json.loads(blob))
        train, _ = load_data(s.dataset, torch.device("cpu"))
        room = len(train) - s.validation
        if s.labeled is not None and s.labeled > room:
            raise ValueError(f"labeled sizes [{s.labeled}] exceed the {room} training images of {s.dataset} outside "
                             f"the {s.validation} validation images")
        _check_fit_args(s.epochs, s.batch_size, s.lr, train, s.eval_every)


# ------------------------------------------------------------------------------------- CSV rows
def _append_row(path: Path, row: dict) -> None:
    """Append one row as a single write of the whole line, then flush and fsync; writes the header into a new
    file (and first moves a file of older columns, :data:`kd_lab.results.OLDER_COLUMNS`, to the sweep's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _drop_cut_line(path)
    _upgrade_columns(path)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SWEEP_COLUMNS, lineterminator="\n")
    if not path.exists() or path.stat().st_size == 0:
        writer.writeheader()
    writer.writerow({k: _cell_text(row.get(k)) for k in SWEEP_COLUMNS})
    with path.open("a", newline="") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())


def _cell_text(value) -> str:
    """A CSV cell: empty for None, JSON for a dict (a parsed row's ``metrics``, copied by :func:`reuse_rows`), else
    the value's text on one line."""
    if value is None or value == {}:
        return ""
    return json.dumps(value, sort_keys=True) if isinstance(value, dict) else str(value).replace("\n", " ")


def _drop_cut_line(path: Path) -> None:
    """Truncate a last line that a kill cut short (no final newline), so the next row starts cleanly."""
    if path.exists() and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
        with path.open("r+b") as f:
            f.truncate(f.read().rfind(b"\n") + 1)


def _upgrade_columns(path: Path) -> None:
    """Rewrite a CSV of older columns (:data:`kd_lab.results.OLDER_COLUMNS`) with the sweep's (its rows kept, new
    columns empty): atomically, a temporary file renamed over it."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open(newline="") as f:
        header = next(csv.reader(f), [])
    if tuple(header) not in OLDER_COLUMNS:
        return
    with path.open(newline="") as f:
        old = list(csv.DictReader(f))
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SWEEP_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: r.get(k, "") for k in SWEEP_COLUMNS} for r in old)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------- peak memory
class _MemoryProbe:
    """Peak memory of one run in MB; ``kind`` says how it was measured (see the module docstring)."""

    def __init__(self, device: torch.device):
        self.device = device
        if device.type == "cuda":
            self.kind = "cuda max_memory_allocated"
            torch.cuda.reset_peak_memory_stats(device)
        elif _release_free_memory() and _reset_peak_rss():
            self.kind, self.start = "peak RSS growth (VmHWM)", _proc_status_mb("VmRSS")
        elif _maxrss_mb() is not None:
            self.kind, self.start = "maxrss growth", _maxrss_mb()
        else:
            self.kind = "not measured"

    def peak_mb(self) -> float | None:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        if self.kind.startswith("peak RSS"):
            return max(0.0, _proc_status_mb("VmHWM") - self.start)
        return max(0.0, _maxrss_mb() - self.start) if self.kind == "maxrss growth" else None


def _release_free_memory() -> bool:
    """Give the heap memory freed by earlier runs back to the system (glibc ``malloc_trim``), so that this run's
    RSS growth is not hidden by memory the process already holds; True also where that is not possible."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    return True


def _reset_peak_rss() -> bool:
    """Reset this process's VmHWM (Linux ≥ 4.0: write 5 to /proc/self/clear_refs); False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _proc_status_mb("VmHWM") > 0
    except OSError:
        return False


def _proc_status_mb(name: str) -> float:
    with open("/proc/self/status") as f:
        line = next(ln for ln in f if ln.startswith(name + ":"))
    return int(line.split()[1]) / 1024                      # kB -> MB


def _maxrss_mb() -> float | None:
    try:
        import resource  # not on Windows
    except ImportError:
        return None
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 2**20 if sys.platform == "darwin" else kb / 1024     # bytes on macOS, kB elsewhere


# --------------------------------------------------------------------------------------- one cell
_WORKER_INDEX: int | None = None        # this worker's number in a local pool (None: the driver, or a Ray task)
_WARMED: set = set()                    # devices this process has warmed up on


def run_cell(cell: dict) -> dict:
    """Train one cell (a plain dict from :func:`plan_cells`, with ``threads``) and return its CSV row; a run that
    raises returns a ``failed`` row. Runs with ``torch.set_num_threads(cell["threads"])`` (restored after).

    Importable by worker processes and Ray; needs nothing from the driver but the cell and the data and teacher
    caches of ``KD_LAB_DATA``/``KD_LAB_CACHE``. A run stopped by Ctrl-C raises ``KeyboardInterrupt``: no row."""
    before = torch.get_num_threads()
    threads = cell.get("threads") or before
    torch.set_num_threads(threads)
    try:
        dev = pick_device(_worker_device(cell["device"]))
        setting = Setting(**cell["setting"])
        if str(dev) not in _WARMED:
            _warm_up(cell["method"], setting, dev)
            _WARMED.add(str(dev))
        return _train_cell(cell, setting, dev, threads)
    finally:
        torch.set_num_threads(before)


def _worker_device(device: str) -> str:
    """Worker i of a local pool on a machine with several GPUs uses ``cuda:i % GPUs`` (for "cuda" or "auto")."""
    if _WORKER_INDEX is None or device not in ("cuda", "auto") or not torch.cuda.is_available():
        return device
    return f"cuda:{_WORKER_INDEX % torch.cuda.device_count()}"


def _warm_up(method: str, setting: Setting, dev) -> None:
    """One tiny unrecorded run (256 images, 1 epoch), so that a process's first recorded run does not pay its
    one-off costs (CUDA context, kernel selection, allocator growth) in its time and memory."""
    small = replace(setting, labeled=min(2 * setting.batch_size, 256), epochs=1, eval_every=1, test_size=256,
                    steps=None, validation=min(setting.validation, 256), labeled_from=None)
    try:
        train_method(method, small, seed=0, device=dev, progress=False)
    except Exception:                            # noqa: BLE001 - the recorded run reports any failure
        pass


def _row_base(cell: dict, dev) -> dict:
    setting = cell["setting"]
    return {"timestamp": datetime.now(UTC).isoformat(timespec="seconds"), "setting_key": cell["setting_key"],
            "method": cell["method"], "seed": cell["seed"],
            "labeled": "all" if setting["labeled"] is None else setting["labeled"], "epochs": setting["epochs"],
            "device": device_name(dev) if dev is not None else cell["device_type"],
            "options": json.dumps(cell["options"], sort_keys=True, default=str),
            "setting": json.dumps({**setting, "device": cell["device_type"]}, sort_keys=True),
            "spec": cell["spec"], "arm": cell["arm"], "grid": json.dumps(cell["grid"], sort_keys=True),
            "threads": cell.get("threads"), "torch_version": torch.__version__, "cell_key": cell["cell_key"]}


_EPOCH_FIELDS = ("epoch", "images", "train_s", "images_per_s", "train_acc", "test_acc", "val_acc", "wall_s")


def _train_cell(cell: dict, setting: Setting, dev, threads: int) -> dict:
    row = _row_base(cell, dev)
    probe, start = _MemoryProbe(dev), time.perf_counter()
    try:
        m, h = train_method(cell["method"], setting, seed=cell["seed"], device=dev, progress=False,
                            **cell["options"])
    except Exception as err:                     # noqa: BLE001 - any failure is recorded; the sweep goes on
        return {**row, "status": "failed", "error": f"{type(err).__name__}: {err}"[:500],
                "wall_s": round(time.perf_counter() - start, 3)}
    if h.status != "finished":
        raise KeyboardInterrupt(f"{cell['arm']} seed {cell['seed']} was {h.status}")
    val = h.epochs[-1].get("val_acc")
    metrics = {k: round(v, 6) for k, v in h.epochs[-1].items()
               if k not in _EPOCH_FIELDS and isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {**row, "status": "ok", "epochs": len(h.epochs), "accuracy": round(100 * h.test_acc, 4),
            "metrics": metrics,                  # written as JSON by _append_row (_cell_text)
            "val_accuracy": None if val is None else round(100 * val, 4),
            "images_per_s": round(h.images_per_s, 1), "train_images": sum(e["images"] for e in h.epochs),
            "train_s": round(sum(e["train_s"] for e in h.epochs), 3), "wall_s": round(time.perf_counter() - start, 3),
            "peak_mem_mb": None if probe.peak_mb() is None else round(probe.peak_mb(), 1), "memory": probe.kind,
            "trained_params": sum(p.numel() for p in m.trainable_parameters() if p.requires_grad)}


def _failed_row(cell: dict, error: str) -> dict:
    """The row of a cell whose worker died for good (written by the driver)."""
    return {**_row_base(cell, None), "status": "failed", "error": error[:500]}


# ------------------------------------------------------------------------------------ executors
def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _run_here(todo: list[dict], on_row) -> None:
    for cell in todo:
        on_row(run_cell(cell))


def _init_worker(slots, threads: int) -> None:
    """A local worker: take a worker number, set its thread count, leave Ctrl-C to the driver."""
    global _WORKER_INDEX
    _WORKER_INDEX = slots.get()
    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_pool(todo: list[dict], jobs: int, threads: int, on_row, retries: int) -> None:
    """Run ``todo`` in ``jobs`` spawned worker processes; the cells of a worker that died are run again in a new
    pool, ``retries`` times at most, then recorded as failed."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool
    ctx = mp.get_context("spawn")
    pending, attempts = list(todo), {}
    while pending:
        slots = ctx.Queue()
        for i in range(jobs):
            slots.put(i)
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                                   initargs=(slots, threads))
        try:
            futures = {pool.submit(run_cell, c): c for c in pending}
            pending = []
            for fut in as_completed(futures):
                cell = futures[fut]
                try:
                    on_row(fut.result())
                except BrokenProcessPool as err:
                    attempts[cell["cell_key"]] = attempts.get(cell["cell_key"], 0) + 1
                    if attempts[cell["cell_key"]] > retries:
                        on_row(_failed_row(cell, f"the worker process died ({err})"))
                    else:
                        pending.append(cell)
        finally:
            _stop_pool(pool)


def _stop_pool(pool) -> None:
    """Shut a pool down without waiting for its running cells: cancel the queued ones, end the workers."""
    processes = list(getattr(pool, "_processes", {}).values())     # no public handle on the workers
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(timeout=10)


def _run_ray(todo: list[dict], address: str, threads: int, on_row, retries: int) -> None:
    """Run ``todo`` as Ray tasks on the cluster at ``address``: each asks ``num_cpus=threads`` (and one GPU for a
    CUDA cell), is retried ``retries`` times when its worker dies, and is recorded as failed after that. The
    driver's ``KD_LAB_*`` variables go to the workers (data and teacher caches, quick mode)."""
    try:
        import ray
    except ImportError:
        raise ValueError("the ray executor needs Ray: pip install 'kd_lab[ray]'") from None
    env = {k: v for k, v in os.environ.items() if k.startswith("KD_LAB_")}
    ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=False)
    task = ray.remote(run_cell)
    refs = {}
    try:
        for cell in todo:
            gpus = 1 if cell["device_type"] == "cuda" else 0
            refs[task.options(num_cpus=threads, num_gpus=gpus, max_retries=retries).remote(cell)] = cell
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            cell = refs.pop(done[0])
            try:
                row = ray.get(done[0])
            except ray.exceptions.RayError as err:   # the worker died more than ``retries`` times, or the node
                row = _failed_row(cell, f"{type(err).__name__}: {err}")
            on_row(row)
    finally:
        for ref in refs:
            ray.cancel(ref, force=True)
        ray.shutdown()


# ------------------------------------------------------------------------------------------ run
def run_sweep(spec, *, jobs: int = 1, executor: str = "local", address: str | None = None, device="auto",
              threads: int | None = None, out=None, resume: bool = True, retries: int = 2,
              progress: bool = True) -> list[dict]:
    """Run the cells of ``spec`` (a :class:`Spec` or a spec file) that have no ``ok`` row in ``out`` (default
    :func:`default_out`), appending one row per finished run, then write the report ``out`` with ``.md``.
    Returns the latest row of every cell that has one, in cell order.

    ``jobs``: local worker processes (1: this process); ``executor``: ``"local"`` or ``"ray"`` (with ``address``
    of a running cluster); ``threads``: torch threads per run (default ``max(1, cores // jobs)`` locally, 1 on
    Ray); ``resume=False`` runs every cell again (new rows supersede old ones); ``retries``: how often a cell
    whose worker died is run again before it is recorded as failed."""
    spec = spec if isinstance(spec, Spec) else load_spec(spec)
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {list(EXECUTORS)}, got {executor!r}")
    if not _positive_int(jobs):
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    if executor == "ray" and not address:
        raise ValueError("the ray executor needs --address of a running Ray cluster (ray start --head ...)")
    if threads is not None and not _positive_int(threads):
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    if executor == "local":
        pick_device(device)                              # an unknown or missing device is an error here
    threads = threads or (1 if executor == "ray" else max(1, _cores() // jobs))
    out = Path(out) if out is not None else default_out(spec)
    cells, plan = plan_cells(spec, device)
    todo = [{**c, "threads": threads} for c in todo_cells(cells, out, resume)]
    if resume:
        todo = reuse_rows(todo, out, progress)
    if todo and executor == "local":
        _check_cells(todo)
        _prefetch_teachers(todo, pick_device(device))
    _execute(todo, out, len(cells), executor, jobs, threads, address, retries, progress)
    rows = cell_rows(read_rows(out))
    write_sweep_report(spec, list(rows.values()), plan, out.with_suffix(".md"), device)
    return [rows[c["cell_key"]] for c in cells if c["cell_key"] in rows]


def _prefetch_teachers(todo: list[dict], device) -> None:
    """Fetch (or train, once, into the cache) every teacher before the first run, so that no run's wall time
    includes training one and no two workers train the same. A failure is left for the runs to record."""
    for dataset, recipe, method in {(c["setting"]["dataset"], c["setting"]["teacher"], c["method"]) for c in todo}:
        try:
            if METHODS[method].needs_teacher:
                method_teacher(method, dataset, device, recipe=recipe, verbose=True)
        except Exception:                        # noqa: BLE001 - the runs record the error in their rows
            pass


def _execute(todo, out: Path, total: int, executor: str, jobs: int, threads: int, address, retries: int,
             progress: bool) -> None:
    bar = progress_bar(total=total, initial=total - len(todo), desc="cells", unit="run", disable=not progress)
    if progress and len(todo) < total:
        bar.write(f"resuming {out}: {total - len(todo)} of {total} cells already done")

    def on_row(row: dict) -> None:
        _append_row(out, row)
        bar.set_postfix_str(f"{row['arm']}, seed {row['seed']}: {row['status']}")
        bar.update(1)

    try:
        if not todo:
            return
        if executor == "ray":
            _run_ray(todo, address, threads, on_row, retries)
        elif jobs == 1:
            _run_here(todo, on_row)
        else:
            _run_pool(todo, jobs, threads, on_row, retries)
    finally:
        bar.close()


# --------------------------------------------------------------------------------------- report
def write_sweep_report(spec: Spec, rows: list[dict], plan: list[dict], path, device="auto") -> str:
    """Write the Markdown report of a sweep (its setting, the protocol, the arms, one table per grid point) to
    ``path``; returns its text."""
    base = base_setting(spec)
    records = summarize_sweep(rows, plan)
    shown = {k: ("all" if v is None else v) for k, v in asdict(base).items()
             if k not in spec.grid and (v is not None or k in ("labeled", "test_size"))}
    setting = ", ".join(f"{k}={v}" for k, v in shown.items())
    grid = "; ".join(f"{k} = {v}" for k, v in {**spec.grid, **spec.option_grid}.items()) or "none"
    devices = sorted({r["device"] for r in rows if r.get("device")}) or [_device_type(device)]
    versions = sorted({r["torch_version"] for r in rows if r.get("torch_version")})
    lines = [f"# Sweep {spec.name}", *([spec.description] if spec.description else []),
             f"Spec: `{spec.path}`. Setting ({setting_key(base, _device_type(device))[0]}): {setting}. Grid: {grid}.",
             f"Seeds: {', '.join(map(str, spec.seeds))}. Device: {', '.join(devices)}; torch "
             f"{', '.join(versions) or torch.__version__}.",
             protocol_text(base, spec.seeds), "Arms:\n" + "\n".join(_arm_line(a) for a in spec.arms),
             sweep_markdown(records)]
    text = "\n\n".join(lines) + "\n"
    Path(path).write_text(text)
    return text


def _arm_line(arm: Arm) -> str:
    options = ", ".join(f"{k}={v}" for k, v in arm.options.items())
    setting = ", ".join(f"{k}={v}" for k, v in arm.setting.items())
    details = "; ".join(filter(None, [options and f"options {options}", setting and f"setting {setting}"]))
    versus = f"compared with {arm.baseline}" if arm.baseline else "the baseline"
    return f"- **{arm.label}**: {arm.method}{f' ({details})' if details else ''}, {versus}"
