"""SSLD (Cui et al. 2021, lesson 02): the split teacher, cleaning and mining the unlabeled pool, the label-free
method, the step budget, its plots, widget knobs, exercises and command line."""
import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import views_of_each_evaluation

from kd_lab import exercises, mining, viz, zoo
from kd_lab import experiments as ex
from kd_lab.experiments import Setting, _budget, _labeled_indices, train_method
from kd_lab.methods import METHODS, SSLD, make_method, method_options
from kd_lab.models import build_model
from kd_lab.train import evaluate
from kd_lab.widgets import TrainingPanel

REPO = Path(__file__).resolve().parents[1]
SPLIT = zoo.RECIPES["first20k"]
QUIET = dict(progress=False, device="cpu")


@pytest.fixture(scope="module")
def mlp_teacher():
    """A cheap stand-in teacher (any network will do for the plumbing), without a zoo recipe."""
    torch.manual_seed(0)
    return build_model("mlp").eval()


def ssld(teacher, **options):
    torch.manual_seed(0)
    return SSLD(build_model("student"), teacher, **options)


def probs_with_counts(counts, confidence=None, seed=0):
    """(N, K) probabilities whose argmax gives ``counts[c]`` images of class c; distinct confidences unless
    ``confidence`` fixes them all."""
    g = torch.Generator().manual_seed(seed)
    k = len(counts)
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    labels = labels[torch.randperm(len(labels), generator=g)]
    conf = torch.rand(len(labels), generator=g) * 0.5 + 0.45 if confidence is None else \
        torch.full((len(labels),), confidence)
    probs = ((1 - conf) / (k - 1))[:, None].repeat(1, k)
    probs[torch.arange(len(labels)), labels] = conf
    return probs, labels


# ----------------------------------------------------------------------------------------- the teacher
def test_split_recipes_name_their_split_and_differ_from_the_main_teacher():
    assert SPLIT["train_range"] == [0, 20000] and zoo.RECIPES["first20k-quick"]["train_range"] == [0, 20000]
    keys = {zoo.recipe_key("fashion-mnist", zoo.RECIPES[r]) for r in ("full", "quick", "first20k", "first20k-quick")}
    assert len(keys) == 4
    assert "-first20000-" in zoo._file_name("fashion-mnist", SPLIT)
    assert "first" not in zoo._file_name("fashion-mnist", zoo.RECIPES["full"])
    other_split = dict(SPLIT, train_range=[0, 20001])
    assert zoo.recipe_key("fashion-mnist", other_split) != zoo.recipe_key("fashion-mnist", SPLIT)


def test_training_indices_of_each_recipe(fashion):
    train, _ = fashion
    torch.testing.assert_close(zoo.training_indices("first20k", train.y), torch.arange(20000))
    torch.testing.assert_close(zoo.training_indices("full", train.y), torch.arange(60000))
    quick = zoo.training_indices("quick", train.y)
    assert len(quick) == 20000 and torch.bincount(train.y[quick]).tolist() == [2000] * 10
    with pytest.raises(ValueError, match=r"train_range \[0, 70000\] must satisfy 0 <= a < b <= 60000"):
        zoo.training_indices(dict(SPLIT, train_range=[0, 70000]), train.y)


def test_shipped_split_teacher_is_found_checked_and_accurate(fashion, tmp_cache):
    name = zoo._file_name("fashion-mnist", SPLIT)
    assert (zoo.SHIPPED_DIR / name).is_file(), f"shipped split teacher {name} is missing"
    assert (zoo.SHIPPED_DIR / name).stat().st_size < 2e6
    teacher = ex.method_teacher("ssld", "fashion-mnist", "cpu", verbose=False)     # empty cache: the shipped file
    assert teacher.zoo_info["path"] == str(zoo.SHIPPED_DIR / name) and teacher.zoo_info["recipe"] == SPLIT
    acc = evaluate(teacher, fashion[1]).accuracy
    assert acc >= 0.90 and acc == pytest.approx(teacher.zoo_info["test_acc"], abs=1e-4)


