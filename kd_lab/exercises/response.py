"""Self-checks of lesson 01, response-based distillation (``notebooks/01_response_kd.ipynb``; Hinton et al. 2015,
Zhao et al. 2022): DKD's target-class term TCKD written from the binary probabilities [p_y, 1 − p_y], the
temperature at which the softened teacher reaches a given entropy (found by bisection), the limits of the soft
targets as T → ∞ and T → 0, and a prediction of a sweep's result compared with what was measured.
"""
from __future__ import annotations

import math

import torch

from .. import losses
from ._common import _call, _check_tensor, _report

__all__ = ["check_tckd", "check_entropy_temperature", "check_temperature_limits", "check_prediction"]


def _tckd_cases(seed: int = 0):
    """(student logits (6, 10), teacher logits (6, 10), targets (6,), T): a confident teacher, varied T."""
    g = torch.Generator().manual_seed(seed)
    cases = []
    for t in (1.0, 2.0, 4.0):
        y = torch.randint(0, 10, (6,), generator=g)
        teacher = torch.randn(6, 10, generator=g) * 2
        teacher[torch.arange(6), y] += 6.0                       # the teacher is right and fairly sure
        cases.append((torch.randn(6, 10, generator=g) * 1.5, teacher, y, t))
    return cases


def _binary(logits, y, t):
    """(B, 2): [p_y, 1 − p_y] of softmax(logits / T)."""
    p_y = torch.softmax(logits / t, dim=1).gather(1, y[:, None])
    return torch.cat([p_y, 1 - p_y], dim=1)


def _tckd_mistakes(s, t, y, T) -> dict[str, torch.Tensor]:
    """What typical wrong TCKDs return, each with the hint that explains it."""
    b_s, b_t = _binary(s, y, T), _binary(t, y, T)
    kl = lambda p, q: (p * (p.log() - q.log())).sum(1)                                  # noqa: E731  (B,)
    target_only = b_t[:, 0] * (b_t[:, 0].log() - b_s[:, 0].log())
    return {
        "the T² factor is missing (DKD scales each part by T², like KD)": kl(b_t, b_s).mean(),
        "KL is taken in the wrong direction: TCKD = KL(b_t ‖ b_s) = Σ b_t (log b_t − log b_s)":
            T * T * kl(b_s, b_t).mean(),
        "only the target entry p_y log(p_t,y / p_s,y) is there: add the non-target entry of the binary "
        "distribution, (1 − p_t,y) log((1 − p_t,y) / (1 − p_s,y))": T * T * target_only.mean(),
        "this is the whole KD loss KL(p_t ‖ p_s): TCKD compares only the two binary probabilities "
        "[p_y, 1 − p_y]": losses.kd_loss(s, t, T),
        "the probabilities were taken at T = 1: soften both with softmax(logits / T) first":
            T * T * kl(_binary(t, y, 1.0), _binary(s, y, 1.0)).mean(),
        "sum over the batch, then divide by B (you summed without averaging)": T * T * kl(b_t, b_s).sum(),
    }


def check_tckd(fn) -> bool:
    """``fn(student_logits (B, K), teacher_logits (B, K), y (B,), T) -> scalar``: DKD's target-class term,
    T² · mean_b KL([p_t,y, 1 − p_t,y] ‖ [p_s,y, 1 − p_s,y]) with p = softmax(logits / T)."""
    for s, t, y, T in _tckd_cases():
        out, problem = _call(fn, s.clone(), t.clone(), y.clone(), T)
        problem = problem or _check_tensor(out, ())
        if problem:
            return _report(False, problem)
        want = losses.dkd_parts(s, t, y, T)[0]
        if torch.allclose(out.float(), want, rtol=1e-4, atol=1e-6):
            continue
        for hint, wrong in _tckd_mistakes(s, t, y, T).items():
            if torch.allclose(out.float(), wrong.float(), rtol=1e-4, atol=1e-6):
                return _report(False, f"at T={T:g}: {hint}")
        return _report(False, f"at T={T:g} expected {float(want):.4f} (the first part of "
                              f"kd_lab.losses.dkd_parts), got {float(out):.4f}")
    return _report(True, "your TCKD matches kd_lab.losses.dkd_parts for T = 1, 2 and 4")


