"""Writes notebooks/03_dml.ipynb (without outputs) from the cells below.

The notebook is the lesson; this script keeps its source reviewable as plain text (see
tools/lesson_builder.py for how to rebuild and re-execute it).
"""
from lesson_builder import Lesson

LESSON = Lesson("03_dml.ipynb")
md, code = LESSON.md, LESSON.code

md(r"""
# Lesson 03 — Deep Mutual Learning: peers that teach each other

**After this lesson you can**

1. explain how Deep Mutual Learning (DML) distils without a pre-trained teacher, and where it sits among
   the response-based methods;
2. write the DML loss of $K$ peers from scratch, with the peers detached, and say why they are detached;
3. tell *simultaneous* from *alternating* updates, and how the trainer runs the latter;
4. measure, over seeds, whether two networks trained mutually beat the same networks trained alone, and
   what their ensemble adds;
5. show that DML with one frozen, trained peer *is* KD.

The lesson runs in two modes. **Full mode** (the default) is what the text talks about; its outputs are
committed in this notebook. **Quick mode** (`KD_LAB_QUICK=1`, used by the tests) runs the same cells on
less data, one seed and fewer epochs, in under two minutes on a 2-core CPU — its numbers are *not* the
ones discussed below.
""")

code(r"""
import inspect
import textwrap
from dataclasses import replace

import torch
import torch.nn.functional as F
import matplotlib.pyplot as plt
from tqdm.auto import tqdm

from kd_lab import analysis, exercises, losses, viz
from kd_lab.data import FASHION_CLASSES as CLASSES
from kd_lab.experiments import Setting, accuracies, load_data, train_method
from kd_lab.methods import make_method
from kd_lab.models import build_model, count_parameters
from kd_lab.train import device_name, fit, pick_device, quick_mode
from kd_lab.widgets import TrainingPanel
from kd_lab.zoo import get_teacher

QUICK = quick_mode()
DEVICE = pick_device("auto")
SEEDS = (0,) if QUICK else (0, 1, 2)
SETTING = Setting.default(labeled=1000)        # 1,000 labeled images, 60 epochs (quick mode: 4 epochs)

train, test = load_data("fashion-mnist", DEVICE)
test_view = test.subset(torch.arange(SETTING.test_size or len(test), device=DEVICE))
print(f"mode: {'quick' if QUICK else 'full'} | device: {device_name(DEVICE)} | torch {torch.__version__}")
print(f"setting: {SETTING}")
for name in ("student", "student-tiny"):
    print(f"{name:>12}: {count_parameters(build_model(name)):,} parameters")
""")

md(r"""
## 1. The idea: no teacher, a cohort of students

In lesson 01 a big network was trained first and then frozen, and a small student imitated its soft
targets: two stages, and the teacher only gives. Zhang, Xiang, Hospedales & Lu (2018) asked whether the
teacher has to be pre-trained — or even bigger. In **Deep Mutual Learning** a *cohort* of $K$ networks,
the **peers**, train together from scratch, in one stage. Each peer learns from the labels and from the
other peers' current predictions. The peers start from different random weights and make different
mistakes, so each peer's soft predictions carry information the one-hot label lacks (which classes look
alike, as the teacher's "dark knowledge" did in lesson 01); matching a peer also acts as a regulariser
against over-confident predictions. The paper reports gains on CIFAR-10, CIFAR-100 and person
re-identification (Market-1501), even when every peer is a large network and none of them is a teacher.

DML is a **response-based** method: like KD (lesson 01) and SSLD (lesson 02) it compares the networks'
outputs, not their features (lesson 04) or the relations between samples (lesson 05). What sets it apart
is that the roles are symmetric and nobody is frozen. Lesson 04 meets DML again: PP-OCRv2's U-DML adds a
feature loss between the peers.

*Reference:* Y. Zhang, T. Xiang, T. M. Hospedales, H. Lu, *Deep Mutual Learning*, CVPR 2018.
""")