def test_method_teacher_asks_for_the_method_recipe_and_its_quick_variant(monkeypatch, tmp_cache, tmp_path):
    asked = []
    monkeypatch.setattr(ex, "get_teacher", lambda dataset, recipe, **kw: asked.append(recipe))
    monkeypatch.setenv("KD_LAB_QUICK", "0")
    ex.method_teacher("ssld", "fashion-mnist")
    ex.method_teacher("kd", "fashion-mnist")
    monkeypatch.setenv("KD_LAB_QUICK", "1")
    monkeypatch.setattr(zoo, "SHIPPED_DIR", tmp_path)                                # nothing shipped, nothing cached
    ex.method_teacher("ssld", "fashion-mnist")
    assert asked == ["first20k", "full", "first20k-quick"]
    assert SSLD.teacher_recipe == "first20k"
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        ex.method_teacher("nope", "fashion-mnist")


# ------------------------------------------------------------------------------------- cleaning the pool
def test_duplicates_finds_test_copies_and_repeats():
    g = torch.Generator().manual_seed(0)
    test = torch.randint(0, 256, (20, 1, 4, 4), dtype=torch.uint8, generator=g)
    pool = torch.randint(0, 256, (10, 1, 4, 4), dtype=torch.uint8, generator=g)
    pool[2], pool[7] = test[5], test[0]
    pool[8] = pool[3]
    pool[9] = pool[3]
    in_test, repeated = mining.duplicates(pool, test)
    assert torch.nonzero(in_test).flatten().tolist() == [2, 7]
    assert torch.nonzero(repeated).flatten().tolist() == [8, 9]                  # the first copy (3) stays
    assert len(set(mining.image_hashes(pool))) == 8 and mining.image_hashes(pool[:0]) == []
    with pytest.raises(ValueError, match="expects the raw uint8 images, got dtype torch.float32"):
        mining.image_hashes(pool.float())


def test_pool_is_disjoint_from_the_split_teacher_and_from_the_labeled_images(fashion, mlp_teacher):
    train, test = fashion
    labeled = _labeled_indices(Setting(labeled=1000, labeled_from=20000), 0, train)
    m = ssld(mlp_teacher)
    pool = m.unlabeled_pool(train, labeled, test)
    teacher_seen = set(zoo.training_indices(SPLIT, train.y).tolist())
    assert not teacher_seen & set(pool.tolist()) and not set(labeled.tolist()) & set(pool.tolist())
    torch.testing.assert_close(pool, torch.arange(20000, 60000))                # Fashion-MNIST: no duplicates
    assert m.pool_report == {"teacher_images": 20000, "pool": 40000, "test_duplicates": 0, "repeats": 0,
                             "pool_used": 40000}


def test_labeled_images_outside_the_teacher_split_leave_the_pool(fashion, mlp_teacher):
    train, test = fashion
    labeled = _labeled_indices(Setting(labeled=300), 1, train)                  # drawn from all 60,000
    assert (labeled >= 20000).any()
    pool = ssld(mlp_teacher, pool_size=None).unlabeled_pool(train, labeled, test)
    assert len(pool) == 40000 - int((labeled >= 20000).sum()) and not set(labeled.tolist()) & set(pool.tolist())


def test_training_set_never_holds_a_test_image(fashion, mlp_teacher):
    train, test = fashion
    x = train.x.clone()
    x[20000:20040] = test.x[100:140]                                             # 40 test images planted in U
    x[20050] = x[20049]                                                          # and a repeat
    planted = dataclasses.replace(train, x=x)
    labeled = torch.arange(0, 20000, 200)
    for options in ({"unlabeled": "all", "pool_size": 3000}, {"unlabeled": "mined", "top_k": 3000, "pool_size": 3000}):
        m = ssld(mlp_teacher, **options)
        data = m.training_set(planted, labeled, test)
        assert m.pool_report["test_duplicates"] == 40 and m.pool_report["repeats"] == 1
        used = set(mining.image_hashes(data.x))
        assert not used & set(mining.image_hashes(test.x))
        assert len(data) == len(labeled) + m.pool_report["unlabeled_used"]


def test_a_teacher_trained_on_every_image_is_refused(fashion):
    train, test = fashion
    teacher = build_model("mlp").eval()
    teacher.zoo_info = {"recipe": zoo.RECIPES["full"]}
    with pytest.raises(ValueError, match="teacher was trained on every training image.*'first20k'"):
        ssld(teacher).training_set(train, torch.arange(100), test)


