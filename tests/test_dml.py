"""Deep Mutual Learning (Zhang et al. 2018): K peers, per-peer terms, detached peers, simultaneous and
alternating updates (the trainer's phases), per-epoch peer metrics, the frozen-peer = KD identity, errors."""
import pytest
import torch
import torch.nn.functional as F

from kd_lab.experiments import accuracies
from kd_lab.methods import DML, KD, METHODS, Scratch, make_method, method_options
from kd_lab.models import build_model, count_parameters
from kd_lab.train import _optimizer, fit

QUIET = dict(progress=False, device="cpu", amp="off")


def dml(k=2, peers="student-tiny", seed=0, **options):
    torch.manual_seed(seed)
    first = peers.split(",")[0] if isinstance(peers, str) else peers[0]
    return DML(build_model(first), k=k, peers=peers, **options)


@pytest.fixture
def batch(small):
    train, _ = small
    return next(train.batches(64, shuffle=False))          # (64, 1, 28, 28), (64,)


def reference_terms(logits, y, w, T):
    """L_k = CE_k + w/(K−1)·Σ_{j≠k} T²·KL(p_j ‖ p_k), written without kd_lab.losses."""
    out, k = {}, len(logits)
    for i, z in enumerate(logits):
        log_p = torch.log_softmax(z / T, 1)
        kl = 0.0
        for j, z_j in enumerate(logits):
            if j != i:
                log_q = torch.log_softmax(z_j / T, 1)
                kl = kl + T * T * (log_q.exp() * (log_q - log_p)).sum(1).mean()
        out[f"ce_{i}"], out[f"kl_{i}"] = F.cross_entropy(z, y), w * kl / (k - 1)
    return out


def test_registered_without_a_teacher_and_with_its_options():
    assert METHODS["dml"] is DML and not DML.needs_teacher
    assert method_options("dml") == {"k": 2, "peers": "student", "kl_weight": 1.0, "temperature": 1.0,
                                     "mode": "simultaneous", "symmetric": False}


@pytest.mark.parametrize("k", [2, 3, 4])
def test_k_peers_give_per_peer_terms_that_follow_the_formula(batch, k):
    x, y = batch
    m = dml(k, kl_weight=0.7, temperature=2.0).train()
    assert len(m.peers) == k and m.peers[0] is m.student and m.phases() == [None]
    assert {id(p) for p in m.trainable_parameters()} == {id(p) for p in m.peers.parameters()}
    terms = m.loss_terms(x, y)
    assert list(terms) == [f"{t}_{i}" for i in range(k) for t in ("ce", "kl")]
    with torch.no_grad():
        logits = [peer(x) for peer in m.peers]
    want = reference_terms(logits, y, 0.7, 2.0)
    for name, value in terms.items():
        torch.testing.assert_close(value, want[name])


def test_heterogeneous_peers_are_built_from_the_presets_and_cycled(batch):
    x, y = batch
    m = dml(3, peers="student,student-tiny")
    assert m.peer_names == ["student", "student-tiny", "student"]
    assert m.options()["peers"] == "student,student-tiny,student"
    sizes = [count_parameters(p) for p in m.peers]
    assert sizes[0] == sizes[2] == count_parameters(build_model("student")) > sizes[1]
    assert sizes[1] == count_parameters(build_model("student-tiny"))
    assert m.peers[2] is not m.peers[0]
    assert all(torch.isfinite(v) for v in m.loss_terms(x, y).values())


def test_a_peer_gets_gradient_only_from_its_own_terms(batch):
    x, y = batch
    m = dml(2).train()
    m.loss_terms(x, y)["kl_0"].backward()
    assert all(p.grad is None for p in m.peers[1].parameters())          # the peer was detached
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.peers[0].parameters())
    m.zero_grad(set_to_none=True)
    sum(m.loss_terms(x, y).values()).backward()                           # all terms at once
    together = [p.grad.clone() for p in m.peers[1].parameters()]
    m.zero_grad(set_to_none=True)
    terms = m.loss_terms(x, y)
    (terms["ce_1"] + terms["kl_1"]).backward()                            # peer 1's own terms only
    for g, p in zip(together, m.peers[1].parameters()):
        torch.testing.assert_close(g, p.grad)


def test_alternating_has_one_phase_per_peer_and_logs_every_term(small):
    train, _ = small
    m = dml(3, mode="alternating")
    assert m.phases() == [0, 1, 2]
    calls, original = [], m.loss_terms
    m.loss_terms = lambda x, y, phase=None: (calls.append(phase), original(x, y, phase))[1]
    h = fit(m, train.subset(torch.arange(200)), None, epochs=1, batch_size=100, **QUIET)
    assert calls == [0, 1, 2, 0, 1, 2] and len(h.steps) == 2
    step = h.steps[-1]
    assert h.term_names == ["ce_0", "kl_0", "ce_1", "kl_1", "ce_2", "kl_2"]
    assert step["total"] == pytest.approx(sum(step[t] for t in h.term_names))


