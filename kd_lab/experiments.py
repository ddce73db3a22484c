"""Runs of a method in the course's standard setting, over seeds: what the CLI and the lessons call.

``run_method("kd", labeled=1000, seed=0)`` loads the data on the device, draws a seeded class-balanced
labeled subset, builds a fresh student, fetches the cached teacher when the method needs one, and fits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import data as kd_data
from .methods import make_method, method_info
from .models import build_model
from .stats import format_mean_std, mean_std
from .train import History, fit, pick_device, quick_mode, seed_everything
from .zoo import default_recipe, get_teacher

__all__ = ["Setting", "train_student", "train_method", "run_method", "summarize", "mean_std", "load_data", "compare",
           "accuracies", "method_teacher"]


@dataclass
class Setting:
    """The budget every method of a comparison shares. Quick mode shrinks it for CPU tests."""

    dataset: str = "fashion-mnist"
    labeled: int | None = 1000        # class-balanced labeled images; None = the whole training split
    epochs: int = 60                  # KD gains from long training: +1.5 points at 30 epochs, +3.6 at 60 (seed 0)
    batch_size: int = 128
    lr: float = 0.05
    student: str = "student"
    test_size: int | None = None      # None = the whole test split
    eval_every: int = 5               # measure test accuracy every N epochs (and after the last)
    labeled_from: int | None = None   # draw the labeled images from the first N training images (None: all)
    steps: int | None = None          # a budget in optimizer steps, the same for every method whatever its
                                      # training set: then epochs = round(steps / steps per epoch) (at least 1),
                                      # and accuracy is measured at the same fraction eval_every / epochs of the run

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


def _labeled_indices(setting: Setting, seed: int, train, train_indices=None) -> torch.Tensor | None:
    """Indices of the labeled images in the training split (None: all of it): ``train_indices``, else a seeded
    class-balanced draw of ``setting.labeled`` images among the first ``setting.labeled_from``."""
    if train_indices is not None:
        return torch.as_tensor(train_indices).cpu()
    n = setting.labeled_from
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= len(train)):
        raise ValueError(f"labeled_from must be an integer in 1..{len(train)} or None, got {n!r}")
    if setting.labeled is None:
        return None if n is None else torch.arange(n)
    return kd_data.labeled_split(train.y if n is None else train.y[:n], setting.labeled, seed=seed).labeled


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
    transfer set without one class.
    """
    m, h = train_method(method, setting, seed, device, teacher, progress, callback, callback_every, stop,
                        history, train_indices, **options)
    return m.student, h


def train_method(method: str, setting: Setting | None = None, seed: int = 0, device="auto", teacher=None,
                 progress: bool = True, callback=None, callback_every: int = 50, stop=None,
                 history: History | None = None, train_indices=None, **options):
    """Like :func:`train_student`, returning ``(method, History)``: the trained :class:`Method` keeps every
    module it trained besides the student (e.g. all of DML's peers, ``method.peers``).

    The method's ``training_set(train, labeled, test)`` builds its training data from the whole splits and the
    labeled indices (the labeled images; SSLD adds unlabeled ones); ``setting.steps`` sets the number of epochs."""
    setting = setting or Setting.default()
    cls = method_info(method).cls               # an unknown method is an error that lists the registered ones
    dev = pick_device(device)
    full, full_test = load_data(setting.dataset, dev)
    labeled = _labeled_indices(setting, seed, full, train_indices)
    train = full if labeled is None else full.subset(labeled.to(dev))
    test = _test_view(setting, full_test)
    if cls.needs_teacher and teacher is None:
        teacher = method_teacher(method, setting.dataset, dev)
    seed_everything(seed)
    student = build_model(setting.student, in_channels=train.x.shape[1], num_classes=train.num_classes,
                          image_size=train.x.shape[-1])
    m = make_method(method, student, teacher, **options)
    train = m.training_set(full, labeled, full_test)     # the labeled images, or more (SSLD)
    epochs, eval_every = _budget(setting, len(train))
    h = fit(m, train, test, epochs=epochs, batch_size=setting.batch_size, lr=setting.lr,
            seed=seed, device=dev, eval_every=eval_every, progress=progress, callback=callback,
            callback_every=callback_every, stop=stop, history=history)
    return m, h


def method_teacher(method: str, dataset: str, device="auto", **kwargs):
    """The zoo teacher a method trains with: its ``teacher_recipe`` (SSLD: ``first20k``, a teacher that never saw
    the unlabeled images) or the data set's default, in quick mode the quick variant when none is on disk.
    ``kwargs`` go to :func:`kd_lab.zoo.get_teacher`."""
    base = method_info(method).cls.teacher_recipe       # an unknown method is an error
    return get_teacher(dataset, default_recipe(dataset, base), device=device, **kwargs)


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
    accuracy over seeds, in percent; ``text`` is "mean ± std" with "–" for a missing std."""
    accs = [100 * h.test_acc for h in histories if h.test_acc is not None]
    mean, std = mean_std(accs)
    return {"n": len(accs), "mean": mean, "std": std, "values": accs, "text": format_mean_std(mean, std)}


def compare(runs: dict, seeds=(0, 1, 2), setting: Setting | None = None, progress: bool = True,
            **kwargs) -> dict[str, list[History]]:
    """Train every ``label -> (method, options)`` of ``runs`` for every seed on the same setting.

    Returns ``label -> [History per seed]``; a tqdm bar counts the runs.
    """
    from tqdm.auto import tqdm
    results = {label: [] for label in runs}
    bar = tqdm(total=len(runs) * len(seeds), desc="runs", disable=not progress)
    for label, (method, options) in runs.items():
        for seed in seeds:
            bar.set_postfix_str(f"{label}, seed {seed}")
            results[label].append(run_method(method, setting, seed=seed, progress=False, **kwargs, **options))
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
