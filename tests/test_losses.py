"""Tests for kd_lab.losses.

Every loss is checked against an independent float64 numpy computation
written with explicit loops / explicit formulas, plus the properties the
course relies on: zero at the optimum, no gradient into the teacher, bf16
inputs, invariances, and clear error messages.
"""

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kd_lab import losses as L

T_KD = 4.0  # temperature used for the response-based cases
TARGETS = torch.tensor([0, 3, 9, 5])  # dkd targets for (4, 10) logits
OFD_MARGIN = torch.tensor([-0.5, -1.0, -0.2])  # (C,) for (2, 3, 4, 4) features


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------
# Independent float64 numpy references
# --------------------------------------------------------------------------
def np_softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_kl(p, q):
    """KL(p || q) along the last axis."""
    return np.sum(p * (np.log(p) - np.log(q)), axis=-1)


def np_huber(x):
    x = np.abs(x)
    return np.where(x < 1.0, 0.5 * x**2, x - 0.5)


def ref_kd(s, t, temperature):
    return temperature**2 * np_kl(np_softmax(t / temperature), np_softmax(s / temperature)).mean()


def ref_ssld(s, t, temperature):
    p_s, p_t = np_softmax(s / temperature), np_softmax(t / temperature)
    return temperature**2 * (0.5 * (np_kl(p_t, p_s) + np_kl(p_s, p_t))).mean()


def ref_dkd_per_sample(s, t, targets, temperature):
    """Per-sample (tckd, nckd), WITHOUT the T^2 factor, by explicit loops."""
    tckd, nckd = [], []
    for s_row, t_row, y in zip(s, t, targets):
        p_s, p_t = np_softmax(s_row / temperature), np_softmax(t_row / temperature)
        b_s = np.array([p_s[y], 1.0 - p_s[y]])
        b_t = np.array([p_t[y], 1.0 - p_t[y]])
        tckd.append(np_kl(b_t, b_s))
        keep = [c for c in range(len(s_row)) if c != y]
        q_s = p_s[keep] / p_s[keep].sum()
        q_t = p_t[keep] / p_t[keep].sum()
        nckd.append(np_kl(q_t, q_s))
    return np.array(tckd), np.array(nckd)


def ref_dkd_part(index):
    def ref(s, t):
        parts = ref_dkd_per_sample(s, t, TARGETS.numpy(), T_KD)
        return T_KD**2 * parts[index].mean()

    return ref


def ref_dkd(s, t, alpha=1.0, beta=8.0):
    return alpha * ref_dkd_part(0)(s, t) + beta * ref_dkd_part(1)(s, t)


def ref_ofd(s, t, margin):
    total = np.zeros(s.shape[0])
    for idx in np.ndindex(*s.shape):
        target = max(t[idx], margin[idx[1]])
        if s[idx] <= target and target <= 0:
            continue
        total[idx[0]] += (s[idx] - target) ** 2
    return total.mean()


def ref_distance_matrix(x):
    n = len(x)
    d = np.array([[np.linalg.norm(x[i] - x[j]) for j in range(n)] for i in range(n)])
    off_diagonal = [d[i, j] for i in range(n) for j in range(n) if i != j]
    return d / np.mean(off_diagonal)


def ref_angle_tensor(x):
    n = len(x)
    a = np.zeros((n, n, n))
    for i in range(n):
        for j in range(n):
            for k in range(n):
                u, v = x[i] - x[j], x[k] - x[j]
                nu, nv = np.linalg.norm(u), np.linalg.norm(v)
                a[i, j, k] = 0.0 if nu == 0 or nv == 0 else u @ v / (nu * nv)
    return a


def ref_rkd_distance(s, t):
    return np_huber(ref_distance_matrix(s) - ref_distance_matrix(t)).mean()


def ref_rkd_angle(s, t):
    return np_huber(ref_angle_tensor(s) - ref_angle_tensor(t)).mean()