md(r"""
## 2. The loss of each peer

$K$ peers (numbered $0 \dots K-1$ as in the code) see the same batch of $B$ images. Peer $k$ outputs logits
$z_k$ of shape `(B, C)` ($C = 10$ classes); $y$ holds the labels, shape `(B,)`; $p_k = \sigma(z_k / T)$ are
its softened probabilities, shape `(B, C)`, at temperature $T$ (the paper uses $T = 1$). Peer $k$ minimises

$$\mathcal{L}_k \;=\; \underbrace{\mathrm{CE}\big(y,\ \sigma(z_k)\big)}_{\texttt{ce\_k}} \;+\;
\underbrace{\frac{w}{K-1} \sum_{j \ne k} T^2\, \frac{1}{B}\sum_{b=1}^{B}
\mathrm{KL}\big(\mathrm{sg}[p_j^{(b)}]\ \big\|\ p_k^{(b)}\big)}_{\texttt{kl\_k}},
\qquad \mathrm{KL}(p\,\|\,q) = \sum_{c=1}^{C} p_c \log\frac{p_c}{q_c},$$

with $w$ the weight of the mutual term (`kl_weight`, 1 in the paper) and $\mathrm{sg}[\cdot]$ "stop
gradient": when peer $k$ updates, its peers' predictions are fixed targets, exactly like the teacher's in
KD. With $K > 2$ peers the KL terms are averaged over the $K - 1$ others (the paper's choice). Both terms
are scalars; `kd_lab.methods.DML` logs them per peer as `ce_0, kl_0, ce_1, kl_1, …` (already weighted)
and the trainer steps on their sum $\sum_k \mathcal{L}_k$ — since each $\mathcal{L}_k$ only reaches peer
$k$'s weights, that is the same as $K$ separate optimisers. `kd_lab.losses.dml_loss(z_k, z_j, T)` is one
$T^2\,\mathrm{KL}(p_j \| p_k)$ with $z_j$ detached.

From scratch, for three peers of two sizes on a real batch, checked against `kd_lab`:
""")

code(r"""
def dml_from_scratch(logits, y, T=1.0, w=1.0):
    # logits: list of K tensors (B, C); y: (B,) -> list of K scalar losses L_k
    K, out = len(logits), []
    for k, z_k in enumerate(logits):
        log_p_k = torch.log_softmax(z_k / T, dim=1)                        # (B, C)
        kl = 0.0
        for j, z_j in enumerate(logits):
            if j != k:
                log_p_j = torch.log_softmax(z_j.detach() / T, dim=1)       # (B, C): a fixed target
                kl = kl + T ** 2 * (log_p_j.exp() * (log_p_j - log_p_k)).sum(dim=1).mean()
        out.append(F.cross_entropy(z_k, y) + w * kl / (K - 1))
    return out

torch.manual_seed(0)
cohort = make_method("dml", build_model("student"), k=3, peers="student,student-tiny", temperature=2.0).to(DEVICE)
x_batch, y_batch = next(train.batches(256, shuffle=False))                 # (256, 1, 28, 28), (256,)
cohort.train()
terms = cohort.loss_terms(x_batch, y_batch)                                # {"ce_0": …, "kl_0": …, …}
with torch.no_grad():
    logits = [peer(x_batch) for peer in cohort.peers]                      # 3 x (256, 10)
mine = dml_from_scratch(logits, y_batch, T=2.0)
for k in range(3):
    torch.testing.assert_close(mine[k], terms[f"ce_{k}"] + terms[f"kl_{k}"])
    kl_k = sum(losses.dml_loss(logits[k], logits[j], 2.0) for j in range(3) if j != k) / 2
    torch.testing.assert_close(mine[k] - F.cross_entropy(logits[k], y_batch), kl_k)
print("peers:", cohort.options()["peers"], "| loss terms:", list(terms))
print("from-scratch DML losses match kd_lab for K = 3, T = 2")  # NBVAL_CHECK_OUTPUT
""")

md(r"""
The peers are detached: the gradient of peer 0's KL term reaches peer 0 only.
""")

