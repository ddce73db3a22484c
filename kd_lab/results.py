"""Reading the results of a sweep or a comparison (lesson 06): the CSV rows, summaries, effects, the reports.

:mod:`kd_lab.sweep` (and :mod:`kd_lab.compare`, one sweep of every method) appends one row per run to a CSV
(columns: :data:`SWEEP_COLUMNS`); this module only reads such a file and aggregates it, so a notebook, a widget or a
script can look at results without the sweep runner. Statistics come from :mod:`kd_lab.stats`: mean ± sample
std over seeds, and effects **paired by seed**, dₛ = accuracy(method, seed s) − accuracy(reference, seed s),
with the 95 % Student-t interval d̄ ± t₀.₉₇₅,ₙ₋₁ · s_d / √n.

A run is identified by its ``cell_key``, a hash of everything that determines it (rows written before sweeps
existed, :data:`COLUMNS` only, by setting key, method, seed, labeled size and options); a CSV may hold
several rows of a run (a rerun supersedes the earlier one) and several settings. A sweep's summary
(:func:`summarize_sweep`) follows its plan: which cell is which arm at which grid point and seed. The method
registry (:mod:`kd_lab.methods`, which needs torch) is imported only by the functions that need the course
order or the current options.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from .stats import format_effect, format_mean_std, format_number, mean_std, paired_effect

__all__ = ["COLUMNS", "SWEEP_COLUMNS", "OLDER_COLUMNS", "read_rows", "latest_rows", "current_rows", "options_text",
           "in_course_order", "labeled_sizes", "per_method", "summarize", "effects", "markdown_table", "setting_of",
           "write_report", "cell_rows", "summarize_sweep", "paired_fields", "best_on_validation", "sweep_markdown"]

# The columns of every run (a comparison written before sweeps existed, such as results/compare-fashion-mnist.csv,
# has these only), then the ones a sweep adds: what the runner writes now.
COLUMNS = ("timestamp", "setting_key", "method", "seed", "labeled", "epochs", "status", "accuracy",
           "images_per_s", "train_images", "train_s", "wall_s", "peak_mem_mb", "memory", "trained_params",
           "device", "error", "options", "setting")
SWEEP_COLUMNS = (*COLUMNS, "spec", "arm", "grid", "val_accuracy", "threads", "torch_version", "cell_key", "metrics")
# Headers an older runner wrote, oldest first; they read with the newer columns empty, and a sweep that appends
# to such a file first rewrites it with SWEEP_COLUMNS. "metrics": the method's measurements at the last
# evaluation (Method.epoch_metrics, e.g. every DML peer's accuracy and calibration), JSON.
OLDER_COLUMNS = (COLUMNS, SWEEP_COLUMNS[:-1])
_FLOATS = ("accuracy", "val_accuracy", "images_per_s", "train_s", "wall_s", "peak_mem_mb")
_INTS = ("seed", "epochs", "train_images", "trained_params", "threads")
_COST_COLUMNS = ("images_per_s", "train_s", "wall_s", "peak_mem_mb")


# ------------------------------------------------------------------------------------- CSV rows
def _parse(row: dict) -> dict:
    """Typed values of a CSV row: floats and ints (empty -> None), labeled as int or ``"all"``; the columns a
    file of :data:`COLUMNS` only lacks are empty."""
    out = {k: row.get(k, "") for k in SWEEP_COLUMNS}
    for k in _FLOATS:
        out[k] = float(out[k]) if out[k] not in ("", None) else None
    for k in _INTS:
        out[k] = int(out[k]) if out[k] not in ("", None) else None
    out["metrics"] = json.loads(out["metrics"]) if out["metrics"] not in ("", None) else {}
    out["labeled"] = row["labeled"] if row["labeled"] == "all" else int(row["labeled"])
    return out


def read_rows(path) -> list[dict]:
    """Every complete row of a sweep or comparison CSV (a row cut short by a kill is skipped), typed. A file of
    :data:`COLUMNS` only (written before sweeps existed) reads with the sweep's columns empty."""
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    reader = csv.DictReader(io.StringIO(text[: text.rfind("\n") + 1]))     # every row is one line
    if reader.fieldnames is None:
        return []
    if tuple(reader.fieldnames) not in (SWEEP_COLUMNS, *OLDER_COLUMNS):
        raise ValueError(f"{path} is not a kd_lab comparison CSV: its columns are {reader.fieldnames}, "
                         f"expected {list(SWEEP_COLUMNS)}")
    return [_parse_line(path, reader.line_num, r) for r in reader if None not in r and None not in r.values()]


