"""Writes notebooks/04_feature_overhaul.ipynb (without outputs) from the cells below.

The notebook is the lesson; this script keeps its source reviewable as plain text (see
tools/lesson_builder.py for how to rebuild and re-execute it).
"""
from lesson_builder import Lesson

LESSON = Lesson("04_feature_overhaul.ipynb")
md, code = LESSON.md, LESSON.code

md(r"""
# Lesson 04 — Feature-based distillation: OverHaul (OFD), FitNet, and combining with KD and DML

**After this lesson you can**

1. say what *feature-based* distillation transfers — the teacher's intermediate feature maps — where
   a network is tapped for it, and why OFD taps *before* the ReLU;
2. compute OFD's per-channel margin from a BatchNorm's parameters, check it against real activations,
   and write the partial L2 distance and its mask from scratch;
3. explain the student-side connector (1×1 conv + BN) and why it has to be trained with the student;
4. train students with FitNet, OFD and OFD + KD, and two peers with DML and with PP-OCRv2's U-DML
   (DML plus a feature loss between the peers), and compare them over seeds on the same budget.

The lesson runs in two modes. **Full mode** (the default) is what the text talks about; its outputs are
committed in this notebook. **Quick mode** (`KD_LAB_QUICK=1`, used by the tests) runs the same cells on
less data, one seed and fewer epochs, in under two minutes on a 2-core CPU — its training numbers are
*not* the ones discussed below.
""")

code(r"""
%matplotlib inline
import torch
import torch.nn.functional as F
import matplotlib.pyplot as plt
from tqdm.auto import tqdm

from kd_lab import exercises, features, losses, viz
from kd_lab.data import FASHION_CLASSES as CLASSES
from kd_lab.experiments import Setting, accuracies, load_data, mean_std, train_method
from kd_lab.methods import make_method
from kd_lab.models import Connector, build_model, count_parameters
from kd_lab.train import device_name, pick_device, quick_mode
from kd_lab.widgets import TrainingPanel
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
print(f"teacher: {count_parameters(teacher):,} parameters, {100 * info['test_acc']:.2f} % test accuracy")
print(f"student: {count_parameters(student0):,} parameters")
""")

md(r"""
## 1. The idea: distil what the teacher computes inside

Distillation methods come in three families (Gou et al., 2021): **response-based** methods match the
teacher's outputs (Hinton's KD, lesson 01; DML, lesson 03), **feature-based** methods match its
*intermediate feature maps*, and **relation-based** methods match relations between images (RKD,
lesson 05). A feature map carries much more than the ten logits: where in the image the teacher
responds, with which of its channels, how strongly.

**FitNets** (Romero et al., 2015) started the family: a *hint* — the output of one of the teacher's
middle layers — is regressed by the student's *guided* layer through a small trainable regressor (the
student is thinner, so its channels have to be mapped to the teacher's), with a plain mean squared
error. **OFD**, "A Comprehensive Overhaul of Feature Distillation" (Heo et al., 2019), revisits every
design choice of that recipe:

| choice | FitNets | OFD |
|---|---|---|
| where | one middle layer, after its ReLU | the end of every stage, **before** the ReLU |
| teacher side | the raw feature | a **margin ReLU**: values below a per-channel margin $m$ are raised to $m$ |
| student side | a regressor | a **1×1 conv + BN connector** |
| distance | L2 everywhere | a **partial L2** that skips what the ReLU would discard anyway |

> A. Romero, N. Ballas, S. E. Kahou, A. Chassang, C. Gatta, Y. Bengio, *FitNets: Hints for Thin Deep
> Nets*, ICLR 2015. B. Heo, J. Kim, S. Yun, H. Park, N. Kwak, J. Y. Choi, *A Comprehensive Overhaul of
> Feature Distillation*, ICCV 2019.

**Where to tap.** The course's ConvNets have three stages; `model(x, features=True)` returns, besides
the logits, the output of every stage *before its final ReLU* (`taps`), and `model.feature_info` lists
their channels and strides. Teacher and student have the same strides, so the maps line up position by
position; only the channel counts differ.
""")

