"""Writes notebooks/02_ssld.ipynb (without outputs) from the cells below.

The notebook is the lesson; this script keeps its source reviewable as plain text (see
tools/lesson_builder.py for how to rebuild and re-execute it).
"""
from lesson_builder import Lesson

LESSON = Lesson("02_ssld.ipynb")
md, code = LESSON.md, LESSON.code

md(r"""
# Lesson 02 — Label-free distillation: SSLD with unlabeled images

**After this lesson you can**

1. explain how SSLD trains a student on the teacher's outputs alone — no ground-truth term — and why
   that lets it use images nobody labeled;
2. set up the experiment honestly: a teacher that never saw the unlabeled pool, a pool cleaned of test
   images, labels of the pool hidden from training;
3. mine a class-balanced set of unlabeled images by the teacher's confidence, and measure how often the
   teacher's label is right on what was kept;
4. write SSLD's symmetric-KL loss from scratch and compare it with Hinton's KD loss;
5. measure, over seeds and on the same budget of optimizer steps, what unlabeled images add to a
   student that has only 1,000 labels.

The lesson runs in two modes. **Full mode** (the default) is what the text talks about; its outputs are
committed in this notebook. **Quick mode** (`KD_LAB_QUICK=1`, used by the tests) runs the same cells on a
small pool, one seed and a few dozen steps, in under two minutes on a 2-core CPU — its numbers are *not*
the ones discussed below.
""")

code(r"""
%matplotlib inline
import copy
from dataclasses import replace

import torch
import torch.nn.functional as F
import matplotlib.pyplot as plt
from ipywidgets import IntSlider, interact
from tqdm.auto import tqdm

from kd_lab import exercises, losses, mining, viz, zoo
from kd_lab.data import FASHION_CLASSES as CLASSES, labeled_split
from kd_lab.experiments import Setting, accuracies, load_data, mean_std, method_teacher, train_student
from kd_lab.methods import Scratch, make_method
from kd_lab.models import build_model, count_parameters
from kd_lab.train import device_name, evaluate, fit, pick_device, quick_mode
from kd_lab.widgets import TrainingPanel

QUICK = quick_mode()
DEVICE = pick_device("auto")
SEEDS = (0,) if QUICK else (0, 1, 2)
STEPS = 32 if QUICK else 1284      # optimizer steps per run, the same for every method (full: 4 epochs of L ∪ U)
TOP_K = 100 if QUICK else 1000     # unlabeled images kept per class by the teacher's confidence
POOL_SIZE = 2000 if QUICK else None   # quick mode uses the first 2,000 images of the pool only (None: all)
SETTING = Setting.default(labeled=1000, labeled_from=20000, steps=STEPS)   # L: 1,000 of the teacher's images
EXPERIMENT = replace(SETTING, eval_every=SETTING.epochs)   # experiments measure the final accuracy only

train, test = load_data("fashion-mnist", DEVICE)
test_view = test.subset(torch.arange(SETTING.test_size or len(test), device=DEVICE))
teacher = method_teacher("ssld", "fashion-mnist", DEVICE)   # the zoo's first20k teacher, see below
info = teacher.zoo_info
print(f"mode: {'quick' if QUICK else 'full'} | device: {device_name(DEVICE)} | torch {torch.__version__}")
print(f"setting: {SETTING}")
print(f"teacher: {count_parameters(teacher):,} parameters ({info['recipe']['preset']}), "
      f"{100 * info['test_acc']:.2f} % test accuracy, trained in {info['train_s']:.0f} s on {info['device']}")
""")

