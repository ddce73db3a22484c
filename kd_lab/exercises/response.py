"""Self-checks of lesson 01, response-based distillation (``notebooks/01_response_kd.ipynb``, Hinton et al.
2015): softmax with a temperature, the KD loss T²·KL(p_t ‖ p_s), and the limits of the soft targets as
T → ∞ and T → 0.
"""
from __future__ import annotations

import torch

from .. import losses
from ._common import _call, _check_tensor, _report

__all__ = ["check_softmax_t", "check_kd_loss", "check_temperature_limits"]


def _cases(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(5, 10, generator=g) * 3, t) for t in (0.5, 1.0, 4.0, 10.0)]


def check_softmax_t(fn) -> bool:
    """``fn(logits (B, K), T) -> (B, K)``: softmax of logits / T over the classes."""
    for logits, t in _cases():
        out, problem = _call(fn, logits, t)
        problem = problem or _check_tensor(out, logits.shape)
        if problem:
            return _report(False, problem)
        want = torch.softmax(logits / t, dim=-1)
        if torch.allclose(out, want, atol=1e-5):
            continue
        if not torch.allclose(out.sum(-1), torch.ones(len(out)), atol=1e-4):
            return _report(False, "each row must sum to 1: take the softmax over the class dimension (dim=-1)")
        if torch.allclose(out, torch.softmax(logits * t, dim=-1), atol=1e-5):
            return _report(False, f"at T={t} you multiplied the logits by T: divide by T instead")
        if torch.allclose(out, torch.softmax(logits, dim=-1), atol=1e-5):
            return _report(False, f"at T={t} the output ignores the temperature: use softmax(logits / T)")
        return _report(False, f"at T={t} the values differ from softmax(logits / T)")
    return _report(True, "softmax with temperature is right for T = 0.5, 1, 4 and 10")


def check_kd_loss(fn) -> bool:
    """``fn(student_logits, teacher_logits, T) -> scalar``: T²·KL(p_t ‖ p_s), mean over the batch."""
    for logits, t in _cases(1):
        teacher = logits.roll(1, dims=0) * 0.7
        out, problem = _call(fn, logits, teacher, t)
        problem = problem or _check_tensor(out, ())
        if problem:
            return _report(False, problem)
        want = losses.kd_loss(logits, teacher, t)
        ratio = float(out / want)
        if abs(ratio - 1) < 1e-4:
            continue
        hints = {1 / t ** 2: "the T² factor is missing", float(len(logits)): "sum over the batch, then divide by B "
                 "(you summed without averaging)", 1 / logits.shape[1]: "you averaged over classes: sum over them"}
        for r, hint in hints.items():
            if abs(ratio - r) < 1e-3 * max(1.0, r):
                return _report(False, f"at T={t}: {hint}")
        reverse = losses.kd_loss(teacher, logits, t)
        if torch.allclose(out, reverse, rtol=1e-4):
            return _report(False, "KL is taken in the wrong direction: it is KL(teacher ‖ student) = "
                                  "Σ p_t (log p_t − log p_s)")
        return _report(False, f"at T={t} expected {float(want):.4f}, got {float(out):.4f}")
    return _report(True, "your KD loss matches kd_lab.losses.kd_loss for T = 0.5, 1, 4 and 10")


_LIMIT_CHOICES = ("uniform", "one-hot", "unchanged")


def check_temperature_limits(t_to_infinity: str, t_to_zero: str) -> bool:
    """Multiple choice: what do the soft targets softmax(z/T) become as T → ∞ and as T → 0?"""
    for name, answer in (("t_to_infinity", t_to_infinity), ("t_to_zero", t_to_zero)):
        if answer not in _LIMIT_CHOICES:
            return _report(False, f"{name}={answer!r} is not one of {_LIMIT_CHOICES}")
    ok = True
    if t_to_infinity != "uniform":
        ok = _report(False, "T → ∞: z/T → 0 for every class, so every probability tends to 1/K (uniform); "
                            "the teacher's knowledge is washed out")
    if t_to_zero != "one-hot":
        ok = _report(False, "T → 0: the largest logit dominates exp(z/T), so the distribution tends to the "
                            "one-hot argmax, like a hard label: no dark knowledge left")
    if ok:
        _report(True, "T → ∞ gives the uniform distribution, T → 0 the one-hot argmax; a useful T lies between")
    return ok
