"""Writes notebooks/05_rkd.ipynb (without outputs) from the cells below.

The notebook is the lesson; this script keeps its source reviewable as plain text (see
tools/lesson_builder.py for how to rebuild and re-execute it).
"""
from lesson_builder import Lesson

LESSON = Lesson("05_rkd.ipynb")
md, code = LESSON.md, LESSON.code

md(r"""
# Lesson 05 — Relation-based distillation: RKD distance and angle

**After this lesson you can**

1. say what *relation-based* distillation transfers — the structure among the samples of a batch — and
   how it differs from response-based (lesson 01) and feature-based (lesson 04) distillation;
2. compute RKD's two relations, the normalised distance matrix and the triplet-angle tensor, and the two
   RKD losses from scratch;
3. show numerically why these losses ignore the scale and the orientation of the student's embedding,
   so that a student of another width needs no regressor;
4. train students with RKD-D, RKD-A, both, and KD + RKD, and measure over seeds their accuracy and how
   closely their embeddings' relations match the teacher's.

The lesson runs in two modes. **Full mode** (the default) is what the text talks about; its outputs are
committed in this notebook. **Quick mode** (`KD_LAB_QUICK=1`, used by the tests) runs the same cells on
less data, one seed and fewer epochs, in under two minutes on a 2-core CPU — its numbers are *not* the
ones discussed below.
""")

code(r"""
%matplotlib inline
import copy

import torch
import torch.nn.functional as F
import matplotlib.pyplot as plt
from tqdm.auto import tqdm

from kd_lab import analysis, exercises, losses, viz
from kd_lab.data import FASHION_CLASSES as CLASSES
from kd_lab.experiments import Setting, accuracies, load_data, mean_std, train_student
from kd_lab.methods import make_method
from kd_lab.models import build_model, count_parameters
from kd_lab.train import device_name, pick_device, quick_mode
from kd_lab.widgets import RelationPanel, TrainingPanel
from kd_lab.zoo import get_teacher

QUICK = quick_mode()
DEVICE = pick_device("auto")
SEEDS = (0,) if QUICK else (0, 1, 2)
SETTING = Setting.default(labeled=1000, eval_every=5)   # 1,000 labeled images, 60 epochs (quick mode: 4),
                                                        # test accuracy every 5 epochs and after the last

train, test = load_data("fashion-mnist", DEVICE)
test_view = test.subset(torch.arange(SETTING.test_size or len(test), device=DEVICE))
teacher = get_teacher("fashion-mnist", device=DEVICE)
torch.manual_seed(0)
student0 = build_model("student").to(DEVICE).eval()                     # an untrained student
info = teacher.zoo_info
print(f"mode: {'quick' if QUICK else 'full'} | device: {device_name(DEVICE)} | torch {torch.__version__}")
print(f"setting: {SETTING}")
print(f"teacher: {count_parameters(teacher):,} parameters, embedding width {teacher.embedding_dim}, "
      f"{100 * info['test_acc']:.2f} % test accuracy")
print(f"student: {count_parameters(student0):,} parameters, embedding width {student0.embedding_dim}")
""")

md(r"""
## 1. The idea: distil relations, not outputs

Distillation methods come in three families (Gou et al., 2021):

* **response-based** — the student imitates the teacher's *outputs* per image (Hinton's KD, lesson 01);
* **feature-based** — it imitates the teacher's *intermediate features* per image (FitNets, OFD,
  lesson 04);
* **relation-based** — it imitates the *relations between images*: how far apart the teacher places
  two images, what angle three images make.

Park, Kim, Lu and Cho call the first two *individual* KD: each image is a separate target. Their
**Relational Knowledge Distillation** (RKD) instead transfers the *structure* of the teacher's
embedding space over a batch. The embedding here is the pooled output of the last stage —
`model(x, features=True).embedding`, shape `(B, 256)` for the teacher and `(B, 64)` for the student.
A per-image hint (FitNets) would need a regressor to bridge the widths; relations do not, because a
distance between two images is a number whatever the width.

> W. Park, D. Kim, Y. Lu, M. Cho, *Relational Knowledge Distillation*, CVPR 2019.
""")