md(r"""
## 1. The idea: learn from the teacher's outputs, on images nobody labeled

Hinton's KD (lesson 01) mixes two targets on the *labeled* images: the label, through cross-entropy, and
the teacher's softened probabilities. **SSLD** — *Simple Semi-supervised Label Distillation* — drops the
label term altogether. The student learns to reproduce the teacher's output distribution, and nothing
else. That objective needs no label, so it can be computed on *any* image: SSLD adds a large set of
unlabeled images, picked by the teacher itself.

The recipe of Cui et al. (PaddleClas):

1. a strong teacher, trained on the labeled data set;
2. a pool of unlabeled images (for ImageNet-1k, images of ImageNet-22k); images that duplicate the
   evaluation set are removed from the pool;
3. the teacher predicts every pool image; for each class the images it predicts with the highest
   confidence are kept, the same number per class, so that the mined set is class-balanced;
4. the student is trained on labeled + mined images with a symmetric KL divergence between the
   teacher's and the student's outputs, with no ground-truth term;
5. a short fine-tune on the labeled set at the end.

With it, PaddleClas's ImageNet models gained about three points of top-1 accuracy on average. SSLD is
*response-based* distillation (it uses the teacher's outputs, like lesson 01), made *label-free*.

> C. Cui, R. Guo, Y. Du, D. He, F. Li, Z. Wu, Q. Liu, S. Wen, J. Huang, X. Hu, D. Yu, E. Ding, Y. Ma,
> *Beyond Self-Supervision: A Simple Yet Effective Network Distillation Alternative to Improve
> Backbones*, arXiv:2103.05959, 2021.
""")

md(r"""
## 2. The loss

For an image $x$, the student's logits $z_s = f_s(x)$ and the teacher's $z_t = f_t(x)$, both of shape
`(B, K)` for a batch of $B$ images and $K = 10$ classes, give softened distributions
$p_s = \mathrm{softmax}(z_s / T)$ and $p_t = \mathrm{softmax}(z_t / T)$ at temperature $T$. SSLD minimises
the symmetric Kullback–Leibler divergence (PaddleClas calls it "JS"):

$$\mathcal{L}_\text{SSLD} = T^2 \cdot \frac{1}{B} \sum_{b=1}^{B} \tfrac12 \Big[\mathrm{KL}\big(p_t^{(b)} \,\|\, p_s^{(b)}\big)
+ \mathrm{KL}\big(p_s^{(b)} \,\|\, p_t^{(b)}\big)\Big], \qquad
\mathrm{KL}(p \,\|\, q) = \sum_{k=1}^{K} p_k \log \frac{p_k}{q_k}.$$

No label $y$ appears. Hinton's KD term is the first half alone, $T^2\,\mathrm{KL}(p_t \| p_s)$, and KD adds
$(1-\alpha)\,\mathrm{CE}(z_s, y)$, which needs the label. The teacher is frozen: no gradient reaches it.
SSLD uses $T = 1$ (our default too); `kd_lab.losses.ssld_loss(student_logits, teacher_logits, temperature)`
implements it, and the method `ssld` applies it to every image of its training set.
""")

md(r"""
## 3. The setting: who saw which images

For the lesson to measure what SSLD claims, the teacher must **not** have seen the unlabeled pool. A
teacher trained on the pool has memorised it: its soft labels there are no longer predictions, and the
student would be copying answers it could never get on new data — the lesson would overstate SSLD. The
course's main teacher saw all 60,000 training images, so this lesson uses another one:

| part | images | who uses them |
|---|---|---|
| teacher's split | training images 0–19,999 (with labels) | the `first20k` teacher was trained on them |
| **L** (labeled) | 1,000 of the teacher's split, class-balanced, drawn per seed | every student, with labels |
| **U** (unlabeled pool) | training images 20,000–59,999 | SSLD's students, **without** labels (used only to evaluate the mining) |
| test | the 10,000 test images | evaluation only |

The `first20k` teacher ships with the package (fp16 weights, `kd_lab/weights/`); its recipe — and thus its
file name and cache key — names its split, so it cannot be mistaken for the main teacher.
""")

code(r"""
seen = zoo.training_indices(info["recipe"], train.y)                 # what the teacher was trained on
L0 = labeled_split(train.y[:SETTING.labeled_from], SETTING.labeled, seed=SEEDS[0]).labeled   # L of seed 0
probe = make_method("ssld", build_model("student"), teacher, pool_size=POOL_SIZE)
U = probe.unlabeled_pool(train, L0, test)                            # the pool, as SSLD's runs build it
print(f"teacher's split: training images {int(seen.min())}..{int(seen.max())} ({len(seen):,} images)")
print(f"L (seed {SEEDS[0]}): {len(L0):,} images, all inside the teacher's split: {bool(L0.max() < len(seen))}")
print(f"U: {len(U):,} images, overlap with the teacher's split: "
      f"{len(set(U.tolist()) & set(seen.tolist()))}, with L: {len(set(U.tolist()) & set(L0.tolist()))}")
L_data = train.subset(L0.to(DEVICE))
with torch.no_grad():
    teacher_on_L = evaluate(teacher, L_data).accuracy
print(f"the teacher's accuracy on L (it was trained on these): {100 * teacher_on_L:.2f} %; "
      f"on the test images: {100 * info['test_acc']:.2f} %")
""")

