"""Measurements on trained models that the lessons plot: logits, soft targets per class, the gradient
of the KD loss against temperature, Hinton's bias correction for a class left out of the transfer set, and
the embeddings, relations and 2-D projections of relational distillation (Park et al. 2019).
"""
from __future__ import annotations

import copy
import time

import torch

from .data import ImageData
from .losses import dml_loss, kd_loss, rkd_distance_matrix
from .train import evaluate

__all__ = ["inference_speed", "predict_logits", "softmax_t", "entropy", "soft_targets_by_class", "kd_gradient_norms",
           "without_class", "shift_class_bias", "tune_class_bias", "embeddings", "relation_agreement", "pca_2d",
           "class_sorted_batch", "calibration_error", "peer_metrics"]


@torch.no_grad()
def predict_logits(model: torch.nn.Module, data: ImageData, batch_size: int = 1000) -> torch.Tensor:
    """Logits ``(N, K)`` of ``model`` on every image of ``data``, in order, float32 on the CPU."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = [model(x.to(device)).float().cpu() for x, _ in data.batches(batch_size, shuffle=False)]
    model.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def inference_speed(model: torch.nn.Module, x: torch.Tensor, repeats: int = 3) -> float:
    """Images per second of ``model(x)`` in eval mode (best of ``repeats`` after a warm-up pass)."""
    was_training = model.training
    model.eval()
    model(x)
    best = float("inf")
    for _ in range(repeats):
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        model(x)
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    model.train(was_training)
    return len(x) / best


def softmax_t(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(z / T) over the last dimension (Hinton et al. 2015, eq. 1)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return torch.softmax(logits.float() / temperature, dim=-1)


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of distributions over the last dimension."""
    return -(p * p.clamp_min(1e-12).log()).sum(-1)


def soft_targets_by_class(logits: torch.Tensor, labels: torch.Tensor, temperature: float,
                          num_classes: int) -> torch.Tensor:
    """(K, K): row c is the mean of softmax(z/T) over the images whose true class is c."""
    p = softmax_t(logits, temperature)                                  # (N, K)
    sums = torch.zeros(num_classes, p.shape[1]).index_add_(0, labels.long().cpu(), p.cpu())
    counts = torch.bincount(labels.long().cpu(), minlength=num_classes).clamp(min=1)
    return sums / counts[:, None]


def kd_gradient_norms(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperatures) -> dict:
    """Norm of d(loss)/d(student logits) at each T, for T²·KL (the KD loss) and for KL alone.

    Hinton et al. 2015, section 2: the soft-target gradients scale as 1/T², hence the T² factor.
    """
    norms = {"with T² (kd_loss)": [], "without T²": []}
    for t in temperatures:
        s = student_logits.detach().float().clone().requires_grad_(True)
        kd_loss(s, teacher_logits, t).backward()
        with_t2 = float(s.grad.norm())
        norms["with T² (kd_loss)"].append(with_t2)
        norms["without T²"].append(with_t2 / t ** 2)
    return norms


def without_class(labels: torch.Tensor, cls: int, indices: torch.Tensor | None = None) -> torch.Tensor:
    """The indices (of ``indices``, default all) whose label is not ``cls``: a transfer set without it."""
    labels = labels.cpu()
    idx = torch.arange(len(labels)) if indices is None else indices.cpu()
    return idx[labels[idx] != cls]


def shift_class_bias(model: torch.nn.Module, cls: int, shift: float) -> torch.nn.Module:
    """A copy of ``model`` whose classifier bias for ``cls`` is raised by ``shift``."""
    shifted = copy.deepcopy(model)
    with torch.no_grad():
        shifted.classifier.bias[cls] += shift
    return shifted


def tune_class_bias(model: torch.nn.Module, cls: int, val: ImageData, shifts) -> dict:
    """Hinton et al. 2015, section 3: after distilling on a transfer set without ``cls``, raise that class's
    bias. Picks the shift with the best accuracy on ``val`` (never the test set); returns the curve too."""
    curve = []
    for shift in shifts:
        ev = evaluate(shift_class_bias(model, cls, float(shift)), val)
        curve.append({"shift": float(shift), "accuracy": ev.accuracy, "class_accuracy": ev.per_class[cls]})
    best = max(curve, key=lambda r: r["accuracy"])
    return {"best_shift": best["shift"], "curve": curve}


