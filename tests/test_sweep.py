"""kd_lab.sweep: a TOML spec drives a sweep; stops (a KeyboardInterrupt after k cells, SIGTERM, SIGKILL) resume
with the missing cells only; a changed setting never mixes with old rows; the report's paired statistics equal a
hand computation from the CSV; --jobs 2 gives the rows of --jobs 1 (same threads), also when a worker is
killed; every kind of bad spec is an error naming the file, key and value; the validation split is disjoint
from the labeled, test and SSLD images; compare is a sweep. Runs are real and tiny (Fashion-MNIST, CPU)."""
import csv
import json
import math
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from kd_lab import compare, results, sweep
from kd_lab.__main__ import main as cli_main
from kd_lab.data import labeled_split
from kd_lab.experiments import (
    VALIDATION_SEED,
    Setting,
    _labeled_indices,
    load_data,
    protocol_text,
    train_method,
    validation_indices,
)
from kd_lab.methods import method_options
from kd_lab.mining import duplicates
from kd_lab.train import evaluate

REPO = Path(__file__).resolve().parents[1]
QUICK_ENV = {**os.environ, "KD_LAB_QUICK": "1"}

TINY_TOML = """\
name = "tiny"
description = "scratch against KD at T = 2, three seeds"
epochs = 2
batch_size = 50
test_size = 200
validation = 200
seeds = [0, 1, 2]

[grid]
labeled = [300]

[[arms]]
label = "scratch"
method = "scratch"

[[arms]]
label = "kd T=2"
method = "kd"
options = { temperature = 2 }
"""