# ---------------------------------------------------------------------------------------------- mining
def test_mining_keeps_exactly_k_per_class_where_the_pool_allows():
    probs, labels = probs_with_counts([50, 30, 12, 0])
    mined = mining.top_k_per_class(probs, 20, seed=0)
    assert mined.kept.tolist() == [20, 20, 12, 0] and mined.available.tolist() == [50, 30, 12, 0]
    assert mined.short_classes == [2, 3]
    assert torch.bincount(labels[mined.indices], minlength=4).tolist() == [20, 20, 12, 0]
    assert torch.equal(mined.labels, labels[mined.indices]) and len(set(mined.indices.tolist())) == 52
    for c in range(3):                                                           # the most confident of each class
        kept = mined.confidence[mined.indices[mined.labels == c]]
        rejected = mined.confidence[(labels == c) & ~mined.kept_mask]
        assert rejected.numel() == 0 or kept.min() > rejected.max()
        assert torch.all(kept[:-1] >= kept[1:])                                  # most confident first


def test_the_controls_keep_the_most_confident_overall_or_a_seeded_random_draw():
    probs, labels = probs_with_counts([50, 30, 12, 0])
    top = mining.top_k_global(probs, 40, seed=0)
    assert len(top.indices) == 40 and top.rule == "global" and top.short_classes == []
    rest = torch.ones(len(probs), dtype=torch.bool)
    rest[top.indices] = False
    assert top.confidence[top.indices].min() > top.confidence[rest].max()        # the 40 most confident overall
    assert top.kept.tolist() == torch.bincount(labels[top.indices], minlength=4).tolist()
    drawn = mining.random_k(probs, 40, seed=2)
    assert len(set(drawn.indices.tolist())) == 40 and drawn.rule == "random"
    assert torch.equal(drawn.indices, mining.random_k(probs, 40, seed=2).indices)
    assert not torch.equal(drawn.indices, mining.random_k(probs, 40, seed=3).indices)
    assert torch.equal(drawn.labels, labels[drawn.indices])                     # the teacher's labels
    with pytest.raises(ValueError, match=r"n \(images kept\) must be a positive integer, got 0"):
        mining.random_k(probs, 0)


def test_class_balance_is_the_rarest_kept_class_over_the_mean():
    probs, _ = probs_with_counts([50, 30, 12])
    assert mining.class_balance(mining.top_k_per_class(probs, 10).kept) == 1.0
    assert mining.class_balance(mining.top_k_per_class(probs, 20).kept) == pytest.approx(12 / (52 / 3))
    assert math.isnan(mining.class_balance(torch.zeros(3, dtype=torch.long)))    # nothing kept


def test_mine_applies_a_rule_at_the_same_size(small, mlp_teacher):
    train, _ = small
    sizes = {rule: len(mining.mine(mlp_teacher, train, 3, rule=rule).indices) for rule in mining.RULES}
    assert sizes["global"] == sizes["random"] == 30 and sizes["per_class"] <= 30
    with pytest.raises(ValueError, match=r"rule must be one of \['per_class', 'global', 'random'\], got 'best'"):
        mining.mine(mlp_teacher, train, 3, rule="best")


def test_mining_is_reproducible_and_breaks_ties_by_the_seed():
    probs, labels = probs_with_counts([40, 40, 40], confidence=0.8)              # every confidence ties
    a, b = mining.top_k_per_class(probs, 10, seed=3), mining.top_k_per_class(probs, 10, seed=3)
    assert torch.equal(a.indices, b.indices)
    others = [set(mining.top_k_per_class(probs, 10, seed=s).indices.tolist()) for s in (4, 5)]
    assert all(o != set(a.indices.tolist()) for o in others)
    assert a.kept.tolist() == [10, 10, 10] and torch.equal(labels[a.indices], a.labels)


@pytest.mark.parametrize("k,seed,message", [(0, 0, r"k \(images kept per class\) must be a positive integer, got 0"),
                                            (-3, 0, "got -3"), (2.5, 0, "got 2.5"), (True, 0, "got True"),
                                            (5, "a", "seed must be an integer, got 'a'")])
def test_mining_bad_arguments(k, seed, message):
    probs, _ = probs_with_counts([5, 5])
    with pytest.raises(ValueError, match=message):
        mining.top_k_per_class(probs, k, seed)


def test_mining_bad_probabilities():
    with pytest.raises(ValueError, match=r"probs must be a \(N, K\) tensor of class probabilities, got \(5,\)"):
        mining.top_k_per_class(torch.rand(5), 2)
    with pytest.raises(ValueError, match="got list"):
        mining.top_k_per_class([[0.5, 0.5]], 2)