# --------------------------------------------------------------------------
# One case per loss: inputs, call, reference, argument names
# --------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    call: Callable  # (student, teacher) -> loss
    ref: Callable  # (student ndarray, teacher ndarray) -> float
    student_shape: tuple
    teacher_shape: tuple
    names: tuple = ("student_logits", "teacher_logits")
    relation: bool = False  # only the batch sizes must match
    temperature_fn: Callable = None  # (student, teacher, T) -> loss
    detaches: bool = True  # the second input gets no gradient (every loss but PaddleOCR's pair loss)

    def inputs(self, seed=0):
        g = gen(seed)
        scale = 3.0 if self.names[0].endswith("logits") else 1.0
        student = scale * torch.randn(self.student_shape, generator=g)
        teacher = scale * torch.randn(self.teacher_shape, generator=g)
        return student, teacher

    def equal_student(self, teacher):
        """A student input for which the loss is exactly its minimum 0."""
        if self.name == "ofd":
            return L.ofd_target(teacher, OFD_MARGIN)
        return teacher.clone()


LOGITS = (4, 10)
CASES = [
    Case(
        "kd",
        lambda s, t: L.kd_loss(s, t, temperature=T_KD),
        lambda s, t: ref_kd(s, t, T_KD),
        LOGITS,
        LOGITS,
        temperature_fn=lambda s, t, T: L.kd_loss(s, t, temperature=T),
    ),
    Case(
        "dkd",
        lambda s, t: L.dkd_loss(s, t, TARGETS, alpha=1.0, beta=8.0, temperature=T_KD),
        ref_dkd,
        LOGITS,
        LOGITS,
        temperature_fn=lambda s, t, T: L.dkd_loss(s, t, TARGETS, temperature=T),
    ),
    Case(
        "dkd_parts_tckd",
        lambda s, t: L.dkd_parts(s, t, TARGETS, temperature=T_KD)[0],
        ref_dkd_part(0),
        LOGITS,
        LOGITS,
        temperature_fn=lambda s, t, T: L.dkd_parts(s, t, TARGETS, temperature=T)[0],
    ),
    Case(
        "dkd_parts_nckd",
        lambda s, t: L.dkd_parts(s, t, TARGETS, temperature=T_KD)[1],
        ref_dkd_part(1),
        LOGITS,
        LOGITS,
    ),
    Case(
        "dml",
        lambda s, t: L.dml_loss(s, t, temperature=2.0),
        lambda s, t: ref_kd(s, t, 2.0),
        LOGITS,
        LOGITS,
        names=("logits", "peer_logits"),
        temperature_fn=lambda s, t, T: L.dml_loss(s, t, temperature=T),
    ),
    Case(
        "dml_symmetric",
        lambda s, t: L.dml_symmetric_loss(s, t, temperature=2.0),
        lambda s, t: ref_ssld(s, t, 2.0),
        LOGITS,
        LOGITS,
        names=("logits_a", "logits_b"),
        temperature_fn=lambda s, t, T: L.dml_symmetric_loss(s, t, temperature=T),
        detaches=False,
    ),
    Case(
        "ssld",
        lambda s, t: L.ssld_loss(s, t, temperature=2.0),
        lambda s, t: ref_ssld(s, t, 2.0),
        LOGITS,
        LOGITS,
        temperature_fn=lambda s, t, T: L.ssld_loss(s, t, temperature=T),
    ),
    Case(
        "fitnet",
        L.fitnet_loss,
        lambda s, t: np.mean((s - t) ** 2),
        (2, 3, 4, 4),
        (2, 3, 4, 4),
        names=("student_feat", "teacher_feat"),
    ),
    Case(
        "ofd",
        lambda s, t: L.ofd_loss(s, t, OFD_MARGIN),
        lambda s, t: ref_ofd(s, t, OFD_MARGIN.numpy()),
        (2, 3, 4, 4),
        (2, 3, 4, 4),
        names=("student_feat", "teacher_feat"),
    ),
    Case(
        "rkd_distance",
        L.rkd_distance_loss,
        ref_rkd_distance,
        (5, 6),
        (5, 8),
        names=("student_emb", "teacher_emb"),
        relation=True,
    ),
    Case(
        "rkd_angle",
        L.rkd_angle_loss,
        ref_rkd_angle,
        (5, 6),
        (5, 8),
        names=("student_emb", "teacher_emb"),
        relation=True,
    ),
]
TEMPERATURE_CASES = [c for c in CASES if c.temperature_fn is not None]


