"""The method registry: a method declared in this file alone, with ``@register``, is found by the options, the
command line, a comparison and a notebook panel; presets, duplicate names, the course order, the base class's
hooks, the knobs' widgets, and the batch indices a ``wants_index`` method receives."""
import json

import ipywidgets as w
import pytest
import torch
import torch.nn.functional as F

from kd_lab import compare
from kd_lab.__main__ import main as cli_main
from kd_lab.experiments import Setting
from kd_lab.methods import (
    METHODS,
    OFD,
    OFDKD,
    RKD,
    Knob,
    Method,
    make_method,
    method_info,
    method_names,
    method_options,
    register,
    register_preset,
    unregister,
)
from kd_lab.models import build_model
from kd_lab.train import fit
from kd_lab.widgets import SETTING_KNOBS, TrainingPanel, knob_widget

COURSE = ["scratch", "kd", "dkd", "ssld", "dml", "fitnet", "ofd", "ofd+kd", "udml", "rkd-d", "rkd-a", "rkd", "kd+rkd"]
TINY = Setting(labeled=100, epochs=1, batch_size=50, test_size=200, eval_every=1)
SCALE = Knob(0.1, 2.0, 0.1, "s (scale of the toy's CE)")


class ScaledCE(Method):
    """A toy method, registered by the ``toy`` fixture only: the cross-entropy times ``scale``."""

    def __init__(self, student, teacher=None, scale: float = 1.0):
        super().__init__(student, teacher)
        self.scale = float(scale)

    def options(self):
        return {"scale": self.scale}

    def loss_terms(self, x, y, phase=None):
        return {"ce": self.scale * F.cross_entropy(self.student(x), y)}


@pytest.fixture
def toy():
    """``toy``: :class:`ScaledCE` with one knob, registered for the test and unregistered after it."""
    register("toy", knobs={"scale": SCALE})(ScaledCE)
    yield "toy"
    unregister("toy")
    assert "toy" not in METHODS and "toy" not in method_names()


# -------------------------------------------------------------------------------- a method declared here
def test_the_toy_is_in_the_registry_with_its_option_and_last_in_the_course_order(toy):
    assert method_options(toy) == {"scale": 1.0}
    info = method_info(toy)
    assert info.cls is ScaledCE and METHODS[toy] is ScaledCE and ScaledCE.name == toy
    assert info.lesson is None and info.knobs == {"scale": SCALE} and info.doc.startswith("A toy method")
    assert method_names() == [*COURSE, toy] and compare.resolve_methods() == [*COURSE, toy]
    assert make_method(toy, build_model("student-tiny"), scale=0.5).options() == {"scale": 0.5}


