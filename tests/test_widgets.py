"""Widgets driven headless: set slider values, press Train (synchronously), check history and plots; Stop."""
import time

import pytest
import torch
from conftest import views_of_each_evaluation

from kd_lab.analysis import softmax_t
from kd_lab.data import FASHION_CLASSES
from kd_lab.experiments import Setting
from kd_lab.models import build_model
from kd_lab.widgets import SoftTargetPanel, TrainingPanel

SETTING = Setting(labeled=200, epochs=2, eval_every=1, test_size=300, batch_size=50)


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(0)
    return build_model("student").eval()          # any network will do as the widget's teacher


def make_panel(teacher, **kwargs):
    knobs = kwargs.pop("knobs", {"temperature": 4.0, "alpha": 0.9, "labeled": 200})
    return TrainingPanel("kd", knobs, SETTING, device="cpu", teacher=teacher, sync=kwargs.pop("sync", True),
                         redraw_s=0.0, **kwargs)


def test_train_uses_the_slider_values_and_redraws(teacher):
    panel = make_panel(teacher)
    empty_png = panel.plot.value
    panel.sliders["temperature"].value = 8.0
    panel.sliders["alpha"].value = 0.5
    panel.sliders["labeled"].value = 300
    panel.train_button.click()
    run = panel.runs[-1]
    h = run["history"]
    assert run["status"] == "finished" and h.status == "finished"
    assert h.config["temperature"] == 8.0 and h.config["alpha"] == 0.5 and h.config["train_size"] == 300
    assert len(h.steps) == 2 * 6 and len(h.epochs) == 2
    loss_ax, acc_ax = panel.figure.axes[:2]
    plotted_steps = max(len(line.get_xdata()) for line in loss_ax.get_lines())
    assert plotted_steps == len(h.steps)                             # the redraw saw every step
    legend = {t.get_text() for t in loss_ax.get_legend().get_texts()}
    assert {"ce ×(1−α)=0.5", "kd ×α=0.5", "total"} <= legend                # each term with its weight
    assert panel.plot.value != empty_png and panel.plot.value[:4] == b"\x89PNG"
    assert "8.0" in panel.table.value and "finished" in panel.table.value
    assert "test accuracy" in panel.status.value
    assert not panel.train_button.disabled and panel.stop_button.disabled


def test_each_press_adds_a_run_to_the_table(teacher):
    panel = make_panel(teacher)
    panel.sliders["temperature"].value = 2.0
    panel.train()
    panel.sliders["temperature"].value = 16.0
    panel.train()
    assert [r["temperature"] for r in panel.runs] == [2.0, 16.0]
    assert panel.table.value.count("<tr>") == 3                      # header + 2 runs


def test_stop_ends_the_run_and_keeps_its_curves(teacher):
    panel = make_panel(teacher, callback_every=1)
    original = panel._on_progress

    def progress_then_stop(h):
        original(h)
        if len(h.steps) == 3:
            panel.stop_button.click()
    panel._on_progress = progress_then_stop
    panel.train_button.click()
    run = panel.runs[-1]
    assert run["status"] == "stopped" and len(run["history"].steps) == 3
    assert max(len(line.get_xdata()) for line in panel.figure.axes[0].get_lines()) == 3
    assert "stopped" in panel.status.value and "stopped" in panel.table.value


def test_background_thread_keeps_the_caller_free(teacher):
    panel = make_panel(teacher, sync=False)
    panel.sliders["labeled"].value = 1000
    t0 = time.perf_counter()
    panel.train()
    returned_after = time.perf_counter() - t0
    assert panel.running and returned_after < 1.0
    assert panel.train() is None and "in progress" in panel.status.value   # a second press is refused
    panel.stop()
    panel.wait(60)
    assert not panel.running and panel.runs[0]["status"] in ("stopped", "finished")


def test_a_failing_run_is_shown_and_the_panel_recovers(teacher):
    panel = TrainingPanel("kd", {"temperature": 4.0}, Setting(dataset="nope", labeled=100, epochs=1),
                          device="cpu", teacher=teacher, sync=True)
    panel.train()
    assert panel.runs[0]["status"] == "failed" and "unknown data set" in panel.status.value
    assert not panel.train_button.disabled


def test_bad_knobs_and_methods(teacher):
    with pytest.raises(ValueError, match=r"method 'scratch' has no knob\(s\) \['temperature'\]"):
        TrainingPanel("scratch", {"temperature": 4.0}, SETTING, device="cpu")
    with pytest.raises(ValueError, match="unknown method 'kdx'"):
        TrainingPanel("kdx", {}, SETTING, device="cpu")


