"""kd_lab.compare (lesson 06), a sweep of every method: the CSV of runs and its schema, resume after a kill,
failed runs, changed settings and method defaults, the summary table, effects; the per-method benchmark;
plot_comparison; ComparisonPanel; the lesson's exercise checks. Runs are real (Fashion-MNIST, 1 epoch on 100
labeled images, CPU)."""
import csv
import dataclasses
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from kd_lab import bench, compare, exercises, methods, sweep, viz
from kd_lab.__main__ import main as cli_main
from kd_lab.experiments import Setting, teacher_recipe, validation_size
from kd_lab.methods import METHODS, Method, method_options
from kd_lab.models import build_model, count_parameters
from kd_lab.train import device_name

REPO = Path(__file__).resolve().parents[1]
TINY = Setting(labeled=100, epochs=1, batch_size=64, test_size=200, eval_every=1)


class Broken(Method):
    """A method whose step raises, to check that a comparison records it and goes on."""

    name = "broken"

    def loss_terms(self, x, y, phase=None):
        raise RuntimeError("boom: this method always fails")


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory):
    """scratch and kd, seeds 0 and 1, 100 labeled images, 1 epoch: one real comparison shared by the tests."""
    out = tmp_path_factory.mktemp("cmp") / "runs.csv"
    rows = compare.run_comparison("scratch,kd", seeds=2, labeled=100, setting=TINY, device="cpu", out=out,
                                  progress=False)
    return out, rows


# ------------------------------------------------------------------------------------ input
def test_default_methods_are_every_registered_method_in_course_order(monkeypatch):
    names = compare.resolve_methods()
    assert sorted(names) == sorted(METHODS) and names[:3] == ["scratch", "kd", "dkd"]
    assert names.index("rkd") < names.index("kd+rkd") and names.index("dml") < names.index("rkd-d")
    monkeypatch.setitem(METHODS, "broken", Broken)
    assert compare.resolve_methods()[-1] == "broken"            # not in the course order: last
    assert compare.resolve_methods("kd, scratch,kd") == ["kd", "scratch"]


@pytest.mark.parametrize("bad", ["nope", "kd,nope", ["scratch", "ofd-x"], ""])
def test_unknown_methods_are_an_error_that_lists_the_allowed_ones(bad):
    with pytest.raises(ValueError, match=r"unknown method\(s\) .*; choose from \['scratch', 'kd', 'dkd'"):
        compare.resolve_methods(bad)


def test_labeled_sizes_and_seeds_are_parsed_and_checked():
    assert compare.parse_labeled("500, all,1000,500") == [500, None, 1000]
    assert compare.parse_labeled(1000) == [1000] and compare.parse_labeled([None]) == [None]
    for bad in ("0", "-3", "1e3", "many", 2.5):
        with pytest.raises(ValueError, match=f"labeled sizes must be positive integers or 'all', got {bad!r}"):
            compare.parse_labeled(bad)
    assert compare._seeds(3) == [0, 1, 2] and compare._seeds([4, 2, 4]) == [4, 2]
    with pytest.raises(ValueError, match="seeds must be a positive number of seeds, got 0"):
        compare._seeds(0)


def test_setting_key_changes_with_the_budget_and_device_but_not_the_labeled_size():
    key = compare.setting_key(TINY, "cpu")[0]
    assert compare.setting_key(Setting(**{**asdict(TINY), "labeled": 5000}), "cpu")[0] == key
    for change in ({"epochs": 2}, {"lr": 0.1}, {"student": "student-tiny"}, {"batch_size": 128}, {"test_size": None}):
        assert compare.setting_key(Setting(**{**asdict(TINY), **change}), "cpu")[0] != key, change
    assert compare.setting_key(TINY, "cuda")[0] != key


