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
    assert method_options("kd") == {"temperature": 4.0, "alpha": 0.9}


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
    ("kd", {"temp": 2}, r"method 'kd' has no option\(s\) \['temp'\]; allowed: \['alpha', 'temperature'\]"),
    ("scratch", {"alpha": 0.5}, r"method 'scratch' has no option\(s\) \['alpha'\]; allowed: none"),
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