def test_soft_target_panel_redraws_for_the_new_temperature():
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(60, 10, generator=g) * 4, torch.arange(60) % 10
    panel = SoftTargetPanel(logits, labels, FASHION_CLASSES, temperature=1.0, index=3)
    first = panel.bars.value
    panel.temperature.value = 10.0
    ax = panel.bars_figure.axes[0]
    assert "T = 10" in ax.get_title() and FASHION_CLASSES[3] in ax.get_title()
    heights = torch.tensor([p.get_height() for p in ax.patches], dtype=torch.float32)
    torch.testing.assert_close(heights, softmax_t(logits[3], 10.0), atol=1e-6, rtol=0)
    assert panel.bars.value != first
    assert "T = 10" in panel.matrix_figure.axes[0].get_title() or "T=10" in panel.matrix_figure.axes[0].get_title()
    panel.index.value = 7
    assert FASHION_CLASSES[7] in panel.bars_figure.axes[0].get_title()
    assert panel.pairs.value.startswith("most similar classes:")


def test_dml_panel_has_an_integer_slider_for_k_and_trains_k_peers():
    import ipywidgets as w
    panel = TrainingPanel("dml", None, SETTING, device="cpu", sync=True, redraw_s=0.0)
    assert set(panel.sliders) == {"k", "kl_weight", "temperature"}
    assert isinstance(panel.sliders["k"], w.IntSlider) and (panel.sliders["k"].min, panel.sliders["k"].max) == (2, 4)
    assert isinstance(panel.sliders["kl_weight"], w.FloatSlider)
    panel.sliders["k"].value = 3
    panel.sliders["kl_weight"].value = 0.5
    run = panel.train()
    h = run["history"]
    assert run["status"] == "finished" and h.config["k"] == 3 and h.config["kl_weight"] == 0.5
    assert h.term_names == ["ce_0", "kl_0", "ce_1", "kl_1", "ce_2", "kl_2"]
    assert {"acc_2", "acc_ensemble", "agree_0_2"} <= set(h.epochs[-1])
    legend = {t.get_text() for t in panel.figure.axes[0].get_legend().get_texts()}
    assert {"ce_2", "kl_2 ×w/(K−1)=0.25", "total"} <= legend


def test_the_kd_panel_redraws_its_logit_view_at_each_evaluation(teacher):
    """Lesson 01's live view: the student's and teacher's logits on fixed probe images, redrawn after each of the
    two evaluations; the figure's bars are the logits the run measured, and the student's change between them."""
    panel = make_panel(teacher)
    assert panel.view_plot.layout.display == "none"                   # no view before a run
    seen = views_of_each_evaluation(panel)
    panel.train()
    assert len(seen) == 2                                            # one view per evaluation (2 epochs)
    (first, fig1, png1), (second, fig2, png2) = seen
    assert panel.view_plot.layout.display == "" and png1 != png2
    assert not torch.equal(first["student"], second["student"])      # the student moved between evaluations
    assert torch.equal(first["teacher"], second["teacher"])          # the teacher did not
    n, k = first["student"].shape
    assert n == 3 and k == 10 and first["temperature"] == 4.0
    axes = {ax.get_title(): ax for ax in fig2.axes}
    teacher_bars, student_bars = fig2.axes[0].containers[:2]
    assert (teacher_bars.get_label(), student_bars.get_label()) == ("teacher", "student")
    heights = torch.tensor([b.get_height() for b in student_bars], dtype=torch.float32)
    assert torch.allclose(heights, second["student"][0], atol=1e-5)  # image 0's student bars are its logits
    scatter = next(ax for title, ax in axes.items() if title.startswith(f"all {n}×{k} logits"))
    points = sum(len(c.get_offsets()) for c in scatter.collections)
    assert points == n * k                                           # every logit of every probe image
    softened = next(ax for ax in fig2.axes if ax.get_ylabel().startswith("softmax(z / T)"))     # image 0's
    probs = torch.tensor([b.get_height() for b in softened.containers[1]], dtype=torch.float32)
    assert torch.allclose(probs, softmax_t(second["student"][:1], 4.0)[0], atol=1e-5)   # softened at the run's T


def test_a_method_without_a_live_view_has_none_and_the_panel_hides_it():
    from kd_lab.experiments import load_data
    from kd_lab.methods import make_method
    from kd_lab.train import History
    test = load_data("fashion-mnist", "cpu")[1].subset(torch.arange(20))
    assert make_method("scratch", build_model("student")).live_view(test) is None
    panel = TrainingPanel("scratch", {"labeled": 200}, SETTING, device="cpu", sync=True, redraw_s=0.0)
    panel._redraw(History(), force=True)
    assert panel.view_figure is None and panel.view_plot.layout.display == "none"


