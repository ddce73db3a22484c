"""Feature distillation (lesson 04): OFD (Heo et al. 2019), FitNet (Romero et al. 2015), OFD + KD and U-DML
(Du et al. 2021): margins against data, the partial-L2 mask, connectors for every preset pair and their
training, the loss terms against independent computations, bf16 autocast, per-stage distances, the
panel's stage and log-scale knobs, the plots, the exercise checks, bad inputs and the command line."""
import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import views_of_each_evaluation
from matplotlib.figure import Figure
from torch import nn

from kd_lab import exercises, features, losses, viz
from kd_lab.experiments import Setting
from kd_lab.methods import DML, METHODS, OFD, UDML, FitNet, make_method, method_options, parse_stages
from kd_lab.models import PRESETS, ConvNet, build_model
from kd_lab.train import History, fit
from kd_lab.widgets import TrainingPanel

REPO = Path(__file__).resolve().parents[1]
CONV_PRESETS = [name for name, (cls, _) in PRESETS.items() if cls is ConvNet]
FEATURE_METHODS = ["fitnet", "ofd", "ofd+kd"]
pytestmark = pytest.mark.usefixtures("no_pyplot_figures")  # plots never touch pyplot


def fresh(name, seed=0, teacher=None, **options):
    torch.manual_seed(seed)
    teacher = teacher if teacher is not None else build_model("student").eval()
    return make_method(name, build_model("student-tiny"), teacher, **options)


# ------------------------------------------------------------------------- independent references
def phi_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2))


def reference_margin(bn) -> torch.Tensor:
    """E[x | x < 0] for x ~ N(β, γ²), one channel at a time with math.erfc; −3|γ| where P(x < 0) ≤ 0.001."""
    out = []
    for gamma, beta in zip(bn.weight.tolist(), bn.bias.tolist()):
        s = abs(gamma)
        p_neg = phi_cdf(-beta / s)
        pdf = math.exp(-0.5 * (beta / s) ** 2) / math.sqrt(2 * math.pi)
        out.append(beta - s * pdf / p_neg if p_neg > 1e-3 else -3 * s)
    return torch.tensor(out)


def reference_partial_l2(s, t, margin, partial=True):
    """Heo et al. 2019, eq. 4-5, written out: t' = max(t, m); sum over C, H, W where s > t' or t' > 0 (everywhere
    when not ``partial``); batch mean."""
    target = torch.maximum(t.float(), margin.float().view(1, -1, 1, 1))
    keep = ((s.float() > target) | (target > 0)).float() if partial else torch.ones_like(target)
    return ((s.float() - target) ** 2 * keep).sum(dim=(1, 2, 3)).mean()


# ---------------------------------------------------------------------------------- the margin
@pytest.mark.parametrize("train_mode", [True, False], ids=["batch statistics", "running statistics"])
def test_margin_matches_the_negative_mean_of_a_batchnorm_fed_gaussian_data(train_mode):
    """A BatchNorm fed x_c ~ N(μ_c, σ_c²) outputs ≈ N(β_c, γ_c²); the mean of its negative outputs is the margin."""
    gammas, betas = [1.0, -0.5, 2.0, 0.3, 0.8], [0.0, 0.2, -1.0, 0.6, 1.5]
    bn = nn.BatchNorm2d(5, momentum=None)                              # momentum None: cumulative running stats
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(gammas))
        bn.bias.copy_(torch.tensor(betas))
    g = torch.Generator().manual_seed(0)
    mu, sigma = torch.tensor([3.0, -2.0, 0.0, 10.0, 0.5]), torch.tensor([0.5, 2.0, 1.0, 4.0, 0.1])
    gaussian = lambda: mu.view(1, 5, 1, 1) + sigma.view(1, 5, 1, 1) * torch.randn(256, 5, 16, 16, generator=g)  # noqa: E731
    with torch.no_grad():
        for _ in range(10):
            out = bn.train()(gaussian())                               # learns the running statistics
        if not train_mode:
            out = bn.eval()(gaussian())
    empirical = features.negative_mean(out)                           # (5,)
    margin = losses.ofd_margin(bn)
    torch.testing.assert_close(margin, reference_margin(bn), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(empirical, margin, rtol=0.01, atol=0.01)
    assert margin.dtype == torch.float32 and (margin < 0).all()


def test_margin_falls_back_to_minus_three_gamma_when_x_is_almost_never_negative():
    bn = nn.BatchNorm2d(2)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, -2.0]))
        bn.bias.copy_(torch.tensor([2.0, 9.0]))                        # β/|γ| = 4 and 4.5: P(x < 0) < 0.001
    torch.testing.assert_close(losses.ofd_margin(bn), torch.tensor([-1.5, -6.0]))


def test_negative_mean_by_hand_and_errors():
    taps = torch.zeros(2, 2, 2, 1)                                     # (N=2, C=2, H=2, W=1)
    taps[:, 0, :, 0] = torch.tensor([[-1.0, 2.0], [-3.0, 0.0]])        # channel 0: negatives -1, -3
    taps[:, 1, :, 0] = torch.tensor([[5.0, 1.0], [0.0, 2.0]])          # channel 1: none
    out = features.negative_mean(taps)
    assert out[0].item() == pytest.approx(-2.0) and math.isnan(out[1].item())
    torch.testing.assert_close(features.negative_mean(torch.tensor([[-1.0, 1.0], [-2.0, -4.0]])),
                               torch.tensor([-1.5, -4.0]))
    with pytest.raises(ValueError, match=r"taps must be \(N, C, H, W\) or \(N, C\) with N > 0, got shape \(3,\)"):
        features.negative_mean(torch.zeros(3))


