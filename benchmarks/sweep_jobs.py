"""End-to-end time of the comparison sweep, with one worker and with ``--jobs 2``, measured in one run.

    python benchmarks/sweep_jobs.py                       # experiments/compare.toml: 13 methods × 3 seeds, 400 steps
    python benchmarks/sweep_jobs.py --seeds 0 --methods scratch,kd,ofd,rkd   # a smaller grid, same measurement

Each configuration runs the whole spec from nothing: a fresh results folder (no row to resume or copy) and a
fresh teacher-output cache (``KD_LAB_CACHE`` pointed at an empty folder holding only the zoo's teachers, so no
teacher is trained and no cached output is reused), so the first configuration gains nothing the second lacks.
Prints wall seconds per configuration, the ratio to ``--jobs 1``, and checks that both made the same cells
with the same accuracies (on the CPU a cell's row does not depend on the executor when the threads per run are
equal; with ``--jobs 2`` each run has half the threads, so accuracies may differ in the last digits).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _fresh_cache(root: Path) -> Path:
    """An empty kd_lab cache folder holding a copy of the zoo's trained teachers (not their cached outputs; the
    shipped teachers load from the package)."""
    from kd_lab.zoo import cache_dir as teachers  # $KD_LAB_CACHE/teachers: teachers trained here
    cache = root / "cache"
    if teachers().exists():
        shutil.copytree(teachers(), cache / "teachers")
    cache.mkdir(exist_ok=True)
    return cache


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(REPO / "experiments" / "compare.toml"))
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default: the spec's)")
    parser.add_argument("--methods", default=None, help="comma-separated methods (default: the spec's)")
    parser.add_argument("--jobs", default="1,2", help="the worker counts to time, in order")
    args = parser.parse_args()

    from kd_lab import sweep
    spec = sweep.load_spec(args.spec)
    if args.seeds:
        spec = sweep.replace(spec, seeds=tuple(int(s) for s in args.seeds.split(",")))
    if args.methods:
        keep = args.methods.split(",")
        spec = sweep.replace(spec, arms=tuple(a for a in spec.arms if a.method in keep))
    cells, _ = sweep.plan_cells(spec)
    print(f"{spec.name}: {len(cells)} cells, {len(spec.arms)} arms × {len(spec.seeds)} seeds; "
          f"{os.cpu_count()} CPUs")
    timings, rows = {}, {}
    for jobs in (int(j) for j in args.jobs.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            os.environ["KD_LAB_CACHE"] = str(_fresh_cache(root))
            start = time.perf_counter()
            got = sweep.run_sweep(spec, jobs=jobs, out=root / f"{spec.name}.csv", progress=False)
            timings[jobs] = time.perf_counter() - start
            rows[jobs] = {r["cell_key"]: r["accuracy"] for r in got}
    first = next(iter(timings))
    print(f"{'jobs':>5} | {'wall s':>8} | {'min':>6} | {'ratio to jobs=' + str(first):>16} | cells ok")
    for jobs, seconds in timings.items():
        ok = sum(1 for v in rows[jobs].values() if v is not None)
        print(f"{jobs:>5} | {seconds:8.1f} | {seconds / 60:6.1f} | {timings[first] / seconds:15.2f}× | {ok}")
    same = all(rows[j].keys() == rows[first].keys() for j in rows)
    print(f"same cells in every configuration: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