md(r"""
## 2. The two relations and their losses

For a batch of embeddings $t_1,\dots,t_B \in \mathbb{R}^{D_t}$ of the teacher (and $s_i \in \mathbb{R}^{D_s}$
of the student):

**Distance-wise (RKD-D).** The Euclidean distance of each pair, divided by the batch's mean distance
$\mu$ so that the scale of the embedding drops out:

$$\psi_D(t_i, t_j) = \frac{1}{\mu}\,\lVert t_i - t_j\rVert_2, \qquad
\mu = \frac{1}{B(B-1)} \sum_{i \neq j} \lVert t_i - t_j\rVert_2 .$$

**Angle-wise (RKD-A).** The cosine of the angle at $t_j$ in the triangle $(t_i, t_j, t_k)$, from the
unit difference vectors:

$$\psi_A(t_i, t_j, t_k) = \cos\angle t_i t_j t_k = \langle e^{ij}, e^{kj} \rangle, \qquad
e^{ij} = \frac{t_i - t_j}{\lVert t_i - t_j \rVert_2} .$$

Each loss compares the teacher's relation with the student's through the Huber loss
$\ell_\delta(a, b) = \tfrac12 (a-b)^2$ if $|a-b| \le 1$, else $|a-b| - \tfrac12$, averaged over all
pairs $(i, j)$ — a `(B, B)` matrix — or all triplets $(i, j, k)$ — a `(B, B, B)` tensor:

$$\mathcal{L}_{D} = \operatorname{mean}_{i,j}\, \ell_\delta\big(\psi_D(s_i, s_j), \psi_D(t_i, t_j)\big), \qquad
\mathcal{L}_{A} = \operatorname{mean}_{i,j,k}\, \ell_\delta\big(\psi_A(s_i, s_j, s_k), \psi_A(t_i, t_j, t_k)\big).$$

`kd_lab.methods.RKD` adds them to the classification loss, with Hinton's KD term optional
($\kappa$ = `kd_weight`, mixed with cross-entropy like KD's $\alpha$):

$$\mathcal{L} = (1-\kappa)\,\mathrm{CE} + \kappa\,T^2\,\mathrm{KL}\big(\sigma(z_t/T)\,\|\,\sigma(z_s/T)\big)
+ \lambda_D\,\mathcal{L}_D + \lambda_A\,\mathcal{L}_A .$$

The methods of this lesson, by name: `rkd-d` ($\lambda_D = 25$), `rkd-a` ($\lambda_A = 50$), `rkd`
(both) and `kd+rkd` (both, plus KD with $\kappa = 0.9$, $T = 4$).
""")

md(r"""
## 3. Look before training: relations of the teacher and of an untrained student

Forty test images, four of each class, sorted by class. Left: the teacher's normalised distance
matrix $\psi_D$ — the dark blocks along the diagonal are images of the same class lying close together,
and the off-diagonal blocks show which classes the teacher places near each other. Middle: the
untrained student's. Right: their difference, what RKD-D pushes towards zero.
""")

code(r"""
batch_idx = analysis.class_sorted_batch(test_view.y, range(len(CLASSES)), 40)       # 4 images per class
look = test_view.subset(batch_idx.to(DEVICE))
look_labels = look.y.cpu()
emb_t_look = analysis.embeddings(teacher, look)                                      # (40, 256)
emb_s_look = analysis.embeddings(student0, look)                                     # (40, 64)
print(f"teacher embeddings {tuple(emb_t_look.shape)}, student embeddings {tuple(emb_s_look.shape)}")
print(f"relation agreement (correlation of the two distance matrices): "
      f"{analysis.relation_agreement(emb_s_look, emb_t_look):.3f}")
viz.plot_relation_matrices(emb_s_look, emb_t_look, look_labels, CLASSES, student_name="untrained student")
""")

md(r"""
The angle relation is a `(B, B, B)` tensor; one slice shows it. For an anchor image $j$, the matrix
$\cos\angle(t_i, t_j, t_k)$ over all $i, k$: near $1$ when $t_i$ and $t_k$ lie in the same direction
seen from $t_j$, near $0$ at right angles, negative when $t_j$ lies between them. Row and column $j$
are zero (no direction from $t_j$ to itself). The anchor here is the first sneaker of the batch. In the
teacher's matrix the classes form blocks: seen from the sneaker, the images of one class lie in about the
same direction. The untrained student's angles have no such order.
""")

code(r"""
anchor = int(torch.nonzero(look_labels == CLASSES.index("Sneaker"))[0])
fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
for ax, (name, emb) in zip(axes, [("teacher", emb_t_look), ("untrained student", emb_s_look)]):
    viz.plot_angle_matrix(emb, anchor, ax=ax, labels=look_labels, classes=CLASSES,
                          title=f"{name}: cos∠(x_i, x_j, x_k), anchor j = {anchor} (Sneaker)")
""")

