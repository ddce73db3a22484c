"""Measurements on trained models that the lessons plot: logits, soft targets per class, the gradient
of the KD loss against temperature, and Hinton's bias correction for a class left out of the transfer set.
"""
from __future__ import annotations

import copy
import time

import torch

from .data import ImageData
from .losses import kd_loss
from .train import evaluate

__all__ = ["inference_speed", "predict_logits", "softmax_t", "entropy", "soft_targets_by_class", "kd_gradient_norms",
           "without_class", "shift_class_bias", "tune_class_bias"]


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
