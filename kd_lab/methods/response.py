"""Response-based methods (lesson 01): the student learns from the teacher's outputs.

* :class:`Scratch` — the baseline: cross-entropy on the labels, no teacher.
* :class:`KD` — Hinton's knowledge distillation: CE mixed with the KL to the teacher's softened outputs.
* :class:`DKD` — Decoupled KD: KD's target-class and non-target-class parts, weighted apart.
"""
from __future__ import annotations

import torch.nn.functional as F

from .. import losses
from ._base import Knob, Method, _check_temperature, _check_weight, register

__all__ = ["Scratch", "KD", "DKD", "TEMPERATURE_KNOB"]

LESSON = "01_response_kd"
TEMPERATURE_KNOB = Knob(0.5, 20.0, 0.5, "temperature T")      # every method with a softmax temperature


@register("scratch", lesson=LESSON)
class Scratch(Method):
    """The baseline: cross-entropy on the labels, no teacher."""

    def loss_terms(self, x, y, phase=None):
        return {"ce": F.cross_entropy(self.student(x), y)}


@register("kd", lesson=LESSON, knobs={
    "temperature": TEMPERATURE_KNOB,
    "alpha": Knob(0.0, 1.0, 0.05, "α (weight of the KD term; CE gets 1 − α)")})
class KD(Method):
    """Hinton et al. 2015, "Distilling the Knowledge in a Neural Network":
    L = (1 − α)·CE(s, y) + α·T²·KL(softmax(t/T) ‖ softmax(s/T))."""

    needs_teacher = True
    teacher_outputs = ("logits",)

    def __init__(self, student, teacher=None, temperature: float = 4.0, alpha: float = 0.9):
        super().__init__(student, teacher)
        self.temperature = _check_temperature(temperature)
        self.alpha = _check_weight("alpha", alpha, 0.0, 1.0)

    def options(self):
        return {"temperature": self.temperature, "alpha": self.alpha}

    def loss_terms(self, x, y, phase=None):
        s = self.student(x)                         # (B, K)
        t = self.teacher_output(x).logits           # (B, K), no grad (from the cache when fit has one)
        return {"ce": (1 - self.alpha) * F.cross_entropy(s, y),
                "kd": self.alpha * losses.kd_loss(s, t, self.temperature)}


@register("dkd", lesson=LESSON, knobs={
    "alpha": Knob(0.0, 4.0, 0.1, "α (weight of TCKD)"),
    "beta": Knob(0.0, 16.0, 0.5, "β (weight of NCKD)"),
    "temperature": TEMPERATURE_KNOB})
class DKD(Method):
    """Zhao et al. 2022, "Decoupled Knowledge Distillation":
    L = CE(s, y) + α·TCKD + β·NCKD, the target-class and non-target-class parts of KD weighted freely
    (classic KD ties NCKD's weight to the teacher's confidence 1 − p_t[y])."""

    needs_teacher = True
    teacher_outputs = ("logits",)

    def __init__(self, student, teacher=None, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0):
        super().__init__(student, teacher)
        self.alpha = _check_weight("alpha", alpha)
        self.beta = _check_weight("beta", beta)
        self.temperature = _check_temperature(temperature)

    def options(self):
        return {"alpha": self.alpha, "beta": self.beta, "temperature": self.temperature}

    def loss_terms(self, x, y, phase=None):
        s = self.student(x)                         # (B, K)
        t = self.teacher_output(x).logits           # (B, K), no grad (from the cache when fit has one)
        tckd, nckd = losses.dkd_parts(s, t, y, self.temperature)
        return {"ce": F.cross_entropy(s, y), "tckd": self.alpha * tckd, "nckd": self.beta * nckd}