def write_spec(folder: Path, text: str = TINY_TOML, name: str = "spec.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny sweep run once in this process, one thread per run: (spec path, CSV path, rows)."""
    folder = tmp_path_factory.mktemp("sweep")
    path = write_spec(folder)
    out = folder / "tiny.csv"
    rows = sweep.run_sweep(path, device="cpu", threads=1, out=out, progress=False)
    return path, out, rows


def copy_csv(tiny, tmp_path) -> Path:
    out = tmp_path / "tiny.csv"
    out.write_bytes(tiny[1].read_bytes())
    return out


# ------------------------------------------------------------------------------------ a sweep
def test_a_spec_file_drives_a_sweep_and_each_row_carries_its_cell(tiny):
    path, out, rows = tiny
    with out.open(newline="") as f:
        raw = list(csv.reader(f))
    assert tuple(raw[0]) == results.SWEEP_COLUMNS and len(raw) == 1 + 6
    spec = sweep.load_spec(path)
    cells, plan = sweep.plan_cells(spec, "cpu")
    assert [(r["arm"], r["seed"]) for r in rows] == [(a, s) for s in (0, 1, 2) for a in ("scratch", "kd T=2")]
    assert [r["cell_key"] for r in rows] == [c["cell_key"] for c in cells] and len({p["cell_key"] for p in plan}) == 6
    for r in rows:
        assert r["spec"] == "tiny" and r["status"] == "ok" and r["error"] == "" and r["labeled"] == 300
        assert json.loads(r["grid"]) == {"labeled": 300} and r["threads"] == 1
        assert r["torch_version"] == torch.__version__
        expected = {**method_options(r["method"]), **({"temperature": 2.0} if r["method"] == "kd" else {})}
        assert json.loads(r["options"]) == expected
        for col, n in (("accuracy", 200), ("val_accuracy", 200)):          # whole images of 200
            correct = r[col] / 100 * n
            assert 0 <= r[col] <= 100 and abs(correct - round(correct)) < 1e-3
        assert r["train_images"] == 2 * 300 and math.isclose(r["images_per_s"], 600 / r["train_s"], rel_tol=0.02)
        assert r["wall_s"] >= r["train_s"] > 0 and r["device"] == "cpu (1 threads)"
        setting = json.loads(r["setting"])
        assert setting["lr"] == 0.05 and setting["validation"] == 200 and setting["eval_every"] == 2
        assert setting["teacher"] == (None if r["method"] == "scratch" else "full") and setting["device"] == "cpu"
    assert len({r["accuracy"] for r in rows}) > 1                           # the runs differ, they are real


def test_a_keyboard_interrupt_after_k_cells_resumes_with_the_missing_cells_only(tiny, tmp_path, monkeypatch):
    out = tmp_path / "runs.csv"
    monkeypatch.setattr(sweep, "_warm_up", lambda *a, **k: None)
    real, calls = sweep.train_method, []

    def stop_at_the_third(method, setting, **kw):
        calls.append((method, kw["seed"]))
        if len(calls) == 3:
            raise KeyboardInterrupt("Ctrl-C")
        return real(method, setting, **kw)

    monkeypatch.setattr(sweep, "train_method", stop_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(tiny[0], device="cpu", threads=1, out=out, progress=False)
    before = results.read_rows(out)
    assert [(r["arm"], r["seed"]) for r in before] == [("scratch", 0), ("kd T=2", 0)]
    calls.clear()
    monkeypatch.setattr(sweep, "train_method", lambda m, s, **kw: calls.append((m, kw["seed"])) or real(m, s, **kw))
    rows = sweep.run_sweep(tiny[0], device="cpu", threads=1, out=out, progress=False)
    assert calls == [("scratch", 1), ("kd", 1), ("scratch", 2), ("kd", 2)]      # the missing cells only
    assert results.read_rows(out)[:2] == before and len(rows) == 6
    assert [r["accuracy"] for r in rows] == [r["accuracy"] for r in tiny[2]]   # the same runs as in one go
    calls.clear()
    sweep.run_sweep(tiny[0], device="cpu", threads=1, out=out, progress=False)
    assert calls == []


def test_sigterm_and_sigkill_of_a_sweep_process_lose_nothing_and_it_resumes(tmp_path):
    text = TINY_TOML.replace("epochs = 2", "epochs = 1").replace("seeds = [0, 1, 2]", f"seeds = {list(range(5))}")
    text = text.replace('method = "kd"\noptions = { temperature = 2 }', 'method = "scratch"\nlr = 0.1')
    path = write_spec(tmp_path, text.replace("labeled = [300]", "labeled = [100]"))   # 10 cheap cells
    out = tmp_path / "res" / "tiny-quick.csv"
    args = [sys.executable, "-m", "kd_lab", "sweep", str(path), "--results", str(tmp_path / "res"), "--device", "cpu"]

    def start_and_stop(sig, min_rows):
        proc = subprocess.Popen(args, cwd=REPO, env=QUICK_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        deadline = time.time() + 240
        while time.time() < deadline and len(results.read_rows(out)) < min_rows and proc.poll() is None:
            time.sleep(0.1)
        os.killpg(proc.pid, sig)                          # SIGKILL: the whole group, no handler runs
        _, err = proc.communicate(timeout=60)
        return proc.returncode, err

    code, err = start_and_stop(signal.SIGTERM, 1)
    assert code == 130 and "interrupted; finished runs are in" in err and "run the same command again" in err
    first = results.read_rows(out)
    assert 1 <= len(first) < 10 and all(r["status"] == "ok" for r in first)
    code, _ = start_and_stop(signal.SIGKILL, len(first) + 1)
    assert code == -signal.SIGKILL
    before = results.read_rows(out)
    assert before[:len(first)] == first and len(before) < 10, "the sweep must be killed mid-way"
    with out.open("a") as f:
        f.write(out.read_text().splitlines()[-1][:70])        # as if the kill had cut a row short
    done = subprocess.run(args, cwd=REPO, env=QUICK_ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"resuming {out}: {len(before)} of 10 cells already done" in done.stderr + done.stdout
    after = results.read_rows(out)
    assert after[:len(before)] == before and len(after) == 10 and out.read_text().endswith("\n")
    assert len({r["cell_key"] for r in after}) == 10 and all(r["status"] == "ok" for r in after)
    assert "| kd T=2 | scratch | 5 | 0 |" in done.stdout and out.with_suffix(".md").exists()


def test_a_changed_setting_never_mixes_with_old_rows(tiny, tmp_path):
    out = copy_csv(tiny, tmp_path)
    changed = write_spec(tmp_path, TINY_TOML.replace("batch_size = 50", "batch_size = 50\nlr = 0.1"))
    rows = sweep.run_sweep(changed, device="cpu", threads=1, out=out, progress=False)
    assert len(rows) == 6 and len(results.read_rows(out)) == 12                  # every cell ran again
    assert not {r["cell_key"] for r in rows} & {r["cell_key"] for r in tiny[2]}
    assert all(json.loads(r["setting"])["lr"] == 0.1 for r in rows)
    for spec_path, expected in ((changed, rows), (tiny[0], tiny[2])):         # each spec sees its own rows
        _, plan = sweep.plan_cells(sweep.load_spec(spec_path), "cpu")
        records = results.summarize_sweep(results.read_rows(out), plan)
        kd = next(r for r in records if r["arm"] == "kd T=2")
        assert kd["n"] == 3 and kd["test"] == {r["seed"]: r["accuracy"] for r in expected if r["arm"] == "kd T=2"}
    assert rows[0]["setting_key"] != tiny[2][0]["setting_key"]


def test_a_run_another_spec_already_made_is_copied_not_trained_again(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("KD_LAB_QUICK", raising=False)             # full mode: tiny.csv is the source, not -quick
    copy_csv(tiny, tmp_path)                                      # tiny.csv beside the new spec's results
    (tmp_path / "tiny-quick.csv").write_bytes(tiny[1].read_bytes())   # quick rows are never a source of full ones
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")            # nor is a CSV that is not a results file
    other = write_spec(tmp_path, TINY_TOML.replace('name = "tiny"', 'name = "other"')
                       .replace('label = "scratch"', 'label = "plain CE"'), name="other.toml")
    assert cli_main(["sweep", str(other), "--results", str(tmp_path), "--dry-run", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "other: 0 of 6 cells to run" in printed and "(6 more copied from other results files)" in printed
    assert printed.count("(copied from tiny.csv)") == 6

    def no_training(cell):
        raise AssertionError(f"cell {cell['cell_key']} trained again")
    monkeypatch.setattr(sweep, "run_cell", no_training)
    rows = sweep.run_sweep(other, device="cpu", threads=1, out=tmp_path / "other.csv", progress=False)
    assert [r["cell_key"] for r in rows] == [r["cell_key"] for r in tiny[2]]
    for mine, theirs in zip(rows, tiny[2]):
        assert mine["spec"] == "other" and mine["accuracy"] == theirs["accuracy"]
        assert mine["arm"] == ("plain CE" if theirs["arm"] == "scratch" else theirs["arm"])
    assert [r["arm"] for r in results.read_rows(tmp_path / "tiny.csv")] == [r["arm"] for r in tiny[2]]   # untouched
    fresh = sweep.todo_cells(sweep.plan_cells(sweep.load_spec(other), "cpu")[0], tmp_path / "new.csv", resume=False)
    assert len(fresh) == 6                                         # --fresh copies nothing: every cell to run


# ------------------------------------------------------------------------------------ the report
def test_the_paired_statistics_equal_a_hand_computation_from_the_csv(tiny):
    path, out, _ = tiny
    with out.open(newline="") as f:
        raw = list(csv.DictReader(f))
    acc = {(r["arm"], int(r["seed"])): float(r["accuracy"]) for r in raw}
    val = {(r["arm"], int(r["seed"])): float(r["val_accuracy"]) for r in raw}
    d = [acc["kd T=2", s] - acc["scratch", s] for s in (0, 1, 2)]
    d_mean, d_std = statistics.mean(d), statistics.stdev(d)
    half = 4.303 * d_std / math.sqrt(3)                                # t(0.975, 2) = 4.303
    _, plan = sweep.plan_cells(sweep.load_spec(path), "cpu")
    records = {r["arm"]: r for r in results.summarize_sweep(results.read_rows(out), plan)}
    kd, scratch = records["kd T=2"], records["scratch"]
    assert kd["baseline"] == "scratch" and scratch["baseline"] is None and scratch["effect"] == "–"
    assert kd["differences"] == pytest.approx(d) and kd["pairs"] == 3
    assert kd["diff_mean"] == pytest.approx(d_mean) and kd["diff_std"] == pytest.approx(d_std)
    assert (kd["ci_low"], kd["ci_high"]) == pytest.approx((d_mean - half, d_mean + half))
    kd_val = [val["kd T=2", s] for s in (0, 1, 2)]
    assert kd["val_mean"] == pytest.approx(statistics.mean(kd_val)) and kd["val_std"] == pytest.approx(
        statistics.stdev(kd_val))
    effect = f"{d_mean:+.2f} ± {d_std:.2f} (95 % CI {d_mean - half:+.2f} … {d_mean + half:+.2f}, n = 3)"
    report = out.with_suffix(".md").read_text()
    assert "| kd T=2 | kd | 3 | 0 |" in report and f"{effect} vs scratch" in report
    assert protocol_text(sweep.base_setting(sweep.load_spec(path)), (0, 1, 2)) in report
    assert "Setting (" in report and "validation=200" in report and "### labeled = 300" in report
    best = max(("scratch", "kd T=2"), key=lambda a: statistics.mean(val[a, s] for s in (0, 1, 2)))
    assert results.best_on_validation(results.read_rows(out))["arm"] == best
    assert f"Best on validation accuracy: **{best}**" in report


def test_best_on_validation_chooses_on_validation_only():
    def row(arm, seed, val, test):
        return {"arm": arm, "seed": seed, "status": "ok", "val_accuracy": val, "accuracy": test}

    rows = [row("a", 0, 80.0, 99.0), row("a", 1, 82.0, 99.0), row("b", 0, 85.0, 50.0), row("b", 1, 85.0, 50.0)]
    best = results.best_on_validation(rows)
    assert best["arm"] == "b" and best["val_mean"] == 85.0 and best["acc_mean"] == 50.0    # test chooses nothing
    assert results.best_on_validation(rows, arms=["a"])["arm"] == "a"
    with pytest.raises(ValueError, match="arm 'a' has a seed twice in the rows"):
        results.best_on_validation(rows + [row("a", 0, 1.0, 1.0)])
    with pytest.raises(ValueError, match=r"no ok run with a validation accuracy among the arms \['c'\]"):
        results.best_on_validation(rows, arms=["c"])


# ------------------------------------------------------------------------------------- parallel
def test_jobs_2_gives_the_rows_of_jobs_1_with_the_same_threads(tiny, tmp_path):
    out = tmp_path / "jobs2.csv"
    rows = sweep.run_sweep(tiny[0], jobs=2, device="cpu", threads=1, out=out, progress=False)
    same = ("cell_key", "arm", "seed", "accuracy", "val_accuracy", "epochs", "train_images", "threads", "options",
            "setting", "device", "status")
    assert [{k: r[k] for k in same} for r in rows] == [{k: r[k] for k in same} for r in tiny[2]]


def test_a_local_worker_killed_mid_sweep_loses_no_row(tiny, tmp_path):
    out = tmp_path / "killed.csv"
    spec = sweep.load_spec(write_spec(tmp_path, TINY_TOML.replace("seeds = [0, 1, 2]", "seeds = [0, 1, 2, 3]")))
    done = {}
    runner = threading.Thread(target=lambda: done.setdefault("rows", sweep.run_sweep(
        spec, jobs=2, device="cpu", threads=1, out=out, progress=False)))
    runner.start()
    deadline = time.time() + 240
    while time.time() < deadline and not results.read_rows(out):
        time.sleep(0.05)
    workers = [p for p in multiprocessing.active_children() if p.is_alive()]
    assert workers, "no worker process to kill"
    os.kill(workers[0].pid, signal.SIGKILL)
    runner.join(timeout=300)
    rows = done["rows"]
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows)        # the lost cells ran again
    assert len(results.read_rows(out)) == len(out.read_text().splitlines()) - 1 == 8
    by_key = {r["cell_key"]: r["accuracy"] for r in tiny[2]}
    assert all(by_key[r["cell_key"]] == r["accuracy"] for r in rows if r["cell_key"] in by_key)


def test_a_worker_of_a_pool_on_several_gpus_takes_its_own(monkeypatch):
    monkeypatch.setattr(sweep, "_WORKER_INDEX", 3)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert sweep._worker_device("cuda") == "cuda:1" and sweep._worker_device("auto") == "cuda:1"
    assert sweep._worker_device("cpu") == "cpu" and sweep._worker_device("cuda:0") == "cuda:0"
    monkeypatch.setattr(sweep, "_WORKER_INDEX", None)                     # the driver: as asked
    assert sweep._worker_device("cuda") == "cuda"


# ------------------------------------------------------------------------------ bad specs
BAD_SPECS = [
    ("lr_rate = 0.1\n", "unknown key lr_rate (= 0.1); allowed keys: name, description, seeds"),
    ("student = 'giant'\n", "student = 'giant' is not allowed; expected a model preset, one of ['teacher'"),
    ("epochs = 0\n", "epochs = 0 is not allowed; expected a positive integer"),
    ("lr = -1\n", "lr = -1 is not allowed; expected a number > 0"),
    ("validation = -5\n", "validation = -5 is not allowed; expected an integer >= 0"),
    ("teacher = 'huge'\n", "teacher = 'huge' is not allowed; expected a teacher recipe, one of ['full'"),
    ("seeds = [0, 1, 1]\n", "seeds = [0, 1, 1] is not allowed; expected a non-empty list of distinct integers >= 0; "
                            "[1] appear more than once"),
    ("seeds = []\n", "seeds = [] is not allowed; expected a non-empty list of distinct integers >= 0"),
    ("baseline = 'teacher'\n", "baseline = 'teacher' is not allowed; expected the label of an arm, one of "
                               "['scratch', 'kd T=2']"),
]


@pytest.mark.parametrize("line,message", BAD_SPECS)
def test_a_bad_top_level_value_names_the_file_key_value_and_what_is_allowed(line, message, tmp_path):
    key = line.split(" =")[0]
    text = "".join(t for t in TINY_TOML.splitlines(keepends=True) if not t.startswith(f"{key} ="))
    path = write_spec(tmp_path, line + text)
    with pytest.raises(ValueError) as err:
        sweep.load_spec(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


@pytest.mark.parametrize("arm,message", [
    ("method = 'kdd'", "arms[2].method = 'kdd' is not allowed; expected a registered method, one of ['scratch', 'kd'"),
    ("method = 'kd'\noptions = { temprature = 2 }", "arms[2].options.temprature: method 'kd' has no option "
                                                      "'temprature'; its options: ['alpha', 'permute_non_target', "
                                                      "'temperature']"),
    ("method = 'kd'\noptions = { temperature = 'hot' }", "arms[2].options.temperature = 'hot' is not allowed; "
                                                          "expected a finite number (the default of kd's temperature"),
    ("method = 'dml'\noptions = { k = 2.5 }", "arms[2].options.k = 2.5 is not allowed; expected an integer"),
    ("method = 'kd'\nstudnet = 'mlp'", "unknown key arms[2].studnet (= 'mlp'); allowed keys: label, method, options"),
    ("method = 'kd'\nstudent = 'huge'", "arms[2].student = 'huge' is not allowed; expected a model preset"),
    ("method = 'kd'\nlabeled = 100", "arm 'x' sets labeled, which the grid sweeps; remove one of them"),
    ("method = 'kd'\nbaseline = 'nobody'", "baseline of arm 'x' = 'nobody' is not allowed; expected the label of an "
                                           "arm, one of ['scratch', 'kd T=2', 'x']"),
    ("method = 'kd'\nbaseline = 'x'", "baseline of arm 'x' = 'x' is not allowed; expected another arm's label"),
    ("options = { alpha = 0.5 }", "arms[2] has no method; give method = one of ['scratch', 'kd'"),
])
def test_a_bad_arm_names_the_file_key_value_and_what_is_allowed(arm, message, tmp_path):
    label = "" if "label =" in arm else "label = 'x'\n"
    path = write_spec(tmp_path, TINY_TOML + f"\n[[arms]]\n{label}{arm}\n")
    with pytest.raises(ValueError) as err:
        sweep.load_spec(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


@pytest.mark.parametrize("edit,message", [
    (("labeled = [300]", "labeled = []"), "grid.labeled = [] is not allowed; expected a non-empty list of values"),
    (("labeled = [300]", "labeled = [300, 300]"), "grid.labeled = [300, 300] is not allowed; expected a list of "
                                                  "distinct values"),
    (("labeled = [300]", "labeled = [0]"), "grid.labeled = 0 is not allowed; expected a positive integer or 'all'"),
    (("labeled = [300]", "labeled = [300]\nlabled = [1]"), "unknown key grid.labled (= [1]); allowed keys: options"),
    (("labeled = [300]", "labeled = [300]\noptions = { beta = [1.0] }"), "grid.options.beta: no arm's method has an "
                                                                         "option 'beta'"),
    (("label = \"kd T=2\"", "label = \"scratch\""), "arm labels must be distinct; ['scratch'] appear more than once"),
    (("name = \"tiny\"", "name = \"my sweep\""), "name = 'my sweep' is not allowed; expected a file name"),
    (("name = \"tiny\"", "name = [\"tiny\""), "not valid TOML"),
    (("[quick]", "[quick]"), None),
])
def test_a_bad_grid_name_or_file_is_an_error_that_names_it(edit, message, tmp_path):
    if message is None:                                                  # [quick] may hold setting fields only
        path = write_spec(tmp_path, TINY_TOML + "\n[quick]\narms = []\n")
        message = "unknown key quick.arms (= []); allowed keys: seeds, grid, dataset"
    else:
        path = write_spec(tmp_path, TINY_TOML.replace(*edit))
    with pytest.raises(ValueError) as err:
        sweep.load_spec(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    with pytest.raises(ValueError, match="no such spec file"):
        sweep.load_spec(tmp_path / "missing.toml")


def test_a_bad_spec_on_the_command_line_exits_2_with_the_message(tmp_path, capsys):
    path = write_spec(tmp_path, TINY_TOML.replace('method = "kd"', 'method = "kdd"'))
    assert cli_main(["sweep", str(path), "--results", str(tmp_path)]) == 2
    assert f"{path}: arms[1].method = 'kdd' is not allowed" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.csv"))
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


# ------------------------------------------------------------------------------- grid, quick, dry run
def test_a_grid_over_an_option_shares_the_cells_of_arms_without_it(tmp_path):
    text = TINY_TOML.replace("options = { temperature = 2 }", "").replace(
        "[grid]\nlabeled = [300]", "[grid]\nlabeled = [100, 300]\n[grid.options]\ntemperature = [2.0, 4.0]")
    spec = sweep.load_spec(write_spec(tmp_path, text))
    cells, plan = sweep.plan_cells(spec, "cpu")
    assert len(plan) == 2 * 2 * 3 * 2 and len(cells) == 2 * 3 * (1 + 2)      # scratch runs once per size and seed
    points = {json.dumps(p["point"], sort_keys=True) for p in plan}
    assert len(points) == 4
    kd = [c for c in cells if c["arm"] == "kd T=2"]
    assert sorted({(c["grid"]["labeled"], c["options"]["temperature"]) for c in kd}) == \
        [(100, 2.0), (100, 4.0), (300, 2.0), (300, 4.0)]
    assert all(c["grid"] == {"labeled": c["setting"]["labeled"]} for c in cells if c["arm"] == "scratch")


def test_quick_mode_applies_the_quick_table_and_writes_another_file(tmp_path, monkeypatch):
    path = write_spec(tmp_path, TINY_TOML + "\n[quick]\nsteps = 3\nseeds = [0]\n[quick.grid]\nlabeled = [100]\n")
    quick, full = sweep.load_spec(path, quick=True), sweep.load_spec(path, quick=False)
    assert quick.seeds == (0,) and quick.grid == {"labeled": [100]} and quick.setting["steps"] == 3
    assert "epochs" not in quick.setting                       # a budget in [quick] replaces the other one
    assert full.seeds == (0, 1, 2) and full.setting["epochs"] == 2 and "steps" not in full.setting
    monkeypatch.setenv("KD_LAB_QUICK", "1")
    assert sweep.default_out(full, tmp_path) == tmp_path / "tiny-quick.csv"
    monkeypatch.setenv("KD_LAB_QUICK", "0")
    assert sweep.default_out(full, tmp_path) == tmp_path / "tiny.csv"


def test_dry_run_lists_the_cells_still_to_run(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KD_LAB_QUICK", "1")                            # --quick sets it; restored after the test
    results_dir = tmp_path / "res"
    results_dir.mkdir()
    (results_dir / "tiny-quick.csv").write_bytes(tiny[1].read_bytes())
    assert cli_main(["sweep", str(tiny[0]), "--results", str(results_dir), "--dry-run", "--quick",
                     "--device", "cpu"]) == 0
    assert "tiny: 0 of 6 cells to run" in capsys.readouterr().out
    rows = results.read_rows(results_dir / "tiny-quick.csv")
    (results_dir / "tiny-quick.csv").write_text(tiny[1].read_text().splitlines(keepends=True)[0]
                                                + "".join(tiny[1].read_text().splitlines(keepends=True)[1:4]))
    assert cli_main(["sweep", str(tiny[0]), "--results", str(results_dir), "--dry-run", "--quick",
                     "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "tiny: 3 of 6 cells to run" in printed and rows[3]["cell_key"] in printed
    assert rows[0]["cell_key"] not in printed and "kd T=2" in printed and "labeled=300" in printed


def test_every_spec_under_experiments_is_valid():
    specs = sorted((REPO / "experiments").glob("*.toml"))
    assert REPO / "experiments" / "compare.toml" in specs
    for path in specs:
        for quick in (False, True):
            spec = sweep.load_spec(path, quick=quick)
            cells, plan = sweep.plan_cells(spec, "cpu")
            assert cells and len(plan) >= len(cells), path


def test_the_annotated_example_of_experiments_readme_is_a_valid_spec():
    import tomllib
    text = (REPO / "experiments" / "README.md").read_text()
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    spec = sweep.spec_from_dict(tomllib.loads(example), "experiments/README.md", quick=False)
    assert [(a.label, a.baseline) for a in spec.arms] == [("scratch", None), ("kd", "scratch"),
                                                          ("kd, tiny student", "kd")]
    cells, plan = sweep.plan_cells(spec, "cpu")
    assert len(plan) == 2 * 3 * 3 * 3 and len(cells) == 2 * 3 * (1 + 3 + 3)
    quick = sweep.spec_from_dict(tomllib.loads(example), "experiments/README.md", quick=True)
    assert quick.seeds == (0,) and quick.grid == {"labeled": [100]} and quick.setting["steps"] == 16


# ------------------------------------------------------------------------------ the protocol
def test_the_validation_split_is_fixed_balanced_and_disjoint_from_labeled_test_and_pool_images(fashion):
    train, test = fashion
    setting = Setting(validation=1000)
    val = validation_indices(setting, train)
    assert torch.equal(val, labeled_split(train.y, 1000, seed=VALIDATION_SEED).labeled)     # fixed, whatever the seed
    assert torch.bincount(train.y[val]).tolist() == [100] * 10
    for seed in (0, 1, 2):
        for extra in ({}, {"labeled_from": 20000}):
            labeled = _labeled_indices(Setting(labeled=500, validation=1000, **extra), seed, train)
            assert len(labeled) == 500 and not set(labeled.tolist()) & set(val.tolist())
            assert torch.bincount(train.y[labeled]).tolist() == [50] * 10
    everything = _labeled_indices(Setting(labeled=None, validation=1000), 0, train)
    assert len(everything) == 59000 and not set(everything.tolist()) & set(val.tolist())
    in_test, _ = duplicates(train.x[val], test.x)                   # no validation image is a test image
    assert not in_test.any()
    assert torch.equal(_labeled_indices(Setting(labeled=500, validation=0), 3, train),
                       labeled_split(train.y, 500, seed=3).labeled)      # no split: the draw of before
    with pytest.raises(ValueError, match="validation must be a non-negative integer .*, got -1"):
        validation_indices(Setting(validation=-1), train)
    with pytest.raises(ValueError, match=r"labeled size must be an integer in 1..59000 \(the training images "
                                         r"outside the 1000 validation images\), got 59500"):
        _labeled_indices(Setting(labeled=59500, validation=1000), 0, train)


def test_ssld_never_mines_a_validation_image(fashion):
    from kd_lab.experiments import method_teacher
    from kd_lab.methods import make_method
    from kd_lab.models import build_model
    train, test = fashion
    setting = Setting(labeled=1000, labeled_from=20000, validation=2000)
    val = validation_indices(setting, train)
    labeled = _labeled_indices(setting, 0, train)
    m = make_method("ssld", build_model("student"), method_teacher("ssld", "fashion-mnist", "cpu"))
    pool_without = set(m.unlabeled_pool(train, labeled, test).tolist())
    m.held_out = val
    pool = set(m.unlabeled_pool(train, labeled, test).tolist())
    assert not pool & set(val.tolist()) and pool == pool_without - set(val.tolist())
    assert len(pool) == 40000 - int((val >= 20000).sum())


def test_a_run_reports_its_validation_accuracy_at_the_last_step():
    setting = Setting(labeled=200, epochs=1, batch_size=50, test_size=200, validation=300, eval_every=1)
    m, h = train_method("scratch", setting, seed=0, device="cpu", progress=False)
    train, _ = load_data("fashion-mnist", torch.device("cpu"))
    val = train.subset(validation_indices(setting, train))
    assert h.epochs[-1]["val_acc"] == pytest.approx(evaluate(m.student, val).accuracy)
    _, h0 = train_method("scratch", replace(setting, validation=0), seed=0, device="cpu", progress=False)
    assert "val_acc" not in h0.epochs[-1]                           # no split, no validation accuracy


# ------------------------------------------------------------------------------- compare as a sweep
def test_compare_toml_is_the_comparison_of_the_command_line():
    spec = sweep.load_spec(REPO / "experiments" / "compare.toml", quick=False)
    assert [a.label for a in spec.arms] == compare.resolve_methods() and spec.seeds == (0, 1, 2)
    assert spec.grid == {"labeled": [1000]} and spec.setting["steps"] == 400
    assert all(a.baseline == "scratch" for a in spec.arms[1:]) and spec.arms[0].baseline is None
    setting = Setting.default(steps=400)
    command_line = compare.comparison_spec(None, 3, 1000, replace(setting, eval_every=setting.epochs))
    keys = [c["cell_key"] for c in sweep.plan_cells(spec, "cpu")[0]]
    assert keys == [c["cell_key"] for c in sweep.plan_cells(command_line, "cpu")[0]] and len(keys) == 39


def test_the_committed_comparison_stays_readable_and_a_new_row_keeps_it(tmp_path):
    committed = REPO / "results" / "compare-fashion-mnist.csv"
    rows = compare.read_rows(committed)
    key = rows[-1]["setting_key"]
    current = compare.current_rows(rows, key)
    records = compare.summarize(current)
    assert len(records) == 13 and all(r["n"] == 3 for r in records) and compare.setting_of(current)["steps"] == 400
    copy = tmp_path / "compare.csv"
    copy.write_bytes(committed.read_bytes())
    sweep._append_row(copy, {**rows[0], "spec": "x", "cell_key": "abc", "val_accuracy": 80.0})
    with copy.open(newline="") as f:
        assert tuple(next(csv.reader(f))) == results.SWEEP_COLUMNS         # the header moved to the new columns
    again = compare.read_rows(copy)
    assert again[:len(rows)] == rows and again[-1]["cell_key"] == "abc" and again[-1]["val_accuracy"] == 80.0



def test_a_row_keeps_the_methods_measurements_at_the_last_evaluation(tmp_path):
    """The ``metrics`` column: Method.epoch_metrics at the end of the run (every DML peer's accuracy, calibration,
    the pair's agreement), JSON; a method without epoch metrics leaves it empty."""
    spec = TINY_TOML.replace('seeds = [0, 1, 2]', 'seeds = [0]').replace(
        'label = "kd T=2"\nmethod = "kd"\noptions = { temperature = 2 }',
        'label = "dml"\nmethod = "dml"\noptions = { peers = "student,student-tiny" }')
    rows = sweep.run_sweep(write_spec(tmp_path, spec), device="cpu", threads=1, out=tmp_path / "m.csv",
                           progress=False)
    by_arm = {r["arm"]: r for r in rows}
    assert by_arm["scratch"]["metrics"] == {}
    metrics = by_arm["dml"]["metrics"]
    assert {"acc_0", "acc_1", "acc_ensemble", "agree_0_1", "ece_0", "entropy_ensemble"} <= set(metrics)
    assert 100 * metrics["acc_0"] == pytest.approx(by_arm["dml"]["accuracy"])     # peer 0 is the student
    assert results.read_rows(tmp_path / "m.csv") == rows
    again = sweep.run_sweep(write_spec(tmp_path, spec.replace('name = "tiny"', 'name = "copy"'), "copy.toml"),
                            device="cpu", threads=1, out=tmp_path / "copy.csv", progress=False)
    assert [r["metrics"] for r in again] == [r["metrics"] for r in rows]          # copied, as JSON
    assert '""acc_0"": ' in (tmp_path / "copy.csv").read_text()                  # JSON, CSV-quoted


def test_a_file_of_the_previous_sweep_columns_reads_and_moves_to_the_new_ones(tmp_path):
    """Sweep files written before the ``metrics`` column (the committed lesson 01 sweeps) read with it empty, and a
    sweep that appends to one first moves it to the new columns, its rows kept."""
    rows = results.read_rows(REPO / "results" / "01-controls.csv")
    old = results.OLDER_COLUMNS[-1]
    assert old == results.SWEEP_COLUMNS[:-1] and rows and all(r["metrics"] == {} for r in rows)
    copy = tmp_path / "old.csv"
    with copy.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=old, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if r[k] is None else r[k] for k in old} for r in rows[:3])
    assert [r["cell_key"] for r in results.read_rows(copy)] == [r["cell_key"] for r in rows[:3]]
    sweep._append_row(copy, {**rows[0], "cell_key": "new", "metrics": json.dumps({"acc_0": 0.5})})
    with copy.open(newline="") as f:
        assert tuple(next(csv.reader(f))) == results.SWEEP_COLUMNS
    again = results.read_rows(copy)
    assert [r["cell_key"] for r in again] == [r["cell_key"] for r in rows[:3]] + ["new"]
    assert again[-1]["metrics"] == {"acc_0": 0.5} and again[0]["accuracy"] == rows[0]["accuracy"]