def by_name(cases):
    return pytest.mark.parametrize("case", cases, ids=[c.name for c in cases])


# --------------------------------------------------------------------------
# Properties shared by all losses
# --------------------------------------------------------------------------
@by_name(CASES)
def test_matches_independent_reference(case):
    student, teacher = case.inputs()
    loss = case.call(student, teacher)
    expected = case.ref(student.double().numpy(), teacher.double().numpy())
    assert loss.dtype == torch.float32 and loss.shape == ()
    assert expected > 1e-3  # the check is not vacuous
    assert loss.item() == pytest.approx(expected, rel=1e-4, abs=1e-6)  # float32 vs float64


@by_name(CASES)
def test_zero_when_student_equals_teacher(case):
    _, teacher = case.inputs()
    if case.relation:
        teacher = teacher[:, :6]  # same width so student == teacher is possible
    loss = case.call(case.equal_student(teacher), teacher)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


@by_name(CASES)
def test_no_gradient_reaches_teacher(case):
    student, teacher = case.inputs()
    student.requires_grad_(True)
    teacher.requires_grad_(True)
    case.call(student, teacher).backward()
    assert (teacher.grad is None) == case.detaches
    assert student.grad is not None and torch.isfinite(student.grad).all()
    assert student.grad.abs().sum() > 0


@by_name(CASES)
def test_bf16_inputs_give_float32_close_to_float32(case):
    student, teacher = case.inputs()
    loss32 = case.call(student, teacher)
    loss16 = case.call(student.bfloat16(), teacher.bfloat16())
    assert loss16.dtype == torch.float32
    assert torch.isfinite(loss16)
    assert loss16.item() == pytest.approx(loss32.item(), rel=2e-2)


# --------------------------------------------------------------------------
# Error messages
# --------------------------------------------------------------------------
def shape_text(shape):
    return re.escape(str(tuple(shape)))


@by_name(CASES)
def test_mismatched_shapes_raise(case):
    student, teacher = case.inputs()
    name_s, name_t = case.names
    if case.relation:  # only the batch size matters
        teacher = teacher[:-1]
        msg = f"{name_s} batch size 5 does not match {name_t} batch size 4"
    else:
        teacher = teacher[..., :-1]
        msg = (
            f"{name_s} shape {shape_text(student.shape)} "
            f"does not match {name_t} shape {shape_text(teacher.shape)}"
        )
    with pytest.raises(ValueError, match=msg):
        case.call(student, teacher)


@by_name(CASES)
def test_empty_batch_raises(case):
    student, teacher = case.inputs()
    with pytest.raises(ValueError, match=f"empty batch: {case.names[0]} has 0 rows"):
        case.call(student[:0], teacher[:0])


@pytest.mark.parametrize("reshape", ["flatten", "unsqueeze"])
@by_name(CASES)
def test_wrong_number_of_dims_raises(case, reshape):
    student, teacher = case.inputs()
    if reshape == "flatten":
        student, teacher = student.flatten(), teacher.flatten()
    else:
        student, teacher = student.unsqueeze(-1), teacher.unsqueeze(-1)
    msg = rf"{case.names[0]} must have [\d or]+ dims, got {student.dim()} dims"
    with pytest.raises(ValueError, match=msg):
        case.call(student, teacher)


@by_name(CASES)
def test_integer_input_raises(case):
    student, teacher = case.inputs()
    with pytest.raises(ValueError, match=f"{case.names[0]} must be a floating-point tensor"):
        case.call(student.long(), teacher)


@pytest.mark.parametrize(
    "temperature, msg",
    [
        (0, "temperature must be > 0, got 0"),
        (-1.0, "temperature must be > 0, got -1.0"),
        (float("nan"), "temperature must be > 0, got nan"),
        (float("inf"), "temperature must be finite, got inf"),
    ],
)
@by_name(TEMPERATURE_CASES)
def test_bad_temperature_raises(case, temperature, msg):
    student, teacher = case.inputs()
    with pytest.raises(ValueError, match=msg):
        case.temperature_fn(student, teacher, temperature)


