"""Teacher zoo: trained teachers, cached on disk under a key of their recipe.

``get_teacher("fashion-mnist")`` returns a trained teacher in eval mode. It looks in the cache
(``$KD_LAB_CACHE``, default ``~/.cache/kd_lab``), then in the weights shipped with the package, and
otherwise trains one with the recipe and saves it atomically. A file that cannot be read, whose
checksum does not match its weights, whose recipe differs from the one asked for, whose weights do not fit
the recipe's model (a changed preset) or are not finite, or whose accuracy is below the recipe's floor
(``min_accuracy``, :func:`kd_lab.recipes.min_accuracy`) is reported and replaced: by the shipped weights when
they are good (the bad cache file is removed), else by a teacher trained now. A newly trained teacher below
its floor or with non-finite weights is never saved (:class:`BadTeacherError`). One process trains a given
teacher at a time (a lock file next to it, :mod:`kd_lab.locking`): a second one waits, then loads it. The
recipes themselves are data in :mod:`kd_lab.recipes` (``RECIPES`` and ``training_indices`` are re-exported
here).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.torch_version import TorchVersion

from . import data as kd_data
from .locking import file_lock, temporary_path
from .methods import Scratch
from .models import build_model
from .recipes import RECIPES, min_accuracy, trained_part, training_indices
from .recipes import resolve_recipe as _recipe
from .train import device_name, evaluate, fit, pick_device, quick_mode, seed_everything

__all__ = ["RECIPES", "recipe_key", "training_indices", "default_recipe", "get_teacher", "train_teacher",
           "save_teacher", "load_teacher", "cache_dir", "SHIPPED_DIR", "CorruptTeacherError", "BadTeacherError"]

FORMAT = 1
SHIPPED_DIR = Path(__file__).resolve().parent / "weights"

class CorruptTeacherError(RuntimeError):
    """A cached teacher file is unreadable, fails its checksum, holds another recipe or other shapes, or holds a
    teacher that is not good (non-finite weights, accuracy below its recipe's floor): it is replaced."""


class BadTeacherError(RuntimeError):
    """A teacher that must not be saved: its weights are not finite, or its test accuracy is below its recipe's
    floor (the training diverged)."""


def cache_dir() -> Path:
    return Path(os.environ.get("KD_LAB_CACHE", Path.home() / ".cache" / "kd_lab")) / "teachers"


def recipe_key(dataset: str, recipe: dict) -> str:
    """A short hash of the data set, the recipe (the fields that decide the weights,
    :func:`kd_lab.recipes.trained_part`: ``min_accuracy`` is left out) and the file format."""
    blob = json.dumps({"dataset": dataset, "format": FORMAT, **trained_part(recipe)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _file_name(dataset: str, recipe: dict) -> str:
    rng = recipe.get("train_range")           # a teacher of part of the split says which part in its name
    split = "" if not rng else (f"-first{rng[1]}" if rng[0] == 0 else f"-range{rng[0]}-{rng[1]}")
    return f"{dataset}-{recipe['preset']}{split}-{recipe_key(dataset, recipe)}.pt"


def _checksum(state: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _problem(state: dict, info: dict, dataset: str, recipe: dict) -> str | None:
    """Why a teacher is not good (None: it is): non-finite weights, or a recorded test accuracy below the
    recipe's floor (:func:`kd_lab.recipes.min_accuracy`)."""
    bad = sorted(k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all())
    if bad:
        return f"its weights are not finite ({len(bad)} tensor(s) with NaN or inf, e.g. {bad[0]!r})"
    acc, floor = info.get("test_acc"), min_accuracy(recipe, len(kd_data.spec(dataset).classes))
    if acc is not None and not acc >= floor:
        return (f"its test accuracy {100 * acc:.2f} % is below the recipe's floor of {100 * floor:.0f} % "
                f"(min_accuracy): the training diverged")
    return None


def save_teacher(model: nn.Module, path: Path, dataset: str, recipe: dict, info: dict, half: bool = True) -> Path:
    """Write weights (fp16 when ``half``), recipe, checksum and ``info`` to ``path`` atomically. A teacher whose
    weights are not finite, or whose ``info["test_acc"]`` is below the recipe's floor, is refused
    (:class:`BadTeacherError`): nothing is written."""
    state = {k: (v.half() if half and v.is_floating_point() else v).cpu() for k, v in model.state_dict().items()}
    problem = _problem(state, info, dataset, recipe)
    if problem:
        raise BadTeacherError(f"the {dataset} teacher of recipe {trained_part(recipe)} was not saved: {problem}. "
                              f"Check the data (python data_scripts/verify.py {dataset}) and train it again, e.g. "
                              f"without bf16: python -m kd_lab teacher --retrain --amp off")
    payload = {"format": FORMAT, "dataset": dataset, "recipe": trained_part(recipe),
               "key": recipe_key(dataset, recipe), "state_dict": state, "sha256": _checksum(state), "info": info}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)                  # this process's own temporary name
    torch.save(payload, tmp)
    os.replace(tmp, path)                       # atomic: readers see the old file or the new one
    return path


def load_teacher(path: Path, dataset: str, recipe: dict, device="cpu") -> tuple[nn.Module, dict]:
    """Load a teacher file, checking it; raises :class:`CorruptTeacherError` when it is not usable."""
    try:
        with torch.serialization.safe_globals([TorchVersion]):     # files written before info held str only
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - truncated, garbage, wrong format: all mean "rebuild"
        raise CorruptTeacherError(f"{path} cannot be read ({type(err).__name__}: {err})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or "state_dict" not in payload:
        raise CorruptTeacherError(f"{path} is not a kd_lab teacher file of format {FORMAT}")
    wanted = trained_part(recipe)
    if payload.get("key") != recipe_key(dataset, recipe) or payload.get("recipe") != wanted:
        raise CorruptTeacherError(f"{path} is stale: it holds recipe {payload.get('recipe')}, wanted {wanted}")
    if _checksum(payload["state_dict"]) != payload.get("sha256"):
        raise CorruptTeacherError(f"{path} fails its checksum: the weights were damaged")
    info = payload.get("info", {})
    problem = _problem(payload["state_dict"], info, dataset, recipe)
    if problem:
        raise CorruptTeacherError(f"{path} holds a teacher that is not good: {problem}")
    model = _build(dataset, recipe)
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()})
    except RuntimeError as err:                 # missing or unexpected tensors, other shapes: a changed preset
        first = str(err).strip().splitlines()[-1].strip()
        raise CorruptTeacherError(f"{path} is stale: its weights do not fit the {recipe['preset']!r} model "
                                  f"({first})") from None
    return model.to(device).eval(), info


def _build(dataset: str, recipe: dict) -> nn.Module:
    ds = kd_data.spec(dataset)
    size = 32 if dataset == "cifar10" else 28
    return build_model(recipe["preset"], in_channels=len(ds.mean), num_classes=len(ds.classes), image_size=size)


def train_teacher(dataset: str = "fashion-mnist", recipe="full", device="auto", amp: str = "auto",
                  progress: bool = True) -> tuple[nn.Module, dict]:
    """Train a teacher by its recipe; returns the model and an info dict (accuracy, time, device)."""
    recipe = _recipe(recipe)
    dev = pick_device(device)
    train, test = kd_data.load(dataset, device=dev)
    if recipe["train_size"] or recipe.get("train_range"):
        train = train.subset(training_indices(recipe, train.y).to(dev))
    seed_everything(recipe["seed"])
    method = Scratch(_build(dataset, recipe))
    hist = fit(method, train, test, epochs=recipe["epochs"], batch_size=recipe["batch_size"], lr=recipe["lr"],
               weight_decay=recipe["weight_decay"], optimizer=recipe["optimizer"], seed=recipe["seed"],
               device=dev, amp=amp, augment=recipe["augment"], progress=progress)
    if hist.status != "finished":               # stopped (Ctrl-C): nothing is saved, the caller is interrupted
        raise KeyboardInterrupt(f"teacher training did not finish (status {hist.status}); nothing was saved")
    model = method.student.eval()
    with torch.no_grad():                       # round to the fp16 weights that will be shipped/cached
        for v in model.state_dict().values():
            if v.is_floating_point():
                v.copy_(v.half().float())
    info = {"test_acc": evaluate(model, test).accuracy, "last_epoch_acc_fp32": hist.test_acc,
            "train_s": sum(e["train_s"] for e in hist.epochs),
            "images_per_s": hist.images_per_s, "device": device_name(dev), "amp": amp,
            "torch": str(torch.__version__), "date": time.strftime("%Y-%m-%d")}
    return model, info


def default_recipe(dataset: str, base: str = "full") -> str:
    """``base`` (``full``, or e.g. ``first20k``) when its weights are shipped or cached (loading is instant),
    else its quick variant (``quick``, ``first20k-quick``) in quick mode."""
    name = _file_name(dataset, _recipe(base))
    if not quick_mode() or (SHIPPED_DIR / name).is_file() or (cache_dir() / name).is_file():
        return base
    return "quick" if base == "full" else f"{base}-quick"


def get_teacher(dataset: str = "fashion-mnist", recipe=None, device="auto", *, retrain: bool = False,
                amp: str = "auto", progress: bool = True, verbose: bool = True) -> nn.Module:
    """A trained teacher for ``dataset`` in eval mode: from the cache, the shipped weights, or trained now.

    The returned model carries ``model.zoo_info`` (test accuracy, training time and device of its recipe,
    the file's path and the recipe itself).
    """
    kd_data.spec(dataset)
    recipe = _recipe(recipe or default_recipe(dataset))
    dev = pick_device(device)
    cached = cache_dir() / _file_name(dataset, recipe)
    if not retrain:
        model = _load_first(dataset, recipe, dev, cached)
        if model is not None:
            return model
    with file_lock(cached, f"training the {dataset} teacher ({recipe['preset']})"):
        if not retrain:                         # another process may have trained it while this one waited
            model = _load_first(dataset, recipe, dev, cached, warn=False)
            if model is not None:
                return model
        if verbose:
            print(f"[kd_lab] training the {dataset} teacher ({recipe['preset']}, {recipe['epochs']} epochs) "
                  f"-> {cached}", file=sys.stderr, flush=True)
        model, info = train_teacher(dataset, recipe, dev, amp=amp, progress=progress)
        save_teacher(model, cached, dataset, recipe, info)     # BadTeacherError: a diverged run is not kept
    model.zoo_info = {**info, "path": str(cached), "recipe": recipe}
    return model


def _load_first(dataset: str, recipe: dict, dev, cached: Path, warn: bool = True) -> nn.Module | None:
    """The teacher from the cache file, else from the shipped weights (None: neither is there and good). A bad
    cache file is reported (``warn``) and removed when the shipped weights stand in for it; otherwise the
    caller trains and overwrites it."""
    bad = None
    for path in (cached, SHIPPED_DIR / cached.name):
        if not path.exists():
            continue
        try:
            model, info = load_teacher(path, dataset, recipe, dev)
        except CorruptTeacherError as err:
            bad = bad or (path if path == cached else None)
            if warn:
                warnings.warn(f"{err}; {_fallback(path, cached)}", stacklevel=3)
            continue
        if bad is not None:                     # the shipped weights replace the bad cache file for good
            bad.unlink(missing_ok=True)
        model.zoo_info = {**info, "path": str(path), "recipe": recipe}
        return model
    return None


def _fallback(bad: Path, cached: Path) -> str:
    """What :func:`get_teacher` does about the bad file ``bad``: the words of its warning."""
    if bad != cached:
        return f"training a new one into the cache ({cached})"
    if (SHIPPED_DIR / cached.name).exists():
        return "removing it and using the shipped weights"
    return "training a new one to replace it"