def test_mine_reads_no_pool_label_and_is_reproducible(small, mlp_teacher):
    train, _ = small
    scrambled = dataclasses.replace(train, y=train.y[torch.randperm(len(train))])
    a, b = mining.mine(mlp_teacher, train, 15, seed=1), mining.mine(mlp_teacher, scrambled, 15, seed=1)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.labels, b.labels)
    with pytest.raises(ValueError, match="got 0"):
        mining.mine(mlp_teacher, train, 0)


def test_teacher_probabilities_use_eval_mode_without_gradient(small):
    train, _ = small
    torch.manual_seed(1)
    teacher = build_model("student-tiny").train()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    probs = mining.teacher_probabilities(teacher, train, batch_size=128)
    assert teacher.training and not probs.requires_grad and probs.shape == (len(train), 10)
    for k, v in teacher.state_dict().items():                                   # BN running stats untouched
        torch.testing.assert_close(v, before[k])
    with torch.no_grad():
        want = torch.softmax(teacher.eval()(train.images()), 1)
    torch.testing.assert_close(probs, want, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(probs.sum(1), torch.ones(len(train)))
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        mining.teacher_probabilities(teacher, train, batch_size=0)


def test_label_precision_counts_right_teacher_labels():
    probs, labels = probs_with_counts([10, 10])
    mined = mining.top_k_per_class(probs, 5)
    truth = labels.clone()
    flip = mined.indices[:2]                                                     # two kept images of class 0 wrong
    truth[flip] = 1 - truth[flip]
    p = mining.label_precision(mined, truth)
    assert p["kept"] == 10 and p["right"] == 8 and p["overall"] == pytest.approx(0.8)
    assert p["per_class"] == pytest.approx([0.6, 1.0]) and p["right_per_class"] == [3, 5]
    with pytest.raises(ValueError, match=r"one label per pool image, shape \(20,\), got \(3,\)"):
        mining.label_precision(mined, torch.zeros(3, dtype=torch.long))


# ---------------------------------------------------------------------------------------- the method
def test_registered_with_its_options():
    assert METHODS["ssld"] is SSLD and SSLD.needs_teacher
    assert method_options("ssld") == {"temperature": 1.0, "unlabeled": "mined", "top_k": 1000, "pool_size": None,
                                      "objective": "ssld", "finetune": "none", "finetune_steps": 100,
                                      "finetune_lr": 0.01}


@pytest.mark.parametrize("options,message", [
    ({"unlabeled": "some"}, "unlabeled must be one of"),
    ({"objective": "ce"}, "objective must be one of"),
    ({"top_k": 0}, "top_k must be a positive integer, got 0"),
    ({"pool_size": -1}, "pool_size must be a positive integer or None"),
    ({"temperature": 0}, "temperature must be > 0"),
    ({"finetune": "kd"}, r"finetune must be one of \('none', 'distill', 'ce'\)"),
    ({"finetune_steps": 0}, "finetune_steps must be a positive integer, got 0"),
    ({"finetune_lr": 0.0}, r"finetune_lr must be a number in \(0, 1\], got 0.0"),
])
def test_bad_options(mlp_teacher, options, message):
    with pytest.raises(ValueError, match=message):
        make_method("ssld", build_model("student"), mlp_teacher, **options)


@pytest.mark.parametrize("objective,temperature", [("ssld", 1.0), ("ssld", 3.0), ("kd", 2.0)])
def test_loss_is_the_label_free_objective(small, mlp_teacher, objective, temperature):
    x, y = next(small[0].batches(64, shuffle=False))
    m = ssld(mlp_teacher, objective=objective, temperature=temperature).train()
    terms = m.loss_terms(x, y)
    assert list(terms) == [objective]
    s, t = m.student(x), mlp_teacher(x).detach()
    log_ps, log_pt = torch.log_softmax(s / temperature, 1), torch.log_softmax(t / temperature, 1)
    forward = (log_pt.exp() * (log_pt - log_ps)).sum(1)                          # KL(p_t ‖ p_s), (B,)
    backward = (log_ps.exp() * (log_ps - log_pt)).sum(1)                         # KL(p_s ‖ p_t)
    per_image = 0.5 * (forward + backward) if objective == "ssld" else forward
    torch.testing.assert_close(terms[objective], temperature ** 2 * per_image.mean(), rtol=1e-4, atol=1e-6)


def test_loss_and_gradient_ignore_the_labels(small, mlp_teacher):
    x, y = next(small[0].batches(64, shuffle=False))
    m = ssld(mlp_teacher).train()
    grads = []
    for labels in (y, torch.randint(0, 10, y.shape), torch.full_like(y, -1)):
        m.zero_grad()
        loss = m.loss_terms(x, labels)["ssld"]
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in m.student.parameters()]))
    for loss, g in grads[1:]:
        torch.testing.assert_close(loss, grads[0][0])
        for a, b in zip(g, grads[0][1]):
            torch.testing.assert_close(a, b)
    assert all(p.grad is None for p in mlp_teacher.parameters())