def test_alternating_updates_peer_1_against_the_updated_peer_0(small):
    train, _ = small
    one_batch = train.subset(torch.arange(64))
    sim, alt = dml(2, seed=3), dml(2, seed=3, mode="alternating")
    seen = []                                                   # (input, output) of every peer-0 forward
    alt.peers[0].register_forward_hook(lambda mod, inp, out: seen.append((inp[0].detach(), out.detach())))
    for m in (sim, alt):
        fit(m, one_batch, None, epochs=1, batch_size=64, augment=False, lr=0.2, **QUIET)
    x1, used_by_phase_1 = seen[1]
    assert not torch.allclose(seen[0][1], used_by_phase_1)      # phase 1 saw peer 0 after its step...
    with torch.no_grad():
        torch.testing.assert_close(alt.peers[0].train()(x1), used_by_phase_1)   # ...i.e. its new weights
    for a, b in zip(sim.peers[0].parameters(), alt.peers[0].parameters()):
        torch.testing.assert_close(a, b)                        # peer 0 steps the same in both modes
    pairs = zip(sim.peers[1].parameters(), alt.peers[1].parameters())
    diff = max(float((a - b).detach().abs().max()) for a, b in pairs)
    assert diff > 1e-6                                          # peer 1 does not


def test_the_optimizer_leaves_peers_without_gradient_alone(batch):
    x, y = batch
    m = dml(2, mode="alternating").train()
    opt = _optimizer(m.trainable_parameters(), "sgd", 0.1, 5e-4)       # momentum 0.9 and weight decay
    for phase in (1, 0):                                                # peer 1 has a momentum buffer now
        before = [p.detach().clone() for p in m.peers[1].parameters()]
        opt.zero_grad(set_to_none=True)
        sum(m.loss_terms(x, y, phase).values()).backward()
        opt.step()
    for b, p in zip(before, m.peers[1].parameters()):
        assert torch.equal(b, p.detach())


def test_dml_with_a_frozen_peer_is_kd(batch):
    x, y = batch
    alpha, temperature = 0.9, 4.0
    torch.manual_seed(0)
    student, teacher = build_model("student-tiny"), build_model("student")   # any network can be the teacher
    m = DML(student, peers="student-tiny", kl_weight=alpha / (1 - alpha), temperature=temperature)
    m.freeze_peer(1, teacher, "teacher").train()
    kd = KD(student, teacher, temperature=temperature, alpha=alpha).train()
    assert not teacher.training and m.phases() == [None] and m.options()["peers"] == "student-tiny,teacher (frozen)"
    assert {id(p) for p in m.trainable_parameters()} == {id(p) for p in student.parameters()}
    grads = []
    for terms, scale in ((m.loss_terms(x, y), 1 - alpha), (kd.loss_terms(x, y), 1.0)):
        student.zero_grad(set_to_none=True)
        loss = scale * sum(terms.values())
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in student.parameters()]))
    assert set(m.loss_terms(x, y)) == {"ce_0", "kl_0"}
    torch.testing.assert_close(grads[0][0], grads[1][0])               # (1−α)·DML = KD
    for a, b in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(a, b)
    assert all(p.grad is None for p in teacher.parameters())
    assert make_method("dml", build_model("student"), mode="alternating").freeze_peer(1).phases() == [0]


def test_epoch_metrics_are_logged_when_accuracy_is_measured(small):
    train, test = small
    h = fit(dml(3), train, test, epochs=2, batch_size=100, eval_every=2, **QUIET)
    first, last = h.epochs
    assert "acc_0" not in first
    keys = {"acc_0", "acc_1", "acc_2", "acc_ensemble", "agree_0_1", "agree_0_2", "kl_0_1", "kl_0_2"}
    assert keys <= set(last)
    assert last["acc_0"] == pytest.approx(last["test_acc"])
    assert all(0.0 <= last[k] <= 1.0 for k in keys if not k.startswith("kl"))
    assert last["kl_0_1"] >= 0 and last["kl_0_2"] >= 0
    assert accuracies([h], "acc_2") == [pytest.approx(100 * last["acc_2"])]
    with pytest.raises(ValueError, match="measured no 'acc_9'"):
        accuracies([h], "acc_9")


