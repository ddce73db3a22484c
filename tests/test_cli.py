"""The command line: run (table and --json), teacher, bench, errors for bad input, and the help of every option."""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kd_lab.__main__ import build_parser

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
    (["run", "kd", "--set", "tau=3"],
     "method 'kd' has no option(s) ['tau']; allowed: ['alpha', 'permute_non_target', 'temperature']"),
    (["run", "kd", "--set", "oops"], "--set expects KEY=VALUE, got 'oops'"),
    (["run", "kd", "--batch-size", "0", "--labeled", "100"], "--batch-size must be a positive integer, got 0"),
    (["run", "kd", "--labeled", "70000"], "labeled size must be an integer in 1..59000"),
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


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser, found at run time: a command added later is checked with no change here."""
    return {name: sub for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for name, sub in action.choices.items()}


def test_top_level_help_lists_every_command_with_one_line_of_help():
    parser = build_parser()
    helps = {a.dest: a.help for action in parser._actions if isinstance(action, argparse._SubParsersAction)
             for a in action._choices_actions}
    assert set(helps) == set(_commands(parser)) and len(helps) >= 6
    done = kd_lab("--help", env={"COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for name, text in helps.items():
        assert text, f"command {name!r} has no help line"
        assert any(line.split(None, 1) == [name, text] for line in lines), (name, done.stdout)


def _shown_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The option's help as ``--help`` prints it (defaults filled in)."""
    return parser._get_formatter()._expand_help(action) if action.help else ""


@pytest.mark.parametrize("command", sorted(_commands(build_parser())))
def test_every_option_has_help_that_states_its_default(command, capsys):
    parser = _commands(build_parser())[command]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.dest
        shown = _shown_help(parser, action)
        assert shown.strip(), f"{command} {name}: no help text"
        takes_value = action.nargs != 0
        optional = bool(action.option_strings) or action.nargs in ("?", "*")
        if takes_value and optional:       # a flag needs none; an option or an optional positional says its default
            assert "default" in shown, f"{command} {name}: the help does not state the default: {shown!r}"
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args([command, "--help"])
    assert stop.value.code == 0 and "usage: python -m kd_lab " + command in capsys.readouterr().out


def test_options_with_a_fixed_set_of_values_list_them():
    from kd_lab.data import DATASETS
    from kd_lab.methods import method_names
    from kd_lab.models import PRESETS
    from kd_lab.recipes import RECIPES
    allowed = {"dataset": DATASETS, "name": DATASETS, "student": PRESETS, "recipe": RECIPES,
               "teacher_recipe": RECIPES, "method": method_names(), "amp": ("auto", "bf16", "off"),
               "device": ("auto", "cpu", "cuda", "mps")}
    checked = 0
    for command, parser in _commands(build_parser()).items():
        for action in parser._actions:
            if action.dest in allowed and action.nargs != 0:
                shown = _shown_help(parser, action)
                missing = [v for v in allowed[action.dest] if v not in shown]
                assert not missing, f"{command} {action.dest}: help does not name {missing}: {shown!r}"
                checked += 1
    assert checked >= 12