# --------------------------------------------------------------------------- the partial L2 mask
def test_partial_l2_maps_of_the_four_cases():
    """Rows: s > t' > 0; s < t' with t' > 0; t' < s < 0 (above a negative target); s < t' ≤ 0 (skipped)."""
    student = torch.tensor([[2.0, 0.5], [-0.2, -1.0]])
    teacher = torch.tensor([[1.0, 1.0], [-0.9, -0.3]])
    maps = features.partial_l2_maps(student, teacher, margin=-0.5)
    torch.testing.assert_close(maps["target"], torch.tensor([[1.0, 1.0], [-0.5, -0.3]]))
    assert maps["mask"].tolist() == [[True, True], [True, False]]
    torch.testing.assert_close(maps["error"], torch.tensor([[1.0, 0.25], [0.09, 0.0]]))
    full = losses.ofd_loss(student[None, None], teacher[None, None], torch.tensor([-0.5]))
    assert maps["error"].sum().item() == pytest.approx(full.item())
    torch.testing.assert_close(maps["teacher"], teacher)
    with pytest.raises(ValueError, match=r"must be \(H, W\) maps of one shape, got \(2, 2\) and \(3, 2\)"):
        features.partial_l2_maps(student, torch.zeros(3, 2), -0.5)


def test_mask_skips_exactly_where_both_are_zero_after_the_relu():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(4, 3, 5, 5, generator=g), torch.randn(4, 3, 5, 5, generator=g)
    margin = torch.tensor([-0.4, -0.8, -0.1])
    target = losses.ofd_target(t, margin)
    skipped = ~losses.ofd_mask(s, target)
    assert skipped.any() and (F.relu(s)[skipped] == 0).all() and (F.relu(target)[skipped] == 0).all()
    assert (s[skipped] <= target[skipped]).all()


# ------------------------------------------------------------------------- connectors and shapes
@pytest.mark.parametrize("student_name,teacher_name", list(itertools.product(CONV_PRESETS, CONV_PRESETS)))
def test_connectors_map_every_student_preset_to_every_teacher_preset(student_name, teacher_name):
    torch.manual_seed(0)
    student, teacher = build_model(student_name), build_model(teacher_name).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        s_taps, t_taps = student(x, features=True).taps, teacher(x, features=True).taps
    for name in ("ofd", "fitnet"):
        m = make_method(name, student, teacher, stages="all")
        assert sorted(m.connectors) == ["0", "1", "2"]
        for i, (s, t) in enumerate(zip(s_taps, t_taps)):
            conv = m.connectors[str(i)].conv
            assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (s.shape[1], t.shape[1], (1, 1))
            assert m.connectors[str(i)](s).shape == t.shape
            if name == "ofd":
                assert m.margin(i).shape == (t.shape[1],)


def test_feature_methods_need_conv_stage_taps(nets):
    student, teacher = nets
    torch.manual_seed(0)
    with pytest.raises(ValueError, match=r"the student \(MLP\) has no convolutional stage taps.*not an MLP"):
        make_method("ofd", build_model("mlp"), teacher)
    with pytest.raises(ValueError, match=r"the teacher \(MLP\) has no convolutional stage taps"):
        make_method("fitnet", student, build_model("mlp"))
    with pytest.raises(ValueError, match="do not pair up"):
        make_method("ofd", ConvNet(widths=(8, 16)), teacher)
    with pytest.raises(ValueError, match="method 'ofd' needs a teacher"):
        make_method("ofd", student)


@pytest.mark.parametrize("name", FEATURE_METHODS)
def test_connectors_are_in_the_optimizer_and_are_trained(name, small):
    train, test = small
    m = fresh(name)
    connector_params = list(m.connectors.parameters())
    trainable = {id(p) for p in m.trainable_parameters()}
    assert connector_params and {id(p) for p in connector_params} <= trainable
    assert not {id(p) for p in m.teacher.parameters()} & trainable
    before = [p.detach().clone() for p in connector_params]
    teacher_before = [p.detach().clone() for p in m.teacher.parameters()]
    modes = []
    hook = m.connectors[next(iter(m.connectors))].register_forward_hook(lambda mod, *a: modes.append(mod.training))
    fit(m, train.subset(torch.arange(100)), None, epochs=1, batch_size=50, device="cpu", amp="off", progress=False)
    hook.remove()
    assert modes and all(modes)                                       # connectors train with the student
    assert all(not torch.equal(b, p) for b, p in zip(before, connector_params))
    assert all(torch.equal(b, p) for b, p in zip(teacher_before, m.teacher.parameters()))


