"""Knowledge-distillation losses: the answer key of the course.

A *teacher* network guides a *student* network by an extra loss term. The
losses in this module come in three families:

* **response based** -- compare the output distributions (logits):
  :func:`kd_loss`, :func:`dkd_loss` (+ :func:`dkd_parts`), :func:`dml_loss`
  (+ :func:`dml_symmetric_loss`), :func:`ssld_loss`;
* **feature based** -- compare intermediate feature maps:
  :func:`fitnet_loss`, :func:`ofd_loss` (+ :func:`ofd_margin`,
  :func:`ofd_target`, :func:`ofd_mask`);
* **relation based** -- compare the *relations* between the samples of a
  batch, so student and teacher may have different widths:
  :func:`rkd_distance_loss` (+ :func:`rkd_distance_matrix`),
  :func:`rkd_angle_loss` (+ :func:`rkd_angle_tensor`).

Conventions shared by every function:

* pure functions: no module state, no config objects;
* every loss is a float32 scalar averaged over the batch dimension ``B``;
* inputs may be float32 or bf16; the computation is done in float32
  (inputs are upcast with ``.float()``);
* the teacher never receives a gradient: teacher inputs are detached inside
  the functions;
* bad inputs (mismatched shapes, wrong number of dims, empty batch,
  non-positive temperature, ...) raise a ``ValueError`` whose message names
  the offending value and what is allowed;
* no silent NaN: a temperature must be finite and at most
  :data:`MAX_TEMPERATURE` (the loss is scaled by T², which must stay a
  float32 number), and while :data:`CHECK_FINITE` is True (the default)
  every loss checks that its inputs hold no NaN or ±inf and raises a
  ``ValueError`` naming the input otherwise (a diverged network, a bad
  weight or learning rate). That check costs one pass over the inputs and,
  on a GPU, one host-device synchronisation per call (all inputs at once);
  ``kd_lab.losses.CHECK_FINITE = False`` turns it off, e.g. to time a GPU
  loop. The building blocks :func:`ofd_target` and :func:`ofd_mask` do not
  check (:func:`ofd_loss`, which calls them, does).

Shapes: ``B`` batch size, ``C`` classes or channels, ``H, W`` spatial size,
``D`` embedding width.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "kd_loss",
    "dkd_parts",
    "dkd_loss",
    "dml_loss",
    "dml_symmetric_loss",
    "ssld_loss",
    "fitnet_loss",
    "ofd_margin",
    "ofd_target",
    "ofd_mask",
    "ofd_loss",
    "rkd_distance_matrix",
    "rkd_distance_loss",
    "rkd_angle_tensor",
    "rkd_angle_loss",
]

_EPS = 1e-12  # guards sqrt / division in the relation losses

MAX_TEMPERATURE = 1000.0
"""The largest temperature a loss accepts. The response losses are scaled by T²: far above the
temperatures of the papers (1 to 20) the KL term vanishes while T² grows, so the product is mostly
rounding error, and from T ≈ 1.8e19 on T² overflows float32 and the loss is NaN."""

CHECK_FINITE = True
"""Whether every loss checks that its input tensors are finite (see the module docstring)."""
_INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


# --------------------------------------------------------------------------
# Input validation (shared private helpers)
# --------------------------------------------------------------------------
def _check_tensor(name: str, x: Tensor, ndim) -> None:
    """Check that ``x`` is a floating tensor with an allowed number of dims
    (``ndim``: an int or a tuple of ints) and a non-empty batch."""
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if not torch.is_tensor(x) or not x.is_floating_point():
        kind = x.dtype if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{name} must be a floating-point tensor (float32 or bf16), got {kind}")
    if x.dim() not in allowed:
        dims = " or ".join(str(n) for n in allowed)
        raise ValueError(
            f"{name} must have {dims} dims, got {x.dim()} dims (shape {tuple(x.shape)})"
        )
    if x.shape[0] == 0:
        raise ValueError(f"empty batch: {name} has 0 rows")


def _check_pair(name_a: str, a: Tensor, name_b: str, b: Tensor, ndim) -> None:
    """Check both tensors with :func:`_check_tensor`, then that shapes match."""
    _check_tensor(name_a, a, ndim)
    _check_tensor(name_b, b, ndim)
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} shape {tuple(a.shape)} does not match {name_b} shape {tuple(b.shape)}"
        )


def _check_temperature(temperature: float) -> None:
    if isinstance(temperature, bool):
        raise ValueError(f"temperature must be a number > 0, got {temperature!r} (a bool is not a number)")
    if not temperature > 0:  # also rejects NaN
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if math.isinf(temperature):
        raise ValueError(f"temperature must be finite, got {temperature}")
    if temperature > MAX_TEMPERATURE:
        raise ValueError(f"temperature must be at most {MAX_TEMPERATURE:g} (the loss is scaled by T², which "
                         f"overflows float32 from T ≈ 1.8e19), got {temperature}")


def _check_finite(**inputs: Tensor) -> None:
    """Every tensor of ``inputs`` (name -> tensor) holds only finite values, else a ``ValueError`` that names
    the first bad one and counts its NaN and ±inf. One host-device transfer for all of them; nothing is
    checked while :data:`CHECK_FINITE` is False."""
    if not CHECK_FINITE:
        return
    device = next(iter(inputs.values())).device
    flags = torch.stack([torch.isfinite(x).all().to(device) for x in inputs.values()])  # (n_inputs,)
    if bool(flags.all()):
        return
    name = next(n for n, ok in zip(inputs, flags.tolist()) if not ok)
    x = inputs[name]
    nan, inf = int(torch.isnan(x).sum()), int(torch.isinf(x).sum())
    raise ValueError(
        f"{name} must be finite, got {nan} NaN and {inf} ±inf value(s) among {x.numel()} (shape "
        f"{tuple(x.shape)}): the network diverged or its input is bad (a learning rate or loss weight too large?)"
    )


def _check_targets(targets: Tensor, logits: Tensor) -> None:
    """``targets`` must be integer class indices of shape (B,) in [0, C)."""
    batch, num_classes = logits.shape
    if not torch.is_tensor(targets) or targets.dtype not in _INTEGER_DTYPES:
        kind = targets.dtype if torch.is_tensor(targets) else type(targets).__name__
        raise ValueError(f"targets must be an integer tensor of class indices, got {kind}")
    if targets.shape != (batch,):
        raise ValueError(f"targets shape {tuple(targets.shape)} must be ({batch},) = (B,)")
    bad = (targets < 0) | (targets >= num_classes)
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"targets must be in [0, {num_classes}), got {int(targets[i])} at index {i}"
        )


def _check_embeddings(name: str, emb: Tensor) -> None:
    """Relation losses need (B, D) embeddings with at least 2 rows."""
    _check_tensor(name, emb, 2)
    if emb.shape[0] < 2:
        raise ValueError(f"{name} needs a batch of at least 2 rows, got {emb.shape[0]}")


def _check_same_batch(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """Relation losses: only the batch sizes must agree, not the widths D."""
    _check_embeddings(name_a, a)
    _check_embeddings(name_b, b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{name_a} batch size {a.shape[0]} does not match {name_b} batch size {b.shape[0]}"
        )


# --------------------------------------------------------------------------
# Small numeric helpers
# --------------------------------------------------------------------------
def _kl_rows(log_p: Tensor, log_q: Tensor) -> Tensor:
    """Row-wise KL(p || q) = sum_c p_c (log p_c - log q_c), from log-probs.

    (B, K), (B, K) -> (B,)
    """
    return (log_p.exp() * (log_p - log_q)).sum(dim=1)


def _symmetric_kl_rows(log_p: Tensor, log_q: Tensor) -> Tensor:
    """Row-wise 1/2 [KL(p || q) + KL(q || p)] from log-probs (SSLD's and PaddleOCR's DML loss).

    (B, K), (B, K) -> (B,)
    """
    return 0.5 * (_kl_rows(log_p, log_q) + _kl_rows(log_q, log_p))


def _soft_log_probs(student_logits: Tensor, teacher_logits: Tensor, temperature: float):
    """Softened log-probabilities, float32; the teacher side is detached.

    (B, C), (B, C) -> (B, C), (B, C)
    """
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=1)  # (B, C)
    log_p_t = F.log_softmax(teacher_logits.detach().float() / temperature, dim=1)  # (B, C)
    return log_p_s, log_p_t


def _split_target(logits: Tensor, targets: Tensor):
    """Split (B, C) logits into the target logit (B, 1) and the C - 1
    non-target logits (B, C - 1), keeping the class order of the latter."""
    batch, num_classes = logits.shape
    is_target = F.one_hot(targets.long(), num_classes).bool()  # (B, C)
    target = logits.masked_select(is_target).view(batch, 1)  # (B, 1)
    others = logits.masked_select(~is_target).view(batch, num_classes - 1)  # (B, C-1)
    return target, others


def _binary_log_probs(target: Tensor, others: Tensor) -> Tensor:
    """log [p_target, 1 - p_target] of softmax(logits), computed stably.

    With u = z_target - logsumexp(z_others): p_target = sigmoid(u) and
    1 - p_target = sigmoid(-u), so both logs are log-sigmoids (accurate even
    when p_target is close to 0 or to 1).

    (B, 1), (B, C-1) -> (B, 2)
    """
    u = target - torch.logsumexp(others, dim=1, keepdim=True)  # (B, 1)
    return F.logsigmoid(torch.cat([u, -u], dim=1))  # (B, 2)


# --------------------------------------------------------------------------
# Response-based losses
# --------------------------------------------------------------------------
def kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 4.0) -> Tensor:
    """Classic knowledge distillation loss.

    Hinton, Vinyals, Dean (2015), "Distilling the Knowledge in a Neural Network".

        L = T^2 * mean_b sum_c p_t[b, c] * (log p_t[b, c] - log p_s[b, c])
        p_t = softmax(teacher_logits / T),  p_s = softmax(student_logits / T)

    i.e. T^2 * KL(p_t || p_s). The T^2 factor keeps the gradient magnitude
    comparable across temperatures: dL/ds = T * (p_s - p_t) / B.

    Args:
        student_logits: (B, C) float32 or bf16.
        teacher_logits: (B, C); detached inside.
        temperature: T > 0.
    Returns:
        float32 scalar.
    """
    _check_pair("student_logits", student_logits, "teacher_logits", teacher_logits, ndim=2)
    _check_temperature(temperature)
    _check_finite(student_logits=student_logits, teacher_logits=teacher_logits)
    log_p_s, log_p_t = _soft_log_probs(student_logits, teacher_logits, temperature)
    return temperature**2 * _kl_rows(log_p_t, log_p_s).mean()


def dkd_parts(
    student_logits: Tensor, teacher_logits: Tensor, targets: Tensor, temperature: float = 4.0
) -> tuple[Tensor, Tensor]:
    """The two parts (TCKD, NCKD) of Decoupled Knowledge Distillation.

    Zhao, Cui, Song, Qiu, Liang (2022), "Decoupled Knowledge Distillation" (CVPR).

    With p = softmax(z / T) and y the target class:

        TCKD = T^2 * mean_b KL([p_t[y], 1 - p_t[y]] || [p_s[y], 1 - p_s[y]])
        NCKD = T^2 * mean_b KL(q_t || q_s),
               q = softmax over the C - 1 non-target logits only
                   (the non-target probabilities renormalised to sum to 1).

    Per sample, KL(p_t || p_s) = TCKD + (1 - p_t[y]) * NCKD, so classic KD
    ties NCKD to the teacher's confidence; DKD weights the parts freely.
    The non-target logits are gathered (not masked with -1000) and the binary
    log-probabilities are log-sigmoids, so the result is stable even for very
    confident teachers.

    Args:
        student_logits: (B, C) float32 or bf16, C >= 2.
        teacher_logits: (B, C); detached inside.
        targets: (B,) integer class indices in [0, C).
        temperature: T > 0.
    Returns:
        (tckd, nckd): two float32 scalars, each already x T^2 and batch-mean.
    """
    _check_pair("student_logits", student_logits, "teacher_logits", teacher_logits, ndim=2)
    _check_temperature(temperature)
    if student_logits.shape[1] < 2:
        raise ValueError(f"DKD needs at least 2 classes, got C = {student_logits.shape[1]}")
    _check_targets(targets, student_logits)
    _check_finite(student_logits=student_logits, teacher_logits=teacher_logits)
    s_target, s_others = _split_target(student_logits.float() / temperature, targets)
    t_target, t_others = _split_target(teacher_logits.detach().float() / temperature, targets)
    tckd = _kl_rows(_binary_log_probs(t_target, t_others), _binary_log_probs(s_target, s_others))
    nckd = _kl_rows(F.log_softmax(t_others, dim=1), F.log_softmax(s_others, dim=1))  # (B,)
    return temperature**2 * tckd.mean(), temperature**2 * nckd.mean()


def dkd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    targets: Tensor,
    alpha: float = 1.0,
    beta: float = 8.0,
    temperature: float = 4.0,
) -> Tensor:
    """Decoupled Knowledge Distillation loss: alpha * TCKD + beta * NCKD.

    Zhao, Cui, Song, Qiu, Liang (2022), "Decoupled Knowledge Distillation" (CVPR).
    See :func:`dkd_parts` for the definition of both parts.

    Args:
        student_logits: (B, C) float32 or bf16.
        teacher_logits: (B, C); detached inside.
        targets: (B,) integer class indices in [0, C).
        alpha, beta: weights of TCKD and NCKD.
        temperature: T > 0.
    Returns:
        float32 scalar.
    """
    tckd, nckd = dkd_parts(student_logits, teacher_logits, targets, temperature)
    return alpha * tckd + beta * nckd


def dml_loss(logits: Tensor, peer_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Deep Mutual Learning loss of one network towards its peer.

    Zhang, Xiang, Hospedales, Lu (2018), "Deep Mutual Learning" (CVPR).

        L = T^2 * mean_b KL(softmax(peer / T) || softmax(logits / T))

    Both peers train at once; each calls this with the other as ``peer``.
    The peer is detached, so the gradient reaches ``logits`` only.

    Args:
        logits: (B, C) float32 or bf16, the network being updated.
        peer_logits: (B, C); detached inside.
        temperature: T > 0 (the paper uses T = 1).
    Returns:
        float32 scalar.
    """
    _check_pair("logits", logits, "peer_logits", peer_logits, ndim=2)
    _check_temperature(temperature)
    _check_finite(logits=logits, peer_logits=peer_logits)
    log_p, log_p_peer = _soft_log_probs(logits, peer_logits, temperature)
    return temperature**2 * _kl_rows(log_p_peer, log_p).mean()