def _parse_line(path: Path, line: int, row: dict) -> dict:
    """:func:`_parse`, with an error that names the file, the line and the column of a cell that is not a number
    of its column; an ``ok`` row without a finite accuracy is an error too (it would enter every mean)."""
    try:
        out = _parse(row)
    except ValueError:
        column, text = next(((k, row.get(k)) for k in (*_FLOATS, *_INTS, "labeled") if not _cell_ok(k, row.get(k))),
                            ("?", "?"))
        raise ValueError(f"{path}, line {line}: column {column!r} holds {text!r}, which is not a number; fix or "
                         f"delete that row") from None
    if out["status"] == "ok" and (out["accuracy"] is None or not math.isfinite(out["accuracy"])):
        raise ValueError(f"{path}, line {line}: a run with status 'ok' has accuracy {row.get('accuracy')!r}, not a "
                         f"finite number; fix or delete that row")
    return out


def _cell_ok(column: str, text) -> bool:
    """Whether ``text`` reads as the type of ``column`` (empty cells read as None)."""
    if text in ("", None) or (column == "labeled" and text == "all"):
        return True
    try:
        (float if column in _FLOATS else int)(text)
    except ValueError:
        return False
    return True


def _run_id(row: dict) -> tuple:
    if row.get("cell_key"):
        return (row["cell_key"],)
    return row["setting_key"], row["method"], int(row["seed"]), str(row["labeled"]), row["options"]


def latest_rows(rows: list[dict]) -> list[dict]:
    """The latest row of each run (same cell key; without one, same setting key, method, seed, labeled size and
    options)."""
    latest = {}
    for row in rows:
        latest[_run_id(row)] = row
    return list(latest.values())


def _registry():
    from . import methods  # imports torch: only when the method list or a method's options is needed
    return methods


def options_text(method: str) -> str:
    """The ``options`` column of a run of ``method``: its current default options as sorted JSON."""
    return json.dumps(_registry().method_options(method), sort_keys=True, default=str)


def current_rows(rows: list[dict], key: str) -> list[dict]:
    """The latest row of each run of setting ``key`` made with its method's current default options (rows
    of a method whose defaults have changed since, or that is no longer registered, are left out). An option
    added to a method after a row was written is not in the row: the row ran as that option's default does (a
    new option must default to the old behaviour, CONTRIBUTING.md), so it still counts."""
    registered = _registry().METHODS
    return [r for r in latest_rows(rows) if r["setting_key"] == key and r["method"] in registered
            and _with_defaults(r["options"], r["method"]) == options_text(r["method"])]


def _with_defaults(options: str, method: str) -> str:
    """A row's ``options`` JSON completed with the method's current defaults for the options it does not name."""
    try:
        given = json.loads(options)
    except (TypeError, ValueError):
        return options
    return json.dumps({**_registry().method_options(method), **given}, sort_keys=True, default=str)


def in_course_order(names) -> list[str]:
    """``names`` (without repeats) in the course's order of methods; names the registry does not know come
    last, alphabetically."""
    order = {m: i for i, m in enumerate(_registry().method_names())}
    return sorted(dict.fromkeys(names), key=lambda m: (order.get(m, len(order)), "" if m in order else m))


# ------------------------------------------------------------------------------------- summary
def _one_setting(rows: list[dict], setting_key: str | None) -> list[dict]:
    """The rows of one setting; several settings in ``rows`` need ``setting_key`` to pick one."""
    keys = sorted({r["setting_key"] for r in rows})
    if setting_key is None and len(keys) > 1:
        raise ValueError(f"the rows hold {len(keys)} settings {keys}; pass setting_key= one of them")
    if setting_key is not None and setting_key not in keys:
        raise ValueError(f"no rows of setting {setting_key!r}; the rows hold {keys}")
    return [r for r in latest_rows(rows) if setting_key is None or r["setting_key"] == setting_key]


