"""Feature-based methods (lesson 04): the student imitates the teacher's (or a peer's) feature maps.

* :class:`FeatureKD` — the shared wiring: a connector per distilled stage, CE (+ KD) + a weighted stage loss.
* :class:`FitNet` — hints: MSE between the connected student feature and the teacher's.
* :class:`OFD` — the overhaul of feature distillation: pre-ReLU features, margin, partial L2. Preset
  ``ofd+kd``: OFD with Hinton's KD term.
* :class:`UDML` — PP-OCRv2's U-DML: DML between same-architecture peers plus an L2 between their features.
"""
from __future__ import annotations

import copy
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .. import losses
from ..models import Connector
from ._base import Knob, Method, _check_temperature, _check_weight, preset, register, register_preset
from .mutual import DML, DML_KNOBS
from .response import TEMPERATURE_KNOB

__all__ = ["parse_stages", "FeatureKD", "FitNet", "OFD", "OFDKD", "UDML", "FEATURE_KNOBS", "TAPS", "TEACHER_BN"]

LESSON = "04_feature_overhaul"
TAPS = ("pre", "post")              # where a stage's feature is read: before its last ReLU, or after it
TEACHER_BN = ("eval", "train")      # OFD: the teacher's BatchNorm during distillation


def parse_stages(stages, n: int) -> tuple[int, ...]:
    """``"all"``, ``"last"``, an index, ``"0,2"`` or a list of indices -> sorted distinct stages in 0..n−1."""
    given = stages
    if isinstance(stages, str):
        text = stages.strip().lower()
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if text in ("all", "last"):
            stages = list(range(n)) if text == "all" else [n - 1]
        elif parts and all(p.isdigit() for p in parts):
            stages = [int(p) for p in parts]
    elif isinstance(stages, int) and not isinstance(stages, bool):
        stages = [stages]
    ok = isinstance(stages, (list, tuple)) and all(isinstance(i, int) and not isinstance(i, bool) for i in stages)
    if not ok or not stages or any(not 0 <= i < n for i in stages):
        raise ValueError(f"stages must name at least one stage in 0..{n - 1} ('all', 'last', an index, a "
                         f"comma-separated list such as '0,2', or a list of indices), got {given!r}")
    return tuple(sorted(set(stages)))


def _conv_taps(model: nn.Module, who: str) -> list[dict]:
    """``model.feature_info`` of a ConvNet (stage taps (B, C, H, W)); a clear error for anything else."""
    info = getattr(model, "feature_info", None)
    if not info or any(stage.get("stride") is None for stage in info):
        raise ValueError(f"the {who} ({type(model).__name__}) has no convolutional stage taps; feature distillation "
                         f"needs ConvNet presets (teacher, teacher-small, student, student-tiny), not an MLP")
    return info


FEATURE_KNOBS = {
    "feature_weight": Knob(1e-5, 1e2, 0.25, "λ_F (weight of the feature loss, log scale)", scale="log"),
    "stages": Knob(0, 2, 1, "stages to distil", scale="multiple", choice_label="stage {}",
                   parse=partial(parse_stages, n=3)),      # the course's ConvNet presets have 3 stages
    "kd_weight": Knob(0.0, 1.0, 0.05, "κ (weight of KD; CE gets 1 − κ)"),
    "temperature": TEMPERATURE_KNOB,
}


