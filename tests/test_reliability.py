"""Nothing silently wrong (issue 25): one test per case of the fault-and-bad-input battery.

1. an interrupted seed is never averaged (Ctrl-C on a multi-seed ``run``, a failed seed, ``--keep-going``);
2. non-finite knobs and inputs are refused (options, the losses, T², the sliders; one check, ``kd_lab.checks``);
3. two first runs at once: one fetch and one teacher training, the second process waits and loads;
4. the teacher cache heals (shapes, non-finite weights, accuracy floor, a corrupt file the shipped weights cover);
5. bad command-line input: one message, a non-zero exit, no traceback;
6. data contents are checked (labels, counts, CIFAR-10 pickles without code, apt-get only when asked);
7. nothing looks hung (progress on stderr with --json, Stop with nothing running).
"""
import math
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from kd_lab import checks, data, losses, results, zoo
from kd_lab.__main__ import main
from kd_lab.experiments import Setting, summarize
from kd_lab.locking import lock_path, temporary_path
from kd_lab.methods import Knob, check_options, make_method, method_info, method_names
from kd_lab.models import build_model
from kd_lab.recipes import RECIPES, min_accuracy, trained_part
from kd_lab.train import History

REPO = Path(__file__).resolve().parents[1]
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
TINY = {"preset": "mlp", "epochs": 1, "batch_size": 256, "lr": 0.05, "weight_decay": 5e-4,
        "optimizer": "sgd", "augment": False, "train_size": 1000, "seed": 0}

needs_system_files = pytest.mark.skipif(not SYSTEM_DIR.is_dir(), reason=f"{SYSTEM_DIR} is missing")


def kd_lab(*args, env=None, timeout=300):
    full_env = {**os.environ, "KD_LAB_QUICK": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "kd_lab", *args], capture_output=True, text=True, cwd=REPO,
                          env=full_env, timeout=timeout)


def cli(capsys, *args) -> tuple[int, str, str]:
    """``python -m kd_lab args`` in this process: (exit status, stdout, stderr)."""
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def history(seed: int, status: str = "finished", acc: float | None = 0.5, error: str | None = None) -> History:
    epochs = [] if acc is None else [{"epoch": 1, "images": 100, "train_s": 1.0, "images_per_s": 100.0,
                                      "train_acc": acc, "test_acc": acc, "wall_s": 1.0}]
    return History(method="scratch", seed=seed, device="cpu", config={"epochs": 1}, epochs=epochs,
                   status=status, error=error)


def fake_runs(monkeypatch, outcomes: dict):
    """``run_method`` replaced: seed -> a History to return, or an exception to raise."""
    calls = []

    def fake(method, setting=None, seed=0, **kwargs):
        calls.append(seed)
        outcome = outcomes[seed]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome
    monkeypatch.setattr("kd_lab.experiments.run_method", fake)
    return calls


def fashion_copy(tmp_path: Path) -> Path:
    """A data folder with a copy of the project's Fashion-MNIST files (fetched from the system files if needed)."""
    source = data.fetch("fashion-mnist", download=False, apt=False) / "FashionMNIST" / "raw"
    root = tmp_path / "data"
    (root / "FashionMNIST" / "raw").mkdir(parents=True)
    for name in IDX_NAMES:
        shutil.copyfile(source / name, root / "FashionMNIST" / "raw" / name)
    return root


# =============================================================== 1. an interrupted seed is never averaged
def test_ctrl_c_during_the_second_seed_reports_only_the_first():
    """A real ``run`` over two seeds, SIGINT while seed 1 trains (seed 0 finished): the command stops, seed 1
    is marked stopped, the mean is seed 0's alone with no spread, exit status 130, no traceback."""
    cmd = [sys.executable, "-m", "kd_lab", "run", "scratch", "--labeled", "100", "--epochs", "30", "--test-size",
           "200", "--seeds", "0", "1", "--device", "cpu"]
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "KD_LAB_QUICK": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seen, first_done = [], False
    try:
        for line in proc.stderr:                # tqdm's \r updates read as lines too
            seen.append(line)
            first_done = first_done or "scratch seed 0: finished" in line
            if first_done and re.search(r"\b([1-9]\d*)/30\b", line):     # seed 1 has taken a step
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    err = "".join(seen) + err
    assert proc.returncode == 130, (out, err)
    first = float(err.split("scratch seed 0: finished, test accuracy ")[1].split(" %")[0])
    assert re.search(r"scratch seed 1: stopped after epoch \d+ of 30 \(not counted\)", err), err
    assert "Traceback" not in err
    assert f"mean ± std over 1 seed(s): {first:.2f} ± – %; not counted: seed 1 (stopped)" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("1 |"))
    assert "stopped" in row and "–" in row


