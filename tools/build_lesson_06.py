"""Writes notebooks/06_compare.ipynb (without outputs) from the cells below.

The notebook is the lesson; this script keeps its source reviewable as plain text (see
tools/lesson_builder.py for how to rebuild and re-execute it).
"""
from lesson_builder import Lesson

LESSON = Lesson("06_compare.ipynb")
md, code = LESSON.md, LESSON.code

md(r"""
# Lesson 06 — Every method on one budget: which helps, by how much, at what cost

**After this lesson you can**

1. set up a fair comparison of distillation methods: the same labeled images, student, epochs, optimizer
   and seeds for every method, only the loss (and what it trains) differing;
2. read a table of mean ± standard deviation over seeds and tell an effect from seed noise;
3. weigh accuracy against cost — training time, images per second, memory — and find the methods that
   no other method beats on both (the Pareto front);
4. hold each measured effect against the claim of its paper, in direction rather than in ImageNet numbers;
5. reproduce, extend and resume a comparison from the command line (`python -m kd_lab compare`).

The lesson runs in two modes. **Full mode** (the default) loads the comparison committed with the course,
`results/compare-fashion-mnist.csv` (or runs it when the file is missing: hours on a CPU, minutes on a GPU).
**Quick mode** (`KD_LAB_QUICK=1`, used by the tests) runs a tiny comparison of three methods instead —
one seed, two epochs — in a minute or two on a 2-core CPU; its numbers say nothing about the methods.
""")

code(r"""
%matplotlib inline
import tempfile
from dataclasses import replace
from pathlib import Path

from IPython.display import Markdown, display

import kd_lab
from kd_lab import bench, compare, exercises, viz
from kd_lab.experiments import Setting
from kd_lab.methods import METHODS, method_options
from kd_lab.train import device_name, pick_device, quick_mode
from kd_lab.widgets import ComparisonPanel

QUICK = quick_mode()
DEVICE = pick_device("auto")
COMMITTED = Path(kd_lab.__file__).resolve().parents[1] / "results" / "compare-fashion-mnist.csv"
print(f"mode: {'quick' if QUICK else 'full'} | device: {device_name(DEVICE)} | "
      f"committed comparison: {'present' if COMMITTED.exists() else 'missing'}")
""")

md(r"""
## 1. What is compared

Every method the course registers, in the order of the lessons, each with the defaults its lesson chose:

| method | lesson | family | what the student learns from | paper |
|---|---|---|---|---|
| `scratch` | — | baseline | the labels only (cross-entropy) | — |
| `kd` | 01 | response | labels + the teacher's softened outputs, $T = 4$, $\alpha = 0.9$ | Hinton, Vinyals, Dean 2015 |
| `dkd` | 01 | response | labels + target-class and non-target-class KD, weighted apart | Zhao et al. 2022 |
| `ssld` | 02 | response, label-free | the teacher's outputs only, on the labeled images plus unlabeled images the teacher is most confident about | Cui et al. 2021 |
| `dml` | 03 | response, no teacher | labels + a peer student trained at the same time | Zhang et al. 2018 |
| `fitnet` | 04 | feature | labels + a regressor from its features to the teacher's | Romero et al. 2015 |
| `ofd` | 04 | feature | labels + pre-ReLU features through a connector, partial L2 with a margin | Heo et al. 2019 |
| `ofd+kd` | 04 | feature + response | OFD's feature loss + KD | Heo et al. 2019 |
| `udml` | 04 | response + feature, no teacher | DML with a feature loss between the peers (PP-OCRv2's U-DML) | Du et al. 2021 |
| `rkd-d`, `rkd-a`, `rkd` | 05 | relation | labels + the distances / angles / both among the teacher's embeddings of a batch | Park et al. 2019 |
| `kd+rkd` | 05 | relation + response | KD + both relation losses | Park et al. 2019 |

The comparison code reads the registry when it runs, so a method added to `kd_lab.methods.METHODS` joins
the comparison without any change to it. Here is what is registered in this session, and each method's
default options:
""")

code(r"""
for name in compare.resolve_methods():
    cls = METHODS[name]
    options = ", ".join(f"{k}={v}" for k, v in method_options(name).items()) or "–"
    print(f"{name:<8} | teacher: {'yes' if cls.needs_teacher else 'no ':<3} | {options}")
""")

