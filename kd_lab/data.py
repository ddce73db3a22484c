"""Data sets on the device: fetch, check, load, split and augment.

Whole splits live on the training device as one uint8 tensor ``(N, C, H, W)``; a batch is an index slice
of a permutation drawn on that device, normalised and augmented there with batched tensor ops (random
crop with zero padding, horizontal flip). No DataLoader workers in the hot loop.

Sources, tried in order (see :func:`fetch`): the project's data folder (``KD_LAB_DATA``, default
``data/`` at the repository root), the files of the Debian package ``dataset-fashion-mnist``,
torchvision's download (short timeout), and ``apt-get install`` as root, only when the user asks for it
(``--apt``, ``KD_LAB_ALLOW_APT=1``). One process fetches at a time (a lock file); files are checked by size
and header before use, and their contents (labels, image counts) when they are loaded; CIFAR-10's pickled
batches are read by an unpickler that refuses anything but NumPy arrays and plain values.
"""
from __future__ import annotations

import codecs
import contextlib
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

from .locking import file_lock, temporary_path

__all__ = [
    "DATASETS", "DataUnavailableError", "DataCorruptError", "ImageData", "Split", "data_root", "fetch",
    "fetch_report", "FetchReport", "apt_allowed", "is_complete", "check_files", "load",
    "labeled_split", "augment_batch", "view_images", "num_views", "identity_view",
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
def _files_dir(name: str, root: Path) -> Path:
    """Where the files of ``name`` belong in the data folder ``root``: ``FashionMNIST/raw`` (torchvision's
    layout of the IDX files), ``cifar-10-batches-py`` for CIFAR-10."""
    folder = Path(root) / spec(name).folder
    return folder if name == "cifar10" else folder / "raw"


def _idx_problem(path: Path) -> str | None:
    """What is wrong with one IDX file (None: nothing): missing, its size, its header (magic number and count)."""
    count, item, header = _IDX_FILES[path.name]
    expected = header + count * item
    if not path.is_file():
        return f"missing (expected {expected:,} bytes)"
    size = path.stat().st_size
    if size != expected:
        return f"{size:,} bytes, expected {expected:,}"
    with open(path, "rb") as f:
        magic, items = int.from_bytes(f.read(4), "big"), int.from_bytes(f.read(4), "big")
    want = 0x803 if header == 16 else 0x801                 # idx3: uint8 images, idx1: uint8 labels
    if magic != want:
        return f"header 0x{magic:08x} is not the IDX header 0x{want:08x}"
    if items != count:
        return f"header says {items:,} items, expected {count:,}"
    return None


def _cifar_problem(path: Path) -> str | None:
    """What is wrong with one CIFAR-10 batch file (None: nothing): missing or empty."""
    if not path.is_file():
        return "missing"
    return "empty (0 bytes)" if path.stat().st_size == 0 else None


def check_files(name: str, root: Path | str | None = None) -> dict[str, str]:
    """Each file of ``name`` in the data folder that is not right, with its problem: ``{path relative to the
    data set's folder: problem}``, e.g. ``{"raw/train-images-idx3-ubyte": "1,000 bytes, expected 47,040,016"}``.
    IDX files: missing, size, header (magic number, item count); CIFAR-10 batches: missing or empty (their
    contents are checked when they are read). Empty: every file is in place."""
    root = Path(root or data_root())
    folder, files = root / spec(name).folder, _files_dir(name, root)
    if name == "cifar10":
        found = {f: _cifar_problem(files / f) for f in _CIFAR_FILES}
    else:
        found = {f: _idx_problem(files / f) for f in _IDX_FILES}
    return {str((files / f).relative_to(folder)): problem for f, problem in found.items() if problem}


def is_complete(name: str, root: Path | str | None = None) -> bool:
    """True when the data folder holds every file of ``name``, with the expected sizes (:func:`check_files`)."""
    return not check_files(name, root)


# --------------------------------------------------------------------------------------------- sources
def _from_system_dir(name: str, root: Path, system_dir: Path) -> str | None:
    """Copy (gunzipping) the IDX files of a system package into the data folder; None on success. Each file is
    written under a temporary name of this process, then renamed into place."""
    raw = _files_dir(name, root)
    raw.mkdir(parents=True, exist_ok=True)
    for base in _IDX_FILES:
        gz, plain = system_dir / f"{base}.gz", system_dir / base
        src = gz if gz.is_file() else plain
        if not src.is_file():
            return f"{src} not found"
        tmp = temporary_path(raw / base)
        try:
            with (gzip.open(src) if src is gz else open(src, "rb")) as fin, open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout)
        except (OSError, EOFError) as err:     # a corrupt or cut-short .gz: report it, try the next source
            tmp.unlink(missing_ok=True)
            if getattr(err, "filename", None) and Path(err.filename).parent == raw:
                return f"cannot write the data folder {raw}: {err.strerror or err}"
            return f"{src} could not be read: {type(err).__name__}: {err}"
        os.replace(tmp, raw / base)
        if _idx_problem(raw / base):
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


