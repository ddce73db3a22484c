"""Self-checks of lesson 03, mutual learning (``notebooks/03_dml.ipynb``, Deep Mutual Learning, Zhang et al.
2018): the K peers' losses with the peers detached, what changes without the detach, and the expected
calibration error the lesson measures the peers with.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import losses
from ..analysis import calibration_error
from ._common import _call, _multiple_choice, _report

__all__ = ["check_dml_loss", "check_detach", "DETACH_CHOICES", "check_calibration_error"]


def _dml_cases(seed: int = 2):
    """(K logits (B, C), targets (B,), T) for K = 2, 3, 4 and T = 1, 3."""
    g = torch.Generator().manual_seed(seed)
    for k, t in ((2, 1.0), (3, 3.0), (4, 1.0), (3, 1.0)):
        logits = [torch.randn(6, 10, generator=g) * 2 for _ in range(k)]
        yield logits, torch.randint(0, 10, (6,), generator=g), t


def _dml_parts(logits, y, t, i):
    """(CE of peer i, mean over j ≠ i of T²·KL(p_j ‖ p_i), same with the KL reversed, same without T²)."""
    others = [z for j, z in enumerate(logits) if j != i]
    kl = sum(losses.dml_loss(logits[i], z, t) for z in others) / len(others)
    reverse = sum(losses.dml_loss(z, logits[i], t) for z in others) / len(others)
    return F.cross_entropy(logits[i], y), kl, reverse


def _as_losses(out, k: int):
    """A list of K scalar tensors from a list/tuple of scalars or a (K,) tensor; or a problem (str)."""
    if out is None:
        return "your function returned None: did you forget `return`?"
    items = list(out.unbind()) if isinstance(out, torch.Tensor) and out.dim() == 1 else out
    if not isinstance(items, (list, tuple)) or len(items) != k:
        return f"expected a list of K = {k} losses (one per peer), got {type(out).__name__}"
    if not all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in items):
        return "each loss must be a scalar tensor (a mean over the batch)"
    return list(items)


def _dml_mistake(value, ce, kl, reverse, k: int, t: float) -> str | None:
    """Name the mistake behind a wrong loss of one peer, or None when the loss is right."""
    close = lambda a, b: torch.allclose(a.detach().float(), b, rtol=1e-4, atol=1e-5)  # noqa: E731
    if close(value, ce + kl):
        return None
    guesses = [(ce, "the KL to the peers is missing: add the mean over j ≠ k of T²·KL(p_j ‖ p_k)"),
               (kl, "the cross-entropy with the labels is missing: L_k = CE(z_k, y) + …"),
               (ce + (k - 1) * kl, "you summed the KL over the peers: divide by K − 1 (the mean over the others)"),
               (ce + (k - 1) / k * kl, "you averaged over all K peers: average over the K − 1 *other* peers"),
               (ce + reverse, "KL is taken in the wrong direction: KL(p_j ‖ p_k) = Σ p_j (log p_j − log p_k)"),
               (ce + kl / t ** 2, "the T² factor is missing")]
    for want, hint in guesses[:-1] + ([guesses[-1]] if t != 1 else []):
        if close(value, want):
            return hint
    return f"expected {float(ce + kl):.4f}, got {float(value):.4f} (K = {k}, T = {t:g})"


def _detach_problem(out, leaves, y, t) -> str | None:
    """Peer 0's loss must send its gradient to z_0 only (the peers detached), and the right one."""
    if not out[0].requires_grad:
        return "peer 0's loss has no gradient: compute it from z_0 itself (detach the peers only)"
    out[0].backward()
    for j, z in enumerate(leaves[1:], start=1):
        if z.grad is not None and z.grad.abs().max() > 0:
            return (f"peer 0's loss sent a gradient into peer {j}'s logits: detach the peers (z_j.detach()) "
                    f"so that each network learns only from its own loss")
    ref = [z.detach().clone().requires_grad_(True) for z in leaves]
    sum(_dml_parts(ref, y, t, 0)[:2]).backward()
    if leaves[0].grad is None or not torch.allclose(leaves[0].grad, ref[0].grad, rtol=1e-4, atol=1e-6):
        return "the gradient with respect to z_0 is wrong: detach the peers' logits, not z_k"
    return None


def check_dml_loss(fn) -> bool:
    """``fn(logits, targets, T) -> K losses``: ``logits`` a list of K peers' (B, C) logits, ``targets`` (B,);
    L_k = CE(z_k, y) + 1/(K−1)·Σ_{j≠k} T²·KL(softmax(z_j/T) ‖ softmax(z_k/T)), the peers z_j detached
    (Zhang et al. 2018, "Deep Mutual Learning")."""
    for logits, y, t in _dml_cases():
        leaves = [z.clone().requires_grad_(True) for z in logits]
        out, problem = _call(fn, leaves, y, t)
        out = _as_losses(out, len(logits)) if problem is None else problem
        if isinstance(out, str):
            return _report(False, out)
        for i, value in enumerate(out):
            hint = _dml_mistake(value, *_dml_parts(logits, y, t, i), len(logits), t)
            if hint:
                return _report(False, f"peer {i} of K = {len(logits)}: {hint}")
        problem = _detach_problem(out, leaves, y, t)
        if problem:
            return _report(False, problem)
    return _report(True, "your DML losses match for K = 2, 3, 4 at T = 1 and 3, and the peers are detached")