def test_a_stopped_seed_ends_the_command_and_is_not_counted(monkeypatch, capsys):
    calls = fake_runs(monkeypatch, {0: history(0, acc=0.6), 1: history(1, "stopped", acc=0.2), 2: history(2)})
    code, out, err = cli(capsys, "run", "scratch", "--seeds", "0", "1", "2", "--device", "cpu")
    assert code == 130 and calls == [0, 1]
    assert "mean ± std over 1 seed(s): 60.00 ± – %; not counted: seed 1 (stopped), seed 2 (not run)" in out
    assert "scratch seed 1: stopped after epoch 1 of 1 (not counted)" in err


def test_keep_going_runs_the_other_seeds_after_a_stop(monkeypatch, capsys):
    calls = fake_runs(monkeypatch, {0: history(0, acc=0.6), 1: history(1, "stopped", acc=0.2), 2: history(2, acc=0.8)})
    code, out, _ = cli(capsys, "run", "scratch", "--seeds", "0", "1", "2", "--device", "cpu", "--keep-going")
    assert code == 130 and calls == [0, 1, 2]
    assert f"mean ± std over 2 seed(s): 70.00 ± {math.sqrt(200):.2f} %; not counted: seed 1 (stopped)" in out


def test_a_failed_seed_is_marked_and_the_others_run(monkeypatch, capsys):
    boom = RuntimeError("boom")
    boom.history = history(1, "failed", acc=0.1, error="ValueError: student_logits must be finite")
    calls = fake_runs(monkeypatch, {0: history(0, acc=0.6), 1: boom, 2: history(2, acc=0.8)})
    code, out, err = cli(capsys, "run", "scratch", "--seeds", "0", "1", "2", "--device", "cpu")
    assert code == 1 and calls == [0, 1, 2]
    assert "not counted: seed 1 (failed)" in out and "seed 1 failed: ValueError: student_logits must be finite" in out
    assert "mean ± std over 2 seed(s): 70.00" in out and "Traceback" not in err


def test_ctrl_c_outside_the_training_loop_marks_the_seed_stopped(monkeypatch, capsys):
    calls = fake_runs(monkeypatch, {0: history(0, acc=0.6), 1: KeyboardInterrupt()})
    code, out, _ = cli(capsys, "run", "scratch", "--seeds", "0", "1", "--device", "cpu", "--json")
    assert code == 130 and calls == [0, 1]
    records = [line for line in out.splitlines() if line.startswith("{")]
    assert ['"status": "finished"' in r for r in records] == [True, False] and '"status": "stopped"' in records[1]


def test_summarize_counts_finished_runs_only_and_one_seed_has_no_spread():
    s = summarize([history(0, acc=0.5), history(1, "stopped", acc=0.1), history(2, "failed", acc=0.3)])
    assert s["n"] == 1 and s["left_out"] == 2 and s["text"] == "50.00 ± –" and math.isnan(s["std"])


def test_notebook_compare_stops_all_runs_when_one_is_stopped(monkeypatch):
    from kd_lab import experiments
    monkeypatch.setattr(experiments, "run_method", lambda *a, seed=0, **k: history(seed, "stopped" if seed else
                                                                                         "finished"))
    with pytest.raises(KeyboardInterrupt, match="seed 1 was stopped"):
        experiments.compare({"base": ("scratch", {})}, seeds=(0, 1, 2), progress=False)


# ============================================================== 2. non-finite knobs and inputs are refused
@pytest.mark.parametrize("args, message", [
    (["run", "kd", "--alpha", "nan"], "alpha must be a finite number, got nan"),
    (["run", "dkd", "--set", "beta=nan"], "beta must be a finite number, got nan"),
    (["run", "dkd", "--set", "beta=inf"], "beta must be a finite number, got inf"),
    (["run", "dml", "--set", "kl_weight=inf"], "kl_weight must be a finite number, got inf"),
    (["run", "kd", "--lr", "inf"], "--lr must be a finite number > 0, got inf"),
    (["run", "kd", "--lr", "nan"], "--lr must be a finite number > 0, got nan"),
    (["run", "rkd-d", "--set", "distance_weight=nan"], "distance_weight must be a finite number, got nan"),
    (["run", "kd", "--temperature", "1e30"], "temperature must be a number in (0, 1000.0], got 1e+30"),
])
def test_non_finite_knobs_exit_2_before_training(capsys, args, message):
    code, out, err = cli(capsys, *args, "--device", "cpu")
    assert code == 2 and message in err and out == ""


def _numeric_options():
    for name in method_names():
        for key, default in method_info(name).defaults.items():
            if isinstance(default, float):
                yield name, key