APT_ENV = "KD_LAB_ALLOW_APT"


def apt_allowed(apt: bool | None = None) -> bool:
    """Whether :func:`fetch` may run ``apt-get install``: ``apt`` when given, else ``$KD_LAB_ALLOW_APT`` set to
    1 (or true/yes). Never by default: installing system packages is the user's call."""
    if apt is not None:
        return bool(apt)
    return os.environ.get(APT_ENV, "").strip().lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class FetchReport:
    """What :func:`fetch_report` did: the data folder, the source the files came from (``"data folder"`` when
    they were already in place) and each source tried before it, with its problem."""

    root: Path
    source: str
    tried: tuple[str, ...] = ()


def fetch(name: str = "fashion-mnist", root: Path | str | None = None, *, system_dir: str | None = "default",
          download: bool = True, apt: bool | None = None, verbose: bool = False) -> Path:
    """Make sure the files of ``name`` are in the data folder and return that folder.

    Tries the data folder, the system package's files, torchvision's download and, only when asked
    (``apt=True`` or ``$KD_LAB_ALLOW_APT=1``: :func:`apt_allowed`), ``apt-get install`` as root, in this
    order; a second call finds the files in place and does nothing. One process fetches at a time (a lock
    file in the data folder, :mod:`kd_lab.locking`): another waits, then finds the files. Raises
    :class:`DataUnavailableError` listing every source tried, and what to run, when none works.
    :func:`fetch_report` also says which source worked.
    """
    return fetch_report(name, root, system_dir=system_dir, download=download, apt=apt, verbose=verbose).root


def fetch_report(name: str = "fashion-mnist", root: Path | str | None = None, *, system_dir: str | None = "default",
                 download: bool = True, apt: bool | None = None, verbose: bool = False) -> FetchReport:
    """:func:`fetch`, returning a :class:`FetchReport`: the folder and the source its files came from."""
    ds = spec(name)
    root = Path(root or data_root())
    if is_complete(name, root):
        return FetchReport(root, "data folder")
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(file_lock(root / ds.folder, f"fetching {name} into {root}"))
        except OSError as err:                  # the folder cannot be created or written: no source can help
            raise DataUnavailableError(_unavailable(name, root, [
                f"data folder {root / ds.folder}: missing or incomplete, and it cannot be written "
                f"({type(err).__name__}: {err.strerror or err})"], writable=False)) from None
        if is_complete(name, root):             # another process fetched the files while this one waited
            return FetchReport(root, "data folder (fetched by another process)")
        return _try_sources(name, root, system_dir, download, apt_allowed(apt), verbose)


def _try_sources(name: str, root: Path, system_dir, download: bool, apt: bool, verbose: bool) -> FetchReport:
    """The source chain of :func:`fetch_report`, under its lock."""
    ds = spec(name)
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
        try:
            problem = step()
        except OSError as err:                  # writing the data folder failed (full disk, permissions)
            problem = f"cannot write the data folder {root}: {type(err).__name__}: {err}"
        if problem is None and is_complete(name, root):
            return FetchReport(root, label, tuple(tried))
        tried.append(f"{label}: {problem or 'files still incomplete'}")
    if not apt and ds.apt_package and sysdir:
        tried.append(f"apt-get install {ds.apt_package}: not run (kd_lab runs apt-get only when asked: "
                     f"python -m kd_lab data {name} --apt, or {APT_ENV}=1)")
    raise DataUnavailableError(_unavailable(name, root, tried))