# ------------------------------------------------------------------------------- CSV schema
def test_csv_has_the_schema_and_one_consistent_row_per_run(tiny_csv):
    out, rows = tiny_csv
    with out.open(newline="") as f:
        raw = list(csv.reader(f))
    assert tuple(raw[0]) == compare.SWEEP_COLUMNS and len(raw) == 1 + 4
    assert [(r["method"], r["seed"]) for r in rows] == [("scratch", 0), ("kd", 0), ("scratch", 1), ("kd", 1)]
    params = count_parameters(build_model("student"))
    for r in rows:
        assert r["status"] == "ok" and r["error"] == "" and r["labeled"] == 100 and r["epochs"] == 1
        correct = r["accuracy"] / 100 * TINY.test_size                  # a whole number of the 200 test images
        assert 0 <= r["accuracy"] <= 100 and abs(correct - round(correct)) < 1e-3
        assert r["train_images"] == 100 and math.isclose(r["images_per_s"], 100 / r["train_s"], rel_tol=0.02)
        assert r["wall_s"] >= r["train_s"] > 0 and r["peak_mem_mb"] >= 0 and r["trained_params"] == params
        assert r["device"] == device_name("cpu") and r["memory"] in ("peak RSS growth (VmHWM)", "maxrss growth")
        assert json.loads(r["options"]) == method_options(r["method"])
        assert json.loads(r["setting"]) == {**asdict(TINY), "validation": validation_size(TINY), "device": "cpu",
                                            "teacher": teacher_recipe(r["method"], "fashion-mnist")}
        assert r["setting_key"] == compare.setting_key(TINY, "cpu")[0]
        assert r["spec"] == "runs" and r["arm"] == r["method"] and json.loads(r["grid"]) == {"labeled": 100}
        assert 0 <= r["val_accuracy"] <= 100 and len(r["cell_key"]) == 16


def test_a_resumed_comparison_runs_only_what_is_missing(tiny_csv, tmp_path, monkeypatch):
    out = tmp_path / "runs.csv"
    out.write_bytes(tiny_csv[0].read_bytes())
    calls = []
    real = sweep.train_method
    monkeypatch.setattr(sweep, "_warm_up", lambda *a: calls.append("warm-up"))
    monkeypatch.setattr(sweep, "_WARMED", set())
    monkeypatch.setattr(sweep, "train_method", lambda m, s, **kw: calls.append((m, s.labeled, kw["seed"])) or
                        real(m, s, **kw))
    rows = compare.run_comparison("scratch,kd", seeds=3, labeled=100, setting=TINY, device="cpu", out=out,
                                  progress=False)
    assert calls == ["warm-up", ("scratch", 100, 2), ("kd", 100, 2)]       # one unrecorded warm-up first
    assert [(r["method"], r["seed"]) for r in rows][-2:] == [("scratch", 2), ("kd", 2)] and len(rows) == 6
    assert out.read_text().startswith(tiny_csv[0].read_text())    # the old rows are untouched
    calls.clear()
    compare.run_comparison("scratch,kd", seeds=3, labeled=100, setting=TINY, device="cpu", out=out, progress=False)
    assert calls == []                                             # everything done: nothing runs, no warm-up


def test_the_cli_report_is_the_sweeps_with_the_protocol(tiny_csv, tmp_path, capsys):
    out = tmp_path / "runs.csv"
    out.write_bytes(tiny_csv[0].read_bytes())
    args = ["--labeled", "100", "--epochs", "1", "--batch-size", "64", "--test-size", "200", "--device", "cpu",
            "--eval-every", "1"]
    assert cli_main(["compare", "--methods", "scratch,kd", "--seeds", "2", "--out", str(out), *args]) == 0
    printed = capsys.readouterr().out                          # nothing to train: the rows are TINY's cells
    assert "resuming" in printed and "| scratch | scratch | 2 | 0 |" in printed and "| kd | kd | 2 | 0 |" in printed
    assert out.read_text() == tiny_csv[0].read_text()
    report = out.with_suffix(".md").read_text()
    assert report.startswith("# Sweep runs") and f"Setting ({compare.setting_key(TINY, 'cpu')[0]})" in report
    assert "Evaluation protocol: every run reports its test accuracy after the last step" in report
    kd = [r["accuracy"] for r in tiny_csv[1] if r["method"] == "kd"]
    scratch = [r["accuracy"] for r in tiny_csv[1] if r["method"] == "scratch"]
    d = [a - b for a, b in zip(kd, scratch)]
    assert f"| {statistics.mean(d):+.2f} ± {statistics.stdev(d):.2f} (95 % CI " in report    # paired by seed