code(r"""
x_look, y_look = next(test_view.batches(8, shuffle=False))
with torch.no_grad():
    t_out, s_out = teacher(x_look, features=True), student0(x_look, features=True)
print(f"{'stage':>5} | {'teacher tap (B, C, H, W)':>26} | {'student tap':>18} | stride")
for i, (t_tap, s_tap) in enumerate(zip(t_out.taps, s_out.taps)):
    stride = teacher.feature_info[i]["stride"]
    print(f"{i:>5} | {str(tuple(t_tap.shape)):>26} | {str(tuple(s_tap.shape)):>18} | {stride}")
""")

md(r"""
**Why before the ReLU.** After the ReLU every negative value is 0: the student could only learn *that*
a position is inactive, not *how strongly* the teacher suppresses it. Before the ReLU the negative part is
still there. On 200 test images the teacher's taps are mostly negative:
""")

code(r"""
probe = test_view.subset(torch.arange(200, device=DEVICE))                       # the same 200 images in both modes
teacher_taps = features.stage_taps(teacher, probe)                               # 3 × (200, C, H, W), pre-ReLU
print(f"{'stage':>5} | {'negative (zeroed by the ReLU)':>29} | {'mean of the negative values':>27} | "
      f"mean of the positive")
for i, tap in enumerate(teacher_taps):
    neg = tap < 0
    print(f"{i:>5} | {100 * neg.float().mean():28.1f}% | {tap[neg].mean():27.3f} | {tap[~neg].mean():.3f}")
""")