md(r"""
## 2. One budget for every method

A comparison means something only when every method gets the same chance. Each run here uses:

* the same **1,000 labeled images**, class-balanced (100 per class), drawn by the seed — lesson 01 showed that
  with the full 60,000 labels KD does not move this student beyond seed noise, with 1,000 it does;
* the same **student**, the 72k-parameter `student` preset, initialised by the seed;
* the same **epochs** (60), batch size (128), optimizer (SGD with Nesterov momentum, learning rate 0.05, cosine
  schedule, weight decay 5·10⁻⁴) and augmentation (random crop, horizontal flip);
* the **test accuracy** on the 10,000 test images, measured once, after the last epoch;
* **three seeds** per method. The seed changes the labeled subset, the initialisation and the data order, so
  the spread over seeds is what a different draw of the experiment would do.

What still differs, by design: teacher-based methods run the 1.15M-parameter teacher on every batch; DML and
U-DML train a second student; FitNet and OFD train a connector; SSLD trains on the labeled images *plus* up to
10,000 unlabeled ones, so each of its epochs holds many more images. The cost columns make these differences
visible. (`python -m kd_lab compare --steps N` gives every method the same number of optimizer steps instead
of the same epochs, which is the fairer budget for SSLD.)

Each run writes one row to a CSV as soon as it finishes: method, seed, labeled images, epochs, status, test
accuracy, training images/s, training seconds, wall seconds, peak memory, trained parameters, device, and a
key of the shared setting. An interrupted comparison resumes where it stopped; a run that raises is recorded
as `failed` with its error, and the others go on.
""")

code(r"""
SETTING = Setting.default(labeled=1000)
SETTING = replace(SETTING, eval_every=SETTING.epochs)          # test accuracy after the last epoch only
print(SETTING)
""")

md(r"""
## 3. Run or load the comparison

The committed comparison was made with the command line:

```bash
python -m kd_lab compare --seeds 3 --labeled 1000 --steps 400   # every registered method, 400 steps each
python -m kd_lab compare --seeds 3 --labeled 1000 --device cuda  # 60 epochs each, on a GPU
```

It trains every (seed, method) in turn — all methods of seed 0 first, so that a stopped comparison is still
balanced — shows a progress bar over the runs, and writes `results/compare-fashion-mnist.csv` and a Markdown
table next to it (`.md`). Stop it at any time (Ctrl-C, or a kill); the same command continues with the runs
that are missing. `--fresh` runs everything again; `--methods kd,dkd` or `--labeled 500,1000` choose a part
of the grid.

The cell below does the same through `kd_lab.compare.run_comparison`. In full mode it loads the committed
CSV (its own setting, stored in every row); in quick mode it runs a tiny comparison in a temporary folder.
""")

code(r"""
if QUICK:        # three methods, one seed, two labeled sizes, two epochs, 500 test images: a smoke test
    out = Path(tempfile.mkdtemp()) / "compare-quick.csv"
    quick_setting = Setting.default(epochs=2, eval_every=2, test_size=500)
    rows = compare.run_comparison(["scratch", "kd", "rkd-d"], seeds=1, labeled=[100, 500], setting=quick_setting,
                                  device=DEVICE, out=out)
elif COMMITTED.exists():
    out, rows = COMMITTED, compare.read_rows(COMMITTED)
else:
    out = COMMITTED
    rows = compare.run_comparison(None, seeds=3, labeled=1000, setting=SETTING, device=DEVICE, out=out)

KEY = rows[-1]["setting_key"]
rows = compare.current_rows(rows, KEY)      # one setting, the latest row of each run (the CSV may keep more)
SIZES = compare.labeled_sizes(rows)
SIZE = 1000 if 1000 in SIZES else SIZES[0]
print(f"{len(rows)} runs in {out.name}, setting {KEY}: {compare.setting_of(rows)}")
print(f"methods: {sorted({r['method'] for r in rows})}; labeled sizes: {SIZES}; "
      f"failed runs: {sum(r['status'] != 'ok' for r in rows)}; devices: {sorted({r['device'] for r in rows})}")
""")