@pytest.mark.parametrize("unlabeled", ["mined", "global", "random", "all"])
def test_scrambling_the_hidden_labels_changes_nothing(fashion, mlp_teacher, unlabeled):
    train, test = fashion
    y = train.y.clone()
    y[20000:] = y[20000:][torch.randperm(40000, generator=torch.Generator().manual_seed(0))]
    scrambled = dataclasses.replace(train, y=y)
    labeled = torch.arange(0, 20000, 100)
    m = ssld(mlp_teacher, unlabeled=unlabeled, top_k=100, pool_size=4000)
    a = m.training_set(train, labeled, test)
    b = ssld(mlp_teacher, unlabeled=unlabeled, top_k=100, pool_size=4000).training_set(scrambled, labeled, test)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    torch.testing.assert_close(a.y[:200], train.y[labeled])                      # L keeps its true labels
    assert len(a) == 200 + (int(m.mined.kept.sum()) if unlabeled != "all" else 4000)


def test_the_selection_rules_keep_pools_of_one_size_and_measure_them(fashion, mlp_teacher):
    """mined (top k per class), global (top k·C) and random (k·C) keep the same number of unlabeled images; the
    hidden labels only measure them: how often the teacher's label is right, and how even its classes are."""
    train, test = fashion
    labeled, sizes, report = torch.arange(0, 20000, 100), {}, {}
    for rule in ("mined", "global", "random"):
        m = ssld(mlp_teacher, unlabeled=rule, top_k=50, pool_size=4000)
        data = m.training_set(train, labeled, test)
        sizes[rule], report[rule] = len(data) - 200, m.epoch_metrics(test)
        pool = data.y[200:]                                                       # the teacher's labels
        hidden = train.y[m.unlabeled_pool(train, labeled, test)][m.mined.indices]
        assert report[rule]["pool_precision"] == pytest.approx(float((pool.cpu() == hidden.cpu()).float().mean()))
        counts = torch.bincount(pool.cpu(), minlength=10).float()
        assert report[rule]["pool_balance"] == pytest.approx(float(counts.min() / counts.mean()))
        assert m.mined.rule == {"mined": "per_class"}.get(rule, rule)
    assert sizes["global"] == sizes["random"] == 500                              # k × classes
    assert sizes["mined"] <= 500                                                  # fewer where a class runs short
    assert report["mined"]["pool_balance"] >= report["random"]["pool_balance"]
    assert ssld(mlp_teacher, unlabeled="none").epoch_metrics(test) == {}        # no unlabeled image, nothing to measure


def test_no_unlabeled_image_left_warns_and_trains_on_the_labeled_images(fashion, mlp_teacher):
    train, test = fashion
    m = ssld(mlp_teacher)
    with pytest.warns(UserWarning, match="no unlabeled image is left"):
        data = m.training_set(train, None, test)                                # every image labeled
    assert len(data) == len(train) and m.pool_report["pool"] == 0 and m.pool_report["unlabeled_used"] == 0


def test_labeled_only_is_the_labeled_subset(fashion, mlp_teacher):
    train, test = fashion
    data = ssld(mlp_teacher, unlabeled="none").training_set(train, torch.arange(50), test)
    assert torch.equal(data.x, train.x[:50]) and torch.equal(data.y, train.y[:50])