# ----------------------------------------------------------------------------- the loss terms
def test_ofd_terms_are_the_weighted_partial_l2_of_every_stage(nets, batch):
    student, teacher = nets
    x, y = batch
    m = make_method("ofd", student, teacher, feature_weight=2e-3).train()
    terms = m.loss_terms(x, y)
    assert list(terms) == ["ce", "ofd_0", "ofd_1", "ofd_2"]
    s = student(x, features=True)
    with torch.no_grad():
        t = teacher(x, features=True)
    torch.testing.assert_close(terms["ce"], F.cross_entropy(s.logits, y))
    for i, bn in enumerate(teacher.preact_bns()):
        margin = reference_margin(bn)
        torch.testing.assert_close(m.margin(i), margin, rtol=1e-5, atol=1e-6)
        want = 2e-3 / 2 ** (2 - i) * reference_partial_l2(m.connectors[str(i)](s.taps[i]), t.taps[i], margin)
        torch.testing.assert_close(terms[f"ofd_{i}"], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("options", [{"margin": False}, {"partial": False}, {"tap": "post"},
                                     {"connector_bn": False}, {"margin": False, "partial": False, "tap": "post"}])
def test_ofd_ablations_are_the_papers_variants_written_out(nets, batch, options):
    """Heo et al. 2019, Table 6: margin 0 (target ReLU(t)), plain L2, taps after the ReLU, a connector without BN."""
    student, teacher = nets
    x, y = batch
    m = make_method("ofd", student, teacher, **options).train()
    terms = m.loss_terms(x, y)
    s = student(x, features=True)
    with torch.no_grad():
        t = teacher(x, features=True)
    post = options.get("tap") == "post"
    for i, bn in enumerate(teacher.preact_bns()):
        margin = reference_margin(bn) if options.get("margin", True) else torch.zeros(bn.num_features)
        torch.testing.assert_close(m.margin(i), margin, rtol=1e-5, atol=1e-6)
        s_i, t_i = (F.relu(s.taps[i]), F.relu(t.taps[i])) if post else (s.taps[i], t.taps[i])
        connector = m.connectors[str(i)]
        assert isinstance(connector.bn, nn.Identity) != options.get("connector_bn", True)
        assert (connector.conv.bias is None) == options.get("connector_bn", True)
        want = 1e-3 / 2 ** (2 - i) * reference_partial_l2(connector(s_i), t_i, margin, options.get("partial", True))
        torch.testing.assert_close(terms[f"ofd_{i}"], want, rtol=1e-5, atol=1e-6)


def test_ofd_with_the_teachers_batchnorm_in_train_mode_uses_batch_statistics_of_a_copy(nets, batch):
    student, teacher = nets
    x, y = batch
    before = [b.running_mean.clone() for b in teacher.preact_bns()]
    m = make_method("ofd", student, teacher, teacher_bn="train").train()
    assert m.teacher is not teacher and m.teacher.training and not teacher.training
    terms = m.loss_terms(x, y)
    m.teacher.eval()
    want = copy_in_train_mode(teacher)(x, features=True)                 # batch statistics, as the official code
    m.train()
    s = student(x, features=True)
    torch.testing.assert_close(terms["ofd_2"], 1e-3 * reference_partial_l2(m.connectors["2"](s.taps[2]),
                                                                           want.taps[2], m.margin(2)),
                               rtol=1e-5, atol=1e-6)
    assert all(torch.equal(b, a.running_mean) for b, a in zip(before, teacher.preact_bns()))   # the caller's: unchanged
    assert not all(torch.equal(b, a.running_mean) for b, a in zip(before, m.teacher.preact_bns()))
    assert m.eval().teacher.training is False


def copy_in_train_mode(model):
    import copy
    clone = copy.deepcopy(model).train()
    return lambda x, features: clone(x, features=features)


def test_fitnet_reads_the_taps_after_the_relu_when_asked(nets, batch):
    student, teacher = nets
    x, y = batch
    m = make_method("fitnet", student, teacher, tap="post", feature_weight=10.0).train()
    s = student(x, features=True)
    with torch.no_grad():
        t = teacher(x, features=True)
    want = 10.0 * F.mse_loss(m.connectors["1"](F.relu(s.taps[1])), F.relu(t.taps[1]))
    torch.testing.assert_close(m.loss_terms(x, y)["fitnet_1"], want)


def test_fitnet_is_the_mse_hint_through_the_regressor_at_the_middle_stage(nets, batch):
    student, teacher = nets
    x, y = batch
    m = make_method("fitnet", student, teacher, feature_weight=3.0).train()
    assert m.stages == (1,) and sorted(m.connectors) == ["1"]
    terms = m.loss_terms(x, y)
    s = student(x, features=True)
    with torch.no_grad():
        t = teacher(x, features=True).taps[1]
    hint = m.connectors["1"](s.taps[1])
    torch.testing.assert_close(terms["fitnet_1"], 3.0 * ((hint - t) ** 2).mean())
    assert list(terms) == ["ce", "fitnet_1"]


def test_ofd_plus_kd_is_kds_terms_plus_ofds(nets, batch):
    student, teacher = nets
    x, y = batch
    both = make_method("ofd+kd", student, teacher, temperature=2.0).train()
    assert both.kd_weight == 0.9 and both.feature_weight == 1e-3
    kd = make_method("kd", student, teacher, temperature=2.0, alpha=0.9).train().loss_terms(x, y)
    ofd = make_method("ofd", student, teacher).train()
    ofd.connectors.load_state_dict(both.connectors.state_dict())
    got, want = both.loss_terms(x, y), {**kd, **{k: v for k, v in ofd.loss_terms(x, y).items() if k != "ce"}}
    assert list(got) == ["ce", "kd", "ofd_0", "ofd_1", "ofd_2"]
    for key, value in want.items():
        torch.testing.assert_close(got[key], value)


@pytest.mark.parametrize("options,keys", [
    ({"stages": "0,2"}, ["ce", "ofd_0", "ofd_2"]),
    ({"stages": "last"}, ["ce", "ofd_2"]),
    ({"stages": [1]}, ["ce", "ofd_1"]),
    ({"feature_weight": 0.0}, ["ce"]),
    ({"kd_weight": 1.0, "stages": 0}, ["kd", "ofd_0"]),
])
def test_stage_choice_and_zero_weights(nets, batch, options, keys):
    student, teacher = nets
    m = make_method("ofd", student, teacher, **options)
    assert list(m.loss_terms(*batch)) == keys
    assert sorted(m.connectors) == [str(i) for i in m.stages]          # a connector per chosen stage


def test_a_stage_keeps_its_weight_when_others_are_left_out(nets, batch):
    student, teacher = nets
    torch.manual_seed(3)
    full = make_method("ofd", student, teacher)
    part = make_method("ofd", student, teacher, stages="0")
    part.connectors.load_state_dict({k: v for k, v in full.connectors.state_dict().items() if k.startswith("0.")})
    torch.testing.assert_close(part.loss_terms(*batch)["ofd_0"], full.loss_terms(*batch)["ofd_0"])
    assert full.stage_weights == {0: 0.25, 1: 0.5, 2: 1.0}


@pytest.mark.parametrize("name", FEATURE_METHODS)
def test_gradients_reach_the_student_and_the_connectors_not_the_teacher(name, batch):
    m = fresh(name).train()
    terms = m.loss_terms(*batch)
    sum(v for k, v in terms.items() if k not in ("ce", "kd")).backward()
    assert all(p.grad is None for p in m.teacher.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.connectors.parameters())
    assert m.student.stages[0].body[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", [*FEATURE_METHODS, "udml"])
def test_bf16_autocast_keeps_the_terms_finite_and_close_to_float32(name, batch):
    m = (udml() if name == "udml" else fresh(name)).eval()
    with torch.no_grad():
        want = m.loss_terms(*batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = m.loss_terms(*batch)
            taps = m.student(batch[0], features=True).taps
    assert taps[0].dtype == torch.bfloat16                            # autocast did run the convolutions in bf16
    assert list(got) == list(want)
    for key, value in got.items():
        assert value.dtype == torch.float32 and torch.isfinite(value), key
        torch.testing.assert_close(value, want[key], rtol=0.03, atol=1e-3)
    if name.startswith("ofd"):
        assert all(m.margin(i).dtype == torch.float32 for i in m.stages)


# --------------------------------------------------------------------------- per-stage distances
def test_epoch_metrics_are_the_relative_distances_on_the_first_256_test_images(small):
    _, test = small
    m = fresh("ofd", stages="1,2")
    x = test.images(torch.arange(256))
    with torch.no_grad():
        s, t = m.student.eval()(x, features=True).taps, m.teacher(x, features=True).taps
        m.connectors.eval()
        want = {}
        for i in (1, 2):
            a, b = F.relu(m.connectors[str(i)](s[i])), F.relu(t[i])
            want[f"feat_dist_{i}"] = float(((a - b) ** 2).sum() / (b ** 2).sum())
    m.train()
    calls = []
    hook = m.teacher.register_forward_hook(lambda *args: calls.append(1))
    got = m.epoch_metrics(test)
    m.epoch_metrics(test)
    hook.remove()
    assert got == pytest.approx(want, rel=1e-5)
    assert len(calls) == 1 and m.training and m.connectors.training   # cached teacher probe; mode restored
    assert m.epoch_metrics(None) == {}


def test_fit_logs_the_per_stage_distance_and_it_falls(small):
    train, test = small
    m = fresh("ofd", feature_weight=1e-2)
    h = fit(m, train, test.subset(torch.arange(256)), epochs=3, batch_size=50, device="cpu", amp="off",
            progress=False)
    for i in range(3):
        values = [e[f"feat_dist_{i}"] for e in h.epochs]
        assert len(values) == 3 and values[-1] < values[0]


def test_relative_distance_by_hand():
    t = torch.tensor([[1.0, -2.0, 3.0]])
    assert features.relative_distance(t, t) == 0.0
    assert features.relative_distance(torch.zeros(1, 3), t) == pytest.approx(1.0)
    assert features.relative_distance(torch.tensor([[2.0, -5.0, 3.0]]), t) == pytest.approx(1 / 10)
    with pytest.raises(ValueError, match=r"student_feat shape \(1, 2\) does not match teacher_feat shape \(1, 3\)"):
        features.relative_distance(torch.zeros(1, 2), t)


# ----------------------------------------------------------------------------------------- U-DML
def udml(seed=0, **options):
    torch.manual_seed(seed)
    return UDML(build_model("student-tiny"), peers="student-tiny", **options)


def test_udml_terms_are_dmls_plus_the_feature_l2_between_the_peers(batch):
    x, y = batch
    m = udml(feature_weight=0.5, stages="1,2").train()
    terms = m.loss_terms(x, y)
    assert list(terms) == ["ce_0", "kl_0", "feat_0", "ce_1", "kl_1", "feat_1"]
    plain = DML(m.peers[0], k=2, peers="student-tiny")
    plain.peers[1] = m.peers[1]
    for key, value in plain.loss_terms(x, y).items():
        torch.testing.assert_close(terms[key], value)
    with torch.no_grad():
        taps = [peer(x, features=True).taps for peer in m.peers]
    want = 0.5 * sum(((taps[0][i] - taps[1][i]) ** 2).mean() for i in (1, 2))
    torch.testing.assert_close(terms["feat_0"], want)
    torch.testing.assert_close(terms["feat_1"], want)


def test_udml_feature_term_sends_no_gradient_to_the_other_peer(batch):
    x, y = batch
    m = udml().train()
    m.loss_terms(x, y)["feat_0"].backward()
    assert all(p.grad is None for p in m.peers[1].parameters())
    assert m.peers[0].stages[2].body[0].weight.grad.abs().sum() > 0


def test_udml_detached_terms_have_the_gradient_of_one_shared_l2(batch):
    """PaddleOCR's U-DML adds one undetached L2 between the peers; the two detached terms give the same update."""
    x, y = batch
    m = udml(feature_weight=2.0).train()
    terms = m.loss_terms(x, y)
    params = list(m.peers.parameters())
    ours = torch.autograd.grad(terms["feat_0"] + terms["feat_1"], params, allow_unused=True)
    f0, f1 = (peer(x, features=True).taps[2] for peer in m.peers)
    shared = torch.autograd.grad(2.0 * F.mse_loss(f0, f1), params, allow_unused=True)
    for a, b in zip(ours, shared):
        if b is None:
            assert a is None or a.abs().sum() == 0
        else:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


def test_udml_alternating_mode_trains_each_peer_in_its_phase(small):
    train, test = small
    m = udml(mode="alternating")
    assert m.phases() == [0, 1]
    assert list(m.loss_terms(*next(train.batches(16, shuffle=False)), 1)) == ["ce_1", "kl_1", "feat_1"]
    h = fit(m, train.subset(torch.arange(100)), test.subset(torch.arange(256)), epochs=1, batch_size=50,
            device="cpu", amp="off", progress=False)
    assert set(h.term_names) == {"ce_0", "kl_0", "feat_0", "ce_1", "kl_1", "feat_1"}
    last = h.epochs[-1]
    assert {"acc_0", "acc_1", "acc_ensemble", "agree_0_1", "feat_dist_2"} <= set(last)
    want = features.peer_feature_distance(list(m.peers), test.subset(torch.arange(256)), [2])
    assert last["feat_dist_2"] == pytest.approx(want["feat_dist_2"], rel=1e-5)


def test_udml_in_paddleocrs_form_has_the_symmetric_pair_term_and_the_feature_terms(batch):
    x, y = batch
    m = udml(symmetric=True).train()
    terms = m.loss_terms(x, y)
    assert list(terms) == ["ce_0", "ce_1", "kl_0_1", "feat_0", "feat_1"]
    z0, z1 = (peer(x) for peer in m.peers)
    torch.testing.assert_close(terms["kl_0_1"], losses.dml_symmetric_loss(z0, z1))


def test_udml_registered_with_its_options():
    assert METHODS["udml"] is UDML and issubclass(UDML, DML) and not UDML.needs_teacher
    assert method_options("udml") == {"k": 2, "peers": "student", "kl_weight": 1.0, "temperature": 1.0,
                                      "mode": "simultaneous", "feature_weight": 1.0, "stages": "last",
                                      "symmetric": False}
    assert udml(k=3).options()["stages"] == "2"


# ------------------------------------------------------------------------------------ bad inputs
def test_registry_and_defaults():
    assert (METHODS["fitnet"], METHODS["ofd"], METHODS["ofd+kd"]) == (FitNet, OFD, OFD)     # ofd+kd: a preset of OFD
    ablations = {"tap": "pre", "connector_bn": True}
    assert method_options("ofd") == {"feature_weight": 1e-3, "stages": "all", "kd_weight": 0.0, "temperature": 4.0,
                                     **ablations, "margin": True, "partial": True, "teacher_bn": "eval"}
    assert method_options("fitnet") == {"feature_weight": 1.0, "stages": "1", "kd_weight": 0.0, "temperature": 4.0,
                                        **ablations}
    assert method_options("ofd+kd")["kd_weight"] == 0.9
    assert fresh("ofd").options() == {"feature_weight": 1e-3, "stages": "0,1,2", "kd_weight": 0.0, "temperature": 4.0,
                                      **ablations, "margin": True, "partial": True, "teacher_bn": "eval"}


@pytest.mark.parametrize("given,want", [("all", (0, 1, 2)), ("last", (2,)), (" 2, 0 ", (0, 2)), (1, (1,)),
                                        ([2, 1, 2], (1, 2)), ((0,), (0,)), ("ALL", (0, 1, 2))])
def test_parse_stages(given, want):
    assert parse_stages(given, 3) == want


@pytest.mark.parametrize("given", ["3", "", "a", "0;1", [], -1, True, [0, 5], 1.0, None, "-1"])
def test_parse_stages_rejects_bad_choices(given):
    with pytest.raises(ValueError, match=rf"stages must name at least one stage in 0..2 .*got {re_repr(given)}"):
        parse_stages(given, 3)


def re_repr(value) -> str:
    import re
    return re.escape(repr(value))


@pytest.mark.parametrize("name,options,message", [
    ("ofd", {"feature_weight": -1.0}, r"feature_weight must be a number >= 0.0, got -1.0"),
    ("fitnet", {"feature_weight": "big"}, r"feature_weight must be a number >= 0.0, got 'big'"),
    ("ofd+kd", {"kd_weight": 1.5}, r"kd_weight must be a number in \[0.0, 1.0\], got 1.5"),
    ("ofd", {"temperature": 0}, r"temperature must be > 0, got 0"),
    ("ofd", {"stages": "4"}, r"stages must name at least one stage in 0..2"),
    ("ofd", {"alpha": 0.5}, r"method 'ofd' has no option\(s\) \['alpha'\]; allowed: \['connector_bn', "
                            r"'feature_weight', 'kd_weight', 'margin', 'partial', 'stages', 'tap', 'teacher_bn', "
                            r"'temperature'\]"),
    ("ofd", {"tap": "after"}, r"tap must be one of \('pre', 'post'\) \(before or after the stage's last ReLU\), "
                              r"got 'after'"),
    ("fitnet", {"connector_bn": 0}, r"connector_bn must be true or false, got 0"),
    ("ofd", {"margin": "no"}, r"margin must be true or false, got 'no'"),
    ("ofd", {"partial": None}, r"partial must be true or false, got None"),
    ("ofd", {"teacher_bn": "frozen"}, r"teacher_bn must be one of \('eval', 'train'\), got 'frozen'"),
])
def test_bad_options_name_the_value(nets, name, options, message):
    student, teacher = nets
    with pytest.raises(ValueError, match=message):
        make_method(name, student, teacher, **options)


def test_udml_bad_inputs():
    with pytest.raises(ValueError, match=r"every peer needs the same architecture; got peers='student-tiny,student'"):
        UDML(build_model("student-tiny"), peers="student-tiny,student")
    with pytest.raises(ValueError, match=r"feature_weight must be a number >= 0.0, got -2"):
        udml(feature_weight=-2)
    with pytest.raises(ValueError, match=r"stages must name at least one stage in 0..2"):
        udml(stages="9")


# --------------------------------------------------------------------------------------- the panel
PANEL_SETTING = Setting(labeled=200, epochs=2, test_size=300, batch_size=50, eval_every=1)


def test_panel_has_a_log_weight_slider_and_a_stage_choice(nets):
    _, teacher = nets
    panel = TrainingPanel("ofd", None, PANEL_SETTING, device="cpu", teacher=teacher, sync=True, redraw_s=0.0)
    assert set(panel.sliders) == {"feature_weight", "stages", "kd_weight", "temperature"}
    weight, stages = panel.sliders["feature_weight"], panel.sliders["stages"]
    assert type(weight).__name__ == "FloatLogSlider" and weight.value == pytest.approx(1e-3)
    assert (weight.min, weight.max, weight.base) == (-5.0, 2.0, 10.0)
    assert type(stages).__name__ == "SelectMultiple" and stages.value == (0, 1, 2)
    assert [label for label, _ in stages.options] == ["stage 0", "stage 1", "stage 2"]


def test_panel_trains_with_the_chosen_stages_and_draws_their_distances(nets):
    _, teacher = nets
    panel = TrainingPanel("ofd+kd", {"feature_weight": 1e-3, "stages": "all", "kd_weight": 0.9, "temperature": 4.0,
                                     "labeled": 200}, PANEL_SETTING, device="cpu", teacher=teacher, sync=True,
                          redraw_s=0.0)
    panel.sliders["feature_weight"].value = 1e-2
    panel.sliders["stages"].value = (1, 2)
    panel.sliders["kd_weight"].value = 0.5
    panel.train_button.click()
    h = panel.runs[-1]["history"]
    assert h.status == "finished" and h.config["feature_weight"] == pytest.approx(1e-2)
    assert h.config["stages"] == "1,2" and h.config["kd_weight"] == 0.5
    assert set(h.term_names) == {"ce", "kd", "ofd_1", "ofd_2"}
    legend = {t.get_text() for t in panel.figure.axes[0].get_legend().get_texts()}
    assert {"ofd_1 ×λ_F=0.01·w_i", "ofd_2 ×λ_F=0.01·w_i", "kd ×κ=0.5"} <= legend
    assert not any(t.startswith("ofd_0") for t in legend)
    lines = {line.get_label(): line for line in panel.metrics_figure.axes[0].lines}
    assert set(lines) == {"feat_dist_1", "feat_dist_2"}
    assert list(lines["feat_dist_2"].get_ydata()) == pytest.approx([e["feat_dist_2"] for e in h.epochs])
    assert "(1, 2)" in panel.table.value


def test_panel_reports_an_empty_stage_choice(nets):
    _, teacher = nets
    panel = TrainingPanel("ofd", {"stages": "all"}, PANEL_SETTING, device="cpu", teacher=teacher, sync=True)
    panel.sliders["stages"].value = ()
    panel.train()
    assert panel.runs[-1]["status"] == "failed"
    assert "stages must name at least one stage" in panel.status.value


# ----------------------------------------------------------------------------------------- plots
def test_plot_margin_histograms_marks_the_margin_and_the_negative_mean():
    g = torch.Generator().manual_seed(0)
    taps = torch.randn(50, 6, 4, 4, generator=g) + torch.arange(6.0).view(1, 6, 1, 1) * 0.2
    margins = torch.tensor([-0.8, -0.7, -0.6, -0.5, -0.4, -0.3])
    fig = viz.plot_margin_histograms(taps, margins, channels=[0, 3, 5], ncols=2)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    ax = fig.axes[1]
    assert ax.get_title() == "channel 3"
    xs = [line.get_xdata()[0] for line in ax.lines]
    empirical = float(taps[:, 3][taps[:, 3] < 0].mean())
    assert xs == pytest.approx([0.0, -0.5, empirical], rel=1e-5)
    heights = sum(p.get_height() * p.get_width() for p in ax.patches)
    assert heights == pytest.approx(1.0, rel=1e-6)                   # a density histogram
    assert "BN margin -0.50" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(viz.plot_margin_histograms(taps, margins).axes) == 6
    with pytest.raises(ValueError, match=r"channels must be indices in \[0, 5\], got \[6\]"):
        viz.plot_margin_histograms(taps, margins, channels=[6])
    with pytest.raises(ValueError, match="with C = 4 margins"):
        viz.plot_margin_histograms(taps, margins[:4])


def test_plot_margin_agreement_scatters_each_stage_against_the_diagonal():
    fig = viz.plot_margin_agreement({"stage 0": (torch.tensor([-0.5, -0.3]), torch.tensor([-0.45, float("nan")])),
                                     "stage 1": ([-1.0, -0.2, -0.4], [-0.9, -0.25, -0.4])})
    ax = fig.axes[0]
    assert [c.get_offsets().shape[0] for c in ax.collections] == [1, 3]
    assert ax.collections[0].get_offsets()[0].tolist() == pytest.approx([-0.5, -0.45])
    diagonal = ax.lines[0]
    assert list(diagonal.get_xdata()) == list(diagonal.get_ydata()) and min(diagonal.get_xdata()) <= -1.0
    assert "1 channels" in ax.get_legend().get_texts()[0].get_text()
    with pytest.raises(ValueError, match="'s': 2 margins but 1 empirical values"):
        viz.plot_margin_agreement({"s": ([-1.0, -2.0], [-1.0])})


def test_plot_partial_l2_draws_the_five_maps_with_a_shared_scale():
    maps = features.partial_l2_maps(torch.tensor([[2.0, 0.5], [-0.2, -1.0]]), torch.tensor([[1.0, 1.0], [-0.9, -0.3]]),
                                    -0.5)
    fig = viz.plot_partial_l2(maps, suptitle="one channel")
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 5
    assert [ax.get_title().split("\n")[0] for ax in panels] == [
        "teacher t (pre-ReLU)", "student s through connector", "target t' = max(t, m)", "mask: s > t' or t' > 0",
        "loss: mask · (s − t')²"]
    for ax, key in zip(panels, ("teacher", "student", "target", "mask", "error")):
        np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), maps[key].float().numpy())
    assert panels[0].images[0].get_clim() == panels[1].images[0].get_clim() == (-2.0, 2.0)
    assert "sum 1.34" in panels[4].get_title() and "active on 75 %" in panels[4].get_title()
    with pytest.raises(ValueError, match=r"maps is missing \['mask', 'error'\]"):
        viz.plot_partial_l2({k: v for k, v in maps.items() if k not in ("mask", "error")})


def test_plot_feature_maps_draws_rows_of_channels():
    g = torch.Generator().manual_seed(2)
    rows = {"teacher": torch.randn(8, 7, 7, generator=g), "student": torch.randn(4, 7, 7, generator=g) * 3}
    fig = viz.plot_feature_maps(rows, channels=[0, 2, 3], title="one image")
    grid = [ax for ax in fig.axes if ax.images]
    assert len(grid) == 6 and grid[0].get_ylabel() == "teacher" and grid[3].get_ylabel() == "student"
    assert [ax.get_title() for ax in grid[:3]] == ["ch 0", "ch 2", "ch 3"]
    np.testing.assert_allclose(np.asarray(grid[4].images[0].get_array()), rows["student"][2].numpy())
    for r, m in enumerate(rows.values()):                                     # each row on its own scale
        span = float(m[[0, 2, 3]].abs().max())
        assert grid[3 * r].images[0].get_clim() == pytest.approx((-span, span))
    assert len([ax for ax in viz.plot_feature_maps(rows).axes if ax.images]) == 8     # first 4 channels each
    with pytest.raises(ValueError, match=r"channels \[0, 5\] out of range for rows with \{'student': 4\} channels"):
        viz.plot_feature_maps(rows, channels=[0, 5])
    with pytest.raises(ValueError, match="rows must map labels to"):
        viz.plot_feature_maps({"flat": torch.zeros(3, 4)})


def test_plot_feature_maps_shows_the_input_image_in_a_first_column():
    g = torch.Generator().manual_seed(3)
    rows = {"teacher": torch.randn(4, 7, 7, generator=g), "student": torch.randn(4, 7, 7, generator=g)}
    picture = torch.rand(1, 28, 28, generator=g)
    fig = viz.plot_feature_maps(rows, channels=[0, 1], image=picture)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 5 and shown[0].get_title() == "input"                  # the image, then 2 × 2 maps
    np.testing.assert_allclose(np.asarray(shown[0].images[0].get_array()), picture[0].numpy())
    assert shown[0].images[0].get_cmap().name == "gray"
    assert shown[1].get_ylabel() == "teacher" and shown[3].get_ylabel() == "student"
    np.testing.assert_allclose(np.asarray(shown[4].images[0].get_array()), rows["student"][1].numpy())
    with pytest.raises(ValueError, match=r"image must be \(H, W\) or \(1, H, W\), got shape \(3, 28, 28\)"):
        viz.plot_feature_maps(rows, image=torch.zeros(3, 28, 28))


def test_plot_stage_distances_draws_one_line_per_measured_stage():
    h = History(epochs=[{"epoch": 1, "feat_dist_1": 0.9, "feat_dist_2": 0.8},
                        {"epoch": 2, "feat_dist_1": 0.5, "feat_dist_2": 0.4}])
    ax = viz.plot_stage_distances(h).axes[0]
    zero_map = "1: a student map of zeros"                                     # the reference line, dashed
    assert [line.get_label() for line in ax.lines] == ["feat_dist_1", "feat_dist_2", zero_map]
    assert list(ax.lines[0].get_ydata()) == [0.9, 0.5] and list(ax.lines[2].get_ydata()) == [1.0, 1.0]
    assert ax.get_title() == "Feature distance to the teacher, per stage"
    assert ax.get_yscale() == "log" and ax.get_ylim()[1] > 1.0
    assert zero_map in [t.get_text() for t in ax.get_legend().get_texts()]
    runs = viz.plot_stage_distances([("OFD", h), ("FitNet", h)], stages=[2]).axes[0]
    assert [line.get_label() for line in runs.lines] == ["OFD", "FitNet", zero_map]


# ------------------------------------------------------------------------------------- exercises
def _teacher_like_bn() -> torch.nn.BatchNorm2d:
    """A BatchNorm with (γ, β) per channel: ordinary, a negative γ, and one almost never negative (the fallback)."""
    bn = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, -0.4, 0.2]))
        bn.bias.copy_(torch.tensor([0.25, -0.1, 1.0]))
        bn.running_mean.fill_(0.7)
        bn.running_var.fill_(2.0)
    return bn