code(r"""
cohort.zero_grad(set_to_none=True)
cohort.loss_terms(x_batch, y_batch)["kl_0"].backward()
for k, peer in enumerate(cohort.peers):
    has_grad = any(p.grad is not None for p in peer.parameters())
    print(f"peer {k} ({cohort.peer_names[k]}) received a gradient from kl_0: {has_grad}")  # NBVAL_CHECK_OUTPUT
""")

md(r"""
## 3. Simultaneous or alternating updates

The paper's Algorithm 1 updates the peers **one after the other** on each mini-batch: compute both
predictions, update peer 1, *recompute* the predictions with the updated peer 1, update peer 2, and so
on — each peer learns from the others' latest state. The simpler **simultaneous** variant runs one forward
pass of every peer and updates them all at once against the predictions from before the step: $K$ forward
passes per batch instead of $K^2$ (alternating mode recomputes the other peers in every phase).

`kd_lab` supports both without special-casing DML: a method may declare **phases**. For each batch the
trainer runs one optimizer step per phase — zero the gradients, `loss_terms(x, y, phase)`, backward,
step — and the learning-rate schedule steps once per batch. Parameters that got no gradient in a phase
(`grad is None`) are skipped by the optimizer, weight decay and momentum included. Here is the loop of
`kd_lab.train.fit`:
""")

code(r"""
for mode in ("simultaneous", "alternating"):
    m = make_method("dml", build_model("student"), k=3, mode=mode)
    print(f"{mode:>12}: phases {m.phases()}")  # NBVAL_CHECK_OUTPUT
lines = inspect.getsource(fit).splitlines()
start = next(i for i, line in enumerate(lines) if "for x, y in train.batches" in line)
print(textwrap.dedent("\n".join(lines[start:start + 11])))
""")

md(r"""
One step on the same batch from the same initial weights: peer 0 moves the same way in both modes (it
learns from peer 1 before anyone has moved), while peer 1 moves differently — in alternating mode it learns
from the peer 0 that has *already* taken its step.
""")

code(r"""
one_batch = train.subset(torch.arange(128, device=DEVICE))
stepped = {}
for mode in ("simultaneous", "alternating"):
    torch.manual_seed(0)
    stepped[mode] = make_method("dml", build_model("student"), mode=mode)
    fit(stepped[mode], one_batch, None, epochs=1, batch_size=128, augment=False, progress=False, device=DEVICE)
for k in range(2):
    pairs = zip(stepped["simultaneous"].peers[k].parameters(), stepped["alternating"].peers[k].parameters())
    diff = max(float((a - b).detach().abs().max()) for a, b in pairs)
    print(f"peer {k}: largest weight difference between the two modes after one step: {diff:.1e}")
""")

md(r"""
## 4. Look before training

Two untrained peers — a `student` and a `student-tiny` — on three real test images, softmax at $T = 1$.
Both are close to uniform, and an untrained network typically puts its (slightly) highest probability on
the same class for almost every image — a different class for each peer. `analysis.peer_metrics` (what
`DML.epoch_metrics` logs every epoch) measures, over the test set, each peer's accuracy, the ensemble's
(the argmax of the mean of their softmax), how often the two predict the same class (`agree_0_1`) and
the mean $\mathrm{KL}(p_1 \| p_0)$ (`kl_0_1`). Nearly uniform distributions are close to each other, so
that KL is tiny even where the two peers never agree on the top class:
""")

code(r"""
labels = test_view.y.cpu()
picks = [int(torch.nonzero(labels == CLASSES.index(c))[0]) for c in ("Shirt", "Sneaker", "Coat")]

def compare_predictions(rows, T=1.0):
    fig, axes = plt.subplots(len(rows), len(picks), figsize=(4.2 * len(picks), 3.0 * len(rows)),
                             layout="constrained", squeeze=False)
    for r, (name, logits) in enumerate(rows):
        for c, i in enumerate(picks):
            viz.plot_soft_targets(logits[i], T, CLASSES, ax=axes[r, c])
            axes[r, c].set_title(f"{name}, image {i} ({CLASSES[int(labels[i])]})\n" + axes[r, c].get_title(),
                                 fontsize=9)
    return fig

def show_metrics(title, metrics):
    print(f"{title}: " + ", ".join(f"{k} {100 * v:.1f} %" if not k.startswith("kl") else f"{k} {v:.3f}"
                                   for k, v in metrics.items()))

torch.manual_seed(0)
untrained = make_method("dml", build_model("student"), peers="student,student-tiny").to(DEVICE)
show_metrics("untrained pair", analysis.peer_metrics(untrained.peers, test_view))
compare_predictions([(f"untrained {name}", analysis.predict_logits(peer, test_view))
                     for name, peer in zip(untrained.peer_names, untrained.peers)]);
""")

