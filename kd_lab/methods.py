"""Methods: how one training step turns a batch into named loss terms.

A :class:`Method` owns the student, the (frozen) teacher if it has one, and any trainable module of its
own (a connector, a regressor, a peer). ``loss_terms(x, y)`` returns a dict such as
``{"ce": ..., "kd": ...}`` whose values are already weighted: the trainer sums them and logs each one.

Two optional hooks, used by the trainer for every method:

* ``phases()`` — the optimizer steps of one batch (default ``[None]``: one step). For each phase the
  trainer zeroes the gradients, calls ``loss_terms(x, y, phase)``, back-propagates and steps, so a method
  can update its modules one after the other on the same batch (DML's alternating updates). The default
  phase ``None`` is called as ``loss_terms(x, y)``, so two-argument overrides keep working.
* ``epoch_metrics(test)`` — extra numbers for the epoch record whenever test accuracy is measured
  (default ``{}``), e.g. every DML peer's accuracy and their agreement.

Lessons add methods by subclassing :class:`Method` and registering the class in :data:`METHODS`.
"""
from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn

from . import losses
from .analysis import peer_metrics
from .models import PRESETS, Connector, build_model

__all__ = ["Method", "Scratch", "KD", "DKD", "DML", "RKD", "FeatureKD", "FitNet", "OFD", "OFDKD", "UDML", "SSLD",
           "METHODS", "make_method", "method_options", "parse_stages"]


class Method(nn.Module):
    """Base class: a student, an optional frozen teacher, and the loss terms of one step."""

    name = "method"
    needs_teacher = False

    def __init__(self, student: nn.Module, teacher: nn.Module | None = None):
        super().__init__()
        if self.needs_teacher and teacher is None:
            raise ValueError(f"method {self.name!r} needs a teacher; pass teacher=... (see kd_lab.zoo.get_teacher)")
        self.student = student
        self.teacher = teacher
        if teacher is not None:
            teacher.requires_grad_(False)

    def options(self) -> dict:
        """The method's knobs and their values (logged in the History's config)."""
        return {}

    def trainable_parameters(self):
        """Every parameter the optimizer updates: all of this module's, except the teacher's."""
        frozen = {id(p) for p in self.teacher.parameters()} if self.teacher is not None else set()
        return [p for p in self.parameters() if id(p) not in frozen]

    def train(self, mode: bool = True):
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()             # the teacher is never trained, its BN statistics never move
        return self

    @torch.no_grad()
    def teacher_forward(self, x: torch.Tensor, features: bool = False):
        return self.teacher(x, features=features)

    probe_size = 256            # test images of the fixed probe that epoch_metrics measures on (RKD, OFD, U-DML)

    def probe(self, test):
        """The fixed probe of :meth:`epoch_metrics`: the first ``probe_size`` images of ``test``."""
        return test.subset(torch.arange(min(len(test), self.probe_size), device=test.device))

    def teacher_on_probe(self, x: torch.Tensor, compute):
        """``compute()`` — what the frozen teacher gives for the probe images ``x`` — computed once per probe
        and reused at every later measurement (the teacher never changes)."""
        key = (x.device, x.shape, hash(x.cpu().numpy().tobytes()))
        if getattr(self, "_probe_key", None) != key:
            self._probe_key, self._probe_value = key, compute()
        return self._probe_value

    def phases(self) -> list:
        """The optimizer steps of one batch, each passed to ``loss_terms`` as ``phase`` (default: one)."""
        return [None]

    def epoch_metrics(self, test) -> dict[str, float]:
        """Extra numbers for the epoch record, computed on ``test`` when accuracy is measured (default none)."""
        return {}

    def loss_terms(self, x: torch.Tensor, y: torch.Tensor, phase=None) -> dict[str, torch.Tensor]:
        raise NotImplementedError


def _check_weight(name: str, value: float, low: float = 0.0, high: float | None = None) -> float:
    if not isinstance(value, (int, float)) or value < low or (high is not None and value > high):
        allowed = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be a number {allowed}, got {value!r}")
    return float(value)


def _check_temperature(value: float) -> float:
    if not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"temperature must be > 0, got {value!r}")
    return float(value)


class Scratch(Method):
    """The baseline: cross-entropy on the labels, no teacher."""

    name = "scratch"

    def loss_terms(self, x, y, phase=None):
        return {"ce": F.cross_entropy(self.student(x), y)}


