"""Teacher zoo: trained teachers, cached on disk under a key of their recipe.

``get_teacher("fashion-mnist")`` returns a trained teacher in eval mode. It looks in the cache
(``$KD_LAB_CACHE``, default ``~/.cache/kd_lab``), then in the weights shipped with the package, and
otherwise trains one with the recipe and saves it atomically. A file that cannot be read, whose
checksum does not match its weights, or whose recipe differs from the one asked for is reported and
rebuilt. The recipes themselves are data in :mod:`kd_lab.recipes` (``RECIPES`` and ``training_indices`` are
re-exported here).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.torch_version import TorchVersion

from . import data as kd_data
from .methods import Scratch
from .models import build_model
from .recipes import RECIPES, training_indices
from .recipes import resolve_recipe as _recipe
from .train import device_name, evaluate, fit, pick_device, quick_mode, seed_everything

__all__ = ["RECIPES", "recipe_key", "training_indices", "default_recipe", "get_teacher", "train_teacher",
           "save_teacher", "load_teacher", "cache_dir", "SHIPPED_DIR", "CorruptTeacherError"]

FORMAT = 1
SHIPPED_DIR = Path(__file__).resolve().parent / "weights"

class CorruptTeacherError(RuntimeError):
    """A cached teacher file is unreadable, fails its checksum, or holds another recipe."""


def cache_dir() -> Path:
    return Path(os.environ.get("KD_LAB_CACHE", Path.home() / ".cache" / "kd_lab")) / "teachers"


def recipe_key(dataset: str, recipe: dict) -> str:
    """A short hash of the data set, the recipe and the file format."""
    blob = json.dumps({"dataset": dataset, "format": FORMAT, **recipe}, sort_keys=True)
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


def save_teacher(model: nn.Module, path: Path, dataset: str, recipe: dict, info: dict, half: bool = True) -> Path:
    """Write weights (fp16 when ``half``), recipe, checksum and ``info`` to ``path`` atomically."""
    state = {k: (v.half() if half and v.is_floating_point() else v).cpu() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "dataset": dataset, "recipe": recipe, "key": recipe_key(dataset, recipe),
               "state_dict": state, "sha256": _checksum(state), "info": info}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
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
    if payload.get("key") != recipe_key(dataset, recipe) or payload.get("recipe") != recipe:
        raise CorruptTeacherError(f"{path} is stale: it holds recipe {payload.get('recipe')}, wanted {recipe}")
    if _checksum(payload["state_dict"]) != payload.get("sha256"):
        raise CorruptTeacherError(f"{path} fails its checksum: the weights were damaged")
    model = _build(dataset, recipe)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()})
    return model.to(device).eval(), payload.get("info", {})


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
    if hist.status != "finished":
        raise RuntimeError(f"teacher training did not finish (status {hist.status}); nothing was saved")
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
    name = _file_name(dataset, recipe)
    cached = cache_dir() / name
    for path in ([] if retrain else [cached, SHIPPED_DIR / name]):
        if not path.exists():
            continue
        try:
            model, info = load_teacher(path, dataset, recipe, dev)
            model.zoo_info = {**info, "path": str(path), "recipe": recipe}
            return model
        except CorruptTeacherError as err:
            warnings.warn(f"{err}; rebuilding it", stacklevel=2)
    if verbose:
        print(f"[kd_lab] training the {dataset} teacher ({recipe['preset']}, {recipe['epochs']} epochs) "
              f"-> {cached}")
    model, info = train_teacher(dataset, recipe, dev, amp=amp, progress=progress)
    save_teacher(model, cached, dataset, recipe, info)
    model.zoo_info = {**info, "path": str(cached), "recipe": recipe}
    return model