md(r"""
## 4. The table

Mean ± sample standard deviation of the test accuracy over seeds, `n` finished runs and the failed ones,
the difference of the means to `scratch` (Δ), and the mean cost of a run. Peak memory: on CUDA the peak of
`torch.cuda.max_memory_allocated` during the run (everything on the GPU, the resident data set included); on a
Linux CPU how far the process's peak resident set grew during the run. Both cover the whole run, evaluation
in batches of 1,000 test images included, which can outweigh a small student's training step.
""")

code(r"""
records = compare.summarize(rows)
display(Markdown(compare.markdown_table(records)))
""")

md(r"""
## 5. Accuracy, and accuracy against cost

Left: one bar per method, its seeds as dots. Right: each method's mean accuracy against the mean wall time
of one of its runs, with the standard deviation of both. Up is better, left is cheaper: a method that sits
up and to the right of another costs more *and* gives more, a method below and to the right of another is
beaten on both.
""")

code(r"""
viz.plot_comparison(compare.per_method(rows, labeled=SIZE), cost="wall_s")
""")

md(r"""
### Widget: choose the methods and the labeled-set size

Pick methods (ctrl/shift-click for several), the labeled-set size (when the comparison holds several —
`python -m kd_lab compare --labeled 500,1000,4000`) and the cost on the x axis. The plot and the table
redraw from the rows; nothing is retrained.
""")

code(r"""
panel = ComparisonPanel(rows, labeled=SIZE)
panel
""")

md(r"""
## 6. Against the papers' claims

Each paper claims an effect in its own setting — CIFAR-100, ImageNet, text recognition, with students and
teachers much larger than ours. What can transfer is the *direction*: does the method beat the baseline its
paper beat? The cell below takes, for each claim, the two methods' accuracies over seeds and computes the
difference of the means Δ with its standard error $\mathrm{SE} = \sqrt{s_a^2/n_a + s_b^2/n_b}$, and calls
the effect **higher** when Δ > 2·SE, **lower** when Δ < −2·SE, and **within noise** otherwise. With three
seeds this is a rough screen, not a test: a real effect of the size of the seed noise needs more seeds.
""")

code(r"""
CLAIMS = [  # (method, reference it should beat, who claims it)
    ("kd", "scratch", "Hinton 2015: soft targets carry more information per image than hard labels"),
    ("dkd", "kd", "Zhao 2022: decoupling TCKD and NCKD beats classic KD"),
    ("ssld", "kd", "Cui 2021: unlabeled images mined by the teacher add to what distillation on labels gives"),
    ("dml", "scratch", "Zhang 2018: each peer beats the same network trained alone"),
    ("fitnet", "scratch", "Romero 2015: hints from the teacher's features help a thin student"),
    ("ofd", "fitnet", "Heo 2019: pre-ReLU features, margin and partial L2 beat plain hints"),
    ("ofd", "kd", "Heo 2019: OFD beats response-based KD"),
    ("ofd+kd", "ofd", "lesson 04 (feature + response): the two losses add up"),
    ("udml", "dml", "Du 2021 (PP-OCRv2): a feature loss between the peers improves mutual learning"),
    ("rkd-d", "scratch", "Park 2019: distance-wise relations help"),
    ("rkd-a", "scratch", "Park 2019: angle-wise relations help"),
    ("rkd", "scratch", "Park 2019: both relations help"),
    ("kd+rkd", "kd", "Park 2019: RKD adds to KD"),
]
found = compare.effects(rows, [(m, ref) for m, ref, _ in CLAIMS], labeled=SIZE)
who = {(m, ref): text for m, ref, text in CLAIMS}
print(f"{'method':<8} vs {'reference':<9} | {'Δ (points)':>10} | {'SE':>5} | {'measured':<13} | claim")
for e in found:
    print(f"{e['method']:<8} vs {e['reference']:<9} | {e['delta']:>+10.2f} | {e['se']:>5.2f} | {e['verdict']:<13} | "
          f"{who[(e['method'], e['reference'])]}")
""")