def _entropy(logits: torch.Tensor, t: float) -> float:
    """H(softmax(logits / T)) in nats."""
    p = torch.softmax(logits.double() / t, dim=-1)
    return float(-(p * p.clamp_min(1e-300).log()).sum())


def _entropy_cases():
    """(teacher-like logits (10,), target entropy in nats): a sure, a hesitant and a nearly flat target."""
    g = torch.Generator().manual_seed(3)
    z = torch.randn(10, generator=g, dtype=torch.float64) * 2
    z[4] += 8.0
    return [(z, 0.5), (z, 1.2), (z, 2.2)]


def check_entropy_temperature(fn) -> bool:
    """``fn(logits (K,), target) -> T``: the temperature at which softmax(logits / T) has entropy ``target``
    (nats), to within 0.001 nats. The entropy grows with T from 0 (one-hot) to log K (uniform), so bisection on
    T finds it."""
    for z, target in _entropy_cases():
        out, problem = _call(fn, z.clone(), target)
        if problem:
            return _report(False, problem)
        if isinstance(out, torch.Tensor) and out.numel() == 1:
            out = out.item()
        if isinstance(out, bool) or not isinstance(out, (int, float)) or not math.isfinite(out) or out <= 0:
            return _report(False, f"expected a positive number T, got {out!r}")
        h = _entropy(z, out)
        if abs(h - target) <= 1e-3:
            continue
        if abs(h / math.log(2) - target) <= 2e-3:
            return _report(False, f"target {target} nats: you measured the entropy in bits (log2); use the "
                                  "natural log, the entropy's unit here is the nat")
        if abs(_entropy(z, 1 / out) - target) <= 2e-3:
            return _report(False, f"target {target} nats: your T gives it when the logits are multiplied by T; "
                                  "the softened softmax divides them: softmax(logits / T)")
        direction = "too low: the distribution is too sharp, raise T" if h < target else \
            "too high: the distribution is too flat, lower T"
        return _report(False, f"target {target} nats: at your T = {out:.4g} the entropy is {h:.4f} nats, "
                              f"{direction} (bisect until the entropy is within 0.001 nats)")
    return _report(True, "your temperatures reach the target entropies 0.5, 1.2 and 2.2 nats")


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


def check_prediction(prediction, record: dict, tolerance: float = 1.0, what: str = "the paired difference") -> bool:
    """Compare a prediction (in points) with a sweep record's measured paired difference ``diff_mean`` (and its
    95 % interval ``ci_low`` … ``ci_high``, :func:`kd_lab.reference.lesson_results`). Right when it lies in the
    interval or within ``tolerance`` points of the mean; either way it says how far off it was. ``None``, the
    placeholder, asks for a prediction first (and reveals nothing)."""
    if prediction is None:
        return _report(False, "write your prediction first: set the variable to a number of points, then run "
                              "this cell again")
    if isinstance(prediction, bool) or not isinstance(prediction, (int, float)) or not math.isfinite(prediction):
        return _report(False, f"the prediction must be a number of points, got {prediction!r}")
    if not record.get("pairs"):
        return _report(False, f"{what} is not in the results file yet: run the sweep, then check again")
    mean, low, high = record["diff_mean"], record["ci_low"], record["ci_high"]
    ci = "" if math.isnan(low) else f" (95 % CI {low:+.2f} … {high:+.2f})"
    off = prediction - mean
    measured = f"measured {mean:+.2f} points{ci} over {record['pairs']} seeds"
    if abs(off) <= tolerance or (not math.isnan(low) and low <= prediction <= high):
        return _report(True, f"{what}: you predicted {prediction:+.2f}, {measured}; off by {abs(off):.2f}")
    sign = " — and the sign is wrong" if prediction * mean < 0 else ""
    return _report(False, f"{what}: you predicted {prediction:+.2f}, {measured}; {abs(off):.2f} points too "
                          f"{'high' if off > 0 else 'low'}{sign}")