@pytest.mark.parametrize("k", [2, 3])
def test_symmetric_mode_is_paddleocrs_pair_loss_with_gradient_to_both_peers(batch, k):
    """PaddleOCR's DMLLoss: per pair ½[KL(p_k ‖ p_j) + KL(p_j ‖ p_k)], nothing detached; w/(K−1) per pair."""
    x, y = batch
    m = dml(k, kl_weight=0.5, temperature=2.0, symmetric=True).train()
    terms = m.loss_terms(x, y)
    pairs = [(j, i) for j in range(k) for i in range(j + 1, k)]
    assert list(terms) == [f"ce_{i}" for i in range(k)] + [f"kl_{j}_{i}" for j, i in pairs]
    logits = [peer(x) for peer in m.peers]
    for j, i in pairs:
        log_p, log_q = torch.log_softmax(logits[j] / 2, 1), torch.log_softmax(logits[i] / 2, 1)
        sym = 0.5 * ((log_p.exp() * (log_p - log_q)).sum(1) + (log_q.exp() * (log_q - log_p)).sum(1)).mean()
        torch.testing.assert_close(terms[f"kl_{j}_{i}"], 0.5 * 4 * sym / (k - 1))
    m.zero_grad(set_to_none=True)
    terms["kl_0_1"].backward()                      # unlike the paper's form, both peers of the pair move
    assert all(any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.peers[i].parameters()) for i in (0, 1))


def test_epoch_metrics_hold_each_peers_entropy_and_calibration(small):
    _, test = small
    out = dml(2).epoch_metrics(test)
    for name in ("0", "1", "ensemble"):
        assert 0 <= out[f"ece_{name}"] <= 1 and 0 <= out[f"entropy_{name}"] <= torch.log(torch.tensor(10.0))
    assert out["entropy_0"] > 2.0                   # an untrained network predicts nearly uniform distributions


def test_identical_peers_agree_everywhere(small):
    _, test = small
    m = dml(2)
    m.peers[1].load_state_dict(m.peers[0].state_dict())
    out = m.epoch_metrics(test)
    assert out["agree_0_1"] == 1.0 and out["kl_0_1"] == pytest.approx(0.0, abs=1e-6)
    assert out["acc_0"] == out["acc_1"] == out["acc_ensemble"]


def test_default_methods_have_one_phase_and_no_epoch_metrics(small):
    _, test = small
    s = Scratch(build_model("student-tiny"))
    assert s.phases() == [None] and s.epoch_metrics(test) == {}


class Repeating(Scratch):
    name = "repeating"

    def phases(self):
        return ["a", "b"]

    def loss_terms(self, x, y, phase=None):
        return super().loss_terms(x, y)


def test_two_phases_may_not_log_the_same_term(small):
    train, test = small
    with pytest.raises(ValueError, match=r"phase 'b' logs loss term\(s\) \['ce'\]"):
        fit(Repeating(build_model("student-tiny")), train, test, epochs=1, **QUIET)


@pytest.mark.parametrize("options,message", [
    ({"k": 1}, "k (the number of peers) must be an integer in 2..4, got 1"),
    ({"k": 5}, "must be an integer in 2..4, got 5"),
    ({"k": 2.0}, "must be an integer in 2..4, got 2.0"),
    ({"k": True}, "must be an integer in 2..4, got True"),
    ({"peers": "student-tiny,giant"}, "peers='student-tiny,giant' names unknown preset(s) ['giant']; choose from"),
    ({"peers": 3}, "peers must be comma-separated model presets, got 3"),
    ({"peers": "student"}, "peer 0 is the student passed in ('student-tiny'), but peers starts with 'student'"),
    ({"mode": "sync"}, "mode must be one of ('simultaneous', 'alternating'), got 'sync'"),
    ({"kl_weight": -1.0}, "kl_weight must be a number >= 0.0, got -1.0"),
    ({"temperature": 0}, "temperature must be > 0, got 0"),
    ({"tau": 2}, "method 'dml' has no option(s) ['tau']; allowed: ['k', 'kl_weight', 'mode', 'peers', 'symmetric', "
                 "'temperature']"),
    ({"symmetric": 1}, "symmetric must be true or false, got 1"),
    ({"symmetric": True, "mode": "alternating"}, "symmetric=True (one undetached loss per pair, PaddleOCR's form) "
                                                 "needs mode='simultaneous', got mode='alternating'"),
])
def test_bad_options_name_the_value(options, message):
    torch.manual_seed(0)
    with pytest.raises(ValueError) as info:
        make_method("dml", build_model("student-tiny"), **{"peers": "student-tiny", **options})
    assert message in str(info.value)


def test_bad_frozen_peer_and_phase(batch):
    x, y = batch
    m = dml(2)
    with pytest.raises(ValueError, match=r"only peers 1..1 can be frozen \(peer 0 is the student\), got 0"):
        m.freeze_peer(0)
    with pytest.raises(ValueError, match=r"phase must be a training peer's index in \[0, 1\], got 2"):
        m.loss_terms(x, y, 2)