def test_check_margin_value_accepts_a_hand_computed_margin_and_names_slips(capsys):
    bn = _teacher_like_bn()
    m = losses.ofd_margin(bn)
    # by hand: z = 0.5, φ(0.5) = 0.35207, Φ(−0.5) = 0.30854: m = 0.25 − 0.5 · 1.14108 = −0.32054
    assert float(m[0]) == pytest.approx(-0.32054, abs=1e-4)
    assert exercises.check_margin_value(-0.3205, bn, 0) and exercises.check_margin_value(float(m[1]), bn, 1)
    capsys.readouterr()
    pdf = lambda z: math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    for value, channel, hint in [
        (0.25 + 0.5 * pdf(0.5) / cdf(0.5), 0, "that is E[x | x > 0]"),
        (0.25 - 0.5 * pdf(0.5), 0, "the division by P(x < 0)"),
        (0.25 - 0.5 * pdf(0.5) / cdf(0.5), 0, "not by Φ(β/|γ|)"),
        (-0.1 + 0.4 * pdf(0.25) / cdf(-0.25), 1, "use |γ|"),
        (0.0, 2, "uses −3|γ| = -0.6000 there"),
        (5.0, 0, "is too high. Steps: z = β/|γ|"),
        (None, 0, "compute the margin first"),
        ("-0.32", 0, "the margin must be a number, got '-0.32'"),
    ]:
        assert not exercises.check_margin_value(value, bn, channel)
        assert hint in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"channel must be in \[0, 2\], got 3"):
        exercises.check_margin_value(0.0, bn, 3)


