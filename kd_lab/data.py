"""Data sets on the device: fetch, check, load, split and augment.

Whole splits live on the training device as one uint8 tensor ``(N, C, H, W)``; a batch is an index slice
of a permutation drawn on that device, normalised and augmented there with batched tensor ops (random
crop with zero padding, horizontal flip). No DataLoader workers in the hot loop.

Sources, tried in order (see :func:`fetch`): the project's data folder (``KD_LAB_DATA``, default
``data/`` at the repository root), the files of the Debian package ``dataset-fashion-mnist``,
torchvision's download (short timeout), and ``apt-get install`` where the machine has apt and runs as root.
"""
from __future__ import annotations

import gzip
import numbers
import os
import pickle
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "DATASETS", "DataUnavailableError", "ImageData", "Split", "data_root", "fetch", "load",
    "labeled_split", "augment_batch",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
DOWNLOAD_TIMEOUT_S = 10.0

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# IDX files: name -> (number of items, bytes of one item, header bytes)
_IDX_FILES = {
    "train-images-idx3-ubyte": (60000, 784, 16), "train-labels-idx1-ubyte": (60000, 1, 8),
    "t10k-images-idx3-ubyte": (10000, 784, 16), "t10k-labels-idx1-ubyte": (10000, 1, 8),
}
_CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


@dataclass(frozen=True)
class DatasetSpec:
    folder: str              # torchvision's folder name under the data root
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pad: int                 # random-crop padding
    flip: bool               # horizontal flips are label-preserving
    system_dir: str | None   # where a Debian package puts the files
    apt_package: str | None


DATASETS: dict[str, DatasetSpec] = {
    "fashion-mnist": DatasetSpec("FashionMNIST", FASHION_CLASSES, (0.2860,), (0.3530,), 2, True,
                                 "/usr/share/datasets/fashion-mnist", "dataset-fashion-mnist"),
    "mnist": DatasetSpec("MNIST", tuple(str(i) for i in range(10)), (0.1307,), (0.3081,), 2, False, None, None),
    "cifar10": DatasetSpec("cifar-10-batches-py", CIFAR_CLASSES, (0.4914, 0.4822, 0.4465),
                           (0.2470, 0.2435, 0.2616), 4, True, None, None),
}


class DataUnavailableError(RuntimeError):
    """No source could provide a data set; the message lists every source tried and how to fix it."""


def spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]


def data_root() -> Path:
    """The project's data folder: ``$KD_LAB_DATA`` or ``data/`` at the repository root."""
    return Path(os.environ.get("KD_LAB_DATA", REPO_ROOT / "data"))


# ---------------------------------------------------------------------------------------------- checks
def _idx_ok(path: Path) -> bool:
    count, item, header = _IDX_FILES[path.name]
    if not path.is_file() or path.stat().st_size != header + count * item:
        return False
    with open(path, "rb") as f:
        return int.from_bytes(f.read(4), "big") in (0x801, 0x803)


def _cifar_ok(path: Path) -> bool:
    return all((path / f).is_file() and (path / f).stat().st_size > 0 for f in _CIFAR_FILES)


def is_complete(name: str, root: Path | None = None) -> bool:
    """True when the data folder holds every file of ``name``, with the expected sizes."""
    root = Path(root or data_root())
    if name == "cifar10":
        return _cifar_ok(root / spec(name).folder)
    raw = root / spec(name).folder / "raw"
    return all(_idx_ok(raw / f) for f in _IDX_FILES)


# --------------------------------------------------------------------------------------------- sources
def _from_system_dir(name: str, root: Path, system_dir: Path) -> str | None:
    """Copy (gunzipping) the IDX files of a system package into the data folder; None on success."""
    raw = root / spec(name).folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for base in _IDX_FILES:
        gz, plain = system_dir / f"{base}.gz", system_dir / base
        src = gz if gz.is_file() else plain
        if not src.is_file():
            return f"{src} not found"
        tmp = raw / f".{base}.tmp"
        try:
            with (gzip.open(src) if src is gz else open(src, "rb")) as fin, open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout)
        except (OSError, EOFError) as err:     # a corrupt or cut-short .gz: report it, try the next source
            tmp.unlink(missing_ok=True)
            return f"{src} could not be read: {type(err).__name__}: {err}"
        os.replace(tmp, raw / base)
        if not _idx_ok(raw / base):
            return f"{src} has the wrong size or header"
    return None


def _from_torchvision(name: str, root: Path) -> str | None:
    """torchvision's own download, with a short socket timeout so an offline machine fails fast."""
    import torchvision.datasets as tvd

    cls = {"fashion-mnist": tvd.FashionMNIST, "mnist": tvd.MNIST, "cifar10": tvd.CIFAR10}[name]
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        cls(str(root), train=True, download=True)
        cls(str(root), train=False, download=True)
    except Exception as err:  # noqa: BLE001 - every failure is reported, none is fatal here
        return f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
    finally:
        socket.setdefaulttimeout(old)
    return None