md(r"""
**How to read it.** A claim the measurement agrees with shows as *higher*. *Within noise* means that this
budget cannot tell the two methods apart — not that they are equal. A *lower* is worth a closer look, and
the lessons give the usual suspects:

* **Scale.** The papers distil ResNets and WideResNets on 32×32 colour images or ImageNet; here a 72k-parameter
  ConvNet learns 28×28 gray images of 10 classes. A loss designed for the rich "dark knowledge" of 100 or
  1,000 classes (DKD's β, tuned on CIFAR-100) has less to work with among 10.
* **Budget.** The committed comparison gives every method 400 optimizer steps (50 epochs of 1,000 images;
  the lessons train 60 epochs, 480 steps). FitNet and OFD train their connector from
  scratch within those same steps, while the student is already learning from it.
* **Labels.** The effects the course measured are largest with few labels (lesson 01: KD's gain with 1,000
  labels, none with 60,000). The widget's labeled-size control shows this when the comparison holds several
  sizes.
* **Cost.** DML and U-DML train two students, so they pay twice per step but need no teacher at all; SSLD
  trains on more images per epoch. The right-hand plot puts each gain next to its price.

The committed table above holds the measured numbers for this course's setting; read the direction of each
effect there, and its size against the spread of the seeds.

**What was measured.** The committed comparison: `python -m kd_lab compare --seeds 3 --labeled 1000
--steps 400` on a 2-core CPU (PyTorch 2.14.1), 39 runs, 23.6 minutes. Against the claims above:

* **Higher, as claimed:** KD over scratch (+3.06 points), SSLD over scratch (+1.75, with the `first20k`
  teacher and mined unlabeled images), OFD + KD over OFD (+2.49).
* **Within noise:** DML against scratch (+0.12), OFD against FitNet (−0.05), DKD against scratch (−1.13, with
  a large spread: 80.54 to 84.20 %).
* **Lower, against the claims:** DKD against KD (−4.18; its β = 8 comes from CIFAR-100), SSLD against KD
  (−1.31; SSLD's teacher saw only a third of the images and is 2 points weaker than KD's), OFD against KD
  (−3.40), OFD + KD against KD (−0.91), FitNet against scratch (−0.29), U-DML against DML (−3.52, at
  λ_F = 1), and every RKD variant (RKD-D −2.66, RKD-A −4.13, RKD-DA −6.59 against scratch; KD + RKD −5.99
  against KD, at the paper's weights 25 and 50).

The lessons ran the same methods for 480 steps. Most effects point the same way there; two shrink here:
OFD was 1.0 point above scratch and 0.75 above FitNet (lesson 04) and is level with both at 400 steps —
its connector needs the steps — and two `student` peers trained with DML were 0.8 above the student alone
(lesson 03) against +0.12 here. On this small problem only the response-based signals (KD, SSLD, and
OFD with KD) gain clearly; the feature and relation losses need either their weights retuned or a larger
problem. Cost: KD triples the time of a scratch run (the teacher's forward pass), OFD and OFD + KD take
5.5 times as long, DML and U-DML twice.
""")

md(r"""
## 7. The cost of one training step

The comparison measures the cost of whole runs. The benchmark below isolates the training step: one epoch of
every method on the same images, batch size and device, after a warm-up run, as images per second and
milliseconds per step, with the ratio to `scratch` measured in the same process. The same table comes from
`python -m kd_lab bench --methods`. (Quick mode times only the methods of the quick comparison, on 128
images.)
""")

code(r"""
shown = list(dict.fromkeys(r["method"] for r in rows))
steps = bench.method_steps(shown, DEVICE, n_images=128 if QUICK else None)
print(bench.format_method_table(steps))
""")

md(r"""
## 8. Exercises

Each exercise has a self-check that tells you what is right or what is wrong. Replace the
`raise NotImplementedError` lines with your code and run the cell again.

**Exercise 1 — mean ± std from the rows.** Write `my_seed_summary(rows, method)`: the mean and the *sample*
standard deviation (divide by $n-1$) of the test accuracy of the runs of `method` whose status is `"ok"`.
Rows are dicts as `compare.read_rows` returns them (keys `method`, `seed`, `status`, `accuracy`, …; a failed
run's accuracy is `None`).
""")

