"""Lesson 06: every method of the course on one budget, over seeds, with its cost.

:func:`run_comparison` trains each (labeled-set size, seed, method) of a grid through the generic
:func:`kd_lab.experiments.train_method` — the same data, student, epochs, optimizer and seeds for every
method — and appends one CSV row per finished run (flushed and fsync'ed, so Ctrl-C or a kill leaves a
valid file). A run that raises gets a ``failed`` row with its error and the others go on. Rerunning the
same comparison skips every run whose latest row is ``ok``: an interrupted comparison resumes.

Rows are keyed by a hash of the shared setting (every :class:`~kd_lab.experiments.Setting` field but the
labeled-set size, and the device type) and by the method's default options, so runs of another budget
never mix with these; the full setting is stored as JSON in each row. Columns: see
:data:`kd_lab.results.COLUMNS`.

This module is the running half; reading the CSV and aggregating it (``read_rows``, ``summarize``, ``effects``,
``markdown_table``, ...) is :mod:`kd_lab.results`, whose names are re-exported here for lesson 06's cells.

``epochs`` is the number of epochs a run trained (with a step budget, ``Setting.steps``, it differs by
method: SSLD's epochs hold more images). Cost columns: ``images_per_s`` = training images processed /
training seconds (evaluation excluded); ``train_s`` = training seconds; ``wall_s`` = the whole run
(teacher fetch, training, evaluation); ``peak_mem_mb`` = on CUDA ``torch.cuda.max_memory_allocated``
during the run; on Linux CPUs the growth of the process's peak resident set (VmHWM, reset before the run,
after glibc's ``malloc_trim`` gave earlier runs' freed heap back) over its resident set at the start;
elsewhere the growth of ``getrusage`` maxrss (0 when the run stays below an earlier peak; not measured on
Windows). The ``memory`` column says which. It is the peak of the whole run, evaluation included (test
batches of 1,000 images), so for a small student on a CPU the evaluation may set it, not the training step.
"""
from __future__ import annotations

import csv
import ctypes
import hashlib
import io
import json
import os
import sys
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

import torch