md(r"""
### Cleaning the pool

SSLD removed the pool images that duplicate an evaluation image, so that the student is not trained on the
test set through the back door. We do the same with exact duplicates: the SHA-1 of each image's 784 bytes,
U against the test split, and also within U (a repeated image would simply count twice). The count comes
from the same code the training runs use (`SSLD.unlabeled_pool`, `kd_lab.mining.duplicates`). First a check
that the detector does find duplicates when there are some: it must flag every image of a copy of 100 test
images.
""")

code(r"""
planted, _ = mining.duplicates(test.x[:100], test.x)
print(f"check: {int(planted.sum())} of 100 copied test images flagged")  # NBVAL_CHECK_OUTPUT
report = probe.pool_report
print(f"pool before cleaning: {report['pool']:,} images | exact duplicates of a test image: "
      f"{report['test_duplicates']} | repeats within the pool: {report['repeats']} | "
      f"pool used: {report['pool_used']:,}")
""")

md(r"""
## 4. Mining: what the teacher keeps

The teacher predicts every image of U (in batches, in eval mode, without gradient). Each image goes to the
class the teacher predicts, with the teacher's probability of that class as its **confidence**; per class,
the $k$ most confident images are kept (all of them where a class has fewer). Ties are broken by a seeded
permutation, so the mined set is reproducible. The pool's true labels play no part — we use them here,
and only here, to see how often the teacher's label is right on what it kept.

Below, at the lesson's $k$: the histogram shows the teacher's confidence over the whole pool, the kept
images stacked on the rejected ones; the bar chart shows how many images each class keeps (outline: how
many the teacher predicts in that class), with the ones whose teacher label is wrong in red. The table
gives, per class, the candidates, the images kept, the lowest confidence kept, and how often the kept
labels are right.
""")

code(r"""
pool = train.subset(U.to(DEVICE))
pool_probs = mining.teacher_probabilities(teacher, pool)        # (N, 10), cached: the runs below reuse it
hidden = pool.y.cpu()                                           # U's labels: for evaluating the mining only
print(f"teacher's accuracy on U (hidden labels): {100 * float((pool_probs.argmax(1) == hidden).float().mean()):.2f} %")

def show_mining(k=TOP_K):
    mined = mining.top_k_per_class(pool_probs, k)
    right = mining.label_precision(mined, hidden)
    fig, axes = plt.subplots(1, 2, figsize=(15, 3.9), layout="constrained")
    viz.plot_confidence_histogram(mined.confidence, mined.kept_mask, ax=axes[0])
    viz.plot_class_balance(mined.kept, CLASSES, available=mined.available, correct=right["right_per_class"],
                           k=k, ax=axes[1])
    plt.show()
    short = ", ".join(CLASSES[c] for c in mined.short_classes) or "none"
    print(f"k = {k}: kept {right['kept']:,} images, teacher's label right on {100 * right['overall']:.2f} % "
          f"of them (whole pool: {100 * float((mined.predicted == hidden).float().mean()):.2f} %); "
          f"classes with fewer than k candidates: {short}")
    return mined, right

mined, right = show_mining(TOP_K)
print(f"\n{'class':<12} | {'candidates':>10} | {'kept':>5} | {'lowest kept conf.':>17} | {'label right %':>13}")
for c, name in enumerate(CLASSES):
    kept_conf = mined.confidence[mined.indices[mined.labels == c]]
    low = f"{float(kept_conf.min()):.4f}" if len(kept_conf) else "–"
    print(f"{name:<12} | {int(mined.available[c]):>10,} | {int(mined.kept[c]):>5} | {low:>17} | "
          f"{100 * right['per_class'][c]:>13.2f}")
print(f"{'all':<12} | {len(pool_probs):>10,} | {right['kept']:>5} | {'':>17} | {100 * right['overall']:>13.2f}")
""")

md(r"""
Now move the slider: a small $k$ keeps only the images the teacher is surest of; a $k$ near the size of a
class keeps almost the whole pool, mistakes included.
""")