class KD(Method):
    """Hinton et al. 2015, "Distilling the Knowledge in a Neural Network":
    L = (1 − α)·CE(s, y) + α·T²·KL(softmax(t/T) ‖ softmax(s/T))."""

    name = "kd"
    needs_teacher = True

    def __init__(self, student, teacher=None, temperature: float = 4.0, alpha: float = 0.9):
        super().__init__(student, teacher)
        self.temperature = _check_temperature(temperature)
        self.alpha = _check_weight("alpha", alpha, 0.0, 1.0)

    def options(self):
        return {"temperature": self.temperature, "alpha": self.alpha}

    def loss_terms(self, x, y, phase=None):
        s = self.student(x)                         # (B, K)
        t = self.teacher_forward(x)                 # (B, K), no grad
        return {"ce": (1 - self.alpha) * F.cross_entropy(s, y),
                "kd": self.alpha * losses.kd_loss(s, t, self.temperature)}


class DKD(Method):
    """Zhao et al. 2022, "Decoupled Knowledge Distillation":
    L = CE(s, y) + α·TCKD + β·NCKD, the target-class and non-target-class parts of KD weighted freely
    (classic KD ties NCKD's weight to the teacher's confidence 1 − p_t[y])."""

    name = "dkd"
    needs_teacher = True

    def __init__(self, student, teacher=None, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0):
        super().__init__(student, teacher)
        self.alpha = _check_weight("alpha", alpha)
        self.beta = _check_weight("beta", beta)
        self.temperature = _check_temperature(temperature)

    def options(self):
        return {"alpha": self.alpha, "beta": self.beta, "temperature": self.temperature}

    def loss_terms(self, x, y, phase=None):
        s = self.student(x)                         # (B, K)
        t = self.teacher_forward(x)                 # (B, K), no grad
        tckd, nckd = losses.dkd_parts(s, t, y, self.temperature)
        return {"ce": F.cross_entropy(s, y), "tckd": self.alpha * tckd, "nckd": self.beta * nckd}


# -------------------------------------------------------------------------------------- DML
DML_MODES = ("simultaneous", "alternating")
_IMAGE_SIZE = {1: 28, 3: 32}     # the course's data: 1x28x28 (Fashion-MNIST, MNIST), 3x32x32 (CIFAR-10)


def _peer_names(peers, k: int) -> list[str]:
    """``"student,student-tiny"`` (or a list of presets) -> ``k`` preset names, cycled when fewer are given."""
    if not isinstance(peers, (str, list, tuple)):
        raise ValueError(f"peers must be comma-separated model presets, got {peers!r}")
    names = [n.strip() for n in peers.split(",")] if isinstance(peers, str) else [str(n) for n in peers]
    unknown = [n for n in names if n not in PRESETS]
    if not names or unknown:
        raise ValueError(f"peers={peers!r} names unknown preset(s) {unknown}; choose from {sorted(PRESETS)}")
    return [names[i % len(names)] for i in range(k)]


def _input_spec(model: nn.Module) -> dict:
    """``in_channels``, ``num_classes`` and ``image_size`` of the data ``model`` was built for (from its layers)."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not layers:
        raise ValueError(f"cannot read the input shape of a {type(model).__name__}: it has no Conv2d or Linear layer")
    first, classes = layers[0], getattr(model, "classifier", layers[-1]).out_features
    if isinstance(first, nn.Conv2d):             # a ConvNet works at any image size; only an MLP peer needs it
        return {"in_channels": first.in_channels, "num_classes": classes,
                "image_size": _IMAGE_SIZE.get(first.in_channels, 28)}
    for channels, size in _IMAGE_SIZE.items():
        if first.in_features == channels * size * size:
            return {"in_channels": channels, "num_classes": classes, "image_size": size}
    raise ValueError(f"cannot tell the image shape from a first layer with {first.in_features} inputs")


def _preset_of(model: nn.Module, spec: dict) -> str | None:
    """The preset whose parameter shapes match ``model`` (built on the meta device: no memory, no RNG)."""
    shapes = [p.shape for p in model.parameters()]
    with torch.device("meta"):
        for name in PRESETS:
            if [p.shape for p in build_model(name, **spec).parameters()] == shapes:
                return name
    return None


def _build_peers(student: nn.Module, names: list[str]) -> list[nn.Module]:
    """Peers 1..K-1 from their presets, for the student's data shape and on its device; checks peer 0."""
    spec = _input_spec(student)
    actual = _preset_of(student, spec)
    if actual != names[0]:
        raise ValueError(f"peer 0 is the student passed in ({actual or type(student).__name__!r}), but peers starts "
                         f"with {names[0]!r}; list the student's preset first (e.g. peers='{actual},{names[0]}') "
                         f"or build the student from {names[0]!r}")
    device = next(student.parameters()).device
    return [build_model(name, **spec).to(device) for name in names[1:]]