def test_a_changed_setting_does_not_mix_with_old_rows(tiny_csv, tmp_path):
    out = tmp_path / "runs.csv"
    out.write_bytes(tiny_csv[0].read_bytes())
    other = Setting(**{**asdict(TINY), "lr": 0.1})
    rows = compare.run_comparison("scratch", seeds=1, labeled=100, setting=other, device="cpu", out=out,
                                  progress=False)
    assert len(rows) == 1 and rows[0]["setting_key"] == compare.setting_key(other, "cpu")[0]
    assert len(compare.read_rows(out)) == 5                        # the lr=0.1 run was not skipped
    with pytest.raises(ValueError, match="the rows hold 2 settings .*; pass setting_key= one of them"):
        compare.summarize(compare.read_rows(out))
    assert [r["n"] for r in compare.summarize(compare.read_rows(out), setting_key=rows[0]["setting_key"])] == [1]


def test_rows_made_with_other_method_defaults_are_not_current(tiny_csv, monkeypatch):
    real = sweep.method_info

    def alpha_changed(name):                                        # as if kd's default alpha became 0.5
        info = real(name)
        return dataclasses.replace(info, defaults={**info.defaults, "alpha": 0.5}) if name == "kd" else info

    monkeypatch.setattr(sweep, "method_info", alpha_changed)
    monkeypatch.setattr(methods, "method_options", lambda name: dict(alpha_changed(name).defaults))
    key = compare.setting_key(TINY, "cpu")[0]
    assert [(r["method"], r["seed"]) for r in compare.current_rows(compare.read_rows(tiny_csv[0]), key)] == \
        [("scratch", 0), ("scratch", 1)]                          # the kd rows were made with alpha 0.9
    cells, _ = sweep.plan_cells(compare.comparison_spec("scratch,kd", 2, 100, TINY, name="runs"), "cpu")
    assert [(c["method"], c["seed"]) for c in sweep.todo_cells(cells, tiny_csv[0])] == [("kd", 0), ("kd", 1)]


def test_a_method_that_raises_is_recorded_as_failed_and_the_rest_go_on(tmp_path, monkeypatch):
    monkeypatch.setitem(METHODS, "broken", Broken)
    out = tmp_path / "runs.csv"
    rows = compare.run_comparison("broken,scratch", seeds=1, labeled=100, setting=TINY, device="cpu", out=out,
                                  progress=False)
    assert [(r["method"], r["status"]) for r in rows] == [("broken", "failed"), ("scratch", "ok")]
    assert rows[0]["error"] == "RuntimeError: boom: this method always fails" and rows[0]["accuracy"] is None
    table = compare.write_report(rows, tmp_path / "runs.md")
    assert "| broken | 100 | 0 | 1 | – ± – |" in table
    assert "Failed runs:\n- broken (100 labeled) seed 0: RuntimeError: boom" in table
    assert (tmp_path / "runs.md").read_text().strip() == table.strip()
    monkeypatch.setattr(Broken, "loss_terms", lambda self, x, y, phase=None: {"ce": self.student(x).square().mean()})
    again = compare.run_comparison("broken,scratch", seeds=1, labeled=100, setting=TINY, device="cpu", out=out,
                                   progress=False)                # resume retries the failed run only
    assert [(r["method"], r["status"]) for r in again] == [("broken", "ok"), ("scratch", "ok")]
    assert again[1]["timestamp"] == rows[1]["timestamp"] and len(compare.read_rows(out)) == 3