md(r"""
### Widget: relations on real images

Pick classes (ctrl/shift-click for several), the batch size and the anchor $j$. The panel redraws the
distance matrices and the angle matrices of teacher and student, and gives the two RKD losses of the
batch. Try two similar classes (Shirt and T-shirt/top) against two different ones (Trouser and Bag).
""")

code(r"""
relation_panel = RelationPanel(teacher, {"untrained student": student0}, test_view,
                               classes=[0, 2, 4, 6], batch_size=32, anchor=0)
relation_panel
""")

md(r"""
## 4. Why relations? Invariance to scale and rotation

A student that has learned the teacher's embedding *up to a scale and a rotation* has learned the same
structure: the same images are close, the same triangles have the same angles. RKD's losses do not
change under such a transform, because distances are divided by their mean and angles do not depend on
scale or orientation. A per-image hint — the mean squared error FitNets uses — punishes it heavily.

Below, the "student" is first the teacher's own embedding, then the same embedding scaled by 3, rotated
by a random orthogonal matrix (QR decomposition of a Gaussian matrix), and both; last, the untrained
student's embedding and its transformed version (the MSE needs equal widths, so it has no value there).
""")

code(r"""
x_batch, y_batch = next(test_view.batches(64, shuffle=False))
with torch.no_grad():
    emb_t = teacher(x_batch, features=True).embedding.float().cpu()                # (64, 256)
    emb_s = student0(x_batch, features=True).embedding.float().cpu()               # (64, 64)

def random_rotation(d, seed=0):
    q, r = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed)))
    return q * torch.sign(torch.diagonal(r))                                       # (d, d) orthogonal

Q_t, Q_s = random_rotation(emb_t.shape[1]), random_rotation(emb_s.shape[1])
candidates = {"teacher's own embedding": emb_t, "× 3": 3 * emb_t, "rotated": emb_t @ Q_t,
              "× 3 and rotated": 3 * emb_t @ Q_t, "untrained student": emb_s,
              "untrained student × 3, rotated": 3 * emb_s @ Q_s}
print(f"{'student embedding':<32} | {'RKD-D':>7} | {'RKD-A':>7} | {'MSE to teacher':>14}")
for name, e in candidates.items():
    mse = f"{F.mse_loss(e, emb_t):14.4f}" if e.shape == emb_t.shape else f"{'–':>14}"
    print(f"{name:<32} | {losses.rkd_distance_loss(e, emb_t):7.4f} | {losses.rkd_angle_loss(e, emb_t):7.4f} | {mse}")
""")

code(r"""
for e, moved in [(emb_t, 3 * emb_t @ Q_t), (emb_s, 3 * emb_s @ Q_s)]:
    torch.testing.assert_close(losses.rkd_distance_loss(moved, emb_t), losses.rkd_distance_loss(e, emb_t))
    torch.testing.assert_close(losses.rkd_angle_loss(moved, emb_t), losses.rkd_angle_loss(e, emb_t))
print("RKD-D and RKD-A are unchanged when the student's embedding is scaled by 3 and rotated")  # NBVAL_CHECK_OUTPUT
""")

md(r"""
## 5. The losses from scratch

Both relations in plain PyTorch, checked against `kd_lab.losses` on the real embeddings above.
The distance matrix via `torch.cdist`, its zero diagonal left out of the mean $\mu$:
""")

code(r"""
def distance_relation(e):
    d = torch.cdist(e, e, compute_mode="donot_use_mm_for_euclid_dist")     # (B, B), ||e_i - e_j||
    d.fill_diagonal_(0.0)                                      # exactly 0 for i = j
    mu = d.sum() / (len(e) * (len(e) - 1))                     # mean over the pairs i != j
    return d / mu

def rkd_distance_from_scratch(s, t):
    return F.smooth_l1_loss(distance_relation(s), distance_relation(t))       # Huber, mean over (B, B)

torch.testing.assert_close(distance_relation(emb_t), losses.rkd_distance_matrix(emb_t))
torch.testing.assert_close(rkd_distance_from_scratch(emb_s, emb_t), losses.rkd_distance_loss(emb_s, emb_t))
print("from-scratch RKD-D matches kd_lab.losses.rkd_distance_loss")  # NBVAL_CHECK_OUTPUT
""")

md(r"""
The angle tensor: all difference vectors at once, `(B, B, D)`, normalised to unit length (the zero
vector stays zero for $i = j$), then every pair of them that shares the vertex $j$:
""")