code(r"""
def explore(k):
    show_mining(k)                                              # draws and prints; nothing to return

interact(explore, k=IntSlider(value=TOP_K, min=10, max=max(4000, TOP_K), step=10, description="top-k per class",
                              continuous_update=False));
""")

md(r"""
Kept and rejected images per class: on the left the teacher's eight most confident images of the class, on
the right the eight least confident images it predicts in that class (rejected at this $k$, unless the
class has fewer than $k$ candidates). The rejected ones are where the teacher hesitates: look for the
images that could belong to a neighbouring class.
""")

code(r"""
def grid_images(mined, n=8):
    kept, rejected = [], []
    for c in range(len(CLASSES)):
        kept.append(pool.x[mined.indices[mined.labels == c][:n].to(DEVICE)])
        members = torch.nonzero((mined.predicted == c) & ~mined.kept_mask).flatten()
        least = members[mined.confidence[members].argsort()[:n]]
        rejected.append(pool.x[least.to(DEVICE)])
    return kept, rejected

viz.plot_mining_grid(*grid_images(mined), CLASSES, rejected_title="rejected: least confident")
""")

md(r"""
## 5. The loss from scratch, and against Hinton's KD

Both halves of the symmetric KL in plain PyTorch, on the real logits of the teacher and of an untrained
student for a batch of unlabeled images, checked against `kd_lab.losses.ssld_loss`:
""")

code(r"""
torch.manual_seed(0)
student0 = build_model("student").to(DEVICE).eval()             # an untrained student
x_u = pool.images(torch.arange(128, device=DEVICE))             # (128, 1, 28, 28), unlabeled images
with torch.no_grad():
    z_t, z_s = teacher(x_u).float(), student0(x_u).float()      # (128, 10) each

def ssld_from_scratch(student_logits, teacher_logits, T=1.0):
    log_p_s = F.log_softmax(student_logits / T, dim=1)          # (B, K)
    log_p_t = F.log_softmax(teacher_logits / T, dim=1)
    kl_ts = (log_p_t.exp() * (log_p_t - log_p_s)).sum(1)        # KL(p_t || p_s), (B,)
    kl_st = (log_p_s.exp() * (log_p_s - log_p_t)).sum(1)        # KL(p_s || p_t), (B,)
    return T ** 2 * 0.5 * (kl_ts + kl_st).mean()

for T in (1.0, 4.0):
    torch.testing.assert_close(ssld_from_scratch(z_s, z_t, T), losses.ssld_loss(z_s, z_t, T))
print("from-scratch SSLD loss matches kd_lab.losses.ssld_loss at T = 1 and T = 4")  # NBVAL_CHECK_OUTPUT
""")

md(r"""
Hinton's KD term, $T^2\,\mathrm{KL}(p_t \| p_s)$, is label-free too: it could replace SSLD's loss (the
`ssld` method's option `objective="kd"`). The two differ by the reverse half, $\mathrm{KL}(p_s \| p_t)$,
which weighs the error by the *student's* probabilities: it punishes the student most for probability it
puts where the teacher puts little. Their values and their gradients with respect to the student's logits,
on the batch above:
""")

code(r"""
print(f"{'T':>4} | {'SSLD loss':>9} | {'KD loss':>8} | {'|grad| SSLD':>11} | {'|grad| KD':>9} | cosine of grads")
for T in (1.0, 2.0, 4.0):
    grads = {}
    for name, fn in (("ssld", losses.ssld_loss), ("kd", losses.kd_loss)):
        z = z_s.clone().requires_grad_(True)
        value = fn(z, z_t, T)
        value.backward()
        grads[name] = (value.item(), z.grad.flatten())
    cos = F.cosine_similarity(grads["ssld"][1], grads["kd"][1], dim=0)
    print(f"{T:>4g} | {grads['ssld'][0]:>9.4f} | {grads['kd'][0]:>8.4f} | {grads['ssld'][1].norm():>11.5f} | "
          f"{grads['kd'][1].norm():>9.5f} | {cos:.3f}")
""")

md(r"""
## 6. Look before training: the teacher's soft labels on unlabeled images

These are the targets the student learns from on U. Three pool images — the one the teacher is surest of,
and the first two where its confidence lies between 0.5 and 0.8 — with the teacher's probabilities (top)
and the untrained student's (bottom), at $T = 1$; the true class is in the title for us, not for the
student. Where the teacher hesitates, its soft label says which classes it confuses.
""")