def test_a_line_cut_by_a_kill_is_ignored_and_dropped_before_the_next_row(tiny_csv, tmp_path):
    out = tmp_path / "runs.csv"
    good = tiny_csv[0].read_text()
    out.write_text(good + good.splitlines()[1][:57])              # a row cut in the middle, no newline
    assert len(compare.read_rows(out)) == 4
    sweep._append_row(out, {**tiny_csv[1][0], "seed": 7})
    lines = out.read_text().splitlines()
    assert len(lines) == 6 and lines[:5] == good.splitlines() and ",7," in lines[5]
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="is not a kd_lab comparison CSV: its columns are \\['a', 'b'\\]"):
        compare.read_rows(tmp_path / "other.csv")


def test_a_killed_comparison_picks_up_where_it_was(tmp_path):
    out = tmp_path / "runs.csv"
    args = [sys.executable, "-m", "kd_lab", "compare", "--methods", "scratch,kd", "--seeds", "2", "--labeled", "100",
            "--epochs", "1", "--test-size", "200", "--batch-size", "64", "--device", "cpu", "--out", str(out)]
    env = {**os.environ, "KD_LAB_QUICK": "1"}
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and len(compare.read_rows(out)) < 1:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)                                # the hardest stop: no handler runs
    proc.wait(timeout=30)
    before = compare.read_rows(out)
    assert 1 <= len(before) < 4, "the comparison must be killed mid-way"
    with out.open("a") as f:
        f.write("2026-01-01T00:00:00+00:00,abc,kd,1,10")            # as if the kill had cut a row short
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"resuming {out}: {len(before)} of 4 cells already done" in done.stdout
    after = compare.read_rows(out)
    assert after[:len(before)] == before and len(after) == 4       # finished runs were not redone
    assert sorted((r["method"], r["seed"]) for r in after) == [("kd", 0), ("kd", 1), ("scratch", 0), ("scratch", 1)]
    assert "| scratch | scratch | 2 | 0 |" in done.stdout and out.with_suffix(".md").exists()


