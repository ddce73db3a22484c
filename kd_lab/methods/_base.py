"""The method base class and the registry every other module reads.

A :class:`Method` owns the student, the (frozen) teacher if it has one, and any trainable module of its
own (a connector, a regressor, a peer). ``loss_terms(x, y)`` returns a dict such as ``{"ce": ..., "kd": ...}``
whose values are already weighted: the trainer sums them and logs each one. Every hook the trainer, the
experiments and the widgets call is declared on :class:`Method` with its default.

A method declares itself with :func:`register` at its class: its name, its lesson and its knobs (the
:class:`Knob` of each option a notebook shows as a slider). :func:`register_preset` adds a name that builds
a registered class with other defaults (``rkd-d`` is RKD with λ_A = 0). The CLI, the comparison, the
benchmark and the widgets find every method through :data:`METHODS`, :func:`method_names`,
:func:`method_info`, :func:`method_options` and :func:`make_method`.
"""
from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType

import torch
from torch import nn

from ..checks import check_number
from ..losses import MAX_TEMPERATURE

__all__ = ["Method", "Knob", "KNOB_SCALES", "MethodInfo", "register", "register_preset", "unregister", "METHODS",
           "method_names", "method_info", "method_options", "check_options", "make_method", "preset"]


class Method(nn.Module):
    """Base class: a student, an optional frozen teacher, and the loss terms of one step."""

    name = "method"                 # the registered name (set by @register); the History's ``method``
    needs_teacher = False           # True: building it without a teacher is an error, runs fetch one
    teacher_recipe = "full"         # the zoo recipe of the teacher a run fetches (SSLD: a teacher of part of the split)
    live_metrics: tuple[str, ...] = ()  # epoch-metric names a TrainingPanel draws live (e.g. "relation_agreement")
    wants_index = False             # True: fit calls loss_terms(x, y, phase, index=idx), idx (B,) indices into train
    probe_size = 256                # test images of the fixed probe that epoch_metrics measures on (RKD, OFD, U-DML)
    teacher_outputs: tuple[str, ...] = ()   # what loss_terms reads through teacher_output(x): "logits" and/or
                                    # "embedding", which a run may serve from a cache per (image, view); () = none
    output_cache = None             # the kd_lab.teacher_cache.TeacherCache fit attaches (None: the teacher runs)
    progress: float | None = None   # the fraction of the run's optimizer steps done (set_progress); None outside fit

    def __init__(self, student: nn.Module, teacher: nn.Module | None = None):
        super().__init__()
        if self.needs_teacher and teacher is None:
            raise ValueError(f"method {self.name!r} needs a teacher; pass teacher=... (see kd_lab.zoo.get_teacher)")
        self.student = student
        self.teacher = teacher
        if teacher is not None:
            teacher.requires_grad_(False)

    def options(self) -> dict:
        """The method's options and their values (logged in the History's config)."""
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

    def teacher_output(self, x: torch.Tensor):
        """The frozen teacher's outputs for the batch ``x``, no gradient: ``.logits`` (B, K), ``.embedding`` (B, D).

        When :func:`kd_lab.train.fit` has bound a teacher-output cache to this batch, they are read from it: the
        numbers the teacher gives for each image's augmentation view (:mod:`kd_lab.teacher_cache`), with only
        the kinds of :attr:`teacher_outputs` filled; otherwise the teacher computes them now."""
        cached = self.output_cache.outputs_for(x) if self.output_cache is not None else None
        return cached if cached is not None else self.teacher_forward(x, features=True)

    def term_weights(self) -> dict[str, tuple[str, float, str]]:
        """How :meth:`loss_terms` weighs the terms it returns, for the plots' legends ("kd ×α=0.9"): a term's name,
        or the prefix of numbered terms ending in "_" (``"ofd_"``), -> (the weight's symbol, its value, a note).
        :func:`kd_lab.train.fit` records it in the History's config. Default: none (each term as computed)."""
        return {}

    def set_progress(self, done: int, total: int) -> None:
        """Called by :func:`kd_lab.train.fit` before each batch: ``done`` of the run's ``total`` optimizer steps are
        behind it. Stores ``progress = done / total``, which a loss schedule reads (DKD's warm-up); outside a run
        ``progress`` is None and a schedule is at its end."""
        self.progress = done / total

    def phases(self) -> list:
        """The optimizer steps of one batch, each passed to ``loss_terms`` as ``phase`` (default: one, ``None``,
        called as ``loss_terms(x, y)``). DML's alternating mode has one phase per peer."""
        return [None]

    def epoch_metrics(self, test) -> dict[str, float]:
        """Extra numbers for the epoch record, computed on ``test`` when accuracy is measured (default none)."""
        return {}

    def finetune_stage(self):
        """A second training stage on the labeled images only, after the main one (SSLD's fine-tune):
        ``(method, steps, lr_factor)`` — the :class:`Method` to train (on the same student), its optimizer steps and
        its learning rate as a fraction of the main run's — or None (the default: one stage).
        :func:`kd_lab.experiments.train_method` runs it."""
        return None

    def live_view(self, test) -> dict | None:
        """One non-scalar view of what the method transfers, on the first images of ``test``, student beside
        teacher (or peer): a dict whose ``"kind"`` names its plot in :func:`kd_lab.viz.plot_live_view`.
        :func:`kd_lab.train.fit` computes it when accuracy is measured and keeps the latest as ``History.view``;
        a :class:`kd_lab.widgets.TrainingPanel` draws it beside the curves. Default: None (no view)."""
        return None

    def training_set(self, train, labeled, test):
        """The :class:`kd_lab.data.ImageData` this method trains on, from the whole splits ``train`` and ``test``
        and ``labeled``, the indices of the labeled images (None: every one). Default: the labeled images;
        SSLD adds unlabeled images the teacher labels."""
        if labeled is None:
            return train
        return train.subset(torch.as_tensor(labeled).to(train.device))

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

    def loss_terms(self, x: torch.Tensor, y: torch.Tensor, phase=None) -> dict[str, torch.Tensor]:
        """The weighted loss terms of one step on images ``x`` (B, C, H, W) and labels ``y`` (B,)."""
        raise NotImplementedError


