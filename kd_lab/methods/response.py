"""Response-based methods (lesson 01): the student learns from the teacher's outputs.

* :class:`Scratch` — the baseline: cross-entropy on the labels, no teacher (optionally with label smoothing,
  the classic control for "KD is only a regulariser").
* :class:`KD` — Hinton's knowledge distillation: CE mixed with the KL to the teacher's softened outputs
  (optionally with the teacher's non-target probabilities shuffled: :func:`permute_non_target`).
* :class:`DKD` — Decoupled KD: KD's target-class and non-target-class parts, weighted apart, ramped in.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import losses
from ._base import Knob, Method, _check_temperature, _check_weight, register

__all__ = ["Scratch", "KD", "DKD", "TEMPERATURE_KNOB", "permute_non_target", "logit_view"]

LESSON = "01_response_kd"
TEMPERATURE_KNOB = Knob(0.5, 20.0, 0.5, "temperature T")      # every method with a softmax temperature


@register("scratch", lesson=LESSON)
class Scratch(Method):
    """The baseline: cross-entropy on the labels, no teacher.

    ``label_smoothing`` = ε > 0 trains on the smoothed target (1 − ε)·one_hot(y) + ε/K (Szegedy et al. 2016,
    "Rethinking the Inception Architecture", §7): a teacher-free soft target that spreads ε evenly over all
    classes. Müller, Kornblith, Hinton (2019, "When Does Label Smoothing Help?") and Yuan et al. (2020,
    "Revisiting Knowledge Distillation via Label Smoothing Regularization") use it as the control for KD:
    what a uniform soft target gives, KD's gain does not owe to the teacher's dark knowledge."""

    def __init__(self, student, teacher=None, label_smoothing: float = 0.0):
        super().__init__(student, teacher)
        self.label_smoothing = _check_weight("label_smoothing", label_smoothing, 0.0, 1.0)

    def options(self):
        return {"label_smoothing": self.label_smoothing}

    def loss_terms(self, x, y, phase=None):
        return {"ce": F.cross_entropy(self.student(x), y, label_smoothing=self.label_smoothing)}


LIVE_IMAGES = 3                                             # probe images of the live view


def logit_view(method: Method, test, images: int = LIVE_IMAGES) -> dict:
    """Lesson 01's live view: the student's and the teacher's raw logits (N, K) on the first ``images`` test
    images, their labels and the method's temperature (:func:`kd_lab.viz.plot_logit_view` draws them)."""
    from ..analysis import predict_logits
    probe = test.subset(torch.arange(min(len(test), images), device=test.device))
    teacher = method.teacher_on_probe(probe.x, lambda: predict_logits(method.teacher, probe))
    return {"kind": "logits", "student": predict_logits(method.student, probe), "teacher": teacher,
            "labels": probe.y.cpu(), "classes": list(test.classes), "temperature": method.temperature}


def permute_non_target(logits: torch.Tensor, targets: torch.Tensor, generator=None) -> torch.Tensor:
    """``logits`` (B, K) with each row's non-target entries shuffled by its own random permutation; the target
    entry stays. The softmax of the result at any temperature is the teacher's distribution with its non-target
    probabilities permuted: the target probability (and so the confidence) kept, the *ranking* of the wrong
    classes — which ones the teacher finds similar, Hinton's dark knowledge — destroyed. KD from these is the
    control of Yuan et al. (2020) and Müller et al. (2019)."""
    b, k = logits.shape
    rows = torch.arange(b, device=logits.device)
    keys = torch.rand(b, k, device=logits.device, generator=generator)
    keys[rows, targets] = -1.0                                  # the target sorts first, the others at random
    shuffled = keys.argsort(dim=1)                              # (B, K): [y, non-targets in a random order]
    ordered = torch.arange(k, device=logits.device).float().expand(b, k).clone()
    ordered[rows, targets] = -1.0
    ordered = ordered.argsort(dim=1)                            # (B, K): [y, non-targets in their order]
    return logits.scatter(1, ordered, logits.gather(1, shuffled))


@register("kd", lesson=LESSON, knobs={
    "temperature": TEMPERATURE_KNOB,
    "alpha": Knob(0.0, 1.0, 0.05, "α (weight of the KD term; CE gets 1 − α)")})
