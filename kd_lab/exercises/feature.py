"""Self-checks of lesson 04, feature-based distillation (``notebooks/04_feature_overhaul.ipynb``, OFD, Heo et
al. 2019): the margin from a BatchNorm's parameters, and the mask of the partial L2.
"""
from __future__ import annotations

import math

import torch

from .. import losses
from ._common import _call, _check_tensor, _report

__all__ = ["check_ofd_margin", "check_partial_l2_mask"]


_MARGIN_CASES = ((1.0, 0.0), (-0.5, 0.2), (2.0, -1.0), (0.3, 0.6), (1.0, 4.0), (0.5, -2.0))   # (γ, β) per channel


def _margin_bn() -> torch.nn.BatchNorm2d:
    """A BatchNorm2d whose channels have the (γ, β) of ``_MARGIN_CASES`` (one negative γ, one β/|γ| = 4 where
    the fallback applies) and running statistics that are not the defaults, so that using them shows."""
    bn = torch.nn.BatchNorm2d(len(_MARGIN_CASES))
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([g for g, _ in _MARGIN_CASES]))
        bn.bias.copy_(torch.tensor([b for _, b in _MARGIN_CASES]))
        bn.running_mean.fill_(0.7)
        bn.running_var.fill_(2.0)
    return bn


def _margin_guesses(bn) -> dict[str, torch.Tensor]:
    """Common wrong margins -> what they compute (on the channels where P(x < 0) > 0.001)."""
    g, b = bn.weight.detach().float(), bn.bias.detach().float()
    pdf = lambda z: torch.exp(-0.5 * z ** 2) / math.sqrt(2 * math.pi)  # noqa: E731
    s, z = g.abs(), b / g.abs()
    return {"use |γ|: the BN's weight γ can be negative, and the standard deviation of x is |γ|":
            b - g * pdf(b / g) / torch.special.ndtr(-b / g),
            "divide by P(x < 0) = Φ(−β/|γ|), not by Φ(β/|γ|)": b - s * pdf(z) / torch.special.ndtr(z),
            "that is E[x | x > 0]; the margin is the mean of the *negative* part, β − |γ|·φ(z)/Φ(−z)":
            b + s * pdf(z) / torch.special.ndtr(z),
            "the division by P(x < 0) = Φ(−β/|γ|) is missing (E[x | x<0] = β − |γ|·φ(z)/Φ(−z))": b - s * pdf(z),
            "use the affine parameters (weight γ, bias β), not the running statistics":
            bn.running_mean - bn.running_var.sqrt() * pdf(bn.running_mean / bn.running_var.sqrt())
            / torch.special.ndtr(-bn.running_mean / bn.running_var.sqrt())}


def check_ofd_margin(fn) -> bool:
    """``fn(bn) -> (C,)``: OFD's margin m = E[x | x < 0] for x ~ N(β, γ²) of a BatchNorm (β = bias, γ = weight),
    m = β − |γ|·φ(β/|γ|)/Φ(−β/|γ|), and −3|γ| where Φ(−β/|γ|) ≤ 0.001 (Heo et al. 2019)."""
    bn = _margin_bn()
    out, problem = _call(fn, bn)
    problem = problem or _check_tensor(out, (len(_MARGIN_CASES),))
    if problem:
        return _report(False, problem)
    out, want = out.detach().float(), losses.ofd_margin(bn)
    regular = torch.special.ndtr(-bn.bias / bn.weight.abs()).detach() > 1e-3
    if torch.allclose(out, want, rtol=1e-4, atol=1e-5):
        return _report(True, "your margin matches kd_lab.losses.ofd_margin on 6 channels (a negative γ and the "
                             "−3|γ| fallback included)")
    if torch.allclose(out[regular], want[regular], rtol=1e-4, atol=1e-5):
        c = int((~regular).nonzero()[0])
        return _report(False, f"channel {c} (γ = {_MARGIN_CASES[c][0]}, β = {_MARGIN_CASES[c][1]}): x is almost never "
                              f"negative there (Φ(−β/|γ|) ≤ 0.001); OFD uses −3|γ| = {float(want[c]):.2f} instead, got "
                              f"{float(out[c]):.4g}")
    for hint, guess in _margin_guesses(bn).items():
        if torch.allclose(out[regular], guess.detach().float()[regular], rtol=1e-4, atol=1e-5):
            return _report(False, hint)
    c = int((~torch.isclose(out, want, rtol=1e-4, atol=1e-5)).nonzero()[0])
    return _report(False, f"channel {c} (γ = {_MARGIN_CASES[c][0]}, β = {_MARGIN_CASES[c][1]}): expected "
                          f"{float(want[c]):.4f}, got {float(out[c]):.4f}")


