"""Self-checks for the lessons' exercises. Each ``check_…`` prints what is right or what is wrong (and
a hint), and returns True or False; it never raises on a wrong answer, so a notebook keeps running.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import losses

__all__ = ["check_softmax_t", "check_kd_loss", "check_temperature_limits", "check_distance_matrix", "check_angle_tensor",
           "check_dml_loss", "check_detach", "DETACH_CHOICES"]


def _report(ok: bool, message: str) -> bool:
    print(("✅ " if ok else "❌ ") + message)
    return ok


def _cases(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(5, 10, generator=g) * 3, t) for t in (0.5, 1.0, 4.0, 10.0)]


def _call(fn, *args):
    try:
        return fn(*args), None
    except NotImplementedError:
        return None, "not implemented yet: replace `raise NotImplementedError` with your code"
    except Exception as err:  # noqa: BLE001 - the student's code may fail in any way; we explain it
        return None, f"your function raised {type(err).__name__}: {err}"


def _check_tensor(out, shape) -> str | None:
    if out is None:
        return "your function returned None: did you forget `return`?"
    if not isinstance(out, torch.Tensor):
        return f"expected a torch.Tensor, got {type(out).__name__}"
    if tuple(out.shape) != tuple(shape):
        return f"expected shape {tuple(shape)}, got {tuple(out.shape)}"
    return None


def check_softmax_t(fn) -> bool:
    """``fn(logits (B, K), T) -> (B, K)``: softmax of logits / T over the classes."""
    for logits, t in _cases():
        out, problem = _call(fn, logits, t)
        problem = problem or _check_tensor(out, logits.shape)
        if problem:
            return _report(False, problem)
        want = torch.softmax(logits / t, dim=-1)
        if torch.allclose(out, want, atol=1e-5):
            continue
        if not torch.allclose(out.sum(-1), torch.ones(len(out)), atol=1e-4):
            return _report(False, "each row must sum to 1: take the softmax over the class dimension (dim=-1)")
        if torch.allclose(out, torch.softmax(logits * t, dim=-1), atol=1e-5):
            return _report(False, f"at T={t} you multiplied the logits by T: divide by T instead")
        if torch.allclose(out, torch.softmax(logits, dim=-1), atol=1e-5):
            return _report(False, f"at T={t} the output ignores the temperature: use softmax(logits / T)")
        return _report(False, f"at T={t} the values differ from softmax(logits / T)")
    return _report(True, "softmax with temperature is right for T = 0.5, 1, 4 and 10")


def check_kd_loss(fn) -> bool:
    """``fn(student_logits, teacher_logits, T) -> scalar``: T²·KL(p_t ‖ p_s), mean over the batch."""
    for logits, t in _cases(1):
        teacher = logits.roll(1, dims=0) * 0.7
        out, problem = _call(fn, logits, teacher, t)
        problem = problem or _check_tensor(out, ())
        if problem:
            return _report(False, problem)
        want = losses.kd_loss(logits, teacher, t)
        ratio = float(out / want)
        if abs(ratio - 1) < 1e-4:
            continue
        hints = {1 / t ** 2: "the T² factor is missing", float(len(logits)): "sum over the batch, then divide by B "
                 "(you summed without averaging)", 1 / logits.shape[1]: "you averaged over classes: sum over them"}
        for r, hint in hints.items():
            if abs(ratio - r) < 1e-3 * max(1.0, r):
                return _report(False, f"at T={t}: {hint}")
        reverse = losses.kd_loss(teacher, logits, t)
        if torch.allclose(out, reverse, rtol=1e-4):
            return _report(False, "KL is taken in the wrong direction: it is KL(teacher ‖ student) = "
                                  "Σ p_t (log p_t − log p_s)")
        return _report(False, f"at T={t} expected {float(want):.4f}, got {float(out):.4f}")
    return _report(True, "your KD loss matches kd_lab.losses.kd_loss for T = 0.5, 1, 4 and 10")


_LIMIT_CHOICES = ("uniform", "one-hot", "unchanged")


def check_temperature_limits(t_to_infinity: str, t_to_zero: str) -> bool:
    """Multiple choice: what do the soft targets softmax(z/T) become as T → ∞ and as T → 0?"""
    for name, answer in (("t_to_infinity", t_to_infinity), ("t_to_zero", t_to_zero)):
        if answer not in _LIMIT_CHOICES:
            return _report(False, f"{name}={answer!r} is not one of {_LIMIT_CHOICES}")
    ok = True
    if t_to_infinity != "uniform":
        ok = _report(False, "T → ∞: z/T → 0 for every class, so every probability tends to 1/K (uniform); "
                            "the teacher's knowledge is washed out")
    if t_to_zero != "one-hot":
        ok = _report(False, "T → 0: the largest logit dominates exp(z/T), so the distribution tends to the "
                            "one-hot argmax, like a hard label: no dark knowledge left")
    if ok:
        _report(True, "T → ∞ gives the uniform distribution, T → 0 the one-hot argmax; a useful T lies between")
    return ok


# ------------------------------------------------------------------------------ lesson 05: RKD
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


# ------------------------------------------------------------------------------- lesson 03: DML
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
    if answer not in DETACH_CHOICES:
        return _report(False, f"answer={answer!r} is not one of {sorted(DETACH_CHOICES)}")
    if answer != "b":
        return _report(False, f"not ({answer}): {_DETACH_WHY[answer]}")
    return _report(True, "(b): without detach, L_k also trains peer j towards p_k (for K = 2 both minimise the "
                         "symmetric KL together); DML treats each peer's prediction as a fixed target, like a "
                         "teacher's, and each network follows its own loss only")