code(r"""
def my_seed_summary(rows, method):
    raise NotImplementedError  # your code here

exercises.check_seed_summary(my_seed_summary)  # NBVAL_CHECK_OUTPUT
""")

md(r"""
When your check passes, compare your summary of `kd` with the table of section 4:
""")

code(r"""
try:
    mean, std = my_seed_summary(rows, "kd")
    print(f"kd: {mean:.2f} ± {std:.2f} % over the ok runs of this comparison")
except (NotImplementedError, TypeError, ValueError, ZeroDivisionError) as err:
    print(f"not yet: {type(err).__name__} {err}")
""")

md(r"""
**Exercise 2 — the Pareto front.** A method is on the Pareto front of accuracy and cost when no other method
is at least as accurate *and* at least as cheap, and strictly better on one of the two. Write
`my_pareto_front(points)` for `points = {method: (accuracy, cost)}`; return the names on the front. Which
methods of this comparison would you never pick, whatever your budget?
""")

code(r"""
def my_pareto_front(points):
    raise NotImplementedError  # your code here

exercises.check_pareto_front(my_pareto_front)  # NBVAL_CHECK_OUTPUT
""")

code(r"""
points = {r["method"]: (r["acc_mean"], r["wall_s"]) for r in records if r["labeled"] == SIZE and r["n"] > 0}
try:
    front = sorted(my_pareto_front(points), key=lambda m: points[m][1])
    print(f"on the front (cheapest first): {front}; beaten on both: {sorted(set(points) - set(front))}")
except (NotImplementedError, TypeError, ValueError) as err:
    print(f"not yet: {type(err).__name__} {err}")
""")

md(r"""
**Exercise 3 (open) — another budget.** Run a comparison of your own from a terminal, e.g. KD against DKD with
fewer and more labels, and load it here with `compare.read_rows`:

```bash
python -m kd_lab compare --methods scratch,kd,dkd --labeled 200,1000,4000 --seeds 3 --out results/mine.csv
```

Does the gap between KD and scratch shrink as the labeled set grows, as lesson 01 found?
""")

md(r"""
## 9. Summary

* A comparison is fair when only the method changes: same labeled images, student, epochs, optimizer and
  seeds. `python -m kd_lab compare` does this for every registered method, one CSV row per run, and resumes
  after an interruption.
* Report mean ± standard deviation over seeds, and call an effect only when it stands out of the seed noise.
* Accuracy has a price: a teacher's forward pass per batch, a second student, a connector, more images per
  epoch. The accuracy–cost plot and its Pareto front show which methods are worth their price on a budget.
* The direction of a paper's claim can be checked on a small problem; its size cannot, and a method tuned for
  ImageNet may not help a 72k-parameter student on Fashion-MNIST.

**Reproduce the committed comparison:** `python -m kd_lab compare --seeds 3 --labeled 1000` (add
`--device cuda` on a GPU), then rerun this notebook; `python -m kd_lab bench --methods` for the step table.

**References.** G. Hinton, O. Vinyals, J. Dean, *Distilling the Knowledge in a Neural Network*, 2015.
B. Zhao, Q. Cui, R. Song, Y. Qiu, J. Liang, *Decoupled Knowledge Distillation*, CVPR 2022.
C. Cui, R. Guo, Y. Du et al., *Beyond Self-Supervision: A Simple Yet Effective Network Distillation
Alternative to Improve Backbones*, 2021. Y. Zhang, T. Xiang, T. M. Hospedales, H. Lu, *Deep Mutual Learning*,
CVPR 2018. A. Romero, N. Ballas, S. E. Kahou, A. Chassang, C. Gatta, Y. Bengio, *FitNets: Hints for Thin
Deep Nets*, ICLR 2015. B. Heo, J. Kim, S. Yun, H. Park, N. Kwak, J. Y. Choi, *A Comprehensive Overhaul of
Feature Distillation*, ICCV 2019. Y. Du, C. Li, R. Guo et al., *PP-OCRv2: Bag of Tricks for Ultra Lightweight
OCR System*, 2021. W. Park, D. Kim, Y. Lu, M. Cho, *Relational Knowledge Distillation*, CVPR 2019.
""")


if __name__ == "__main__":
    LESSON.write()