md(r"""
Most of what the teacher computed is thrown away by its ReLU, and those values are not all alike. But
copying them exactly would waste the student's capacity: after the ReLU, −0.1 and −3 are the same 0.
OFD's margin is the compromise.

## 2. The formulas, with shapes

Stage $i$ of the teacher gives $T_i$ of shape `(B, C_t, H_i, W_i)` (here $C_t$ = 64, 128, 256 and
$H_i = W_i$ = 28, 14, 7); the student's tap $S_i$ is `(B, C_s, H_i, W_i)` with $C_s$ = 16, 32, 64.

**The margin.** The BatchNorm right before the tap normalises each channel and applies its affine
parameters, so each channel is modelled as $x \sim \mathcal N(\beta_c, \gamma_c^2)$ ($\beta$ = `bn.bias`,
$\gamma$ = `bn.weight`). The margin is the mean of its negative part, with $\phi$, $\Phi$ the standard
normal density and distribution function:

$$m_c = \mathbb E[x \mid x < 0] = \beta_c - |\gamma_c|\,\frac{\phi(\beta_c/|\gamma_c|)}{\Phi(-\beta_c/|\gamma_c|)},
\qquad m \in \mathbb R^{C_t}$$

($m_c = -3|\gamma_c|$ where $\Phi(-\beta_c/|\gamma_c|) \le 0.001$: a channel that is almost never negative).

**The teacher's target** (the margin ReLU), per channel: $T'_{b,c,h,w} = \max(T_{b,c,h,w},\, m_c)$.

**The student's side:** a connector $r_i$, a 1×1 convolution $C_s \to C_t$ followed by a BatchNorm,
trained with the student and thrown away after training: $r_i(S_i)$ has the teacher's shape.

**The partial L2.** Per position, with $s = r_i(S_i)_{b,c,h,w}$ and $t' = T'_{b,c,h,w}$:

$$d_p(t', s) = \begin{cases} 0 & \text{if } s \le t' \le 0 \\ (t' - s)^2 & \text{otherwise} \end{cases}$$

— where both are non-positive and the student is already below the target, both are 0 after the ReLU:
nothing to learn. Summed over $C, H, W$, averaged over the batch, and over the stages with weights that
halve towards the input ($n = 3$ stages):

$$\mathcal L_\text{OFD} = \sum_{i=0}^{n-1} \frac{1}{2^{\,n-i-1}} \cdot \frac1B \sum_b \sum_{c,h,w} d_p\big(T'_i, r_i(S_i)\big),
\qquad \mathcal L = \mathrm{CE}(z_s, y) + \lambda_F\,\mathcal L_\text{OFD}, \quad \lambda_F = 10^{-3}$$

($\lambda_F = 10^{-3}$ is what the paper's code uses on CIFAR.) **OFD + KD** adds Hinton's KD as in
lesson 01, $(1-\kappa)\,\mathrm{CE} + \kappa\,T^2\,\mathrm{KL}(p_t^{T} \,\|\, p_s^{T})$ with $\kappa = 0.9$,
$T = 4$.

**FitNet** (the baseline, on the same tap of the middle stage, with the same kind of regressor):
$\mathcal L = \mathrm{CE} + \lambda_F \cdot \frac{1}{B\,C_t H W} \lVert r_1(S_1) - T_1 \rVert^2$, no margin,
no mask. (The paper trains in two stages — first the guided layer on the hint, then KD; here hint and CE
are trained together, in one stage.)

**U-DML** (PP-OCRv2; Du et al., 2021) needs no teacher: two peers of the *same* architecture train
together with DML (lesson 03) and an L2 between their features — same shapes, so no connector (the
paper, about a text recognizer, also adds an extra fully connected head, which has no counterpart here).
Peer $k$ minimises

$$\mathcal L_k = \mathrm{CE}(z_k, y) + T^2\,\mathrm{KL}(p_j \,\|\, p_k) + \lambda_F\, \frac{1}{B\,C H W}\lVert F_k - \mathrm{sg}(F_j)\rVert^2,$$

$F$ the pre-ReLU tap of the last stage, sg = stop-gradient, as DML detaches the peer's logits. The two
peers' feature terms together have the same gradient as one undetached L2 between them.

> Y. Du, C. Li, R. Guo, C. Cui, W. Liu, J. Zhou, B. Lu, Y. Yang, Q. Liu, X. Hu, D. Yu, Y. Ma,
> *PP-OCRv2: Bag of Tricks for Ultra Lightweight OCR System*, arXiv:2109.03144, 2021.

In `kd_lab.methods`: `fitnet`, `ofd`, `ofd+kd` and `udml`, with the knobs `feature_weight` ($\lambda_F$),
`stages` (`"all"`, `"last"`, `"0,2"`…), `kd_weight` ($\kappa$) and `temperature`.
""")

md(r"""
## 3. The margin on real data

Is the Gaussian model of the BatchNorm good enough? For eight channels of the teacher's last stage: the
histogram of the channel's pre-ReLU values on the 200 test images, the margin derived from the BN's
$\beta, \gamma$ (red), and the measured mean of the negative values $\mathbb E[x \mid x<0]$ (black,
dashed).
""")

code(r"""
bns = teacher.preact_bns()
margins = [losses.ofd_margin(bn).cpu() for bn in bns]                            # 3 × (C_t,)
viz.plot_margin_histograms(teacher_taps[2], margins[2], channels=range(8))
""")

md(r"""
And every channel of every stage: BN-derived margin against the measured one. On the diagonal the
Gaussian model is exact.
""")

code(r"""
empirical = [features.negative_mean(tap) for tap in teacher_taps]               # 3 × (C_t,)
fig = viz.plot_margin_agreement({f"stage {i}": (m, e) for i, (m, e) in enumerate(zip(margins, empirical))})
print(f"{'stage':>5} | {'channels':>8} | {'median |BN − measured|':>22} | correlation")
for i, (m, e) in enumerate(zip(margins, empirical)):
    ok = torch.isfinite(e)
    corr = torch.corrcoef(torch.stack([m[ok], e[ok]]))[0, 1]
    print(f"{i:>5} | {int(ok.sum()):>8} | {(m[ok] - e[ok]).abs().median():22.3f} | {corr:.3f}")
fig
""")

