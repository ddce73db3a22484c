"""Benchmarks: images/s of a KD epoch through ``fit`` against a tutorial-style reference loop, and
(:func:`method_steps`) of every method's training step on the same device, in one table, with the teacher
run online and, for the methods that declare teacher outputs, read from a warm
:class:`kd_lab.teacher_cache.TeacherCache`.

The reference is how most tutorials write it: a torchvision ``FashionMNIST`` Dataset with PIL
transforms, a ``DataLoader`` with 2 workers, fp32, and a host-to-device copy per batch. Both loops
train the same 70k-parameter student with the same KD loss from the same teacher, on the same images,
in the same process, and the table prints the ratio.
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from functools import partial

import torch
import torch.nn.functional as F

from . import data as kd_data
from .experiments import Setting, train_method
from .losses import kd_loss
from .methods import make_method
from .models import build_model
from .recipes import RECIPES
from .train import amp_enabled, device_name, fit, pick_device, seed_everything
from .zoo import get_teacher, train_teacher

__all__ = ["reference_kd_epoch", "kd_lab_kd_epoch", "run", "main", "method_steps", "format_method_table"]


def _tutorial_dataset(root, n_images: int):
    import torchvision
    from torchvision import transforms
    ds = kd_data.DATASETS["fashion-mnist"]
    tf = transforms.Compose([transforms.RandomCrop(28, padding=ds.pad), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(), transforms.Normalize(ds.mean, ds.std)])
    full = torchvision.datasets.FashionMNIST(str(root), train=True, transform=tf, download=False)
    return torch.utils.data.Subset(full, range(n_images))


def reference_kd_epoch(teacher, n_images: int, device, batch_size: int = 128) -> float:
    """One KD epoch written as in a tutorial; returns images/s."""
    loader = torch.utils.data.DataLoader(_tutorial_dataset(kd_data.fetch("fashion-mnist"), n_images),
                                         batch_size=batch_size, shuffle=True, num_workers=2)
    seed_everything(0)
    student = build_model("student").to(device).train()
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    teacher.eval()
    start, seen = time.perf_counter(), 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)                  # host-to-device copy per batch
        with torch.no_grad():
            t = teacher(x)
        s = student(x)
        loss = 0.1 * F.cross_entropy(s, y) + 0.9 * kd_loss(s, t, 4.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(y)
    _sync(device)
    return seen / (time.perf_counter() - start)


def kd_lab_kd_epoch(teacher, n_images: int, device, batch_size: int = 128, amp: str = "auto") -> float:
    """One KD epoch through ``fit`` (device-resident data, batched augmentation, bf16 per ``amp``)."""
    train, _ = kd_data.load("fashion-mnist", device=device)
    train = train.subset(torch.arange(n_images, device=device))
    seed_everything(0)
    kd = make_method("kd", build_model("student"), teacher, temperature=4.0, alpha=0.9)
    hist = fit(kd, train, None, epochs=1, batch_size=batch_size, device=device, amp=amp, progress=False)
    return hist.epochs[0]["images_per_s"]


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def run(device="auto", n_images: int | None = None, teacher_recipe: str | None = None,
        batch_size: int = 128) -> list[dict]:
    """Measure both loops (a warm-up pass each, then the timed pass); optionally time a teacher recipe."""
    dev = pick_device(device)
    n = n_images or (60000 if dev.type == "cuda" else 6000)
    teacher = get_teacher("fashion-mnist", "full", dev, verbose=False)
    rows = []
    loops = [("reference (DataLoader, 2 workers, fp32)", reference_kd_epoch),
             ("kd_lab fit, fp32", partial(kd_lab_kd_epoch, amp="off"))]
    if amp_enabled(dev, "auto"):
        loops.append(("kd_lab fit, bf16 autocast", partial(kd_lab_kd_epoch, amp="bf16")))
    for name, fn in loops:
        fn(teacher, min(n, 2048), dev, batch_size)        # warm-up: kernels, workers, caches
        rows.append({"loop": name, "images": n, "batch": batch_size, "images_per_s": fn(teacher, n, dev, batch_size)})
    ref = rows[0]["images_per_s"]
    for r in rows:
        r["ratio"] = r["images_per_s"] / ref
    if teacher_recipe:
        _, info = train_teacher("fashion-mnist", teacher_recipe, dev, progress=False)
        rows.append({"loop": f"teacher recipe '{teacher_recipe}' ({RECIPES[teacher_recipe]['epochs']} epochs)",
                     "images": None, "images_per_s": info["images_per_s"], "ratio": None,
                     "train_s": info["train_s"], "test_acc": info["test_acc"]})
    for r in rows:
        r["device"] = device_name(dev)
    return rows


def format_table(rows: list[dict]) -> str:
    lines = [f"{'loop':<44} | {'images':>7} | {'batch':>5} | {'images/s':>9} | {'ratio':>6} | extra",
             "-" * 90]
    for r in rows:
        extra = (f"test acc {100 * r['test_acc']:.2f} % in {r['train_s']:.0f} s of training"
                 if "test_acc" in r else "")
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else ""
        lines.append(f"{r['loop']:<44} | {r['images'] or '':>7} | {r.get('batch', ''):>5} | "
                     f"{r['images_per_s']:>9.0f} | {ratio:>6} | {extra}")
    lines.append(f"device: {rows[0]['device']}; KD epoch = teacher 'teacher' (1.15M) -> student 'student' (72k)")
    return "\n".join(lines)


# ------------------------------------------------------------------ every method's training step
def method_steps(methods=None, device="auto", n_images: int | None = None, batch_size: int = 128,
                 dataset: str = "fashion-mnist", teacher_cache: bool = True) -> list[dict]:
    """Images/s of each method's training step, through the path the comparison uses
    (:func:`kd_lab.experiments.train_method`: same data, student, batch size and device), one epoch of
    ``n_images`` labeled images after a warm-up run of the same method, the teacher run every step; ratio to
    the first method that ran (``scratch`` in the default course order). A method that raises gets a row with
    its error.

    With ``teacher_cache``, a method that declares teacher outputs (KD, DKD, SSLD, the RKD family) runs the same
    epoch twice more with a :class:`kd_lab.teacher_cache.TeacherCache`: the first run (``cold_*``) computes the
    (image, view) pairs it lacks, the second, with the same seed, draws the same pairs and finds every one
    cached (``cached_*``: a warm cache); ``*_hit_rate`` is the fraction of pairs served from the cache
    (tables already on disk from earlier runs count as cached), ``cached_ratio`` the warm run's ratio."""
    from .compare import resolve_methods
    names, dev = resolve_methods(methods), pick_device(device)
    n = (60000 if dev.type == "cuda" else 4000) if n_images is None else n_images
    if n <= 0 or batch_size <= 0:
        raise ValueError(f"images and batch size must be positive integers, got {n} and {batch_size}")
    train, _ = kd_data.load(dataset, device=dev)
    setting = Setting(dataset=dataset, labeled=None if n >= len(train) else n, epochs=1, batch_size=batch_size,
                      eval_every=1, test_size=256, teacher_cache=False)
    rows = [_time_method(name, setting, dev, teacher_cache) for name in names]
    ref = next((r for r in rows if r["images_per_s"]), None)
    for r in rows:
        r["ratio"] = r["images_per_s"] / ref["images_per_s"] if ref and r["images_per_s"] else None
        r["cached_ratio"] = r["cached_images_per_s"] / ref["images_per_s"] if ref and r["cached_images_per_s"] else None
        r["reference"] = ref["method"] if ref else None
    return rows