def dml_symmetric_loss(logits_a: Tensor, logits_b: Tensor, temperature: float = 1.0) -> Tensor:
    """Mutual-learning loss of a pair as PaddleOCR trains its text recognizers (PP-OCRv2's CML/U-DML):
    symmetric KL, **neither side detached**.

    PaddleOCR, ``ppocr/losses/basic_loss.py``, class ``DMLLoss`` (``use_log=True``), summed once per pair of
    peers in ``ppocr/losses/distillation_loss.py``.

        L = T^2 * mean_b 1/2 [KL(p_b || p_a) + KL(p_a || p_b)]

    Unlike :func:`dml_loss` (Zhang et al. 2018: each peer chases the other's detached prediction), the
    gradient reaches both peers, through both directions of the KL; the one exception to the module's
    "the other side is detached" rule, because here there is no teacher side.

    Args:
        logits_a: (B, C) float32 or bf16, one peer.
        logits_b: (B, C), the other peer; not detached.
        temperature: T > 0.
    Returns:
        float32 scalar.
    """
    _check_pair("logits_a", logits_a, "logits_b", logits_b, ndim=2)
    _check_temperature(temperature)
    _check_finite(logits_a=logits_a, logits_b=logits_b)
    log_p_a = F.log_softmax(logits_a.float() / temperature, dim=1)  # (B, C)
    log_p_b = F.log_softmax(logits_b.float() / temperature, dim=1)  # (B, C)
    return temperature**2 * _symmetric_kl_rows(log_p_a, log_p_b).mean()