md(r"""
What this measured, on the shipped teacher and these 200 test images (the same in quick and full mode):
the real channels are not Gaussian — a sharp peak just below 0 and a long positive tail — and in the
eight channels of the histograms the BN margin lies below the measured mean of the negative values (for
channel 0, −0.32 against −0.22). Over all channels the BN estimate follows the data closely at stage 1
(correlation 0.975, median difference 0.013) and more loosely at stages 0 and 2 (correlation 0.65 and
0.75, median differences 0.047 and 0.099). The margin is an estimate: cheap, needs no data, and fixed
once the teacher is trained. A margin somewhat below the true negative mean only lets a few more
negative teacher values through to the target.

## 4. From scratch

**The margin** in plain PyTorch (`torch.special.ndtr` is $\Phi$), for every BatchNorm before a tap of the
teacher, checked against `kd_lab.losses.ofd_margin`:
""")

code(r"""
def margin_from_scratch(bn):
    beta, std = bn.bias.detach().float(), bn.weight.detach().float().abs()       # (C,), (C,)
    z = beta / std
    p_negative = torch.special.ndtr(-z)                                          # P(x < 0)
    pdf = torch.exp(-0.5 * z ** 2) / (2 * torch.pi) ** 0.5                       # φ(z)
    m = beta - std * pdf / p_negative.clamp(min=1e-3)
    return torch.where(p_negative > 1e-3, m, -3 * std)                           # (C,)

for bn in bns:
    torch.testing.assert_close(margin_from_scratch(bn), losses.ofd_margin(bn))
print("from-scratch margins match kd_lab.losses.ofd_margin on the teacher's 3 BatchNorms")  # NBVAL_CHECK_OUTPUT
""")

md(r"""
**The partial L2** on a real batch: the teacher's stage-1 tap, and the untrained student's through a
fresh connector in training mode, as in the first training step (its BatchNorm normalises with the
batch's statistics).
""")

code(r"""
def partial_l2_from_scratch(s, t, m):
    target = torch.maximum(t, m.view(1, -1, 1, 1))                               # (B, C, H, W), t' = max(t, m)
    mask = (s > target) | (target > 0)                                           # where the loss counts
    return ((s - target) ** 2 * mask).sum(dim=(1, 2, 3)).mean()                  # sum over C, H, W; mean over B

torch.manual_seed(0)
connector = Connector(32, 128).to(DEVICE).train()                                # student stage 1 -> teacher stage 1
with torch.no_grad():
    s1 = connector(s_out.taps[1])                                                # (8, 128, 14, 14)
t1 = t_out.taps[1]                                                               # (8, 128, 14, 14)
torch.testing.assert_close(partial_l2_from_scratch(s1, t1, margins[1].to(DEVICE)),
                           losses.ofd_loss(s1, t1, margins[1].to(DEVICE)))
torch.testing.assert_close(((s1 - t1) ** 2).mean(), losses.fitnet_loss(s1, t1))
print(f"connector: {tuple(s_out.taps[1].shape)} -> {tuple(s1.shape)}")                      # NBVAL_CHECK_OUTPUT
print("from-scratch partial L2 and FitNet's MSE match kd_lab.losses.ofd_loss and fitnet_loss")  # NBVAL_CHECK_OUTPUT
print(f"standard deviation: teacher's tap {float(t1.std()):.2f}, connected student {float(s1.std()):.2f}")
""")

md(r"""
A fresh connector's BatchNorm outputs unit variance, while the teacher's channels are much quieter
(their BN's $|\gamma|$ is small): at first the connected student is far too loud, and the connector must
learn the teacher's scale — which is why the connector has to be trained, and why OFD's terms start
large. The loss terms of FitNet, OFD and OFD + KD as the trainer sees them in the first step, for the
untrained student on a batch of 128 (each stage is its own term, so the training plots show every stage):
""")