@pytest.mark.parametrize("name, key", list(_numeric_options()))
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), True])
def test_every_numeric_option_of_every_method_refuses_nan_inf_and_bools(name, key, bad):
    student, teacher = build_model("student"), build_model("student").eval()
    with pytest.raises(ValueError, match=rf"{key} must be a (finite )?number"):
        make_method(name, student, teacher, **{key: bad})
    with pytest.raises(ValueError, match=rf"{key} must be a (finite )?number"):
        check_options(name, {key: bad})


def test_rkd_weight_nan_is_refused_not_dropped():
    """The RKD term is left out where its weight is not > 0: a NaN weight must not get that far."""
    student, teacher = build_model("student-tiny"), build_model("student").eval()
    with pytest.raises(ValueError, match=r"distance_weight must be a finite number >= 0.0, got nan"):
        make_method("rkd", student, teacher, distance_weight=float("nan"))


@pytest.mark.parametrize("value, message", [
    (float("nan"), "alpha must be a finite number in [0.0, 1.0], got nan"),
    (float("inf"), "alpha must be a finite number in [0.0, 1.0], got inf"),
    (True, "alpha must be a number in [0.0, 1.0], got True"),
    ("0.5", "alpha must be a number in [0.0, 1.0], got '0.5'"),
    (1.5, "alpha must be a number in [0.0, 1.0], got 1.5"),
])
def test_check_number_names_the_option_the_range_and_the_value(value, message):
    with pytest.raises(ValueError) as info:
        checks.check_number("alpha", value, 0.0, 1.0)
    assert str(info.value) == message


def test_check_number_accepts_numpy_and_integers_and_refuses_fractions_for_integers():
    assert checks.check_number("x", np.float32(0.5), 0, 1) == 0.5
    assert checks.check_integer("epochs", np.int64(3), 1) == 3 and checks.check_integer("n", 10**30, 1) == 10**30
    for bad in (3.0, 2.5, False):
        with pytest.raises(ValueError, match="epochs must be a positive integer"):
            checks.check_integer("epochs", bad, 1)
    with pytest.raises(ValueError, match=r"steps must be an integer in 1\.\.10 or None, got 0"):
        checks.check_integer("steps", 0, 1, 10, none_ok=True)
    assert checks.check_integer("steps", None, 1, none_ok=True) is None


LOSSES = {                         # name -> (the loss of a student and a teacher tensor, their argument names)
    "kd_loss": (lambda s, t: losses.kd_loss(s, t), ("student_logits", "teacher_logits")),
    "dkd_parts": (lambda s, t: losses.dkd_parts(s, t, torch.arange(4) % 3), ("student_logits", "teacher_logits")),
    "dml_loss": (lambda s, t: losses.dml_loss(s, t), ("logits", "peer_logits")),
    "dml_symmetric_loss": (lambda s, t: losses.dml_symmetric_loss(s, t), ("logits_a", "logits_b")),
    "ssld_loss": (lambda s, t: losses.ssld_loss(s, t), ("student_logits", "teacher_logits")),
    "fitnet_loss": (lambda s, t: losses.fitnet_loss(s, t), ("student_feat", "teacher_feat")),
    "ofd_loss": (lambda s, t: losses.ofd_loss(s, t, torch.zeros(3)), ("student_feat", "teacher_feat")),
    "rkd_distance_loss": (lambda s, t: losses.rkd_distance_loss(s, t), ("student_emb", "teacher_emb")),
    "rkd_angle_loss": (lambda s, t: losses.rkd_angle_loss(s, t), ("student_emb", "teacher_emb")),
    "rkd_distance_matrix": (lambda s, t: losses.rkd_distance_matrix(s), ("emb", None)),
    "rkd_angle_tensor": (lambda s, t: losses.rkd_angle_tensor(s), ("emb", None)),
}


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("name, side", [(name, side) for name, (_, names) in LOSSES.items()
                                        for side in (0, 1) if names[side] is not None])
def test_losses_refuse_non_finite_inputs(name, side, bad):
    fn, names = LOSSES[name]
    torch.manual_seed(0)
    s, t = torch.randn(4, 3), torch.randn(4, 3)
    (s, t)[side][1, 2] = bad
    with pytest.raises(ValueError) as info:
        fn(s, t)
    assert str(info.value).startswith(f"{names[side]} must be finite, got {int(math.isnan(bad))} NaN and "
                                      f"{int(math.isinf(bad))} ±inf value(s) among 12 (shape (4, 3))")


def test_the_finite_check_can_be_turned_off(monkeypatch):
    s, t = torch.randn(4, 3), torch.randn(4, 3)
    s[0, 0] = float("nan")
    monkeypatch.setattr(losses, "CHECK_FINITE", False)
    assert torch.isnan(losses.kd_loss(s, t))                        # unchecked: NaN comes back, as documented


