"""fit / evaluate / History: learning, reproducibility, stop, crash, teacher handling, bad input."""
import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kd_lab.methods import KD, Scratch
from kd_lab.models import build_model
from kd_lab.train import History, evaluate, fit, pick_device

QUIET = dict(progress=False, device="cpu")


def student(seed=0):
    torch.manual_seed(seed)
    return build_model("student-tiny")


def test_fit_learns_and_logs_every_step_and_epoch(small):
    train, test = small
    h = fit(Scratch(student()), train, test, epochs=4, batch_size=64, lr=0.1, **QUIET)
    assert h.status == "finished" and h.error is None
    assert len(h.steps) == 4 * 8 and [e["epoch"] for e in h.epochs] == [1, 2, 3, 4]
    assert h.term_names == ["ce"] and h.steps[-1]["total"] == pytest.approx(h.steps[-1]["ce"])
    assert h.steps[-1]["ce"] < h.steps[0]["ce"]
    assert h.test_acc > 0.3                               # chance is 0.1
    assert h.images_per_s > 0 and h.wall_s > 0 and h.device == "cpu"
    assert h.config["train_size"] == 500 and h.config["epochs"] == 4


def test_same_seed_same_history_on_cpu(small):
    train, test = small
    runs = [fit(Scratch(student(1)), train, test, epochs=1, batch_size=100, seed=5, **QUIET) for _ in range(2)]
    assert [s["total"] for s in runs[0].steps] == [s["total"] for s in runs[1].steps]
    other = fit(Scratch(student(1)), train, test, epochs=1, batch_size=100, seed=6, **QUIET)
    assert [s["total"] for s in other.steps] != [s["total"] for s in runs[0].steps]


def test_stop_event_ends_run_and_keeps_history(small):
    train, test = small
    stop = threading.Event()
    seen = []

    def callback(h):
        seen.append(len(h.steps))
        if len(h.steps) >= 4:
            stop.set()
    h = fit(Scratch(student()), train, test, epochs=5, batch_size=50, callback=callback, callback_every=2,
            stop=stop, **QUIET)
    assert h.status == "stopped" and len(h.steps) == 4 and seen == [2, 4]
    assert not h.epochs


def test_keyboard_interrupt_keeps_history(small):
    train, test = small

    def callback(h):
        if len(h.steps) == 13:
            raise KeyboardInterrupt
    h = fit(Scratch(student()), train, test, epochs=3, batch_size=50, callback=callback, callback_every=1, **QUIET)
    assert h.status == "stopped" and len(h.steps) == 13 and len(h.epochs) == 1


class Exploding(Scratch):
    name = "exploding"

    def __init__(self, student, teacher=None):
        super().__init__(student, teacher)
        self.calls = 0

    def loss_terms(self, x, y):
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("boom")
        return super().loss_terms(x, y)


def test_crash_keeps_history_on_exception_and_in_given_object(small):
    train, test = small
    kept = History()
    with pytest.raises(RuntimeError, match="boom") as info:
        fit(Exploding(student()), train, test, epochs=1, batch_size=50, history=kept, **QUIET)
    assert info.value.history is kept
    assert kept.status == "failed" and "boom" in kept.error and len(kept.steps) == 2


def test_teacher_stays_in_eval_mode_without_gradients(small):
    train, test = small
    torch.manual_seed(0)
    teacher = build_model("student")            # any network works as a teacher here
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    modes = []
    teacher.register_forward_pre_hook(lambda m, i: modes.append((m.training, torch.is_grad_enabled())))
    method = KD(student(), teacher, temperature=4.0, alpha=0.5)
    fit(method, train, test, epochs=1, batch_size=100, **QUIET)
    assert modes and all(m == (False, False) for m in modes)
    for k, v in teacher.state_dict().items():
        torch.testing.assert_close(v, before[k])          # weights and BN statistics unchanged
    assert not any(p.requires_grad for p in teacher.parameters())
    assert all(p.grad is None for p in teacher.parameters())