code(r"""
x_batch, y_batch = next(test_view.batches(128, shuffle=False))
for name in ("fitnet", "ofd", "ofd+kd"):
    torch.manual_seed(0)
    method = make_method(name, build_model("student").to(DEVICE), teacher).train()
    with torch.no_grad():
        terms = method.loss_terms(x_batch, y_batch)
    print(f"{name:>7}: " + ", ".join(f"{k} = {float(v):.3f}" for k, v in terms.items()))
""")

md(r"""
## 5. The partial L2 on one image

One channel of one test image at stage 1: the teacher's pre-ReLU map, the untrained student's map through
the fresh connector, the target $t' = \max(t, m)$ — everything below the margin is lifted to it — and the
mask. Black in the mask: $s \le t' \le 0$, positions the loss ignores. The last panel is what the loss
adds up.
""")

code(r"""
CHANNEL = 0
maps_before = features.partial_l2_maps(s1[0, CHANNEL], t1[0, CHANNEL], float(margins[1][CHANNEL]))
viz.plot_partial_l2(maps_before, suptitle=f"stage 1, channel {CHANNEL}, margin {float(margins[1][CHANNEL]):.2f}: "
                                          f"untrained student through a fresh connector")
""")

md(r"""
## 6. Look before training: feature maps

The first eight channels of stage 1 for one test image (its class is printed): the teacher's 128-channel map, the
untrained student's own 32 channels, and the student mapped by the fresh connector into the teacher's
channel space — the map the loss compares with the teacher's. Red is positive, blue negative, one colour
scale for the whole figure.
""")

code(r"""
IMAGE = 0
print(f"test image {IMAGE}: {CLASSES[int(y_look[IMAGE])]}")
viz.plot_feature_maps({"teacher\n(128 ch)": t1[IMAGE], "untrained\nstudent (32 ch)": s_out.taps[1][IMAGE],
                       "connector(student)\n→ 128 ch": s1[IMAGE]}, title="stage 1, before training")
""")

md(r"""
## 7. Train a student yourself

Knobs: $\lambda_F$ on a log scale (OFD's sums over $C H W$ are large, so its weight is small; FitNet's
MSE is a mean, so its weight is near 1), the stages to distil (ctrl/shift-click for several; each keeps its
weight $1/2^{n-i-1}$), the KD weight $\kappa$ (0: OFD alone; 0.9: OFD + KD) and $T$. Beside the loss
terms — one per stage — the panel draws the **feature distance** each time it measures the test
accuracy: for each distilled stage, $\lVert \mathrm{ReLU}(r_i(S_i)) - \mathrm{ReLU}(T_i)\rVert^2 /
\lVert \mathrm{ReLU}(T_i) \rVert^2$ on 256 fixed test images (0: the student's connected feature is the
teacher's after the ReLU). The cell after the panel starts one run with the default values, as if you had
pressed Train.
""")

code(r"""
panel = TrainingPanel("ofd", {"feature_weight": 1e-3, "stages": "all", "kd_weight": 0.0, "temperature": 4.0,
                              "labeled": SETTING.labeled, "epochs": SETTING.epochs},
                      SETTING, teacher=teacher, device=DEVICE)
panel
""")

code(r"""
run = panel.train()
panel.wait()
h = run["history"]
last = h.epochs[-1]
print(f"run {run['run']}: {run['status']}, test accuracy {100 * h.test_acc:.2f} %, feature distance per stage: "
      + ", ".join(f"{i}: {last[f'feat_dist_{i}']:.3f}" for i in range(3)))
panel.metrics_figure
""")