md(r"""
## 5. Train a cohort yourself

Sliders: the number of peers $K$ (all `student`s here), the weight $w$ of the mutual term, the temperature,
the number of labeled images and the epochs. **Train** starts a run in the background (the notebook stays
usable), **Stop** ends it and keeps its curves, and the table lists this session's runs. The loss plot
shows every peer's `ce_k` and `kl_k`; the accuracy plot is peer 0's. The cell after the panel starts one
run with the default values, as if you had pressed Train.

Try $w = 0$: the peers no longer talk to each other, and you get $K$ networks trained alone.
""")

code(r"""
knobs = {"k": 2, "kl_weight": 1.0, "temperature": 1.0, "labeled": 1000, "epochs": SETTING.epochs}
panel = TrainingPanel("dml", knobs, SETTING, device=DEVICE)
panel
""")

code(r"""
run = panel.train()
panel.wait()
print(f"run {run['run']}: {run['status']}, test accuracy of peer 0 {100 * run['history'].test_acc:.2f} %")
panel.figure
""")

md(r"""
### What the run logged

Every step logged each peer's terms; every measured epoch logged each peer's test accuracy, the
ensemble's, and the agreement and KL between peer 0 and the others (`DML.epoch_metrics`). Top: the loss
terms (left) and peer 0's accuracy (right). Bottom: every peer's test accuracy with the ensemble (left),
and how often the peers predict the same class (right). Watch `kl_k`: it measures how far peer $k$ is
from the others. Untrained peers predict nearly uniform distributions, so it starts near zero (section 4);
how it moves afterwards shows how far apart the peers' predictions are while they learn.
""")

code(r"""
h = run["history"]
fig, axes = plt.subplots(2, 2, figsize=(12, 7.5), layout="constrained")
viz.plot_history(h, axes=axes[0], terms=[f"{t}_{k}" for k in range(h.config["k"]) for t in ("ce", "kl")])
viz.plot_peers(h, axes=axes[1])
last = [e for e in h.epochs if "acc_ensemble" in e][-1]
show_metrics(f"epoch {last['epoch']}", {k: v for k, v in last.items() if k.startswith(("acc_", "agree_", "kl_"))})
""")

md(r"""
## 6. Experiment: alone or together?

The course's setting: Fashion-MNIST with 1,000 class-balanced labeled images, 60 epochs, SGD with a
cosine schedule and the same augmentation for every run — the setting where lesson 01's teacher helped.
Two networks of different size: `student` (72k parameters) and `student-tiny` (19k). We train

* each of them **alone** (cross-entropy only, the scratch baseline), and
* the two **together** with DML ($K = 2$, $w = 1$, $T = 1$, simultaneous updates),

over several seeds. The paper measured its gains with far larger networks on CIFAR-100 and Market-1501;
whether two small networks with 1,000 labels gain as well is what this experiment checks. A seed fixes
the labeled subset, the batch order and the initial weights, so the
`student` alone and the `student` peer of the same seed start from the *same* weights and see the same
batches: the per-seed difference is a paired comparison. Besides each peer we report the **ensemble** of
the pair (the mean of their softmax), and as its baseline the ensemble of the two networks trained alone.
""")

