"""Method registry and wiring: terms, options, errors."""
import pytest
import torch
import torch.nn.functional as F

from kd_lab import losses
from kd_lab.methods import METHODS, Method, make_method, method_options
from kd_lab.models import build_model


@pytest.fixture
def pair():
    torch.manual_seed(0)
    return build_model("student-tiny"), build_model("student").eval()


def test_registry_has_the_foundation_methods():
    assert {"scratch", "kd"} <= set(METHODS)
    assert method_options("kd") == {"temperature": 4.0, "alpha": 0.9, "permute_non_target": False}
    assert method_options("scratch") == {"label_smoothing": 0.0}


def test_kd_terms_follow_the_formula(pair):
    s, t = pair
    x, y = torch.randn(6, 1, 28, 28), torch.randint(0, 10, (6,))
    m = make_method("kd", s, t, temperature=3.0, alpha=0.25).train()
    terms = m.loss_terms(x, y)
    s_logits = s(x)
    with torch.no_grad():
        t_logits = t(x)
    torch.testing.assert_close(terms["ce"], 0.75 * F.cross_entropy(s_logits, y))
    torch.testing.assert_close(terms["kd"], 0.25 * losses.kd_loss(s_logits, t_logits, 3.0))


def test_trainable_parameters_exclude_the_teacher(pair):
    s, t = pair
    m = make_method("kd", s, t)
    ids = {id(p) for p in m.trainable_parameters()}
    assert ids == {id(p) for p in s.parameters()}
    m.train()
    assert s.training and not t.training


@pytest.mark.parametrize("name,kwargs,message", [
    ("nope", {}, r"unknown method 'nope'; choose one of \[.*'kd'.*'scratch'"),
    ("kd", {"temp": 2},
     r"method 'kd' has no option\(s\) \['temp'\]; allowed: \['alpha', 'permute_non_target', 'temperature'\]"),
    ("scratch", {"alpha": 0.5}, r"method 'scratch' has no option\(s\) \['alpha'\]; allowed: \['label_smoothing'\]"),
    ("scratch", {"label_smoothing": 1.5}, r"label_smoothing must be a number in \[0.0, 1.0\], got 1.5"),
    ("kd", {"permute_non_target": 1}, "permute_non_target must be True or False, got 1"),
    ("dkd", {"warmup": -0.1}, r"warmup must be a number in \[0.0, 1.0\], got -0.1"),
    ("kd", {"temperature": 0}, "temperature must be > 0, got 0"),
    ("kd", {"temperature": -2.0}, "temperature must be > 0, got -2.0"),
    ("kd", {"alpha": 1.5}, r"alpha must be a number in \[0.0, 1.0\], got 1.5"),
])
def test_bad_method_input(pair, name, kwargs, message):
    s, t = pair
    with pytest.raises(ValueError, match=message):
        make_method(name, s, t, **kwargs)


def test_kd_without_teacher_says_how_to_get_one(pair):
    s, _ = pair
    with pytest.raises(ValueError, match="needs a teacher.*get_teacher"):
        make_method("kd", s)


def test_base_method_is_abstract(pair):
    s, _ = pair
    with pytest.raises(NotImplementedError):
        Method(s).loss_terms(torch.randn(1, 1, 28, 28), torch.zeros(1, dtype=torch.long))


def test_label_smoothing_trains_on_the_smoothed_target(pair):
    s, _ = pair
    x, y = torch.randn(6, 1, 28, 28), torch.randint(0, 10, (6,))
    terms = make_method("scratch", s, label_smoothing=0.2).loss_terms(x, y)
    target = 0.8 * F.one_hot(y, 10).float() + 0.2 / 10                # (1 − ε)·one-hot + ε/K
    torch.testing.assert_close(terms["ce"], -(target * F.log_softmax(s(x), dim=1)).sum(1).mean())
    assert make_method("scratch", s).loss_terms(x, y)["ce"] == F.cross_entropy(s(x), y)


def test_permuting_the_non_targets_keeps_the_target_and_the_values_and_moves_the_rest():
    from kd_lab.methods.response import permute_non_target
    g = torch.Generator().manual_seed(0)
    t, y = torch.randn(500, 10, generator=g), torch.randint(0, 10, (500,), generator=g)
    p = permute_non_target(t, y, generator=g)
    torch.testing.assert_close(p.gather(1, y[:, None]), t.gather(1, y[:, None]))        # the target stays
    torch.testing.assert_close(p.sort(dim=1).values, t.sort(dim=1).values)              # the same values per row
    torch.testing.assert_close(F.softmax(p / 4, 1).gather(1, y[:, None]), F.softmax(t / 4, 1).gather(1, y[:, None]))
    moved = (p != t).float().sum(1)
    assert moved.mean() > 7                  # 9 non-targets: a random permutation leaves 1 in place on average
    position = F.one_hot(p.argmax(1), 10).float().mean(0)                               # no position is favoured
    assert position.min() > 0.05


def test_kd_with_shuffled_non_targets_reads_the_shuffled_teacher(pair):
    from kd_lab.methods.response import permute_non_target
    s, t = pair
    x, y = torch.randn(6, 1, 28, 28), torch.randint(0, 10, (6,))
    torch.manual_seed(1)                                  # the permutation draws from torch's global generator
    terms = make_method("kd", s, t, permute_non_target=True).loss_terms(x, y)
    with torch.no_grad():
        t_logits = t(x)
    torch.manual_seed(1)
    shuffled = permute_non_target(t_logits, y)
    assert not torch.equal(shuffled, t_logits)
    torch.testing.assert_close(terms["kd"], 0.9 * losses.kd_loss(s(x), shuffled, 4.0))
    plain = make_method("kd", s, t).loss_terms(x, y)["kd"]
    assert not torch.isclose(plain, terms["kd"])


def test_dkd_warm_up_ramps_both_parts_linearly_then_holds(pair):
    s, t = pair
    x, y = torch.randn(6, 1, 28, 28), torch.randint(0, 10, (6,))
    m = make_method("dkd", s, t, beta=2.0, warmup=0.1)
    tckd, nckd = losses.dkd_parts(s(x), t(x).detach(), y, 4.0)
    assert m.progress is None and m.ramp() == 1.0                 # outside a run: the ramp is at its end
    for done, factor in ((0, 0.0), (5, 0.5), (10, 1.0), (60, 1.0)):
        m.set_progress(done, 100)
        terms = m.loss_terms(x, y)
        assert m.ramp() == pytest.approx(factor)
        torch.testing.assert_close(terms["tckd"], factor * tckd)
        torch.testing.assert_close(terms["nckd"], factor * 2.0 * nckd)
        torch.testing.assert_close(terms["ce"], F.cross_entropy(s(x), y))
    assert make_method("dkd", s, t).ramp() == 1.0


def test_fit_tells_the_method_its_progress_before_each_step(small):
    from kd_lab.train import fit
    train, test = small
    seen = []

    class Recorder(Method):
        name = "recorder"

        def set_progress(self, done, total):
            super().set_progress(done, total)
            seen.append((done, total, self.progress))

        def loss_terms(self, x, y, phase=None):
            return {"ce": F.cross_entropy(self.student(x), y)}
    sub = train.subset(torch.arange(100))
    fit(Recorder(build_model("student-tiny")), sub, None, epochs=3, batch_size=40, progress=False, device="cpu")
    assert seen == [(i, 9, i / 9) for i in range(9)]              # 3 batches × 3 epochs, 0/9 … 8/9
