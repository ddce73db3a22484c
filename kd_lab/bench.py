"""Benchmark: images/s of a KD epoch through ``fit`` against a tutorial-style reference loop.

The reference is how most tutorials write it: a torchvision ``FashionMNIST`` Dataset with PIL
transforms, a ``DataLoader`` with 2 workers, fp32, and a host-to-device copy per batch. Both loops
train the same 70k-parameter student with the same KD loss from the same teacher, on the same images,
in the same process, and the table prints the ratio.
"""
from __future__ import annotations

import time
from functools import partial

import torch
import torch.nn.functional as F

from . import data as kd_data
from .losses import kd_loss
from .methods import KD
from .models import build_model
from .train import amp_enabled, device_name, fit, pick_device, seed_everything
from .zoo import RECIPES, get_teacher, train_teacher

__all__ = ["reference_kd_epoch", "kd_lab_kd_epoch", "run", "main"]


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
    hist = fit(KD(build_model("student"), teacher, temperature=4.0, alpha=0.9), train, None, epochs=1,
               batch_size=batch_size, device=device, amp=amp, progress=False)
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


def main(args) -> int:
    rows = run(args.device, args.images, args.teacher_recipe, args.batch_size)
    print(format_table(rows))
    return 0
