"""The self-checks accept right answers and name what is wrong in wrong ones."""
import pytest
import torch

from kd_lab import exercises


def right_softmax(z, t):
    return torch.softmax(z / t, dim=-1)


@pytest.mark.parametrize("fn,message", [
    (right_softmax, "✅ softmax with temperature is right"),
    (lambda z, t: torch.softmax(z * t, dim=-1), "multiplied the logits by T"),
    (lambda z, t: torch.softmax(z, dim=-1), "ignores the temperature"),
    (lambda z, t: torch.softmax(z / t, dim=0), "each row must sum to 1"),
    (lambda z, t: None, "returned None"),
    (lambda z, t: (z / t).tolist(), "expected a torch.Tensor, got list"),
    (lambda z, t: torch.softmax(z / t, -1)[:, :3], "expected shape (5, 10), got (5, 3)"),
])
def test_check_softmax_t(capsys, fn, message):
    ok = exercises.check_softmax_t(fn)
    out = capsys.readouterr().out
    assert message in out and ok == message.startswith("✅")


def not_done(*args):
    raise NotImplementedError


def right_kd(s, t, T):
    p_t = torch.softmax(t / T, -1)
    return T * T * (p_t * (torch.log_softmax(t / T, -1) - torch.log_softmax(s / T, -1))).sum(-1).mean()


@pytest.mark.parametrize("fn,message", [
    (right_kd, "✅ your KD loss matches"),
    (lambda s, t, T: right_kd(s, t, T) / T ** 2, "the T² factor is missing"),
    (lambda s, t, T: right_kd(s, t, T) * len(s), "you summed without averaging"),
    (lambda s, t, T: right_kd(t, s, T), "wrong direction"),
    (not_done, "not implemented yet"),
    (lambda s, t, T: 1 / 0, "raised ZeroDivisionError"),
])
def test_check_kd_loss(capsys, fn, message):
    ok = exercises.check_kd_loss(fn)
    assert message in capsys.readouterr().out and ok == message.startswith("✅")


def test_check_temperature_limits(capsys):
    assert exercises.check_temperature_limits("uniform", "one-hot")
    assert not exercises.check_temperature_limits("one-hot", "one-hot")
    assert "1/K (uniform)" in capsys.readouterr().out
    assert not exercises.check_temperature_limits("uniform", "sharp")
    assert "'sharp' is not one of" in capsys.readouterr().out