# (student s, target t', should the loss count here?) -- one of each case of OFD's partial L2
_MASK_CASES = ((0.5, 1.0, True), (2.0, 1.0, True), (-0.2, -0.5, True), (0.3, -0.5, True),
               (-1.0, -0.5, False), (-0.5, -0.5, False), (0.0, 0.0, False), (1.0, 1.0, True))


def _mask_hint(out: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> str:
    """Name the mistake behind a wrong partial-L2 mask, or point at the first wrong case."""
    guesses = [(~((s > t) | (t > 0)), "you returned where the loss is *skipped*: the mask is where it counts"),
               (t > 0, "you keep only t' > 0; keep also s > t': a student above a negative target (s = −0.2, "
                       "t' = −0.5) is pushed down to it"),
               (s > t, "you keep only s > t'; keep also t' > 0: a student below a positive target (s = 0.5, t' = 1) "
                       "must rise to it"),
               ((s > 0) | (t > 0), "compare the student with the target t', not with 0"),
               ((s >= t) | (t > 0), "use a strict s > t': where s = t' ≤ 0 nothing is left to learn"),
               ((s > t) & (t > 0), "combine the two conditions with *or*, not *and*")]
    for guess, hint in guesses:
        if torch.equal(out, guess):
            return hint
    i = int((out != ((s > t) | (t > 0))).flatten().nonzero()[0])
    si, ti = float(s.flatten()[i]), float(t.flatten()[i])
    return f"at s = {si:.2f}, t' = {ti:.2f} the loss should {'count' if (si > ti or ti > 0) else 'be skipped'}"


def _as_mask(out, shape) -> torch.Tensor | str:
    problem = _check_tensor(out, shape)
    if problem:
        return problem
    if out.dtype != torch.bool and not bool(((out == 0) | (out == 1)).all()):
        return "return a boolean mask (or 0/1 values), e.g. (s > t) | (t > 0)"
    return out.bool()


def check_partial_l2_mask(fn) -> bool:
    """``fn(student, target) -> mask``: where OFD's partial L2 counts, (s > t') or (t' > 0), for the student's
    connected feature s and the margin-clipped target t' of the same shape (Heo et al. 2019)."""
    s = torch.tensor([c[0] for c in _MASK_CASES]).view(1, 2, 2, 2)
    t = torch.tensor([c[1] for c in _MASK_CASES]).view(1, 2, 2, 2)
    g = torch.Generator().manual_seed(4)
    rand_t = torch.maximum(torch.randn(2, 3, 4, 4, generator=g), torch.tensor(-0.6))
    for s_case, t_case in ((s, t), (torch.randn(2, 3, 4, 4, generator=g), rand_t)):
        out, problem = _call(fn, s_case.clone(), t_case.clone())
        out = problem or _as_mask(out, s_case.shape)
        if isinstance(out, str):
            return _report(False, out)
        if not torch.equal(out, losses.ofd_mask(s_case, t_case)):
            return _report(False, _mask_hint(out, s_case, t_case))
    return _report(True, "your mask matches kd_lab.losses.ofd_mask on the 8 hand-made cases and a random batch")