def test_sigterm_stops_the_comparison_with_exit_130_and_a_valid_csv(tmp_path):
    out = tmp_path / "runs.csv"
    # 40 runs: on an idle machine one takes about 0.1 s, so the signal lands mid-way, not after the last run
    args = [sys.executable, "-m", "kd_lab", "compare", "--methods", "scratch", "--seeds", "40", "--labeled", "100",
            "--epochs", "1", "--test-size", "200", "--device", "cpu", "--out", str(out)]
    proc = subprocess.Popen(args, cwd=REPO, env={**os.environ, "KD_LAB_QUICK": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and len(compare.read_rows(out)) < 1:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted; finished runs are in" in err and "run the same command again to resume" in err
    rows = compare.read_rows(out)
    assert 1 <= len(rows) < 40 and all(r["status"] == "ok" for r in rows)


def test_the_memory_probe_sees_an_allocation_made_during_the_run(monkeypatch):
    probe = sweep._MemoryProbe(torch.device("cpu"))
    block = torch.ones(50_000_000)                                  # 200 MB, touched
    assert probe.peak_mb() >= 0.9 * block.numel() * 4 / 2**20
    del block
    monkeypatch.setattr(sweep, "_reset_peak_rss", lambda: False)     # not Linux: getrusage's maxrss
    assert sweep._MemoryProbe(torch.device("cpu")).kind == "maxrss growth"
    monkeypatch.setattr(sweep, "_maxrss_mb", lambda: None)            # Windows: no resource module
    probe = sweep._MemoryProbe(torch.device("cpu"))
    assert probe.kind == "not measured" and probe.peak_mb() is None


# --------------------------------------------------------------------------------- summary
def test_summary_and_markdown_table_match_an_independent_computation(tiny_csv):
    rows = tiny_csv[1]
    acc = {m: [r["accuracy"] for r in rows if r["method"] == m] for m in ("scratch", "kd")}
    records = compare.summarize(rows)
    assert [(r["method"], r["n"], r["failed"]) for r in records] == [("scratch", 2, 0), ("kd", 2, 0)]
    for r in records:
        assert math.isclose(r["acc_mean"], statistics.mean(acc[r["method"]]))
        assert math.isclose(r["acc_std"], statistics.stdev(acc[r["method"]]), abs_tol=1e-12)
    delta = statistics.mean(acc["kd"]) - statistics.mean(acc["scratch"])
    table = compare.markdown_table(records)
    kd_line = next(line for line in table.splitlines() if line.startswith("| kd |"))
    assert f"{statistics.mean(acc['kd']):.2f} ± {statistics.stdev(acc['kd']):.2f}" in kd_line
    assert f"| {delta:+.2f} |" in kd_line and "| scratch | 100 | 2 | 0 |" in table
    assert f"Device: {device_name('cpu')}" in table and "Failed runs" not in table


def synthetic_rows():
    rows = []
    for size, base in ((100, 70.0), (1000, 80.0)):
        for m, shift in (("scratch", 0.0), ("kd", 3.0), ("dkd", 0.1)):
            for seed, noise in enumerate((-0.5, 0.0, 0.5)):
                rows.append({"setting_key": "k", "method": m, "seed": seed, "labeled": size, "options": "{}",
                             "status": "ok", "accuracy": base + shift + noise, "images_per_s": 1000.0 / (1 + shift),
                             "train_s": 10.0 * (1 + shift) + seed, "wall_s": 12.0 * (1 + shift) + seed,
                             "peak_mem_mb": 50.0, "device": "cpu (2 threads)", "error": ""})
    return rows


def test_per_method_and_effects():
    rows = synthetic_rows()
    with pytest.raises(ValueError, match=r"the rows hold labeled sizes \[100, 1000\]; pass labeled= one of them"):
        compare.per_method(rows)
    data = compare.per_method(rows, labeled=1000)
    assert list(data) == ["scratch", "kd", "dkd"] and data["kd"]["accuracy"] == [82.5, 83.0, 83.5]
    assert data["kd"]["seed"] == [0, 1, 2] and data["dkd"]["wall_s"] == pytest.approx([13.2, 14.2, 15.2])
    found = {e["method"]: e for e in compare.effects(rows, [("kd", "scratch"), ("dkd", "scratch"), ("x", "kd")],
                                                     labeled=100)}
    assert set(found) == {"kd", "dkd"}                                     # pairs without runs are left out
    se = math.sqrt(2 * 0.5**2 / 3)
    assert found["kd"]["delta"] == pytest.approx(3.0) and found["kd"]["se"] == pytest.approx(se)
    assert found["kd"]["verdict"] == "higher" and found["dkd"]["verdict"] == "within noise"
    one_seed = [r for r in rows if r["seed"] == 0]
    assert compare.effects(one_seed, [("kd", "scratch")], labeled=100)[0]["verdict"] == "one seed"


# ------------------------------------------------------------------------------------- CLI
@pytest.mark.parametrize("args,message", [
    (["--methods", "nope"], "unknown method(s) ['nope']; choose from ['scratch', 'kd'"),
    (["--labeled", "0"], "labeled sizes must be positive integers or 'all', got '0'"),
    (["--labeled", "70000"], "labeled sizes [70000] exceed the 59000 training images of fashion-mnist outside the "
                             "1000 validation images"),
    (["--seeds", "0"], "seeds must be a positive number of seeds, got 0"),
    (["--epochs", "0"], "epochs must be a positive integer, got 0"),
    (["--student", "giant"], "student = 'giant' is not allowed; expected a model preset, one of ['teacher'"),
    (["--device", "tpu9"], "unknown device 'tpu9'"),
])
def test_compare_bad_input_exits_2_with_a_clear_message(args, message, capsys, tmp_path):
    assert cli_main(["compare", "--out", str(tmp_path / "x.csv"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL      # the CLI restores the handler


# ---------------------------------------------------------------------------------- bench
def test_bench_methods_times_every_step_with_a_ratio_and_reports_failures(monkeypatch):
    monkeypatch.setitem(METHODS, "broken", Broken)
    rows = bench.method_steps("scratch,kd,broken", device="cpu", n_images=256, batch_size=64)
    by = {r["method"]: r for r in rows}
    assert by["scratch"]["ratio"] == 1.0 and by["scratch"]["reference"] == "scratch"
    assert by["kd"]["ratio"] == pytest.approx(by["kd"]["images_per_s"] / by["scratch"]["images_per_s"])
    assert by["kd"]["images"] == 256                                 # 4 steps of 64 images
    assert by["kd"]["ms_per_step"] == pytest.approx(1000 * 256 / by["kd"]["images_per_s"] / 4, rel=1e-6)
    assert by["broken"]["error"].startswith("RuntimeError: boom") and by["broken"]["ratio"] is None
    table = bench.format_method_table(rows)
    assert "broken     | failed: RuntimeError: boom" in table and "1.00x" in table
    assert f"device: {device_name('cpu')}" in table and "images/s of scratch" in table


def test_bench_methods_cli_options_and_bad_input(capsys):
    from kd_lab.__main__ import build_parser
    assert build_parser().parse_args(["bench", "--methods"]).methods == "all"
    assert build_parser().parse_args(["bench", "--methods", "kd,dkd"]).methods == "kd,dkd"
    assert build_parser().parse_args(["bench"]).methods is None               # the KD-epoch table, as before
    assert cli_main(["bench", "--methods", "kd,nope", "--device", "cpu"]) == 2
    assert "unknown method(s) ['nope']; choose from ['scratch'" in capsys.readouterr().err
    assert cli_main(["bench", "--methods", "kd", "--images", "0", "--device", "cpu"]) == 2
    assert "images and batch size must be positive integers, got 0 and 128" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ viz
def test_plot_comparison_draws_dots_and_accuracy_against_cost():
    data = compare.per_method(synthetic_rows(), labeled=1000)
    fig = viz.plot_comparison(data)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    bars, cost = fig.axes
    assert [c.lines[0].get_ydata()[0] for c in bars.containers] == pytest.approx([80.0, 83.0, 80.1])
    assert not bars.patches                                       # dots with intervals, not bars cut off above 0
    assert [t.get_text() for t in bars.get_xticklabels()] == ["scratch", "kd", "dkd"]
    assert cost.get_xlabel() == "wall seconds per run" and cost.get_ylabel() == "test accuracy (%)"
    assert cost.get_title() == "Accuracy against training cost" and cost.get_xscale() == "linear"
    points = np.array([line.get_xydata()[0] for line in cost.lines if line.get_marker() == "o"])
    assert np.allclose(points, [(13.0, 80.0), (49.0, 83.0), (14.2, 80.1)])
    assert [t.get_text() for t in cost.texts] == ["scratch", "kd", "dkd"]


def test_plot_comparison_cost_choices_and_errors():
    data = compare.per_method(synthetic_rows(), labeled=100)
    fig = viz.plot_comparison(data, cost="images_per_s", log_cost=True)
    assert fig.axes[1].get_xscale() == "log" and fig.axes[1].get_xlabel().startswith("training images/s")
    with pytest.raises(ValueError, match="'scratch' has no 'joules' values; it has"):
        viz.plot_comparison(data, cost="joules")
    fig = Figure()
    axes = fig.subplots(1, 2)
    assert viz.plot_comparison({}, axes=axes) is fig and axes[1].texts[0].get_text() == "no finished run"


# -------------------------------------------------------------------------------- widget
def test_comparison_panel_redraws_for_the_chosen_methods_size_and_cost():
    from kd_lab.widgets import ComparisonPanel
    panel = ComparisonPanel(synthetic_rows())
    assert list(panel.methods.options) == ["scratch", "kd", "dkd"] and list(panel.labeled.options) == [100, 1000]
    assert [c.lines[0].get_ydata()[0] for c in panel.figure.axes[0].containers] == pytest.approx([70.0, 73.0, 70.1])
    panel.methods.value = ("scratch", "kd")
    panel.labeled.value = 1000
    assert [c.lines[0].get_ydata()[0] for c in panel.figure.axes[0].containers] == pytest.approx([80.0, 83.0])
    assert "<td>kd</td>" in panel.table.value and "<td>dkd</td>" not in panel.table.value
    assert "<td>+3.00</td>" in panel.table.value and len(panel.records) == 2
    panel.cost.value = "peak_mem_mb"
    assert panel.figure.axes[1].get_xlabel() == "peak memory (MB)"
    assert bytes(panel.image.value).startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="no finished"):
        ComparisonPanel([{**r, "status": "failed"} for r in synthetic_rows()])


# ------------------------------------------------------------------------------ exercises
def test_seed_summary_check_accepts_the_answer_and_explains_mistakes(capsys):
    def good(rows, method):
        v = torch.tensor([r["accuracy"] for r in rows if r["method"] == method and r["status"] == "ok"],
                         dtype=torch.float64)
        return float(v.mean()), float(v.std())

    def population(rows, method):
        m, _ = good(rows, method)
        v = np.array([r["accuracy"] for r in rows if r["method"] == method and r["status"] == "ok"])
        return m, float(v.std())

    def keeps_failed(rows, method):
        return statistics.mean(r["accuracy"] for r in rows if r["method"] == method), 0.0

    assert exercises.check_seed_summary(good)
    assert not exercises.check_seed_summary(population)
    assert "population std (divide by n)" in capsys.readouterr().out
    assert not exercises.check_seed_summary(keeps_failed)
    assert "keep the rows whose status is 'ok'" in capsys.readouterr().out
    assert not exercises.check_seed_summary(lambda rows, m: good(rows, "kd"))
    assert "method 'scratch': mean" in capsys.readouterr().out


def test_pareto_front_check_accepts_the_answer_and_explains_mistakes(capsys):
    def front(points):
        return {m for m, (a, c) in points.items()
                if not any(a2 >= a and c2 <= c and (a2, c2) != (a, c) for n, (a2, c2) in points.items() if n != m)}

    assert exercises.check_pareto_front(front)
    assert not exercises.check_pareto_front(lambda p: {max(p, key=lambda m: p[m][0])})
    assert "dml (85.0, 30.0) is on the front" in capsys.readouterr().out
    assert not exercises.check_pareto_front(lambda p: set(p))
    assert "dkd (84.0, 42.0) is not on the front: kd (86.0, 40.0)" in capsys.readouterr().out
    assert not exercises.check_pareto_front(lambda p: front({m: (a, -c) for m, (a, c) in p.items()}))
    assert "a lower cost is better" in capsys.readouterr().out
    def strict(points):                                             # an equal point must not knock a method out
        return {m for m, (a, c) in points.items() if not any(a2 >= a and c2 <= c for n, (a2, c2) in points.items()
                                                             if n != m)}

    assert not exercises.check_pareto_front(strict)
    assert "an equal point does not beat it" in capsys.readouterr().out


def test_importing_compare_changes_no_global_state():
    script = ("import signal, torch; rng = torch.get_rng_state().clone(); handler = signal.getsignal(signal.SIGTERM)\n"
              "import kd_lab.compare, kd_lab.bench\n"
              "assert torch.equal(rng, torch.get_rng_state()) and signal.getsignal(signal.SIGTERM) == handler\n"
              "assert 'matplotlib.pyplot' not in sys.modules; print('clean')")
    done = subprocess.run([sys.executable, "-c", "import sys\n" + script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "clean"


def test_mean_std_is_the_sample_std_and_nan_for_one_seed():
    from kd_lab import stats
    from kd_lab.experiments import mean_std  # the lessons import it here
    assert mean_std is stats.mean_std
    m, s = mean_std([80.0, 82.0, 84.0])
    assert m == pytest.approx(82.0) and s == pytest.approx(2.0)                 # n − 1 in the denominator
    m, s = mean_std([81.5])
    assert m == 81.5 and math.isnan(s)                                          # one seed: no spread to show
    m, s = mean_std(iter([]))
    assert math.isnan(m) and math.isnan(s)
