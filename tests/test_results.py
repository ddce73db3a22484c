"""kd_lab.results: reading a comparison CSV without the sweep runner — typed rows, the latest row of a run,
summaries with one seed, effects paired by seed with their 95 % t-interval, course order. No training here:
the rows are written by hand (tests/test_compare.py reads the CSV of real runs)."""
import csv
import json
import math
import subprocess
import sys

import pytest

from kd_lab import compare, results
from kd_lab.results import COLUMNS


def row(method, seed, accuracy, labeled=1000, status="ok", key="k", **extra):
    """One row as :func:`kd_lab.results.read_rows` returns it (typed)."""
    return {"timestamp": f"2026-01-01T00:00:{seed:02d}+00:00", "setting_key": key, "method": method, "seed": seed,
            "labeled": labeled, "epochs": 1, "status": status, "accuracy": accuracy, "images_per_s": 1000.0,
            "train_images": 100, "train_s": 2.0, "wall_s": 3.0, "peak_mem_mb": 50.0, "memory": "test",
            "trained_params": 10, "device": "cpu (2 threads)", "error": "" if status == "ok" else "boom",
            "options": "{}", "setting": json.dumps({"dataset": "fashion-mnist", "lr": 0.05}), **extra}


def write_csv(path, rows, cut: str = "") -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if r[k] is None else r[k] for k in COLUMNS} for r in rows)
        f.write(cut)                                   # a last line a kill cut short (no newline)


# ------------------------------------------------------------------------------------ reading
def test_read_rows_types_the_values_and_skips_a_line_cut_short(tmp_path):
    path = tmp_path / "runs.csv"
    written = [row("scratch", 0, 80.5), row("kd", 0, None, labeled="all", status="failed")]
    write_csv(path, written, cut="2026-01-01T00:00:09+00:00,k,kd,1,10")
    got = results.read_rows(path)
    assert len(got) == 2
    assert got[0]["accuracy"] == 80.5 and got[0]["seed"] == 0 and got[0]["labeled"] == 1000
    assert got[0]["trained_params"] == 10 and isinstance(got[0]["wall_s"], float)
    assert got[1]["accuracy"] is None and got[1]["labeled"] == "all" and got[1]["error"] == "boom"
    assert results.read_rows(tmp_path / "missing.csv") == []


def test_read_rows_rejects_another_csv(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"other.csv is not a kd_lab comparison CSV: its columns are \['a', 'b'\]"):
        results.read_rows(path)


def test_the_latest_row_of_a_run_supersedes_the_earlier_ones():
    rows = [row("kd", 0, 80.0), row("kd", 1, 81.0), row("kd", 0, 85.0), row("kd", 0, 70.0, options='{"a": 1}')]
    latest = results.latest_rows(rows)
    assert [(r["seed"], r["accuracy"]) for r in latest] == [(0, 85.0), (1, 81.0), (0, 70.0)]   # options: another run


def test_labeled_sizes_and_course_order():
    assert results.labeled_sizes([row("kd", 0, 1, labeled=n) for n in ("all", 4000, 100, 100)]) == [100, 4000, "all"]
    assert results.in_course_order(["rkd", "zzz", "kd", "scratch", "aaa", "kd"]) == ["scratch", "kd", "rkd", "aaa",
                                                                                      "zzz"]


# ------------------------------------------------------------------------------------ summary
def test_summary_of_one_seed_has_no_std_and_the_table_shows_a_dash():
    rows = [row("scratch", 0, 80.0), row("scratch", 1, 82.0), row("kd", 0, 85.5), row("kd", 1, None, status="failed")]
    records = {r["method"]: r for r in results.summarize(rows)}
    assert records["kd"]["n"] == 1 and records["kd"]["failed"] == 1 and math.isnan(records["kd"]["acc_std"])
    assert records["scratch"]["acc_std"] == pytest.approx(math.sqrt(2)) and records["kd"]["delta"] == 4.5
    table = results.markdown_table(list(records.values()))
    assert "| kd | 1000 | 1 | 1 | 85.50 ± – | +4.50 |" in table
    assert "| scratch | 1000 | 2 | 0 | 81.00 ± 1.41 | +0.00 |" in table
    assert "- kd (1000 labeled) seed 1: boom" in table