code(r"""
def angle_relation(e):
    diff = e[:, None, :] - e[None, :, :]                        # (B, B, D), diff[i, j] = e_i - e_j
    norm = diff.norm(dim=2, keepdim=True)                       # (B, B, 1)
    unit = torch.where(norm > 0, diff / norm.clamp_min(1e-12), 0.0)
    return torch.einsum("ijd,kjd->ijk", unit, unit)             # (B, B, B), cosine of the angle at j

def rkd_angle_from_scratch(s, t):
    return F.smooth_l1_loss(angle_relation(s), angle_relation(t))             # Huber, mean over (B, B, B)

torch.testing.assert_close(angle_relation(emb_t), losses.rkd_angle_tensor(emb_t))
torch.testing.assert_close(rkd_angle_from_scratch(emb_s, emb_t), losses.rkd_angle_loss(emb_s, emb_t))
print("from-scratch RKD-A matches kd_lab.losses.rkd_angle_loss")  # NBVAL_CHECK_OUTPUT
""")

md(r"""
**The weights.** For classification, Park et al. apply RKD to the final pooled embedding with
$\lambda_D = 25$ and $\lambda_A = 50$, together with Hinton's KD. The Huber losses of normalised
relations are small numbers, so the weights are large. On the real batch, for the untrained student, the
terms of `kd+rkd` as the trainer sees them:
""")

code(r"""
method = make_method("kd+rkd", copy.deepcopy(student0), teacher).eval()
with torch.no_grad():
    terms = method.loss_terms(x_batch, y_batch)
for name, value in terms.items():
    print(f"{name:>6}: {float(value):.4f}")
print(f" total: {float(sum(terms.values())):.4f}")
""")

md(r"""
## 6. Look before training: the embedding space

The first two principal components of the teacher's and the untrained student's embeddings of 1,000
test images, one colour per class. The teacher separates most classes; the untrained student's space
already groups some images (a random ConvNet is not blind to shape), but with much more overlap.
""")

code(r"""
pca_view = test_view.subset(torch.arange(1000, device=DEVICE))
pca_labels = pca_view.y.cpu()
emb_teacher_pca = analysis.embeddings(teacher, pca_view)                            # (1000, 256)

def plot_spaces(models, title_suffix=""):
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4.6), layout="constrained")
    for ax, (name, model) in zip(axes, models.items()):
        emb = emb_teacher_pca if model is teacher else analysis.embeddings(model, pca_view)
        viz.plot_embedding_2d(analysis.pca_2d(emb), pca_labels, CLASSES, ax=ax, title=f"{name}{title_suffix}")
        if ax is not axes[-1]:
            ax.get_legend().remove()
    return fig

plot_spaces({"teacher": teacher, "untrained student": student0}, ": first two principal components");
""")

md(r"""
## 7. Train a student yourself

Sliders: $\lambda_D$ and $\lambda_A$, the KD weight $\kappa$ (0: no KD term), the number of labeled
images and the epochs. Besides the loss terms and the accuracy, the panel draws the **relation
agreement** each time it measures the test accuracy: the correlation between the teacher's and the
student's distance matrices on 256 fixed test images (1 = the same structure). The cell after it starts
one run with the default values, as if you had pressed Train.
""")

code(r"""
panel = TrainingPanel("rkd", {"distance_weight": 25.0, "angle_weight": 50.0, "kd_weight": 0.0, "labeled": 1000,
                              "epochs": SETTING.epochs}, SETTING, teacher=teacher, device=DEVICE)
panel
""")

code(r"""
run = panel.train()
panel.wait()
h = run["history"]
print(f"run {run['run']}: {run['status']}, test accuracy {100 * h.test_acc:.2f} %, "
      f"relation agreement {h.epochs[-1]['relation_agreement']:.3f}")
panel.metrics_figure
""")

md(r"""
## 8. Experiment: which relation helps, with 1,000 labels

Same student (72k parameters), same 1,000 class-balanced labeled images, same 60 epochs, optimizer
(SGD, cosine schedule) and augmentation; only the loss differs:

* **scratch** — cross-entropy only;
* **KD** — Hinton's KD, $T = 4$, $\alpha = 0.9$ (lesson 01);
* **RKD-D**, **RKD-A**, **RKD-DA** — cross-entropy plus the relation losses, $\lambda_D = 25$, $\lambda_A = 50$;
* **KD+RKD** — KD's two terms plus both relation losses.

Each seed draws its own labeled subset and initialisation. Beside the accuracy we measure each trained
student's relation agreement with the teacher on 1,000 other held-out test images. We train with
`train_student`, which returns the student as well as its history, rather than with `compare`: the
relation agreement needs the trained networks.
""")