from .experiments import Setting, load_data, method_teacher, train_method
from .methods import METHODS, method_names
from .models import build_model
from .results import (
    COLUMNS,
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
from .train import _check_fit_args, device_name, pick_device

__all__ = ["COLUMNS", "resolve_methods", "parse_labeled", "setting_key", "default_out",
           "run_comparison", "run_one", "read_rows", "latest_rows", "labeled_sizes", "per_method", "summarize",
           "current_rows", "effects", "setting_of", "markdown_table", "write_report"]

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


def setting_key(setting: Setting, device) -> tuple[str, str]:
    """``(key, json)``: a 12-hex hash of the setting without its labeled size, plus the device type."""
    shared = {k: v for k, v in asdict(setting).items() if k != "labeled"}
    blob = json.dumps({**shared, "device": torch.device(device).type}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12], blob


def default_out(dataset: str = "fashion-mnist", quick: bool = False) -> Path:
    """``results/compare-<dataset>.csv`` (``-quick`` added in quick mode, so tiny runs stay apart)."""
    return Path("results") / f"compare-{dataset}{'-quick' if quick else ''}.csv"


def _labeled_text(n: int | None) -> str:
    return "all" if n is None else str(n)


# ------------------------------------------------------------------------------------- CSV rows
def _append_row(path: Path, row: dict) -> None:
    """Append one row as a single write, then flush and fsync; writes the header into a new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    _drop_cut_line(path)
    if not path.exists() or path.stat().st_size == 0:
        writer.writeheader()
    writer.writerow({k: "" if row.get(k) is None else str(row[k]).replace("\n", " ") for k in COLUMNS})
    with path.open("a", newline="") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())


def _drop_cut_line(path: Path) -> None:
    """Truncate a last line that a kill cut short (no final newline), so the next row starts cleanly."""
    if path.exists() and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
        with path.open("r+b") as f:
            f.truncate(f.read().rfind(b"\n") + 1)


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


def _proc_status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        line = next(ln for ln in f if ln.startswith(field + ":"))
    return int(line.split()[1]) / 1024                      # kB -> MB


def _maxrss_mb() -> float | None:
    try:
        import resource  # not on Windows
    except ImportError:
        return None
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 2**20 if sys.platform == "darwin" else kb / 1024     # bytes on macOS, kB elsewhere


# ------------------------------------------------------------------------------------- one run
def _base_row(key: str, blob: str, method: str, seed: int, setting: Setting, dev) -> dict:
    return {"timestamp": datetime.now(UTC).isoformat(timespec="seconds"), "setting_key": key,
            "method": method, "seed": seed, "labeled": _labeled_text(setting.labeled), "epochs": setting.epochs,
            "device": device_name(dev), "options": options_text(method), "setting": blob}


def run_one(method: str, seed: int, setting: Setting, device, key: str = "", blob: str = "") -> dict:
    """Train ``method`` for one seed and return its row; a run that raises returns a ``failed`` row.

    A run stopped by Ctrl-C (``fit`` returns status ``stopped``) raises ``KeyboardInterrupt``: no row."""
    dev = pick_device(device)
    row = _base_row(key, blob, method, seed, setting, dev)
    probe, start = _MemoryProbe(dev), time.perf_counter()
    try:
        m, h = train_method(method, setting, seed=seed, device=dev, progress=False)
    except Exception as err:                     # noqa: BLE001 - any failure is recorded; the grid goes on
        return {**row, "status": "failed", "error": f"{type(err).__name__}: {err}"[:500],
                "wall_s": round(time.perf_counter() - start, 3)}
    if h.status != "finished":
        raise KeyboardInterrupt(f"{method} seed {seed} was {h.status}")
    return {**row, "status": "ok", "epochs": len(h.epochs), "accuracy": round(100 * h.test_acc, 4),
            "images_per_s": round(h.images_per_s, 1), "train_images": sum(e["images"] for e in h.epochs),
            "train_s": round(sum(e["train_s"] for e in h.epochs), 3), "wall_s": round(time.perf_counter() - start, 3),
            "peak_mem_mb": _round(probe.peak_mb(), 1), "memory": probe.kind,
            "trained_params": sum(p.numel() for p in m.trainable_parameters() if p.requires_grad)}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


# ---------------------------------------------------------------------------------------- grid
def _grid(methods, seeds, sizes) -> list[tuple]:
    """Seed-major order: every method of seed 0 first, so that an interrupted comparison is balanced."""
    return [(n, seed, method) for n in sizes for seed in seeds for method in methods]


def _check_setting(sizes, setting: Setting, dev) -> None:
    """Bad input that every run would fail on is an error before the first run."""
    train, _ = load_data(setting.dataset, dev)            # also loads the data once, before any run
    too_big = [n for n in sizes if n is not None and n > len(train)]
    if too_big:
        raise ValueError(f"labeled sizes {too_big} exceed the {len(train)} training images of {setting.dataset}")
    _check_fit_args(setting.epochs, setting.batch_size, setting.lr, train, setting.eval_every)
    if setting.test_size is not None and (not isinstance(setting.test_size, int) or setting.test_size <= 0):
        raise ValueError(f"test_size must be a positive integer or None, got {setting.test_size!r}")
    build_model(setting.student)                           # an unknown preset raises here


def run_comparison(methods=None, seeds=3, labeled=1000, setting: Setting | None = None, device="auto",
                   out=None, resume: bool = True, progress: bool = True) -> list[dict]:
    """Train every (labeled size, seed, method) on ``setting`` (its ``labeled`` replaced by each size),
    appending a row per run to the CSV ``out``; returns the latest row of every run of the grid.

    ``methods``: see :func:`resolve_methods`; ``seeds``: a count N (seeds 0..N−1) or a list;
    ``labeled``: see :func:`parse_labeled`. ``resume`` skips runs whose latest row is ``ok``; with
    ``resume=False`` every run is done again and its new row supersedes the old one.
    """
    methods, seeds, sizes = resolve_methods(methods), _seeds(seeds), parse_labeled(labeled)
    setting, dev = setting or Setting.default(), pick_device(device)
    out = Path(out) if out is not None else default_out(setting.dataset)
    _check_setting(sizes, setting, dev)
    key, blob = setting_key(setting, dev)
    grid, todo = _grid(methods, seeds, sizes), _todo(out, key, methods, seeds, sizes, resume)
    if todo:
        _prefetch_teachers(sorted({g[2] for g in todo}), setting, dev)
        _warm_up(next(g[2] for g in grid if g in todo), setting, dev)
    _run_grid(grid, todo, setting, dev, key, blob, out, progress)
    return _grid_rows(read_rows(out), key, grid)


def _point(row: dict) -> tuple:
    return row["labeled"] if row["labeled"] != "all" else None, row["seed"], row["method"]


def _todo(out: Path, key: str, methods, seeds, sizes, resume: bool) -> set[tuple]:
    """The grid points still to run: all of them, or (resume) those without an ``ok`` latest row."""
    grid = set(_grid(methods, seeds, sizes))
    if not resume:
        return grid
    return grid - {_point(r) for r in current_rows(read_rows(out), key) if r["status"] == "ok"}


def _prefetch_teachers(methods, setting: Setting, dev) -> None:
    """Fetch (or train, once, into the cache) the teacher of every method that needs one before the first run,
    so that no run's wall time includes training a teacher. A failure is left for the run to record."""
    for method in methods:
        try:
            if METHODS[method].needs_teacher:
                method_teacher(method, setting.dataset, dev, verbose=True)
        except Exception:                        # noqa: BLE001 - run_one records the error in the method's rows
            pass


def _warm_up(method: str, setting: Setting, dev) -> None:
    """One tiny unrecorded run (256 images, 1 epoch), so that the first recorded run does not pay the
    process's one-off costs (CUDA context, kernel selection, allocator growth) in its time and memory."""
    small = replace(setting, labeled=min(2 * setting.batch_size, 256), epochs=1, eval_every=1, test_size=256,
                    steps=None)
    try:
        train_method(method, small, seed=0, device=dev, progress=False)
    except Exception:                            # noqa: BLE001 - the recorded run reports any failure
        pass


def _run_grid(grid, todo, setting, dev, key, blob, out, progress) -> None:
    from tqdm.auto import tqdm
    bar = tqdm(total=len(grid), initial=len(grid) - len(todo), desc="runs", unit="run", disable=not progress)
    if progress and len(todo) < len(grid):
        bar.write(f"resuming {out}: {len(grid) - len(todo)} of {len(grid)} runs already done")
    try:
        for n, seed, method in grid:
            if (n, seed, method) not in todo:
                continue
            bar.set_postfix_str(f"{method}, seed {seed}, {_labeled_text(n)} labeled")
            _append_row(out, run_one(method, seed, replace(setting, labeled=n), dev, key, blob))
            bar.update(1)
    finally:
        bar.close()


def _grid_rows(rows: list[dict], key: str, grid) -> list[dict]:
    """The latest row of each grid point of this setting, in grid order."""
    latest = {_point(r): r for r in current_rows(rows, key)}
    return [latest[g] for g in grid if g in latest]

