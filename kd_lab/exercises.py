"""Self-checks for the lessons' exercises. Each ``check_…`` prints what is right or what is wrong (and
a hint), and returns True or False; it never raises on a wrong answer, so a notebook keeps running.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import losses

__all__ = ["check_softmax_t", "check_kd_loss", "check_temperature_limits", "check_distance_matrix", "check_angle_tensor",
           "check_dml_loss", "check_detach", "DETACH_CHOICES", "check_mining", "check_gt_term",
           "GT_TERM_CHOICES"]


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


def _multiple_choice(answer: str, choices: dict, right: str, why_not: dict, why_right: str) -> bool:
    """Report on a multiple-choice ``answer``: not a choice, a wrong one (with ``why_not[answer]``), or right."""
    if answer not in choices:
        return _report(False, f"answer={answer!r} is not one of {sorted(choices)}")
    if answer != right:
        return _report(False, f"not ({answer}): {why_not[answer]}")
    return _report(True, why_right)


def check_detach(answer: str) -> bool:
    """Multiple choice (:data:`DETACH_CHOICES`): what changes in DML if the peer's logits are not detached?"""
    return _multiple_choice(answer, DETACH_CHOICES, "b", _DETACH_WHY,
                            "(b): without detach, L_k also trains peer j towards p_k (for K = 2 both minimise the "
                            "symmetric KL together); DML treats each peer's prediction as a fixed target, like a "
                            "teacher's, and each network follows its own loss only")


# ------------------------------------------------------------------------------ lesson 02: SSLD
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
    from .mining import top_k_per_class
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


# ------------------------------------------------------------------ lesson 06: reading a comparison
def _summary_rows() -> list[dict]:
    """Rows like :func:`kd_lab.compare.read_rows` gives: two methods, one failed run (accuracy None)."""
    acc = {"scratch": [81.2, 82.6, 80.9], "kd": [85.1, 86.9, 85.8]}
    rows = [{"method": m, "seed": s, "status": "ok", "accuracy": a} for m, v in acc.items() for s, a in enumerate(v)]
    return rows + [{"method": "kd", "seed": 3, "status": "failed", "accuracy": None}]


def _summary_mistake(out, rows, method) -> str:
    vals = torch.tensor([r["accuracy"] for r in rows if r["method"] == method and r["status"] == "ok"],
                        dtype=torch.float64)
    everyone = torch.tensor([r["accuracy"] for r in rows if r["status"] == "ok"], dtype=torch.float64)
    if abs(out[0] - float(everyone.mean())) < 1e-6:
        return "the mean is over every method's runs: keep only the rows of `method`"
    if abs(out[0] - float(vals.mean())) > 1e-6:
        return f"mean {out[0]:.4f} differs from {float(vals.mean()):.4f}"
    if abs(out[1] - float(vals.std(unbiased=False))) < 1e-6:
        return "that is the population std (divide by n): seeds are a sample, divide by n − 1 (torch's default)"
    return f"std {out[1]:.4f} differs from the sample std of the seeds"


def check_seed_summary(fn) -> bool:
    """``fn(rows, method) -> (mean, std)``: the mean and sample std (n − 1) of the test accuracy of the ``ok``
    runs of ``method`` in comparison rows (dicts with method, seed, status, accuracy)."""
    rows = _summary_rows()
    for method in ("kd", "scratch"):
        out, problem = _call(fn, [dict(r) for r in rows], method)
        if problem and "None" in problem:
            problem += " (a failed run's accuracy is None: keep the rows whose status is 'ok')"
        if problem is None and (not isinstance(out, (tuple, list)) or len(out) != 2):
            problem = f"return a pair (mean, std), got {out!r}"
        if problem is None:
            want = torch.tensor([r["accuracy"] for r in rows if r["method"] == method and r["status"] == "ok"],
                                dtype=torch.float64)
            if abs(float(out[0]) - float(want.mean())) < 1e-6 and abs(float(out[1]) - float(want.std())) < 1e-6:
                continue
            problem = f"method {method!r}: {_summary_mistake([float(v) for v in out], rows, method)}"
        return _report(False, problem)
    return _report(True, "mean and sample std over the ok runs of one method, failed runs left out")


def _pareto(points: dict, sign: float = 1.0) -> set:
    """Methods no other method beats: at least as accurate and at least as cheap, one of them strictly."""
    def beats(a, b):
        return a[0] >= b[0] and sign * a[1] <= sign * b[1] and (a[0] > b[0] or a[1] != b[1])
    return {m for m, p in points.items() if not any(beats(q, p) for n, q in points.items() if n != m)}


