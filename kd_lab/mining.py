"""Mining unlabeled images with a teacher, as SSLD does (Cui et al. 2021, PaddleClas SSLD).

SSLD trains a student on the teacher's outputs over labeled images plus unlabeled images the teacher picks:
the teacher predicts every image of the pool, and for each class the ``k`` images it predicts as that class
with the highest confidence are kept, so that the mined set is class-balanced. Before mining, pool images
that duplicate an evaluation image are removed (SSLD removed ImageNet-22k images that duplicate the
ImageNet validation set); here exact duplicates, by the SHA-1 of each image's bytes.

* :func:`duplicates` — which pool images equal a reference image (the test split) or an earlier pool image;
* :func:`teacher_probabilities` — the teacher's softmax over a pool, in batches, eval mode, no gradient;
* :func:`top_k_per_class` — the mining rule on those probabilities, with seeded tie-breaking;
* :func:`top_k_global` and :func:`random_k` — the two controls a selection rule is measured against at the same
  pool size: the most confident images regardless of class, and images drawn at random;
* :func:`mine` — one of the rules (:data:`RULES`), on a pool of images; :func:`label_precision` — how often the
  kept teacher labels are right, from labels the mining never saw; :func:`class_balance` — how even the kept
  classes are.

The pool's labels are never read by any of these functions except :func:`label_precision`.
"""
from __future__ import annotations

import hashlib
import numbers
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Mined", "RULES", "image_hashes", "duplicates", "teacher_probabilities", "top_k_per_class", "top_k_global",
           "random_k", "mine", "label_precision", "class_balance"]


@dataclass
class Mined:
    """What :func:`top_k_per_class` kept from a pool of N images (indices are into that pool)."""

    indices: torch.Tensor       # (M,) kept pool indices, class by class, most confident first
    labels: torch.Tensor        # (M,) the teacher's label of each kept image
    predicted: torch.Tensor     # (N,) the teacher's label of every pool image
    confidence: torch.Tensor    # (N,) the teacher's probability of that label
    available: torch.Tensor     # (K,) pool images predicted as each class
    kept: torch.Tensor          # (K,) images kept per class: min(k, available)
    k: int
    seed: int
    rule: str = "per_class"     # the selection rule (:data:`RULES`); k counts per class only for "per_class"

    @property
    def kept_mask(self) -> torch.Tensor:
        """(N,) True for the kept pool images."""
        mask = torch.zeros(len(self.predicted), dtype=torch.bool)
        mask[self.indices] = True
        return mask

    @property
    def short_classes(self) -> list[int]:
        """Classes with fewer than ``k`` candidates in the pool (all of them were kept); per-class mining only."""
        if self.rule != "per_class":
            return []
        return [c for c, n in enumerate(self.available.tolist()) if n < self.k]


def image_hashes(images: torch.Tensor) -> list[str]:
    """SHA-1 of each image's bytes, ``images`` (N, ...) uint8: equal hashes mean identical images."""
    if images.dtype != torch.uint8:
        raise ValueError(f"image_hashes expects the raw uint8 images, got dtype {images.dtype}")
    flat = images.detach().cpu().contiguous().flatten(1).numpy()                    # (N, bytes per image)
    return [hashlib.sha1(row.tobytes()).hexdigest() for row in flat]


