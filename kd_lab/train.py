"""Training and evaluation: ``fit`` (the whole loop, in one function), ``evaluate`` and ``History``.

A *method* (see :mod:`kd_lab.methods`) turns a batch into a dict of named loss terms; ``fit`` sums the
terms, steps the optimizer over every parameter the method trains, and logs each term, so any lesson
can plot any term. The teacher, if any, stays in eval mode with no gradient.
"""
from __future__ import annotations

import functools
import math
import os
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_integer, check_number
from .data import ImageData

__all__ = ["History", "Evaluation", "fit", "evaluate", "pick_device", "device_name", "amp_enabled", "seed_everything",
           "quick_mode"]


def quick_mode() -> bool:
    """True when ``KD_LAB_QUICK`` is set to a true value (tests and CI): small data, few epochs."""
    return os.environ.get("KD_LAB_QUICK", "0").lower() not in ("", "0", "false", "no")


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks cuda, then mps, then cpu; anything else must name a device torch knows."""
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available here; use 'auto' or 'cpu'")
    return dev


def device_name(device) -> str:
    """A readable name of a device: the GPU's model, or the CPU with its thread count."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"{dev.type} ({torch.get_num_threads()} threads)"


def seed_everything(seed: int) -> None:
    """Seed torch's global generators (model initialisation); data order uses fit's own generator."""
    torch.manual_seed(seed)


@dataclass
class History:
    """Everything a run logged: every step's loss terms, every epoch's accuracies and speed."""

    method: str = ""
    seed: int = 0
    device: str = ""
    config: dict = field(default_factory=dict)
    steps: list[dict] = field(default_factory=list)    # {"step", "epoch", "total", <term>: value, "lr"}
    epochs: list[dict] = field(default_factory=list)   # {"epoch", "train_acc", "test_acc", "images_per_s", "wall_s"}
    status: str = "new"                                 # new | running | finished | stopped | failed
    error: str | None = None
    view: dict | None = None                            # the latest Method.live_view (replaced at each evaluation)

    @property
    def term_names(self) -> list[str]:
        return [k for k in (self.steps[0] if self.steps else {}) if k not in ("step", "epoch", "total", "lr")]

    @property
    def test_acc(self) -> float | None:
        """The last measured test accuracy (None before the first measurement)."""
        measured = [e["test_acc"] for e in self.epochs if e["test_acc"] is not None]
        return measured[-1] if measured else None

    @property
    def images_per_s(self) -> float | None:
        """Training throughput over all finished epochs."""
        wall = sum(e["train_s"] for e in self.epochs)
        return sum(e["images"] for e in self.epochs) / wall if wall > 0 else None

    @property
    def wall_s(self) -> float:
        return self.epochs[-1]["wall_s"] if self.epochs else 0.0

    def final_terms(self, last: int = 20) -> dict[str, float]:
        """Mean of each loss term over the last ``last`` steps."""
        tail = self.steps[-last:]
        return {k: sum(s[k] for s in tail) / len(tail) for k in ["total", *self.term_names]} if tail else {}


@dataclass
class Evaluation:
    accuracy: float                  # fraction correct, 0..1
    per_class: list[float]           # accuracy of each true class
    loss: float                      # mean cross-entropy


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageData, batch_size: int = 1000) -> Evaluation:
    """Accuracy, per-class accuracy and cross-entropy of ``model`` on ``data`` (eval mode, no grad)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    k = data.num_classes
    correct = torch.zeros(k, device=device)
    count = torch.zeros(k, device=device)
    loss = torch.zeros((), device=device)
    for x, y in data.to(device).batches(batch_size, shuffle=False):
        logits = model(_prepare(x, device)).float()                 # (B, K)
        loss += F.cross_entropy(logits, y, reduction="sum")
        correct += torch.bincount(y, weights=(logits.argmax(1) == y).float(), minlength=k)
        count += torch.bincount(y, minlength=k).float()
    model.train(was_training)
    per_class = (correct / count.clamp(min=1)).tolist()
    return Evaluation(float(correct.sum() / count.sum()), per_class, float(loss / count.sum()))


def _prepare(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x


def cpu_has_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX), so bf16 autocast speeds it up."""
    cpu = getattr(torch, "cpu", None)
    checks = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def amp_enabled(device: torch.device, amp: str = "auto") -> bool:
    """Whether ``fit`` uses bf16 autocast: ``"auto"`` means on CUDA, and on CPUs with native bf16."""
    if amp not in ("auto", "bf16", "off"):
        raise ValueError(f"amp must be 'auto', 'bf16' or 'off', got {amp!r}")
    if amp == "auto":
        return device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())
    return amp == "bf16"


def _autocast(device: torch.device, amp: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp_enabled(device, amp))