def test_run_through_the_generic_path(mlp_teacher):
    setting = Setting(labeled=100, labeled_from=20000, steps=12, batch_size=50, test_size=200)
    m, h = train_method("ssld", setting, seed=0, teacher=mlp_teacher, top_k=30, pool_size=1000, **QUIET)
    size = h.config["train_size"]
    assert h.status == "finished" and h.term_names == ["ssld"] and size == 100 + int(m.mined.kept.sum())
    assert h.config["top_k"] == 30 and m.pool_report["pool_used"] == 1000 and 0 <= h.test_acc <= 1
    per_epoch = -(-size // 50)
    assert h.config["epochs"] == max(1, round(12 / per_epoch)) and len(h.steps) == h.config["epochs"] * per_epoch


@pytest.mark.parametrize("finetune", ["distill", "ce"])
def test_the_finetune_stage_trains_on_the_labeled_images_after_the_main_one(mlp_teacher, finetune):
    """PaddleClas's last SSLD step: after the main stage, a stage on L alone (the label-free loss, or CE) at a
    fraction of the learning rate, appended to the same History; the final accuracy is the fine-tuned one."""
    setting = Setting(labeled=100, labeled_from=20000, steps=12, batch_size=50, test_size=200)
    m, h = train_method("ssld", setting, seed=0, teacher=mlp_teacher, top_k=30, pool_size=1000, finetune=finetune,
                        finetune_steps=4, finetune_lr=0.1, **QUIET)
    main = [e for e in h.epochs if e.get("stage") != "finetune"]
    tuned = [e for e in h.epochs if e.get("stage") == "finetune"]
    assert h.status == "finished" and len(tuned) == 2
    assert [e["epoch"] for e in tuned] == [main[-1]["epoch"] + 1, main[-1]["epoch"] + 2]
    stage = h.config["finetune_stage"]
    assert stage["lr"] == pytest.approx(0.1 * setting.lr) and stage["steps"] == 4
    ft_steps = h.steps[-4:]
    assert [r["step"] for r in h.steps] == list(range(1, len(h.steps) + 1))
    assert list(ft_steps[0]) == ["step", "epoch", "total", "ssld" if finetune == "distill" else "ce", "lr"]
    assert 0.5 * 0.1 * setting.lr < ft_steps[0]["lr"] < 0.1 * setting.lr        # a cosine schedule of its own,
    assert h.steps[-5]["lr"] < 1e-3 * setting.lr                                 # after the main one's ended
    last = h.epochs[-1]
    assert last["acc_before_finetune"] == main[-1]["test_acc"] and h.test_acc == last["test_acc"]
    assert last["pool_precision"] == main[-1]["pool_precision"]                  # the main stage's measurements
    assert "val_acc" in last and last["val_acc"] == pytest.approx(
        ex.validation_accuracy(h)) and 0 <= h.test_acc <= 1


def test_no_finetune_is_one_stage(mlp_teacher):
    setting = Setting(labeled=100, labeled_from=20000, steps=12, batch_size=50, test_size=200)
    m, h = train_method("ssld", setting, seed=0, teacher=mlp_teacher, top_k=30, pool_size=1000, **QUIET)
    assert m.finetune_stage() is None and "finetune_stage" not in h.config and h.config["finetune"] == "none"
    assert all("stage" not in e and "acc_before_finetune" not in e for e in h.epochs)


# ------------------------------------------------------------------------------- setting: budget and L
def test_step_budget_sets_the_epochs_for_any_training_set():
    s = Setting(steps=960, batch_size=128, epochs=60, eval_every=5)             # accuracy every 1/12 of a run
    assert _budget(s, 1000) == (120, 10)                                         # 8 steps per epoch
    assert _budget(s, 41000) == (3, 1)                                           # 321 steps per epoch
    assert _budget(s, 11000) == (11, 1)
    assert _budget(Setting(steps=960, epochs=4, eval_every=4), 1000) == (120, 120)   # the final accuracy only
    assert _budget(Setting(steps=10, batch_size=128), 60000) == (1, 1)           # at least one epoch
    assert _budget(Setting(epochs=7, eval_every=3), 1000) == (7, 3)             # no budget: the setting's
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match=f"steps must be a positive integer or None, got {bad!r}"):
            _budget(Setting(steps=bad), 1000)


def test_every_method_gets_the_same_number_of_steps(mlp_teacher):
    setting = Setting(labeled=100, labeled_from=20000, steps=20, batch_size=25, test_size=100)
    _, scratch = train_method("scratch", setting, **QUIET)
    _, labeled_only = train_method("ssld", setting, teacher=mlp_teacher, unlabeled="none", **QUIET)
    assert len(scratch.steps) == len(labeled_only.steps) == 20 and scratch.config["epochs"] == 5