code(r"""
def run_all(runs, seeds, setting):
    # label -> (method, student preset, options): train each for every seed; keep the histories and methods
    histories, trained = {}, {}
    bar = tqdm(total=len(runs) * len(seeds), desc="runs")
    for label, (method, student, options) in runs.items():
        for seed in seeds:
            bar.set_postfix_str(f"{label}, seed {seed}")
            m, h = train_method(method, replace(setting, student=student), seed=seed, device=DEVICE,
                                progress=False, **options)
            histories.setdefault(label, []).append(h)
            trained.setdefault(label, []).append(m)
            bar.update(1)
    bar.close()
    return histories, trained

def summary_line(label, values):
    t = torch.tensor(values, dtype=torch.float64)
    std = float(t.std()) if len(t) > 1 else 0.0
    return f"{label:<34} {float(t.mean()):6.2f} ± {std:4.2f} %   seeds: " + ", ".join(f"{v:.2f}" for v in values)

MAIN = {"student alone": ("scratch", "student", {}),
        "student-tiny alone": ("scratch", "student-tiny", {}),
        "DML student + student-tiny": ("dml", "student", {"peers": "student,student-tiny"})}
main, trained = run_all(MAIN, SEEDS, SETTING)
alone_pairs = [analysis.peer_metrics([a.student, b.student], test_view)
               for a, b in zip(trained["student alone"], trained["student-tiny alone"])]
dml_runs = main["DML student + student-tiny"]
acc = {"student alone": accuracies(main["student alone"]),
       "student, DML": accuracies(dml_runs, "acc_0"),
       "student-tiny alone": accuracies(main["student-tiny alone"]),
       "student-tiny, DML": accuracies(dml_runs, "acc_1"),
       "ensemble, alone": [100 * p["acc_ensemble"] for p in alone_pairs],
       "ensemble, DML": accuracies(dml_runs, "acc_ensemble")}
for label, values in acc.items():
    print(summary_line(label, values))
PAIRED = {"student": ("student, DML", "student alone"), "student-tiny": ("student-tiny, DML", "student-tiny alone"),
          "ensemble": ("ensemble, DML", "ensemble, alone")}
for name, (together, alone) in PAIRED.items():
    print(summary_line(f"{name}: DML − alone (points)", [x - y for x, y in zip(acc[together], acc[alone])]))
agree = {"alone": [100 * p["agree_0_1"] for p in alone_pairs], "DML": accuracies(dml_runs, "agree_0_1")}
for label, values in agree.items():
    print(summary_line(f"agreement of the pair, {label}", values))
viz.plot_runs_bar(acc, title=f"{SETTING.labeled} labeled images, {len(SEEDS)} seed(s), {SETTING.epochs} epochs")
""")

md(r"""
### Variants: two equal peers, three peers, alternating updates

The paper pairs networks of the same and of different architectures, and reports that larger
cohorts help further (on Market-1501). Same setting, `student` peers only: two peers updated simultaneously
(the default), two updated alternately (the paper's Algorithm 1), and three peers. Peer 0 is the network we
would deploy; the baseline is the `student` alone from above. In quick mode these runs take a single epoch.
""")

code(r"""
VARIANT_SETTING = replace(SETTING, epochs=1) if QUICK else SETTING
VARIANTS = {"DML 2 × student": ("dml", "student", {}),
            "DML 2 × student, alternating": ("dml", "student", {"mode": "alternating"}),
            "DML 3 × student": ("dml", "student", {"k": 3})}
variants, _ = run_all(VARIANTS, SEEDS, VARIANT_SETTING)
acc_v = {"student alone": acc["student alone"]}
for label, hs in variants.items():
    acc_v[f"{label}: peer 0"] = accuracies(hs, "acc_0")
    acc_v[f"{label}: ensemble"] = accuracies(hs, "acc_ensemble")
for label, values in acc_v.items():
    print(summary_line(label, values))
print("time per run (s):", {label: round(sum(h.wall_s for h in hs) / len(hs), 1) for label, hs in variants.items()})
viz.plot_runs_bar(acc_v, title="student peers: K = 2 and 3, simultaneous and alternating")
""")