class WithHead(Scratch):
    """A method that owns an extra trainable module (like a connector)."""
    name = "with-head"

    def __init__(self, student, teacher=None):
        super().__init__(student, teacher)
        self.head = nn.Linear(10, 10)

    def loss_terms(self, x, y):
        return {"ce": F.cross_entropy(self.head(self.student(x)), y)}


def test_modules_owned_by_the_method_are_trained(small):
    train, test = small
    method = WithHead(student())
    before = method.head.weight.detach().clone()
    fit(method, train, test, epochs=1, batch_size=100, **QUIET)
    assert not torch.equal(before, method.head.weight.detach())


def test_callback_every_n_steps_and_after_each_epoch(small):
    train, test = small
    calls = []
    fit(Scratch(student()), train, test, epochs=2, batch_size=100, callback=lambda h: calls.append(
        (len(h.steps), len(h.epochs))), callback_every=3, **QUIET)
    assert calls == [(3, 0), (5, 1), (6, 1), (9, 1), (10, 2)]


def test_evaluate_constant_model_gives_class_share(small):
    _, test = small

    class Constant(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            out = torch.zeros(len(x), 10)
            out[:, 3] = 1.0
            return out + self.w
    ev = evaluate(Constant(), test)
    share = float((test.y == 3).float().mean())
    assert ev.accuracy == pytest.approx(share)
    assert ev.per_class[3] == 1.0 and sum(ev.per_class) == 1.0
    assert ev.loss > 0


@pytest.mark.parametrize("kwargs,message", [
    (dict(epochs=0), "epochs must be a positive integer, got 0"),
    (dict(batch_size=0), "batch_size must be a positive integer, got 0"),
    (dict(batch_size=-8), "batch_size must be a positive integer, got -8"),
    (dict(lr=0.0), "lr must be > 0, got 0.0"),
    (dict(optimizer="rmsprop"), "unknown optimizer 'rmsprop'; choose 'sgd' or 'adamw'"),
    (dict(amp="fp8"), "amp must be 'auto', 'bf16' or 'off', got 'fp8'"),
])
def test_bad_arguments(small, kwargs, message):
    train, test = small
    args = dict(epochs=1, **QUIET) | kwargs
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fit(Scratch(student()), train, test, **args)


def test_empty_training_set(small):
    train, test = small
    with pytest.raises(ValueError, match="training set is empty"):
        fit(Scratch(student()), train.subset(torch.arange(0)), test, epochs=1, **QUIET)


def test_device_choice():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="unknown device 'gpu7'"):
        pick_device("gpu7")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda")


def test_bf16_autocast_runs_on_cpu(small):
    train, test = small
    h = fit(Scratch(student()), train, test, epochs=1, batch_size=100, amp="bf16", **QUIET)
    assert h.status == "finished" and all(torch.isfinite(torch.tensor(s["total"])) for s in h.steps)


def test_eval_every_measures_only_some_epochs_and_always_the_last(small):
    train, test = small
    h = fit(Scratch(student()), train, test, epochs=5, batch_size=100, eval_every=2, **QUIET)
    measured = [e["epoch"] for e in h.epochs if e["test_acc"] is not None]
    assert measured == [2, 4, 5] and h.test_acc == h.epochs[-1]["test_acc"]
    with pytest.raises(ValueError, match="eval_every must be a positive integer, got 0"):
        fit(Scratch(student()), train, test, epochs=1, eval_every=0, **QUIET)


def test_amp_choice():
    from kd_lab.train import amp_enabled, cpu_has_bf16
    cpu = torch.device("cpu")
    assert amp_enabled(cpu, "off") is False and amp_enabled(cpu, "bf16") is True
    assert amp_enabled(cpu, "auto") == cpu_has_bf16()
    with pytest.raises(ValueError, match="amp must be 'auto', 'bf16' or 'off', got 'fp16'"):
        amp_enabled(cpu, "fp16")