def test_labeled_images_come_from_the_first_n(fashion):
    train, _ = fashion
    a = _labeled_indices(Setting(labeled=500, labeled_from=20000), 3, train)
    assert a.max() < 20000 and torch.bincount(train.y[a]).tolist() == [50] * 10
    assert torch.equal(a, _labeled_indices(Setting(labeled=500, labeled_from=20000), 3, train))
    assert not torch.equal(a, _labeled_indices(Setting(labeled=500, labeled_from=20000), 4, train))
    plain = _labeled_indices(Setting(labeled=500, validation=0), 3, train)
    from kd_lab.data import labeled_split
    assert torch.equal(plain, labeled_split(train.y, 500, seed=3).labeled)      # unchanged without labeled_from
    assert torch.equal(_labeled_indices(Setting(labeled=None, labeled_from=30), 0, train), torch.arange(30))
    for bad in (0, 60001, "x"):
        with pytest.raises(ValueError, match=f"labeled_from must be an integer in 1..60000 or None, got {bad!r}"):
            _labeled_indices(Setting(labeled=100, labeled_from=bad), 0, train)


# ------------------------------------------------------------------------------------------ plots
def test_confidence_histogram():
    conf = torch.tensor([0.3, 0.5, 0.99, 0.999, 0.95, 0.6])
    kept = torch.tensor([False, False, True, True, True, False])
    fig = viz.plot_confidence_histogram(conf, kept, bins=10)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert sum(heights) == 6 and ax.get_yscale() == "log" and ax.get_xlim() == (0.0, 1.0)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["rejected (3)", "kept (3)"]
    with pytest.raises(ValueError, match="confidence has 6 values but kept has 2"):
        viz.plot_confidence_histogram(conf, kept[:2])