def ssld_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """SSLD loss: symmetric KL between teacher and student, no labels needed.

    Cui, Guo, Du, et al. (2021), "Beyond Self-Supervision: A Simple Yet
    Effective Network Distillation Alternative to Improve Backbones"
    (PaddleClas SSLD).

        L = T^2 * mean_b 1/2 [KL(p_t || p_s) + KL(p_s || p_t)]

    (PaddleClas calls this symmetric KL "JS".) The teacher is detached.

    Args:
        student_logits: (B, C) float32 or bf16.
        teacher_logits: (B, C); detached inside.
        temperature: T > 0.
    Returns:
        float32 scalar.
    """
    _check_pair("student_logits", student_logits, "teacher_logits", teacher_logits, ndim=2)
    _check_temperature(temperature)
    _check_finite(student_logits=student_logits, teacher_logits=teacher_logits)
    log_p_s, log_p_t = _soft_log_probs(student_logits, teacher_logits, temperature)
    return temperature**2 * _symmetric_kl_rows(log_p_s, log_p_t).mean()


# --------------------------------------------------------------------------
# Feature-based losses
# --------------------------------------------------------------------------
def fitnet_loss(student_feat: Tensor, teacher_feat: Tensor) -> Tensor:
    """FitNets hint loss: mean squared error between hint and guided layer.

    Romero, Ballas, Kahou, Chassang, Gatta, Bengio (2015),
    "FitNets: Hints for Thin Deep Nets" (ICLR).

        L = mean over all elements of (s - t)^2

    ``student_feat`` is the student's feature *after* its regressor (done by
    the caller), so it already has the teacher's shape. Not scale invariant.

    Args:
        student_feat: (B, C, H, W), (B, N, D) or (B, D), float32 or bf16.
        teacher_feat: same shape; detached inside.
    Returns:
        float32 scalar.
    """
    _check_pair("student_feat", student_feat, "teacher_feat", teacher_feat, ndim=(2, 3, 4))
    _check_finite(student_feat=student_feat, teacher_feat=teacher_feat)
    return F.mse_loss(student_feat.float(), teacher_feat.detach().float())