# ------------------------------------------------------------------------------------ option checks
def _check_weight(name: str, value: float, low: float = 0.0, high: float | None = None) -> float:
    """A loss weight: a finite number in ``[low, high]`` (:func:`kd_lab.checks.check_number`). A NaN weight
    would drop its term silently (a term is left out where its weight is not > 0) or train on NaN."""
    return check_number(name, value, low, high)


def _check_temperature(value: float) -> float:
    """A softmax temperature: a finite number in (0, MAX_TEMPERATURE] (:data:`kd_lab.losses.MAX_TEMPERATURE`:
    above it T² would swamp the other terms, and overflow float32 long before 1e30)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value <= 0:
        raise ValueError(f"temperature must be > 0, got {value!r}")
    return check_number("temperature", value, 0, MAX_TEMPERATURE, low_open=True)


def check_options(name: str, options: dict) -> dict:
    """Check ``options`` of method ``name`` before anything is built or trained (:func:`make_method`, the
    command line and the widgets call it): every name must be an option of the method, no value may be a
    NaN or ±inf, and an option whose default is a number (or that has a slider) does not take a bool (True
    is not the number 1 here). Ranges and types beyond that are the method's ``__init__``'s to check (with
    :func:`kd_lab.checks.check_number`). Returns ``options``."""
    info = method_info(name)
    unknown = sorted(set(options) - set(info.defaults))
    if unknown:
        raise ValueError(f"method {name!r} has no option(s) {unknown}; allowed: {sorted(info.defaults) or 'none'}")
    for key, value in options.items():
        default, knob = info.defaults[key], info.knobs.get(key)
        numeric = (isinstance(default, numbers.Real) and not isinstance(default, bool)) or \
            (knob is not None and knob.scale != "multiple")
        if numeric and isinstance(value, bool):
            raise ValueError(f"{key} must be a number, got {value!r} (a bool is not a number)")
        if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and not math.isfinite(value):
            raise ValueError(f"{key} must be a finite number, got {value!r}")
    return options


# -------------------------------------------------------------------------------------------- knobs
KNOB_SCALES = ("linear", "int", "log", "multiple")


@dataclass(frozen=True)
class Knob:
    """How a notebook shows one option of a method: its range, step, label, and ``scale``, which picks the
    widget: ``"linear"`` a FloatSlider, ``"int"`` an IntSlider, ``"log"`` a FloatLogSlider from ``low`` to
    ``high`` in steps of ``step`` in the exponent (weights that span orders of magnitude), ``"multiple"`` a
    multiple choice of the integers ``low..high`` (each shown as ``choice_label.format(i)``), whose value
    ``parse`` makes from the option's value (e.g. ``"all"`` -> ``(0, 1, 2)``)."""

    low: float
    high: float
    step: float
    label: str
    scale: str = "linear"
    choice_label: str = "{}"
    parse: Callable | None = None

    def __post_init__(self):
        if self.scale not in KNOB_SCALES:
            raise ValueError(f"knob {self.label!r}: scale must be one of {KNOB_SCALES}, got {self.scale!r}")
        if not self.low < self.high or not self.step > 0:
            raise ValueError(f"knob {self.label!r}: needs low < high and step > 0, got "
                             f"{self.low!r}, {self.high!r}, {self.step!r}")
        if self.scale == "log" and self.low <= 0:
            raise ValueError(f"knob {self.label!r}: a log scale needs low > 0, got {self.low!r}")
        integral = all(isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high, self.step))
        if self.scale in ("int", "multiple") and not integral:
            raise ValueError(f"knob {self.label!r}: an {self.scale!r} knob needs integer low, high and step")

    def validate(self, name: str, value):
        """``value`` checked for this knob's slider: a finite number in ``[low, high]`` (an integer for an
        ``"int"`` knob; a ``"multiple"`` knob's value goes through ``parse``). A slider would clamp a value
        outside its range without a word, so a panel checks its initial values with this."""
        if self.scale == "multiple":
            chosen = self.parse(value) if self.parse else tuple(value)
            allowed = [v for _, v in self.choices]
            if not chosen or any(c not in allowed for c in chosen):
                raise ValueError(f"{name} must choose among {allowed}, got {value!r}")
            return chosen
        return check_number(f"{name} ({self.label})", value, self.low, self.high, integer=self.scale == "int")

    @property
    def exponents(self) -> tuple[float, float]:
        """``(log10(low), log10(high))``: the range of a log-scale knob's slider."""
        return math.log10(self.low), math.log10(self.high)

    @property
    def choices(self) -> list[tuple[str, int]]:
        """``(label, value)`` of each choice of a ``"multiple"`` knob."""
        return [(self.choice_label.format(i), i) for i in range(self.low, self.high + 1, self.step)]