class DML(Method):
    """Zhang, Xiang, Hospedales, Lu 2018, "Deep Mutual Learning" (CVPR): K peers teach each other, no teacher.

    Peer k minimises  L_k = CE(z_k, y) + w/(K−1) · Σ_{j≠k} T²·KL(softmax(z_j/T) ‖ softmax(z_k/T)),
    the peers' logits z_j detached (:func:`kd_lab.losses.dml_loss`). Loss terms ``ce_k`` and ``kl_k`` per peer.

    Peer 0 is the ``student`` passed in (the network the trainer evaluates); peers 1..K−1 are built here
    from ``peers``, comma-separated presets cycled to K names, the first naming the student's preset.
    ``mode="simultaneous"``: one forward pass of every peer, one optimizer step for all.
    ``mode="alternating"`` (the paper's Algorithm 1): one phase per peer; phase k recomputes the others'
    predictions (so it sees the peers already updated on this batch) and updates peer k only; those extra
    train-mode forwards also update the other peers' BatchNorm running statistics, K times per batch.
    A ``teacher``, if given, is ignored (DML has none); :meth:`freeze_peer` turns a peer into one.
    """

    name = "dml"
    needs_teacher = False

    def __init__(self, student, teacher=None, k: int = 2, peers: str = "student", kl_weight: float = 1.0,
                 temperature: float = 1.0, mode: str = "simultaneous"):
        super().__init__(student, teacher)
        if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= 4:
            raise ValueError(f"k (the number of peers) must be an integer in 2..4, got {k!r}")
        if mode not in DML_MODES:
            raise ValueError(f"mode must be one of {DML_MODES}, got {mode!r}")
        self.k, self.mode = k, mode
        self.kl_weight = _check_weight("kl_weight", kl_weight)
        self.temperature = _check_temperature(temperature)
        self.peer_names = _peer_names(peers, k)
        self.peers = nn.ModuleList([student, *_build_peers(student, self.peer_names)])
        self.frozen: set[int] = set()

    def options(self):
        extra = {"frozen": sorted(self.frozen)} if self.frozen else {}
        return {"k": self.k, "peers": ",".join(self.peer_names), "kl_weight": self.kl_weight,
                "temperature": self.temperature, "mode": self.mode, **extra}

    def learners(self) -> list[int]:
        """The peers that train (every peer that is not frozen)."""
        return [i for i in range(self.k) if i not in self.frozen]

    def phases(self) -> list:
        return self.learners() if self.mode == "alternating" else [None]

    def freeze_peer(self, index: int, model: nn.Module | None = None, name: str | None = None) -> "DML":
        """Freeze peer ``index`` (1..K−1), optionally replaced by ``model`` (e.g. a trained teacher): no
        gradient, always in eval mode, no loss terms of its own. DML with a frozen peer is KD."""
        if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index < self.k:
            raise ValueError(f"only peers 1..{self.k - 1} can be frozen (peer 0 is the student), got {index!r}")
        base = self.peer_names[index].removesuffix(" (frozen)")
        if model is not None:
            self.peers[index] = model.to(next(self.student.parameters()).device)
            base = name or type(model).__name__
        self.peers[index].requires_grad_(False).eval()
        self.frozen.add(index)
        self.peer_names[index] = f"{base} (frozen)"
        return self

    def trainable_parameters(self):
        frozen = {id(p) for i in self.frozen for p in self.peers[i].parameters()}
        return [p for p in super().trainable_parameters() if id(p) not in frozen]

    def train(self, mode: bool = True):
        super().train(mode)
        for i in self.frozen:
            self.peers[i].eval()            # a frozen peer is a teacher: its BN statistics never move
        return self

    def loss_terms(self, x, y, phase=None):
        """Every learner's terms (phase None), or peer ``phase``'s against the others' current predictions."""
        if phase is None:
            logits, learners = [peer(x) for peer in self.peers], self.learners()     # K x (B, C)
        else:
            logits, learners = self._logits_for(phase, x), [phase]
        terms = {}
        for k in learners:
            terms.update(self._peer_terms(k, logits, y))
        return terms

    def _logits_for(self, k: int, x: torch.Tensor) -> list[torch.Tensor]:
        """Peer k's logits with gradient; the others' recomputed now, without (K x (B, C))."""
        if k not in self.learners():
            raise ValueError(f"phase must be a training peer's index in {self.learners()}, got {k!r}")
        with torch.no_grad():
            logits = [None if j == k else peer(x) for j, peer in enumerate(self.peers)]
        logits[k] = self.peers[k](x)
        return logits

    def _peer_terms(self, k: int, logits: list[torch.Tensor], y: torch.Tensor) -> dict[str, torch.Tensor]:
        """``ce_k`` = CE(z_k, y) and ``kl_k`` = w/(K−1)·Σ_{j≠k} T²·KL(p_j ‖ p_k), each z_j detached."""
        kl = sum(losses.dml_loss(logits[k], logits[j], self.temperature) for j in range(self.k) if j != k)
        return {f"ce_{k}": F.cross_entropy(logits[k], y), f"kl_{k}": self.kl_weight * kl / (self.k - 1)}

    def epoch_metrics(self, test) -> dict[str, float]:
        """``acc_k`` per peer, ``acc_ensemble`` (argmax of the mean of the peers' softmax), and for each peer
        j ≥ 1 ``agree_0_j`` (fraction of test images where peers 0 and j predict the same class) and
        ``kl_0_j`` (mean KL(p_j ‖ p_0) at T = 1): :func:`kd_lab.analysis.peer_metrics`."""
        return peer_metrics(self.peers, test)