def test_the_cli_runs_the_toy_with_its_knob_typed_by_the_default(toy, capsys):
    tiny = ["--epochs", "1", "--labeled", "100", "--test-size", "200", "--batch-size", "50", "--device", "cpu"]
    assert cli_main(["run", toy, "--set", "scale=1", *tiny, "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["method"] == toy and record["status"] == "finished" and set(record["final_loss_terms"]) == {
        "total", "ce"}
    assert record["options"] == {"scale": 1.0} and isinstance(record["options"]["scale"], float)   # not int 1
    assert record["config"]["scale"] == 1.0                     # what the method itself reported
    assert cli_main(["run", toy, "--set", "scale=big", *tiny]) == 2
    assert "option 'scale' takes a number, got 'big'" in capsys.readouterr().err
    assert cli_main(["run", toy, "--set", "alpha=0.5", *tiny]) == 2
    assert "method 'toy' has no option(s) ['alpha']; allowed: ['scale']" in capsys.readouterr().err
    assert cli_main(["methods"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listing] == [*COURSE, toy] and "scale=1.0" in listing[-1]


def test_a_comparison_runs_the_toy(toy, tmp_path):
    out = tmp_path / "runs.csv"
    rows = compare.run_comparison(methods=[toy], seeds=1, labeled=100, setting=TINY, device="cpu", out=out,
                                  progress=False)
    assert [(r["method"], r["seed"], r["status"]) for r in rows] == [(toy, 0, "ok")]
    assert json.loads(rows[0]["options"]) == {"scale": 1.0} and 0.0 <= rows[0]["accuracy"] <= 100.0
    assert f",{toy},0," in out.read_text()


def test_a_training_panel_has_the_toys_slider_and_trains_with_it(toy):
    panel = TrainingPanel(toy, None, TINY, device="cpu", sync=True, redraw_s=0.0)
    assert list(panel.sliders) == ["scale"]
    slider = panel.sliders["scale"]
    assert isinstance(slider, w.FloatSlider) and slider.description == "s (scale of the toy's CE)"
    assert (slider.min, slider.max, slider.step, slider.value) == (0.1, 2.0, 0.1, 1.0)
    slider.value = 0.5
    run = panel.train()
    assert run["status"] == "finished" and run["history"].config["scale"] == 0.5


# ------------------------------------------------------------------------------------------ registry
def test_the_course_order_is_by_lesson_then_registration():
    assert method_names() == COURSE and list(METHODS) == COURSE and compare.resolve_methods() == COURSE
    register("mid", lesson="03_dml")(type("Mid", (ScaledCE,), {}))
    try:
        assert method_names() == [*COURSE[:5], "mid", *COURSE[5:]]       # after dml, before lesson 04
    finally:
        unregister("mid")
    assert method_names() == COURSE


@pytest.mark.parametrize("name,base,defaults", [
    ("rkd-d", "rkd", {"angle_weight": 0.0}), ("rkd-a", "rkd", {"distance_weight": 0.0}),
    ("kd+rkd", "rkd", {"kd_weight": 0.9}), ("ofd+kd", "ofd", {"kd_weight": 0.9})])
def test_presets_build_their_base_class_with_their_defaults(nets, small, name, base, defaults):
    student, teacher = nets
    info = method_info(name)
    assert info.base == base and info.cls is method_info(base).cls is METHODS[name]
    assert method_options(name) == {**method_options(base), **defaults} and info.knobs == method_info(base).knobs
    m = make_method(name, student, teacher)
    assert type(m) is METHODS[base] and m.name == name
    assert {k: m.options()[k] for k in defaults} == defaults
    assert make_method(name, student, teacher, kd_weight=0.5).options()["kd_weight"] == 0.5   # options still win
    train, test = small
    fresh = make_method(name, build_model("student-tiny"), build_model("student").eval())
    h = fit(fresh, train.subset(torch.arange(100)), test.subset(torch.arange(50)), epochs=1, batch_size=50,
            device="cpu", progress=False)
    assert h.method == name and {k: h.config[k] for k in defaults} == defaults


def test_the_old_subclass_names_build_the_presets(nets):
    student, teacher = nets
    m = OFDKD(build_model("student-tiny"), build_model("student").eval())
    assert type(m) is OFD and m.name == "ofd+kd" and m.kd_weight == 0.9
    assert type(make_method("rkd-a", student, teacher)) is RKD


def test_registering_a_taken_name_or_a_wrong_knob_is_an_error(toy):
    with pytest.raises(ValueError, match=r"method 'kd' is already registered \(KD\); choose another name"):
        register("kd")(ScaledCE)
    with pytest.raises(ValueError, match=r"method 'toy' is already registered \(ScaledCE\)"):
        METHODS[toy] = ScaledCE
    with pytest.raises(ValueError, match=r"method 'rkd-d' is already registered"):
        register_preset("rkd-d", "rkd", angle_weight=1.0, doc="again")
    with pytest.raises(ValueError, match=r"knob\(s\) \['alpha'\] are not options of the method; options: \['scale'\]"):
        register("toy2", knobs={"alpha": SCALE})(ScaledCE)
    with pytest.raises(ValueError, match=r"preset 'toy-x': \['alpha'\] are not options of 'toy'"):
        register_preset("toy-x", toy, alpha=0.5, doc="no such option")
    with pytest.raises(ValueError, match=r"register\('toy3'\) takes a subclass of kd_lab.methods.Method"):
        register("toy3")(dict)
    with pytest.raises(ValueError, match=r"method 'rkd' is the base of preset\(s\) \['kd\+rkd', 'rkd-a', 'rkd-d'\]"):
        unregister("rkd")
    with pytest.raises(ValueError, match=r"unknown method 'nope'; choose one of \["):
        unregister("nope")
    assert "toy2" not in METHODS and "toy3" not in METHODS and "toy-x" not in METHODS


def test_a_preset_registered_and_unregistered_here(toy):
    register_preset("toy-half", toy, scale=0.5, doc="the toy at half scale", before=toy)
    try:
        assert method_names()[-2:] == ["toy-half", toy] and method_options("toy-half") == {"scale": 0.5}
        m = make_method("toy-half", build_model("student-tiny"))
        assert type(m) is ScaledCE and m.name == "toy-half" and m.scale == 0.5
    finally:
        unregister("toy-half")


@pytest.mark.parametrize("args,message", [
    ((0.0, 1.0, 0.1, "x", "cubic"), r"scale must be one of \('linear', 'int', 'log', 'multiple'\), got 'cubic'"),
    ((1.0, 1.0, 0.1, "x"), "needs low < high and step > 0"),
    ((0.0, 1.0, 1, "x", "log"), "a log scale needs low > 0, got 0.0"),
    ((0, 4, 0.5, "x", "int"), "an 'int' knob needs integer low, high and step"),
])
def test_bad_knobs_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        Knob(*args)


# ---------------------------------------------------------------------------------------- the base class
class Bare(Method):
    def loss_terms(self, x, y, phase=None):
        return {"ce": F.cross_entropy(self.student(x), y)}


def test_every_hook_is_declared_on_the_base_class_with_its_default(small):
    hooks = ["phases", "epoch_metrics", "training_set", "live_metrics", "teacher_recipe", "needs_teacher",
             "probe", "probe_size", "teacher_on_probe", "wants_index", "options", "trainable_parameters"]
    assert all(hook in vars(Method) for hook in hooks)
    train, test = small
    m = Bare(build_model("student-tiny"))
    assert m.phases() == [None] and m.epoch_metrics(test) == {} and m.options() == {}
    assert (Bare.live_metrics, Bare.teacher_recipe, Bare.needs_teacher, Bare.wants_index) == ((), "full", False, False)
    assert m.training_set(train, None, test) is train
    labeled = torch.tensor([4, 1, 7])
    assert torch.equal(m.training_set(train, labeled, test).y, train.y[labeled])
    assert len(m.probe(test)) == min(len(test), Bare.probe_size) == 256
    assert m.teacher_on_probe(test.x[:4], lambda: 1) == 1 and m.teacher_on_probe(test.x[:4], lambda: 2) == 1


class Indexed(Method):
    """Checks, in every step, that the indices fit passes are the batch's positions in the training set."""

    wants_index = True

    def __init__(self, student, train):
        super().__init__(student)
        self.data, self.seen = train, []

    def phases(self):
        return ["a", "b"]                   # both phases get the index

    def loss_terms(self, x, y, phase=None, *, index):
        assert index.shape == y.shape and torch.equal(self.data.y[index], y)
        self.seen.append((phase, index.clone()))
        return {f"ce_{phase}": F.cross_entropy(self.student(x), y)}


def test_a_method_that_wants_the_index_gets_the_batch_positions_in_train(small):
    train, test = small
    data = train.subset(torch.arange(130))
    m = Indexed(build_model("student-tiny"), data)
    h = fit(m, data, test.subset(torch.arange(50)), epochs=2, batch_size=32, device="cpu", progress=False)
    assert h.status == "finished" and len(m.seen) == 2 * 2 * 5          # 2 epochs x 5 batches x 2 phases
    per_epoch = [torch.cat([i for p, i in m.seen[e * 10:(e + 1) * 10] if p == "a"]) for e in range(2)]
    assert all(torch.equal(idx.sort().values, torch.arange(130)) for idx in per_epoch)    # each image once
    assert not torch.equal(per_epoch[0], per_epoch[1])                  # shuffled anew each epoch


def test_batches_yield_the_indices_only_when_asked(small):
    train, _ = small
    plain = next(train.batches(16, generator=torch.Generator().manual_seed(0)))
    x, y, idx = next(train.batches(16, generator=torch.Generator().manual_seed(0), with_index=True))
    assert len(plain) == 2 and torch.equal(plain[0], x) and torch.equal(plain[1], y)
    assert torch.equal(train.y[idx], y) and torch.equal(train.normalize(train.x[idx]), x)


# ---------------------------------------------------------------------------------------------- knobs
def test_each_scale_picks_its_widget():
    assert type(knob_widget(Knob(0.0, 1.0, 0.05, "a"), 0.5)) is w.FloatSlider
    assert type(knob_widget(Knob(2, 4, 1, "k", scale="int"), 3)) is w.IntSlider
    log = knob_widget(Knob(1e-5, 1e2, 0.25, "λ", scale="log"), 1e-3)
    assert type(log) is w.FloatLogSlider and (log.min, log.max, log.step) == (-5.0, 2.0, 0.25)
    choice = knob_widget(Knob(0, 2, 1, "stages", scale="multiple", choice_label="stage {}"), (0, 2))
    assert type(choice) is w.SelectMultiple and choice.value == (0, 2)
    assert list(choice.options) == [("stage 0", 0), ("stage 1", 1), ("stage 2", 2)]


@pytest.mark.parametrize("name", COURSE)
def test_every_method_gets_a_panel_with_its_own_knobs(name):
    info = method_info(name)
    panel = TrainingPanel(name, None, TINY, device="cpu")
    assert set(panel.sliders) == {k for k in info.knobs if info.defaults[k] is not None}
    assert all(s.description == info.knobs[k].label for k, s in panel.sliders.items())
    labeled = TrainingPanel(name, {"labeled": 300}, TINY, device="cpu").sliders["labeled"]
    assert isinstance(labeled, w.IntSlider) and labeled.description == SETTING_KNOBS["labeled"].label


def test_knob_labels_are_per_method():
    assert method_info("kd").knobs["alpha"].label == "α (weight of the KD term; CE gets 1 − α)"
    assert method_info("dkd").knobs["alpha"].label == "α (weight of TCKD)"
    assert method_info("ofd").knobs["feature_weight"].scale == "log"
    assert method_info("fitnet").knobs["stages"].scale == "multiple" and method_info("dml").knobs["k"].scale == "int"
