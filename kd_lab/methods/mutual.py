"""Mutual learning (lesson 03): no teacher, K peer students teach each other.

* :class:`DML` — Deep Mutual Learning: each peer's CE plus the KL to the other peers' predictions,
  trained simultaneously (one step) or alternating (one phase per peer).

:class:`kd_lab.methods.feature.UDML` adds a feature loss between the peers.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import losses
from ..analysis import peer_metrics, predict_logits
from ..models import PRESETS, build_model
from ._base import Knob, Method, _check_temperature, _check_weight, register
from .response import TEMPERATURE_KNOB

__all__ = ["DML", "DML_MODES", "DML_KNOBS"]

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


DML_KNOBS = {
    "k": Knob(2, 4, 1, "K (number of DML peers)", scale="int"),
    "kl_weight": Knob(0.0, 4.0, 0.1, "w (weight of the KL to the peers)"),
    "temperature": TEMPERATURE_KNOB,
}


@register("dml", lesson="03_dml", knobs=DML_KNOBS)
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

    ``symmetric=True`` trains the pairs as PaddleOCR does (PP-OCRv2): one undetached symmetric KL per pair,
    w/(K−1) · :func:`kd_lab.losses.dml_symmetric_loss` (terms ``kl_j_k``, j < k), and the ``ce_k`` terms;
    the gradient of a pair's term reaches both peers. Simultaneous mode only.
    """

    def __init__(self, student, teacher=None, k: int = 2, peers: str = "student", kl_weight: float = 1.0,
                 temperature: float = 1.0, mode: str = "simultaneous", symmetric: bool = False):
        super().__init__(student, teacher)
        if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= 4:
            raise ValueError(f"k (the number of peers) must be an integer in 2..4, got {k!r}")
        if mode not in DML_MODES:
            raise ValueError(f"mode must be one of {DML_MODES}, got {mode!r}")
        if not isinstance(symmetric, bool):
            raise ValueError(f"symmetric must be true or false, got {symmetric!r}")
        if symmetric and mode != "simultaneous":
            raise ValueError(f"symmetric=True (one undetached loss per pair, PaddleOCR's form) needs "
                             f"mode='simultaneous', got mode={mode!r}: an alternating phase updates one peer only")
        self.k, self.mode, self.symmetric = k, mode, symmetric
        self.kl_weight = _check_weight("kl_weight", kl_weight)
        self.temperature = _check_temperature(temperature)
        self.peer_names = _peer_names(peers, k)
        self.peers = nn.ModuleList([student, *_build_peers(student, self.peer_names)])
        self.frozen: set[int] = set()

    def options(self):
        extra = {"frozen": sorted(self.frozen)} if self.frozen else {}
        return {"k": self.k, "peers": ",".join(self.peer_names), "kl_weight": self.kl_weight,
                "temperature": self.temperature, "mode": self.mode, "symmetric": self.symmetric, **extra}

    def term_weights(self):
        return {"kl_": ("w/(K−1)", self.kl_weight / (self.k - 1), "")}

    def learners(self) -> list[int]:
        """The peers that train (every peer that is not frozen)."""
        return [i for i in range(self.k) if i not in self.frozen]

    def phases(self) -> list:
        return self.learners() if self.mode == "alternating" else [None]

    def freeze_peer(self, index: int, model: nn.Module | None = None, name: str | None = None) -> DML:
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
        if self.symmetric:
            return self._symmetric_terms(logits, y)
        terms = {}
        for k in learners:
            terms.update(self._peer_terms(k, logits, y))
        return terms

    def _symmetric_terms(self, logits: list[torch.Tensor], y: torch.Tensor) -> dict[str, torch.Tensor]:
        """``ce_k`` per learner and ``kl_j_k`` = w/(K−1)·T²·½[KL(p_k ‖ p_j) + KL(p_j ‖ p_k)] per pair j < k with a
        learner in it, nothing detached (PaddleOCR's ``DMLLoss``)."""
        learners = self.learners()
        terms = {f"ce_{k}": F.cross_entropy(logits[k], y) for k in learners}
        for j in range(self.k):
            for k in range(j + 1, self.k):
                if j in learners or k in learners:
                    pair = losses.dml_symmetric_loss(logits[j], logits[k], self.temperature)
                    terms[f"kl_{j}_{k}"] = self.kl_weight * pair / (self.k - 1)
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

    def live_view(self, test):
        """Lesson 03's live view: every peer's logits (K x (N, C)) on the fixed probe, the first ``probe_size`` test
        images (:func:`kd_lab.viz.plot_peer_view` draws their agreement and predictive entropy)."""
        probe = self.probe(test)
        return {"kind": "peers", "logits": [predict_logits(peer, probe) for peer in self.peers],
                "names": [f"peer {i} ({name})" for i, name in enumerate(self.peer_names)],
                "labels": probe.y.cpu(), "classes": list(test.classes)}