def test_the_panel_trains_several_seeds_against_reference_bands(teacher):
    """Reference bands (mean ± std of the lesson's results) on the accuracy plot, 2 seeds per press, and each
    run's difference to the baseline's reference run of the same seed in the table."""
    reference = {"scratch": {0: 60.0, 1: 62.0, 2: 64.0}, "kd": {0: 70.0, 1: 71.0}}
    panel = make_panel(teacher, reference=reference)
    acc_ax = panel.figure.axes[1]
    bands = {p.get_label(): p for p in acc_ax.patches}
    scratch_band = next(p for label, p in bands.items() if label.startswith("scratch: 62.00 ± 2.00 % (3 seeds"))
    low, high = scratch_band.get_y(), scratch_band.get_y() + scratch_band.get_height()      # data units (%)
    assert (low, high) == (pytest.approx(60.0), pytest.approx(64.0))
    assert any(label.startswith("kd: 70.50 ± 0.71 % (2 seeds") for label in bands)
    assert {t.get_text() for t in acc_ax.get_legend().get_texts()} >= set(bands)
    panel.seeds.value = 2
    first = panel.train()
    assert [r["seed"] for r in panel.runs] == [0, 1] and first is panel.runs[0]
    assert all(r["status"] == "finished" for r in panel.runs)
    assert not torch.equal(torch.tensor([s["total"] for s in panel.runs[0]["history"].steps]),
                           torch.tensor([s["total"] for s in panel.runs[1]["history"].steps]))   # two seeds
    from kd_lab.experiments import load_data
    from kd_lab.train import evaluate
    test = load_data("fashion-mnist", "cpu")[1].subset(torch.arange(SETTING.test_size))
    for r in panel.runs:                                              # each run keeps the network it trained
        assert evaluate(r["student"], test).accuracy == pytest.approx(r["history"].test_acc)
    table = panel.runs_table_html()
    assert "Δ vs scratch (same seed)" in table
    for r in panel.runs:
        expected = 100 * r["history"].test_acc - reference["scratch"][r["seed"]]
        assert f"<td>{expected:+.2f}</td>" in table


def test_a_reference_without_the_runs_seed_leaves_the_difference_empty(teacher):
    from kd_lab.train import History
    panel = make_panel(teacher, reference={"scratch": {5: 60.0, 0: 70.0}})
    done = History(epochs=[{"epoch": 1, "test_acc": 0.75}])
    assert panel.paired_difference({"seed": 1, "history": done, "status": "finished"}) == "–"     # no seed 1
    assert panel.paired_difference({"seed": 0, "history": done, "status": "stopped"}) == "–"      # not a result
    assert panel.paired_difference({"seed": 0, "history": done, "status": "finished"}) == "+5.00"
    with pytest.raises(ValueError, match="max_seeds"):
        make_panel(teacher, max_seeds=0)


def test_the_dml_panel_redraws_its_peer_view_at_each_evaluation():
    """Lesson 03's live view: the peers' logits on the probe, drawn as their agreement matrix, the joint predictions
    of peers 0 and 1, and each peer's predictive entropy; it changes between the two evaluations."""
    from kd_lab.analysis import entropy
    longer = Setting(labeled=600, epochs=2, eval_every=1, test_size=300, batch_size=50)   # 12 steps per epoch
    panel = TrainingPanel("dml", {"k": 3}, longer, device="cpu", sync=True, redraw_s=0.0)
    seen = views_of_each_evaluation(panel)
    panel.train()
    assert len(seen) == 2 and seen[0][2] != seen[1][2]
    view, fig, _ = seen[1]
    assert len(view["logits"]) == 3 and not torch.equal(seen[0][0]["logits"][0], view["logits"][0])
    preds = torch.stack([z.argmax(1) for z in view["logits"]])
    agree_ax, joint_ax, entropy_ax = fig.axes[:3]                            # then the two colour bars
    agree = torch.as_tensor(agree_ax.images[0].get_array().data)
    assert agree[0, 2].item() == pytest.approx(100 * (preds[0] == preds[2]).float().mean().item())
    joint = torch.as_tensor(joint_ax.images[0].get_array().data)
    assert joint.trace().item() == pytest.approx((preds[0] == preds[1]).float().mean().item())
    means = [t.get_text() for t in entropy_ax.get_legend().get_texts()]
    expected = entropy(view["logits"][1].softmax(1)).mean().item()
    assert means[1] == f"peer 1 (student): mean {expected:.2f}"


def test_fixed_options_reach_every_run_and_the_record_keeps_the_trained_method():
    """Lesson 03's panel: peers fixed to student + student-tiny (no slider), w on a slider; the record keeps the
    trained method, whose peer 1 the cells after the panel look at."""
    panel = TrainingPanel("dml", {"kl_weight": 0.0}, SETTING, device="cpu", sync=True, redraw_s=0.0,
                          options={"peers": "student,student-tiny"})
    assert set(panel.sliders) == {"kl_weight"} and "peers=student,student-tiny" in panel.status.value
    run = panel.train()
    assert run["status"] == "finished" and run["history"].config["peers"] == "student,student-tiny"
    assert run["history"].config["kl_weight"] == 0.0
    assert run["method"].peers[0] is run["student"] and run["method"].peer_names == ["student", "student-tiny"]


def test_bad_fixed_options_are_refused_before_any_run():
    with pytest.raises(ValueError, match=r"method 'dml' has no option\(s\) \['peer'\]"):
        TrainingPanel("dml", {"kl_weight": 1.0}, SETTING, device="cpu", options={"peer": "student"})
    with pytest.raises(ValueError, match=r"\['kl_weight'\] given both as knob\(s\) \(a slider\) and as fixed options"):
        TrainingPanel("dml", {"kl_weight": 1.0}, SETTING, device="cpu", options={"kl_weight": 0.5})
