"""Runs of a method in the course's standard setting, over seeds: what the CLI and the lessons call.

``run_method("kd", labeled=1000, seed=0)`` loads the data on the device, holds out the protocol's validation
split, draws a seeded class-balanced labeled subset from the other training images, builds a fresh student,
fetches the cached teacher when the method needs one, fits, and measures the validation accuracy at the end.

The evaluation protocol every reported number follows is :data:`PROTOCOL` (written into every results file).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import data as kd_data
from .methods import make_method, method_info
from .models import build_model
from .stats import format_mean_std, mean_std
from .teacher_cache import TeacherCache
from .train import History, evaluate, fit, pick_device, progress_bar, quick_mode, seed_everything
from .zoo import default_recipe, get_teacher

__all__ = ["Setting", "train_student", "train_method", "run_method", "summarize", "mean_std", "load_data", "compare",
           "accuracies", "method_teacher", "teacher_recipe", "PROTOCOL", "VALIDATION_SEED", "protocol_text",
           "validation_size", "validation_indices", "validation_accuracy"]

VALIDATION_SEED = 271828            # the protocol's fixed seed of the validation draw (no run uses it as its seed)
VALIDATION_DEFAULT, VALIDATION_QUICK = 5000, 1000

# The evaluation protocol, stated once: results files (kd_lab.sweep) and README's "Evaluation protocol" quote it.
PROTOCOL = (
    "Evaluation protocol: every run reports its test accuracy after the last step (never the best epoch) on "
    "{test}, and its validation accuracy after the last step on {validation} training images held out of the "
    "training split (a class-balanced draw with the fixed protocol seed {validation_seed}, the same for every "
    "seed and method, disjoint from every labeled subset and from SSLD's unlabeled pool, never trained on; the "
    "teachers, trained before the split, may have seen them). A choice between arms is made on validation "
    "accuracy; the test set chooses nothing. Seeds {seeds}: a seed fixes the labeled subset, the initial weights "
    "and the batch order. Mean ± sample std over seeds; an arm's effect is paired by seed, d_s = acc(arm, s) − "
    "acc(baseline, s), reported as mean ± std of the d_s with the 95 % Student-t interval "
    "d̄ ± t(0.975, n−1) · s_d / √n over n pairs.")


@dataclass
class Setting:
    """The budget every method of a comparison shares. Quick mode shrinks it for CPU tests."""

    dataset: str = "fashion-mnist"
    labeled: int | None = 1000        # class-balanced labeled images; None = the whole training split
    epochs: int = 60                  # training epochs (a budget in steps, below, overrides it)
    batch_size: int = 128
    lr: float = 0.05
    student: str = "student"
    test_size: int | None = None      # None = the whole test split
    eval_every: int = 5               # measure test accuracy every N epochs (and after the last)
    labeled_from: int | None = None   # draw the labeled images from the first N training images (None: all)
    steps: int | None = None          # a budget in optimizer steps, the same for every method whatever its
                                      # training set: then epochs = round(steps / steps per epoch) (at least 1),
                                      # and accuracy is measured at the same fraction eval_every / epochs of the run
    validation: int | None = None     # training images held out for validation (PROTOCOL), never trained on;
                                      # None: 5,000 (1,000 in quick mode); 0: no validation split
    teacher: str | None = None        # teacher recipe (kd_lab.recipes.RECIPES); None: the method's own
    teacher_cache: bool = True        # read the teacher outputs a method declares from an (image, view) cache
                                      # (kd_lab.teacher_cache: the same numbers, the teacher's work done once)

    @classmethod
    def default(cls, **overrides) -> Setting:
        """The lesson setting; in quick mode fewer epochs and a 2,000-image test subset."""
        base = dict(epochs=4, eval_every=1, test_size=2000) if quick_mode() else {}
        return cls(**{**base, **overrides})


_DATA_CACHE: dict = {}


def load_data(dataset: str, device) -> tuple[kd_data.ImageData, kd_data.ImageData]:
    """(train, test) on ``device``, loaded once per process."""
    key = (dataset, str(device))
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = kd_data.load(dataset, device=device)
    return _DATA_CACHE[key]


def protocol_text(setting: Setting, seeds=None) -> str:
    """:data:`PROTOCOL` filled in with ``setting``'s test and validation sizes and the ``seeds``."""
    test = "the whole test split" if setting.test_size is None else f"the first {setting.test_size:,} test images"
    return PROTOCOL.format(test=test, validation=f"{validation_size(setting):,}", validation_seed=VALIDATION_SEED,
                           seeds=", ".join(map(str, seeds)) if seeds is not None else "as listed")


