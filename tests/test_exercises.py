"""The self-checks accept right answers and name what is wrong in wrong ones."""
import importlib

import pytest
import torch
from conftest import assert_exports_union_of_families

from kd_lab import exercises, losses


def not_done(*args):
    raise NotImplementedError


def _binary(z, y, T):
    p_y = torch.softmax(z / T, 1).gather(1, y[:, None])
    return torch.cat([p_y, 1 - p_y], 1)


def right_tckd(s, t, y, T):
    b_s, b_t = _binary(s, y, T), _binary(t, y, T)
    return T * T * (b_t * (b_t.log() - b_s.log())).sum(1).mean()


@pytest.mark.parametrize("fn,message", [
    (right_tckd, "✅ your TCKD matches kd_lab.losses.dkd_parts"),
    (lambda s, t, y, T: losses.dkd_parts(s, t, y, T)[0], "✅"),
    (lambda s, t, y, T: right_tckd(s, t, y, T) / T ** 2, "the T² factor is missing"),
    (lambda s, t, y, T: right_tckd(t, s, y, T), "wrong direction"),
    (lambda s, t, y, T: T * T * (_binary(t, y, T)[:, 0] * (_binary(t, y, T)[:, 0].log()
                                                          - _binary(s, y, T)[:, 0].log())).mean(),
     "add the non-target entry"),
    (lambda s, t, y, T: losses.kd_loss(s, t, T), "this is the whole KD loss"),
    (lambda s, t, y, T: right_tckd(s, t, y, 1.0) * T * T, "taken at T = 1"),
    (lambda s, t, y, T: right_tckd(s, t, y, T) * len(s), "you summed without averaging"),
    (lambda s, t, y, T: right_tckd(s, t, y, T) + 1, "expected"),
    (lambda s, t, y, T: right_tckd(s, t, y, T).reshape(1), "expected shape (), got (1,)"),
    (not_done, "not implemented yet"),
])
def test_check_tckd(capsys, fn, message):
    ok = exercises.check_tckd(fn)
    assert message in capsys.readouterr().out and ok == message.startswith("✅")


def _entropy(z, T):
    p = torch.softmax(z.double() / T, -1)
    return float(-(p * p.log()).sum())


def bisect_temperature(z, target, log=torch.log, divide=True):
    lo, hi = 1e-3, 1e3
    for _ in range(100):
        mid = (lo * hi) ** 0.5
        p = torch.softmax(z.double() / mid if divide else z.double() * mid, -1)
        h = float(-(p * log(p.clamp_min(1e-300))).sum())
        lo, hi = (mid, hi) if (h < target) == divide else (lo, mid)
    return (lo * hi) ** 0.5


@pytest.mark.parametrize("fn,message", [
    (bisect_temperature, "✅ your temperatures reach the target entropies"),
    (lambda z, h: torch.tensor(bisect_temperature(z, h)), "✅"),
    (lambda z, h: bisect_temperature(z, h, log=torch.log2), "in bits (log2)"),
    (lambda z, h: bisect_temperature(z, h, divide=False), "multiplied by T"),
    (lambda z, h: 1.0, "raise T"),
    (lambda z, h: 1000.0, "lower T"),
    (lambda z, h: -1.0, "expected a positive number T, got -1.0"),
    (lambda z, h: None, "expected a positive number T, got None"),
    (not_done, "not implemented yet"),
])
def test_check_entropy_temperature(capsys, fn, message):
    ok = exercises.check_entropy_temperature(fn)
    assert message in capsys.readouterr().out and ok == message.startswith("✅")


RECORD = {"pairs": 3, "diff_mean": 2.4, "ci_low": 0.9, "ci_high": 3.9}


@pytest.mark.parametrize("prediction,message", [
    (None, "❌ write your prediction first"),
    ("two", "must be a number of points, got 'two'"),
    (float("nan"), "must be a number of points"),
    (True, "must be a number of points"),
    (2.0, "✅ KD's gain: you predicted +2.00, measured +2.40 points (95 % CI +0.90 … +3.90) over 3 seeds; "
          "off by 0.40"),
    (3.8, "✅"),                                        # inside the interval, beyond the tolerance
    (6, "3.60 points too high"),
    (-1.0, "3.40 points too low — and the sign is wrong"),
])
def test_check_prediction(capsys, prediction, message):
    ok = exercises.check_prediction(prediction, RECORD, what="KD's gain")
    assert message in capsys.readouterr().out and ok == message.startswith("✅")


def test_check_prediction_without_a_result_or_an_interval(capsys):
    assert not exercises.check_prediction(1.0, {"pairs": 0, "diff_mean": float("nan"), "ci_low": float("nan"),
                                                "ci_high": float("nan")})
    assert "not in the results file yet" in capsys.readouterr().out
    one = {"pairs": 1, "diff_mean": 1.0, "ci_low": float("nan"), "ci_high": float("nan")}
    assert exercises.check_prediction(1.5, one)
    assert "measured +1.00 points over 1 seeds; off by 0.50" in capsys.readouterr().out


