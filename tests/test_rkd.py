"""Relational KD (Park et al. 2019): the RKD methods' terms and options, the relation measurements of
kd_lab.analysis, the live relation agreement, the panels driven headless, and the command line."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import views_of_each_evaluation

from kd_lab import analysis, losses
from kd_lab.experiments import Setting
from kd_lab.methods import METHODS, RKD, make_method, method_options
from kd_lab.models import build_model
from kd_lab.train import fit
from kd_lab.widgets import RelationPanel, TrainingPanel

REPO = Path(__file__).resolve().parents[1]
RKD_NAMES = ["rkd", "rkd-d", "rkd-a", "kd+rkd"]


def expected_parts(student, teacher, x, y, temperature=4.0):
    s = student(x, features=True)
    with torch.no_grad():
        t = teacher(x, features=True)
    return {"ce": F.cross_entropy(s.logits, y), "kd": losses.kd_loss(s.logits, t.logits, temperature),
            "rkd_d": losses.rkd_distance_loss(s.embedding, t.embedding),
            "rkd_a": losses.rkd_angle_loss(s.embedding, t.embedding)}


# ---------------------------------------------------------------------------------------- methods
def test_registry_and_defaults():
    assert set(RKD_NAMES) <= set(METHODS)
    assert method_options("rkd") == {"distance_weight": 25.0, "angle_weight": 50.0, "kd_weight": 0.0,
                                     "temperature": 4.0}
    assert method_options("rkd-d")["angle_weight"] == 0.0 and method_options("rkd-a")["distance_weight"] == 0.0
    assert method_options("kd+rkd")["kd_weight"] == 0.9
    assert all(METHODS[n] is RKD and RKD.needs_teacher for n in RKD_NAMES)        # the variants are presets of RKD


@pytest.mark.parametrize("name,weights", [
    ("rkd", {"ce": 1.0, "rkd_d": 25.0, "rkd_a": 50.0}),
    ("rkd-d", {"ce": 1.0, "rkd_d": 25.0}),
    ("rkd-a", {"ce": 1.0, "rkd_a": 50.0}),
    ("kd+rkd", {"ce": 0.1, "kd": 0.9, "rkd_d": 25.0, "rkd_a": 50.0}),
])
def test_terms_are_the_weighted_losses_on_a_real_batch(nets, batch, name, weights):
    student, teacher = nets
    x, y = batch
    terms = make_method(name, student, teacher).train().loss_terms(x, y)
    parts = expected_parts(student, teacher, x, y)
    assert list(terms) == list(weights)                               # zero-weight terms are left out
    for key, weight in weights.items():
        torch.testing.assert_close(terms[key], weight * parts[key])


def test_kd_plus_rkd_is_kds_terms_plus_rkds(nets, batch):
    student, teacher = nets
    x, y = batch
    both = make_method("kd+rkd", student, teacher, temperature=2.0).train().loss_terms(x, y)
    kd = make_method("kd", student, teacher, temperature=2.0, alpha=0.9).train().loss_terms(x, y)
    rkd = make_method("rkd", student, teacher).train().loss_terms(x, y)
    for key in ("ce", "kd"):
        torch.testing.assert_close(both[key], kd[key])
    for key in ("rkd_d", "rkd_a"):
        torch.testing.assert_close(both[key], rkd[key])


@pytest.mark.parametrize("options,keys", [
    ({"distance_weight": 0.0, "angle_weight": 0.0}, ["ce"]),
    ({"kd_weight": 1.0}, ["kd", "rkd_d", "rkd_a"]),
    ({"distance_weight": 3.0, "angle_weight": 0.0, "kd_weight": 0.5}, ["ce", "kd", "rkd_d"]),
])
def test_zero_weight_terms_are_omitted(nets, batch, options, keys):
    student, teacher = nets
    assert list(make_method("rkd", student, teacher, **options).loss_terms(*batch)) == keys


def test_gradients_reach_the_student_only(nets, batch):
    student, teacher = nets
    m = make_method("rkd", student, teacher, kd_weight=0.5).train()
    student.zero_grad()
    terms = m.loss_terms(*batch)
    (terms["rkd_d"] + terms["rkd_a"]).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert student.stages[0].body[0].weight.grad.abs().sum() > 0


def test_relation_terms_are_computed_in_float32_under_bf16_autocast(nets, batch):
    student, teacher = nets
    x, y = batch
    m = make_method("rkd", student, teacher).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        terms = m.loss_terms(x, y)
        s_emb, t_emb = student(x, features=True).embedding, teacher(x, features=True).embedding
    assert s_emb.dtype == torch.bfloat16 and terms["rkd_a"].dtype == torch.float32
    want = losses.rkd_angle_loss(s_emb.float(), t_emb.float())        # float32, outside autocast
    torch.testing.assert_close(terms["rkd_a"], 50.0 * want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("options,message", [
    ({"distance_weight": -1.0}, r"distance_weight must be a number >= 0.0, got -1.0"),
    ({"angle_weight": "big"}, r"angle_weight must be a number >= 0.0, got 'big'"),
    ({"kd_weight": 1.5}, r"kd_weight must be a number in \[0.0, 1.0\], got 1.5"),
    ({"temperature": 0}, r"temperature must be > 0, got 0"),
    ({"alpha": 0.5}, r"method 'rkd' has no option\(s\) \['alpha'\]; allowed: \['angle_weight', 'distance_weight', "
                     r"'kd_weight', 'temperature'\]"),
])
def test_bad_options_name_the_value(nets, options, message):
    student, teacher = nets
    with pytest.raises(ValueError, match=message):
        make_method("rkd", student, teacher, **options)


def test_rkd_needs_a_teacher(nets):
    with pytest.raises(ValueError, match="method 'rkd-a' needs a teacher"):
        make_method("rkd-a", nets[0])


# --------------------------------------------------------------------------------------- analysis
def test_embeddings_are_the_pooled_features_in_eval_mode(nets, small):
    student, _ = nets
    _, test = small
    student.train()
    emb = analysis.embeddings(student, test, batch_size=128)
    assert emb.shape == (len(test), student.embedding_dim) and student.training
    with torch.no_grad():
        want = student.eval()(test.images(torch.arange(10)), features=True).embedding
    student.train()
    torch.testing.assert_close(emb[:10], want)


def random_rotation(d, seed=0):
    q, r = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed)))
    return q * torch.sign(torch.diagonal(r))                          # (D, D) orthogonal


def test_relation_agreement_is_one_for_the_same_structure():
    e = torch.randn(40, 8, generator=torch.Generator().manual_seed(1))
    assert analysis.relation_agreement(e, e) == pytest.approx(1.0, abs=1e-6)
    moved = 3.0 * e @ random_rotation(8) + 5.0                       # scaled, rotated and translated
    assert analysis.relation_agreement(moved, e) == pytest.approx(1.0, abs=1e-5)
    wider = torch.cat([e, torch.zeros(40, 4)], dim=1) @ random_rotation(12, 2)   # (40, 12): an isometry
    assert analysis.relation_agreement(wider, e) == pytest.approx(1.0, abs=1e-5)


def test_relation_agreement_is_low_for_unrelated_embeddings():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(60, 8, generator=g), torch.randn(60, 16, generator=g)
    assert abs(analysis.relation_agreement(a, b)) < 0.2
    noisy = a + 0.5 * torch.randn(60, 8, generator=g)
    assert abs(analysis.relation_agreement(a, b)) < analysis.relation_agreement(noisy, a) < 1.0
    with pytest.raises(ValueError, match="student_emb has 60 rows but teacher_emb 59"):
        analysis.relation_agreement(a, b[:59])


def test_pca_2d_projects_on_the_two_largest_variance_directions():
    g = torch.Generator().manual_seed(4)
    e = torch.randn(200, 5, generator=g) * torch.tensor([5.0, 3.0, 1.0, 0.5, 0.1]) + 7.0
    p = analysis.pca_2d(e)
    assert p.shape == (200, 2) and p.dtype == torch.float32
    torch.testing.assert_close(p.mean(0), torch.zeros(2), atol=1e-4, rtol=0)
    eig = torch.linalg.eigvalsh(torch.cov(e.T)).flip(0)               # descending
    torch.testing.assert_close(p.var(0), eig[:2], rtol=1e-4, atol=1e-4)
    assert abs(float(torch.corrcoef(p.T)[0, 1])) < 1e-4
    with pytest.raises(ValueError, match=r"got shape \(10,\)"):
        analysis.pca_2d(torch.zeros(10))


def test_class_sorted_batch_groups_the_first_images_of_each_class():
    labels = torch.tensor([2, 0, 1, 2, 0, 2, 1, 0, 2])
    idx = analysis.class_sorted_batch(labels, [0, 2], 5)
    assert idx.tolist() == [1, 4, 7, 0, 3] and labels[idx].tolist() == [0, 0, 0, 2, 2]
    assert analysis.class_sorted_batch(labels, [1], 9).tolist() == [2, 6]        # only two images of class 1
    with pytest.raises(ValueError, match="at least one class"):
        analysis.class_sorted_batch(labels, [], 4)


# ------------------------------------------------------------------------ live relation agreement
def test_epoch_metrics_use_the_first_256_test_images(nets, small):
    student, teacher = nets
    _, test = small
    m = make_method("rkd", student, teacher)
    probe = test.subset(torch.arange(256))
    want = analysis.relation_agreement(analysis.embeddings(student, probe), analysis.embeddings(teacher, probe))
    calls = []
    hook = teacher.register_forward_hook(lambda *args: calls.append(1))
    try:
        assert m.epoch_metrics(test) == {"relation_agreement": pytest.approx(want)}
        assert m.epoch_metrics(test) == {"relation_agreement": pytest.approx(want)}
        assert len(calls) == 1                                         # the frozen teacher's probe is cached
        m.epoch_metrics(test.subset(torch.arange(256, 500)))
        assert len(calls) == 2                                         # ... per probe
    finally:
        hook.remove()
    assert m.epoch_metrics(None) == {}


def test_fit_logs_the_relation_agreement_every_measured_epoch(small):
    train, test = small
    torch.manual_seed(0)
    m = make_method("rkd-d", build_model("student-tiny"), build_model("student").eval())
    h = fit(m, train.subset(torch.arange(100)), test.subset(torch.arange(300)), epochs=2, batch_size=50,
            device="cpu", progress=False)
    values = [e["relation_agreement"] for e in h.epochs]
    assert len(values) == 2 and all(-1.0 <= v <= 1.0 for v in values)


# ------------------------------------------------------------------------------------------ panels
PANEL_SETTING = Setting(labeled=200, epochs=2, test_size=300, batch_size=50, eval_every=1)


def test_training_panel_uses_the_rkd_sliders_and_draws_the_relation_agreement(nets):
    _, teacher = nets
    panel = TrainingPanel("rkd", {"distance_weight": 25.0, "angle_weight": 50.0, "kd_weight": 0.0, "labeled": 200},
                          PANEL_SETTING, device="cpu", teacher=teacher, sync=True, redraw_s=0.0)
    assert panel.live_metrics == ("relation_agreement",) and panel.metrics_plot.layout.display == ""
    empty = panel.metrics_plot.value
    panel.sliders["distance_weight"].value = 10.0
    panel.sliders["angle_weight"].value = 0.0
    panel.sliders["kd_weight"].value = 0.5
    panel.train_button.click()
    h = panel.runs[-1]["history"]
    assert h.status == "finished" and h.method == "rkd"
    assert (h.config["distance_weight"], h.config["angle_weight"], h.config["kd_weight"]) == (10.0, 0.0, 0.5)
    assert set(h.term_names) == {"ce", "kd", "rkd_d"}                  # angle weight 0: no rkd_a term
    legend = {t.get_text() for t in panel.figure.axes[0].get_legend().get_texts()}
    assert {"ce ×(1−κ)=0.5", "kd ×κ=0.5", "rkd_d ×λ_D=10"} <= legend and not any("rkd_a" in t for t in legend)
    line = panel.metrics_figure.axes[0].lines[0]
    assert line.get_label() == "relation_agreement"
    assert len(h.epochs) == 2
    assert list(line.get_ydata()) == pytest.approx([e["relation_agreement"] for e in h.epochs])
    assert panel.metrics_plot.value != empty
    assert "10.0" in panel.table.value and "finished" in panel.table.value


def test_training_panel_of_other_methods_has_no_metrics_plot(nets):
    panel = TrainingPanel("kd", {"temperature": 4.0}, PANEL_SETTING, device="cpu", teacher=nets[1], sync=True)
    assert panel.live_metrics == () and panel.metrics_plot.layout.display == "none"


@pytest.fixture
def relation_panel(nets, small):
    student, teacher = nets
    return RelationPanel(teacher, {"untrained": student}, small[1], batch_size=20, anchor=3)


def shown_batch(panel):
    labels, emb_s, emb_t = panel.batch()
    return labels, emb_s, emb_t


def test_relation_panel_draws_the_teachers_and_students_relations(relation_panel):
    labels, emb_s, emb_t = shown_batch(relation_panel)
    assert len(labels) == 20 and labels.tolist() == sorted(labels.tolist())
    axes = relation_panel.relation_figure.axes
    torch.testing.assert_close(torch.as_tensor(axes[0].images[0].get_array().data),
                               losses.rkd_distance_matrix(emb_t))
    torch.testing.assert_close(torch.as_tensor(axes[1].images[0].get_array().data),
                               losses.rkd_distance_matrix(emb_s))
    assert "untrained" in axes[1].get_title() and "teacher" in axes[0].get_title()
    angle_axes = relation_panel.angle_figure.axes
    torch.testing.assert_close(torch.as_tensor(angle_axes[0].images[0].get_array().data),
                               losses.rkd_angle_tensor(emb_t)[:, 3, :])
    assert "anchor j = 3" in angle_axes[0].get_title()
    assert "relation agreement" in relation_panel.status.value


def test_relation_panel_redraws_for_new_batch_size_anchor_and_classes(relation_panel):
    first = relation_panel.relations.value
    relation_panel.batch_size.value = 12
    assert relation_panel.relation_figure.axes[0].images[0].get_array().shape == (12, 12)
    assert relation_panel.anchor.max == 11 and relation_panel.relations.value != first
    relation_panel.anchor.value = 7
    labels, _, emb_t = shown_batch(relation_panel)
    ax = relation_panel.angle_figure.axes[0]
    assert "anchor j = 7" in ax.get_title()
    torch.testing.assert_close(torch.as_tensor(ax.images[0].get_array().data), losses.rkd_angle_tensor(emb_t)[:, 7, :])
    relation_panel.classes.value = (1, 7)
    ticks = [t.get_text() for t in relation_panel.relation_figure.axes[0].get_xticklabels()]
    assert ticks == ["Trouser", "Sneaker"]
    relation_panel.batch_size.value = 6                                # the anchor is clamped into the batch
    assert relation_panel.anchor.value == 5 and "anchor j = 5" in relation_panel.angle_figure.axes[0].get_title()


def test_relation_panel_switches_students_and_guards_empty_choices(relation_panel, nets):
    relation_panel.classes.value = ()
    assert "pick at least one class" in relation_panel.status.value
    relation_panel.classes.value = (0, 1, 2)
    torch.manual_seed(5)
    relation_panel.add_student("another", build_model("student-tiny").eval())
    assert relation_panel.student.value == "another"
    assert "another" in relation_panel.relation_figure.axes[1].get_title()


# --------------------------------------------------------------------------------------------- CLI
def test_cli_runs_an_rkd_method_with_its_options():
    args = ["run", "kd+rkd", "--epochs", "1", "--labeled", "100", "--test-size", "100", "--device", "cpu", "--json",
            "--set", "distance_weight=25", "--set", "angle_weight=50", "--set", "kd_weight=0.5"]
    done = subprocess.run([sys.executable, "-m", "kd_lab", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "KD_LAB_QUICK": "1"}, timeout=300)
    assert done.returncode == 0, done.stderr
    record = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))
    assert record["method"] == "kd+rkd" and record["status"] == "finished"
    assert set(record["final_loss_terms"]) == {"total", "ce", "kd", "rkd_d", "rkd_a"}
    assert record["options"] == {"distance_weight": 25, "angle_weight": 50, "kd_weight": 0.5}


def test_the_rkd_panel_redraws_its_relation_view_at_each_evaluation(nets):
    """Lesson 05's live view: after each of two evaluations, the teacher's and the student's distance and angle
    matrices on 40 fixed, class-sorted test images; the drawn matrices are those of the run's embeddings."""
    from kd_lab.losses import rkd_angle_tensor, rkd_distance_matrix
    _, teacher = nets
    panel = TrainingPanel("rkd", {"distance_weight": 25.0, "angle_weight": 50.0, "labeled": 200}, PANEL_SETTING,
                          device="cpu", teacher=teacher, sync=True, redraw_s=0.0)
    seen = views_of_each_evaluation(panel)
    panel.train()
    assert len(seen) == 2 and seen[0][2] != seen[1][2]
    (first, _, _), (second, fig, _) = seen
    assert torch.equal(first["teacher"], second["teacher"]) and not torch.equal(first["student"], second["student"])
    labels = second["labels"]
    assert len(labels) == 40 and torch.equal(labels, labels.sort().values)          # class blocks
    images = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(images) == 6                                            # distance row and angle row, 3 each
    for image, want in ((images[0], rkd_distance_matrix(second["teacher"])),
                        (images[1], rkd_distance_matrix(second["student"])),
                        (images[4], rkd_angle_tensor(second["student"])[:, 0, :])):
        torch.testing.assert_close(torch.as_tensor(image.data), want, check_dtype=False)
    assert panel.view_plot.layout.display == ""