class FeatureKD(Method):
    """Shared wiring of the feature-distillation methods: a trainable :class:`~kd_lab.models.Connector`
    (1×1 conv + BN, student channels -> teacher channels) per distilled stage, and

        L = (1 − κ)·CE(s, y) + κ·T²·KL(p_t ‖ p_s) + λ_F · Σ_{i ∈ stages} w_i · L_i(connector_i(s_i), t_i)

    with s_i, t_i the pre-ReLU taps of stage i (:meth:`stage_loss` gives w_i·L_i). κ = ``kd_weight``,
    λ_F = ``feature_weight``, ``stages`` = ``"all"``, ``"last"``, an index or ``"0,2"``. Terms ``ce``, ``kd`` and
    ``<term>_<i>`` per stage; a term whose weight is 0 is left out. Teacher and student must have as many
    stages, with the same strides (the course's ConvNet presets all do). Ablations of the paper (Heo et al.
    2019, Table 6): ``tap="post"`` reads both taps after their ReLU (s_i, t_i -> ReLU(s_i), ReLU(t_i)),
    ``connector_bn=False`` drops the connector's BatchNorm (a 1×1 conv with a bias).
    """

    needs_teacher = True
    term = "feat"
    stage_note = ""                 # what else weighs a stage term, for the legends (OFD: its stage weight w_i)
    live_metrics = tuple(f"feat_dist_{i}" for i in range(3))

    def __init__(self, student, teacher=None, feature_weight: float = 1.0, stages="all", kd_weight: float = 0.0,
                 temperature: float = 4.0, tap: str = "pre", connector_bn: bool = True):
        super().__init__(student, teacher)
        if tap not in TAPS:
            raise ValueError(f"tap must be one of {TAPS} (before or after the stage's last ReLU), got {tap!r}")
        if not isinstance(connector_bn, bool):
            raise ValueError(f"connector_bn must be true or false, got {connector_bn!r}")
        self.tap, self.connector_bn = tap, connector_bn
        self.feature_weight = _check_weight("feature_weight", feature_weight)
        self.kd_weight = _check_weight("kd_weight", kd_weight, 0.0, 1.0)
        self.temperature = _check_temperature(temperature)
        s_info, t_info = _conv_taps(student, "student"), _conv_taps(teacher, "teacher")
        if [i["stride"] for i in s_info] != [i["stride"] for i in t_info]:
            raise ValueError(f"student stages {s_info} and teacher stages {t_info} do not pair up: feature "
                             f"distillation needs as many stages with the same strides")
        self.stages = parse_stages(stages, len(t_info))
        device = next(student.parameters()).device
        self.connectors = nn.ModuleDict({str(i): Connector(s_info[i]["channels"], t_info[i]["channels"],
                                                           bn=connector_bn).to(device) for i in self.stages})

    def options(self):
        return {"feature_weight": self.feature_weight, "stages": ",".join(map(str, self.stages)),
                "kd_weight": self.kd_weight, "temperature": self.temperature, "tap": self.tap,
                "connector_bn": self.connector_bn}

    def taps(self, features) -> list[torch.Tensor]:
        """The stage taps a loss reads from ``model(x, features=True)``: pre-ReLU, or after the ReLU (``tap``)."""
        return list(features.taps) if self.tap == "pre" else [F.relu(t) for t in features.taps]

    def term_weights(self):
        return {"ce": ("(1−κ)", 1 - self.kd_weight, ""), "kd": ("κ", self.kd_weight, ""),
                f"{self.term}_": ("λ_F", self.feature_weight, self.stage_note)}

    def stage_loss(self, i: int, projected: torch.Tensor, teacher_tap: torch.Tensor) -> torch.Tensor:
        """w_i·L_i of stage ``i`` for the student's connected tap and the teacher's, both (B, C_t, H, W)."""
        raise NotImplementedError

    def loss_terms(self, x, y, phase=None):
        s = self.student(x, features=True)          # logits (B, K); taps: per stage (B, C_s, H, W)
        t = self.teacher_forward(x, features=True)  # logits (B, K); taps: per stage (B, C_t, H, W), no grad
        terms = {}
        if self.kd_weight < 1:
            terms["ce"] = (1 - self.kd_weight) * F.cross_entropy(s.logits, y)
        if self.kd_weight > 0:
            terms["kd"] = self.kd_weight * losses.kd_loss(s.logits, t.logits, self.temperature)
        if self.feature_weight > 0:
            s_taps, t_taps = self.taps(s), self.taps(t)
            for i in self.stages:
                projected = self.connectors[str(i)](s_taps[i])                   # (B, C_t, H, W)
                terms[f"{self.term}_{i}"] = self.feature_weight * self.stage_loss(i, projected, t_taps[i])
        return terms

    @torch.no_grad()
    def epoch_metrics(self, test) -> dict[str, float]:
        """``feat_dist_i`` per distilled stage on a fixed probe, the first ``probe_size`` test images (eval mode):
        ‖ReLU(connector_i(s_i)) − ReLU(t_i)‖² / ‖ReLU(t_i)‖² (:func:`kd_lab.features.relative_distance`)."""
        if test is None or self.teacher is None:
            return {}
        from ..features import relative_distance
        was_training = self.training
        self.eval()
        x = self.probe(test).images()                                                        # (N, C, H, W)
        s_taps, t_taps = self.taps(self.student(x, features=True)), self._teacher_probe(x)
        out = {f"feat_dist_{i}": relative_distance(self.connectors[str(i)](s_taps[i]), t_taps[i]) for i in self.stages}
        self.train(was_training)
        return out

    def target(self, i: int, teacher_tap: torch.Tensor) -> torch.Tensor:
        """What stage ``i``'s loss pulls the connected student tap towards: the teacher's tap (OFD: the tap clipped
        below at the margin, max(t, m))."""
        return teacher_tap

    @torch.no_grad()
    def live_view(self, test):
        """Lesson 04's live view: for the first probe image (``image``, as the networks see it), per distilled stage,
        the teacher's target (:meth:`target`) and the student's connector output, (C_t, H, W) each
        (:func:`kd_lab.viz.plot_feature_view`)."""
        was_training = self.training
        self.eval()
        probe = self.probe(test)
        x = probe.images()
        s_taps, t_taps = self.taps(self.student(x[:1], features=True)), self._teacher_probe(x)
        stages = {i: {"target": self.target(i, t_taps[i][:1])[0].float().cpu(),
                      "student": self.connectors[str(i)](s_taps[i])[0].float().cpu()} for i in self.stages}
        self.train(was_training)
        return {"kind": "features", "stages": stages, "method": self.name, "label": int(probe.y[0]),
                "classes": list(test.classes), "image": x[0].float().cpu()}

    def _teacher_probe(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The frozen teacher's taps of the probe images (as :meth:`taps` reads them), computed once per probe."""
        return self.teacher_on_probe(x, lambda: self.taps(self.teacher(x, features=True)))


@register("fitnet", lesson=LESSON, knobs=FEATURE_KNOBS)
class FitNet(FeatureKD):
    """Romero, Ballas, Kahou, Chassang, Gatta, Bengio (2015, ICLR), "FitNets: Hints for Thin Deep Nets": the
    student's *guided* layer, through a regressor, imitates the teacher's *hint* layer by mean squared error,

        L = CE(s, y) + λ_F · Σ_{i ∈ stages} MSE(regressor_i(s_i), t_i)       (:func:`kd_lab.losses.fitnet_loss`)

    Here on the pre-ReLU taps (the same places OFD uses) with OFD's 1×1 conv + BN connector as regressor,
    trained in one stage with CE (the paper first pre-trains up to the guided layer on the hint, then runs
    KD). Default: the middle stage, as the paper's hint. Terms ``ce`` and ``fitnet_<i>``.
    """

    term = "fitnet"

    def __init__(self, student, teacher=None, feature_weight: float = 1.0, stages="1", kd_weight: float = 0.0,
                 temperature: float = 4.0, tap: str = "pre", connector_bn: bool = True):
        super().__init__(student, teacher, feature_weight, stages, kd_weight, temperature, tap, connector_bn)

    def stage_loss(self, i, projected, teacher_tap):
        return losses.fitnet_loss(projected, teacher_tap)


@register("ofd", lesson=LESSON, knobs=FEATURE_KNOBS)
class OFD(FeatureKD):
    """Heo, Kim, Yun, Park, Kwak, Choi (2019, ICCV), "A Comprehensive Overhaul of Feature Distillation":
    the teacher's pre-ReLU feature t_i, clipped below at the per-channel margin m (:func:`kd_lab.losses.ofd_margin`
    of the BatchNorm before the ReLU), against the student's pre-ReLU feature through a 1×1 conv + BN
    connector, by a partial L2 that skips where both would be 0 after the ReLU:

        L = (1 − κ)·CE + κ·KD + λ_F · Σ_{i ∈ stages} 1/2^(n−i−1) · Σ_{c,h,w} mask·(connector_i(s_i) − max(t_i, m))²

    averaged over the batch (:func:`kd_lab.losses.ofd_loss`); n stages, the last weighted 1, each earlier one
    half the next. λ_F = 1e-3 is the paper's CIFAR setting (its code adds the sum / batch / 1000).
    The margins are computed once from the frozen teacher. Terms ``ce`` and ``ofd_<i>``.

    The ablations of the paper's Table 6 as options (defaults: the full method): ``margin=False`` (m = 0, the
    target is ReLU(t)), ``partial=False`` (plain L2 to max(t, m)), ``tap="post"`` (after the ReLU),
    ``stages="last"``, ``connector_bn=False``; and ``teacher_bn="train"``, the teacher's BatchNorm in train mode
    (batch statistics, as the official CIFAR code runs it; a copy of the teacher, so the one passed in is not
    changed) instead of its stored statistics.
    """

    stage_note = "·w_i"

    term = "ofd"

    def __init__(self, student, teacher=None, feature_weight: float = 1e-3, stages="all", kd_weight: float = 0.0,
                 temperature: float = 4.0, tap: str = "pre", connector_bn: bool = True, margin: bool = True,
                 partial: bool = True, teacher_bn: str = "eval"):
        for name, value in (("margin", margin), ("partial", partial)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {value!r}")
        if teacher_bn not in TEACHER_BN:
            raise ValueError(f"teacher_bn must be one of {TEACHER_BN}, got {teacher_bn!r}")
        if teacher_bn == "train" and teacher is not None:
            teacher = copy.deepcopy(teacher)            # its BN statistics will move: never the caller's teacher
        super().__init__(student, teacher, feature_weight, stages, kd_weight, temperature, tap, connector_bn)
        self.use_margin, self.partial, self.teacher_bn = margin, partial, teacher_bn
        bns = teacher.preact_bns()
        self.stage_weights = {i: 0.5 ** (len(bns) - i - 1) for i in self.stages}
        for i in self.stages:
            m = losses.ofd_margin(bns[i])                                           # (C_t,), float32
            self.register_buffer(f"margin_{i}", m if margin else torch.zeros_like(m))

    def options(self):
        return {**super().options(), "margin": self.use_margin, "partial": self.partial,
                "teacher_bn": self.teacher_bn}

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.teacher_bn == "train":
            self.teacher.train()                        # batch statistics in the teacher's BN (no gradient still)
        return self

    def margin(self, i: int) -> torch.Tensor:
        return getattr(self, f"margin_{i}")

    def stage_loss(self, i, projected, teacher_tap):
        return self.stage_weights[i] * losses.ofd_loss(projected, teacher_tap, self.margin(i), self.partial)

    def target(self, i, teacher_tap):
        return losses.ofd_target(teacher_tap, self.margin(i))


# Default-only variant: a preset of OFD.
register_preset("ofd+kd", "ofd", kd_weight=0.9,
                doc="OFD + Hinton's KD: KD's terms (1 − κ)·CE + κ·T²·KL with κ = kd_weight = 0.9, T = 4, plus "
                    "OFD's stage terms (Heo et al. 2019; Hinton et al. 2015).")
OFDKD = preset("ofd+kd")        # the name it had as a subclass, kept as a constructor


@register("udml", lesson=LESSON, knobs={
    **DML_KNOBS,
    "feature_weight": FEATURE_KNOBS["feature_weight"],
    "stages": FEATURE_KNOBS["stages"]})
class UDML(DML):
    """PP-OCRv2's Unified-Deep Mutual Learning, Du, Li, Guo, Cui, Liu, Zhou, Lu, Yang, Liu, Hu, Yu, Ma (2021),
    "PP-OCRv2: Bag of Tricks for Ultra Lightweight OCR System" (arXiv:2109.03144): :class:`DML` between peers of
    the *same* architecture, plus an L2 between their features (no connector needed; the paper's extra fully
    connected head of its text recognizer is not used here):

        L_k = CE(z_k, y) + w/(K−1)·Σ_{j≠k} T²·KL(p_j ‖ p_k) + λ_F/(K−1)·Σ_{j≠k} Σ_{i ∈ stages} MSE(f_k^i, sg(f_j^i))

    f^i the pre-ReLU tap of stage i, sg = detached, as DML detaches the peers' logits. With the detach, the
    two peers' terms together have the gradient of one shared, undetached λ_F·MSE(f_0, f_1) (what PaddleOCR
    computes); the detach also makes the alternating mode work. Default stage: the last (PP-OCRv2 compares
    the backbones' outputs). Terms ``ce_k``, ``kl_k``, ``feat_k`` per learning peer; ``symmetric=True``: the
    response part as PaddleOCR computes it (:class:`DML`'s ``kl_j_k``, undetached).
    """

    def __init__(self, student, teacher=None, k: int = 2, peers: str = "student", kl_weight: float = 1.0,
                 temperature: float = 1.0, mode: str = "simultaneous", feature_weight: float = 1.0, stages="last",
                 symmetric: bool = False):
        super().__init__(student, teacher, k, peers, kl_weight, temperature, mode, symmetric)
        self.feature_weight = _check_weight("feature_weight", feature_weight)
        infos = [getattr(peer, "feature_info", None) for peer in self.peers]
        if not infos[0] or any(info != infos[0] for info in infos[1:]):
            raise ValueError(f"U-DML compares the peers' features without a connector, so every peer needs the same "
                             f"architecture; got peers={','.join(self.peer_names)!r}")
        self.stages = parse_stages(stages, len(infos[0]))

    def options(self):
        return {**super().options(), "feature_weight": self.feature_weight, "stages": ",".join(map(str, self.stages))}

    def loss_terms(self, x, y, phase=None):
        """Every learner's ``ce_k``, ``kl_k``, ``feat_k`` (phase None), or peer ``phase``'s against the others now."""
        if phase is None:
            outs, learners = [peer(x, features=True) for peer in self.peers], self.learners()
        else:
            outs, learners = self._outputs_for(phase, x), [phase]
        logits = [o.logits for o in outs]
        terms = self._symmetric_terms(logits, y) if self.symmetric else {}
        for k in learners:
            if not self.symmetric:
                terms.update(self._peer_terms(k, logits, y))
            terms[f"feat_{k}"] = self._feature_term(k, [o.taps for o in outs])
        return terms

    def _outputs_for(self, k: int, x: torch.Tensor):
        """Peer k's outputs with gradient; the others' recomputed now, without."""
        if k not in self.learners():
            raise ValueError(f"phase must be a training peer's index in {self.learners()}, got {k!r}")
        with torch.no_grad():
            outs = [None if j == k else peer(x, features=True) for j, peer in enumerate(self.peers)]
        outs[k] = self.peers[k](x, features=True)
        return outs

    def term_weights(self):
        return {**super().term_weights(), "feat_": ("λ_F/(K−1)", self.feature_weight / (self.k - 1), "")}

    def _feature_term(self, k: int, taps: list[list[torch.Tensor]]) -> torch.Tensor:
        """λ_F/(K−1)·Σ_{j≠k} Σ_i MSE(f_k^i, f_j^i), the peers detached (inside :func:`losses.fitnet_loss`)."""
        total = sum(losses.fitnet_loss(taps[k][i], taps[j][i]) for j in range(self.k) if j != k for i in self.stages)
        return self.feature_weight * total / (self.k - 1)

    def epoch_metrics(self, test) -> dict[str, float]:
        """DML's peer metrics, and ``feat_dist_i``: the relative distance after the ReLU between peer 0's and
        peer 1's stage-i taps on the first ``probe_size`` test images
        (:func:`kd_lab.features.peer_feature_distance`)."""
        if test is None:
            return {}
        from ..features import peer_feature_distance
        return {**super().epoch_metrics(test), **peer_feature_distance(self.peers, self.probe(test), self.stages)}