def labeled_sizes(rows) -> list:
    """The labeled-set sizes of ``rows``, ascending, ``"all"`` last."""
    return sorted({r["labeled"] for r in rows}, key=lambda n: math.inf if n == "all" else n)


def per_method(rows: list[dict], labeled=None, setting_key: str | None = None) -> dict[str, dict[str, list]]:
    """``{method: {column: [value per ok seed]}}`` for one labeled size (course order, seeds ascending), for
    plots and effects. ``labeled`` may be omitted when the rows hold a single size."""
    rows = [r for r in _one_setting(rows, setting_key) if r["status"] == "ok"]
    sizes = labeled_sizes(rows)
    if labeled is None and len(sizes) > 1:
        raise ValueError(f"the rows hold labeled sizes {sizes}; pass labeled= one of them")
    want = sizes[0] if labeled is None and sizes else labeled
    picked = [r for r in rows if r["labeled"] == want]
    out: dict[str, dict[str, list]] = {}
    for method in in_course_order(r["method"] for r in picked):
        for r in sorted((r for r in picked if r["method"] == method), key=lambda r: r["seed"]):
            for col in ("accuracy", *_COST_COLUMNS, "seed"):
                out.setdefault(method, {}).setdefault(col, []).append(r[col])
    return out


def summarize(rows: list[dict], baseline: str = "scratch", setting_key: str | None = None) -> list[dict]:
    """One record per (labeled size, method), course order: n ok runs, failed runs, accuracy mean ± std
    (sample std; NaN for one seed), the difference of means to ``baseline`` at the same size, and the mean
    cost columns."""
    rows = _one_setting(rows, setting_key)
    records = []
    for size in labeled_sizes(rows):
        at_size = [r for r in rows if r["labeled"] == size]
        stats = {m: _method_record(m, size, [r for r in at_size if r["method"] == m])
                 for m in in_course_order(r["method"] for r in at_size)}
        base = stats.get(baseline, {}).get("acc_mean", math.nan)
        for rec in stats.values():
            rec["delta"] = rec["acc_mean"] - base if baseline in stats else math.nan
            records.append(rec)
    return records


def _method_record(method: str, size, rows: list[dict]) -> dict:
    ok = [r for r in rows if r["status"] == "ok"]
    acc_mean, acc_std = mean_std(r["accuracy"] for r in ok)
    rec = {"method": method, "labeled": size, "n": len(ok), "failed": len(rows) - len(ok),
           "acc_mean": acc_mean, "acc_std": acc_std, "devices": sorted({r["device"] for r in rows}),
           "errors": [f"seed {r['seed']}: {r['error']}" for r in rows if r["status"] != "ok"]}
    for col in _COST_COLUMNS:
        rec[col] = mean_std(r[col] for r in ok)[0]
    return rec


# ------------------------------------------------------------------------------------- effects
def effects(rows: list[dict], pairs, labeled=None, setting_key: str | None = None) -> list[dict]:
    """For each ``(method, reference)`` pair with ok runs of both, the effect of ``method`` over ``reference``.

    Paired by seed (:func:`kd_lab.stats.paired_effect`): ``seeds`` both ran, ``differences`` dₛ (points),
    ``diff_mean`` d̄, ``diff_std`` s_d, ``n`` pairs, the 95 % t-interval ``ci_low``/``ci_high`` (NaN for one
    pair), ``paired_verdict`` (``higher``/``lower`` when the interval excludes 0, ``within noise``, ``one
    seed``) and ``text``, e.g. ``"+3.65 ± 0.80 (95 % CI +1.66 … +5.64, n = 3)"``.

    Unpaired, as lesson 06 reads it: ``delta`` = difference of the mean accuracies over all ok seeds of each
    side, its standard error ``se`` = √(s_m²/n_m + s_r²/n_r), and ``verdict``: ``higher`` (Δ > 2·SE),
    ``lower`` (Δ < −2·SE), ``within noise``, or ``one seed`` when either side has fewer than two seeds."""
    data = per_method(rows, labeled, setting_key)
    out = []
    for method, ref in pairs:
        if method in data and ref in data:
            out.append({"method": method, "reference": ref, **_unpaired(data[method], data[ref]),
                        **_paired(data[method], data[ref])})
    return out