def _pareto_cases() -> list[dict]:
    g = torch.Generator().manual_seed(6)
    rand = {f"m{i}": (float(a), float(c)) for i, (a, c) in
            enumerate(zip(80 + 8 * torch.rand(12, generator=g), 10 + 90 * torch.rand(12, generator=g)))}
    return [{"scratch": (82.0, 15.0), "kd": (86.0, 40.0), "dkd": (84.0, 42.0), "dml": (85.0, 30.0)},
            {"a": (80.0, 10.0), "b": (80.0, 10.0), "c": (80.0, 12.0)}, rand]


def check_pareto_front(fn) -> bool:
    """``fn(points) -> names``: the methods on the Pareto front of ``points`` = {method: (accuracy, cost)} —
    those that no other method matches or beats on both (accuracy ≥, cost ≤, one of them strictly)."""
    for points in _pareto_cases():
        out, problem = _call(fn, dict(points))
        if problem is None and (out is None or isinstance(out, str)):
            problem = f"return a list or set of method names, got {out!r}"
        if problem:
            return _report(False, problem)
        got, want = set(out), _pareto(points)
        if got == want:
            continue
        if got == _pareto(points, -1.0):
            return _report(False, "you kept the most expensive methods: a lower cost is better")
        extra, missing = sorted(got - want), sorted(want - got)
        if extra:
            m = extra[0]
            by = next(n for n, q in points.items() if n != m and m not in _pareto({m: points[m], n: q}))
            return _report(False, f"{m} {points[m]} is not on the front: {by} {points[by]} is at least as accurate "
                                  f"and at least as cheap")
        return _report(False, f"{missing[0]} {points[missing[0]]} is on the front: no other method is more accurate "
                              f"at no more cost, or cheaper at no less accuracy (an equal point does not beat it)")
    return _report(True, "your front keeps exactly the methods no other beats on accuracy and cost, ties included")


__all__ += ["check_seed_summary", "check_pareto_front"]


# ------------------------------------------------------------------------ lesson 04: OFD (Heo et al. 2019)
_MARGIN_CASES = ((1.0, 0.0), (-0.5, 0.2), (2.0, -1.0), (0.3, 0.6), (1.0, 4.0), (0.5, -2.0))   # (γ, β) per channel


def _margin_bn() -> torch.nn.BatchNorm2d:
    """A BatchNorm2d whose channels have the (γ, β) of ``_MARGIN_CASES`` (one negative γ, one β/|γ| = 4 where
    the fallback applies) and running statistics that are not the defaults, so that using them shows."""
    bn = torch.nn.BatchNorm2d(len(_MARGIN_CASES))
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([g for g, _ in _MARGIN_CASES]))
        bn.bias.copy_(torch.tensor([b for _, b in _MARGIN_CASES]))
        bn.running_mean.fill_(0.7)
        bn.running_var.fill_(2.0)
    return bn


def _margin_guesses(bn) -> dict[str, torch.Tensor]:
    """Common wrong margins -> what they compute (on the channels where P(x < 0) > 0.001)."""
    import math
    g, b = bn.weight.detach().float(), bn.bias.detach().float()
    pdf = lambda z: torch.exp(-0.5 * z ** 2) / math.sqrt(2 * math.pi)  # noqa: E731
    s, z = g.abs(), b / g.abs()
    return {"use |γ|: the BN's weight γ can be negative, and the standard deviation of x is |γ|":
            b - g * pdf(b / g) / torch.special.ndtr(-b / g),
            "divide by P(x < 0) = Φ(−β/|γ|), not by Φ(β/|γ|)": b - s * pdf(z) / torch.special.ndtr(z),
            "that is E[x | x > 0]; the margin is the mean of the *negative* part, β − |γ|·φ(z)/Φ(−z)":
            b + s * pdf(z) / torch.special.ndtr(z),
            "the division by P(x < 0) = Φ(−β/|γ|) is missing (E[x | x<0] = β − |γ|·φ(z)/Φ(−z))": b - s * pdf(z),
            "use the affine parameters (weight γ, bias β), not the running statistics":
            bn.running_mean - bn.running_var.sqrt() * pdf(bn.running_mean / bn.running_var.sqrt())
            / torch.special.ndtr(-bn.running_mean / bn.running_var.sqrt())}