def _optimizer(params, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose 'sgd' or 'adamw'")


def _check_fit_args(epochs, batch_size, lr, train, eval_every=1):
    """Every number of ``fit`` through :func:`kd_lab.checks.check_number`: positive integers (a bool is not
    one), a learning rate that is a finite number > 0 (an infinite one trains NaN)."""
    for name, value in (("epochs", epochs), ("eval_every", eval_every), ("batch_size", batch_size)):
        check_integer(name, value, 1)
    if isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    check_number("lr", lr, 0, low_open=True)
    if len(train) == 0:
        raise ValueError("the training set is empty")


def fit(method, train: ImageData, test: ImageData | None = None, *, epochs: int = 10, batch_size: int = 128,
        lr: float = 0.05, weight_decay: float = 5e-4, optimizer: str = "sgd", seed: int = 0,
        device="auto", amp: str = "auto", augment: bool = True, callback=None, callback_every: int = 50,
        stop=None, progress: bool = True, history: History | None = None, eval_every: int = 1,
        teacher_cache=None) -> History:
    """Train ``method`` (a :class:`kd_lab.methods.Method`) on ``train``; evaluate on ``test`` every epoch.

    Cosine learning-rate schedule over all steps. channels_last on CUDA; bf16 autocast per ``amp``
    (see :func:`amp_enabled`).
    Each batch runs one optimizer step per phase of ``method.phases()`` (default ``[None]``: one step,
    ``method.loss_terms(x, y)``; otherwise ``method.loss_terms(x, y, phase)``; a method whose ``wants_index``
    is True also gets ``index=idx``, the batch's (B,) indices into ``train``); the schedule steps once
    per batch and the step record holds every phase's terms, "total" their sum. When accuracy is
    measured, ``method.epoch_metrics(test)`` is merged into the epoch record.
    ``callback(history)`` runs every ``callback_every`` steps and after each epoch; ``stop`` (anything
    with ``is_set()``, e.g. ``threading.Event``) or Ctrl-C ends the run cleanly with its partial
    history. On any other error the history is kept on the exception as ``err.history``.
    Accuracies are measured every ``eval_every`` epochs and after the last one (None in between).
    ``teacher_cache`` (a :class:`kd_lab.teacher_cache.TeacherCache` of the whole split ``train`` was cut from)
    serves the teacher outputs a method declares (``method.teacher_outputs``) per (image, augmentation view)
    instead of running the teacher each step — the same numbers, less work; it is ignored for a method that
    declares none, and saved when the run ends. The History's config records ``teacher_cache`` (used or not)
    and, when used, ``teacher_cache_hit_rate``.
    """
    _check_fit_args(epochs, batch_size, lr, train, eval_every)
    dev = pick_device(device)
    use_bf16 = amp_enabled(dev, amp)
    method.to(dev)
    if dev.type == "cuda":
        method.to(memory_format=torch.channels_last)
    params = [p for p in method.trainable_parameters() if p.requires_grad]
    phases = method.phases()                                   # [None] for most methods
    wants_index = getattr(method, "wants_index", False)       # pass each batch's indices into train
    opt = _optimizer(params, optimizer, lr, weight_decay)
    steps_per_epoch = math.ceil(len(train) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    gen = torch.Generator(device=dev).manual_seed(seed)
    train, test = train.to(dev), (test.to(dev) if test is not None else None)
    cache = _attach_cache(teacher_cache, method, train, use_bf16)        # None: the teacher runs every step
    h = history if history is not None else History()
    h.method, h.seed, h.device, h.status = method.name, seed, str(dev), "running"
    h.config = dict(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, optimizer=optimizer,
                    amp=amp, bf16=use_bf16, augment=augment, train_size=len(train), teacher_cache=cache is not None,
                    **method.options(), term_weights=method.term_weights())
    bar = _progress(progress, epochs * steps_per_epoch, method.name)
    log, step = _StepLog(h), len(h.steps)
    first, total = step, epochs * steps_per_epoch               # this run's steps: method.set_progress(done, total)
    start = time.perf_counter()
    try:
        for epoch in range(1, epochs + 1):
            method.train()
            t0, seen = time.perf_counter(), 0
            # for x, y in train.batches(...): images, labels, and the (index, view) keys when a method or cache asks
            for x, y, *keys in train.batches(batch_size, augment=augment, generator=gen, with_index=wants_index,
                                             with_view=cache is not None):
                x, terms = _prepare(x, dev), {}
                if cache is not None:
                    cache.bind(x, *keys)                      # (B,) indices into train, (B,) views: the cache's keys
                extra = {"index": keys[0]} if wants_index else {}     # (B,) indices into train (a memory bank)
                method.set_progress(step - first, total)      # a schedule inside the loss (DKD's warm-up)
                for phase in phases:                          # one phase, unless the method splits its update
                    with _autocast(dev, amp):
                        part = (method.loss_terms(x, y, **extra) if phase is None
                                else method.loss_terms(x, y, phase, **extra))
                    opt.zero_grad(set_to_none=True)           # grads of params unused in this phase stay None:
                    sum(part.values()).backward()             # the optimizer skips them (no decay, no momentum)
                    opt.step()
                    _merge_terms(terms, part, phase)          # {"ce": ..., "kd": ...}, detached
                sched.step()
                seen, step = seen + len(y), step + 1
                log.add(epoch, terms, sched.get_last_lr()[0])
                bar.update(1)
                if callback and step % callback_every == 0:
                    log.flush()
                    callback(h)
                if stop is not None and stop.is_set():
                    raise KeyboardInterrupt
            log.flush()
            measure = epoch % eval_every == 0 or epoch == epochs
            _end_epoch(h, method, train, test if measure else None, epoch, seen, t0, start, dev, measure)
            bar.set_postfix(loss=f"{h.steps[-1]['total']:.3f}", test_acc=f"{h.test_acc or float('nan'):.3f}")
            if callback:
                callback(h)
        h.status = "finished"
    except KeyboardInterrupt:
        h.status = "stopped"
    except Exception as err:
        h.status, h.error = "failed", f"{type(err).__name__}: {err}"
        err.history = h
        raise
    finally:
        log.flush()
        bar.close()
        method.eval()
        if cache is not None:
            cache.detach(method)
            h.config["teacher_cache_hit_rate"] = cache.hit_rate
    return h


def _attach_cache(cache, method, train: ImageData, bf16: bool):
    """``cache`` attached to ``method`` when the method declares teacher outputs it can serve, else None."""
    if cache is None or not getattr(method, "teacher_outputs", ()):
        return None
    return cache.attach(method, train, bf16)


class _StepLog:
    """Keeps each step's loss terms on the device and turns them into floats in one transfer per flush:
    a ``float()`` per step would make the GPU wait for every step before the next could be queued."""

    def __init__(self, history: History):
        self.history, self.rows = history, []

    def add(self, epoch: int, terms: dict, lr: float) -> None:
        values = torch.stack([sum(terms.values()), *terms.values()]).float()    # (1 + n_terms,)
        self.rows.append((epoch, list(terms), lr, values))

    def flush(self) -> None:
        if not self.rows:
            return
        values = torch.stack([r[3] for r in self.rows]).tolist() if len({len(r[1]) for r in self.rows}) == 1 \
            else [r[3].tolist() for r in self.rows]
        for (epoch, names, lr, _), (total, *terms) in zip(self.rows, values):
            self.history.steps.append({"step": len(self.history.steps) + 1, "epoch": epoch, "total": total,
                                       **dict(zip(names, terms)), "lr": lr})
        self.rows.clear()


def _merge_terms(terms: dict, part: dict, phase) -> None:
    """Add one phase's loss terms (detached) to the batch's; two phases may not log the same term."""
    repeated = sorted(set(terms) & set(part))
    if repeated:
        raise ValueError(f"phase {phase!r} logs loss term(s) {repeated} that an earlier phase of the batch logged")
    terms.update({k: v.detach() for k, v in part.items()})


def _end_epoch(h: History, method, train: ImageData, test: ImageData | None, epoch: int, seen: int,
               t0: float, start: float, dev: torch.device, measure: bool = True) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()
    train_s = time.perf_counter() - t0
    probe = train.subset(torch.arange(min(len(train), 2000), device=train.device))
    record = {"epoch": epoch, "images": seen, "train_s": train_s, "images_per_s": seen / train_s,
              "train_acc": evaluate(method.student, probe).accuracy if measure else None,
              "test_acc": evaluate(method.student, test).accuracy if test is not None else None}
    if test is not None:
        record.update(method.epoch_metrics(test))         # e.g. each DML peer's accuracy; {} by default
        h.view = method.live_view(test) or h.view         # e.g. KD's logits on probe images; None by default
    record["wall_s"] = time.perf_counter() - start
    h.epochs.append(record)


class _NoBar:
    def update(self, n=1): pass
    def set_postfix(self, **kw): pass
    def close(self): pass


def _progress(enabled: bool, total: int, desc: str):
    if not enabled:
        return _NoBar()
    return progress_bar(total=total, desc=desc, unit="step", leave=False)


def progress_bar(**kwargs):
    """A ``tqdm.auto`` bar (same keyword arguments). In a notebook its saved output shows the bar's final
    state: tqdm's widget bar keeps the text it had when first shown ("0%") as the output a saved notebook
    shows on GitHub or nbviewer, so this one re-publishes its display on close (empty when ``leave=False``)."""
    from tqdm.auto import tqdm
    from tqdm.notebook import tqdm as notebook_tqdm
    if kwargs.get("disable") or not issubclass(tqdm, notebook_tqdm):
        return tqdm(**kwargs)
    return _saved_bar_class()(**kwargs)


@functools.cache
def _saved_bar_class():
    from tqdm.notebook import tqdm as notebook_tqdm

    class SavedBar(notebook_tqdm):
        def __init__(self, **kwargs):
            super().__init__(display=False, **kwargs)
            from IPython.display import display
            self._handle = display(self.container, display_id=True)

        def close(self):
            if self.disable:
                return
            super().close()
            if self._handle is not None:
                self._handle.update(self.container if self.leave else _Blank())
                self._handle = None

    return SavedBar


class _Blank:
    """An output with nothing to show (what a closed ``leave=False`` bar leaves in a saved notebook)."""
    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/plain": ""}
