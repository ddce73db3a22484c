"""Measurements the lessons plot: soft targets per class, gradient norms, the omitted-class bias fix."""
import pytest
import torch

from kd_lab import analysis
from kd_lab.models import build_model


def test_soft_targets_by_class_is_the_mean_per_true_class():
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(40, 4, generator=g), torch.tensor([0, 1, 2, 3] * 10)
    m = analysis.soft_targets_by_class(logits, labels, 2.0, 4)
    p = torch.softmax(logits / 2.0, dim=1)
    for c in range(4):
        torch.testing.assert_close(m[c], p[labels == c].mean(0))
    torch.testing.assert_close(m.sum(1), torch.ones(4))


def test_entropy_limits():
    assert float(analysis.entropy(torch.full((10,), 0.1))) == pytest.approx(float(torch.log(torch.tensor(10.0))))
    assert float(analysis.entropy(torch.eye(10)[0])) == pytest.approx(0.0, abs=1e-6)


def test_gradient_norms_differ_by_t_squared():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(8, 10, generator=g), torch.randn(8, 10, generator=g) * 3
    temps = [1.0, 2.0, 4.0, 8.0]
    norms = analysis.kd_gradient_norms(s, t, temps)
    for temp, a, b in zip(temps, norms["with T² (kd_loss)"], norms["without T²"]):
        assert a == pytest.approx(b * temp ** 2)
    # without T² the soft-target gradient shrinks roughly like 1/T² at high T (Hinton et al. 2015, sec. 2)
    assert norms["without T²"][-1] < norms["without T²"][0] / 10


def test_without_class_and_bias_shift():
    labels = torch.tensor([0, 1, 2, 1, 0, 2])
    assert analysis.without_class(labels, 1).tolist() == [0, 2, 4, 5]
    assert analysis.without_class(labels, 2, torch.tensor([1, 2, 5])).tolist() == [1]
    model = build_model("mlp")
    shifted = analysis.shift_class_bias(model, 3, 2.5)
    diff = shifted.classifier.bias.detach() - model.classifier.bias.detach()
    assert diff[3] == pytest.approx(2.5) and diff.abs().sum() == pytest.approx(2.5)


def test_tune_class_bias_picks_the_best_validation_shift(small):
    _, test = small
    torch.manual_seed(0)
    model = build_model("mlp").eval()
    result = analysis.tune_class_bias(model, 3, test, [-5.0, 0.0, 5.0, 50.0])
    accs = [r["accuracy"] for r in result["curve"]]
    assert result["best_shift"] == [-5.0, 0.0, 5.0, 50.0][accs.index(max(accs))]
    assert result["curve"][-1]["class_accuracy"] == 1.0            # a huge bias predicts the class always


def test_softmax_t_rejects_bad_temperature():
    with pytest.raises(ValueError, match="temperature must be > 0, got 0"):
        analysis.softmax_t(torch.zeros(3), 0)


def test_inference_speed_is_positive_and_keeps_the_mode():
    model = build_model("mlp").train()
    speed = analysis.inference_speed(model, torch.randn(64, 1, 28, 28), repeats=2)
    assert speed > 0 and model.training


def test_calibration_error_by_hand():
    """Three images in three confidence bins: |1 − 0.9|, |0 − 0.6|, |1 − 0.8| weighted 1/3 each."""
    p = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    assert analysis.calibration_error(p, torch.tensor([0, 1, 1])) == pytest.approx((0.1 + 0.6 + 0.2) / 3)
    confident_and_right = torch.eye(4)
    assert analysis.calibration_error(confident_and_right, torch.arange(4)) == pytest.approx(0.0)
    assert analysis.calibration_error(confident_and_right, torch.tensor([1, 2, 3, 0])) == pytest.approx(1.0)
    one_bin = analysis.calibration_error(p, torch.tensor([0, 1, 1]), bins=1)     # |2/3 − mean confidence|
    assert one_bin == pytest.approx(abs(2 / 3 - (0.9 + 0.6 + 0.8) / 3))


@pytest.mark.parametrize("probs, y, bins, message", [
    (torch.ones(3), torch.zeros(3, dtype=torch.long), 15, r"needs probs \(N, C\) and y \(N,\)"),
    (torch.ones(3, 2) / 2, torch.zeros(2, dtype=torch.long), 15, r"got shapes \(3, 2\) and \(2,\)"),
    (torch.ones(3, 2) / 2, torch.zeros(3, dtype=torch.long), 0, "bins must be an integer >= 1, got 0"),
])
def test_calibration_error_rejects_bad_input(probs, y, bins, message):
    with pytest.raises(ValueError, match=message):
        analysis.calibration_error(probs, y, bins)