@pytest.mark.parametrize(
    "targets, msg",
    [
        (torch.tensor([0, 3, 10, 5]), r"targets must be in \[0, 10\), got 10 at index 2"),
        (torch.tensor([0, -1, 9, 5]), r"targets must be in \[0, 10\), got -1 at index 1"),
        (torch.tensor([[0], [3], [9], [5]]), r"targets shape \(4, 1\) must be \(4,\)"),
        (torch.tensor([0, 3, 9]), r"targets shape \(3,\) must be \(4,\)"),
        (torch.tensor([0.0, 3.0, 9.0, 5.0]), r"targets must be an integer tensor.*torch.float32"),
        (torch.tensor([True, False, True, True]), r"targets must be an integer tensor.*torch.bool"),
    ],
    ids=["too_large", "negative", "column", "short", "float", "bool"],
)
@pytest.mark.parametrize("fn", [L.dkd_loss, L.dkd_parts], ids=["dkd_loss", "dkd_parts"])
def test_dkd_bad_targets_raise(fn, targets, msg):
    student, teacher = CASES[0].inputs()
    with pytest.raises(ValueError, match=msg):
        fn(student, teacher, targets)


def test_dkd_needs_two_classes():
    logits = torch.zeros(4, 1)
    with pytest.raises(ValueError, match="DKD needs at least 2 classes, got C = 1"):
        L.dkd_parts(logits, logits, torch.zeros(4, dtype=torch.long))


@pytest.mark.parametrize("margin", [torch.zeros(4), torch.zeros(1, 3), torch.zeros(())])
@pytest.mark.parametrize(
    "fn",
    [lambda s, t, m: L.ofd_loss(s, t, m), lambda s, t, m: L.ofd_target(t, m)],
    ids=["ofd_loss", "ofd_target"],
)
def test_ofd_margin_wrong_shape_raises(fn, margin):
    feat = torch.zeros(2, 3, 4, 4)
    msg = rf"margin shape {shape_text(margin.shape)} must be \(3,\)"
    with pytest.raises(ValueError, match=msg):
        fn(feat, feat, margin)


@pytest.mark.parametrize(
    "module, msg",
    [
        (nn.BatchNorm2d(3, affine=False), "bn must have affine=True.*got affine=False"),
        (nn.Linear(3, 3), "bn must be a BatchNorm layer.*got Linear"),
        (nn.LayerNorm(3), "bn must be a BatchNorm layer.*got LayerNorm"),
    ],
    ids=["no_affine", "linear", "layernorm"],
)
def test_ofd_margin_rejects_bad_modules(module, msg):
    with pytest.raises(ValueError, match=msg):
        L.ofd_margin(module)


@pytest.mark.parametrize(
    "fn",
    [
        lambda e: L.rkd_distance_matrix(e),
        lambda e: L.rkd_angle_tensor(e),
        lambda e: L.rkd_distance_loss(e, e),
        lambda e: L.rkd_angle_loss(e, e),
    ],
    ids=["distance_matrix", "angle_tensor", "distance_loss", "angle_loss"],
)
def test_rkd_needs_two_rows(fn):
    with pytest.raises(ValueError, match="needs a batch of at least 2 rows, got 1"):
        fn(torch.ones(1, 4))