md(r"""
## 8. Experiment: feature distillation with 1,000 labels

Same student (72k parameters), same 1,000 class-balanced labeled images, same 60 epochs, optimizer (SGD,
cosine schedule) and augmentation; only the loss differs:

* **scratch** — cross-entropy only;
* **KD** — Hinton's KD, $T = 4$, $\alpha = 0.9$ (lesson 01);
* **FitNet** — CE + MSE hint at stage 1 through a 1×1 conv + BN regressor, $\lambda_F = 1$;
* **OFD** — CE + OFD on all three stages, $\lambda_F = 10^{-3}$;
* **OFD + KD** — KD's two terms ($\kappa = 0.9$, $T = 4$) + OFD;
* **DML** — two `student` peers, no teacher (lesson 03); we report peer 0, the network the others
  are also evaluated on;
* **U-DML** — DML + the L2 between the peers' last-stage features, $\lambda_F = 1$ (the weight of
  PaddleClas' feature-distance loss in its mutual-learning configurations), and the same with
  $\lambda_F = 0.1$.

Each seed draws its own labeled subset and initialisation. We keep the trained methods (with their
connectors and peers) with `train_method`, for the plots after training.
""")

code(r"""
RUNS = {"scratch": ("scratch", {}),
        "KD (T=4, α=0.9)": ("kd", {"temperature": 4.0, "alpha": 0.9}),
        "FitNet": ("fitnet", {}),
        "OFD": ("ofd", {}),
        "OFD + KD": ("ofd+kd", {}),
        "DML": ("dml", {}),
        "U-DML": ("udml", {}),
        "U-DML (λ_F=0.1)": ("udml", {"feature_weight": 0.1})}

histories, trained = {}, {}
bar = tqdm(total=len(RUNS) * len(SEEDS), desc="runs")
for label, (method_name, options) in RUNS.items():
    for seed in SEEDS:
        bar.set_postfix_str(f"{label}, seed {seed}")
        method, h = train_method(method_name, SETTING, seed=seed, teacher=teacher, device=DEVICE, progress=False,
                                 **options)
        histories.setdefault(label, []).append(h)
        trained.setdefault(label, method)                                             # the first seed's
        bar.update(1)
bar.close()
acc = {label: accuracies(hs) for label, hs in histories.items()}
for label in ("DML", "U-DML", "U-DML (λ_F=0.1)"):
    acc[f"{label}: ensemble"] = accuracies(histories[label], "acc_ensemble")

print(f"{SETTING.labeled} labeled images, {SETTING.epochs} epochs, {len(SEEDS)} seed(s), device {device_name(DEVICE)}")
print(f"{'method':<26} | {'test accuracy %':>15} | {'wall s per run':>14} | seeds")
for label, values in acc.items():
    (a, s), base = mean_std(values), label.split(":")[0]
    wall = sum(h.wall_s for h in histories[base]) / len(histories[base])
    print(f"{label:<26} | {a:8.2f} ± {s:4.2f} | {wall:14.1f} | " + ", ".join(f"{v:.2f}" for v in values))
viz.plot_runs_bar({k: v for k, v in acc.items() if "ensemble" not in k},
                  title=f"{SETTING.labeled} labeled images, {len(SEEDS)} seed(s), {SETTING.epochs} epochs")
""")