def _unavailable(name: str, root: Path, tried: list[str], writable: bool = True) -> str:
    """The message of :class:`DataUnavailableError`: every source tried, then what to run."""
    ds = spec(name)
    fixes = [] if writable else [f"make {root} writable, or point KD_LAB_DATA at a folder you can write"]
    if ds.apt_package:
        fixes.append(f"sudo apt-get install {ds.apt_package}   (its files are then copied from {ds.system_dir})")
    fixes.append(f"python -m kd_lab data {name}   (on a machine with internet)")
    files = ", ".join(_CIFAR_FILES if name == "cifar10" else _IDX_FILES)
    return (f"data set {name!r} is not available. Sources tried:\n  - " + "\n  - ".join(tried)
            + "\nTo fix, run one of:\n  " + "\n  ".join(fixes)
            + f"\nor copy its files ({files}) into {_files_dir(name, root)}.")


# ---------------------------------------------------------------------------------------------- loading
class DataCorruptError(DataUnavailableError):
    """A data file passed the size and header check but its contents are wrong (a label outside the
    classes, a CIFAR-10 batch that is not one); the message names the file and how to fetch it again."""


def _read_idx(path: Path) -> np.ndarray:
    count, item, header = _IDX_FILES[path.name]
    data = np.frombuffer(path.read_bytes(), dtype=np.uint8, offset=header)
    if data.size != count * item:               # the file changed since it was checked
        raise DataCorruptError(f"{path} holds {data.size:,} bytes of data, expected {count * item:,}")
    return data.reshape(-1, 1, 28, 28) if header == 16 else data


def _cifar_globals() -> dict:
    """The only globals a CIFAR-10 batch may name: NumPy's array reconstruction (both its module paths, NumPy 1
    and 2), ndarray, dtype, and ``_codecs.encode`` (how protocol 2 stores bytes). None of them runs code."""
    array = np.zeros(1, dtype=np.uint8)
    reconstruct, frombuffer = array.__reduce__()[0], array.__reduce_ex__(5)[0]
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
               ("_codecs", "encode"): codecs.encode, ("codecs", "encode"): codecs.encode}
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{core}.numeric", "_frombuffer")] = frombuffer
    return allowed