METHODS: dict[str, type[Method]] = {"scratch": Scratch, "kd": KD, "dkd": DKD, "dml": DML}


# ------------------------------------------------------------------------ relation based (lesson 05)
class RKD(Method):
    """Relational Knowledge Distillation, Park, Kim, Lu, Cho (2019, CVPR): the student copies the
    *structure* of the teacher's pooled embeddings over a batch, pairwise distances (RKD-D) and triplet
    angles (RKD-A), not each sample's output. Hinton's KD term can be added, mixed with CE like :class:`KD`:

        L = (1 − κ)·CE(s, y) + κ·T²·KL(p_t ‖ p_s) + λ_D·L_RKD-D(e_s, e_t) + λ_A·L_RKD-A(e_s, e_t)

    κ = ``kd_weight`` (0: no KD term, plain CE), λ_D = ``distance_weight`` and λ_A = ``angle_weight`` (the
    paper's 25 and 50 on the pooled embedding). Terms ``ce``, ``kd``, ``rkd_d``, ``rkd_a``; a term whose
    weight is 0 is left out (and not computed).
    """

    name = "rkd"
    needs_teacher = True
    live_metrics = ("relation_agreement",)          # epoch metrics the TrainingPanel draws live

    def __init__(self, student, teacher=None, distance_weight: float = 25.0, angle_weight: float = 50.0,
                 kd_weight: float = 0.0, temperature: float = 4.0):
        super().__init__(student, teacher)
        self.distance_weight = _check_weight("distance_weight", distance_weight)
        self.angle_weight = _check_weight("angle_weight", angle_weight)
        self.kd_weight = _check_weight("kd_weight", kd_weight, 0.0, 1.0)
        self.temperature = _check_temperature(temperature)

    def options(self):
        return {"distance_weight": self.distance_weight, "angle_weight": self.angle_weight,
                "kd_weight": self.kd_weight, "temperature": self.temperature}

    def loss_terms(self, x, y, phase=None):
        s = self.student(x, features=True)          # logits (B, K), embedding (B, D_s)
        t = self.teacher_forward(x, features=True)  # logits (B, K), embedding (B, D_t), no grad
        weighted = {                                # term -> (weight, its unweighted loss, computed lazily)
            "ce": (1 - self.kd_weight, lambda: F.cross_entropy(s.logits, y)),
            "kd": (self.kd_weight, lambda: losses.kd_loss(s.logits, t.logits, self.temperature)),
            "rkd_d": (self.distance_weight, lambda: _in_float32(losses.rkd_distance_loss, s.embedding, t.embedding)),
            "rkd_a": (self.angle_weight, lambda: _in_float32(losses.rkd_angle_loss, s.embedding, t.embedding)),
        }
        return {name: weight * loss() for name, (weight, loss) in weighted.items() if weight > 0}

    def epoch_metrics(self, test) -> dict[str, float]:
        """``relation_agreement``: correlation of the student's and the teacher's normalised distance matrices
        on a fixed probe, the first ``probe_size`` test images (:func:`kd_lab.analysis.relation_agreement`)."""
        if test is None or self.teacher is None:
            return {}
        from .analysis import embeddings, relation_agreement
        probe = self.probe(test)
        return {"relation_agreement": relation_agreement(embeddings(self.student, probe), self._teacher_probe(probe))}

    def _teacher_probe(self, probe) -> torch.Tensor:
        """The frozen teacher's probe embeddings (N, D_t), computed once per probe."""
        from .analysis import embeddings
        return self.teacher_on_probe(probe.x, lambda: embeddings(self.teacher, probe))