def ofd_margin(bn: nn.Module) -> Tensor:
    """Per-channel margin of Overhaul of Feature Distillation (OFD).

    Heo, Kim, Yun, Park, Kwak, Choi (2019), "A Comprehensive Overhaul of
    Feature Distillation" (ICCV).

    The teacher feature before the ReLU is modelled per channel as
    x ~ N(beta, gamma^2) with beta = bn.bias, gamma = bn.weight. The margin is
    the expected value of its negative part, with phi / Phi the standard
    normal pdf / cdf and z = beta / |gamma|:

        m = E[x | x < 0] = beta - |gamma| * phi(z) / Phi(-z)
        m = -3 |gamma|   where Phi(-z) <= 0.001 (almost never negative)

    Args:
        bn: an affine ``nn.BatchNorm1d`` / ``nn.BatchNorm2d`` feeding a ReLU.
    Returns:
        (C,) float32 tensor, no grad.
    """
    if not isinstance(bn, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
        kind = type(bn).__name__
        raise ValueError(f"bn must be a BatchNorm layer (nn.BatchNorm1d/2d/3d), got {kind}")
    if not bn.affine:
        raise ValueError(
            "bn must have affine=True (the margin uses its weight and bias), got affine=False"
        )
    with torch.no_grad():
        beta = bn.bias.float()  # (C,)
        std = bn.weight.float().abs().clamp(min=_EPS)  # (C,) |gamma|
        z = beta / std
        p_negative = torch.special.ndtr(-z)  # Phi(-z) = P(x < 0)
        pdf = torch.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)  # phi(z)
        margin = beta - std * pdf / p_negative.clamp(min=1e-3)
        return torch.where(p_negative > 1e-3, margin, -3 * std)  # (C,)