def test_check_temperature_limits(capsys):
    assert exercises.check_temperature_limits("uniform", "one-hot")
    assert not exercises.check_temperature_limits("one-hot", "one-hot")
    assert "1/K (uniform)" in capsys.readouterr().out
    assert not exercises.check_temperature_limits("uniform", "sharp")
    assert "'sharp' is not one of" in capsys.readouterr().out


# ------------------------------------------------------------------------------ lesson 05: RKD
def right_distances(e):
    d = (e[:, None] - e[None]).norm(dim=2)                          # (B, B)
    return d / d[~torch.eye(len(e), dtype=torch.bool)].mean()


def raw_distances(e):
    return (e[:, None] - e[None]).norm(dim=2)


@pytest.mark.parametrize("fn,message", [
    (right_distances, "✅ your distance matrix matches"),
    (raw_distances, "raw distances: divide by μ"),
    (lambda e: raw_distances(e) / raw_distances(e).mean(), "the zeros of the diagonal may not count"),
    (lambda e: right_distances(e) ** 2 / (right_distances(e) ** 2)[~torch.eye(len(e), dtype=torch.bool)].mean(),
     "take the square root"),
    (lambda e: right_distances(e) / 0 * 0, "NaN in the result"),
    (lambda e: right_distances(e)[:, :2], "expected shape (6, 6), got (6, 2)"),
    (not_done, "not implemented yet"),
])
def test_check_distance_matrix(capsys, fn, message):
    ok = exercises.check_distance_matrix(fn)
    assert message in capsys.readouterr().out and ok == message.startswith("✅")


def right_angles(e):
    unit = torch.nn.functional.normalize(e[:, None] - e[None], dim=2)      # (B, B, D): e_ij
    return torch.einsum("ijd,kjd->ijk", unit, unit)


def nan_angles(e):
    diff = e[:, None] - e[None]
    unit = diff / diff.norm(dim=2, keepdim=True)                             # 0 / 0 on the diagonal
    return torch.einsum("ijd,kjd->ijk", unit, unit)


def test_check_angle_tensor_by_hand_on_a_right_triangle():
    a = right_angles(exercises._TRIANGLE)
    assert float(a[1, 0, 2]) == pytest.approx(0.0, abs=1e-7)                  # 90° at x_0
    assert float(a[0, 1, 2]) == pytest.approx(2 ** -0.5) and float(a[0, 2, 1]) == pytest.approx(2 ** -0.5)
    assert float(a[0, 1, 0]) == pytest.approx(1.0) and float(a[1, 1, 2]) == 0.0


@pytest.mark.parametrize("fn,message", [
    (right_angles, "✅ your angle tensor is right on the triangle"),
    (lambda e: right_angles(e).permute(1, 0, 2), "the vertex of the angle is the middle index j"),
    (lambda e: torch.einsum("ijd,kjd->ijk", e[:, None] - e[None], e[:, None] - e[None]), "divide each difference"),
    (nan_angles, "NaN in the result"),
    (lambda e: right_angles(e).mean(0), "expected shape (3, 3, 3), got (3, 3)"),
    (lambda e: right_angles(e) * 0.5, "(a[0, 1, 0] should be 1.000, yours is 0.500)"),
    (not_done, "not implemented yet"),
])
def test_check_angle_tensor(capsys, fn, message):
    ok = exercises.check_angle_tensor(fn)
    assert message in capsys.readouterr().out and ok == message.startswith("✅")


# ------------------------------------------------------------------------------- lesson 03: DML
def _kl(p_logits, q_logits, T):
    """T²·KL(softmax(p/T) ‖ softmax(q/T)), mean over the batch."""
    log_p, log_q = torch.log_softmax(p_logits / T, -1), torch.log_softmax(q_logits / T, -1)
    return T * T * (log_p.exp() * (log_p - log_q)).sum(-1).mean()


def dml_with(ce=True, kl_scale=lambda k: 1 / (k - 1), detach=True, reverse=False, t2=True):
    def fn(logits, y, T):
        k, out = len(logits), []
        for i, z in enumerate(logits):
            kl = 0.0
            for j, z_j in enumerate(logits):
                if j != i:
                    peer = z_j.detach() if detach else z_j
                    kl = kl + (_kl(z, peer, T) if reverse else _kl(peer, z, T)) / (1 if t2 else T * T)
            ce_i = torch.nn.functional.cross_entropy(z, y) if ce else 0.0
            out.append(ce_i + kl_scale(k) * kl)
        return out
    return fn


@pytest.mark.parametrize("fn,message", [
    (dml_with(), "✅ your DML losses match"),
    (lambda logits, y, T: torch.stack(dml_with()(logits, y, T)), "✅ your DML losses match"),
    (dml_with(detach=False), "sent a gradient into peer 1's logits: detach the peers"),
    (dml_with(ce=False), "the cross-entropy with the labels is missing"),
    (dml_with(kl_scale=lambda k: 0.0), "the KL to the peers is missing"),
    (dml_with(kl_scale=lambda k: 1.0), "you summed the KL over the peers"),
    (dml_with(kl_scale=lambda k: 1 / k), "average over the K − 1 *other* peers"),
    (dml_with(reverse=True), "wrong direction"),
    (dml_with(t2=False), "the T² factor is missing"),
    (lambda logits, y, T: dml_with()(logits, y, T)[:1], "expected a list of K = 2 losses"),
    (lambda logits, y, T: [v.detach() for v in dml_with()(logits, y, T)], "peer 0's loss has no gradient"),
    (not_done, "not implemented yet"),
])
def test_check_dml_loss(capsys, fn, message):
    ok = exercises.check_dml_loss(fn)
    assert message in capsys.readouterr().out and ok == message.startswith("✅")