class _CifarUnpickler(pickle.Unpickler):
    """Reads a CIFAR-10 batch (a pickled dict of a uint8 array and a list of labels) without running code:
    :func:`_cifar_globals` are the only globals it resolves, any other is refused. A plain ``pickle.load``
    would run whatever a planted file asks for."""

    allowed: dict = {}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.allowed:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR-10 batch never holds "
                                         "(refused: unpickling it could run code)")
        return self.allowed[(module, name)]


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch file: images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)``; a file that is not a
    well-formed batch raises :class:`DataCorruptError`."""
    _CifarUnpickler.allowed = _CifarUnpickler.allowed or _cifar_globals()
    try:
        with open(path, "rb") as fh:
            batch = _CifarUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
        raise DataCorruptError(f"{path} is not a readable CIFAR-10 batch ({type(err).__name__}: {err}); "
                               f"delete it and fetch it again: python -m kd_lab data cifar10") from None
    data = batch.get("data") if isinstance(batch, dict) else None
    labels = batch.get("labels") if isinstance(batch, dict) else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 \
            or not isinstance(labels, list) or len(labels) != len(data):
        raise DataCorruptError(f"{path} is not a CIFAR-10 batch: it needs a (N, 3072) uint8 'data' array and N "
                               f"'labels'; delete it and fetch it again: python -m kd_lab data cifar10")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def _read_cifar(folder: Path, files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    parts = [_read_cifar_batch(folder / f) for f in files]
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])


def _check_split(name: str, split: str, x: np.ndarray, y: np.ndarray, source: Path) -> None:
    """As many images as labels, every label a class index: else :class:`DataCorruptError` naming the file."""
    k = len(spec(name).classes)
    if len(x) != len(y):
        raise DataCorruptError(f"{name} {split}: {len(x):,} images but {len(y):,} labels ({source}); fetch the "
                               f"files again: python -m kd_lab data {name}")
    bad = (y < 0) | (y >= k)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataCorruptError(f"{name} {split}: {int(bad.sum())} label(s) outside 0..{k - 1}, the first {int(y[i])} "
                               f"at image {i} ({source}): the file is damaged; delete it and fetch it again: "
                               f"python -m kd_lab data {name}")


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
    source_index: torch.Tensor | None = field(default=None, repr=False)   # (N,) indices into the split this
                                                # was cut from (set by subset; None: this is a whole split)

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
        source = None if self.source_index is None else self.source_index.to(device)
        return ImageData(self.x.to(device), self.y.to(device), self.name, self.classes,
                         self.mean.to(device), self.std.to(device), self.pad, self.flip, source)

    def subset(self, indices: torch.Tensor) -> ImageData:
        """The images at ``indices``; its ``source_index`` maps them back to the whole split (a subset of a
        subset too), so that a cache of the whole split (:mod:`kd_lab.teacher_cache`) can serve it."""
        idx = torch.as_tensor(indices, device=self.device)
        source = idx if self.source_index is None else self.source_index[idx]
        return ImageData(self.x[idx], self.y[idx], self.name, self.classes, self.mean, self.std, self.pad, self.flip,
                         source)

    def source_indices(self, indices: torch.Tensor | None = None) -> torch.Tensor:
        """Indices into the whole split of this data set's images at ``indices`` (all when None)."""
        own = torch.arange(len(self), device=self.device) if self.source_index is None else self.source_index
        return own if indices is None else own[indices]

    def normalize(self, x_uint8: torch.Tensor) -> torch.Tensor:
        return (x_uint8.float() / 255.0 - self.mean) / self.std     # (B, C, H, W) float32

    def images(self, indices=None) -> torch.Tensor:
        """Normalised float images at ``indices`` (all when None)."""
        return self.normalize(self.x if indices is None else self.x[indices])

    def batches(self, batch_size: int, *, shuffle: bool = True, augment: bool = False,
                generator: torch.Generator | None = None, with_index: bool = False, with_view: bool = False):
        """Yield ``(x, y)`` batches: slices of a permutation drawn on the device, normalised there.
        ``with_index=True`` yields ``(x, y, idx)``, ``idx`` (B,) the batch's indices into this data set;
        ``with_view=True`` yields ``(x, y, idx, view)``, ``view`` (B,) each image's augmentation view
        (:func:`view_images`; the identity view without ``augment``). Either leaves the random stream as is."""
        if not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        n = len(self)
        order = (torch.randperm(n, device=self.device, generator=generator) if shuffle
                 else torch.arange(n, device=self.device))
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            xb = self.x[idx]                                   # (B, C, H, W) uint8
            if augment:
                xb, view = augment_batch(xb, self.pad, self.flip, generator, return_views=True)
            else:
                view = torch.full_like(idx, identity_view(self.pad))
            out = (self.normalize(xb), self.y[idx])
            yield (*out, idx, view) if with_view else (*out, idx) if with_index else out


# ------------------------------------------------------------------------------------------ augmentation
# A view is one of the augmentation's finitely many outcomes: a crop offset (dy, dx) in {0..2p}² of the image
# zero-padded by p, then a horizontal flip or not. Its id is (dy·(2p+1) + dx)·2 + flip, 0..2·(2p+1)²−1:
# 50 views for 28×28 images with p = 2. The identity view (dy = dx = p, no flip) is the image itself.
def num_views(pad: int) -> int:
    """The number of view ids of the augmentation with padding ``pad``: 2·(2p+1)² (50 for p = 2)."""
    return 2 * (2 * pad + 1) ** 2


def identity_view(pad: int) -> int:
    """The id of the un-augmented view (the centre crop, not flipped)."""
    return (pad * (2 * pad + 1) + pad) * 2


