"""Self-checks of lesson 04, feature-based distillation (``notebooks/04_feature_overhaul.ipynb``, OFD, Heo et
al. 2019): one channel's margin computed by hand from its BatchNorm's parameters, where the partial L2 counts
(decided by hand for four cases), and a prediction of which of OverHaul's parts matters most, checked against the
committed ablation sweep.
"""
from __future__ import annotations

import math

import torch

from .. import losses
from ._common import _call, _check_tensor, _report

__all__ = ["MASK_QUESTIONS", "check_margin_value", "check_mask_by_hand", "check_worst_change",
           "check_ofd_margin", "check_partial_l2_mask"]   # the last two: the first edition of lesson 04


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


def check_margin_value(value, bn: torch.nn.BatchNorm2d, channel: int) -> bool:
    """``value``: OFD's margin of channel ``channel`` of ``bn``, computed by hand from its β (``bn.bias``) and γ
    (``bn.weight``): m = β − |γ|·φ(β/|γ|)/Φ(−β/|γ|) (Heo et al. 2019). Right within 0.01 (a hand calculation);
    a wrong value that one of the usual slips gives is named."""
    if value is None:
        return _report(False, "compute the margin first: set the variable to a number, then run this cell again")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return _report(False, f"the margin must be a number, got {value!r}")
    if not 0 <= channel < bn.num_features:
        raise ValueError(f"channel must be in [0, {bn.num_features - 1}], got {channel}")
    want = float(losses.ofd_margin(bn)[channel])
    if abs(value - want) <= 0.01:
        return _report(True, f"m = {want:.4f} for channel {channel}; you computed {value:.4f}")
    if float(torch.special.ndtr(-bn.bias[channel] / bn.weight[channel].abs()).detach()) <= 1e-3:
        return _report(False, f"{value:.4f}: channel {channel} is almost never negative (Φ(−β/|γ|) ≤ 0.001), so OFD "
                              f"uses −3|γ| = {want:.4f} there")
    for hint, guess in _margin_guesses(bn).items():
        if abs(value - float(guess[channel])) <= 0.01:
            return _report(False, f"{value:.4f}: {hint}")
    side = "high" if value > want else "low"
    return _report(False, f"{value:.4f} is too {side}. Steps: z = β/|γ|, φ(z) = exp(−z²/2)/√(2π), "
                          "Φ(−z) = (1 + erf(−z/√2))/2, then m = β − |γ|·φ(z)/Φ(−z)")


# (student s, target t') for the mask by hand: one of each case of OFD's partial L2
MASK_QUESTIONS = ((0.5, 1.0), (-0.2, -0.5), (-1.0, -0.5), (-0.5, -0.5))
_MASK_WHY = {
    (0.5, 1.0): "the target is positive: after the ReLU the teacher's value survives, so the student must reach it",
    (-0.2, -0.5): "the student is above a negative target: pushed down to it, so that both are 0 after the ReLU "
                  "*and* the student's pre-activation follows the teacher's",
    (-1.0, -0.5): "both are negative and the student is already below the target: both are 0 after the ReLU, "
                  "nothing to learn",
    (-0.5, -0.5): "the student equals a non-positive target: nothing to learn (the mask is a strict s > t')",
}


def check_mask_by_hand(answers) -> bool:
    """``answers``: for each ``(s, t')`` of :data:`MASK_QUESTIONS`, True where OFD's partial L2 counts
    ((s > t') or (t' > 0), :func:`kd_lab.losses.ofd_mask`) and False where it is skipped; each wrong one is
    explained."""
    if answers is None:
        return _report(False, f"decide first: set the variable to {len(MASK_QUESTIONS)} True/False values, one "
                              "per (s, t') pair, then run this cell again")
    answers = list(answers) if isinstance(answers, (list, tuple)) else None
    if answers is None or len(answers) != len(MASK_QUESTIONS) or not all(isinstance(a, bool) for a in answers):
        return _report(False, f"give {len(MASK_QUESTIONS)} True/False values in a list or tuple, one per pair "
                              f"{list(MASK_QUESTIONS)}")
    s, t = (torch.tensor([v]) for v in zip(*MASK_QUESTIONS))                     # (1, 4): a batch of one
    truth = losses.ofd_mask(s, t)[0].tolist()
    wrong = [(pair, want) for pair, want, got in zip(MASK_QUESTIONS, truth, answers) if want != got]
    if not wrong:
        return _report(True, "all " + str(len(MASK_QUESTIONS)) + " right: the loss counts where s > t' or t' > 0")
    lines = [f"(s, t') = {pair}: the loss {'counts' if want else 'is skipped'}: {_MASK_WHY[pair]}"
             for pair, want in wrong]
    return _report(False, f"{len(wrong)} of {len(MASK_QUESTIONS)} wrong:\n  " + "\n  ".join(lines))


def check_worst_change(answer, effects: dict) -> bool:
    """``answer``: the label of the change to OFD that a student predicts lowers the accuracy most; ``effects``:
    ``{label: record}`` of the ablation's paired effects over full OFD (:meth:`kd_lab.reference.SweepResults.paired`
    or ``.record``, each with ``diff_mean``, ``ci_low``, ``ci_high``, ``pairs``). Right for the lowest mean, and
    for a change whose mean lies inside the lowest one's 95 % interval (those cannot be told apart on these
    seeds); the ranking is printed either way."""
    if answer is None:
        return _report(False, "predict first: set the variable to one of " + ", ".join(map(repr, effects)))
    if answer not in effects:
        return _report(False, f"answer={answer!r} is not one of the changes measured: {list(effects)}")
    measured = {k: r for k, r in effects.items() if r.get("pairs")}
    if answer not in measured:
        return _report(False, f"{answer!r} is not in the results file yet: run the sweep, then check again")
    ranked = sorted(measured.items(), key=lambda kv: kv[1]["diff_mean"])
    worst, rec = ranked[0]

    def line(label, r):
        ci = "" if math.isnan(r["ci_low"]) else f" (95 % CI {r['ci_low']:+.2f} … {r['ci_high']:+.2f})"
        return f"{label}: {r['diff_mean']:+.2f} points{ci}"

    print("measured, from the most harmful:\n  " + "\n  ".join(line(k, r) for k, r in ranked))
    if answer == worst:
        return _report(True, f"{answer!r} lowered the accuracy most, {line(answer, rec)}")
    mine = measured[answer]
    if not math.isnan(rec["ci_low"]) and rec["ci_low"] <= mine["diff_mean"] <= rec["ci_high"]:
        return _report(True, f"{answer!r} is not the lowest mean ({worst!r} is), but its mean lies inside the "
                             f"interval of {worst!r}: on {rec['pairs']} seeds the two cannot be told apart")
    return _report(False, f"{answer!r} measured {line(answer, mine)}; {worst!r} lowered it most, "
                          f"{line(worst, rec)}")


# ---------------------------- the first edition's exercises (lesson 04 until its second edition lands)
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