def _unpaired(a: dict, b: dict) -> dict:
    (m, sm), (r, sr) = mean_std(a["accuracy"]), mean_std(b["accuracy"])
    n_m, n_r = len(a["accuracy"]), len(b["accuracy"])
    se = math.sqrt(sm**2 / n_m + sr**2 / n_r) if min(n_m, n_r) > 1 else math.nan
    delta = m - r
    verdict = "one seed" if math.isnan(se) else "higher" if delta > 2 * se else \
        "lower" if delta < -2 * se else "within noise"
    return {"delta": delta, "se": se, "verdict": verdict}


def _paired(a: dict, b: dict) -> dict:
    e = paired_effect(dict(zip(a["seed"], a["accuracy"])), dict(zip(b["seed"], b["accuracy"])))
    return {"seeds": list(e.seeds), "differences": list(e.differences), "diff_mean": e.mean, "diff_std": e.std,
            "n": e.n, "ci_low": e.ci_low, "ci_high": e.ci_high, "paired_verdict": e.verdict,
            "text": format_effect(e)}


# -------------------------------------------------------------------------------------- report
def markdown_table(records: list[dict], baseline: str = "scratch") -> str:
    """A Markdown table of :func:`summarize`'s records, failed runs and their errors listed below it."""
    lines = [f"| method | labeled | n | failed | test accuracy % (mean ± std) | Δ vs {baseline} | images/s "
             "| train s | wall s | peak MB |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        lines.append(f"| {r['method']} | {r['labeled']} | {r['n']} | {r['failed']} | "
                     f"{format_mean_std(r['acc_mean'], r['acc_std'])} | {format_number(r['delta'], '+.2f')} | "
                     f"{format_number(r['images_per_s'], ',.0f')} | {format_number(r['train_s'], '.1f')} | "
                     f"{format_number(r['wall_s'], '.1f')} | {format_number(r['peak_mem_mb'], '.0f')} |")
    devices = sorted({d for r in records for d in r["devices"]})
    lines.append(f"\nDevice: {', '.join(devices) or '–'}. Mean ± sample std over seeds; Δ = difference of means.")
    errors = [f"- {r['method']} ({r['labeled']} labeled) {e}" for r in records for e in r["errors"]]
    return "\n".join(lines + (["\nFailed runs:", *errors] if errors else []))


def setting_of(rows: list[dict]) -> dict:
    """The shared setting of the rows (one setting key): the fields of their ``setting`` column that every row
    has with the same value (a field that differs between runs, such as the labeled-set size, is left out)."""
    keys = {r["setting_key"] for r in rows}
    if len(keys) != 1:
        raise ValueError(f"expected the rows of one setting, got {len(keys)}: {sorted(keys)}")
    settings = [json.loads(r["setting"]) for r in rows]
    return {k: v for k, v in settings[0].items() if all(k in s and s[k] == v for s in settings)}


def _setting_line(rows: list[dict]) -> str:
    return ("Setting: " + ", ".join(f"{k}={v}" for k, v in setting_of(rows).items())) if rows else ""


def write_report(rows: list[dict], path, baseline: str = "scratch", setting_key: str | None = None) -> str:
    """Write the Markdown report of ``rows`` (setting, table, failures) to ``path``; returns its text."""
    chosen = _one_setting(rows, setting_key)
    text = "\n\n".join(filter(None, [f"# Comparison ({chosen[0]['setting_key'] if chosen else 'no runs'})",
                                     _setting_line(chosen), markdown_table(summarize(chosen, baseline), baseline)]))
    Path(path).write_text(text + "\n")
    return text


# --------------------------------------------------------------------------------------- sweeps
def cell_rows(rows: list[dict]) -> dict[str, dict]:
    """``{cell key: latest row}`` of the rows that have a cell key (a sweep's rows)."""
    return {r["cell_key"]: r for r in rows if r.get("cell_key")}