def augment_batch(x: torch.Tensor, pad: int, flip: bool, generator: torch.Generator | None = None, *,
                  return_views: bool = False):
    """Random crop with zero padding ``pad`` and random horizontal flip, for a whole batch at once.

    ``return_views=True`` returns ``(images, views)``, ``views`` (B,) the id of each image's view, so that
    ``view_images(x, views, pad)`` renders the same images; the random draws are the same either way."""
    b, dev = x.shape[0], x.device
    dy = dx = torch.full((b,), pad, dtype=torch.long, device=dev)              # the centre crop
    if pad > 0:
        dy = torch.randint(0, 2 * pad + 1, (b, 1), device=dev, generator=generator).flatten()      # (B,)
        dx = torch.randint(0, 2 * pad + 1, (b, 1), device=dev, generator=generator).flatten()
    flipped = torch.zeros(b, dtype=torch.bool, device=dev)
    if flip:
        flipped = torch.rand(b, device=dev, generator=generator) < 0.5                              # (B,)
    out = _render(x, dy, dx, flipped, pad, flip)
    return (out, (dy * (2 * pad + 1) + dx) * 2 + flipped.long()) if return_views else out


def view_images(x: torch.Tensor, views: torch.Tensor, pad: int) -> torch.Tensor:
    """Images ``x`` (B, C, H, W), any dtype, each seen through its view id (see :func:`num_views`): a crop at
    offset (dy, dx) of the image zero-padded by ``pad``, flipped horizontally where the view says so."""
    views = torch.as_tensor(views, device=x.device).long()
    if views.shape != x.shape[:1] or (views.numel() and not 0 <= int(views.min()) <= int(views.max()) < num_views(pad)):
        raise ValueError(f"views must be a ({x.shape[0]},) tensor of view ids in 0..{num_views(pad) - 1} for pad "
                         f"{pad}, got shape {tuple(views.shape)}"
                         + (f", values {int(views.min())}..{int(views.max())}" if views.numel() else ""))
    cell = views // 2
    return _render(x, cell // (2 * pad + 1), cell % (2 * pad + 1), views % 2 == 1, pad, True)


def _render(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flipped: torch.Tensor, pad: int,
            flip: bool) -> torch.Tensor:
    """Crop each image at offset (dy, dx) (B,) of its zero-padding by ``pad``; flip those where ``flipped``
    (only when ``flip``: no flip is possible otherwise)."""
    b, c, h, w = x.shape
    dev = x.device
    if pad > 0:
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))               # (B, C, H+2p, W+2p)
        rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None]    # (B, 1, H, 1)
        cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, None, :]    # (B, 1, 1, W)
        bidx = torch.arange(b, device=dev)[:, None, None, None]
        cidx = torch.arange(c, device=dev)[None, :, None, None]
        x = padded[bidx, cidx, rows, cols]                                      # (B, C, H, W)
    if flip:
        x = torch.where(flipped[:, None, None, None], x.flip(3), x)
    return x


def load(name: str = "fashion-mnist", device="cpu", root: Path | str | None = None,
         **fetch_options) -> tuple[ImageData, ImageData]:
    """Fetch if needed, then return ``(train, test)`` as :class:`ImageData` on ``device``. A split whose labels
    are not class indices, or whose images and labels differ in number, raises :class:`DataCorruptError`."""
    ds = spec(name)
    root = fetch(name, root, **fetch_options)
    files = _files_dir(name, root)
    if name == "cifar10":
        (xtr, ytr), (xte, yte) = _read_cifar(files, _CIFAR_FILES[:5]), _read_cifar(files, _CIFAR_FILES[5:])
        sources = files / "data_batch_1..5", files / "test_batch"
    else:
        xtr, ytr = _read_idx(files / "train-images-idx3-ubyte"), _read_idx(files / "train-labels-idx1-ubyte")
        xte, yte = _read_idx(files / "t10k-images-idx3-ubyte"), _read_idx(files / "t10k-labels-idx1-ubyte")
        sources = files / "train-labels-idx1-ubyte", files / "t10k-labels-idx1-ubyte"
    _check_split(name, "train", xtr, ytr, sources[0])
    _check_split(name, "test", xte, yte, sources[1])
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