# --------------------------------------------------------------------------
# Response-based specifics
# --------------------------------------------------------------------------
def test_kd_gradient_closed_form():
    student, teacher = CASES[0].inputs()
    student.requires_grad_(True)
    L.kd_loss(student, teacher, temperature=T_KD).backward()
    p_s = torch.softmax(student.detach() / T_KD, dim=1)
    p_t = torch.softmax(teacher / T_KD, dim=1)
    expected = (p_s - p_t) * T_KD / student.shape[0]
    torch.testing.assert_close(student.grad, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_dkd_decomposes_kd_per_sample(temperature):
    """KL(full) = TCKD + (1 - p_t[target]) * NCKD for every sample."""
    student, teacher = CASES[0].inputs(seed=1)
    p_target = torch.softmax(teacher / temperature, dim=1)[torch.arange(4), TARGETS]
    ref_tckd, ref_nckd = ref_dkd_per_sample(
        student.double().numpy(), teacher.double().numpy(), TARGETS.numpy(), temperature
    )
    for i in range(student.shape[0]):
        row = slice(i, i + 1)
        full = L.kd_loss(student[row], teacher[row], temperature)
        tckd, nckd = L.dkd_parts(student[row], teacher[row], TARGETS[row], temperature)
        assert full.item() == pytest.approx((tckd + (1 - p_target[i]) * nckd).item(), rel=1e-4)
        # and each part agrees with the explicit per-sample computation
        assert tckd.item() == pytest.approx(temperature**2 * ref_tckd[i], rel=1e-4, abs=1e-6)
        assert nckd.item() == pytest.approx(temperature**2 * ref_nckd[i], rel=1e-4, abs=1e-6)


def test_dkd_loss_weights_the_parts():
    student, teacher = CASES[0].inputs()
    tckd, nckd = L.dkd_parts(student, teacher, TARGETS, temperature=2.0)
    loss = L.dkd_loss(student, teacher, TARGETS, alpha=0.5, beta=3.0, temperature=2.0)
    assert loss.item() == pytest.approx((0.5 * tckd + 3.0 * nckd).item(), rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dkd_stable_for_very_confident_teacher(dtype):
    g = gen(2)
    student = (10 * torch.randn(4, 10, generator=g)).to(dtype).requires_grad_(True)
    teacher = torch.zeros(4, 10)
    teacher[torch.arange(4), TARGETS] = 2000.0  # p_t[target] == 1 in float32
    tckd, nckd = L.dkd_parts(student, teacher.to(dtype), TARGETS, temperature=1.0)
    (tckd + nckd).backward()
    assert torch.isfinite(tckd) and torch.isfinite(nckd)
    assert torch.isfinite(student.grad).all()


def test_dml_gradient_reaches_logits_only():
    """Both peers require grad, as in mutual learning; only `logits` gets one."""
    logits, peer = CASES[0].inputs()
    logits.requires_grad_(True)
    peer.requires_grad_(True)
    L.dml_loss(logits, peer).backward()
    assert peer.grad is None and logits.grad.abs().sum() > 0


def test_dml_symmetric_gradient_reaches_both_peers():
    """PaddleOCR's pair loss detaches neither side: the same value as SSLD's, but both peers learn from it."""
    a, b = CASES[0].inputs()
    a.requires_grad_(True)
    b.requires_grad_(True)
    loss = L.dml_symmetric_loss(a, b)
    loss.backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0
    assert loss.item() == pytest.approx(L.ssld_loss(a, b).item(), rel=1e-6)


def test_ssld_is_symmetric_in_value():
    a, b = CASES[0].inputs()
    assert L.ssld_loss(a, b).item() == pytest.approx(L.ssld_loss(b, a).item(), rel=1e-5)
    assert L.kd_loss(a, b, 1.0).item() != pytest.approx(L.kd_loss(b, a, 1.0).item(), rel=1e-3)


# --------------------------------------------------------------------------
# Feature-based specifics
# --------------------------------------------------------------------------
def test_ofd_margin_matches_empirical_negative_mean():
    pairs = [(0.0, 1.0), (1.0, 2.0), (-0.5, 0.3), (1.5, -1.0), (4.0, 1.0)]  # (beta, gamma)
    bn = nn.BatchNorm2d(len(pairs))
    with torch.no_grad():
        bn.bias.copy_(torch.tensor([b for b, _ in pairs]))
        bn.weight.copy_(torch.tensor([g for _, g in pairs]))
    margin = L.ofd_margin(bn)
    assert margin.shape == (len(pairs),) and margin.dtype == torch.float32
    assert not margin.requires_grad
    g = gen(3)
    for c, (beta, gamma) in enumerate(pairs):
        if math.erfc(beta / abs(gamma) / math.sqrt(2)) / 2 <= 1e-3:  # Phi(-beta/|gamma|)
            assert margin[c].item() == pytest.approx(-3 * abs(gamma))
            continue
        x = beta + abs(gamma) * torch.randn(2_000_000, generator=g, dtype=torch.float64)
        assert margin[c].item() == pytest.approx(x[x < 0].mean().item(), rel=1e-2)


def test_ofd_margin_accepts_batchnorm1d():
    bn = nn.BatchNorm1d(3)  # weight 1, bias 0: margin -sqrt(2 / pi)
    expected = torch.full((3,), -math.sqrt(2 / math.pi))
    torch.testing.assert_close(L.ofd_margin(bn), expected)


def test_ofd_mask_hand_made_cases():
    margin = torch.full((6,), -1.0)
    teacher = torch.tensor([[2.0, -3.0, -0.5, -3.0, -0.2, 0.0]])
    student = torch.tensor([[1.0, -2.0, 0.5, 0.0, -0.2, -1.0]])
    target = L.ofd_target(teacher, margin)
    torch.testing.assert_close(target, torch.tensor([[2.0, -1.0, -0.5, -1.0, -0.2, 0.0]]))
    # t' > 0 kept | s <= t' <= 0 dropped | s > t' kept | s > t' kept | s == t' <= 0 | t' == 0
    expected = torch.tensor([[True, False, True, True, False, False]])
    assert torch.equal(L.ofd_mask(student, target), expected)
    # (1 - 2)^2 + (0.5 + 0.5)^2 + (0 + 1)^2
    assert L.ofd_loss(student, teacher, margin).item() == pytest.approx(3.0)


def test_ofd_zero_when_student_below_negative_target():
    teacher = -torch.rand(2, 3, 4, 4, generator=gen(4))  # t <= 0, so t' = max(t, m) <= 0
    student = L.ofd_target(teacher, OFD_MARGIN) - 0.1  # s < t' <= 0 everywhere
    assert L.ofd_loss(student, teacher, OFD_MARGIN).item() == 0.0


def test_ofd_helpers_return_no_grad():
    teacher = torch.randn(2, 3, generator=gen(5), requires_grad=True)
    margin = OFD_MARGIN.clone().requires_grad_(True)
    target = L.ofd_target(teacher, margin)
    assert not target.requires_grad and target.dtype == torch.float32
    assert L.ofd_mask(teacher, target).dtype == torch.bool


def test_fitnet_is_not_scale_invariant():
    _, teacher = next(c for c in CASES if c.name == "fitnet").inputs()
    assert L.fitnet_loss(3 * teacher, teacher).item() > 0.1


# --------------------------------------------------------------------------
# Relation-based specifics
# --------------------------------------------------------------------------
def test_distance_matrix_diagonal_and_mean():
    emb = torch.randn(6, 5, generator=gen(6))
    d = L.rkd_distance_matrix(emb)
    off_diagonal = d[~torch.eye(6, dtype=torch.bool)]
    assert torch.equal(torch.diagonal(d), torch.zeros(6))
    assert off_diagonal.mean().item() == pytest.approx(1.0, rel=1e-6)
    torch.testing.assert_close(d, d.T)
    np.testing.assert_allclose(d.numpy(), ref_distance_matrix(emb.double().numpy()), rtol=1e-5)


@pytest.mark.parametrize(
    "points, expected",
    [
        ([[0.0, 0.0], [2.0, 0.0]], [[0, 1], [1, 0]]),
        # a 3-4-5 triangle: distances 3, 4, 5 with mean 4
        ([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]], [[0, 0.75, 1], [0.75, 0, 1.25], [1, 1.25, 0]]),
    ],
    ids=["B2", "B3"],
)
def test_distance_matrix_small_batches(points, expected):
    d = L.rkd_distance_matrix(torch.tensor(points))
    torch.testing.assert_close(d, torch.tensor(expected, dtype=torch.float32))


def test_distance_matrix_duplicate_points_give_zero():
    emb = torch.tensor([[1.0, 2.0], [1.0, 2.0], [4.0, 6.0]])  # rows 0 and 1 coincide
    d = L.rkd_distance_matrix(emb)
    assert d[0, 1].item() == 0.0
    assert d[0, 2].item() == pytest.approx(1.0)  # mean over the positive distances only


def test_angle_tensor_three_points():
    x0, x1, x2 = [1.0, 0.0], [0.0, 0.0], [0.0, 1.0]
    a = L.rkd_angle_tensor(torch.tensor([x0, x1, x2]))
    assert a.shape == (3, 3, 3)
    assert a[0, 1, 2].item() == pytest.approx(0.0, abs=1e-7)  # right angle at x1
    assert a[1, 0, 2].item() == pytest.approx(1 / math.sqrt(2))  # 45 degrees at x0
    assert a[0, 2, 1].item() == pytest.approx(1 / math.sqrt(2))  # 45 degrees at x2
    assert a[1, 1, 2].item() == 0.0  # zero vector e_11
    np.testing.assert_allclose(a.numpy(), ref_angle_tensor(np.array([x0, x1, x2])), atol=1e-6)


def test_angle_tensor_two_points():
    a = L.rkd_angle_tensor(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    expected = torch.zeros(2, 2, 2)
    expected[0, 1, 0] = expected[1, 0, 1] = 1.0  # the only non-degenerate "angle"
    torch.testing.assert_close(a, expected)


@pytest.mark.parametrize("fn", [L.rkd_distance_loss, L.rkd_angle_loss], ids=["distance", "angle"])
def test_rkd_batch_two_is_degenerate_and_three_is_not(fn):
    g = gen(7)
    assert fn(torch.randn(2, 3, generator=g), torch.randn(2, 5, generator=g)).item() == 0.0
    assert fn(torch.randn(3, 3, generator=g), torch.randn(3, 5, generator=g)).item() > 0.0


@pytest.mark.parametrize("fn", [L.rkd_distance_loss, L.rkd_angle_loss], ids=["distance", "angle"])
def test_rkd_invariant_to_scale_rotation_translation(fn):
    g = gen(8)
    teacher = torch.randn(6, 4, generator=g)
    rotation, _ = torch.linalg.qr(torch.randn(7, 7, generator=g))  # orthogonal (7, 7)
    padded = torch.cat([teacher, torch.zeros(6, 3)], dim=1)  # (6, 7): wider student
    student = 3.0 * padded @ rotation + torch.randn(7, generator=g)
    assert fn(student, teacher).item() == pytest.approx(0.0, abs=1e-5)
    assert fn(torch.randn(6, 7, generator=g), teacher).item() > 1e-3


@pytest.mark.parametrize("fn", [L.rkd_distance_loss, L.rkd_angle_loss], ids=["distance", "angle"])
@pytest.mark.parametrize("kind", ["one_duplicate", "all_equal"])
def test_rkd_gradients_finite_with_duplicate_points(fn, kind):
    g = gen(9)
    student = torch.randn(4, 3, generator=g)
    if kind == "one_duplicate":
        student[1] = student[0]
    else:
        student[:] = student[0]
    student.requires_grad_(True)
    loss = fn(student, torch.randn(4, 5, generator=g))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()


def test_public_names():
    assert sorted(L.__all__) == sorted(
        [
            "kd_loss", "dkd_parts", "dkd_loss", "dml_loss", "dml_symmetric_loss", "ssld_loss", "fitnet_loss",
            "ofd_margin", "ofd_target", "ofd_mask", "ofd_loss", "rkd_distance_matrix",
            "rkd_distance_loss", "rkd_angle_tensor", "rkd_angle_loss",
        ]
    )
    assert all(callable(getattr(L, name)) for name in L.__all__)


def test_rkd_angle_tensor_stays_float32_under_bf16_autocast():
    """The einsum of the angle tensor would run in bf16 under autocast; the loss keeps it in float32."""
    emb = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    want = L.rkd_angle_tensor(emb)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = L.rkd_angle_tensor(emb)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want)


def test_the_angle_tensor_from_distances_matches_the_direct_one_with_its_gradient():
    """The law-of-cosines angle tensor (O(B²D + B³)) against normalising the (B, B, D) differences and
    contracting them (O(B³D)): values and the RKD-A loss's gradient, on a batch shaped like real embeddings
    (non-negative, pooled after a ReLU, far from the origin)."""
    g = gen(11)
    emb = (torch.randn(48, 32, generator=g) + 2.0).relu()
    teacher = torch.randn(48, 64, generator=g)

    def direct(x):
        e = F.normalize(x[:, None, :] - x[None, :, :], p=2, dim=2, eps=1e-12)     # (B, B, D)
        return torch.einsum("ijd,kjd->ijk", e, e)

    torch.testing.assert_close(L.rkd_angle_tensor(emb), direct(emb), atol=2e-5, rtol=0)
    grads = []
    for angles in (L.rkd_angle_tensor, direct):
        x = emb.clone().requires_grad_(True)
        F.smooth_l1_loss(angles(x), direct(teacher)).backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-3)
