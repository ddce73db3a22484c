"""Measurements for feature distillation (lesson 04): stage taps on real images, the empirical negative
mean of each channel, distances between feature maps after the ReLU, and one image's partial-L2 maps.

Heo, Kim, Yun, Park, Kwak, Choi (2019), "A Comprehensive Overhaul of Feature Distillation" (ICCV) distil
the teacher's *pre-ReLU* stage outputs; ``model(x, features=True).taps`` are those outputs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import losses
from .data import ImageData

__all__ = ["stage_taps", "negative_mean", "relative_distance", "partial_l2_maps", "peer_feature_distance"]


@torch.no_grad()
def stage_taps(model: torch.nn.Module, data: ImageData, batch_size: int = 256) -> list[torch.Tensor]:
    """The pre-ReLU tap of every stage of ``model`` on every image of ``data``, in order: a list of
    ``(N, C_i, H_i, W_i)`` float32 CPU tensors. Eval mode, no gradient; the model's mode is restored."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    chunks = [[t.float().cpu() for t in model(x.to(device), features=True).taps]
              for x, _ in data.batches(batch_size, shuffle=False)]
    model.train(was_training)
    return [torch.cat(stage) for stage in zip(*chunks)]


def negative_mean(taps: torch.Tensor) -> torch.Tensor:
    """Empirical E[x | x < 0] of each channel of ``taps`` (N, C, H, W) or (N, C): the mean of its negative
    values over images and positions, ``(C,)`` float32; NaN for a channel without a negative value. What
    OFD's margin (:func:`kd_lab.losses.ofd_margin`) estimates from the BatchNorm's parameters."""
    if taps.dim() not in (2, 4) or taps.shape[0] == 0:
        raise ValueError(f"taps must be (N, C, H, W) or (N, C) with N > 0, got shape {tuple(taps.shape)}")
    x = taps.detach().float().transpose(0, 1).reshape(taps.shape[1], -1)      # (C, N·H·W)
    negative = x < 0
    total = torch.where(negative, x, 0.0).sum(dim=1)                          # (C,)
    count = negative.sum(dim=1)                                               # (C,)
    return torch.where(count > 0, total / count.clamp(min=1), torch.nan)


def relative_distance(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> float:
    """‖ReLU(s) − ReLU(t)‖² / ‖ReLU(t)‖² over the whole batch: how far the feature the next layer sees is
    from the teacher's, relative to its size (0 = identical after the ReLU; 1 = as far as a zero map)."""
    if student_feat.shape != teacher_feat.shape:
        raise ValueError(f"student_feat shape {tuple(student_feat.shape)} does not match teacher_feat shape "
                         f"{tuple(teacher_feat.shape)}")
    s, t = F.relu(student_feat.detach().float()), F.relu(teacher_feat.detach().float())
    return float((s - t).pow(2).sum() / t.pow(2).sum().clamp(min=1e-12))


def partial_l2_maps(student_map: torch.Tensor, teacher_map: torch.Tensor, margin: float) -> dict[str, torch.Tensor]:
    """OFD's partial L2 on one channel of one image (Heo et al. 2019): the ``(H, W)`` maps of the teacher t,
    the student after its connector s, the target t' = max(t, m), the mask (s > t') or (t' > 0), and the
    masked squared error, the loss's contribution at each position. Uses :mod:`kd_lab.losses`."""
    if student_map.dim() != 2 or student_map.shape != teacher_map.shape:
        raise ValueError(f"student_map and teacher_map must be (H, W) maps of one shape, got "
                         f"{tuple(student_map.shape)} and {tuple(teacher_map.shape)}")
    s = student_map.detach().float().cpu()[None, None]                          # (1, 1, H, W)
    t = teacher_map.detach().float().cpu()[None, None]
    target = losses.ofd_target(t, torch.tensor([float(margin)]))
    mask = losses.ofd_mask(s, target)
    error = (s - target).pow(2) * mask
    return {"teacher": t[0, 0], "student": s[0, 0], "target": target[0, 0], "mask": mask[0, 0],
            "error": error[0, 0]}


@torch.no_grad()
def peer_feature_distance(models, data: ImageData, stages=None) -> dict[str, float]:
    """``feat_dist_i``: :func:`relative_distance` of network 0's stage-i tap to network 1's on ``data``, for
    each stage i in ``stages`` (default all); how close two DML peers' features are (Du et al. 2021, U-DML)."""
    first, second = stage_taps(models[0], data), stage_taps(models[1], data)
    picked = range(len(first)) if stages is None else stages
    return {f"feat_dist_{i}": relative_distance(first[i], second[i]) for i in picked}
