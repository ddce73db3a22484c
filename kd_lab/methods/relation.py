"""Relation-based methods (lesson 05): the student copies the structure among a batch's embeddings.

* :class:`RKD` — Relational Knowledge Distillation: distances (RKD-D) and angles (RKD-A) between the
  pooled embeddings of a batch, optionally with Hinton's KD term.
* Presets of RKD: ``rkd-d`` (distance only), ``rkd-a`` (angle only), ``kd+rkd`` (KD + both).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import losses
from ._base import Knob, Method, _check_temperature, _check_weight, preset, register, register_preset
from .response import TEMPERATURE_KNOB

__all__ = ["RKD", "RKDDistance", "RKDAngle", "KDRKD"]

LESSON = "05_rkd"
LIVE_BATCH = 40                                 # probe images of the live view's relation matrices


@register("rkd", lesson=LESSON, knobs={
    "distance_weight": Knob(0.0, 100.0, 1.0, "λ_D (weight of RKD distance)"),
    "angle_weight": Knob(0.0, 100.0, 1.0, "λ_A (weight of RKD angle)"),
    "kd_weight": Knob(0.0, 1.0, 0.05, "κ (weight of KD; CE gets 1 − κ)"),
    "temperature": TEMPERATURE_KNOB})
class RKD(Method):
    """Relational Knowledge Distillation, Park, Kim, Lu, Cho (2019, CVPR): the student copies the
    *structure* of the teacher's pooled embeddings over a batch, pairwise distances (RKD-D) and triplet
    angles (RKD-A), not each sample's output. Hinton's KD term can be added, mixed with CE like :class:`KD`:

        L = (1 − κ)·CE(s, y) + κ·T²·KL(p_t ‖ p_s) + λ_D·L_RKD-D(e_s, e_t) + λ_A·L_RKD-A(e_s, e_t)

    κ = ``kd_weight`` (0: no KD term, plain CE), λ_D = ``distance_weight`` and λ_A = ``angle_weight`` (the
    paper's 25 and 50 on the pooled embedding). Terms ``ce``, ``kd``, ``rkd_d``, ``rkd_a``; a term whose
    weight is 0 is left out (and not computed).
    """

    needs_teacher = True
    live_metrics = ("relation_agreement",)

    def __init__(self, student, teacher=None, distance_weight: float = 25.0, angle_weight: float = 50.0,
                 kd_weight: float = 0.0, temperature: float = 4.0):
        super().__init__(student, teacher)
        self.distance_weight = _check_weight("distance_weight", distance_weight)
        self.angle_weight = _check_weight("angle_weight", angle_weight)
        self.kd_weight = _check_weight("kd_weight", kd_weight, 0.0, 1.0)
        self.temperature = _check_temperature(temperature)
        self.teacher_outputs = (("logits",) if self.kd_weight > 0 else ()) + (
            ("embedding",) if self.distance_weight > 0 or self.angle_weight > 0 else ())

    def options(self):
        return {"distance_weight": self.distance_weight, "angle_weight": self.angle_weight,
                "kd_weight": self.kd_weight, "temperature": self.temperature}

    def term_weights(self):
        return {"ce": ("(1−κ)", 1 - self.kd_weight, ""), "kd": ("κ", self.kd_weight, ""),
                "rkd_d": ("λ_D", self.distance_weight, ""), "rkd_a": ("λ_A", self.angle_weight, "")}

    def loss_terms(self, x, y, phase=None):
        s = self.student(x, features=True)          # logits (B, K), embedding (B, D_s)
        t = self.teacher_output(x)                  # logits (B, K), embedding (B, D_t), no grad (maybe cached)
        weighted = {                                # term -> (weight, its unweighted loss, computed lazily)
            "ce": (1 - self.kd_weight, lambda: F.cross_entropy(s.logits, y)),
            "kd": (self.kd_weight, lambda: losses.kd_loss(s.logits, t.logits, self.temperature)),
            "rkd_d": (self.distance_weight, lambda: losses.rkd_distance_loss(s.embedding, t.embedding)),
            "rkd_a": (self.angle_weight, lambda: losses.rkd_angle_loss(s.embedding, t.embedding)),
        }
        return {name: weight * loss() for name, (weight, loss) in weighted.items() if weight > 0}

    def epoch_metrics(self, test) -> dict[str, float]:
        """``relation_agreement``: correlation of the student's and the teacher's normalised distance matrices
        on a fixed probe, the first ``probe_size`` test images (:func:`kd_lab.analysis.relation_agreement`)."""
        if test is None or self.teacher is None:
            return {}
        from ..analysis import embeddings, relation_agreement
        probe = self.probe(test)
        return {"relation_agreement": relation_agreement(embeddings(self.student, probe), self._teacher_probe(probe))}

    def live_view(self, test):
        """Lesson 05's live view: the student's and the teacher's embeddings of ``LIVE_BATCH`` probe images (the
        first of :meth:`probe`), sorted by class (:func:`kd_lab.viz.plot_relation_view` draws their relations)."""
        from ..analysis import embeddings
        probe = self.probe(test)
        n = min(LIVE_BATCH, len(probe))
        labels = probe.y[:n].cpu()
        order = labels.argsort(stable=True)                   # class blocks along the diagonal
        student = embeddings(self.student, probe.subset(torch.arange(n, device=probe.device)))      # (n, D_s)
        teacher = self._teacher_probe(probe)[:n]                                                   # (n, D_t)
        return {"kind": "relations", "student": student[order], "teacher": teacher[order], "labels": labels[order],
                "classes": list(test.classes), "anchor": 0}

    def _teacher_probe(self, probe) -> torch.Tensor:
        """The frozen teacher's probe embeddings (N, D_t), computed once per probe."""
        from ..analysis import embeddings
        return self.teacher_on_probe(probe.x, lambda: embeddings(self.teacher, probe))


# Default-only variants: presets of RKD (Park et al. 2019), placed before it in the course order.
register_preset("rkd-d", "rkd", angle_weight=0.0, before="rkd",
                doc="RKD-D: the distance-wise loss alone (λ_A = 0), Park et al. 2019.")
register_preset("rkd-a", "rkd", distance_weight=0.0, before="rkd",
                doc="RKD-A: the angle-wise loss alone (λ_D = 0), Park et al. 2019.")
register_preset("kd+rkd", "rkd", kd_weight=0.9,
                doc="KD + RKD-DA: KD's terms (1 − κ)·CE + κ·T²·KL with κ = 0.9, plus both RKD terms.")

# The names these presets had as subclasses, kept as constructors: RKDDistance(student, teacher, **options).
RKDDistance, RKDAngle, KDRKD = preset("rkd-d"), preset("rkd-a"), preset("kd+rkd")