def test_per_method_lists_seeds_in_order():
    rows = [row("kd", 2, 82.0), row("scratch", 1, 79.0), row("kd", 0, 80.0), row("kd", 1, 81.0)]
    data = results.per_method(rows)
    assert list(data) == ["scratch", "kd"]
    assert data["kd"]["seed"] == [0, 1, 2] and data["kd"]["accuracy"] == [80.0, 81.0, 82.0]


# ------------------------------------------------------------------------------------ effects
def test_effects_are_paired_by_seed_with_a_t_interval():
    acc = {"scratch": [80.0, 83.0, 86.0, 81.0], "kd": [83.0, 87.0, 89.0, None]}    # kd's seed 3 failed
    rows = [row(m, s, a, status="ok" if a is not None else "failed") for m, v in acc.items() for s, a in enumerate(v)]
    (e,) = results.effects(rows, [("kd", "scratch")])
    assert e["seeds"] == [0, 1, 2] and e["differences"] == [3.0, 4.0, 3.0] and e["n"] == 3
    d_mean, d_std = 10 / 3, math.sqrt(1 / 3)                    # Σ(d − d̄)² = 2/3, / (3 − 1)
    half = 4.303 * d_std / math.sqrt(3)
    assert e["diff_mean"] == pytest.approx(d_mean) and e["diff_std"] == pytest.approx(d_std)
    assert (e["ci_low"], e["ci_high"]) == pytest.approx((d_mean - half, d_mean + half))
    assert e["paired_verdict"] == "higher" and e["text"] == "+3.33 ± 0.58 (95 % CI +1.90 … +4.77, n = 3)"
    # unpaired, over every ok seed of each side: Δ = 86.333 − 82.5, SE = √(s_kd²/3 + s_scratch²/4)
    (kd_m, kd_s), (sc_m, sc_s) = (259 / 3, math.sqrt(28 / 3)), (82.5, math.sqrt(7))
    assert e["delta"] == pytest.approx(kd_m - sc_m) and e["se"] == pytest.approx(math.sqrt(kd_s**2 / 3 + sc_s**2 / 4))
    assert e["verdict"] == "within noise"


def test_effects_with_one_common_seed_have_no_interval():
    rows = [row("scratch", 0, 80.0), row("scratch", 1, 81.0), row("kd", 1, 84.0), row("kd", 2, 85.0)]
    (e,) = results.effects(rows, [("kd", "scratch"), ("dkd", "scratch")])        # no dkd runs: left out
    assert e["seeds"] == [1] and e["diff_mean"] == 3.0 and math.isnan(e["ci_low"])
    assert e["paired_verdict"] == "one seed" and e["text"] == "+3.00 ± – (95 % CI –, n = 1)"


# ------------------------------------------------------------------------ the reading half alone
def test_compare_re_exports_the_reading_half():
    for name in ("COLUMNS", "read_rows", "latest_rows", "current_rows", "labeled_sizes", "per_method", "summarize",
                 "effects", "setting_of", "markdown_table", "write_report"):
        assert getattr(compare, name) is getattr(results, name), name


def test_reading_rows_needs_neither_torch_nor_the_runner(tmp_path):
    path = tmp_path / "runs.csv"
    write_csv(path, [row("scratch", 0, 80.0), row("scratch", 1, 82.0)])
    script = (f"import sys; from kd_lab import results; rows = results.read_rows({str(path)!r})\n"
              "print(len(rows), results.labeled_sizes(rows), results.setting_of(rows)['lr'])\n"
              "assert 'torch' not in sys.modules and 'kd_lab.compare' not in sys.modules, sorted(sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2 [1000] 0.05"