def _time_method(name: str, setting: Setting, dev, teacher_cache: bool = True) -> dict:
    row = {"method": name, "batch": setting.batch_size, "device": device_name(dev), "images": None,
           "images_per_s": None, "ms_per_step": None, "trained_params": None, "error": None,
           "cold_images_per_s": None, "cold_hit_rate": None, "cached_images_per_s": None, "cached_hit_rate": None}
    try:
        train_method(name, replace(setting, labeled=min(setting.labeled or 512, 512)), device=dev, progress=False)
        m, h = train_method(name, setting, device=dev, progress=False)          # the timed epoch
        if teacher_cache and m.teacher_outputs:
            cached = replace(setting, teacher_cache=True)
            cold = train_method(name, cached, device=dev, progress=False)[1]    # fills the pairs this epoch draws
            warm = train_method(name, cached, device=dev, progress=False)[1]    # same seed, same pairs: all cached
            row.update({**_cache_columns("cold", cold), **_cache_columns("cached", warm)})
    except Exception as err:                      # noqa: BLE001 - reported in the table, the others go on
        return {**row, "error": f"{type(err).__name__}: {err}"[:200]}
    e = h.epochs[0]
    steps = math.ceil(e["images"] / setting.batch_size)
    return {**row, "images": e["images"], "images_per_s": e["images_per_s"], "ms_per_step": 1000 * e["train_s"] / steps,
            "trained_params": sum(p.numel() for p in m.trainable_parameters() if p.requires_grad)}


def _cache_columns(prefix: str, h) -> dict:
    return {f"{prefix}_images_per_s": h.epochs[0]["images_per_s"],
            f"{prefix}_hit_rate": h.config.get("teacher_cache_hit_rate")}


def format_method_table(rows: list[dict]) -> str:
    lines = [f"{'method':<10} | {'images':>7} | {'batch':>5} | {'images/s':>9} | {'ms/step':>8} | {'ratio':>6} | "
             f"{'trained params':>14} | {'cached img/s':>12} | {'ratio':>6} | {'cold img/s (hits)':>17}", "-" * 124]
    for r in rows:
        if r["error"]:
            lines.append(f"{r['method']:<10} | failed: {r['error']}")
            continue
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else ""
        cached = cached_ratio = cold = ""
        if r.get("cached_images_per_s"):
            cached, cached_ratio = f"{r['cached_images_per_s']:.0f}", f"{r['cached_ratio']:.2f}x"
            cold = f"{r['cold_images_per_s']:.0f} ({100 * r['cold_hit_rate']:.0f} %)"
        lines.append(f"{r['method']:<10} | {r['images']:>7} | {r['batch']:>5} | {r['images_per_s']:>9.0f} | "
                     f"{r['ms_per_step']:>8.1f} | {ratio:>6} | {r['trained_params']:>14,} | {cached:>12} | "
                     f"{cached_ratio:>6} | {cold:>17}")
    ref = rows[0]["reference"] if rows else None
    lines.append(f"device: {rows[0]['device'] if rows else '-'}; one epoch per method after a warm-up run; "
                 f"ratio = images/s / images/s of {ref or '-'} (measured in this run); cached: the teacher's "
                 f"outputs read from a warm (image, view) cache (kd_lab.teacher_cache), cold: its first run")
    return "\n".join(lines)


def main(args) -> int:
    if getattr(args, "methods", None):
        print(format_method_table(method_steps(args.methods, args.device, args.images, args.batch_size)))
        return 0
    rows = run(args.device, args.images, args.teacher_recipe, args.batch_size)
    print(format_table(rows))
    return 0