def ofd_target(teacher_feat: Tensor, margin: Tensor) -> Tensor:
    """OFD teacher target t' = max(t, m), with the margin m broadcast per channel.

    Args:
        teacher_feat: (B, C, H, W) or (B, C) pre-ReLU teacher feature; detached.
        margin: (C,) from :func:`ofd_margin`; detached.
    Returns:
        float32 tensor with the shape of ``teacher_feat``, no grad.
    """
    _check_tensor("teacher_feat", teacher_feat, ndim=(2, 4))
    channels = teacher_feat.shape[1]
    if not torch.is_tensor(margin) or margin.shape != (channels,):
        shape = tuple(margin.shape) if torch.is_tensor(margin) else type(margin).__name__
        raise ValueError(f"margin shape {shape} must be ({channels},) = (C,) of teacher_feat")
    m = margin.detach().float().view(1, channels, *[1] * (teacher_feat.dim() - 2))  # (1, C[, 1, 1])
    return torch.maximum(teacher_feat.detach().float(), m)


def ofd_mask(student_feat: Tensor, teacher_target: Tensor) -> Tensor:
    """Where the OFD partial L2 distance counts.

    An element is dropped only when the student is already below the target
    AND the target is not positive (s <= t' <= 0): after the ReLU both are 0,
    so there is nothing to learn. Kept where s > t' or t' > 0.

    Args:
        student_feat: (B, C, H, W) or (B, C) pre-ReLU student feature.
        teacher_target: t' from :func:`ofd_target`, same shape.
    Returns:
        bool tensor of the same shape.
    """
    _check_pair("student_feat", student_feat, "teacher_target", teacher_target, ndim=(2, 4))
    s, t = student_feat.detach().float(), teacher_target.detach().float()
    return (s > t) | (t > 0)