code(r"""
confidence = pool_probs.max(1).values
unsure = torch.nonzero((confidence > 0.5) & (confidence < 0.8)).flatten()
SHOW = [int(confidence.argmax()), *unsure[:2].tolist()]           # three images of the pool
x_show = pool.images(torch.tensor(SHOW, device=DEVICE))          # (3, 1, 28, 28)

def plot_outputs(models, T=1.0):
    fig, axes = plt.subplots(len(models), len(SHOW), figsize=(15, 2.9 * len(models)), layout="constrained",
                             squeeze=False)
    for row, (name, model) in zip(axes, models.items()):
        with torch.no_grad():
            logits = model(x_show).float().cpu()                 # (3, 10)
        for ax, i, z in zip(row, SHOW, logits):
            viz.plot_soft_targets(z, T, CLASSES, ax=ax)
            ax.set_title(f"{name} · image {i} (true: {CLASSES[int(hidden[i])]})", fontsize=9)
    return fig

plot_outputs({"teacher": teacher, "untrained student": student0});
""")

md(r"""
## 7. Train a student yourself

Sliders: the number of labeled images (drawn from the teacher's split), $k$ (unlabeled images kept per
class), the size of the unlabeled pool (its first $N$ images), the temperature $T$, and the budget in
optimizer steps. **Train** starts a run in the background — the student is trained with SSLD on L ∪ the
mined images — and **Stop** ends it and keeps its curves. The table lists this session's runs. The cell
after it starts one run with the default values, as if you had pressed Train.
""")

code(r"""
panel = TrainingPanel("ssld", {"labeled": 1000, "top_k": TOP_K, "pool_size": POOL_SIZE or len(U),
                               "temperature": 1.0, "steps": STEPS}, SETTING, teacher=teacher, device=DEVICE)
panel
""")

code(r"""
run = panel.train()
panel.wait()
h = run["history"]
print(f"run {run['run']}: {run['status']}, {h.config['train_size']:,} training images, {len(h.steps)} steps, "
      f"test accuracy {100 * h.test_acc:.2f} %")
panel.figure
""")

md(r"""
## 8. Experiment: what do unlabeled images add?

One student architecture (72k parameters), one teacher (the `first20k` teacher above), the same 1,000
labeled images per seed, and the same budget of **optimizer steps** for every run — not the same number
of epochs: an epoch of L ∪ U is forty times longer than an epoch of L. Full mode gives every run 1,284
steps of 128 images: 160 epochs of L alone, 4 epochs of L ∪ U, and in between for the mined sets (the
number of epochs is rounded, so the table lists the steps each run actually took). SGD with Nesterov
momentum, cosine schedule, the same augmentation; only the loss and the training images differ:

* **supervised on L** — cross-entropy on the 1,000 labeled images;
* **KD + CE on L** — Hinton's KD ($T = 4$, $\alpha = 0.9$) on L, with the same teacher;
* **SSLD, L only** — SSLD's loss, no label term, on L only;
* **SSLD, L ∪ mined U** — SSLD on L plus the top $k$ = 1,000 images per class of U;
* **SSLD, L ∪ all of U** — SSLD on L plus all 40,000 images of U.

Each seed draws its own L and initialisation. We keep each run's student for the fine-tuning and the
plots after training.
""")

