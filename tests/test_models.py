"""Shapes of every preset and tap, BN-before-tap wiring, the connector, and errors."""
import pytest
import torch

from kd_lab.models import PRESETS, Connector, ConvNet, build_model, count_parameters

# preset -> expected parameter count for 1x28x28 inputs and 10 classes (the preset sizes of docs/design.md)
EXPECTED_PARAMS = {"teacher": (1.0e6, 1.3e6), "teacher-small": (2.5e5, 3.2e5), "student": (6.5e4, 8e4),
                   "student-tiny": (1.5e4, 2.2e4), "mlp": (1e4, 4e4)}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_logits_shape_and_size(preset):
    model = build_model(preset)
    low, high = EXPECTED_PARAMS[preset]
    assert low <= count_parameters(model) <= high
    assert model(torch.randn(4, 1, 28, 28)).shape == (4, 10)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_features_taps_match_feature_info(preset):
    model = build_model(preset).eval()
    out = model(torch.randn(3, 1, 28, 28), features=True)
    assert out.logits.shape == (3, 10)
    assert len(out.taps) == len(model.feature_info) == len(model.preact_bns())
    for tap, info, bn in zip(out.taps, model.feature_info, model.preact_bns()):
        assert tap.shape[:2] == (3, info["channels"])
        assert bn.num_features == info["channels"]
        if info["stride"] is not None:
            assert tap.shape[2:] == (28 // info["stride"], 28 // info["stride"])
    assert out.embedding.shape == (3, model.embedding_dim)
    assert (out.embedding >= 0).all()                     # after the last ReLU


def test_taps_are_pre_relu_outputs_of_their_bn():
    model = build_model("student").eval()
    seen = []
    hooks = [bn.register_forward_hook(lambda m, i, o: seen.append(o)) for bn in model.preact_bns()]
    out = model(torch.randn(2, 1, 28, 28), features=True)
    for h in hooks:
        h.remove()
    for tap, bn_out in zip(out.taps, seen):
        torch.testing.assert_close(tap, bn_out)
    assert any((t < 0).any() for t in out.taps)          # negative values survive: the tap is pre-ReLU


def test_features_and_plain_forward_agree():
    model = build_model("teacher-small").eval()
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(model(x), model(x, features=True).logits)


def test_cifar_shapes():
    model = build_model("student", in_channels=3, num_classes=10, image_size=32)
    out = model(torch.randn(2, 3, 32, 32), features=True)
    assert [t.shape[-1] for t in out.taps] == [32, 16, 8]
    mlp = build_model("mlp", in_channels=3, image_size=32)
    assert mlp(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("teacher,student", [("teacher", "student"), ("teacher", "student-tiny"),
                                             ("teacher-small", "student"), ("student", "student-tiny")])
def test_connector_maps_every_student_tap_to_the_teacher_tap(teacher, student):
    t, s = build_model(teacher).eval(), build_model(student).eval()
    x = torch.randn(2, 1, 28, 28)
    t_taps, s_taps = t(x, features=True).taps, s(x, features=True).taps
    for ti, si, tt, st in zip(t.feature_info, s.feature_info, t_taps, s_taps):
        conn = Connector(si["channels"], ti["channels"]).eval()
        assert conn(st).shape == tt.shape


def test_unknown_preset_names_the_allowed_ones():
    with pytest.raises(ValueError, match=r"unknown model preset 'huge'.*student"):
        build_model("huge")


def test_bad_convnet_arguments():
    with pytest.raises(ValueError, match="depth >= 1"):
        ConvNet(widths=(8,), depth=0)