def check_ofd_margin(fn) -> bool:
    """``fn(bn) -> (C,)``: OFD's margin m = E[x | x < 0] for x ~ N(β, γ²) of a BatchNorm (β = bias, γ = weight),
    m = β − |γ|·φ(β/|γ|)/Φ(−β/|γ|), and −3|γ| where Φ(−β/|γ|) ≤ 0.001 (Heo et al. 2019)."""
    bn = _margin_bn()
    out, problem = _call(fn, bn)
    problem = problem or _check_tensor(out, (len(_MARGIN_CASES),))
    if problem:
        return _report(False, problem)
    out, want = out.detach().float(), losses.ofd_margin(bn)
    regular = torch.special.ndtr(-bn.bias / bn.weight.abs()).detach() > 1e-3
    if torch.allclose(out, want, rtol=1e-4, atol=1e-5):
        return _report(True, "your margin matches kd_lab.losses.ofd_margin on 6 channels (a negative γ and the "
                             "−3|γ| fallback included)")
    if torch.allclose(out[regular], want[regular], rtol=1e-4, atol=1e-5):
        c = int((~regular).nonzero()[0])
        return _report(False, f"channel {c} (γ = {_MARGIN_CASES[c][0]}, β = {_MARGIN_CASES[c][1]}): x is almost never "
                              f"negative there (Φ(−β/|γ|) ≤ 0.001); OFD uses −3|γ| = {float(want[c]):.2f} instead, got "
                              f"{float(out[c]):.4g}")
    for hint, guess in _margin_guesses(bn).items():
        if torch.allclose(out[regular], guess.detach().float()[regular], rtol=1e-4, atol=1e-5):
            return _report(False, hint)
    c = int((~torch.isclose(out, want, rtol=1e-4, atol=1e-5)).nonzero()[0])
    return _report(False, f"channel {c} (γ = {_MARGIN_CASES[c][0]}, β = {_MARGIN_CASES[c][1]}): expected "
                          f"{float(want[c]):.4f}, got {float(out[c]):.4f}")


# (student s, target t', should the loss count here?) -- one of each case of OFD's partial L2
_MASK_CASES = ((0.5, 1.0, True), (2.0, 1.0, True), (-0.2, -0.5, True), (0.3, -0.5, True),
               (-1.0, -0.5, False), (-0.5, -0.5, False), (0.0, 0.0, False), (1.0, 1.0, True))


def _mask_hint(out: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> str:
    """Name the mistake behind a wrong partial-L2 mask, or point at the first wrong case."""
    guesses = [(~((s > t) | (t > 0)), "you returned where the loss is *skipped*: the mask is where it counts"),
               (t > 0, "you keep only t' > 0; keep also s > t': a student above a negative target (s = −0.2, "
                       "t' = −0.5) is pushed down to it"),
               (s > t, "you keep only s > t'; keep also t' > 0: a student below a positive target (s = 0.5, t' = 1) "
                       "must rise to it"),
               ((s > 0) | (t > 0), "compare the student with the target t', not with 0"),
               ((s >= t) | (t > 0), "use a strict s > t': where s = t' ≤ 0 nothing is left to learn"),
               ((s > t) & (t > 0), "combine the two conditions with *or*, not *and*")]
    for guess, hint in guesses:
        if torch.equal(out, guess):
            return hint
    i = int((out != ((s > t) | (t > 0))).flatten().nonzero()[0])
    si, ti = float(s.flatten()[i]), float(t.flatten()[i])
    return f"at s = {si:.2f}, t' = {ti:.2f} the loss should {'count' if (si > ti or ti > 0) else 'be skipped'}"


def _as_mask(out, shape) -> torch.Tensor | str:
    problem = _check_tensor(out, shape)
    if problem:
        return problem
    if out.dtype != torch.bool and not bool(((out == 0) | (out == 1)).all()):
        return "return a boolean mask (or 0/1 values), e.g. (s > t) | (t > 0)"
    return out.bool()


def check_partial_l2_mask(fn) -> bool:
    """``fn(student, target) -> mask``: where OFD's partial L2 counts, (s > t') or (t' > 0), for the student's
    connected feature s and the margin-clipped target t' of the same shape (Heo et al. 2019)."""
    s = torch.tensor([c[0] for c in _MASK_CASES]).view(1, 2, 2, 2)
    t = torch.tensor([c[1] for c in _MASK_CASES]).view(1, 2, 2, 2)
    g = torch.Generator().manual_seed(4)
    rand_t = torch.maximum(torch.randn(2, 3, 4, 4, generator=g), torch.tensor(-0.6))
    for s_case, t_case in ((s, t), (torch.randn(2, 3, 4, 4, generator=g), rand_t)):
        out, problem = _call(fn, s_case.clone(), t_case.clone())
        out = problem or _as_mask(out, s_case.shape)
        if isinstance(out, str):
            return _report(False, out)
        if not torch.equal(out, losses.ofd_mask(s_case, t_case)):
            return _report(False, _mask_hint(out, s_case, t_case))
    return _report(True, "your mask matches kd_lab.losses.ofd_mask on the 8 hand-made cases and a random batch")


__all__ += ["check_ofd_margin", "check_partial_l2_mask"]