md(r"""
**What was measured.** The outputs above are this notebook's full-mode run on a 2-core CPU (PyTorch 2.14.1),
3 seeds, 1,000 labels, 60 epochs, 33 minutes in all:

| | mean ± std over 3 seeds |
|---|---|
| student alone | 83.55 ± 0.54 % |
| student, trained with DML | 84.17 ± 0.10 % |
| student-tiny alone | 83.09 ± 1.05 % |
| student-tiny, trained with DML | 82.68 ± 0.14 % |
| ensemble of the two trained alone | 84.62 ± 0.71 % |
| ensemble of the DML pair | 84.11 ± 0.10 % |
| agreement of the pair, alone / DML | 87.85 % / 91.52 % |

Paired by seed, DML moved the `student` by +0.61 ± 0.47 points (+1.14, +0.46, +0.24: positive on every
seed, but about the size of the spread of the student alone), the `student-tiny` by −0.41 ± 1.05 points
(within noise), and the ensemble by −0.51 ± 0.75 points. Mutual learning makes the peers agree more
(91.5 % of test images instead of 87.9 %), so their ensemble gains *less* than the ensemble of two
independently trained networks. The variants put peer 0 at 84.36 ± 0.15 % (two `student` peers),
84.27 ± 0.41 % (alternating updates) and 84.10 ± 0.40 % (three peers): up to 0.8 points over the
student alone, all within about two standard deviations of it. The same cells run earlier as a script on
an NVIDIA H200 (PyTorch 2.11) gave the student 84.10 ± 0.54 % alone and 84.05 ± 0.35 % with DML, no gain:
the effect of DML here is of the size of the seed-to-seed noise, at best about half a point. The paper's
gains were on CIFAR-100 and person re-identification, with many classes and much larger networks; the
dark knowledge peers can share among ten Fashion-MNIST classes is small.
""")

md(r"""
## 7. The bridge to KD: a frozen peer is a teacher

Freeze one peer — no gradient, eval mode, no loss of its own — and give it trained weights. Peer 0's loss
becomes

$$\mathcal{L}_0 = \mathrm{CE}(y, \sigma(z_0)) + w\,T^2\,\mathrm{KL}(p_t \,\|\, p_0),$$

and lesson 01's KD loss is $\mathcal{L}_{KD} = (1-\alpha)\,\mathrm{CE} + \alpha\,T^2\,\mathrm{KL}(p_t \| p_s)$.
Dividing by $1 - \alpha$ gives $\mathrm{CE} + \frac{\alpha}{1-\alpha}\,T^2\,\mathrm{KL}$: with
$w = \alpha / (1 - \alpha)$ the two losses differ only by the constant factor $1 - \alpha$ (which
training absorbs into the learning rate). Checked with the same functions, on the real batch, with
the course's trained teacher as peer 1 — losses and gradients:
""")

code(r"""
teacher = get_teacher("fashion-mnist", device=DEVICE)
ALPHA, T = 0.9, 4.0
torch.manual_seed(0)
student_b = build_model("student").to(DEVICE)
bridge = make_method("dml", student_b, kl_weight=ALPHA / (1 - ALPHA), temperature=T)
bridge.freeze_peer(1, teacher, name="teacher").train()                     # the teacher stays in eval mode
kd = make_method("kd", student_b, teacher, temperature=T, alpha=ALPHA).train()
results = []
for method, scale in ((bridge, 1 - ALPHA), (kd, 1.0)):
    student_b.zero_grad(set_to_none=True)
    loss = scale * sum(method.loss_terms(x_batch, y_batch).values())
    loss.backward()
    results.append((loss.detach(), [p.grad.clone() for p in student_b.parameters()]))
torch.testing.assert_close(results[0][0], results[1][0])
for g_dml, g_kd in zip(results[0][1], results[1][1]):
    torch.testing.assert_close(g_dml, g_kd)
print(f"peers: {bridge.options()['peers']} | DML terms: {list(bridge.loss_terms(x_batch, y_batch))}")
W = ALPHA / (1 - ALPHA)
print(f"(1 − α)·DML = KD for α = {ALPHA}, T = {T:g}, w = α/(1 − α) = {W:.0f}: "
      "losses and gradients match")  # NBVAL_CHECK_OUTPUT
""")

