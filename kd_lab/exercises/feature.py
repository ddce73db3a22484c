"""Self-checks of lesson 04, feature-based distillation (``notebooks/04_feature_overhaul.ipynb``, OFD, Heo et
al. 2019): one channel's margin computed by hand from its BatchNorm's parameters, where the partial L2 counts
(decided by hand for four cases), and a prediction of which of OverHaul's parts matters most, checked against the
committed ablation sweep.
"""
from __future__ import annotations

import math

import torch

from .. import losses
from ._common import _report

__all__ = ["MASK_QUESTIONS", "check_margin_value", "check_mask_by_hand", "check_worst_change"]


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