def validation_size(setting: Setting) -> int:
    """The number of held-out validation images: ``setting.validation``, or the protocol's default (5,000; 1,000
    in quick mode) when it is None."""
    n = setting.validation
    if n is None:
        return VALIDATION_QUICK if quick_mode() else VALIDATION_DEFAULT
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"validation must be a non-negative integer (0: no validation split) or None, got {n!r}")
    return n


def validation_indices(setting: Setting, train) -> torch.Tensor:
    """Sorted indices (on the CPU) of the validation images of the training split ``train``: a class-balanced
    draw of :func:`validation_size` images with the fixed :data:`VALIDATION_SEED`, whatever the run's seed."""
    n = validation_size(setting)
    if n == 0:
        return torch.empty(0, dtype=torch.long)
    if n >= len(train):
        raise ValueError(f"validation must leave training images: got {n} of the {len(train)} of {setting.dataset}")
    return kd_data.labeled_split(train.y, n, seed=VALIDATION_SEED).labeled


def _labeled_indices(setting: Setting, seed: int, train, train_indices=None) -> torch.Tensor | None:
    """Indices of the labeled images in the training split (None: all of it): ``train_indices``, else a seeded
    class-balanced draw of ``setting.labeled`` images among the first ``setting.labeled_from``, outside the
    validation split (:func:`validation_indices`; with no validation split the draw is the same as before it
    existed). ``labeled=None`` gives every training image outside the validation split."""
    if train_indices is not None:
        return torch.as_tensor(train_indices).cpu()
    n = setting.labeled_from
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= len(train)):
        raise ValueError(f"labeled_from must be an integer in 1..{len(train)} or None, got {n!r}")
    held_out = validation_indices(setting, train)
    if len(held_out) == 0:
        if setting.labeled is None:
            return None if n is None else torch.arange(n)
        return kd_data.labeled_split(train.y if n is None else train.y[:n], setting.labeled, seed=seed).labeled
    free = torch.ones(len(train), dtype=torch.bool)
    free[held_out] = False
    if n is not None:
        free[n:] = False
    candidates = torch.nonzero(free).flatten()                        # sorted, outside the validation split
    if setting.labeled is None:
        return candidates
    if isinstance(setting.labeled, int) and not isinstance(setting.labeled, bool) and setting.labeled > len(candidates):
        raise ValueError(f"labeled size must be an integer in 1..{len(candidates)} (the training images"
                         + (f" among the first {n}" if n else "") + f" outside the {len(held_out)} validation "
                         f"images), got {setting.labeled}")
    chosen = kd_data.labeled_split(train.y[candidates.to(train.device)], setting.labeled, seed=seed).labeled
    return candidates[chosen]


def _test_view(setting: Setting, test):
    """The first ``setting.test_size`` test images (all of them when None)."""
    if setting.test_size is not None and setting.test_size < len(test):
        test = test.subset(torch.arange(setting.test_size, device=test.device))
    return test


def train_student(method: str, setting: Setting | None = None, seed: int = 0, device="auto", teacher=None,
                  progress: bool = True, callback=None, callback_every: int = 50, stop=None,
                  history: History | None = None, train_indices=None, **options):
    """Train a fresh student with ``method`` under ``setting`` for one seed; returns ``(student, History)``.

    ``callback``, ``callback_every``, ``stop`` and ``history`` go to :func:`kd_lab.train.fit`.
    ``train_indices`` (indices into the training split) replaces the seeded labeled subset, e.g. a
    transfer set without one class (then the validation accuracy is measured only when they avoid the
    validation split).
    """
    m, h = train_method(method, setting, seed, device, teacher, progress, callback, callback_every, stop,
                        history, train_indices, **options)
    return m.student, h