# ----------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class MethodInfo:
    """A registered name: the class it builds, its lesson, its knobs and option defaults, its doc; a preset
    names its ``base`` method."""

    name: str
    cls: type[Method]
    lesson: str | None
    knobs: dict[str, Knob]
    defaults: dict
    doc: str
    base: str | None = None
    overrides: dict = field(default_factory=dict)     # a preset's own defaults (what differs from its base)


_REGISTRY: dict[str, MethodInfo] = {}
_ORDER: list[str] = []              # registration order, a name registered with before=... moved up


def _lesson_rank(lesson: str | None) -> tuple[bool, str]:
    return lesson is None, lesson or ""     # "01_response_kd" < "02_ssld" < ...; no lesson: last


def method_names() -> list[str]:
    """Every registered name in course order: by lesson, then in registration order within a lesson."""
    return sorted(_ORDER, key=lambda name: _lesson_rank(_REGISTRY[name].lesson))


def method_info(name: str) -> MethodInfo:
    """What the registry holds about ``name``; an unknown name is an error that lists the registered ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def method_options(name: str) -> dict:
    """The options a method accepts, with their defaults (a preset's own defaults applied)."""
    return dict(method_info(name).defaults)


def _signature_defaults(cls: type[Method]) -> dict:
    """The keyword options of ``cls.__init__`` after ``student`` and ``teacher``, with their defaults."""
    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in params if p.name not in ("self", "student", "teacher")
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _add(info: MethodInfo, before: str | None) -> None:
    if info.name in _REGISTRY:
        raise ValueError(f"method {info.name!r} is already registered ({_REGISTRY[info.name].cls.__qualname__}); "
                         f"choose another name or unregister it first")
    if before is not None and (before not in _REGISTRY or _REGISTRY[before].lesson != info.lesson):
        raise ValueError(f"before={before!r} must name a registered method of lesson {info.lesson!r}; "
                         f"registered: {sorted(_REGISTRY)}")
    _REGISTRY[info.name] = info
    _ORDER.insert(_ORDER.index(before) if before is not None else len(_ORDER), info.name)


def _check_knobs(name: str, knobs: dict, defaults: dict) -> dict[str, Knob]:
    unknown = sorted(set(knobs) - set(defaults))
    if unknown:
        raise ValueError(f"method {name!r}: knob(s) {unknown} are not options of the method; "
                         f"options: {sorted(defaults) or 'none'}")
    wrong = sorted(k for k, v in knobs.items() if not isinstance(v, Knob))
    if wrong:
        raise ValueError(f"method {name!r}: knob(s) {wrong} must be Knob(low, high, step, label, ...)")
    return MappingProxyType(dict(knobs))


def register(name: str, *, lesson: str | None = None, knobs: dict[str, Knob] | None = None,
             doc: str | None = None, before: str | None = None):
    """Class decorator: register a :class:`Method` subclass as ``name``.

    ``lesson`` (e.g. ``"01_response_kd"``) places it in the course order (none: after every lesson);
    ``knobs`` maps some of its options (the keyword arguments of its ``__init__``) to the :class:`Knob` a
    notebook shows; ``doc`` defaults to the class docstring; ``before`` puts it just before another
    method of its lesson. Registering a taken name is an error."""
    def decorate(cls):
        if not (isinstance(cls, type) and issubclass(cls, Method)):
            raise ValueError(f"register({name!r}) takes a subclass of kd_lab.methods.Method, got {cls!r}")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a method name must be a non-empty string, got {name!r}")
        defaults = _signature_defaults(cls)
        info = MethodInfo(name, cls, lesson, _check_knobs(name, knobs or {}, defaults),
                          MappingProxyType(defaults), doc or inspect.getdoc(cls) or "")
        _add(info, before)
        cls.name = name
        return cls
    return decorate


def register_preset(name: str, base: str, /, *, doc: str, lesson: str | None = None, before: str | None = None,
                    **defaults) -> MethodInfo:
    """Register ``name`` as method ``base`` with other ``defaults`` (a preset, not a subclass):
    ``make_method(name, ...)`` builds ``base``'s class with them and reports ``name`` as its name.
    Its lesson and knobs are ``base``'s unless ``lesson`` is given; ``before`` as in :func:`register`."""
    parent = method_info(base)
    if parent.base is not None:
        raise ValueError(f"preset {name!r}: base {base!r} is itself a preset of {parent.base!r}; name a class's method")
    unknown = sorted(set(defaults) - set(parent.defaults))
    if unknown:
        raise ValueError(f"preset {name!r}: {unknown} are not options of {base!r}; options: {sorted(parent.defaults)}")
    info = MethodInfo(name, parent.cls, parent.lesson if lesson is None else lesson, parent.knobs,
                      MappingProxyType({**parent.defaults, **defaults}), doc, base, MappingProxyType(dict(defaults)))
    _add(info, before)
    return info


def unregister(name: str) -> MethodInfo:
    """Remove ``name`` from the registry (e.g. a test's method); returns what was registered."""
    info = method_info(name)
    presets = sorted(n for n, i in _REGISTRY.items() if i.base == name)
    if presets:
        raise ValueError(f"method {name!r} is the base of preset(s) {presets}; unregister those first")
    del _REGISTRY[name]
    _ORDER.remove(name)
    return info


def make_method(name: str, student: nn.Module, teacher: nn.Module | None = None, **options) -> Method:
    """Build a registered method (or preset) by name; unknown options are an error that lists the allowed ones."""
    info = method_info(name)
    unknown = sorted(set(options) - set(info.defaults))
    if unknown:
        raise ValueError(f"method {name!r} has no option(s) {unknown}; allowed: {sorted(info.defaults) or 'none'}")
    if info.cls.needs_teacher and teacher is None:
        raise ValueError(f"method {name!r} needs a teacher; pass teacher=... (see kd_lab.zoo.get_teacher)")
    method = info.cls(student, teacher, **{**info.overrides, **options})     # its own checks, with their ranges
    check_options(name, options)                # and no NaN, ±inf or bool number even where __init__ checks none
    method.name = name                  # a preset reports its own name (History.method, the runs' rows)
    return method


def preset(name: str) -> Callable[..., Method]:
    """A constructor of preset ``name``, called like a class: ``preset("rkd-d")(student, teacher, **options)``."""
    if method_info(name).base is None:
        raise ValueError(f"{name!r} is not a preset; presets: {sorted(n for n, i in _REGISTRY.items() if i.base)}")
    return partial(make_method, name)


class _MethodClasses(MutableMapping):
    """``METHODS``: registered name -> the class it builds, in course order (a preset gives its base's class).
    ``METHODS[name] = cls`` registers ``cls`` without a lesson, ``del METHODS[name]`` unregisters it."""

    def __getitem__(self, name: str) -> type[Method]:
        if name not in _REGISTRY:
            raise KeyError(name)
        return _REGISTRY[name].cls

    def __setitem__(self, name: str, cls: type[Method]) -> None:
        register(name)(cls)

    def __delitem__(self, name: str) -> None:
        if name not in _REGISTRY:
            raise KeyError(name)
        unregister(name)

    def __iter__(self):
        return iter(method_names())

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __repr__(self) -> str:
        return f"METHODS({', '.join(f'{n}={self[n].__name__}' for n in self)})"


METHODS: MutableMapping[str, type[Method]] = _MethodClasses()
