"""Self-checks of lesson 05, relation-based distillation (``notebooks/05_rkd.ipynb``, RKD, Park et al. 2019):
RKD-D's normalised distance matrix and RKD-A's angle tensor.
"""
from __future__ import annotations

import torch

from .. import losses
from ._common import _call, _check_tensor, _report

__all__ = ["check_distance_matrix", "check_angle_tensor"]


def _embedding_cases(seed: int = 5):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, d, generator=g) * s for b, d, s in ((6, 4, 1.0), (9, 16, 3.0), (5, 2, 0.2))]


def _same(out, want, atol=1e-4) -> bool:
    return bool(torch.allclose(out.float(), want, atol=atol, rtol=1e-4, equal_nan=False))


def _distance_hint(out, emb) -> str:
    """Why ``out`` is not RKD-D's normalised distance matrix of ``emb`` (Park et al. 2019)."""
    raw = (emb[:, None, :] - emb[None, :, :]).norm(dim=2)                   # (B, B)
    b = len(emb)
    guesses = {"raw distances: divide by μ, the mean of the off-diagonal distances": raw,
               "μ must be the mean over the pairs i ≠ j only: the zeros of the diagonal may not count":
               raw / raw.mean(),
               "squared distances: take the square root before normalising": raw ** 2 / (raw ** 2).sum() * b * (b - 1)}
    for hint, guess in guesses.items():
        if _same(out, guess):
            return hint
    if torch.isnan(out).any():
        return "NaN in the result: the diagonal (i = j) has distance 0, guard the square root / division"
    if not _same(out, out.T):
        return "the matrix must be symmetric: d[i, j] = d[j, i]"
    return "the values differ from ||x_i − x_j|| / μ (μ: mean over the pairs i ≠ j)"


def check_distance_matrix(fn) -> bool:
    """``fn(emb (B, D)) -> (B, B)``: RKD-D's d[i, j] = ||x_i − x_j|| / μ, μ the mean of the distances i ≠ j."""
    for emb in _embedding_cases():
        out, problem = _call(fn, emb.clone())
        problem = problem or _check_tensor(out, (len(emb), len(emb)))
        if problem:
            return _report(False, problem)
        if not _same(out, losses.rkd_distance_matrix(emb)):
            return _report(False, f"batch of {len(emb)} × {emb.shape[1]}: {_distance_hint(out.float(), emb)}")
    return _report(True, "your distance matrix matches kd_lab.losses.rkd_distance_matrix on 3 batches")


_TRIANGLE = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])   # a right angle at x_0, 45° at x_1 and x_2


def _angle_hint(out, emb) -> str:
    """Why ``out`` is not RKD-A's angle tensor of ``emb`` (Park et al. 2019)."""
    want = losses.rkd_angle_tensor(emb)
    if torch.isnan(out).any():
        return "NaN in the result: for i = j the difference x_i − x_j is 0; normalise with F.normalize (or " \
               "guard the division) so that those cosines are 0"
    if _same(out, want.permute(1, 0, 2)) or _same(out, want.permute(0, 2, 1)):
        return ("the vertex of the angle is the middle index j: a[i, j, k] = <e_ij, e_kj>, "
                "e_ij = (x_i − x_j) / ||x_i − x_j||")
    diff = emb[:, None, :] - emb[None, :, :]                                # (B, B, D)
    if _same(out, torch.einsum("ijd,kjd->ijk", diff, diff)):
        return "dot products of raw differences: divide each difference by its length first (unit vectors)"
    return "the values differ from the cosines <e_ij, e_kj>"


def _first_wrong(out, want) -> str:
    """" (a[i, j, k] should be …, yours is …)" for the first wrong entry."""
    wrong = ~torch.isclose(out, want, atol=1e-4)
    i, j, k = (int(v) for v in wrong.nonzero()[0])
    return f" (a[{i}, {j}, {k}] should be {float(want[i, j, k]):.3f}, yours is {float(out[i, j, k]):.3f})"


def check_angle_tensor(fn) -> bool:
    """``fn(emb (B, D)) -> (B, B, B)``: RKD-A's a[i, j, k] = cos of the angle at x_j between x_i and x_k.

    First by hand on three points, x_0 = (0, 0), x_1 = (1, 0), x_2 = (0, 1): a right angle at x_0, so
    a[1, 0, 2] = 0, and 45° at x_1 and x_2, so a[0, 1, 2] = a[0, 2, 1] = cos 45° ≈ 0.707; then on random batches.
    """
    for emb in [_TRIANGLE, *_embedding_cases(6)]:
        out, problem = _call(fn, emb.clone())
        problem = problem or _check_tensor(out, (len(emb),) * 3)
        if problem:
            return _report(False, problem)
        if not _same(out, losses.rkd_angle_tensor(emb)):
            where = "the 3-point triangle (0,0), (1,0), (0,1)" if emb is _TRIANGLE else f"a batch of {len(emb)}"
            extra = _first_wrong(out.float(), losses.rkd_angle_tensor(emb)) if emb is _TRIANGLE else ""
            return _report(False, f"on {where}: {_angle_hint(out.float(), emb)}{extra}")
    return _report(True, "your angle tensor is right on the triangle by hand (90° at x_0, 45° at x_1, x_2) "
                         "and on 3 batches")