@pytest.mark.parametrize("name", ["kd_loss", "dml_loss", "dml_symmetric_loss", "ssld_loss"])
def test_temperature_squared_cannot_overflow(name):
    s, t = torch.randn(4, 3), torch.randn(4, 3)
    fn = getattr(losses, name)
    with pytest.raises(ValueError, match=r"temperature must be at most 1000 .*got 1e\+30"):
        fn(s, t, temperature=1e30)
    assert torch.isfinite(fn(s, t, temperature=losses.MAX_TEMPERATURE))
    with pytest.raises(ValueError, match="a bool is not a number"):
        fn(s, t, temperature=True)


def test_a_diverging_run_fails_clearly_instead_of_training_garbage(capsys):
    """A finite but absurd learning rate: the logits become NaN and the KD loss refuses them; the seed is
    marked failed with that message and the command exits 1 (it used to end at ~10 % with exit 0)."""
    code, out, err = cli(capsys, "run", "kd", "--lr", "1e30", "--labeled", "100", "--epochs", "2", "--test-size",
                         "100", "--device", "cpu")
    assert code == 1 and "Traceback" not in err
    assert "not counted: seed 0 (failed)" in out and "must be finite" in out


def test_fit_refuses_an_infinite_learning_rate_and_bool_counts(small):
    from kd_lab.train import fit
    train, _ = small
    method = make_method("scratch", build_model("student-tiny"))
    for kwargs, message in ((dict(lr=float("inf")), "lr must be a finite number > 0, got inf"),
                            (dict(lr=float("nan")), "lr must be a finite number > 0, got nan"),
                            (dict(epochs=True), "epochs must be a positive integer, got True")):
        with pytest.raises(ValueError) as info:
            fit(method, train, device="cpu", progress=False, **kwargs)
        assert str(info.value) == message


def test_sliders_refuse_values_they_would_clamp():
    from kd_lab.widgets import TrainingPanel
    setting = Setting(labeled=100, epochs=1, test_size=100)
    with pytest.raises(ValueError, match=r"temperature \(temperature T\) must be a finite number in \[0.5, 20.0\], "
                                         r"got nan"):
        TrainingPanel("kd", {"temperature": float("nan")}, setting, device="cpu", teacher=build_model("student"))
    with pytest.raises(ValueError, match=r"must be a number in \[0.5, 20.0\], got 50"):
        TrainingPanel("kd", {"temperature": 50}, setting, device="cpu", teacher=build_model("student"))
    with pytest.raises(ValueError, match=r"labeled \(labeled images\) must be an integer in 100..60000, got 99.5"):
        TrainingPanel("scratch", {"labeled": 99.5}, setting, device="cpu")
    assert Knob(0.0, 1.0, 0.1, "α").validate("alpha", 1) == 1.0