code(r"""
RUNS = {"supervised on L": ("scratch", {}),
        "KD + CE on L": ("kd", {"temperature": 4.0, "alpha": 0.9}),
        "SSLD, L only": ("ssld", {"unlabeled": "none"}),
        "SSLD, L ∪ mined U": ("ssld", {"unlabeled": "mined", "top_k": TOP_K, "pool_size": POOL_SIZE}),
        "SSLD, L ∪ all of U": ("ssld", {"unlabeled": "all", "pool_size": POOL_SIZE})}

histories, trained = {}, {}
bar = tqdm(total=len(RUNS) * len(SEEDS), desc="runs")
for label, (method_name, options) in RUNS.items():
    for seed in SEEDS:
        bar.set_postfix_str(f"{label}, seed {seed}")
        student, h = train_student(method_name, EXPERIMENT, seed=seed, teacher=teacher, device=DEVICE,
                                   progress=False, **options)
        histories.setdefault(label, []).append(h)
        trained.setdefault(label, []).append(student)
        bar.update(1)
bar.close()
acc = {label: accuracies(hs) for label, hs in histories.items()}

print(f"{SETTING.labeled} labeled images, {STEPS} steps per run, {len(SEEDS)} seed(s), device {device_name(DEVICE)}")
print(f"{'run':<20} | {'test accuracy %':>15} | {'train images':>12} | {'steps':>5} | {'s/run':>5} | seeds")
for label, hs in histories.items():
    m, s = mean_std(acc[label])
    print(f"{label:<20} | {m:8.2f} ± {s:4.2f} | {hs[0].config['train_size']:>12,} | {len(hs[0].steps):>5} | "
          f"{sum(h.wall_s for h in hs) / len(hs):>5.0f} | {', '.join(f'{v:.2f}' for v in acc[label])}")
for other in ("supervised on L", "KD + CE on L"):
    gap = [a - b for a, b in zip(acc["SSLD, L ∪ mined U"], acc[other])]
    m, s = mean_std(gap)
    print(f"SSLD on L ∪ mined U minus {other}: {m:+.2f} ± {s:.2f} points (per seed: "
          f"{', '.join(f'{g:+.2f}' for g in gap)})")
viz.plot_runs_bar(acc, title="test accuracy, mean ± std over seeds")
""")

md(r"""
**What was measured.** The outputs above are this notebook's full-mode run on a 2-core CPU (PyTorch
2.14.1): 1,000 labels, about 1,284 optimizer steps per run, 3 seeds, 22.5 minutes in all. SSLD on L ∪ mined U
beats supervised training on L by **+3.75 ± 0.73 points** (+4.45, +3.00, +3.81 per seed) without reading a
label in its loss, but stays 0.86 ± 0.35 points below KD + CE on L with the same teacher. Most of SSLD's
gain over supervised training is already there on L alone (87.42 ± 0.43 %); the mined images add 0.47 points,
and all 40,000 unlabeled images add 2.88 (90.30 ± 0.13 %, above KD + CE on L): here the whole pool, mistakes
included, is worth more than its most confident quarter. The short fine-tune on L did not help
(87.89 → 87.58 %).
""")

md(r"""
### Accuracy against the amount of unlabeled data

SSLD's claim rests on this curve: more (teacher-mined) unlabeled images, better student. The points at
$k$ = 0 (L only), $k$ = 1,000 and all of U come from the runs above; two more values of $k$ fill in the
curve (full mode: the same three seeds; quick mode: one extra point). Every point has the same step budget.
""")

code(r"""
CURVE_K = (50,) if QUICK else (100, 300)
for k in CURVE_K:
    for seed in SEEDS:
        _, h = train_student("ssld", EXPERIMENT, seed=seed, teacher=teacher, device=DEVICE, progress=False,
                             unlabeled="mined", top_k=k, pool_size=POOL_SIZE)
        histories.setdefault(f"SSLD, k = {k}", []).append(h)
curve = ["SSLD, L only", *(f"SSLD, k = {k}" for k in CURVE_K), "SSLD, L ∪ mined U", "SSLD, L ∪ all of U"]
amounts = [histories[label][0].config["train_size"] - SETTING.labeled for label in curve]
print(f"{'run':<20} | {'unlabeled images':>16} | test accuracy %")
for label, n in zip(curve, amounts):
    m, s = mean_std(accuracies(histories[label]))
    print(f"{label:<20} | {n:>16,} | {m:.2f} ± {s:.2f}")
viz.plot_unlabeled_curve(amounts, {"SSLD": [accuracies(histories[label]) for label in curve]},
                         baseline={"supervised on L": acc["supervised on L"], "KD + CE on L": acc["KD + CE on L"]})
""")

md(r"""
### SSLD's last step: a short fine-tune on L

SSLD ends with a few epochs on the labeled data alone. Here: each seed's SSLD student (L ∪ mined U) trained
10 more epochs on its 1,000 labeled images with cross-entropy, at a learning rate of 0.005 (a tenth of the
main runs').
""")