def duplicates(pool: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two (N,) masks over ``pool`` (uint8 images): equal to some ``reference`` image (e.g. the test split),
    and equal to an earlier pool image (a repeat; the first copy is not marked)."""
    ref = set(image_hashes(reference))
    seen: set[str] = set()
    in_reference, repeated = torch.zeros(len(pool), dtype=torch.bool), torch.zeros(len(pool), dtype=torch.bool)
    for i, h in enumerate(image_hashes(pool)):
        in_reference[i] = h in ref
        repeated[i] = h in seen
        seen.add(h)
    return in_reference, repeated


_PROBS_CACHE: OrderedDict = OrderedDict()     # (teacher weights, images) hashes -> probabilities; 8 entries


def _fingerprint(teacher: nn.Module, images: torch.Tensor) -> tuple[str, str]:
    h = hashlib.sha1()
    for v in teacher.state_dict().values():
        h.update(v.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest(), hashlib.sha1(images.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


@torch.no_grad()
def teacher_probabilities(teacher: nn.Module, data, batch_size: int = 1000) -> torch.Tensor:
    """softmax(teacher(x)) of every image of ``data`` (:class:`kd_lab.data.ImageData`), (N, K) float32 on the
    CPU, in batches, in eval mode and without gradient. Cached per teacher weights and images."""
    if not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    key = _fingerprint(teacher, data.x)
    if key in _PROBS_CACHE:
        _PROBS_CACHE.move_to_end(key)
        return _PROBS_CACHE[key].clone()
    was_training, device = teacher.training, next(teacher.parameters()).device
    teacher.eval()
    parts = [torch.softmax(teacher(data.normalize(data.x[i:i + batch_size].to(device))).float(), dim=1).cpu()
             for i in range(0, len(data), batch_size)]                                  # (B, K) each
    teacher.train(was_training)
    probs = torch.cat(parts) if parts else torch.empty(0, data.num_classes)
    _PROBS_CACHE[key] = probs
    while len(_PROBS_CACHE) > 8:
        _PROBS_CACHE.popitem(last=False)
    return probs.clone()


def _check_k(k, what: str = "k (images kept per class)") -> None:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k <= 0:
        raise ValueError(f"{what} must be a positive integer, got {k!r}")


def _check_mining_args(probs: torch.Tensor, k, seed, what: str = "k (images kept per class)") -> None:
    _check_k(k, what)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if not isinstance(probs, torch.Tensor) or probs.dim() != 2 or probs.shape[1] == 0:
        raise ValueError(f"probs must be a (N, K) tensor of class probabilities, got "
                         f"{tuple(probs.shape) if isinstance(probs, torch.Tensor) else type(probs).__name__}")


def top_k_per_class(probs: torch.Tensor, k: int, seed: int = 0) -> Mined:
    """SSLD's mining rule on the teacher's probabilities ``probs`` (N, K): every image goes to the class the
    teacher predicts; in each class the ``k`` images with the highest probability are kept (all of them
    where the class has fewer). Equal confidences are ordered by a permutation seeded with ``seed``."""
    _check_mining_args(probs, k, seed)
    probs = probs.detach().float().cpu()
    confidence, predicted, ranked = _ranked(probs, seed)                # (N,), (N,), most confident first
    chosen = [ranked[predicted[ranked] == c][:k] for c in range(probs.shape[1])]
    return _kept_in(probs, torch.cat(chosen), predicted, confidence, k, seed, "per_class")


def _ranked(probs: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(confidence (N,), predicted (N,), pool indices most confident first, equal confidences in a seeded order)."""
    confidence, predicted = probs.max(dim=1)
    order = torch.randperm(len(probs), generator=torch.Generator().manual_seed(int(seed)))
    return confidence, predicted, order[torch.sort(confidence[order], descending=True, stable=True).indices]


def top_k_global(probs: torch.Tensor, n: int, seed: int = 0) -> Mined:
    """The ``n`` images of the whole pool the teacher is most confident about, whatever class it predicts (a
    control for :func:`top_k_per_class` at the same size: confidence without the class balance). Equal
    confidences are ordered by a permutation seeded with ``seed``."""
    _check_mining_args(probs, n, seed, "n (images kept)")
    probs = probs.detach().float().cpu()
    confidence, predicted, ranked = _ranked(probs, seed)
    return _kept_in(probs, ranked[:n], predicted, confidence, n, seed, "global")


def random_k(probs: torch.Tensor, n: int, seed: int = 0) -> Mined:
    """``n`` images of the pool drawn uniformly at random with a generator seeded with ``seed`` (the control for
    any confidence rule at the same size); they carry the teacher's labels, but its confidence chooses nothing."""
    _check_mining_args(probs, n, seed, "n (images kept)")
    probs = probs.detach().float().cpu()
    confidence, predicted = probs.max(dim=1)
    drawn = torch.randperm(len(probs), generator=torch.Generator().manual_seed(int(seed)))[:n]
    return _kept_in(probs, drawn, predicted, confidence, n, seed, "random")


def _kept_in(probs, indices, predicted, confidence, n, seed, rule) -> Mined:
    classes = probs.shape[1]
    return Mined(indices, predicted[indices], predicted, confidence, torch.bincount(predicted, minlength=classes),
                 torch.bincount(predicted[indices], minlength=classes), int(n), int(seed), rule)


RULES = {"per_class": "the top k per class the teacher predicts (SSLD's rule)",
         "global": "the k × classes most confident images, whatever their class",
         "random": "k × classes images at random"}


def mine(teacher: nn.Module, pool, k: int, seed: int = 0, batch_size: int = 1000, rule: str = "per_class") -> Mined:
    """Predict every image of ``pool`` (:class:`kd_lab.data.ImageData`) with ``teacher`` and keep images by
    ``rule``: ``"per_class"`` the top ``k`` per predicted class (:func:`top_k_per_class`), ``"global"`` the
    ``k × classes`` most confident (:func:`top_k_global`), ``"random"`` ``k × classes`` at random
    (:func:`random_k`) — the same size for every rule where no class runs short. ``pool.y`` is not read."""
    _check_k(k)
    if rule not in RULES:
        raise ValueError(f"rule must be one of {list(RULES)}, got {rule!r}")
    probs = teacher_probabilities(teacher, pool, batch_size)
    if rule == "per_class":
        return top_k_per_class(probs, k, seed)
    return (top_k_global if rule == "global" else random_k)(probs, k * probs.shape[1], seed)


def label_precision(mined: Mined, true_labels: torch.Tensor) -> dict:
    """How often the teacher's label of a kept image is its true label: ``overall`` and ``per_class`` fractions
    (NaN for a class with nothing kept), ``right_per_class`` counts, ``right`` and ``kept`` totals.
    ``true_labels`` (N,) are the pool's hidden labels."""
    true_labels = torch.as_tensor(true_labels).cpu()
    if true_labels.shape != mined.predicted.shape:
        raise ValueError(f"true_labels must have one label per pool image, shape {tuple(mined.predicted.shape)}, "
                         f"got {tuple(true_labels.shape)}")
    right = (true_labels[mined.indices] == mined.labels).float()                       # (M,)
    k = len(mined.available)
    hits = torch.bincount(mined.labels, weights=right, minlength=k)
    counts = torch.bincount(mined.labels, minlength=k).float()
    per_class = torch.where(counts > 0, hits / counts.clamp(min=1), torch.nan)
    overall = float(right.mean()) if len(right) else float("nan")
    return {"overall": overall, "per_class": per_class.tolist(), "right_per_class": hits.long().tolist(),
            "right": int(right.sum()), "kept": len(right)}


def class_balance(counts: torch.Tensor) -> float:
    """How even a set of labels is, from its per-class ``counts`` (K,) (e.g. :attr:`Mined.kept`, the kept images
    per teacher label): the smallest class's count over the mean count (1: every class equally often; 0: a class
    missing). NaN when the counts are all 0 (nothing kept)."""
    counts = torch.as_tensor(counts).float()
    return float(counts.min() / counts.mean())