md(r"""
So KD is the special case of DML in which one peer is already trained and never learns. DML removes both
restrictions: no peer needs pre-training, and every peer learns from every other.
""")

md(r"""
## 8. Look after training

The same three test images for the `student` and the `student-tiny` of seed 0, trained alone (top two
rows) and trained mutually (bottom two rows), and each pair's numbers over the test set: accuracy of
each network and of the pair's ensemble, how often the two networks agree, and the KL between them.
""")

code(r"""
alone_s, alone_t = trained["student alone"][0].student, trained["student-tiny alone"][0].student
pair = trained["DML student + student-tiny"][0]
show_metrics("trained alone   ", analysis.peer_metrics([alone_s, alone_t], test_view))
show_metrics("trained together", analysis.peer_metrics(pair.peers, test_view))
compare_predictions([("student alone", analysis.predict_logits(alone_s, test_view)),
                     ("student-tiny alone", analysis.predict_logits(alone_t, test_view)),
                     ("student, DML", analysis.predict_logits(pair.peers[0], test_view)),
                     ("student-tiny, DML", analysis.predict_logits(pair.peers[1], test_view))]);
""")

md(r"""
## 9. Exercises

Each exercise has a self-check that tells you what is right or what is wrong. Replace the
`raise NotImplementedError` lines with your code and run the cell again.

**Exercise 1 — the DML loss of $K$ peers.** Write `my_dml_loss(logits, y, T)`: `logits` is a list of $K$
tensors of shape `(B, C)`, `y` the labels `(B,)`; return the list of the $K$ losses
$\mathcal{L}_k = \mathrm{CE}(y, \sigma(z_k)) + \frac{1}{K-1}\sum_{j\ne k} T^2\,\mathrm{KL}(p_j \| p_k)$,
with the peers detached. The check tries $K = 2, 3, 4$ and two temperatures, and also checks where the
gradient of your $\mathcal{L}_0$ goes.
""")

code(r"""
def my_dml_loss(logits, y, T):
    raise NotImplementedError  # your code here

exercises.check_dml_loss(my_dml_loss)  # NBVAL_CHECK_OUTPUT
""")

md(r"""
**Exercise 2 — why detach?** Suppose `dml_loss` did *not* detach the peer's logits, and the trainer still
stepped on $\sum_k \mathcal{L}_k$. What changes? Pick one of the answers printed below and pass its letter.
""")

code(r"""
for key, text in exercises.DETACH_CHOICES.items():
    print(f"({key}) {text}")
exercises.check_detach(answer="a")  # NBVAL_CHECK_OUTPUT
""")

md(r"""
## 10. Summary

* DML trains a cohort of $K$ peers in one stage, without a pre-trained teacher: each peer minimises its
  cross-entropy plus the mean $T^2\,\mathrm{KL}$ from every other peer's prediction to its own.
* The peers' predictions are detached targets, so each network follows its own loss; one optimizer over all
  peers is then the same as $K$ optimizers.
* Simultaneous updates cost $K$ forward passes per batch; the paper's alternating updates recompute the
  others after each peer's step. The trainer runs the latter as *phases*.
* With one peer frozen and trained, DML is KD with $w = \alpha / (1 - \alpha)$.
* Measure it: per peer, against the same network trained alone on the same seeds, and compare the pair's
  ensemble with the ensemble of networks trained alone.

**Next:** lesson 04 leaves the outputs and distils *features* (FitNet, OverHaul/OFD) — and meets DML
again in PP-OCRv2's U-DML, which adds a feature loss between the peers.

**References.** Y. Zhang, T. Xiang, T. M. Hospedales, H. Lu, *Deep Mutual Learning*, CVPR 2018.
G. Hinton, O. Vinyals, J. Dean, *Distilling the Knowledge in a Neural Network*, NIPS Deep Learning
Workshop, 2015. Y. Du et al., *PP-OCRv2: Bag of Tricks for Ultra Lightweight OCR System*, 2021.
""")


if __name__ == "__main__":
    LESSON.write()