code(r"""
FT_EPOCHS = 2 if QUICK else 10
tuned = []
for seed, student in zip(SEEDS, trained["SSLD, L ∪ mined U"]):
    L_seed = train.subset(labeled_split(train.y[:SETTING.labeled_from], SETTING.labeled, seed=seed).labeled.to(DEVICE))
    h = fit(Scratch(copy.deepcopy(student)), L_seed, test_view, epochs=FT_EPOCHS, lr=0.005, seed=seed,
            device=DEVICE, eval_every=FT_EPOCHS, progress=False)
    tuned.append(100 * h.test_acc)
before = acc["SSLD, L ∪ mined U"]
print(f"SSLD on L ∪ mined U: {mean_std(before)[0]:.2f} ± {mean_std(before)[1]:.2f} % -> after fine-tuning on L: "
      f"{mean_std(tuned)[0]:.2f} ± {mean_std(tuned)[1]:.2f} % (per seed: "
      f"{', '.join(f'{a:.2f} -> {b:.2f}' for a, b in zip(before, tuned))})")
""")

md(r"""
## 9. Look after training

The same three unlabeled images: the teacher, the student trained with labels on L only, and the SSLD
student (L ∪ mined U), first seed.
""")

code(r"""
plot_outputs({"teacher": teacher, "supervised on L": trained["supervised on L"][0].eval(),
              "SSLD, L ∪ mined U": trained["SSLD, L ∪ mined U"][0].eval()});
""")

md(r"""
Accuracy per class on the test images, first seed: where do the unlabeled images help?
""")

code(r"""
per_class = {"teacher": evaluate(teacher, test_view).per_class}
for label in ("supervised on L", "SSLD, L only", "SSLD, L ∪ mined U"):
    per_class[label] = evaluate(trained[label][0], test_view).per_class
viz.plot_per_class(per_class, CLASSES, highlight=CLASSES.index("Shirt"))
""")

md(r"""
## 10. Exercises

Each exercise has a self-check that tells you what is right or what is wrong. Replace the
`raise NotImplementedError` line (or the answer) and run the cell again.

**Exercise 1 — mining.** Write `my_mining(probs, k)`: `probs` is the teacher's `(N, K)` probabilities over
a pool, and the function returns the indices of the images SSLD keeps — each image belongs to the class
the teacher predicts (its argmax), and each class keeps its $k$ most confident images (all of them where it
has fewer than $k$). The check compares your indices, as a set, with `kd_lab.mining.top_k_per_class`.
""")

code(r"""
def my_mining(probs, k):
    raise NotImplementedError  # your code here

exercises.check_mining(my_mining)  # NBVAL_CHECK_OUTPUT
""")

md(r"""
**Exercise 2 — why no ground-truth term?** SSLD trains on labeled images too, but without their labels.
Look at the teacher's accuracy on L printed in section 3, then pick the best explanation.
""")

code(r"""
for key, text in exercises.GT_TERM_CHOICES.items():
    print(f"({key}) {text}")
exercises.check_gt_term(answer="a")  # NBVAL_CHECK_OUTPUT
""")

md(r"""
**Exercise 3 (open).** With the widget, train SSLD with $T = 4$ instead of 1, and with a small $k$ (100)
against a large one (all 4,000). Then: which classes fall short of $k$ in the mining table, and why might a
class-balanced mined set help a student more than simply the most confident images overall?
""")

md(r"""
## 11. Summary

* SSLD distils on the teacher's outputs only — a symmetric KL, no label — so it can train on images nobody
  labeled; the labeled images are used the same way, without their labels.
* An honest setup needs a teacher that never saw the unlabeled pool, a pool cleaned of test images, and
  the pool's labels kept out of training (here they only measure the mining).
* Mining keeps, per class, the images the teacher is most sure of: a class-balanced set whose teacher
  labels are mostly right.
* Compare methods on the same number of optimizer steps, over seeds: with more images, an epoch means
  more work.

**Next:** lesson 03 (Deep Mutual Learning) drops the pre-trained teacher altogether: peers teach each other.

**References.** C. Cui, R. Guo, Y. Du et al., *Beyond Self-Supervision: A Simple Yet Effective Network
Distillation Alternative to Improve Backbones*, arXiv:2103.05959, 2021 (PaddleClas SSLD). G. Hinton,
O. Vinyals, J. Dean, *Distilling the Knowledge in a Neural Network*, NIPS Deep Learning Workshop, 2015.
""")


if __name__ == "__main__":
    LESSON.write()