DETACH_CHOICES = {
    "a": "Nothing changes: the KL has no gradient with respect to the peer's logits.",
    "b": "Each peer is also pulled towards the others through their KL terms: the target moves towards the "
         "learner, and the networks can agree by meeting halfway instead of learning from each other's soft "
         "targets.",
    "c": "Training crashes: autograd cannot back-propagate into two networks at once.",
    "d": "The peers stop learning from the labels: the cross-entropy has no gradient any more.",
}
_DETACH_WHY = {
    "a": "KL(p_j ‖ p_k) depends on p_j too: its gradient with respect to z_j is zero only where p_j = p_k",
    "c": "autograd back-propagates into any number of networks; nothing crashes, the update is just different",
    "d": "the cross-entropy CE(z_k, y) does not involve the peers, so its gradient is unchanged",
}


def check_detach(answer: str) -> bool:
    """Multiple choice (:data:`DETACH_CHOICES`): what changes in DML if the peer's logits are not detached?"""
    return _multiple_choice(answer, DETACH_CHOICES, "b", _DETACH_WHY,
                            "(b): without detach, L_k also trains peer j towards p_k (for K = 2 both minimise the "
                            "symmetric KL together); DML treats each peer's prediction as a fixed target, like a "
                            "teacher's, and each network follows its own loss only")


def _ece_cases(seed: int = 3):
    """(probs (N, C), labels (N,), bins): confident, unsure and mixed predictions, 1 to 15 bins."""
    g = torch.Generator().manual_seed(seed)
    for n, c, scale, bins in ((200, 10, 3.0, 15), (50, 4, 1.0, 5), (300, 10, 6.0, 10), (20, 3, 2.0, 1)):
        probs = (scale * torch.randn(n, c, generator=g)).softmax(1)
        yield probs, torch.randint(0, c, (n,), generator=g), bins


def _binned_gaps(conf, correct, bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per non-empty confidence bin: accuracy − mean confidence, and the bin's share of the images."""
    which = (conf * bins).ceil().clamp(1, bins).long() - 1
    n = torch.bincount(which, minlength=bins).float()
    gap = (torch.bincount(which, weights=correct, minlength=bins) - torch.bincount(which, weights=conf,
                                                                                   minlength=bins)) / n.clamp(min=1)
    return gap[n > 0], (n / len(conf))[n > 0]


def _ece_variants(probs, y, bins) -> list[tuple[float, str]]:
    """What common slips give, with the hint that names each."""
    conf, pred = probs.max(1)
    correct = (pred == y).float()
    gap, share = _binned_gaps(conf, correct, bins)
    true_gap, true_share = _binned_gaps(probs[torch.arange(len(y)), y], correct, bins)
    return [(float(gap.abs().mean()), "you averaged the bins' gaps equally: weight each bin by its share of the "
                                      "images, n_b / N"),
            (float((gap * share).sum().abs()), "the gaps cancel: take |accuracy_b − confidence_b| in each bin before "
                                               "summing"),
            (float((true_gap.abs() * true_share).sum()), "confidence is the probability of the *predicted* class "
                                                         "(the top one), not of the true class"),
            (float((correct - conf).abs().mean()), "you compared each image's 0/1 correctness with its confidence: "
                                                   "compare the mean accuracy and the mean confidence *per bin*")]


def check_calibration_error(fn) -> bool:
    """``fn(probs, y, bins) -> float``: the expected calibration error (Guo et al. 2017) of predicted distributions
    ``probs`` (N, C) against labels ``y`` (N,), the images binned by confidence (their top probability) into
    ``bins`` equal-width bins of (0, 1]: Σ_b (n_b / N)·|accuracy_b − mean confidence_b|."""
    for probs, y, bins in _ece_cases():
        out, problem = _call(fn, probs.clone(), y.clone(), bins)
        if problem:
            return _report(False, problem)
        if out is None:
            return _report(False, "your function returned None: did you forget `return`?")
        number = isinstance(out, (int, float)) and not isinstance(out, bool)
        if not (number or (isinstance(out, torch.Tensor) and out.numel() == 1)):
            return _report(False, f"expected a number (a float or a scalar tensor), got {type(out).__name__}")
        value = float(out)
        want = calibration_error(probs, y, bins)
        if abs(value - want) <= 1e-5:
            continue
        hint = next((h for v, h in _ece_variants(probs, y, bins) if abs(value - v) <= 1e-5), None)
        return _report(False, hint or f"expected {want:.4f}, got {value:.4f} ({len(y)} images, {probs.shape[1]} "
                                      f"classes, {bins} bins)")
    return _report(True, "your calibration error matches kd_lab.analysis.calibration_error on four sets of "
                         "predictions, with 1 to 15 bins")