def test_check_mask_by_hand_explains_each_wrong_case(capsys):
    truth = losses.ofd_mask(*(torch.tensor([v]) for v in zip(*exercises.MASK_QUESTIONS)))[0].tolist()
    assert truth == [True, True, False, False]                     # one of each case of the partial L2
    assert exercises.check_mask_by_hand(tuple(truth)) and "all 4 right" in capsys.readouterr().out
    assert not exercises.check_mask_by_hand([True, False, True, False])
    out = capsys.readouterr().out
    assert "2 of 4 wrong" in out and "(-0.2, -0.5): the loss counts" in out
    assert "(-1.0, -0.5): the loss is skipped" in out
    for bad, hint in [(None, "decide first"), ([True] * 3, "give 4 True/False values"),
                      ([1, 1, 0, 0], "give 4 True/False values"), ("TTFF", "give 4 True/False values")]:
        assert not exercises.check_mask_by_hand(bad)
        assert hint in capsys.readouterr().out


def _effect(mean, low, high, pairs=3):
    return {"diff_mean": mean, "ci_low": low, "ci_high": high, "pairs": pairs}


def test_check_worst_change_ranks_the_measured_changes(capsys):
    effects = {"margin 0": _effect(-1.6, -3.4, 0.2), "taps after the ReLU": _effect(-2.1, -5.5, 1.4),
               "plain L2": _effect(1.8, 0.6, 2.9), "not run": _effect(math.nan, math.nan, math.nan, pairs=0)}
    assert exercises.check_worst_change("taps after the ReLU", effects)
    out = capsys.readouterr().out
    assert out.index("taps after the ReLU: -2.10") < out.index("margin 0: -1.60") < out.index("plain L2: +1.80")
    assert "not run" not in out.split("✅")[0]
    assert exercises.check_worst_change("margin 0", effects)       # inside the interval of the lowest
    assert "cannot be told apart" in capsys.readouterr().out
    assert not exercises.check_worst_change("plain L2", effects)
    assert "'taps after the ReLU' lowered it most" in capsys.readouterr().out
    for answer, hint in [(None, "predict first"), ("margin", "is not one of the changes measured"),
                         ("not run", "is not in the results file yet")]:
        assert not exercises.check_worst_change(answer, effects)
        assert hint in capsys.readouterr().out