def summarize_sweep(rows: list[dict], plan: list[dict]) -> list[dict]:
    """One record per (grid point, arm) of a sweep's ``plan``, in plan order.

    ``plan``: one entry per (grid point, arm, seed) with keys ``point`` (the grid values, a dict), ``arm``,
    ``method``, ``baseline`` (an arm label, None for an arm compared with nothing) and ``cell_key`` (several
    entries may share a cell: an arm whose method lacks a swept option runs once for every value of it). A
    record holds ``n`` ok runs, ``failed`` and ``missing`` cells, test and validation accuracy mean ± sample std
    (``acc_mean``/``acc_std``, ``val_mean``/``val_std``), the mean cost columns, and the effect on test accuracy
    over the baseline arm at the same grid point, **paired by seed** (:func:`kd_lab.stats.paired_effect`):
    ``seeds``, ``differences``, ``diff_mean`` d̄, ``diff_std`` s_d, ``pairs`` n, ``ci_low``/``ci_high`` (the 95 %
    t-interval d̄ ± t₀.₉₇₅,ₙ₋₁ · s_d / √n), ``paired_verdict`` and ``effect`` (text; "–" without a baseline)."""
    latest = cell_rows(rows)
    groups: dict[tuple, dict] = {}
    for entry in plan:
        key = (json.dumps(entry["point"], sort_keys=True), entry["arm"])
        group = groups.setdefault(key, {**entry, "rows": {}})
        group["rows"][entry["seed"]] = latest.get(entry["cell_key"])
    records = [_arm_record(g) for g in groups.values()]
    by_arm = {(r["point_key"], r["arm"]): r for r in records}
    for rec in records:
        base = by_arm.get((rec["point_key"], rec["baseline"])) if rec["baseline"] else None
        rec.update(_paired_to(rec, base))
    return records


def _arm_record(group: dict) -> dict:
    found = {s: r for s, r in group["rows"].items() if r is not None}
    ok = {s: r for s, r in found.items() if r["status"] == "ok"}
    rec = {"point": group["point"], "point_key": json.dumps(group["point"], sort_keys=True), "arm": group["arm"],
           "method": group["method"], "baseline": group["baseline"], "n": len(ok), "failed": len(found) - len(ok),
           "missing": len(group["rows"]) - len(found), "test": {s: r["accuracy"] for s, r in ok.items()},
           "val": {s: r["val_accuracy"] for s, r in ok.items()},
           "metrics": {s: r.get("metrics") or {} for s, r in ok.items()},
           "devices": sorted({r["device"] for r in found.values()}),
           "errors": [f"seed {s}: {r['error']}" for s, r in found.items() if r["status"] != "ok"]}
    rec["acc_mean"], rec["acc_std"] = mean_std(rec["test"].values())
    rec["val_mean"], rec["val_std"] = mean_std(rec["val"].values())
    for col in _COST_COLUMNS:
        rec[col] = mean_std(r[col] for r in ok.values())[0]
    return rec


def _paired_to(rec: dict, base: dict | None) -> dict:
    """The effect of ``rec`` over ``base`` paired by seed; empty values when there is no baseline."""
    if base is None or base is rec:
        return {"seeds": [], "differences": [], "diff_mean": math.nan, "diff_std": math.nan, "pairs": 0,
                "ci_low": math.nan, "ci_high": math.nan, "paired_verdict": "", "effect": "–"}
    return paired_fields(rec["test"], base["test"])


def paired_fields(a: dict, b: dict) -> dict:
    """The fields of a record's paired effect (``seeds``, ``differences``, ``diff_mean``, ``diff_std``, ``pairs``,
    ``ci_low``, ``ci_high``, ``paired_verdict``, ``effect``) of ``a`` over ``b``, two ``{seed: value}`` mappings
    (:func:`kd_lab.stats.paired_effect`)."""
    e = paired_effect(a, b)
    return {"seeds": list(e.seeds), "differences": list(e.differences), "diff_mean": e.mean, "diff_std": e.std,
            "pairs": e.n, "ci_low": e.ci_low, "ci_high": e.ci_high, "paired_verdict": e.verdict,
            "effect": format_effect(e)}


