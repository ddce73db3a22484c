"""Reading the results of a comparison (lesson 06): the CSV rows, per-method summaries, effects, the report.

:mod:`kd_lab.compare` runs a sweep and appends one row per run to a CSV (columns: :data:`COLUMNS`); this
module only reads such a file and aggregates it, so a notebook, a widget or a script can look at results
without the sweep runner. Statistics come from :mod:`kd_lab.stats`: mean ± sample std over seeds, and
effects **paired by seed**, dₛ = accuracy(method, seed s) − accuracy(reference, seed s), with the 95 %
Student-t interval d̄ ± t₀.₉₇₅,ₙ₋₁ · s_d / √n.

A run is identified by (setting key, method, seed, labeled size, options); a CSV may hold several rows of a
run (a rerun supersedes the earlier one) and several settings. The method registry (:mod:`kd_lab.methods`,
which needs torch) is imported only by the functions that need the course order or the current options.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from .stats import format_effect, format_mean_std, format_number, mean_std, paired_effect

__all__ = ["COLUMNS", "read_rows", "latest_rows", "current_rows", "options_text", "in_course_order",
           "labeled_sizes", "per_method", "summarize", "effects", "markdown_table", "setting_of", "write_report"]

COLUMNS = ("timestamp", "setting_key", "method", "seed", "labeled", "epochs", "status", "accuracy",
           "images_per_s", "train_images", "train_s", "wall_s", "peak_mem_mb", "memory", "trained_params",
           "device", "error", "options", "setting")
_FLOATS = ("accuracy", "images_per_s", "train_s", "wall_s", "peak_mem_mb")
_INTS = ("seed", "epochs", "train_images", "trained_params")
_COST_COLUMNS = ("images_per_s", "train_s", "wall_s", "peak_mem_mb")


# ------------------------------------------------------------------------------------- CSV rows
def _parse(row: dict) -> dict:
    """Typed values of a CSV row: floats and ints (empty -> None), labeled as int or ``"all"``."""
    out = dict(row)
    for k in _FLOATS:
        out[k] = float(row[k]) if row[k] not in ("", None) else None
    for k in _INTS:
        out[k] = int(row[k]) if row[k] not in ("", None) else None
    out["labeled"] = row["labeled"] if row["labeled"] == "all" else int(row["labeled"])
    return out


def read_rows(path) -> list[dict]:
    """Every complete row of a comparison CSV (a row cut short by a kill is skipped), typed."""
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    reader = csv.DictReader(io.StringIO(text[: text.rfind("\n") + 1]))     # every row is one line
    if reader.fieldnames is None:
        return []
    if tuple(reader.fieldnames) != COLUMNS:
        raise ValueError(f"{path} is not a kd_lab comparison CSV: its columns are {reader.fieldnames}, "
                         f"expected {list(COLUMNS)}")
    return [_parse(r) for r in reader if None not in r and None not in r.values()]


def _run_id(row: dict) -> tuple:
    return row["setting_key"], row["method"], int(row["seed"]), str(row["labeled"]), row["options"]


def latest_rows(rows: list[dict]) -> list[dict]:
    """The latest row of each run (same setting key, method, seed, labeled size and options)."""
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
    of a method whose defaults have changed since, or that is no longer registered, are left out)."""
    registered = _registry().METHODS
    return [r for r in latest_rows(rows) if r["setting_key"] == key and r["method"] in registered
            and r["options"] == options_text(r["method"])]


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
    """The shared setting of the rows (one setting key), as stored in their ``setting`` column."""
    keys = {r["setting_key"] for r in rows}
    if len(keys) != 1:
        raise ValueError(f"expected the rows of one setting, got {len(keys)}: {sorted(keys)}")
    return json.loads(rows[0]["setting"])


def _setting_line(rows: list[dict]) -> str:
    return ("Setting: " + ", ".join(f"{k}={v}" for k, v in setting_of(rows).items())) if rows else ""


def write_report(rows: list[dict], path, baseline: str = "scratch", setting_key: str | None = None) -> str:
    """Write the Markdown report of ``rows`` (setting, table, failures) to ``path``; returns its text."""
    chosen = _one_setting(rows, setting_key)
    text = "\n\n".join(filter(None, [f"# Comparison ({chosen[0]['setting_key'] if chosen else 'no runs'})",
                                     _setting_line(chosen), markdown_table(summarize(chosen, baseline), baseline)]))
    Path(path).write_text(text + "\n")
    return text