# --------------------------------------------------------------------------------------------- CLI
@pytest.mark.parametrize("method,sets,terms", [
    ("ofd", ["stages=0,2"], {"ce", "ofd_0", "ofd_2"}),
    ("fitnet", ["feature_weight=2"], {"ce", "fitnet_1"}),
    ("ofd+kd", [], {"ce", "kd", "ofd_0", "ofd_1", "ofd_2"}),
    ("udml", ["stages=all"], {"ce_0", "kl_0", "feat_0", "ce_1", "kl_1", "feat_1"}),
])
def test_cli_runs_the_feature_methods(method, sets, terms):
    args = ["run", method, "--epochs", "1", "--labeled", "100", "--test-size", "100", "--device", "cpu", "--json"]
    args += [arg for s in sets for arg in ("--set", s)]
    done = subprocess.run([sys.executable, "-m", "kd_lab", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "KD_LAB_QUICK": "1"}, timeout=300)
    assert done.returncode == 0, done.stderr
    record = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))
    assert record["method"] == method and record["status"] == "finished"
    assert set(record["final_loss_terms"]) == {"total", *terms}


def test_importing_the_features_module_leaves_global_state_alone():
    script = ("import torch, sys\nrng = torch.get_rng_state().clone()\nimport kd_lab.features\n"
              "assert torch.equal(rng, torch.get_rng_state())\nassert 'matplotlib.pyplot' not in sys.modules\n"
              "print('clean')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "clean", done.stderr


def test_the_ofd_panel_redraws_its_feature_view_at_each_evaluation(nets):
    """Lesson 04's live view: per stage, the teacher's target after the margin, the student's connector output and
    their difference on one probe image, each row on its own symmetric scale; the student's rows change."""
    _, teacher = nets
    panel = TrainingPanel("ofd", {"feature_weight": 1e-3, "stages": "all", "labeled": 200}, PANEL_SETTING,
                          device="cpu", teacher=teacher, sync=True, redraw_s=0.0)
    seen = views_of_each_evaluation(panel)
    panel.train()
    assert len(seen) == 2 and seen[0][2] != seen[1][2]
    (first, _, _), (view, fig, _) = seen
    assert sorted(view["stages"]) == [0, 1, 2]
    for i, maps in view["stages"].items():
        assert torch.equal(maps["target"], first["stages"][i]["target"])          # the teacher does not move
        assert not torch.equal(maps["student"], first["stages"][i]["student"])
        margin = losses.ofd_margin(teacher.preact_bns()[i]).view(-1, 1, 1)        # (C_t, 1, 1)
        assert (maps["target"] >= margin).all()                                  # max(t, m): never below m
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert labels[:3] == ["stage 0:\nteacher\nafter margin", "stage 0:\nstudent (conn.)", "stage 0:\nstudent − target"]
    grid = [ax for ax in fig.axes if ax.images]
    assert grid[0].get_title() == "input"                                        # the image the networks saw
    np.testing.assert_allclose(grid[0].images[0].get_array().data, view["image"][0].numpy())
    grid = grid[1:]
    per_row = len(grid) // 9                                                     # 3 stages × 3 rows
    for row, key in ((0, "target"), (1, "student")):
        shown = grid[row * per_row].images[0].get_array().data
        np.testing.assert_allclose(shown, view["stages"][0][key][0].numpy(), rtol=1e-6)
        low, high = grid[row * per_row].images[0].get_clim()
        assert low == -high                                                      # a symmetric scale per row
    diff = grid[2 * per_row].images[0].get_array().data
    np.testing.assert_allclose(diff, (view["stages"][0]["student"] - view["stages"][0]["target"])[0].numpy(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["ofd", "fitnet"])
def test_the_feature_view_shows_what_the_stage_loss_pulls_towards(nets, small, name):
    """OFD's target is the teacher's tap clipped at the margin, max(t, m); FitNet's is the tap itself. The view's
    student rows are the connector outputs of the first probe image."""
    student, teacher = nets
    method = make_method(name, student, teacher, stages="all")
    view = method.live_view(small[1])
    x = small[1].images()[:1]
    with torch.no_grad():
        t_taps, s_taps = teacher(x, features=True).taps, student.eval()(x, features=True).taps
        for i in range(3):
            raw = t_taps[i][0]
            expected = losses.ofd_target(raw[None], method.margin(i))[0] if name == "ofd" else raw
            torch.testing.assert_close(view["stages"][i]["target"], expected)
            torch.testing.assert_close(view["stages"][i]["student"], method.connectors[str(i)].eval()(s_taps[i])[0])
    if name == "ofd":
        assert any((view["stages"][i]["target"] != t_taps[i][0]).any() for i in range(3))     # the margin acted