def _in_float32(relation_loss, student_emb, teacher_emb):
    """A relation loss outside autocast: under bf16 autocast the angle tensor's einsum would run in bf16."""
    with torch.autocast(student_emb.device.type, enabled=False):
        return relation_loss(student_emb.float(), teacher_emb.float())


class RKDDistance(RKD):
    """RKD-D: the distance-wise loss alone (λ_A = 0 by default), Park et al. 2019."""

    name = "rkd-d"

    def __init__(self, student, teacher=None, distance_weight: float = 25.0, angle_weight: float = 0.0,
                 kd_weight: float = 0.0, temperature: float = 4.0):
        super().__init__(student, teacher, distance_weight, angle_weight, kd_weight, temperature)


class RKDAngle(RKD):
    """RKD-A: the angle-wise loss alone (λ_D = 0 by default), Park et al. 2019."""

    name = "rkd-a"

    def __init__(self, student, teacher=None, distance_weight: float = 0.0, angle_weight: float = 50.0,
                 kd_weight: float = 0.0, temperature: float = 4.0):
        super().__init__(student, teacher, distance_weight, angle_weight, kd_weight, temperature)


class KDRKD(RKD):
    """KD + RKD-DA: :class:`KD`'s terms (1 − α)·CE + α·KD with α = ``kd_weight`` = 0.9, plus both RKD terms."""

    name = "kd+rkd"

    def __init__(self, student, teacher=None, distance_weight: float = 25.0, angle_weight: float = 50.0,
                 kd_weight: float = 0.9, temperature: float = 4.0):
        super().__init__(student, teacher, distance_weight, angle_weight, kd_weight, temperature)


METHODS.update({"rkd": RKD, "rkd-d": RKDDistance, "rkd-a": RKDAngle, "kd+rkd": KDRKD})


def method_options(name: str) -> dict:
    """The options a method accepts, with their defaults."""
    cls = _method_class(name)
    params = inspect.signature(cls.__init__).parameters
    return {k: p.default for k, p in params.items() if k not in ("self", "student", "teacher")}


def _method_class(name: str) -> type[Method]:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(METHODS)}")
    return METHODS[name]


def make_method(name: str, student: nn.Module, teacher: nn.Module | None = None, **options) -> Method:
    """Build a registered method by name; unknown options are an error that lists the allowed ones."""
    allowed = method_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"method {name!r} has no option(s) {unknown}; allowed: {sorted(allowed) or 'none'}")
    return _method_class(name)(student, teacher, **options)


# ------------------------------------------------------------------------- feature based (lesson 04)
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