md(r"""
**What was measured.** The outputs above are this notebook's full-mode run on a 2-core CPU (PyTorch
2.14.1): 1,000 labels, 60 epochs, 3 seeds, 31 minutes in all. Differences paired by seed (mean ± std over the
3 seeds, in points):

| comparison | difference | per seed |
|---|---|---|
| KD − scratch | +3.65 ± 0.80 | +4.57, +3.28, +3.11 |
| FitNet − scratch | +0.28 ± 0.64 | +0.85, +0.40, −0.42 |
| OFD − scratch | +1.03 ± 0.54 | +1.64, +0.83, +0.62 |
| OFD − FitNet | +0.75 ± 0.31 | +0.79, +0.43, +1.04 |
| KD − OFD | +2.62 ± 0.27 | +2.93, +2.45, +2.49 |
| OFD + KD − KD | −0.36 ± 0.18 | −0.33, −0.20, −0.56 |
| U-DML (λ_F = 1) − DML | −3.27 ± 0.65 | −2.75, −4.00, −3.05 |
| U-DML (λ_F = 0.1) − DML | −0.12 ± 0.39 | −0.15, −0.49, +0.28 |

* **OFD helps, FitNet barely.** OFD beats scratch on every seed (+1.0 points) and FitNet on every seed
  (+0.75); FitNet's single MSE hint is within noise of scratch — the direction Heo et al. report.
* **KD is the strongest single signal here** (+3.65 points), far ahead of OFD: with ten classes and 1,000
  labels, the teacher's soft outputs carry more than its feature maps do through a 1×1 connector.
* **OFD and KD do not add up** in this setting: OFD + KD is 0.36 points *below* KD alone, on every seed.
  The paper's OFD + KD gains were on ImageNet and CIFAR-100 with much deeper students.
* **U-DML at λ_F = 1 hurts** (−3.3 points against DML): the last-stage features of the two peers become
  nearly identical (distance 0.05 against 1.48 for DML, see below) and the peers lose what they could
  teach each other. At λ_F = 0.1 U-DML is where DML is. PP-OCRv2's gain came with a text recognizer and
  a different head; here, the feature loss between peers needs a small weight not to do harm.

Quick-mode numbers (4 epochs, one seed) say nothing about this.
""")

md(r"""
How the feature distance fell during training (first seed; FitNet distils stage 1 only). The stages are
not equally easy: compare where each method starts and ends.
""")

code(r"""
viz.plot_stage_distances([(label, histories[label][0]) for label in ("FitNet", "OFD", "OFD + KD")])
""")

md(r"""
DML against U-DML: how close the two peers' features are after training (the same relative distance,
peer 0 against peer 1, on the 200 probe images), and how often they predict the same class on the test
images. Mutual learning works through the peers' *differences* (lesson 03); a feature loss between them
pulls them together — compare how much, and what it did to the accuracy above.
""")

code(r"""
print(f"{'':<15} | {'feature distance, stage 0 / 1 / 2':>34} | agreement of the peers")
for label in ("DML", "U-DML", "U-DML (λ_F=0.1)"):
    peers = list(trained[label].peers)
    dist = features.peer_feature_distance(peers, probe)
    agree = histories[label][0].epochs[-1]["agree_0_1"]
    print(f"{label:<15} | {' / '.join(f'{v:.3f}' for v in dist.values()):>34} | {100 * agree:.1f} %")
""")

md(r"""
## 9. Look after training

The same image and channels as in section 6, stage 1: the teacher, the OFD student through its trained
connector, the OFD student's own channels, and the scratch student's own channels.
""")

code(r"""
ofd = trained["OFD"].eval()
with torch.no_grad():
    s_ofd = ofd.student(x_look, features=True).taps[1]                            # (8, 32, 14, 14)
    s_ofd_connected = ofd.connectors["1"](s_ofd)                                  # (8, 128, 14, 14)
    s_scratch = trained["scratch"].student.eval()(x_look, features=True).taps[1]  # (8, 32, 14, 14)
viz.plot_feature_maps({"teacher\n(128 ch)": t1[IMAGE], "OFD:\nconnector(student)": s_ofd_connected[IMAGE],
                       "OFD student\n(32 ch)": s_ofd[IMAGE], "scratch student\n(32 ch)": s_scratch[IMAGE]},
                      title="stage 1, after training")
""")

md(r"""
The partial L2 of section 5 again, for the OFD student through its trained connector (evaluation mode):
where does the student now match the target, and where does the loss still count?
""")

code(r"""
maps_after = features.partial_l2_maps(s_ofd_connected[0, CHANNEL], t1[0, CHANNEL], float(margins[1][CHANNEL]))
viz.plot_partial_l2(maps_after, suptitle=f"stage 1, channel {CHANNEL}: OFD student through its trained connector")
print(f"loss on this map: before {float(maps_before['error'].sum()):.2f}, after {float(maps_after['error'].sum()):.2f}")
""")