class KD(Method):
    """Hinton et al. 2015, "Distilling the Knowledge in a Neural Network":
    L = (1 − α)·CE(s, y) + α·T²·KL(softmax(t/T) ‖ softmax(s/T)).

    ``permute_non_target=True`` is a control, not a method: each step shuffles every sample's non-target
    teacher probabilities (:func:`permute_non_target`), keeping the teacher's confidence but not which wrong
    classes it finds likely."""

    needs_teacher = True
    teacher_outputs = ("logits",)

    def __init__(self, student, teacher=None, temperature: float = 4.0, alpha: float = 0.9,
                 permute_non_target: bool = False):
        super().__init__(student, teacher)
        self.temperature = _check_temperature(temperature)
        self.alpha = _check_weight("alpha", alpha, 0.0, 1.0)
        if not isinstance(permute_non_target, bool):
            raise ValueError(f"permute_non_target must be True or False, got {permute_non_target!r}")
        self.permute_non_target = permute_non_target

    def options(self):
        return {"temperature": self.temperature, "alpha": self.alpha, "permute_non_target": self.permute_non_target}

    def term_weights(self):
        return {"ce": ("(1−α)", 1 - self.alpha, ""), "kd": ("α", self.alpha, "")}

    def loss_terms(self, x, y, phase=None):
        s = self.student(x)                         # (B, K)
        t = self.teacher_output(x).logits           # (B, K), no grad (from the cache when fit has one)
        if self.permute_non_target:
            t = permute_non_target(t, y)
        return {"ce": (1 - self.alpha) * F.cross_entropy(s, y),
                "kd": self.alpha * losses.kd_loss(s, t, self.temperature)}

    def live_view(self, test):
        return logit_view(self, test)


@register("dkd", lesson=LESSON, knobs={
    "alpha": Knob(0.0, 4.0, 0.1, "α (weight of TCKD)"),
    "beta": Knob(0.0, 16.0, 0.5, "β (weight of NCKD)"),
    "temperature": TEMPERATURE_KNOB,
    "warmup": Knob(0.0, 0.5, 0.02, "warm-up (fraction of the steps)")})
class DKD(Method):
    """Zhao et al. 2022, "Decoupled Knowledge Distillation":
    L = CE(s, y) + α·TCKD + β·NCKD, the target-class and non-target-class parts of KD weighted freely
    (classic KD ties NCKD's weight to the teacher's confidence 1 − p_t[y]).

    ``warmup`` = w > 0 ramps the DKD terms in linearly over the first fraction w of the run's optimizer steps,
    factor min(progress / w, 1), as the authors' code does (mdistiller ``DKD.forward_train``:
    ``min(epoch / warmup, 1.0)`` with warmup = 20 of 240 epochs on CIFAR-100, 8 %); there β is 8 for most
    CIFAR-100 pairs, 6 or 2 for some, 0.5 on ImageNet. Outside :func:`kd_lab.train.fit` the ramp is at its end."""

    needs_teacher = True
    teacher_outputs = ("logits",)

    def __init__(self, student, teacher=None, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0,
                 warmup: float = 0.0):
        super().__init__(student, teacher)
        self.alpha = _check_weight("alpha", alpha)
        self.beta = _check_weight("beta", beta)
        self.temperature = _check_temperature(temperature)
        self.warmup = _check_weight("warmup", warmup, 0.0, 1.0)

    def options(self):
        return {"alpha": self.alpha, "beta": self.beta, "temperature": self.temperature, "warmup": self.warmup}

    def term_weights(self):
        ramp = " (ramped in)" if self.warmup else ""
        return {"tckd": ("α", self.alpha, ramp), "nckd": ("β", self.beta, ramp)}

    def ramp(self) -> float:
        """The warm-up factor of the DKD terms now: min(progress / warmup, 1); 1 without warm-up or outside fit."""
        if self.warmup == 0 or self.progress is None:
            return 1.0
        return min(self.progress / self.warmup, 1.0)

    def loss_terms(self, x, y, phase=None):
        s = self.student(x)                         # (B, K)
        t = self.teacher_output(x).logits           # (B, K), no grad (from the cache when fit has one)
        tckd, nckd = losses.dkd_parts(s, t, y, self.temperature)
        ramp = self.ramp()
        return {"ce": F.cross_entropy(s, y), "tckd": ramp * self.alpha * tckd, "nckd": ramp * self.beta * nckd}

    def live_view(self, test):
        return logit_view(self, test)