# ------------------------------------------------------------------------------ relational distillation
@torch.no_grad()
def embeddings(model: torch.nn.Module, data: ImageData, batch_size: int = 500) -> torch.Tensor:
    """Pooled embeddings ``(N, D)`` of ``model`` on every image of ``data``, in order, float32 on the CPU.

    The embedding is what ``model(x, features=True).embedding`` returns: the globally pooled output of the
    last stage, the layer Park et al. (2019, "Relational Knowledge Distillation") distil on. Eval mode,
    no gradient; the model's mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = [model(x.to(device), features=True).embedding.float().cpu()          # (B, D)
           for x, _ in data.batches(batch_size, shuffle=False)]
    model.train(was_training)
    return torch.cat(out)                                                        # (N, D)


def relation_agreement(student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> float:
    """How alike the two batches' distance structures are: Pearson correlation between the off-diagonal
    entries of the normalised distance matrices (:func:`kd_lab.losses.rkd_distance_matrix`, RKD-D's
    relation, Park et al. 2019). 1.0 when the student's embedding is the teacher's up to scale, rotation
    and translation; near 0 for unrelated embeddings. Widths may differ; batch sizes must agree.
    """
    if student_emb.shape[0] != teacher_emb.shape[0]:
        raise ValueError(f"student_emb has {student_emb.shape[0]} rows but teacher_emb {teacher_emb.shape[0]}")
    d_s = rkd_distance_matrix(student_emb.detach())                             # (N, N)
    d_t = rkd_distance_matrix(teacher_emb.detach())                             # (N, N)
    off = ~torch.eye(len(d_s), dtype=torch.bool, device=d_s.device)
    pair = torch.stack([d_s[off], d_t[off].to(d_s.device)]).double()          # (2, N(N-1))
    return float(torch.corrcoef(pair)[0, 1])


def pca_2d(emb: torch.Tensor) -> torch.Tensor:
    """The first two principal components of ``emb`` (N, D): the centred data projected on the two
    directions of largest variance (SVD of the centred data), ``(N, 2)`` float32 on the CPU."""
    if emb.dim() != 2 or emb.shape[0] < 2 or emb.shape[1] < 2:
        raise ValueError(f"pca_2d needs (N, D) embeddings with N >= 2 and D >= 2, got shape {tuple(emb.shape)}")
    x = emb.detach().float().cpu()
    x = x - x.mean(dim=0, keepdim=True)                                          # (N, D) centred
    _, _, vh = torch.linalg.svd(x, full_matrices=False)                          # rows of vh: directions
    return x @ vh[:2].T                                                          # (N, 2)


def class_sorted_batch(labels: torch.Tensor, classes, size: int) -> torch.Tensor:
    """Indices of a batch of ``size`` images of the given classes (indices into the class list), grouped by
    class in the order given: the first images of each class, split evenly (earlier classes get the extra
    ones). What the relation plots use, so that class blocks show along the diagonal."""
    classes = [int(c) for c in classes]
    if not classes or size < 1:
        raise ValueError(f"need at least one class and size >= 1, got classes={classes}, size={size}")
    labels = labels.cpu()
    counts = [size // len(classes) + (i < size % len(classes)) for i in range(len(classes))]
    picked = [torch.nonzero(labels == c).flatten()[:n] for c, n in zip(classes, counts)]
    return torch.cat(picked)                                                     # (<= size,)


# ------------------------------------------------------------------------------------ mutual learning
def _accuracy(scores: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of rows of ``scores`` (N, C) whose argmax is ``y`` (N,)."""
    return float((scores.argmax(1) == y).float().mean())


def calibration_error(probs: torch.Tensor, y: torch.Tensor, bins: int = 15) -> float:
    """Expected calibration error (Guo, Pleiss, Sun, Weinberger 2017, "On Calibration of Modern Neural
    Networks", ICML, eq. 3) of predicted distributions ``probs`` (N, C) against labels ``y`` (N,): the images
    binned by confidence (the top probability) into ``bins`` equal-width bins of (0, 1], then
    Σ_bins (n_b / N)·|accuracy_b − mean confidence_b|. 0 = calibrated; an over-confident network scores high."""
    if probs.ndim != 2 or y.shape != probs.shape[:1] or len(y) == 0:
        raise ValueError(f"calibration_error needs probs (N, C) and y (N,) with N >= 1, got shapes "
                         f"{tuple(probs.shape)} and {tuple(y.shape)}")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}")
    confidence, predicted = probs.float().max(1)
    correct = (predicted == y.to(predicted.device)).float()
    which = (confidence * bins).ceil().clamp(1, bins).long() - 1                 # (N,) bin of each image
    n = torch.bincount(which, minlength=bins).float()
    gap = torch.bincount(which, weights=correct, minlength=bins) - torch.bincount(which, weights=confidence,
                                                                                   minlength=bins)
    return float(gap.abs().sum() / len(y)) if n.sum() else 0.0


@torch.no_grad()
def peer_metrics(models, data: ImageData) -> dict[str, float]:
    """How K networks do on ``data``, alone and together (Zhang et al. 2018, "Deep Mutual Learning"):
    ``acc_k`` for each, ``acc_ensemble`` (argmax of the mean of their softmax), and for every j >= 1
    ``agree_0_j`` (fraction of images where networks 0 and j predict the same class) and ``kl_0_j``
    (mean KL(p_j ‖ p_0) at T = 1); for each network and the ensemble, the mean predictive entropy in nats
    (``entropy_k``, ``entropy_ensemble``) and the expected calibration error (``ece_k``, ``ece_ensemble``,
    :func:`calibration_error`). Eval mode, no gradient; the models' modes are restored."""
    logits = [predict_logits(m, data) for m in models]                          # K x (N, C), CPU
    y = data.y.cpu()
    probs = {str(k): z.softmax(1) for k, z in enumerate(logits)}
    probs["ensemble"] = torch.stack(list(probs.values())).mean(0)                 # (N, C)
    out = {f"acc_{k}": _accuracy(p, y) for k, p in probs.items()}
    for j in range(1, len(logits)):
        out[f"agree_0_{j}"] = float((logits[0].argmax(1) == logits[j].argmax(1)).float().mean())
        out[f"kl_0_{j}"] = float(dml_loss(logits[0], logits[j]))
    for k, p in probs.items():
        out[f"entropy_{k}"] = float(entropy(p).mean())
        out[f"ece_{k}"] = calibration_error(p, y)
    return out