# ========================================================================= 3. two first runs at once
def _run_together(script: str, tmp_path: Path, env: dict) -> list[subprocess.CompletedProcess]:
    """Two processes of ``script`` (argv: a barrier folder, a name): both start the work at the same moment."""
    path = tmp_path / "both.py"
    path.write_text(textwrap.dedent(script))
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [subprocess.Popen([sys.executable, str(path), str(barrier), name], cwd=REPO, text=True,
                              env={**os.environ, "KD_LAB_QUICK": "1", **env}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for name in ("a", "b")]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


BARRIER = """
import sys, time
from pathlib import Path
barrier, me = Path(sys.argv[1]), sys.argv[2]

def start_together():
    (barrier / f"ready-{me}").touch()
    while len(list(barrier.glob("ready-*"))) < 2:
        time.sleep(0.02)
"""


@needs_system_files
def test_two_first_fetches_at_once_both_succeed(tmp_path):
    root = tmp_path / "empty_data"
    done = _run_together(BARRIER + f"""
from kd_lab import data
start_together()
report = data.fetch_report("fashion-mnist", {str(root)!r}, download=False, apt=False)
print("SOURCE", report.source)
""", tmp_path, {})
    assert [d.returncode for d in done] == [0, 0], [d.stderr for d in done]
    sources = sorted(d.stdout.split("SOURCE ")[1].strip() for d in done)
    assert sources == ["data folder (fetched by another process)", f"system files {SYSTEM_DIR}"]
    assert sum("waiting for another process fetching fashion-mnist" in d.stderr for d in done) == 1
    assert data.is_complete("fashion-mnist", root)
    assert sorted(p.name for p in (root / "FashionMNIST" / "raw").iterdir()) == sorted(IDX_NAMES)  # no temp file


def test_two_first_teacher_trainings_at_once_train_once(tmp_path):
    cache = tmp_path / "cache"
    done = _run_together(BARRIER + f"""
from kd_lab import data, zoo
TINY = {TINY!r}
data.load("fashion-mnist")
train = zoo.train_teacher

def counted(*args, **kwargs):
    with open(barrier / "trained.log", "a") as log:
        log.write(me + "\\n")
    model_info = train(*args, **kwargs)
    time.sleep(1.0)                              # the other process is surely waiting by now
    return model_info

zoo.train_teacher = counted
start_together()
model = zoo.get_teacher("fashion-mnist", TINY, "cpu", progress=False)
print("TEACHER", model.zoo_info["test_acc"], model.zoo_info["path"])
""", tmp_path, {"KD_LAB_CACHE": str(cache)})
    assert [d.returncode for d in done] == [0, 0], [d.stderr for d in done]
    assert len((tmp_path / "barrier" / "trained.log").read_text().split()) == 1          # trained once
    assert len({d.stdout.split("TEACHER ")[1] for d in done}) == 1                      # the same teacher
    assert sum("waiting for another process training the fashion-mnist teacher" in d.stderr for d in done) == 1
    assert not list((cache / "teachers").glob(".*.tmp"))


def test_temporary_names_are_per_process_and_locks_sit_next_to_the_target(tmp_path):
    target = tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    assert temporary_path(target) == target.with_name(f".train-images-idx3-ubyte.{os.getpid()}.tmp")
    assert lock_path(tmp_path / "FashionMNIST") == tmp_path / ".FashionMNIST.lock"


# ====================================================================== 4. the teacher cache heals
def _tiny_file(tmp_cache: Path) -> Path:
    zoo.get_teacher("fashion-mnist", TINY, "cpu", progress=False, verbose=False)
    return tmp_cache / zoo._file_name("fashion-mnist", TINY)


def _rewrite(path: Path, change) -> None:
    """Change a teacher file's payload and give it a valid checksum again (only the change is wrong)."""
    payload = torch.load(path, weights_only=True)
    change(payload)
    payload["sha256"] = zoo._checksum(payload["state_dict"])
    torch.save(payload, path)


def _other_shape(payload):
    key = next(k for k, v in payload["state_dict"].items() if v.dim() == 2)
    payload["state_dict"][key] = torch.zeros(3, 3, dtype=torch.float16)


def _missing_tensor(payload):
    del payload["state_dict"][next(iter(payload["state_dict"]))]


def _nan_weights(payload):
    key = next(k for k, v in payload["state_dict"].items() if v.is_floating_point())
    payload["state_dict"][key] = torch.full_like(payload["state_dict"][key], float("nan"))


def _diverged(payload):
    payload["info"]["test_acc"] = 0.1


@pytest.mark.parametrize("damage, reported", [
    (_other_shape, "is stale: its weights do not fit the 'mlp' model"),
    (_missing_tensor, "is stale: its weights do not fit the 'mlp' model"),
    (_nan_weights, "not good: its weights are not finite"),
    (_diverged, "not good: its test accuracy 10.00 % is below the recipe's floor of 20 %"),
])
def test_a_bad_cache_file_is_reported_and_replaced(tmp_cache, damage, reported):
    path = _tiny_file(tmp_cache)
    _rewrite(path, damage)
    with pytest.warns(UserWarning, match=reported):
        rebuilt = zoo.get_teacher("fashion-mnist", TINY, "cpu", progress=False, verbose=False)
    _, info = zoo.load_teacher(path, "fashion-mnist", TINY)          # the file is good again
    assert info["test_acc"] == rebuilt.zoo_info["test_acc"] > 0.2


def test_a_diverged_teacher_is_never_saved(tmp_cache, monkeypatch):
    model = build_model("mlp")
    monkeypatch.setattr(zoo, "train_teacher", lambda *a, **k: (model, {"test_acc": 0.1}))
    with pytest.raises(zoo.BadTeacherError, match=r"not saved: its test accuracy 10.00 % is below the recipe's "
                                                  r"floor of 20 %"):
        zoo.get_teacher("fashion-mnist", TINY, "cpu", progress=False, verbose=False)
    with torch.no_grad():
        next(model.parameters())[0, 0] = float("inf")
    monkeypatch.setattr(zoo, "train_teacher", lambda *a, **k: (model, {"test_acc": 0.9}))
    with pytest.raises(zoo.BadTeacherError, match="weights are not finite"):
        zoo.get_teacher("fashion-mnist", TINY, "cpu", progress=False, verbose=False)
    assert not (tmp_cache / zoo._file_name("fashion-mnist", TINY)).exists()


def test_a_corrupt_cache_file_the_shipped_weights_cover_is_removed(tmp_cache):
    name = zoo._file_name("fashion-mnist", RECIPES["full"])
    tmp_cache.mkdir(parents=True)
    (tmp_cache / name).write_bytes(b"garbage")
    with pytest.warns(UserWarning, match=r"(?s)cannot be read.*removing it and using the shipped weights"):
        teacher = zoo.get_teacher("fashion-mnist", "full", "cpu", verbose=False)
    assert teacher.zoo_info["path"] == str(zoo.SHIPPED_DIR / name) and not (tmp_cache / name).exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")                               # healed: the next call warns no more
        zoo.get_teacher("fashion-mnist", "full", "cpu", verbose=False)


def test_min_accuracy_is_metadata_and_the_shipped_names_keep_loading():
    assert zoo._file_name("fashion-mnist", RECIPES["full"]) == "fashion-mnist-teacher-2a20d3ea4ef6.pt"
    assert zoo._file_name("fashion-mnist", RECIPES["first20k"]) == \
        "fashion-mnist-teacher-small-first20000-421bc4042b9c.pt"
    for name, recipe in RECIPES.items():
        assert 0.1 < recipe["min_accuracy"] < 0.9, name
        assert zoo.recipe_key("fashion-mnist", recipe) == zoo.recipe_key("fashion-mnist", trained_part(recipe))
        assert zoo.recipe_key("fashion-mnist", dict(recipe, min_accuracy=0.99)) == \
            zoo.recipe_key("fashion-mnist", recipe)
    assert min_accuracy(TINY) == pytest.approx(0.2) and min_accuracy(RECIPES["full"]) == 0.5
    for shipped in zoo.SHIPPED_DIR.glob("*.pt"):
        recipe = next(r for r in RECIPES.values() if zoo._file_name("fashion-mnist", r) == shipped.name)
        zoo.load_teacher(shipped, "fashion-mnist", recipe)          # checks floor, finiteness, shapes


# ============================================================= 5. bad input: one message, no traceback
@pytest.mark.parametrize("args, message", [
    (["compare", "--steps", "0"], "--steps must be a positive integer, got 0"),
    (["compare", "--eval-every", "0"], "--eval-every must be a positive integer, got 0"),
    (["run", "scratch", "--test-size", "0"], "--test-size must be a positive integer, got 0"),
    (["run", "scratch", "--test-size", "-5"], "--test-size must be a positive integer, got -5"),
    (["run", "scratch", "--seeds", "0", "0"], "--seeds names seed(s) [0] more than once"),
    (["run", "scratch", "--seeds", "-1"], "--seeds takes integers >= 0, got [-1]"),
    (["run", "scratch", "--device", "mps"], "device 'mps' was asked for but Apple's MPS is not available here"),
    (["run", "scratch", "--device", "cuda:7"], "device 'cuda:7' was asked for but"),
    (["teacher", "--device", "mps"], "device 'mps' was asked for but Apple's MPS is not available here"),
    (["run", "scratch", "--labeled", "abc"], "--labeled takes a positive integer or 'all', got 'abc'"),
    (["run", "scratch", "--labeled", "0"], "--labeled takes a positive integer or 'all', got '0'"),
])
def test_bad_options_exit_2_with_one_message(capsys, args, message):
    if "mps" in args and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    code, out, err = cli(capsys, *args)
    assert code == 2 and message in err and err.count("\n") == 1 and out == ""


def test_compare_out_must_be_a_file(capsys, tmp_path):
    code, _, err = cli(capsys, "compare", "--out", str(tmp_path))
    assert code == 2 and f"--out takes the path of a CSV file, got the folder {tmp_path}" in err


def test_one_seed_shows_no_spread(monkeypatch, capsys):
    fake_runs(monkeypatch, {3: history(3, acc=0.815)})
    code, out, _ = cli(capsys, "run", "scratch", "--seeds", "3", "--device", "cpu")
    assert code == 0 and "mean ± std over 1 seed(s): 81.50 ± – %\n" in out


def test_missing_data_is_one_message_with_exit_1(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("KD_LAB_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(data, "_from_torchvision", lambda name, root: "OSError: offline")
    code, out, err = cli(capsys, "run", "scratch", "--dataset", "mnist", "--device", "cpu")
    assert code == 1 and err.startswith("error: data set 'mnist' is not available") and "Traceback" not in err
    assert "copy its files (train-images-idx3-ubyte, " in err and str(tmp_path / "data" / "MNIST" / "raw") in err


@pytest.mark.parametrize("how", ["read-only", "under a file"])
def test_a_data_folder_that_cannot_be_written_is_named(capsys, monkeypatch, tmp_path, how):
    if how == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders; the 'under a file' case covers this path")
        root = tmp_path / "data"
        root.mkdir()
        root.chmod(0o555)
    else:
        (tmp_path / "file").write_text("not a folder")
        root = tmp_path / "file" / "data"
    monkeypatch.setenv("KD_LAB_DATA", str(root))
    monkeypatch.setattr(data, "_from_torchvision", lambda name, root: pytest.fail("no source can write there"))
    code, _, err = cli(capsys, "data", "fashion-mnist")
    assert code == 1 and "Traceback" not in err
    assert f"data folder {root / 'FashionMNIST'}: missing or incomplete, and it cannot be written" in err
    assert f"make {root} writable, or point KD_LAB_DATA at a folder you can write" in err


def test_the_fix_names_the_raw_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_from_torchvision", lambda name, root: "OSError: offline")
    with pytest.raises(data.DataUnavailableError) as info:
        data.fetch("fashion-mnist", tmp_path, system_dir=None, apt=False)
    assert f"into {tmp_path / 'FashionMNIST' / 'raw'}." in str(info.value)


def _results_csv(path: Path, rows: list[dict]) -> None:
    columns = getattr(results, "SWEEP_COLUMNS", results.COLUMNS)
    lines = [",".join(columns)] + [",".join(str(row.get(c, "")) for c in columns) for row in rows]
    path.write_text("\n".join(lines) + "\n")


GOOD_ROW = {"timestamp": "t", "setting_key": "k", "method": "scratch", "seed": 0, "labeled": 100, "epochs": 1,
            "status": "ok", "accuracy": 80.0, "device": "cpu", "options": "{}", "setting": "{}"}


@pytest.mark.parametrize("bad, message", [
    ({"accuracy": "x"}, "line 3: column 'accuracy' holds 'x', which is not a number"),
    ({"seed": "1.5"}, "line 3: column 'seed' holds '1.5', which is not a number"),
    ({"accuracy": "nan"}, "line 3: a run with status 'ok' has accuracy 'nan', not a finite number"),
])
def test_a_malformed_results_cell_names_the_file_and_the_line(tmp_path, bad, message):
    path = tmp_path / "runs.csv"
    _results_csv(path, [GOOD_ROW, {**GOOD_ROW, "seed": 1, **bad}])
    with pytest.raises(ValueError) as info:
        results.read_rows(path)
    assert str(info.value).startswith(f"{path}, {message}")


def test_failed_rows_never_enter_a_summary(tmp_path):
    path = tmp_path / "runs.csv"
    _results_csv(path, [GOOD_ROW, {**GOOD_ROW, "seed": 1, "status": "failed", "accuracy": 10.0, "error": "boom"}])
    (record,) = results.summarize(results.read_rows(path))
    assert record["n"] == 1 and record["failed"] == 1 and record["acc_mean"] == 80.0 and math.isnan(record["acc_std"])


# ===================================================================== 6. data contents are checked
def test_a_label_out_of_range_is_named_on_load(tmp_path):
    root = fashion_copy(tmp_path)
    labels = root / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte"
    with open(labels, "r+b") as f:
        f.seek(8 + 12)
        f.write(bytes([200]))
    assert data.is_complete("fashion-mnist", root)                 # size and header are fine
    with pytest.raises(data.DataCorruptError, match=r"fashion-mnist test: 1 label\(s\) outside 0..9, the first 200 "
                                                    rf"at image 12 \({re.escape(str(labels))}\)"):
        data.load("fashion-mnist", root=root, download=False, apt=False)


def test_an_idx_header_with_another_count_is_not_complete(tmp_path):
    root = fashion_copy(tmp_path)
    with open(root / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte", "r+b") as f:
        f.seek(4)
        f.write((59999).to_bytes(4, "big"))
    assert data.check_files("fashion-mnist", root) == {
        "raw/train-labels-idx1-ubyte": "header says 59,999 items, expected 60,000"}


def test_check_files_names_each_bad_file_and_its_expected_size(tmp_path):
    root = fashion_copy(tmp_path)
    raw = root / "FashionMNIST" / "raw"
    with open(raw / "train-images-idx3-ubyte", "r+b") as f:
        f.truncate(1000)
    (raw / "t10k-labels-idx1-ubyte").unlink()
    assert data.check_files("fashion-mnist", root) == {
        "raw/train-images-idx3-ubyte": "1,000 bytes, expected 47,040,016",
        "raw/t10k-labels-idx1-ubyte": "missing (expected 10,008 bytes)"}
    assert "is_complete" in data.__all__ and not data.is_complete("fashion-mnist", root)
    done = subprocess.run([sys.executable, "data_scripts/verify.py", "fashion-mnist", "--root", str(root)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "raw/train-images-idx3-ubyte: 1,000 bytes, expected 47,040,016" in done.stderr


@needs_system_files
def test_fetch_report_says_which_source_worked(tmp_path):
    root = tmp_path / "data"
    assert data.fetch_report("fashion-mnist", root, download=False, apt=False).source == f"system files {SYSTEM_DIR}"
    assert data.fetch_report("fashion-mnist", root).source == "data folder"


def _cifar_batches(folder: Path, protocol: int = pickle.DEFAULT_PROTOCOL, per_batch: int = 4) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"batch_label": name, "labels": [i % 10 for i in range(per_batch)],
                 "data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 "filenames": [f"{name}_{i}.png" for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))


class _Planted:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_planted_cifar_batch_is_refused_and_runs_nothing(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _cifar_batches(folder)
    marker = tmp_path / "the-code-ran"
    (folder / "data_batch_2").write_bytes(pickle.dumps({"data": _Planted(marker), "labels": [0]}))
    with pytest.raises(data.DataCorruptError, match=r"data_batch_2 is not a readable CIFAR-10 batch .*it names "
                                                    r"posix\.system, which a CIFAR-10 batch never holds"):
        data.load("cifar10", root=tmp_path, download=False, apt=False)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_batches_of_every_pickle_protocol_still_load(tmp_path, protocol):
    _cifar_batches(tmp_path / "cifar-10-batches-py", protocol)
    train, test = data.load("cifar10", root=tmp_path, download=False, apt=False)
    assert train.x.shape == (20, 3, 32, 32) and len(test) == 4 and train.y.tolist()[:4] == [0, 1, 2, 3]


@pytest.mark.parametrize("batch, problem", [
    ({"data": np.zeros((3, 3072), np.uint8), "labels": [0, 1]}, "is not a CIFAR-10 batch"),
    ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]}, r"test: 1 label\(s\) outside 0..9"),
])
def test_cifar_counts_and_labels_are_checked(tmp_path, batch, problem):
    folder = tmp_path / "cifar-10-batches-py"
    _cifar_batches(folder)
    (folder / "test_batch").write_bytes(pickle.dumps(batch))
    with pytest.raises(data.DataCorruptError, match=problem):
        data.load("cifar10", root=tmp_path, download=False, apt=False)


def _apt_recorder(monkeypatch) -> list:
    calls = []
    monkeypatch.setattr(data, "_from_apt", lambda package: calls.append(package) or "apt-get failed (recorded)")
    monkeypatch.setattr(data, "_from_torchvision", lambda name, root: "OSError: offline")
    return calls


def test_apt_get_runs_only_when_asked(tmp_path, monkeypatch):
    calls = _apt_recorder(monkeypatch)
    monkeypatch.delenv(data.APT_ENV, raising=False)
    with pytest.raises(data.DataUnavailableError) as info:
        data.fetch("fashion-mnist", tmp_path / "a", system_dir=str(tmp_path / "none"))
    assert calls == []
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist: not run (kd_lab runs apt-get only when asked: python -m kd_lab " \
           "data fashion-mnist --apt, or KD_LAB_ALLOW_APT=1)" in message
    assert "sudo apt-get install dataset-fashion-mnist" in message
    for asked in ({"apt": True}, {}):
        if not asked:
            monkeypatch.setenv(data.APT_ENV, "1")
        with pytest.raises(data.DataUnavailableError, match="apt-get failed"):
            data.fetch("fashion-mnist", tmp_path / "b", system_dir=str(tmp_path / "none"), **asked)
    assert calls == ["dataset-fashion-mnist"] * 2


def test_make_setup_asks_for_apt_explicitly():
    makefile = (REPO / "Makefile").read_text()
    data_target = makefile.split("\ndata:", 1)[1].split("\n\n", 1)[0]
    assert "data_scripts/fetch.py fashion-mnist --apt" in data_target


# ============================================================================ 7. nothing looks hung
def test_json_output_keeps_progress_on_stderr():
    done = kd_lab("run", "scratch", "--epochs", "1", "--labeled", "100", "--test-size", "100", "--device", "cpu",
                  "--json")
    assert done.returncode == 0, done.stderr
    assert all(line.startswith("{") for line in done.stdout.splitlines())
    assert "scratch seed 0: finished, test accuracy" in done.stderr and "step" in done.stderr   # the tqdm bar


def test_stop_with_nothing_running_says_so():
    from kd_lab.widgets import TrainingPanel
    panel = TrainingPanel("scratch", {"epochs": 1}, Setting(labeled=100, epochs=1, test_size=100), device="cpu",
                          sync=True)
    panel.stop()
    assert panel.status.value == "nothing is running: press Train to start a run" and not panel._stop.is_set()
