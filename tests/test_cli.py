"""The command line: run (table and --json), teacher, bench, and errors for bad input."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def kd_lab(*args, env=None, timeout=300):
    full_env = {**os.environ, "KD_LAB_QUICK": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "kd_lab", *args], capture_output=True, text=True,
                          cwd=REPO, env=full_env, timeout=timeout)


def test_run_kd_json_prints_one_record_per_seed():
    done = kd_lab("run", "kd", "--epochs", "1", "--labeled", "200", "--test-size", "500", "--seeds", "0", "1",
                  "--device", "cpu", "--temperature", "2", "--alpha", "0.5", "--json")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [r["seed"] for r in records] == [0, 1]
    for r in records:
        assert r["method"] == "kd" and r["status"] == "finished" and r["device"] == "cpu"
        assert 0.0 <= r["accuracy"] <= 1.0 and r["images_per_s"] > 0 and r["wall_s"] > 0
        assert set(r["final_loss_terms"]) == {"total", "ce", "kd"}
        assert r["options"] == {"temperature": 2.0, "alpha": 0.5}
        assert r["setting"]["labeled"] == 200


def test_run_scratch_prints_a_table():
    done = kd_lab("run", "scratch", "--epochs", "1", "--labeled", "100", "--test-size", "200", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert "test acc %" in done.stdout and "mean ± std over 1 seed(s)" in done.stdout


@pytest.mark.parametrize("args,message", [
    (["run", "nope"], "unknown method 'nope'; choose one of"),
    (["run", "kd", "--temperature", "0"], "temperature must be > 0, got 0.0"),
    (["run", "kd", "--temperature", "-3"], "temperature must be > 0, got -3.0"),
    (["run", "scratch", "--alpha", "0.5"], "method 'scratch' has no option(s) ['alpha']"),
    (["run", "kd", "--set", "tau=3"], "method 'kd' has no option(s) ['tau']; allowed: ['alpha', 'temperature']"),
    (["run", "kd", "--set", "oops"], "--set expects KEY=VALUE, got 'oops'"),
    (["run", "kd", "--batch-size", "0", "--labeled", "100"], "batch_size must be a positive integer, got 0"),
    (["run", "kd", "--labeled", "70000"], "labeled size must be an integer in 1..60000"),
    (["run", "kd", "--student", "giant"], "unknown model preset 'giant'"),
    (["run", "kd", "--dataset", "imagenet"], "unknown data set 'imagenet'"),
    (["run", "kd", "--device", "tpu9"], "unknown device 'tpu9'"),
    (["teacher", "--recipe", "huge"], "unknown teacher recipe 'huge'"),
])
def test_bad_input_exits_2_with_a_clear_message(args, message):
    done = kd_lab(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_teacher_command_reports_the_shipped_teacher(tmp_path):
    done = kd_lab("teacher", "--device", "cpu", env={"KD_LAB_CACHE": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert "test accuracy 9" in done.stdout and "kd_lab/weights" in done.stdout


def test_bench_prints_both_loops_and_the_ratio():
    done = kd_lab("bench", "--device", "cpu", "--images", "512")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    ref = next(line for line in lines if line.startswith("reference"))
    ours = [line for line in lines if line.startswith("kd_lab fit")]
    assert "1.00x" in ref and ours and all(line.split("|")[4].strip().endswith("x") for line in ours)
    assert any("fp32" in line for line in ours)
    assert "device: cpu" in done.stdout


def test_run_dml_with_three_alternating_heterogeneous_peers():
    done = kd_lab("run", "dml", "--set", "k=3", "--set", "peers=student,student-tiny", "--set", "mode=alternating",
                  "--epochs", "1", "--labeled", "100", "--test-size", "200", "--device", "cpu", "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))
    assert record["options"] == {"k": 3, "peers": "student,student-tiny", "mode": "alternating"}
    assert set(record["final_loss_terms"]) == {"total", *(f"{t}_{i}" for i in range(3) for t in ("ce", "kl"))}
    assert {"acc_0", "acc_1", "acc_2", "acc_ensemble", "agree_0_1", "agree_0_2"} <= set(record["last_epoch"])
    bad = kd_lab("run", "dml", "--set", "k=7", "--device", "cpu")
    assert bad.returncode == 2 and "k (the number of peers) must be an integer in 2..4, got 7" in bad.stderr
