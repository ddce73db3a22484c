"""Reference mode (kd_lab.reference): lessons read their sweeps' committed results, or re-run them live."""
import os

import pytest

from kd_lab import reference, results, sweep

SPEC = """\
name = "ref"
description = "scratch against KD, a tiny sweep for the reader"
epochs = 2
batch_size = 50
test_size = 200
validation = 200
seeds = [0, 1]

[grid]
labeled = [200]

[[arms]]
label = "scratch"
method = "scratch"

[[arms]]
label = "kd"
method = "kd"

[quick]
epochs = 1
seeds = [0]
"""


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The spec run in full mode into a results folder: (spec path, results folder)."""
    folder = tmp_path_factory.mktemp("reference")
    path = folder / "ref.toml"
    path.write_text(SPEC)
    saved = os.environ.pop("KD_LAB_QUICK", None)
    try:
        sweep.run_sweep(path, device="cpu", threads=1, out=folder / "ref.csv", progress=False)
    finally:
        if saved is not None:
            os.environ["KD_LAB_QUICK"] = saved
    return path, folder


def test_reference_mode_reads_the_full_results_even_in_quick_mode(made, monkeypatch):
    path, folder = made
    monkeypatch.setenv("KD_LAB_QUICK", "1")
    monkeypatch.delenv("KD_LAB_LIVE", raising=False)
    res = reference.lesson_results(path, results_dir=folder)
    assert os.environ["KD_LAB_QUICK"] == "1"                            # restored after reading
    assert res.live is False and res.path == folder / "ref.csv" and res.missing == 0
    rows = results.read_rows(folder / "ref.csv")
    assert [r["cell_key"] for r in res.rows] == [r["cell_key"] for r in rows] and len(rows) == 4
    kd, scratch = res.record("kd", labeled=200), res.record("scratch")
    test = {r["seed"]: r["accuracy"] for r in rows if r["method"] == "kd"}
    base = {r["seed"]: r["accuracy"] for r in rows if r["method"] == "scratch"}
    assert kd["test"] == test and kd["diff_mean"] == pytest.approx(sum(test[s] - base[s] for s in (0, 1)) / 2)
    assert scratch["pairs"] == 0 and res.points("labeled") == [200] and res.devices == ["cpu (1 threads)"]
    val = {arm: sum(r["val_accuracy"] for r in rows if r["arm"] == arm) / 2 for arm in ("scratch", "kd")}
    assert res.best()["arm"] == max(val, key=val.get)                    # chosen on validation accuracy
    assert res.best(arms=["scratch"])["arm"] == "scratch"
    frame = res.frame()
    assert list(frame["arm"]) == ["scratch", "kd"] and list(frame["labeled"]) == [200, 200]
    with pytest.raises(ValueError, match="0 records of arm 'nope'.*arms: \\['scratch', 'kd'\\]"):
        res.record("nope")


def test_live_mode_runs_the_missing_cells_first_quick_ones_in_quick_mode(made, tmp_path, monkeypatch):
    path, _ = made
    monkeypatch.setenv("KD_LAB_QUICK", "1")
    monkeypatch.setenv("KD_LAB_LIVE", "1")
    res = reference.lesson_results(path, results_dir=tmp_path, progress=False)
    assert res.live and res.path == tmp_path / "ref-quick.csv" and len(res.rows) == 2 and res.missing == 0
    assert {r["epochs"] for r in res.rows} == {1}                      # the [quick] table's cells
    assert not (tmp_path / "ref.csv").exists()


def test_reference_mode_without_results_says_how_to_make_them(made, tmp_path, monkeypatch):
    path, _ = made
    monkeypatch.delenv("KD_LAB_LIVE", raising=False)
    with pytest.raises(FileNotFoundError, match=r"holds no results of ref.toml: run `python -m kd_lab sweep .*ref"
                                                r".toml` \(or set KD_LAB_LIVE=1"):
        reference.lesson_results(path, results_dir=tmp_path)


def test_bad_switch_values_and_unknown_specs_are_clear_errors(monkeypatch):
    monkeypatch.setenv("KD_LAB_LIVE", "yes")
    with pytest.raises(ValueError, match="KD_LAB_LIVE must be 0 .* or 1 .*, got 'yes'"):
        reference.live_mode()
    with pytest.raises(ValueError, match=r"no sweep spec 'nope'; the course's specs: \[.*'01_label_budget'"):
        reference.spec_path("nope")
    assert reference.spec_path("01_label_budget") == reference.REPOSITORY / "experiments" / "01_label_budget.toml"
    assert reference.spec_path("compare.toml").name == "compare.toml"


def test_a_panels_reference_and_setting_are_the_sweeps_full_mode_ones(made, monkeypatch):
    """What a TrainingPanel draws as reference bands: each arm's test accuracy by seed, the baseline first, and the
    Setting those runs trained with (full mode even in quick mode), so a run from the panel is comparable."""
    path, folder = made
    monkeypatch.setenv("KD_LAB_QUICK", "1")
    monkeypatch.delenv("KD_LAB_LIVE", raising=False)
    res = reference.lesson_results(path, results_dir=folder)
    rows = results.read_rows(folder / "ref.csv")
    ref = res.reference("scratch", "kd", labeled=200)
    assert list(ref) == ["scratch", "kd"]
    assert ref["kd"] == {r["seed"]: r["accuracy"] for r in rows if r["method"] == "kd"}
    setting = res.setting(labeled=200)
    assert (setting.labeled, setting.epochs, setting.batch_size, setting.test_size) == (200, 2, 50, 200)
    assert os.environ["KD_LAB_QUICK"] == "1"
    with pytest.raises(ValueError, match="arm 'nope'"):
        res.reference("scratch", "nope")


def test_a_methods_measurements_are_read_by_seed(tmp_path, monkeypatch):
    """``SweepResults.metric``: the rows' metrics by seed (DML's second peer, its calibration), as measured."""
    monkeypatch.delenv("KD_LAB_QUICK", raising=False)
    path = tmp_path / "dml.toml"
    path.write_text(SPEC.replace('name = "ref"', 'name = "dml"').replace("epochs = 2", "epochs = 1").replace(
        'label = "kd"\nmethod = "kd"', 'label = "dml"\nmethod = "dml"\noptions = { peers = "student,student-tiny" }'))
    sweep.run_sweep(path, device="cpu", threads=1, out=tmp_path / "dml.csv", progress=False)
    res = reference.lesson_results(path, results_dir=tmp_path, live=False)
    acc_0 = res.metric("dml", "acc_0")
    assert sorted(acc_0) == [0, 1]
    assert {s: 100 * v for s, v in acc_0.items()} == pytest.approx(res.record("dml")["test"])
    assert all(0 <= v <= 1 for v in res.metric("dml", "ece_1").values())
    by_accuracy, itself = res.paired("dml", "scratch"), res.paired("dml", "dml", "ece_1", scale=100)
    assert by_accuracy["diff_mean"] == pytest.approx(res.record("dml")["diff_mean"]) and by_accuracy["pairs"] == 2
    assert by_accuracy["arm"] == "dml" and by_accuracy["baseline"] == "scratch" and by_accuracy["metric"] == "accuracy"
    assert itself["differences"] == [0.0, 0.0] and itself["metric"] == "ece_1"
    with pytest.raises(ValueError, match=r"the runs of arm 'scratch' \(seeds \[0, 1\]\) hold no metric 'acc_1'; "
                                         r"they hold none"):
        res.metric("scratch", "acc_1")


def test_load_sweeps_reads_each_and_names_what_is_missing(made, tmp_path, capsys):
    path, folder = made
    absent = tmp_path / "absent.toml"
    absent.write_text(SPEC.replace('name = "ref"', 'name = "absent"'))
    loaded = reference.load_sweeps({"made": path, "absent": absent}, results_dir=folder, live=False)
    out = capsys.readouterr().out
    assert loaded["made"].records and "made" in out and "4 runs, 0 cells missing, 2 epochs per run" in out
    assert loaded["absent"] is None and "absent: not run yet" in out


def test_a_setting_is_chosen_over_the_grid_on_validation_only():
    """``best_over_grid``: the arm and grid value with the best mean validation accuracy (never the test's)."""
    def rec(arm, weight, val, test, n=3):
        return {"arm": arm, "point": {"labeled": 1000, "feature_weight": weight}, "n": n, "val_mean": val,
                "acc_mean": test}
    res = reference.SweepResults(sweep.Spec(name="grid", arms=()), None, [], [
        rec("kd", 1.0, 90.0, 95.0), rec("ofd+kd", 1.0, 80.0, 99.0), rec("ofd+kd", 3.0, 85.0, 70.0),
        rec("ofd+kd", 10.0, 99.0, 60.0, n=0), rec("fitnet", 1.0, 84.0, 84.0)], [], False)
    best = res.best_over_grid(["ofd+kd", "fitnet"], labeled=1000)
    assert (best["arm"], best["point"]["feature_weight"]) == ("ofd+kd", 3.0)   # a weight never run is skipped
    assert res.best_over_grid("kd")["arm"] == "kd"
    with pytest.raises(ValueError, match=r"no run of the arms \['udml'\] at \{'labeled': 1000\} yet"):
        res.best_over_grid("udml", labeled=1000)