def _from_apt(package: str) -> str | None:
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        return "apt-get is missing or this process is not root"
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            return f"{' '.join(cmd)} failed: {done.stderr.strip()[-200:]}"
    return None


def fetch(name: str = "fashion-mnist", root: Path | str | None = None, *, system_dir: str | None = "default",
          download: bool = True, apt: bool = True, verbose: bool = False) -> Path:
    """Make sure the files of ``name`` are in the data folder and return that folder.

    Tries the data folder, the system package's files, torchvision's download and ``apt-get install``
    in this order; a second call finds the files in place and does nothing. Raises
    :class:`DataUnavailableError` listing every source tried when none works.
    """
    ds = spec(name)
    root = Path(root or data_root())
    if is_complete(name, root):
        return root
    root.mkdir(parents=True, exist_ok=True)
    sysdir = ds.system_dir if system_dir == "default" else system_dir
    tried = [f"data folder {root / ds.folder}: missing or incomplete"]
    steps = []
    if sysdir:
        steps.append((f"system files {sysdir}", lambda: _from_system_dir(name, root, Path(sysdir))))
    if download:
        steps.append((f"torchvision download (timeout {DOWNLOAD_TIMEOUT_S:.0f} s)",
                      lambda: _from_torchvision(name, root)))
    if apt and ds.apt_package and sysdir:
        steps.append((f"apt-get install {ds.apt_package}",
                      lambda: _from_apt(ds.apt_package) or _from_system_dir(name, root, Path(sysdir))))
    for label, step in steps:
        if verbose:
            print(f"[kd_lab] {name}: trying {label} ...")
        problem = step()
        if problem is None and is_complete(name, root):
            return root
        tried.append(f"{label}: {problem or 'files still incomplete'}")
    fixes = [f"sudo apt-get install {ds.apt_package}"] if ds.apt_package else []
    fixes.append(f"python -m kd_lab data {name}   (on a machine with internet)")
    raise DataUnavailableError(
        f"data set {name!r} is not available. Sources tried:\n  - " + "\n  - ".join(tried)
        + "\nTo fix, run one of:\n  " + "\n  ".join(fixes)
        + f"\nor copy the files into {root / ds.folder}.")


# ---------------------------------------------------------------------------------------------- loading
def _read_idx(path: Path) -> np.ndarray:
    _, _, header = _IDX_FILES[path.name]
    data = np.frombuffer(path.read_bytes(), dtype=np.uint8, offset=header)
    return data.reshape(-1, 1, 28, 28) if header == 16 else data


