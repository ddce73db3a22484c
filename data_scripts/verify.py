#!/usr/bin/env python3
"""Check the files of one data set in the project's data folder, load them, and count the images.

    python data_scripts/verify.py fashion-mnist       # also: mnist, cifar10

Checks, in order, each failure a message on stderr and exit status 1:

1. the data set's folder exists (else: run ``data_scripts/fetch.py NAME``);
2. its files pass :func:`kd_lab.data.check_files`, the size and header check that ``kd_lab.data`` runs
   before it uses them (IDX files: exact size, magic number and item count; CIFAR-10: every batch file
   present, not empty); each bad file is named with its problem and expected size;
3. :func:`kd_lab.data.load` reads them (from the folder only: nothing is fetched), which checks the labels
   and image counts and reads CIFAR-10's batches without running code;
4. in each split every label is a class index in 0..K−1 and every class has images;
5. the mean pixel value of the training split, per channel, is within 0.01 of the normalisation mean
   ``kd_lab.data`` uses for this data set (files of another data set under this name fail here).

Then it prints the images per split and per class. Exit status 0: all good; 2: bad arguments (an unknown
data set name lists the allowed ones). Needs the installed ``kd_lab`` package (``make setup``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import torch

    from kd_lab import data
except ModuleNotFoundError as err:          # a fresh clone before `make setup`
    sys.exit(f"verify.py: cannot import kd_lab ({err}); run `make setup` first and use .venv/bin/python")

__all__ = ["MEAN_TOLERANCE", "VerifyError", "build_parser", "verify", "report", "class_counts", "label_problems",
           "pixel_means", "main"]

MEAN_TOLERANCE = 0.01       # |mean pixel of the files − kd_lab.data's normalisation mean|, per channel, in [0, 1]


class VerifyError(RuntimeError):
    """Something is wrong with a data set's files; the message says what and how to fix it."""


def _refetch(name: str, root: Path) -> str:
    """The fix: fetch.py keeps files that pass the size check, so the damaged folder goes first."""
    return (f"to fix: delete {root / data.DATASETS[name].folder} and fetch the files again: "
            f"python data_scripts/fetch.py {name} --root {root}")


def _listing(folder: Path) -> str:
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    return "\n".join(f"  {p.relative_to(folder)}  {p.stat().st_size:,} bytes" for p in files) or "  (no file)"


def class_counts(split: data.ImageData) -> list[int]:
    """Images per class of ``split``, a list of K counts (labels outside 0..K−1 are not counted)."""
    y = split.y[(split.y >= 0) & (split.y < split.num_classes)]
    return torch.bincount(y, minlength=split.num_classes).tolist()


def label_problems(split: data.ImageData, split_name: str) -> list[str]:
    """What is wrong with the labels of ``split``: values outside 0..K−1, classes without an image."""
    k = split.num_classes
    problems = []
    bad = (split.y < 0) | (split.y >= k)
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        problems.append(f"{split_name}: {int(bad.sum())} label(s) outside 0..{k - 1}, the first {int(split.y[i])} "
                        f"at image {i}")
    empty = [split.classes[c] for c, n in enumerate(class_counts(split)) if n == 0]
    if empty:
        problems.append(f"{split_name}: no image of class(es) {empty}")
    return problems


def pixel_means(split: data.ImageData, chunk: int = 10000) -> list[float]:
    """Mean pixel value per channel of ``split``, in [0, 1], summed in chunks (C floats)."""
    total = torch.zeros(split.x.shape[1], dtype=torch.float64)
    for start in range(0, len(split), chunk):
        total += split.x[start:start + chunk].double().sum(dim=(0, 2, 3))   # (C,)
    pixels = len(split) * split.x.shape[2] * split.x.shape[3]
    return (total / (255.0 * pixels)).tolist()


def verify(name: str, root: Path) -> tuple[data.ImageData, data.ImageData]:
    """Run the checks of this script on ``name`` in ``root``; returns ``(train, test)`` or raises
    :class:`VerifyError`."""
    folder = root / data.DATASETS[name].folder
    if not folder.is_dir():
        raise VerifyError(f"{name} is not in the data folder: {folder} does not exist; "
                          f"fetch it: python data_scripts/fetch.py {name} --root {root}")
    bad = data.check_files(name, root)
    if bad:
        problems = "\n".join(f"  {path}: {problem}" for path, problem in bad.items())
        raise VerifyError(f"{name}: the files in {folder} fail kd_lab.data's size and header check "
                          f"(a file is missing, cut short, too long or has a wrong header):\n{problems}\n"
                          f"Files found:\n{_listing(folder)}\n{_refetch(name, root)}")
    try:
        train, test = data.load(name, root=root, system_dir=None, download=False, apt=False)
    except data.DataCorruptError as err:     # labels outside the classes, a batch that is not one: named by load
        raise VerifyError(f"{name}: the files in {folder} pass the size check but cannot be read as {name} "
                          f"data: {err}\n{_refetch(name, root)}") from err
    except Exception as err:  # noqa: BLE001 - any reader error means damaged files; report it, no traceback
        raise VerifyError(f"{name}: the files in {folder} pass the size check but cannot be read: "
                          f"{type(err).__name__}: {err}\n{_refetch(name, root)}") from err
    problems = label_problems(train, "train") + label_problems(test, "test")
    expected = data.DATASETS[name].mean
    means = pixel_means(train)
    if any(abs(m - e) > MEAN_TOLERANCE for m, e in zip(means, expected)):
        problems.append(f"train: mean pixel per channel {[round(m, 4) for m in means]} differs from {name}'s "
                        f"{list(expected)} by more than {MEAN_TOLERANCE}: are these the files of another data set?")
    if problems:
        raise VerifyError(f"{name} in {folder}:\n  " + "\n  ".join(problems) + f"\n{_refetch(name, root)}")
    return train, test


def report(name: str, folder: Path, train: data.ImageData, test: data.ImageData) -> str:
    """The table this script prints: images per class and per split."""
    width = max(len(c) for c in train.classes)
    lines = [f"{name} in {folder}: OK", f"image shape {tuple(train.x.shape[1:])}, {train.x.dtype}",
             f"{'class':<{width}}  {'train':>7}  {'test':>7}"]
    for c, (n_train, n_test) in enumerate(zip(class_counts(train), class_counts(test))):
        lines.append(f"{train.classes[c]:<{width}}  {n_train:>7,}  {n_test:>7,}")
    lines.append(f"{'total':<{width}}  {len(train):>7,}  {len(test):>7,}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="verify.py", description="Check a data set's files in the data folder (size and header as "
        "kd_lab.data checks them, then load them, labels, mean pixel) and print the images per split and "
        "per class. Exit status 1 with a message when anything is wrong.",
        epilog="Nothing is fetched: run data_scripts/fetch.py NAME first. See data_scripts/README.md.")
    p.add_argument("name", choices=sorted(data.DATASETS), metavar="NAME",
                   help=f"the data set, one of: {', '.join(sorted(data.DATASETS))}")
    p.add_argument("--root", type=Path, default=None,
                   help=f"the data folder (default: $KD_LAB_DATA, else data/ at the repository root; "
                        f"here: {data.data_root()})")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    root = args.root or data.data_root()
    try:
        train, test = verify(args.name, root)
    except VerifyError as err:
        print(f"verify.py: {err}", file=sys.stderr)
        return 1
    print(report(args.name, root / data.DATASETS[args.name].folder, train, test))
    return 0


if __name__ == "__main__":
    sys.exit(main())
