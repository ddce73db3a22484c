"""Self-checks of lesson 02, label-free distillation (``notebooks/02_ssld.ipynb``, SSLD, Cui et al. 2021):
mining the top k images per predicted class, and why SSLD can drop the ground-truth term.
"""
from __future__ import annotations

import torch

from ..mining import top_k_per_class
from ._common import _call, _multiple_choice, _report

__all__ = ["check_mining", "check_gt_term", "GT_TERM_CHOICES"]


def _mining_cases(seed: int = 4):
    """(probs (N, K), k): every class with enough candidates; one class short of k; k above every class."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(80, 4, generator=g) * 3                           # (80, 4), no ties
    short = logits.clone()
    short[:, 3] -= 20
    short[:2, 3] += 40                                                     # class 3: 2 candidates only
    return [(torch.softmax(logits, 1), 5), (torch.softmax(short, 1), 6), (torch.softmax(logits, 1), 50)]


def _as_index_set(out, n: int):
    """The returned indices as a set of ints, or a problem (str)."""
    if out is None:
        return "your function returned None: did you forget `return`?"
    idx = out if isinstance(out, torch.Tensor) else torch.as_tensor(out)
    if idx.dim() != 1 or idx.dtype.is_floating_point or idx.dtype == torch.bool:
        return f"return a 1-D tensor (or list) of integer indices, got {tuple(idx.shape)} of {idx.dtype}"
    if len(idx) and (idx.min() < 0 or idx.max() >= n):
        return f"indices must lie in 0..{n - 1}"
    if len(set(idx.tolist())) != len(idx):
        return "an image appears twice in your indices: each image belongs to one class (its argmax)"
    return set(idx.tolist())


def _mining_mistakes(probs, k: int) -> list[tuple[set, str]]:
    """The index sets of three wrong mining rules, each with what is wrong."""
    conf, pred = probs.max(1)
    classes = range(probs.shape[1])
    members = [torch.nonzero(pred == c).flatten() for c in classes]
    overall = set(conf.argsort(descending=True)[: k * probs.shape[1]].tolist())
    by_column = {int(i) for c in classes for i in probs[:, c].argsort(descending=True)[:k]}
    lowest = {int(i) for m in members for i in m[conf[m].argsort()[:k]]}
    return [(overall, "you kept the most confident images overall: take the top k of *each* class"),
            (by_column, "you ranked every image by p[:, c]: rank only the images the teacher predicts as c (its "
                        "argmax), by their confidence"),
            (lowest, "you kept the least confident images: sort by confidence in descending order")]


def _mining_hint(got: set, probs, k: int) -> str:
    """Why ``got`` is not the top ``k`` per predicted class of ``probs``."""
    for guess, hint in _mining_mistakes(probs, k):
        if got == guess:
            return hint
    pred = probs.argmax(1)
    per_class = torch.bincount(pred[sorted(got)], minlength=probs.shape[1])
    if (per_class > k).any():
        return f"class {int((per_class > k).nonzero()[0])} has {int(per_class.max())} images: keep at most k = {k}"
    available = torch.bincount(pred, minlength=probs.shape[1])
    short = [c for c in range(probs.shape[1]) if available[c] < k and per_class[c] < available[c]]
    if short:
        return f"class {short[0]} has fewer than k = {k} candidates: keep all of them"
    return "some kept images differ from the k most confident of their predicted class"


def check_mining(fn) -> bool:
    """``fn(probs (N, K), k) -> indices``: SSLD's mining (Cui et al. 2021) — each image goes to the class the
    teacher predicts (argmax), and each class keeps its ``k`` most confident images (all where it has fewer);
    checked against :func:`kd_lab.mining.top_k_per_class` as sets."""
    for probs, k in _mining_cases():
        out, problem = _call(fn, probs.clone(), k)
        got = _as_index_set(out, len(probs)) if problem is None else problem
        if isinstance(got, str):
            return _report(False, got)
        want = set(top_k_per_class(probs, k).indices.tolist())
        if got != want:
            return _report(False, f"N = {len(probs)}, k = {k}: {_mining_hint(got, probs, k)}")
    return _report(True, "your mining keeps the top k per predicted class (all of a class with fewer), for k = 5, "
                         "6 and 50")


GT_TERM_CHOICES = {
    "a": "The labels of the labeled images are noisy, so training on them hurts the student.",
    "b": "On the labeled images the teacher's output already points at the label on most images (it was trained "
         "on them) and says more than the label: how close the other classes are. A cross-entropy term would "
         "mostly repeat the soft target; without it, one label-free loss treats labeled and unlabeled images alike.",
    "c": "Cross-entropy and a KL divergence cannot be added: their gradients have different units.",
    "d": "Without the labels, the student can become more accurate than the teacher.",
}
_GT_TERM_WHY = {
    "a": "the labels of Fashion-MNIST (and ImageNet) are mostly right; SSLD's argument is not that they hurt",
    "c": "KD adds them all the time (lesson 01: (1 − α)·CE + α·T²·KL); both are losses on the same logits",
    "d": "the student learns the teacher's outputs, it is not given a way past the teacher by dropping the labels",
}


def check_gt_term(answer: str) -> bool:
    """Multiple choice (:data:`GT_TERM_CHOICES`): why can SSLD drop the ground-truth term?"""
    return _multiple_choice(answer, GT_TERM_CHOICES, "b", _GT_TERM_WHY,
                            "(b): on most labeled images the teacher's soft target already points at the label (see "
                            "the teacher's accuracy on L in the notebook) and adds the similarities between classes, "
                            "so one loss, the same on labeled and unlabeled images, suffices; the unlabeled images "
                            "are where the new information comes from")