def train_method(method: str, setting: Setting | None = None, seed: int = 0, device="auto", teacher=None,
                 progress: bool = True, callback=None, callback_every: int = 50, stop=None,
                 history: History | None = None, train_indices=None, **options):
    """Like :func:`train_student`, returning ``(method, History)``: the trained :class:`Method` keeps every
    module it trained besides the student (e.g. all of DML's peers, ``method.peers``).

    With ``setting.teacher_cache`` (the default), a method that declares ``teacher_outputs`` reads them from a
    :class:`kd_lab.teacher_cache.TeacherCache` of the training split (its tables persist on disk between runs)
    instead of running its teacher every step.

    The method's ``training_set(train, labeled, test)`` builds its training data from the whole splits and the
    labeled indices (the labeled images; SSLD adds unlabeled ones, never a validation image: ``held_out``);
    ``setting.steps`` sets the number of epochs. A finished run's last epoch record gets ``val_acc``, the
    accuracy on the validation split after the last step (:func:`validation_accuracy`)."""
    setting = setting or Setting.default()
    cls = method_info(method).cls               # an unknown method is an error that lists the registered ones
    dev = pick_device(device)
    full, full_test = load_data(setting.dataset, dev)
    labeled = _labeled_indices(setting, seed, full, train_indices)
    held_out = validation_indices(setting, full)
    test = _test_view(setting, full_test)
    if cls.needs_teacher and teacher is None:
        teacher = method_teacher(method, setting.dataset, dev, recipe=setting.teacher)
    seed_everything(seed)
    student = build_model(setting.student, in_channels=full.x.shape[1], num_classes=full.num_classes,
                          image_size=full.x.shape[-1])
    m = make_method(method, student, teacher, **options)
    m.held_out = held_out                                # SSLD keeps these out of its unlabeled pool
    train = m.training_set(full, labeled, full_test)     # the labeled images, or more (SSLD)
    epochs, eval_every = _budget(setting, len(train))
    cache = TeacherCache(full) if setting.teacher_cache and m.teacher_outputs else None
    h = fit(m, train, test, epochs=epochs, batch_size=setting.batch_size, lr=setting.lr,
            seed=seed, device=dev, eval_every=eval_every, progress=progress, callback=callback,
            callback_every=callback_every, stop=stop, history=history, teacher_cache=cache)
    stage = m.finetune_stage()
    if stage is not None and h.status == "finished":
        labeled_data = full if labeled is None else full.subset(labeled.to(dev))     # the fine-tune's images: L
        _finetune(h, *stage, setting=setting, data=labeled_data, test=test, seed=seed, device=dev,
                  progress=progress, callback=callback, callback_every=callback_every, stop=stop, cache=cache)
    _measure_validation(m, h, full, held_out, labeled)
    return m, h


def _finetune(h: History, stage, steps: int, lr_factor: float, *, setting: Setting, data, test, seed: int, device,
              progress, callback, callback_every, stop, cache) -> None:
    """Train the second stage of a method (:meth:`kd_lab.methods.Method.finetune_stage`, SSLD's fine-tune) on
    ``data``, the labeled images, for ``steps`` optimizer steps at ``lr_factor`` × the setting's learning rate,
    with a cosine schedule of its own, and append it to ``h``: its steps and epochs follow the main stage's (each
    epoch record marked ``"stage": "finetune"``), and the last record keeps ``acc_before_finetune``, the test
    accuracy the main stage ended with, and the main stage's other measurements."""
    before = h.epochs[-1]
    epochs = max(1, round(steps / math.ceil(len(data) / setting.batch_size)))
    h2 = fit(stage, data, test, epochs=epochs, batch_size=setting.batch_size, lr=setting.lr * lr_factor, seed=seed,
             device=device, eval_every=epochs, progress=progress, callback=callback, callback_every=callback_every,
             stop=stop, teacher_cache=cache if stage.teacher_outputs else None)
    offset, wall = before["epoch"], before["wall_s"]
    h.steps += [{**r, "step": len(h.steps) + i + 1, "epoch": r["epoch"] + offset} for i, r in enumerate(h2.steps)]
    for e in h2.epochs:
        h.epochs.append({**e, "epoch": e["epoch"] + offset, "wall_s": e["wall_s"] + wall, "stage": "finetune"})
    kept = {k: v for k, v in before.items() if k not in h.epochs[-1] and k != "val_acc"}
    h.epochs[-1].update(kept, acc_before_finetune=before["test_acc"])
    h.config["finetune_stage"] = {"method": stage.name, "epochs": epochs, "steps": len(h2.steps),
                                  "lr": setting.lr * lr_factor}
    h.status, h.error = h2.status, h2.error


def _measure_validation(m, h: History, full, held_out: torch.Tensor, labeled) -> None:
    """Add ``val_acc`` (validation accuracy of the trained student) to the last epoch record of a finished run,
    unless there is no validation split or the training images (given ``train_indices``) overlap it."""
    trained_on = torch.arange(len(full)) if labeled is None else torch.as_tensor(labeled).cpu()
    overlap = torch.isin(held_out, trained_on).any()
    if h.status != "finished" or not h.epochs or len(held_out) == 0 or overlap:
        return
    h.epochs[-1]["val_acc"] = evaluate(m.student, full.subset(held_out.to(full.device))).accuracy