code(r"""
RUNS = {"scratch": ("scratch", {}),
        "KD (T=4, α=0.9)": ("kd", {"temperature": 4.0, "alpha": 0.9}),
        "RKD-D": ("rkd-d", {}),
        "RKD-A": ("rkd-a", {}),
        "RKD-DA": ("rkd", {}),
        "KD+RKD": ("kd+rkd", {})}
probe = test_view.subset(torch.arange(len(test_view) - 1000, len(test_view), device=DEVICE))   # held out
teacher_probe = analysis.embeddings(teacher, probe)                                   # (1000, 256)

histories, agreement, trained = {}, {}, {}
bar = tqdm(total=len(RUNS) * len(SEEDS), desc="runs")
for label, (method_name, options) in RUNS.items():
    for seed in SEEDS:
        bar.set_postfix_str(f"{label}, seed {seed}")
        student, h = train_student(method_name, SETTING, seed=seed, teacher=teacher, device=DEVICE, progress=False,
                                   **options)
        histories.setdefault(label, []).append(h)
        emb = analysis.embeddings(student, probe)                                     # (1000, 64)
        agreement.setdefault(label, []).append(analysis.relation_agreement(emb, teacher_probe))
        trained.setdefault(label, student)                                            # the first seed's student
        bar.update(1)
bar.close()
acc = {label: accuracies(h) for label, h in histories.items()}

print(f"{SETTING.labeled} labeled images, {SETTING.epochs} epochs, {len(SEEDS)} seed(s)")
print(f"{'method':<16} | {'test accuracy %':>16} | {'relation agreement':>18} | seeds (accuracy)")
for label in RUNS:
    (a, sa), (r, sr) = mean_std(acc[label]), mean_std(agreement[label])
    seeds = ", ".join(f"{v:.2f}" for v in acc[label])
    print(f"{label:<16} | {a:8.2f} ± {sa:4.2f} | {r:10.3f} ± {sr:5.3f} | {seeds}")
fig, axes = plt.subplots(1, 2, figsize=(15, 4.2), layout="constrained")
viz.plot_runs_bar(acc, ax=axes[0], title="test accuracy, mean ± std over seeds")
viz.plot_runs_bar(agreement, ax=axes[1], ylabel="relation agreement", title="relation agreement with the teacher");
""")

md(r"""
**What was measured.** The outputs above are this notebook's full-mode run on a 2-core CPU (PyTorch
2.14.1): 1,000 labels, 60 epochs, 3 seeds, 32 minutes in all, the paper's weights (λ_D = 25, λ_A = 50).
Differences paired by seed, in points:

| comparison | difference | per seed |
|---|---|---|
| KD − scratch | +3.65 ± 0.80 | +4.57, +3.28, +3.11 |
| RKD-D − scratch | −1.19 ± 0.92 | −0.89, −0.46, −2.22 |
| RKD-A − scratch | −2.74 ± 1.37 | −1.25, −3.02, −3.94 |
| RKD-DA − scratch | −4.98 ± 0.34 | −5.37, −4.76, −4.81 |
| KD + RKD − KD | −5.38 ± 1.15 | −6.58, −4.29, −5.27 |

In this setting RKD at the paper's weights **hurts**: every RKD student is below scratch, and adding RKD
to KD loses 5.4 points on every seed. It does what it is built for — the relation agreement with the
teacher rises from 0.741 (scratch) to 0.79–0.81 — but accuracy falls. KD, which never looks at the
embedding, reaches the highest agreement of all (0.845): matching the teacher's outputs also carries
over much of its geometry. The likely reason is the weights: at the start of training (section 5) the relation
terms add up to about 13 against a cross-entropy of 2.3 (for `kd+rkd`: 3.96 + 9.03 against 0.23 of
weighted cross-entropy and 9.97 of KD), so within 480 optimizer steps and a 64-wide embedding the student
spends its capacity on the teacher's geometry rather than on the labels. The paper's weights
were tuned for CIFAR-100 and ResNets. Smaller weights were not measured in this run: try them with the
panel of section 7 or `python -m kd_lab run rkd --set distance_weight=1 --set angle_weight=2 --seeds 0 1 2`.
Quick-mode numbers (4 epochs) say nothing about this.
""")