def ofd_loss(student_feat: Tensor, teacher_feat: Tensor, margin: Tensor, partial: bool = True) -> Tensor:
    """OFD partial L2 distillation loss.

    Heo, Kim, Yun, Park, Kwak, Choi (2019), "A Comprehensive Overhaul of
    Feature Distillation" (ICCV).

        t' = max(t, m)
        L  = mean_b sum_{c,h,w} mask * (s - t')^2,   mask = (s > t') or (t' > 0)

    ``student_feat`` is the student's pre-ReLU feature after its connector
    (done by the caller). Teacher and margin are detached. ``partial=False``
    counts every element (mask = 1): the plain L2 of the paper's ablation.

    Args:
        student_feat: (B, C, H, W) or (B, C), float32 or bf16.
        teacher_feat: same shape; detached inside.
        margin: (C,) from :func:`ofd_margin`.
        partial: True (the paper's method) or False (plain L2 to t').
    Returns:
        float32 scalar.
    """
    _check_pair("student_feat", student_feat, "teacher_feat", teacher_feat, ndim=(2, 4))
    _check_finite(student_feat=student_feat, teacher_feat=teacher_feat)
    if not isinstance(partial, bool):
        raise ValueError(f"partial must be True or False, got {partial!r}")
    target = ofd_target(teacher_feat, margin)  # like teacher_feat
    squared = (student_feat.float() - target) ** 2  # like teacher_feat
    if partial:
        squared = squared * ofd_mask(student_feat, target)
    return squared.flatten(1).sum(dim=1).mean()


# --------------------------------------------------------------------------
# Relation-based losses
# --------------------------------------------------------------------------
def rkd_distance_matrix(emb: Tensor) -> Tensor:
    """Normalised pairwise Euclidean distances used by RKD-D.

        d[i, j] = ||x_i - x_j|| / mu,   mu = mean of the positive d over i != j

    The squared distance is clamped to 1e-12 before the sqrt so the gradient
    stays finite; pairs closer than 1e-6 (the diagonal, duplicate points)
    are set to exactly 0.

    Args:
        emb: (B, D) embeddings, B >= 2, float32 or bf16.
    Returns:
        (B, B) float32 matrix with a zero diagonal.
    """
    _check_embeddings("emb", emb)
    _check_finite(emb=emb)
    return _distance_matrix(emb)


def _distance_matrix(emb: Tensor) -> Tensor:
    """:func:`rkd_distance_matrix` without the input checks (its callers have checked)."""
    x = emb.float()  # (B, D)
    squared = (x[:, None, :] - x[None, :, :]).pow(2).sum(dim=2)  # (B, B)
    dist = torch.where(squared > _EPS, squared.clamp(min=_EPS).sqrt(), 0.0)  # (B, B)
    positive = dist > 0
    mean = dist.sum() / positive.sum().clamp(min=1)  # mean of the positive distances
    return dist / mean.clamp(min=_EPS)