def validation_accuracy(h: History) -> float | None:
    """The validation accuracy (0..1) after a run's last step, None when it was not measured."""
    return h.epochs[-1].get("val_acc") if h.epochs else None


def method_teacher(method: str, dataset: str, device="auto", recipe: str | None = None, **kwargs):
    """The zoo teacher a method trains with: ``recipe`` when given, else the method's ``teacher_recipe`` (SSLD:
    ``first20k``, a teacher that never saw the unlabeled images) or the data set's default, in quick mode the
    quick variant when none is on disk (:func:`teacher_recipe`). ``kwargs`` go to :func:`kd_lab.zoo.get_teacher`."""
    return get_teacher(dataset, recipe or teacher_recipe(method, dataset), device=device, **kwargs)


def teacher_recipe(method: str, dataset: str) -> str | None:
    """The name of the recipe of the teacher ``method`` trains with by default (None: it needs no teacher)."""
    cls = method_info(method).cls                       # an unknown method is an error
    return default_recipe(dataset, cls.teacher_recipe) if cls.needs_teacher else None


def _budget(setting: Setting, train_size: int) -> tuple[int, int]:
    """``(epochs, eval_every)`` of a run on ``train_size`` images: the setting's, or from its step budget."""
    if setting.steps is None:
        return setting.epochs, setting.eval_every
    if isinstance(setting.steps, bool) or not isinstance(setting.steps, int) or setting.steps <= 0:
        raise ValueError(f"steps must be a positive integer or None, got {setting.steps!r}")
    epochs = max(1, round(setting.steps / math.ceil(train_size / setting.batch_size)))
    return epochs, max(1, round(epochs * setting.eval_every / setting.epochs))


def run_method(method: str, setting: Setting | None = None, seed: int = 0, **kwargs) -> History:
    """Like :func:`train_student`, returning the History only."""
    return train_student(method, setting, seed, **kwargs)[1]


def summarize(histories: list[History]) -> dict:
    """Mean and sample standard deviation (:func:`kd_lab.stats.mean_std`: NaN for one seed) of the final test
    accuracy over the seeds that **finished**, in percent; ``text`` is "mean ± std" with "–" for a missing std.
    A stopped or failed run's last accuracy is not a result: it never enters the mean (``left_out`` counts
    those runs)."""
    done = [h for h in histories if h.status == "finished" and h.test_acc is not None]
    accs = [100 * h.test_acc for h in done]
    mean, std = mean_std(accs)
    return {"n": len(accs), "mean": mean, "std": std, "values": accs, "text": format_mean_std(mean, std),
            "left_out": len(histories) - len(done)}


def compare(runs: dict, seeds=(0, 1, 2), setting: Setting | None = None, progress: bool = True,
            **kwargs) -> dict[str, list[History]]:
    """Train every ``label -> (method, options)`` of ``runs`` for every seed on the same setting.

    Returns ``label -> [History per seed]``; a tqdm bar counts the runs. A run stopped by Ctrl-C (the
    notebook's interrupt) stops them all: ``KeyboardInterrupt`` is raised again, no partial result is returned.
    """
    results = {label: [] for label in runs}
    bar = progress_bar(total=len(runs) * len(seeds), desc="runs", disable=not progress)
    for label, (method, options) in runs.items():
        for seed in seeds:
            bar.set_postfix_str(f"{label}, seed {seed}")
            h = run_method(method, setting, seed=seed, progress=False, **kwargs, **options)
            if h.status == "stopped":
                bar.close()
                raise KeyboardInterrupt(f"run {label!r} of seed {seed} was stopped; the remaining runs are not run")
            results[label].append(h)
            bar.update(1)
    bar.close()
    return results


def accuracies(histories: list[History], key: str = "test_acc") -> list[float]:
    """Final test accuracies in percent, one per run; ``key`` picks another accuracy of the epoch record
    (e.g. a DML peer's ``"acc_1"`` or ``"acc_ensemble"``), from the last epoch that measured it."""
    return [100 * _last_measured(h, key) for h in histories]


def _last_measured(h: History, key: str) -> float:
    measured = [e[key] for e in h.epochs if e.get(key) is not None]
    if not measured:
        raise ValueError(f"the {h.method!r} run of seed {h.seed} measured no {key!r} in any epoch")
    return measured[-1]