def test_check_dml_loss_wants_the_gradient_on_z_k_not_on_the_peers(capsys):
    def detach_the_wrong_one(logits, y, T):
        out = []
        for i, z in enumerate(logits):
            others = [z_j for j, z_j in enumerate(logits) if j != i]
            kl = sum(_kl(z_j, z.detach(), T) for z_j in others) / len(others)
            out.append(torch.nn.functional.cross_entropy(z, y) + kl)
        return out
    assert not exercises.check_dml_loss(detach_the_wrong_one)
    assert "sent a gradient into peer 1" in capsys.readouterr().out


def test_check_detach(capsys):
    assert set(exercises.DETACH_CHOICES) == {"a", "b", "c", "d"}
    assert exercises.check_detach("b")
    assert "✅ (b)" in capsys.readouterr().out
    for wrong in "acd":
        assert not exercises.check_detach(wrong)
        assert f"not ({wrong})" in capsys.readouterr().out
    assert not exercises.check_detach("e")
    assert "'e' is not one of ['a', 'b', 'c', 'd']" in capsys.readouterr().out


# --------------------------------------------------------------------------------- package layout
EXERCISE_FAMILIES = {   # module of kd_lab.exercises -> (its lesson, its public checks and choices)
    "_common": ("every lesson", set()),
    "response": ("lesson 01", {"check_tckd", "check_entropy_temperature", "check_temperature_limits",
                               "check_prediction"}),
    "label_free": ("lesson 02", {"check_mining", "check_gt_term", "GT_TERM_CHOICES"}),
    "mutual": ("lesson 03", {"check_dml_loss", "check_detach", "DETACH_CHOICES", "check_calibration_error"}),
    "feature": ("lesson 04", {"check_margin_value", "MASK_QUESTIONS", "check_mask_by_hand", "check_worst_change",
                              "check_ofd_margin", "check_partial_l2_mask"}),
    "relation": ("lesson 05", {"check_distance_matrix", "check_angle_tensor"}),
    "comparison": ("lesson 06", {"check_seed_summary", "check_pareto_front"}),
}


@pytest.mark.parametrize("family", list(EXERCISE_FAMILIES))
def test_each_exercise_family_defines_its_lessons_checks_and_exercises_reexports_them(family):
    lesson, names = EXERCISE_FAMILIES[family]
    module = importlib.import_module(f"kd_lab.exercises.{family}")
    assert lesson in module.__doc__
    assert sorted(module.__all__) == sorted(names)
    for name in module.__all__:
        value = getattr(module, name)
        if name.startswith("check_"):
            assert value.__module__ == module.__name__, f"{name} is not defined in {module.__name__}"
        assert getattr(exercises, name) is value and name in exercises.__all__


def test_exercises_export_exactly_the_union_of_its_family_modules():
    assert_exports_union_of_families(exercises, EXERCISE_FAMILIES)


def _ece_with(weighting="share", absolute=True, confidence="top", per_bin=True):
    """A student's calibration error, right or with one slip."""
    def fn(probs, y, bins):
        top, pred = probs.max(1)
        conf = top if confidence == "top" else probs[torch.arange(len(y)), y]
        correct = (pred == y).float()
        if not per_bin:
            return float((correct - conf).abs().mean())
        which = (conf * bins).ceil().clamp(1, bins).long() - 1
        gaps, shares = [], []
        for b in range(bins):
            inside = which == b
            if inside.any():
                gap = correct[inside].mean() - conf[inside].mean()
                gaps.append(gap.abs() if absolute else gap)
                shares.append(inside.float().mean())
        if weighting == "share":
            return abs(float(sum(g * s for g, s in zip(gaps, shares))))
        return float(sum(gaps) / len(gaps))
    return fn


@pytest.mark.parametrize("fn, message", [
    (_ece_with(), "✅ your calibration error matches"),
    (lambda p, y, b: torch.tensor(_ece_with()(p, y, b)), "✅ your calibration error matches"),
    (_ece_with(weighting="equal"), "weight each bin by its share of the images"),
    (_ece_with(absolute=False), "the gaps cancel"),
    (_ece_with(confidence="true class"), "the probability of the *predicted* class"),
    (_ece_with(per_bin=False), "compare the mean accuracy and the mean confidence *per bin*"),
    (lambda p, y, b: None, "did you forget `return`"),
    (lambda p, y, b: "0.1", "expected a number"),
    (lambda p, y, b: 0.5, "expected 0."),
])
def test_check_calibration_error(capsys, fn, message):
    ok = exercises.check_calibration_error(fn)
    assert message in capsys.readouterr().out and ok == message.startswith("✅")