def rkd_distance_loss(student_emb: Tensor, teacher_emb: Tensor) -> Tensor:
    """RKD distance-wise loss.

    Park, Kim, Lu, Cho (2019), "Relational Knowledge Distillation" (CVPR).

        L = mean_{i,j} smooth_l1(d_s[i, j], d_t[i, j])   (Huber, beta = 1)

    with d the normalised distance matrix of :func:`rkd_distance_matrix`.
    Invariant to scaling, rotating and translating either embedding.

    Args:
        student_emb: (B, D_s), B >= 2, float32 or bf16.
        teacher_emb: (B, D_t) -- D_t may differ from D_s; detached inside.
    Returns:
        float32 scalar.
    """
    _check_same_batch("student_emb", student_emb, "teacher_emb", teacher_emb)
    _check_finite(student_emb=student_emb, teacher_emb=teacher_emb)
    d_s = _distance_matrix(student_emb)  # (B, B)
    d_t = _distance_matrix(teacher_emb.detach())  # (B, B)
    return F.smooth_l1_loss(d_s, d_t, beta=1.0)


def rkd_angle_tensor(emb: Tensor) -> Tensor:
    """Cosines of all triplet angles used by RKD-A.

        e_ij = (x_i - x_j) / ||x_i - x_j||
        a[i, j, k] = <e_ij, e_kj>   (cosine of the angle at vertex x_j)

    ``F.normalize`` maps a zero difference (i = j or duplicate points) to the
    zero vector, so those cosines are 0 rather than NaN.

    Args:
        emb: (B, D) embeddings, B >= 2, float32 or bf16.
    Returns:
        (B, B, B) float32 tensor.
    """
    _check_embeddings("emb", emb)
    _check_finite(emb=emb)
    return _angle_tensor(emb)


def _angle_tensor(emb: Tensor) -> Tensor:
    """:func:`rkd_angle_tensor` without the input checks (its callers have checked).

    From the (B, B) pairwise distances alone, by the law of cosines: with u = x_i - x_j, v = x_k - x_j,
    <u, v> = (|u|^2 + |v|^2 - |x_i - x_k|^2) / 2, so a[i, j, k] = <u, v> / (max(|u|, eps) max(|v|, eps)),
    the same numbers as normalising the (B, B, D) differences and contracting them (0 where i = j or k = j),
    in O(B^2 D + B^3) work instead of O(B^3 D): at B = 128, D = 256 that is 256x less arithmetic.
    The distances come from the differences themselves (no Gram-matrix cancellation); the cosines agree
    with the direct computation to about 1e-5 on the course's embeddings in float32.
    """
    x = emb.float()  # (B, D)
    with torch.autocast(x.device.type, enabled=False):  # autocast would run it in bf16
        d = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist")  # (B, B), |x_i - x_j|
        sq = d * d
        dot = (sq[:, :, None] + sq.t()[None, :, :] - sq[:, None, :]) / 2  # (B, B, B): <x_i - x_j, x_k - x_j>
        norm = d.clamp_min(_EPS)
        return dot / (norm[:, :, None] * norm.t()[None, :, :])  # (B, B, B)


def rkd_angle_loss(student_emb: Tensor, teacher_emb: Tensor) -> Tensor:
    """RKD angle-wise loss.

    Park, Kim, Lu, Cho (2019), "Relational Knowledge Distillation" (CVPR).

        L = mean_{i,j,k} smooth_l1(a_s[i, j, k], a_t[i, j, k])   (Huber, beta = 1)

    with a the angle cosines of :func:`rkd_angle_tensor`. Invariant to
    scaling, rotating and translating either embedding. B = 2 is allowed but
    degenerate (every angle is 0 or 1, so the loss is always 0).

    Args:
        student_emb: (B, D_s), B >= 2, float32 or bf16.
        teacher_emb: (B, D_t) -- D_t may differ from D_s; detached inside.
    Returns:
        float32 scalar.
    """
    _check_same_batch("student_emb", student_emb, "teacher_emb", teacher_emb)
    _check_finite(student_emb=student_emb, teacher_emb=teacher_emb)
    a_s = _angle_tensor(student_emb)  # (B, B, B)
    a_t = _angle_tensor(teacher_emb.detach())  # (B, B, B)
    return F.smooth_l1_loss(a_s, a_t, beta=1.0)