class FeatureKD(Method):
    """Shared wiring of the feature-distillation methods: a trainable :class:`~kd_lab.models.Connector`
    (1×1 conv + BN, student channels -> teacher channels) per distilled stage, and

        L = (1 − κ)·CE(s, y) + κ·T²·KL(p_t ‖ p_s) + λ_F · Σ_{i ∈ stages} w_i · L_i(connector_i(s_i), t_i)

    with s_i, t_i the pre-ReLU taps of stage i (:meth:`stage_loss` gives w_i·L_i). κ = ``kd_weight``,
    λ_F = ``feature_weight``, ``stages`` = ``"all"``, ``"last"``, an index or ``"0,2"``. Terms ``ce``, ``kd`` and
    ``<term>_<i>`` per stage; a term whose weight is 0 is left out. Teacher and student must have as many
    stages, with the same strides (the course's ConvNet presets all do).
    """

    needs_teacher = True
    term = "feat"
    live_metrics = tuple(f"feat_dist_{i}" for i in range(3))

    def __init__(self, student, teacher=None, feature_weight: float = 1.0, stages="all", kd_weight: float = 0.0,
                 temperature: float = 4.0):
        super().__init__(student, teacher)
        self.feature_weight = _check_weight("feature_weight", feature_weight)
        self.kd_weight = _check_weight("kd_weight", kd_weight, 0.0, 1.0)
        self.temperature = _check_temperature(temperature)
        s_info, t_info = _conv_taps(student, "student"), _conv_taps(teacher, "teacher")
        if [i["stride"] for i in s_info] != [i["stride"] for i in t_info]:
            raise ValueError(f"student stages {s_info} and teacher stages {t_info} do not pair up: feature "
                             f"distillation needs as many stages with the same strides")
        self.stages = parse_stages(stages, len(t_info))
        device = next(student.parameters()).device
        self.connectors = nn.ModuleDict({str(i): Connector(s_info[i]["channels"], t_info[i]["channels"]).to(device)
                                         for i in self.stages})

    def options(self):
        return {"feature_weight": self.feature_weight, "stages": ",".join(map(str, self.stages)),
                "kd_weight": self.kd_weight, "temperature": self.temperature}

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
            for i in self.stages:
                projected = self.connectors[str(i)](s.taps[i])                   # (B, C_t, H, W)
                terms[f"{self.term}_{i}"] = self.feature_weight * self.stage_loss(i, projected, t.taps[i])
        return terms

    @torch.no_grad()
    def epoch_metrics(self, test) -> dict[str, float]:
        """``feat_dist_i`` per distilled stage on a fixed probe, the first ``probe_size`` test images (eval mode):
        ‖ReLU(connector_i(s_i)) − ReLU(t_i)‖² / ‖ReLU(t_i)‖² (:func:`kd_lab.features.relative_distance`)."""
        if test is None or self.teacher is None:
            return {}
        from .features import relative_distance
        was_training = self.training
        self.eval()
        x = self.probe(test).images()                                                        # (N, C, H, W)
        s_taps, t_taps = self.student(x, features=True).taps, self._teacher_probe(x)
        out = {f"feat_dist_{i}": relative_distance(self.connectors[str(i)](s_taps[i]), t_taps[i]) for i in self.stages}
        self.train(was_training)
        return out

    def _teacher_probe(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The frozen teacher's taps of the probe images, computed once per probe."""
        return self.teacher_on_probe(x, lambda: self.teacher(x, features=True).taps)


class FitNet(FeatureKD):
    """Romero, Ballas, Kahou, Chassang, Gatta, Bengio (2015, ICLR), "FitNets: Hints for Thin Deep Nets": the
    student's *guided* layer, through a regressor, imitates the teacher's *hint* layer by mean squared error,

        L = CE(s, y) + λ_F · Σ_{i ∈ stages} MSE(regressor_i(s_i), t_i)       (:func:`kd_lab.losses.fitnet_loss`)

    Here on the pre-ReLU taps (the same places OFD uses) with OFD's 1×1 conv + BN connector as regressor,
    trained in one stage with CE (the paper first pre-trains up to the guided layer on the hint, then runs
    KD). Default: the middle stage, as the paper's hint. Terms ``ce`` and ``fitnet_<i>``.
    """

    name = "fitnet"
    term = "fitnet"

    def __init__(self, student, teacher=None, feature_weight: float = 1.0, stages="1", kd_weight: float = 0.0,
                 temperature: float = 4.0):
        super().__init__(student, teacher, feature_weight, stages, kd_weight, temperature)

    def stage_loss(self, i, projected, teacher_tap):
        return losses.fitnet_loss(projected, teacher_tap)


class OFD(FeatureKD):
    """Heo, Kim, Yun, Park, Kwak, Choi (2019, ICCV), "A Comprehensive Overhaul of Feature Distillation":
    the teacher's pre-ReLU feature t_i, clipped below at the per-channel margin m (:func:`kd_lab.losses.ofd_margin`
    of the BatchNorm before the ReLU), against the student's pre-ReLU feature through a 1×1 conv + BN
    connector, by a partial L2 that skips where both would be 0 after the ReLU:

        L = (1 − κ)·CE + κ·KD + λ_F · Σ_{i ∈ stages} 1/2^(n−i−1) · Σ_{c,h,w} mask·(connector_i(s_i) − max(t_i, m))²

    averaged over the batch (:func:`kd_lab.losses.ofd_loss`); n stages, the last weighted 1, each earlier one
    half the next. λ_F = 1e-3 is the paper's CIFAR setting (its code adds the sum / batch / 1000).
    The margins are computed once from the frozen teacher. Terms ``ce`` and ``ofd_<i>``.
    """

    name = "ofd"
    term = "ofd"

    def __init__(self, student, teacher=None, feature_weight: float = 1e-3, stages="all", kd_weight: float = 0.0,
                 temperature: float = 4.0):
        super().__init__(student, teacher, feature_weight, stages, kd_weight, temperature)
        bns = teacher.preact_bns()
        self.stage_weights = {i: 0.5 ** (len(bns) - i - 1) for i in self.stages}
        for i in self.stages:
            self.register_buffer(f"margin_{i}", losses.ofd_margin(bns[i]))      # (C_t,), float32

    def margin(self, i: int) -> torch.Tensor:
        return getattr(self, f"margin_{i}")

    def stage_loss(self, i, projected, teacher_tap):
        return self.stage_weights[i] * losses.ofd_loss(projected, teacher_tap, self.margin(i))


class OFDKD(OFD):
    """OFD + Hinton's KD: :class:`KD`'s terms (1 − κ)·CE + κ·T²·KL with κ = ``kd_weight`` = 0.9, T = 4, plus
    OFD's stage terms (Heo et al. 2019; Hinton et al. 2015)."""

    name = "ofd+kd"

    def __init__(self, student, teacher=None, feature_weight: float = 1e-3, stages="all", kd_weight: float = 0.9,
                 temperature: float = 4.0):
        super().__init__(student, teacher, feature_weight, stages, kd_weight, temperature)


class UDML(DML):
    """PP-OCRv2's Unified-Deep Mutual Learning, Du, Li, Guo, Cui, Liu, Zhou, Lu, Yang, Liu, Hu, Yu, Ma (2021),
    "PP-OCRv2: Bag of Tricks for Ultra Lightweight OCR System" (arXiv:2109.03144): :class:`DML` between peers of
    the *same* architecture, plus an L2 between their features (no connector needed; the paper's extra fully
    connected head of its text recognizer is not used here):

        L_k = CE(z_k, y) + w/(K−1)·Σ_{j≠k} T²·KL(p_j ‖ p_k) + λ_F/(K−1)·Σ_{j≠k} Σ_{i ∈ stages} MSE(f_k^i, sg(f_j^i))

    f^i the pre-ReLU tap of stage i, sg = detached, as DML detaches the peers' logits. With the detach, the
    two peers' terms together have the gradient of one shared, undetached λ_F·MSE(f_0, f_1) (what PaddleOCR
    computes); the detach also makes the alternating mode work. Default stage: the last (PP-OCRv2 compares
    the backbones' outputs). Terms ``ce_k``, ``kl_k``, ``feat_k`` per learning peer.
    """

    name = "udml"

    def __init__(self, student, teacher=None, k: int = 2, peers: str = "student", kl_weight: float = 1.0,
                 temperature: float = 1.0, mode: str = "simultaneous", feature_weight: float = 1.0, stages="last"):
        super().__init__(student, teacher, k, peers, kl_weight, temperature, mode)
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
        logits, terms = [o.logits for o in outs], {}
        for k in learners:
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
        from .features import peer_feature_distance
        return {**super().epoch_metrics(test), **peer_feature_distance(self.peers, self.probe(test), self.stages)}


METHODS.update({"fitnet": FitNet, "ofd": OFD, "ofd+kd": OFDKD, "udml": UDML})


# ---------------------------------------------------------------------------- label-free (lesson 02)
SSLD_UNLABELED = ("mined", "all", "none")
SSLD_OBJECTIVES = ("ssld", "kd")


class SSLD(Method):
    """SSLD, Cui, Guo, Du et al. 2021, "Beyond Self-Supervision: A Simple Yet Effective Network Distillation
    Alternative to Improve Backbones" (PaddleClas): the student learns only from the teacher's outputs,
    L = T²·½[KL(p_t ‖ p_s) + KL(p_s ‖ p_t)] (:func:`kd_lab.losses.ssld_loss`), with no ground-truth term, on the
    labeled images L plus unlabeled images U. Term ``ssld`` (``kd`` with ``objective="kd"``: T²·KL(p_t ‖ p_s)).

    U is every training image the teacher was not trained on and that is not in L, less exact duplicates of a
    test image (and repeats within U). ``unlabeled``: ``"mined"`` keeps the ``top_k`` images per class the
    teacher is most confident about (:func:`kd_lab.mining.mine`), ``"all"`` keeps U, ``"none"`` trains on L only.
    ``pool_size`` uses only the first N images of U. The labels of U are never used: its images carry the
    teacher's labels (for the trainer's train-accuracy probe only; the loss reads no label).
    The teacher must not have seen U: by default it is the zoo's ``first20k`` teacher (training images
    0..19,999). U is derived from the recipe of the teacher passed in (``teacher.zoo_info["recipe"]``, set by
    :func:`kd_lab.zoo.get_teacher`; the default recipe's split otherwise), so it never holds an image the teacher
    saw; a teacher trained on every image is refused.
    """

    name = "ssld"
    needs_teacher = True
    teacher_recipe = "first20k"             # the zoo recipe of the teacher this method fetches by default

    def __init__(self, student, teacher=None, temperature: float = 1.0, unlabeled: str = "mined",
                 top_k: int = 1000, pool_size: int | None = None, objective: str = "ssld"):
        super().__init__(student, teacher)
        if unlabeled not in SSLD_UNLABELED:
            raise ValueError(f"unlabeled must be one of {SSLD_UNLABELED}, got {unlabeled!r}")
        if objective not in SSLD_OBJECTIVES:
            raise ValueError(f"objective must be one of {SSLD_OBJECTIVES}, got {objective!r}")
        for name, value, none_ok in (("top_k", top_k, False), ("pool_size", pool_size, True)):
            positive = not isinstance(value, bool) and isinstance(value, int) and value > 0
            if not (positive or (value is None and none_ok)):
                raise ValueError(f"{name} must be a positive integer{' or None' if none_ok else ''}, got {value!r}")
        self.temperature = _check_temperature(temperature)
        self.unlabeled, self.top_k, self.pool_size, self.objective = unlabeled, top_k, pool_size, objective
        self.pool_report: dict = {}
        self.mined = None

    def options(self):
        return {"temperature": self.temperature, "unlabeled": self.unlabeled, "top_k": self.top_k,
                "pool_size": self.pool_size, "objective": self.objective}

    def teacher_indices(self, train) -> torch.Tensor:
        """The training images the teacher was trained on, from its zoo recipe (the default recipe's otherwise)."""
        from . import zoo
        recipe = getattr(self.teacher, "zoo_info", {}).get("recipe") or zoo.RECIPES[self.teacher_recipe]
        return zoo.training_indices(recipe, train.y)

    def unlabeled_pool(self, train, labeled, test) -> torch.Tensor:
        """Indices into ``train`` of U: not seen by the teacher, not in ``labeled``, no duplicate of a ``test``
        image, no repeat; the first ``pool_size``. Counts go to ``self.pool_report``."""
        from .mining import duplicates
        excluded = torch.zeros(len(train), dtype=torch.bool)
        seen = self.teacher_indices(train)
        excluded[seen] = True
        if len(seen) == len(train):
            raise ValueError("the teacher was trained on every training image, so none is unlabeled to it; SSLD "
                             "needs a teacher of part of the split, e.g. "
                             f"kd_lab.zoo.get_teacher(dataset, {self.teacher_recipe!r})")
        excluded[torch.arange(len(train)) if labeled is None else torch.as_tensor(labeled).cpu()] = True
        pool = torch.nonzero(~excluded).flatten()
        in_test, repeated = duplicates(train.x[pool.to(train.device)], test.x)
        clean = pool[~in_test & ~repeated][: self.pool_size]
        self.pool_report = {"teacher_images": len(seen), "pool": len(pool), "test_duplicates": int(in_test.sum()),
                            "repeats": int((repeated & ~in_test).sum()), "pool_used": len(clean)}
        return clean

    def training_set(self, train, labeled, test):
        """L ∪ the chosen part of U (an :class:`kd_lab.data.ImageData`); U's images carry the teacher's labels.
        ``train``/``test`` are the whole splits, ``labeled`` the indices of L (None: every image)."""
        from dataclasses import replace
        lab = torch.arange(len(train)) if labeled is None else torch.as_tensor(labeled).cpu()
        if self.unlabeled == "none":
            return train.subset(lab.to(train.device))
        pool = self.unlabeled_pool(train, labeled, test)
        if len(pool) == 0:
            import warnings
            warnings.warn("no unlabeled image is left (each one is labeled or was seen by the teacher): SSLD trains "
                          "on the labeled images only", stacklevel=2)
        chosen, teacher_labels = self._choose(train.subset(pool.to(train.device)))
        idx = torch.cat([lab, pool[chosen]]).to(train.device)
        y = torch.cat([train.y[lab.to(train.device)], teacher_labels.to(train.device)])
        self.pool_report["unlabeled_used"] = len(chosen)
        return replace(train.subset(idx), y=y)

    def _choose(self, pool) -> tuple[torch.Tensor, torch.Tensor]:
        """(positions in ``pool`` to train on, the teacher's labels of those images); ``pool.y`` is not read."""
        from .mining import mine, teacher_probabilities
        if len(pool) == 0:
            return torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long)
        if self.unlabeled == "mined":
            self.mined = mine(self.teacher, pool, self.top_k)
            return self.mined.indices, self.mined.labels
        return torch.arange(len(pool)), teacher_probabilities(self.teacher, pool).argmax(dim=1)

    def loss_terms(self, x, y, phase=None):
        """The label-free term only; ``y`` is not used."""
        s = self.student(x)                         # (B, K)
        t = self.teacher_forward(x)                 # (B, K), no grad
        loss = losses.ssld_loss if self.objective == "ssld" else losses.kd_loss
        return {self.objective: loss(s, t, self.temperature)}


METHODS["ssld"] = SSLD