md(r"""
## 10. Exercises

Each exercise has a self-check that tells you what is right or what is wrong. Replace the
`raise NotImplementedError` lines with your code and run the cell again.

**Exercise 1 — the margin from BN parameters.** Write `my_margin(bn)`: the `(C,)` tensor of OFD margins
of a `BatchNorm2d`, $m = \beta - |\gamma|\,\phi(\beta/|\gamma|)\,/\,\Phi(-\beta/|\gamma|)$, and $-3|\gamma|$ where
$\Phi(-\beta/|\gamma|) \le 0.001$. `torch.special.ndtr` is $\Phi$. The check uses a BatchNorm with a
negative $\gamma$ and a channel that is almost never negative.
""")

code(r"""
def my_margin(bn):
    raise NotImplementedError  # your code here

exercises.check_ofd_margin(my_margin)  # NBVAL_CHECK_OUTPUT
""")

md(r"""
**Exercise 2 — the partial-L2 mask.** Write `my_mask(s, t_prime)`: a boolean tensor of the shape of its
inputs, True where the partial L2 counts. Before you code it, decide by hand for
$(s, t') = (0.5, 1.0)$, $(-0.2, -0.5)$, $(-1.0, -0.5)$ and $(-0.5, -0.5)$.
""")

code(r"""
def my_mask(s, t_prime):
    raise NotImplementedError  # your code here

exercises.check_partial_l2_mask(my_mask)  # NBVAL_CHECK_OUTPUT
""")

md(r"""
## 11. Summary

* Feature-based distillation makes the student imitate the teacher's intermediate feature maps; a
  trainable connector (1×1 conv + BN) maps the student's channels to the teacher's, and is thrown away
  after training.
* OFD taps before the ReLU, raises the teacher's values below a per-channel margin to it — the margin
  comes from the BatchNorm's $\beta, \gamma$, the expected negative value of a Gaussian — and skips the
  positions where student and target would both be 0 after the ReLU.
* FitNet is the plain version: one hint, full MSE. OFD adds up over stages, weighted towards the last.
* Feature and response losses can be combined (OFD + KD), and a feature loss also works between peers
  without a teacher (U-DML), with no connector when the peers share an architecture.
* Whether any of it helps is measured against scratch and KD on the same budget, over seeds. Here (1,000
  labels, 3 seeds, CPU): OFD +1.0 points over scratch and +0.75 over FitNet; KD +3.65; OFD + KD 0.36 below KD
  alone; U-DML at λ_F = 1 3.3 points below DML, at λ_F = 0.1 level with it.

**Next:** lesson 05 distils *relations* between images (RKD), which needs no connector at all; lesson 06
puts every method of the course on the same budget.

**References.** B. Heo, J. Kim, S. Yun, H. Park, N. Kwak, J. Y. Choi, *A Comprehensive Overhaul of Feature
Distillation*, ICCV 2019. A. Romero, N. Ballas, S. E. Kahou, A. Chassang, C. Gatta, Y. Bengio, *FitNets:
Hints for Thin Deep Nets*, ICLR 2015. Y. Du, C. Li, R. Guo, C. Cui, W. Liu, J. Zhou, B. Lu, Y. Yang, Q. Liu,
X. Hu, D. Yu, Y. Ma, *PP-OCRv2: Bag of Tricks for Ultra Lightweight OCR System*, arXiv:2109.03144, 2021.
Y. Zhang, T. Xiang, T. M. Hospedales, H. Lu, *Deep Mutual Learning*, CVPR 2018. G. Hinton, O. Vinyals,
J. Dean, *Distilling the Knowledge in a Neural Network*, NIPS Deep Learning Workshop, 2015. J. Gou, B. Yu,
S. J. Maybank, D. Tao, *Knowledge Distillation: A Survey*, IJCV 2021.
""")


if __name__ == "__main__":
    LESSON.write()