def test_class_balance():
    fig = viz.plot_class_balance([5, 5, 2], ["a", "b", "c"], available=[9, 7, 2], correct=[5, 4, 2], k=5)
    ax = fig.axes[0]
    bars = [p for p in ax.patches]
    assert [b.get_height() for b in bars[:3]] == [9, 7, 2]                       # candidates
    assert [b.get_height() for b in bars[3:6]] == [5, 5, 2]                      # kept
    assert [b.get_height() for b in bars[6:9]] == [0, 1, 0]                      # wrong teacher labels
    assert ax.get_lines()[0].get_ydata()[0] == 5 and [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert ax.get_ylim() == pytest.approx((0, 1.3 * 9))                          # room for the legend above
    with pytest.raises(ValueError, match="available has 2 counts for 3 classes"):
        viz.plot_class_balance([5, 5, 2], ["a", "b", "c"], available=[1, 2])


def test_mining_grid(small):
    train, _ = small
    kept = [train.x[:4], train.x[4:6], train.x[:0]]
    rejected = [train.x[6:9], train.x[:0], train.x[9:10]]
    fig = viz.plot_mining_grid(kept, rejected, ["T-shirt", "Trouser", "Bag"])
    assert len(fig.axes) == 6
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles[0].startswith("T-shirt · kept") and titles[3].startswith("Trouser · rejected")
    assert fig.axes[0].images[0].get_array().shape == (28, 4 * 29 - 1)         # 4 images in one row
    assert fig.axes[0].images[0].get_interpolation() == "nearest"
    assert [t.get_text() for t in fig.axes[3].texts] == ["none"] == [t.get_text() for t in fig.axes[4].texts]
    with pytest.raises(ValueError, match=r"one entry per class \(3\)"):
        viz.plot_mining_grid(kept[:2], rejected, ["a", "b", "c"])


def test_unlabeled_curve():
    fig = viz.plot_unlabeled_curve([0, 1000, 10000], {"SSLD": [[80, 82], [85, 85], [88, 90]]},
                                   baseline={"supervised on L": [81, 83]})
    ax = fig.axes[0]
    assert ax.get_xscale() == "symlog" and "unlabeled" in ax.get_title()
    line = ax.get_lines()[0]
    assert list(line.get_xdata()) == [0, 1000, 10000] and list(line.get_ydata()) == [81, 85, 89]
    assert ax.get_lines()[1].get_ydata()[0] == 82                                # the baseline's mean
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1,000", "10,000"]


# ------------------------------------------------------------------------------------- widget, exercises
def test_training_panel_with_ssld_knobs(mlp_teacher):
    setting = Setting(labeled=200, labeled_from=20000, steps=8, batch_size=100, test_size=200)
    panel = TrainingPanel("ssld", {"labeled": 200, "top_k": 100, "temperature": 1.0, "steps": 10}, setting,
                          device="cpu", teacher=mlp_teacher, sync=True, redraw_s=0.0)
    panel.sliders["top_k"].value = 200
    panel.sliders["temperature"].value = 2.0
    panel.train_button.click()
    h = panel.runs[-1]["history"]
    assert panel.runs[-1]["status"] == "finished" and h.config["top_k"] == 200 and h.config["temperature"] == 2.0
    assert h.config["train_size"] > 200 and {"ssld", "total"} <= {t.get_text() for t in
                                                                  panel.figure.axes[0].get_legend().get_texts()}


def test_the_ssld_panel_redraws_its_pseudo_label_view_at_each_evaluation(mlp_teacher):
    """Lesson 02's live view: on unlabeled images trained on, the teacher's pseudo-labels (fixed), their hidden
    labels (fixed, never trained on) and the student's predictions (changing); the figure's numbers are theirs."""
    setting = Setting(labeled=200, labeled_from=20000, epochs=4, eval_every=2, batch_size=100, test_size=200)
    panel = TrainingPanel("ssld", {"labeled": 200, "top_k": 100}, setting, device="cpu", teacher=mlp_teacher,
                          sync=True, redraw_s=0.0)
    seen = views_of_each_evaluation(panel)
    panel.train()
    assert len(seen) == 2 and seen[0][2] != seen[1][2]
    (first, _, _), (view, fig, _) = seen
    assert torch.equal(first["pseudo"], view["pseudo"]) and torch.equal(first["hidden"], view["hidden"])
    assert not torch.equal(first["student"], view["student"]) and len(view["pseudo"]) == 500
    balance, per_class = fig.axes[:2]
    pseudo_bars, hidden_bars = balance.containers[:2]
    assert [b.get_height() for b in pseudo_bars] == torch.bincount(view["pseudo"], minlength=10).tolist()
    assert [b.get_height() for b in hidden_bars] == torch.bincount(view["hidden"], minlength=10).tolist()
    legend = [t.get_text() for t in per_class.get_legend().get_texts()]
    right = 100 * (view["student"] == view["hidden"]).float().mean().item()
    assert f"student right: {right:.1f} %" in legend


def test_ssld_without_unlabeled_images_has_no_live_view(mlp_teacher, small):
    method = make_method("ssld", build_model("student-tiny"), mlp_teacher, unlabeled="none")
    assert method.live_view(small[1]) is None


def test_check_mining_accepts_a_right_answer_and_names_mistakes(capsys):
    def right(p, k):
        conf, pred = p.max(1)
        return torch.cat([torch.nonzero(pred == c).flatten()[conf[pred == c].argsort(descending=True)[:k]]
                          for c in range(p.shape[1])])

    def overall(p, k):
        return p.max(1).values.argsort(descending=True)[: k * p.shape[1]]

    def ascending(p, k):
        conf, pred = p.max(1)
        return torch.cat([torch.nonzero(pred == c).flatten()[conf[pred == c].argsort()[:k]] for c in range(p.shape[1])])

    assert exercises.check_mining(right)
    for wrong, said in ((overall, "most confident images overall"), (ascending, "least confident"),
                        (lambda p, k: None, "did you forget `return`"), (lambda p, k: right(p, k).float(), "integer")):
        assert not exercises.check_mining(wrong)
        assert said in capsys.readouterr().out


def test_check_gt_term(capsys):
    assert exercises.check_gt_term("b")
    for answer in ("a", "c", "d", "z"):
        assert not exercises.check_gt_term(answer)
    out = capsys.readouterr().out
    assert "not (a)" in out and "answer='z' is not one of ['a', 'b', 'c', 'd']" in out


# ----------------------------------------------------------------------------------------- command line
def test_cli_run_ssld_uses_the_split_teacher():
    env = {**os.environ, "KD_LAB_QUICK": "1"}
    done = subprocess.run([sys.executable, "-m", "kd_lab", "run", "ssld", "--labeled", "100", "--epochs", "1",
                           "--test-size", "200", "--device", "cpu", "--set", "pool_size=600", "--set", "top_k=20",
                           "--json"], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    record = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))
    assert record["status"] == "finished" and set(record["final_loss_terms"]) == {"total", "ssld"}
    assert record["options"] == {"pool_size": 600, "top_k": 20}
    assert 100 < record["last_epoch"]["images"] <= 300