md(r"""
How the relation agreement grew during training, for the first seed of each RKD run (measured on the
256 fixed test images each time the test accuracy was):
""")

code(r"""
viz.plot_relation_agreement([(label, histories[label][0]) for label in ("RKD-D", "RKD-A", "RKD-DA", "KD+RKD")])
""")

md(r"""
## 9. Look after training

The same forty test images as in section 3: the distance matrices of the scratch student and of the
RKD-DA student (first seed) against the teacher's.
""")

code(r"""
fig, axes = plt.subplots(2, 3, figsize=(16, 9.5), layout="constrained")
for row, label in zip(axes, ("scratch", "RKD-DA")):
    viz.plot_relation_matrices(analysis.embeddings(trained[label], look), emb_t_look, look_labels, CLASSES,
                               axes=row, student_name=f"{label} student")
""")

md(r"""
And the embedding spaces: teacher, untrained student, scratch student and RKD-DA student.
""")

code(r"""
plot_spaces({"teacher": teacher, "untrained student": student0, "scratch student": trained["scratch"],
             "RKD-DA student": trained["RKD-DA"]});
""")

md(r"""
The relation widget again, now with the trained students to pick from:
""")

code(r"""
RelationPanel(teacher, {"RKD-DA student": trained["RKD-DA"], "scratch student": trained["scratch"],
                        "KD+RKD student": trained["KD+RKD"], "untrained student": student0}, test_view,
              classes=[0, 2, 4, 6], batch_size=32, anchor=0)
""")

md(r"""
## 10. Exercises

Each exercise has a self-check that tells you what is right or what is wrong. Replace the
`raise NotImplementedError` lines with your code and run the cell again.

**Exercise 1 — the distance relation.** Write `my_distance_matrix(e)` for embeddings `e` of shape
`(B, D)`: the `(B, B)` matrix $\lVert e_i - e_j \rVert / \mu$, with $\mu$ the mean over the pairs $i \ne j$.
""")

code(r"""
def my_distance_matrix(e):
    raise NotImplementedError  # your code here

exercises.check_distance_matrix(my_distance_matrix)  # NBVAL_CHECK_OUTPUT
""")

md(r"""
**Exercise 2 — the angle relation.** Write `my_angle_tensor(e)`: the `(B, B, B)` tensor of
$\cos\angle e_i e_j e_k$, the vertex in the middle. First work out by hand the three points
$x_0 = (0, 0)$, $x_1 = (1, 0)$, $x_2 = (0, 1)$: what are `a[1, 0, 2]`, `a[0, 1, 2]` and `a[0, 1, 0]`?
The check starts with this triangle.
""")

code(r"""
def my_angle_tensor(e):
    raise NotImplementedError  # your code here

exercises.check_angle_tensor(my_angle_tensor)  # NBVAL_CHECK_OUTPUT
""")

md(r"""
## 11. Summary

* Relation-based distillation transfers the *structure* of the teacher's embedding space: RKD-D the
  normalised pairwise distances, RKD-A the angles of triplets.
* Both relations ignore the scale, the rotation and the width of the embedding, so a narrow student
  needs no regressor, and it is not punished for a representation that differs only by such a transform.
* The relation agreement — the correlation of the two distance matrices — measures how much of the
  structure a student has taken over; compare it with the accuracy, over seeds.
* RKD combines with response-based KD: KD's terms plus the relation terms. Measured here with the
  paper's weights (1,000 labels, 3 seeds, CPU): every RKD variant below scratch, KD + RKD 5.4 points below
  KD — relations transferred, accuracy lost; the weights matter.

**Next:** lesson 06 puts every method of the course — KD, DKD, SSLD, DML, OFD, RKD — on the same
budget, over several seeds, with their cost.

**References.** W. Park, D. Kim, Y. Lu, M. Cho, *Relational Knowledge Distillation*, CVPR 2019.
G. Hinton, O. Vinyals, J. Dean, *Distilling the Knowledge in a Neural Network*, NIPS Deep Learning
Workshop, 2015. A. Romero, N. Ballas, S. E. Kahou, A. Chassang, C. Gatta, Y. Bengio, *FitNets: Hints for
Thin Deep Nets*, ICLR 2015. J. Gou, B. Yu, S. J. Maybank, D. Tao, *Knowledge Distillation: A Survey*,
IJCV 2021.
""")


if __name__ == "__main__":
    LESSON.write()
