"""Networks of the course: a ConvNet family with stages, its presets, a tiny MLP and the OFD connector.

Every model answers two calls:

* ``model(x)`` -> logits ``(B, K)``;
* ``model(x, features=True)`` -> :class:`Features` with the logits, the **pre-ReLU** output of every
  stage (the taps feature distillation uses, Heo et al. 2019) and the pooled embedding (what relational
  distillation compares, Park et al. 2019).

``model.preact_bns()`` returns the BatchNorm that produces each tap (OFD derives its margin from it)
and ``model.feature_info`` lists the channels and stride of each tap.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Features", "ConvNet", "MLP", "Connector", "PRESETS", "build_model", "count_parameters",
]


@dataclass
class Features:
    """What ``model(x, features=True)`` returns."""

    logits: torch.Tensor            # (B, K)
    taps: list[torch.Tensor]        # per stage: (B, C_i, H_i, W_i) pre-ReLU, or (B, C_i) for the MLP
    embedding: torch.Tensor         # (B, D) pooled, after the last ReLU


def _conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out)]


class Stage(nn.Module):
    """``depth`` conv3x3+BN layers; ReLU between them, none after the last (that is the tap)."""

    def __init__(self, c_in: int, c_out: int, depth: int):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += _conv_bn(c_in if i == 0 else c_out, c_out)
            if i < depth - 1:
                layers.append(nn.ReLU(inplace=True))
        self.body = nn.Sequential(*layers)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.body[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # (B, C_out, H, W), pre-ReLU


class ConvNet(nn.Module):
    """VGG-style ConvNet: stages of conv3x3+BN(+ReLU), 2x2 max-pool between stages, global average pool,
    linear classifier. The stage outputs before their final ReLU are the feature taps."""

    def __init__(self, widths=(16, 32, 64), depth: int = 2, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        if not widths or depth < 1:
            raise ValueError(f"ConvNet needs at least one stage and depth >= 1, got widths={widths}, depth={depth}")
        chans = [in_channels, *widths]
        self.stages = nn.ModuleList(Stage(chans[i], chans[i + 1], depth) for i in range(len(widths)))
        self.classifier = nn.Linear(widths[-1], num_classes)
        self.feature_info = [{"stage": i, "channels": c, "stride": 2 ** i} for i, c in enumerate(widths)]
        self.embedding_dim = widths[-1]

    def preact_bns(self) -> list[nn.BatchNorm2d]:
        """The BatchNorm whose output is each stage's tap, in stage order."""
        return [stage.last_bn for stage in self.stages]

    def forward(self, x: torch.Tensor, features: bool = False):
        taps = []
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = F.max_pool2d(x, 2)          # halve H, W between stages
            tap = stage(x)                      # (B, C_i, H_i, W_i) pre-ReLU
            taps.append(tap)
            x = F.relu(tap)
        embedding = x.mean(dim=(2, 3))          # (B, C_last)
        logits = self.classifier(embedding)     # (B, K)
        return Features(logits, taps, embedding) if features else logits


class MLP(nn.Module):
    """A tiny multilayer perceptron on flattened images; its taps are the pre-ReLU hidden vectors."""

    def __init__(self, hidden=(32,), in_features: int = 784, num_classes: int = 10):
        super().__init__()
        dims = [in_features, *hidden]
        self.layers = nn.ModuleList(nn.Linear(dims[i], dims[i + 1], bias=False) for i in range(len(hidden)))
        self.bns = nn.ModuleList(nn.BatchNorm1d(h) for h in hidden)
        self.classifier = nn.Linear(dims[-1], num_classes)
        self.feature_info = [{"stage": i, "channels": h, "stride": None} for i, h in enumerate(hidden)]
        self.embedding_dim = dims[-1]

    def preact_bns(self) -> list[nn.BatchNorm1d]:
        return list(self.bns)

    def forward(self, x: torch.Tensor, features: bool = False):
        x = x.flatten(1)                        # (B, C*H*W)
        taps = []
        for layer, bn in zip(self.layers, self.bns):
            tap = bn(layer(x))                  # (B, hidden_i) pre-ReLU
            taps.append(tap)
            x = F.relu(tap)
        logits = self.classifier(x)
        return Features(logits, taps, x) if features else logits


class Connector(nn.Module):
    """OFD's student-side connector: 1x1 conv + BN mapping student channels to teacher channels
    (Heo et al. 2019, "A Comprehensive Overhaul of Feature Distillation"). Also FitNet's regressor.
    ``bn=False``: the 1x1 conv alone (with a bias), the connector of the paper's ablation."""

    def __init__(self, c_student: int, c_teacher: int, bn: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c_student, c_teacher, 1, bias=not bn)
        self.bn = nn.BatchNorm2d(c_teacher) if bn else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))            # (B, C_teacher, H, W)


# name -> (class, keyword arguments). Parameter counts are for 1x28x28 input and 10 classes.
PRESETS: dict[str, tuple[type[nn.Module], dict]] = {
    "teacher": (ConvNet, {"widths": (64, 128, 256), "depth": 2}),      # about 1.15M parameters
    "teacher-small": (ConvNet, {"widths": (32, 64, 128), "depth": 2}),  # about 290k, the quick recipe
    "student": (ConvNet, {"widths": (16, 32, 64), "depth": 2}),        # about 72k
    "student-tiny": (ConvNet, {"widths": (8, 16, 32), "depth": 2}),    # about 19k
    "mlp": (MLP, {"hidden": (32,)}),                                    # about 25k
}


def build_model(preset: str, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """Build a preset by name for images of ``in_channels`` x ``image_size`` x ``image_size``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; choose one of {sorted(PRESETS)}")
    cls, kwargs = PRESETS[preset]
    if cls is MLP:
        return MLP(in_features=in_channels * image_size * image_size, num_classes=num_classes, **kwargs)
    return cls(in_channels=in_channels, num_classes=num_classes, **kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
