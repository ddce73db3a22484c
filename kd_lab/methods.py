"""Methods: how one training step turns a batch into named loss terms.

A :class:`Method` owns the student, the (frozen) teacher if it has one, and any trainable module of its
own (a connector, a regressor, a peer). ``loss_terms(x, y)`` returns a dict such as
``{"ce": ..., "kd": ...}`` whose values are already weighted: the trainer sums them and logs each one.

Lessons add methods by subclassing :class:`Method` and registering the class in :data:`METHODS`.
"""
from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn

from . import losses

__all__ = ["Method", "Scratch", "KD", "DKD", "METHODS", "make_method", "method_options"]


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

    def loss_terms(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
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

    def loss_terms(self, x, y):
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

    def loss_terms(self, x, y):
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

    def loss_terms(self, x, y):
        s = self.student(x)                         # (B, K)
        t = self.teacher_forward(x)                 # (B, K), no grad
        tckd, nckd = losses.dkd_parts(s, t, y, self.temperature)
        return {"ce": F.cross_entropy(s, y), "tckd": self.alpha * tckd, "nckd": self.beta * nckd}


METHODS: dict[str, type[Method]] = {"scratch": Scratch, "kd": KD, "dkd": DKD}


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