def best_on_validation(rows: list[dict], arms=None) -> dict:
    """The arm with the highest mean **validation** accuracy among ``arms`` (default: every arm of ``rows``), from
    the ok rows of one grid point: ``{"arm", "n", "val_mean", "val_std", "acc_mean", "acc_std"}``. Its test
    accuracy is reported, never used to choose (ties: the first arm). Rows of several grid points (an arm with a
    seed twice) are an error: filter them first."""
    ok = [r for r in rows if r["status"] == "ok" and r["val_accuracy"] is not None]
    names = list(dict.fromkeys(r["arm"] for r in ok)) if arms is None else list(arms)
    records = []
    for arm in names:
        mine = [r for r in ok if r["arm"] == arm]
        if len({r["seed"] for r in mine}) != len(mine):
            raise ValueError(f"arm {arm!r} has a seed twice in the rows: they hold several grid points; pick one")
        if mine:
            val, acc = mean_std(r["val_accuracy"] for r in mine), mean_std(r["accuracy"] for r in mine)
            records.append({"arm": arm, "n": len(mine), "val_mean": val[0], "val_std": val[1], "acc_mean": acc[0],
                            "acc_std": acc[1]})
    if not records:
        raise ValueError(f"no ok run with a validation accuracy among the arms {names}")
    return max(records, key=lambda r: r["val_mean"])         # max keeps the first of equal values


def _point_title(point: dict) -> str:
    return ", ".join(f"{k} = {'all' if v is None else v}" for k, v in point.items()) or "the one setting"


def sweep_markdown(records: list[dict], rows: list[dict] = ()) -> str:
    """The tables of :func:`summarize_sweep`'s records, one per grid point: per arm n, failed, validation and
    test accuracy mean ± std, the paired effect over its baseline and the mean cost; the arm best on validation
    accuracy (chosen on validation only) and failed runs below. ``rows`` (the sweep's) pick the best arm."""
    blocks = []
    for point_key in dict.fromkeys(r["point_key"] for r in records):
        at_point = [r for r in records if r["point_key"] == point_key]
        lines = [f"### {_point_title(at_point[0]['point'])}", "",
                 "| arm | method | n | failed | val acc % | test acc % | Δ test vs baseline, paired by seed | "
                 "images/s | train s | wall s |", "|---|---|---:|---:|---:|---:|---|---:|---:|---:|"]
        for r in at_point:
            versus = f"{r['effect']} vs {r['baseline']}" if r["pairs"] else "–"
            lines.append(f"| {r['arm']} | {r['method']} | {r['n']} | {r['failed'] + r['missing']} | "
                         f"{format_mean_std(r['val_mean'], r['val_std'])} | "
                         f"{format_mean_std(r['acc_mean'], r['acc_std'])} | {versus} | "
                         f"{format_number(r['images_per_s'], ',.0f')} | {format_number(r['train_s'], '.1f')} | "
                         f"{format_number(r['wall_s'], '.1f')} |")
        lines += _best_line(at_point)
        errors = [f"- {r['arm']} {e}" for r in at_point for e in r["errors"]]
        missing = [f"- {r['arm']}: {r['missing']} cell(s) not run yet" for r in at_point if r["missing"]]
        blocks.append("\n".join(lines + (["", "Failed runs:", *errors] if errors else [])
                                + (["", "Missing:", *missing] if missing else [])))
    return "\n\n".join(blocks)


def _best_line(at_point: list[dict]) -> list[str]:
    """"Best on validation: ..." for the arms of one grid point that have validation accuracies."""
    scored = [r for r in at_point if r["n"] and not math.isnan(r["val_mean"])]
    if not scored:
        return []
    best = max(scored, key=lambda r: r["val_mean"])
    return ["", f"Best on validation accuracy: **{best['arm']}** (validation "
                f"{format_mean_std(best['val_mean'], best['val_std'])} %; its test accuracy "
                f"{format_mean_std(best['acc_mean'], best['acc_std'])} %, reported, not used to choose)."]