def _read_cifar(folder: Path, files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for f in files:
        with open(folder / f, "rb") as fh:
            batch = pickle.load(fh, encoding="latin1")
        xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(batch["labels"], dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


@dataclass
class ImageData:
    """A split of a data set: uint8 images ``(N, C, H, W)`` and int64 labels ``(N,)`` on one device."""

    x: torch.Tensor = field(repr=False)
    y: torch.Tensor = field(repr=False)
    name: str
    classes: tuple[str, ...] = field(repr=False)
    mean: torch.Tensor = field(repr=False)     # (1, C, 1, 1) on the same device
    std: torch.Tensor = field(repr=False)
    pad: int = 0
    flip: bool = False

    def __len__(self) -> int:
        return self.x.shape[0]

    def __repr__(self) -> str:
        return f"ImageData({self.name!r}, {len(self)} images of {tuple(self.x.shape[1:])}, device={self.device})"

    @property
    def device(self) -> torch.device:
        return self.x.device

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to(self, device) -> ImageData:
        return ImageData(self.x.to(device), self.y.to(device), self.name, self.classes,
                         self.mean.to(device), self.std.to(device), self.pad, self.flip)

    def subset(self, indices: torch.Tensor) -> ImageData:
        idx = torch.as_tensor(indices, device=self.device)
        return ImageData(self.x[idx], self.y[idx], self.name, self.classes, self.mean, self.std, self.pad, self.flip)

    def normalize(self, x_uint8: torch.Tensor) -> torch.Tensor:
        return (x_uint8.float() / 255.0 - self.mean) / self.std     # (B, C, H, W) float32

    def images(self, indices=None) -> torch.Tensor:
        """Normalised float images at ``indices`` (all when None)."""
        return self.normalize(self.x if indices is None else self.x[indices])

    def batches(self, batch_size: int, *, shuffle: bool = True, augment: bool = False,
                generator: torch.Generator | None = None, with_index: bool = False):
        """Yield ``(x, y)`` batches: slices of a permutation drawn on the device, normalised there.
        ``with_index=True`` yields ``(x, y, idx)``, ``idx`` (B,) the batch's indices into this data set."""
        if not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        n = len(self)
        order = (torch.randperm(n, device=self.device, generator=generator) if shuffle
                 else torch.arange(n, device=self.device))
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            xb = self.x[idx]                                   # (B, C, H, W) uint8
            if augment:
                xb = augment_batch(xb, self.pad, self.flip, generator)
            yield (self.normalize(xb), self.y[idx], idx) if with_index else (self.normalize(xb), self.y[idx])


def augment_batch(x: torch.Tensor, pad: int, flip: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop with zero padding ``pad`` and random horizontal flip, for a whole batch at once."""
    b, c, h, w = x.shape
    dev = x.device
    if pad > 0:
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))               # (B, C, H+2p, W+2p)
        dy = torch.randint(0, 2 * pad + 1, (b, 1), device=dev, generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (b, 1), device=dev, generator=generator)
        rows = (dy + torch.arange(h, device=dev))[:, None, :, None]             # (B, 1, H, 1)
        cols = (dx + torch.arange(w, device=dev))[:, None, None, :]             # (B, 1, 1, W)
        bidx = torch.arange(b, device=dev)[:, None, None, None]
        cidx = torch.arange(c, device=dev)[None, :, None, None]
        x = padded[bidx, cidx, rows, cols]                                      # (B, C, H, W)
    if flip:
        mask = torch.rand(b, device=dev, generator=generator) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x


def load(name: str = "fashion-mnist", device="cpu", root: Path | str | None = None,
         **fetch_options) -> tuple[ImageData, ImageData]:
    """Fetch if needed, then return ``(train, test)`` as :class:`ImageData` on ``device``."""
    ds = spec(name)
    root = fetch(name, root, **fetch_options)
    if name == "cifar10":
        (xtr, ytr), (xte, yte) = (_read_cifar(root / ds.folder, _CIFAR_FILES[:5]),
                                  _read_cifar(root / ds.folder, _CIFAR_FILES[5:]))
    else:
        raw = root / ds.folder / "raw"
        xtr, ytr = _read_idx(raw / "train-images-idx3-ubyte"), _read_idx(raw / "train-labels-idx1-ubyte")
        xte, yte = _read_idx(raw / "t10k-images-idx3-ubyte"), _read_idx(raw / "t10k-labels-idx1-ubyte")
    mean = torch.tensor(ds.mean).view(1, -1, 1, 1)
    std = torch.tensor(ds.std).view(1, -1, 1, 1)

    def make(x, y):
        return ImageData(torch.from_numpy(np.array(x)), torch.from_numpy(np.array(y)).long(), name,
                         ds.classes, mean, std, ds.pad, ds.flip).to(device)
    return make(xtr, ytr), make(xte, yte)


# ------------------------------------------------------------------------------------------------ splits
@dataclass
class Split:
    """Indices of a labeled subset and of the unlabeled pool (whose labels are for evaluation only)."""

    labeled: torch.Tensor
    unlabeled: torch.Tensor


def labeled_split(labels: torch.Tensor, n: int | None, *, per_class: bool = False, seed: int = 0) -> Split:
    """Seeded, class-balanced split of ``labels`` into ``n`` labeled indices (``n`` per class when
    ``per_class``) and the rest. ``n=None`` labels everything. Indices are sorted, on the CPU."""
    labels = labels.cpu()
    total = len(labels)
    if n is None:
        return Split(torch.arange(total), torch.empty(0, dtype=torch.long))
    classes = torch.unique(labels)
    if len(classes) == 0:
        raise ValueError("cannot split an empty set of labels")
    want = n * len(classes) if per_class else n
    if not isinstance(n, numbers.Integral) or n <= 0 or want > total:
        raise ValueError(f"labeled size must be an integer in 1..{total // (len(classes) if per_class else 1)}"
                         f"{' per class' if per_class else ''} for this data, got {n}")
    g = torch.Generator().manual_seed(seed)
    quota = torch.full((len(classes),), want // len(classes), dtype=torch.long)
    quota[torch.randperm(len(classes), generator=g)[: want % len(classes)]] += 1
    chosen = []
    for k, cls in enumerate(classes):
        members = torch.nonzero(labels == cls).flatten()
        if quota[k] > len(members):
            raise ValueError(f"labeled size {n} needs {int(quota[k])} images of class {int(cls)}, "
                             f"which has only {len(members)}")
        chosen.append(members[torch.randperm(len(members), generator=g)[: quota[k]]])
    lab = torch.cat(chosen).sort().values
    mask = torch.ones(total, dtype=torch.bool)
    mask[lab] = False
    return Split(lab, torch.nonzero(mask).flatten())
