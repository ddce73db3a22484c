"""Tests for kd_lab.data: sources, checks, loading, batches, augmentation and labeled splits.

Nothing here writes into the project's real ``data/`` folder: every test points ``root=`` (and, through
an autouse fixture, ``$KD_LAB_DATA``) at a temporary folder. Nothing goes to the network: the
torchvision and apt sources are replaced by fakes wherever a test could reach them.

The real Fashion-MNIST comes from the Debian package's files under ``/usr/share/datasets/fashion-mnist``
(installed by the project's set-up); it is copied into a temporary data folder once per session.
"""

import filecmp
import gzip
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kd_lab import data

REPO = Path(__file__).resolve().parents[1]
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
NAMES = ("cifar10", "fashion-mnist", "mnist")
IDX_NAMES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
             "train-images-idx3-ubyte", "train-labels-idx1-ubyte")
IDX_SIZES = {"train-images-idx3-ubyte": 16 + 60000 * 784, "train-labels-idx1-ubyte": 8 + 60000,
             "t10k-images-idx3-ubyte": 16 + 10000 * 784, "t10k-labels-idx1-ubyte": 8 + 10000}
FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
OFFLINE = "URLError: <urlopen error [Errno -3] Temporary failure in name resolution>"

needs_system_files = pytest.mark.skipif(
    not SYSTEM_DIR.is_dir(),
    reason=f"{SYSTEM_DIR} is missing: install the Debian package dataset-fashion-mnist (the project's set-up does)")


# ------------------------------------------------------------------------------------------- helpers
def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def names_value(message: str, value) -> bool:
    """True when ``message`` names ``value`` as a whole token (so '5' does not match '50')."""
    return re.search(rf"(?<![\w.-]){re.escape(str(value))}(?![\w.])", message) is not None


def make_images(n: int = 103, c: int = 1, h: int = 4, w: int = 4, *, labels=None, pad: int = 0,
                flip: bool = False, seed: int = 0) -> data.ImageData:
    """A small ImageData with random uint8 pixels; labels default to the image index."""
    x = torch.randint(0, 256, (n, c, h, w), generator=gen(seed), dtype=torch.uint8)
    y = torch.arange(n) if labels is None else torch.as_tensor(labels, dtype=torch.long)
    mean = torch.linspace(0.2, 0.5, c).view(1, c, 1, 1)
    std = torch.linspace(0.25, 0.4, c).view(1, c, 1, 1)
    return data.ImageData(x, y, "fake", tuple(str(i) for i in range(10)), mean, std, pad, flip)


def expected_normalised(u8: torch.Tensor, mean, std) -> torch.Tensor:
    """(u / 255 - mean) / std in float64, per channel, written out independently of the module."""
    mean = torch.as_tensor(mean, dtype=torch.float64).view(1, -1, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float64).view(1, -1, 1, 1)
    return (u8.double() / 255.0 - mean) / std


def match_crop(out: torch.Tensor, img: torch.Tensor, pad: int, flips: bool):
    """The (dy, dx, flipped) with out == crop of the zero-padded img (mirrored when flipped); all matches."""
    c, h, w = img.shape
    padded = torch.zeros(c, h + 2 * pad, w + 2 * pad, dtype=img.dtype)
    padded[:, pad:pad + h, pad:pad + w] = img
    found = []
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[:, dy:dy + h, dx:dx + w]
            for flipped in ((False, True) if flips else (False,)):
                if torch.equal(out, crop.flip(2) if flipped else crop):
                    found.append((dy, dx, flipped))
    return found


def mtimes(folder: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def write_fake_cifar(root: Path, per_batch: int = 20, *, skip: str | None = None):
    """Write CIFAR-10 in torchvision's on-disk format (python pickles); return the arrays written.

    Returns ``(train_flat, train_labels, test_flat, test_labels)`` with the flat rows as stored: 3072
    bytes per image, the red plane first, then green, then blue, each plane row by row.
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(123)
    flats, labels = [], []
    for b, fname in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        flat = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        if b == 0:                                   # a marker image: red plane 255, green 7, blue 0
            flat[0] = np.concatenate([np.full(1024, 255), np.full(1024, 7), np.zeros(1024)]).astype(np.uint8)
        lab = [(7 * i + b) % 10 for i in range(per_batch)]
        flats.append(flat)
        labels.append(lab)
        if fname == skip:
            continue
        batch = {"batch_label": f"fake batch {b}", "labels": lab, "data": flat,
                 "filenames": [f"img_{b}_{i}.png" for i in range(per_batch)]}
        with open(folder / fname, "wb") as f:
            pickle.dump(batch, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(CIFAR_NAMES), "num_cases_per_batch": per_batch, "num_vis": 3072}, f)
    return (np.concatenate(flats[:5]), np.concatenate(labels[:5]), flats[5], np.array(labels[5]))


class SourceCalled(AssertionError):
    pass


def forbid_sources(monkeypatch):
    """Make every source of fetch() fail loudly if it is called."""
    for fn in ("_from_system_dir", "_from_torchvision", "_from_apt"):
        def boom(*args, _fn=fn, **kwargs):
            raise SourceCalled(f"{_fn} was called with {args}")
        monkeypatch.setattr(data, fn, boom)


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(autouse=True)
def isolated_data_root(tmp_path, monkeypatch):
    """$KD_LAB_DATA points at a fresh temporary folder, so no test can touch the real data/ folder."""
    root = tmp_path / "kd_lab_data"
    monkeypatch.setenv("KD_LAB_DATA", str(root))
    return root


@pytest.fixture
def offline(monkeypatch):
    """torchvision's download and apt-get replaced by fakes that fail at once and record their calls."""
    calls = []

    def fake_torchvision(name, root):
        calls.append(("torchvision", name, Path(root)))
        return OFFLINE

    def fake_apt(package):
        calls.append(("apt", package))
        return "apt-get is missing or this process is not root"

    monkeypatch.setattr(data, "_from_torchvision", fake_torchvision)
    monkeypatch.setattr(data, "_from_apt", fake_apt)
    return calls


@pytest.fixture(scope="session")
def fashion_fetch(tmp_path_factory):
    """Fetch Fashion-MNIST from the system files into an empty data folder, once: (root, returned)."""
    if not SYSTEM_DIR.is_dir():
        pytest.skip(f"{SYSTEM_DIR} is missing: install the Debian package dataset-fashion-mnist")
    root = tmp_path_factory.mktemp("fashion_root")
    assert not data.is_complete("fashion-mnist", root)
    returned = data.fetch("fashion-mnist", root=root, download=False, apt=False)
    return root, returned


@pytest.fixture(scope="session")
def fashion_tmp(fashion_fetch):
    """(train, test) Fashion-MNIST loaded from the session's temporary data folder."""
    root, _ = fashion_fetch
    return data.load("fashion-mnist", device="cpu", root=root, download=False, apt=False)


@pytest.fixture
def cifar(tmp_path):
    """A fake CIFAR-10 folder (20 images per batch file) and what was written into it."""
    root = tmp_path / "cifar_root"
    return root, write_fake_cifar(root)


# ------------------------------------------------------------------------ 1. Fashion-MNIST, system files
@needs_system_files
def test_fashion_from_system_files_layout_and_noop(fashion_fetch, monkeypatch):
    root, returned = fashion_fetch
    assert Path(returned) == root
    raw = root / "FashionMNIST" / "raw"
    # torchvision's layout, the four plain IDX files and nothing else (no temporary files left)
    assert sorted(p.name for p in raw.iterdir()) == sorted(IDX_NAMES)
    for name, size in IDX_SIZES.items():
        assert (raw / name).stat().st_size == size, name
    assert data.is_complete("fashion-mnist", root)
    assert not data.is_complete("mnist", root) and not data.is_complete("cifar10", root)

    # a second fetch is a no-op: no source is called (even with every source enabled), no file rewritten
    before = mtimes(root)
    forbid_sources(monkeypatch)
    assert Path(data.fetch("fashion-mnist", root=root)) == root
    assert Path(data.fetch("fashion-mnist", root=str(root), download=True, apt=True)) == root
    assert mtimes(root) == before


@needs_system_files
def test_fashion_load_contents(fashion_tmp):
    train, test = fashion_tmp
    assert (len(train), len(test)) == (60000, 10000)
    for split in (train, test):
        assert split.x.shape[1:] == (1, 28, 28)
        assert split.x.dtype == torch.uint8 and split.y.dtype == torch.int64
        assert split.device == torch.device("cpu")
        assert split.num_classes == 10 and split.classes == FASHION_NAMES
        assert split.name == "fashion-mnist"
        assert int(split.y.min()) == 0 and int(split.y.max()) == 9
    assert torch.bincount(train.y, minlength=10).tolist() == [6000] * 10
    assert torch.bincount(test.y, minlength=10).tolist() == [1000] * 10
    assert train.pad == 2 and train.flip is True
    assert torch.allclose(train.mean.flatten(), torch.tensor([0.2860])) and train.mean.shape == (1, 1, 1, 1)
    assert torch.allclose(train.std.flatten(), torch.tensor([0.3530])) and train.std.shape == (1, 1, 1, 1)


@needs_system_files
def test_fashion_load_matches_the_package_files(fashion_tmp):
    """Labels and test images equal an independent decoding of the gzipped IDX files."""
    train, test = fashion_tmp

    def read_gz(name, header):
        raw = gzip.open(SYSTEM_DIR / f"{name}.gz").read()
        return np.frombuffer(raw, dtype=np.uint8)[header:]

    assert np.array_equal(train.y.numpy(), read_gz("train-labels-idx1-ubyte", 8))
    assert np.array_equal(test.y.numpy(), read_gz("t10k-labels-idx1-ubyte", 8))
    assert np.array_equal(test.x.numpy().reshape(10000, -1), read_gz("t10k-images-idx3-ubyte", 16).reshape(10000, -1))
    assert int(train.y[0]) == 9 and train.classes[int(train.y[0])] == "Ankle boot"


# -------------------------------------------------------------------------- 2. size/header checks, repair
def _break(path: Path, how: str) -> None:
    if how == "truncated":
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 2)
    elif how == "one byte short":
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size - 1)
    elif how == "one byte long":
        with open(path, "ab") as f:
            f.write(b"\0")
    elif how == "bad header":
        with open(path, "r+b") as f:
            f.write(b"\x00\x00\x08\x02")
    elif how == "missing":
        path.unlink()
    else:
        raise AssertionError(how)


@needs_system_files
@pytest.mark.parametrize("how, victim", [
    ("truncated", "train-images-idx3-ubyte"),
    ("one byte short", "t10k-labels-idx1-ubyte"),
    ("one byte long", "train-labels-idx1-ubyte"),
    ("bad header", "t10k-images-idx3-ubyte"),
    ("missing", "train-labels-idx1-ubyte"),
])
def test_broken_idx_file_is_incomplete_and_fetch_repairs_it(fashion_fetch, tmp_path, how, victim):
    good_raw = fashion_fetch[0] / "FashionMNIST" / "raw"
    root = tmp_path / "root"
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in IDX_NAMES:
        shutil.copyfile(good_raw / name, raw / name)
    assert data.is_complete("fashion-mnist", root)
    _break(raw / victim, how)
    assert not data.is_complete("fashion-mnist", root)

    # repaired from the system files (the real gzipped ones, or a folder of plain IDX files)
    system_dir = SYSTEM_DIR
    if how == "one byte long":
        system_dir = tmp_path / "plain_system_dir"
        system_dir.mkdir()
        for name in IDX_NAMES:
            shutil.copyfile(good_raw / name, system_dir / name)
    data.fetch("fashion-mnist", root=root, system_dir=str(system_dir), download=False, apt=False)
    assert data.is_complete("fashion-mnist", root)
    assert sorted(p.name for p in raw.iterdir()) == sorted(IDX_NAMES)
    for name in IDX_NAMES:
        assert filecmp.cmp(raw / name, good_raw / name, shallow=False), name


@pytest.mark.parametrize("content, problem", [
    (b"\x00\x00\x08\x03" + bytes(100), "wrong size or header"),   # a plain IDX file that is far too short
    ("bad gzip", "could not be read"),                             # not gzip at all
    ("cut gzip", "could not be read"),                             # a gzip stream cut short
    (None, "not found"),                                           # the folder lacks the files
])
def test_bad_system_dir_is_reported(tmp_path, offline, content, problem):
    system_dir = tmp_path / "system"
    system_dir.mkdir()
    first = "train-images-idx3-ubyte"
    if isinstance(content, bytes):
        (system_dir / first).write_bytes(content)
    elif content == "bad gzip":
        (system_dir / f"{first}.gz").write_bytes(b"this is not gzip data" * 10)
    elif content == "cut gzip":
        (system_dir / f"{first}.gz").write_bytes(gzip.compress(np.random.default_rng(0).bytes(5000))[:2500])
    root = tmp_path / "root"
    with pytest.raises(data.DataUnavailableError) as info:
        data.fetch("fashion-mnist", root=root, system_dir=str(system_dir), download=False, apt=False)
    message = str(info.value)
    assert f"system files {system_dir}" in message
    assert problem in message and first in message
    assert offline == []                                           # download=False, apt=False: not tried
    assert not data.is_complete("fashion-mnist", root)
    leftovers = [p.name for p in (root / "FashionMNIST" / "raw").glob(".*")]
    assert leftovers == []                                         # no temporary file left behind


# ------------------------------------------------------------------------------------ 3. offline failure
@pytest.mark.parametrize("system_dir", ["nonexistent", None])
def test_fashion_offline_failure_lists_sources_and_fix(tmp_path, offline, system_dir):
    root = tmp_path / "root"
    sysdir = str(tmp_path / "no" / "such" / "dir") if system_dir else None
    with pytest.raises(data.DataUnavailableError) as info:
        data.fetch("fashion-mnist", root=root, system_dir=sysdir, download=True, apt=False)
    message = str(info.value)
    assert "'fashion-mnist'" in message
    assert f"data folder {root / 'FashionMNIST'}" in message
    if sysdir:
        assert f"system files {sysdir}" in message and "not found" in message
    else:
        assert "system files" not in message
    assert "torchvision download" in message and OFFLINE in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "python -m kd_lab data fashion-mnist" in message
    assert offline == [("torchvision", "fashion-mnist", root)]
    assert isinstance(info.value, RuntimeError)


def test_fashion_failure_with_apt_lists_apt(tmp_path, offline):
    sysdir = str(tmp_path / "nowhere")
    with pytest.raises(data.DataUnavailableError) as info:
        data.fetch("fashion-mnist", root=tmp_path / "root", system_dir=sysdir, download=False, apt=True)
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist: apt-get is missing" in message
    assert "torchvision download" not in message
    assert offline == [("apt", "dataset-fashion-mnist")]
    # the sources are listed in the order they were tried
    order = [message.index(s) for s in ("data folder", f"system files {sysdir}", "apt-get install dataset")]
    assert order == sorted(order)


def test_mnist_offline_failure(tmp_path, offline):
    root = tmp_path / "root"
    with pytest.raises(data.DataUnavailableError) as info:
        data.fetch("mnist", root=root, apt=True)
    message = str(info.value)
    assert "'mnist'" in message
    assert f"data folder {root / 'MNIST'}" in message
    assert "torchvision download" in message and OFFLINE in message
    assert "python -m kd_lab data mnist" in message
    assert "system files" not in message and "apt-get" not in message      # mnist has no Debian package
    assert offline == [("torchvision", "mnist", root)]                     # apt is not even tried


def test_fetch_falls_through_to_a_working_source(tmp_path, monkeypatch):
    """A failing source does not stop the chain; the first source that works ends it."""
    calls = []

    def fake_torchvision(name, root):
        calls.append(name)
        write_fake_cifar(Path(root), per_batch=2)
        return None

    monkeypatch.setattr(data, "_from_torchvision", fake_torchvision)
    monkeypatch.setattr(data, "_from_apt", lambda package: pytest.fail("apt tried after a success"))
    root = tmp_path / "root"
    assert Path(data.fetch("cifar10", root=root)) == root
    assert calls == ["cifar10"] and data.is_complete("cifar10", root)


def test_a_source_that_reports_success_but_leaves_files_incomplete(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_from_torchvision", lambda name, root: None)
    with pytest.raises(data.DataUnavailableError, match="torchvision download .*: files still incomplete"):
        data.fetch("mnist", root=tmp_path / "root")


# ------------------------------------------------------------------------------------- 4. CIFAR-10 fake
def test_cifar_from_fake_folder(cifar, monkeypatch):
    root, (xtr, ytr, xte, yte) = cifar
    assert data.is_complete("cifar10", root)
    forbid_sources(monkeypatch)                                   # the files are in place: no source runs
    train, test = data.load("cifar10", root=root, download=False, apt=False)
    assert train.x.shape == (100, 3, 32, 32) and test.x.shape == (20, 3, 32, 32)
    assert train.x.dtype == torch.uint8 and train.y.dtype == torch.int64
    assert train.classes == CIFAR_NAMES and test.classes == CIFAR_NAMES and train.num_classes == 10
    assert train.pad == 4 and train.flip is True and train.name == "cifar10"
    assert train.y.tolist() == ytr.tolist() and test.y.tolist() == yte.tolist()
    # pixel (n, c, h, w) is byte c*1024 + h*32 + w of row n
    for split, flat in ((train, xtr), (test, xte)):
        n = len(flat)
        for c, h, w in [(0, 0, 0), (0, 31, 31), (1, 0, 5), (2, 17, 3), (1, 31, 0)]:
            assert split.x[:, c, h, w].tolist() == flat[:, c * 1024 + h * 32 + w].tolist()
        assert torch.equal(split.x.reshape(n, -1), torch.from_numpy(flat))
    assert (train.x[0, 0] == 255).all() and (train.x[0, 1] == 7).all() and (train.x[0, 2] == 0).all()
    # batches 1..5 are concatenated in order: image 20 is the first of data_batch_2
    assert torch.equal(train.x[20].flatten(), torch.from_numpy(xtr[20]))


def test_cifar_normalisation_is_per_channel(cifar):
    root, _ = cifar
    train, _ = data.load("cifar10", root=root, download=False, apt=False)
    x, y = next(train.batches(1000, shuffle=False))
    assert x.dtype == torch.float32 and x.shape == (100, 3, 32, 32)
    expected = expected_normalised(train.x, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    assert torch.allclose(x.double(), expected, atol=1e-5, rtol=0)
    assert torch.equal(y, train.y)


def test_cifar_incomplete_folder(tmp_path, offline):
    root = tmp_path / "root"
    write_fake_cifar(root, per_batch=2, skip="data_batch_3")
    assert not data.is_complete("cifar10", root)
    with pytest.raises(data.DataUnavailableError) as info:
        data.load("cifar10", root=root, download=False, apt=False)
    message = str(info.value)
    assert "'cifar10'" in message and str(root / "cifar-10-batches-py") in message
    assert "python -m kd_lab data cifar10" in message and "apt-get" not in message
    (root / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"")           # empty file: still incomplete
    assert not data.is_complete("cifar10", root)


def test_default_root_is_env_or_repo_data(cifar, monkeypatch):
    root, _ = cifar
    monkeypatch.setenv("KD_LAB_DATA", str(root))
    assert data.data_root() == root
    assert data.is_complete("cifar10")
    train, test = data.load("cifar10", download=False, apt=False)           # root from $KD_LAB_DATA
    assert (len(train), len(test)) == (100, 20)
    monkeypatch.delenv("KD_LAB_DATA")
    assert data.data_root() == REPO / "data"


# ------------------------------------------------------------------------------------ 5. unknown names
@pytest.mark.parametrize("call", [
    lambda: data.load("nope"),
    lambda: data.fetch("nope", download=False, apt=False),
    lambda: data.is_complete("nope"),
    lambda: data.spec("nope"),
], ids=["load", "fetch", "is_complete", "spec"])
def test_unknown_dataset_name(call, isolated_data_root):
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert "'nope'" in message
    for name in NAMES:
        assert name in message
    assert not isolated_data_root.exists()                         # nothing was created


def test_known_names():
    assert sorted(data.DATASETS) == sorted(NAMES)


# ------------------------------------------------------------------------------------------ 6. batches
@pytest.mark.parametrize("n, batch_size", [(103, 10), (103, 1), (103, 103), (103, 500), (100, 25)])
def test_batches_cover_every_index_once(n, batch_size):
    d = make_images(n)
    batches = list(d.batches(batch_size, generator=gen(1)))
    sizes = [len(yb) for _, yb in batches]
    full, rest = divmod(n, batch_size)
    assert sizes == [batch_size] * full + ([rest] if rest else [])
    seen = torch.cat([yb for _, yb in batches])
    assert sorted(seen.tolist()) == list(range(n))
    for xb, yb in batches:                                          # images travel with their labels
        assert xb.dtype == torch.float32 and xb.shape[1:] == d.x.shape[1:]
        assert torch.allclose(xb.double(), expected_normalised(d.x[yb], d.mean, d.std), atol=1e-5, rtol=0)


def test_batches_order_follows_the_generator():
    d = make_images(103)

    def order(**kw):
        return torch.cat([yb for _, yb in d.batches(16, **kw)]).tolist()

    assert order(generator=gen(7)) == order(generator=gen(7))
    assert order(generator=gen(7)) != order(generator=gen(8))
    assert order(generator=gen(7)) != list(range(103))
    assert order(shuffle=False) == list(range(103))
    assert sorted(order()) == list(range(103))                      # default generator works too
    g = gen(3)                                                      # a generator carries on between epochs
    assert order(generator=g) != order(generator=g)


@pytest.mark.parametrize("batch_size", [0, -1, -32])
def test_batches_bad_size(batch_size):
    with pytest.raises(ValueError, match="batch_size") as info:
        next(make_images(10).batches(batch_size))
    assert names_value(str(info.value), batch_size)


def test_batches_with_augmentation():
    d = make_images(40, c=2, h=6, w=6, pad=2, flip=True)
    one = list(d.batches(8, augment=True, generator=gen(5)))
    two = list(d.batches(8, augment=True, generator=gen(5)))
    for (x1, y1), (x2, y2) in zip(one, two, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    moved = 0
    for xb, yb in one:
        raw = (xb.double() * d.std.double() + d.mean.double()) * 255.0
        u8 = raw.round().to(torch.uint8)
        assert torch.allclose(raw, u8.double(), atol=1e-3)
        for out, i in zip(u8, yb.tolist()):
            found = match_crop(out, d.x[i], 2, True)
            assert found, f"batch image for index {i} is no padded crop / mirror of it"
            moved += found[0] != (2, 2, False)
    assert moved > 0                                                # augmentation did something
    plain = torch.cat([xb for xb, _ in d.batches(8, shuffle=False)])
    assert torch.allclose(plain.double(), expected_normalised(d.x, d.mean, d.std), atol=1e-5, rtol=0)


@needs_system_files
def test_fashion_normalised_mean_and_std(fashion_tmp):
    train, _ = fashion_tmp
    total = total_sq = 0.0
    count = 0
    for xb, _ in train.batches(20000, shuffle=False):
        xb = xb.double()
        total += float(xb.sum())
        total_sq += float((xb * xb).sum())
        count += xb.numel()
    mean = total / count
    std = (total_sq / count - mean * mean) ** 0.5
    assert count == 60000 * 784
    assert abs(mean) < 1e-2 and abs(std - 1.0) < 1e-2


# ------------------------------------------------------------------------------------ 7. augment_batch
@pytest.fixture(params=[torch.uint8, torch.float32], ids=["uint8", "float32"])
def batch(request):
    g = gen(11)
    if request.param == torch.uint8:
        return torch.randint(0, 256, (48, 3, 6, 5), generator=g, dtype=torch.uint8)
    return torch.randn(48, 3, 6, 5, generator=g)


def test_augment_identity_without_pad_or_flip(batch):
    out = data.augment_batch(batch, 0, False, gen(0))
    assert out.dtype == batch.dtype and out.shape == batch.shape
    assert torch.equal(out, batch)


def test_augment_flip_only(batch):
    before = batch.clone()
    out = data.augment_batch(batch, 0, True, gen(1))
    assert out.dtype == batch.dtype and out.shape == batch.shape
    assert torch.equal(batch, before)                               # the input is not changed in place
    flipped = []
    for o, x in zip(out, batch):
        same, mirror = torch.equal(o, x), torch.equal(o, x.flip(2))
        assert same != mirror                                       # exactly one (random images: not symmetric)
        flipped.append(mirror)
    assert 0 < sum(flipped) < len(flipped)


@pytest.mark.parametrize("pad, flip", [(1, False), (2, False), (2, True), (3, True)])
def test_augment_is_a_shifted_crop_of_the_padded_input(batch, pad, flip):
    before = batch.clone()
    out = data.augment_batch(batch, pad, flip, gen(2))
    assert out.dtype == batch.dtype and out.shape == batch.shape
    assert torch.equal(batch, before)
    offsets = set()
    for o, x in zip(out, batch):
        found = match_crop(o, x, pad, flip)
        assert len(found) == 1, found                               # random images: exactly one match
        offsets.add(found[0])
    assert len({(dy, dx) for dy, dx, _ in offsets}) >= 4            # several offsets are drawn
    assert all(0 <= dy <= 2 * pad and 0 <= dx <= 2 * pad for dy, dx, _ in offsets)
    assert {f for _, _, f in offsets} == ({False, True} if flip else {False})


def test_augment_zero_padding_enters_at_the_border():
    x = torch.full((64, 1, 4, 4), 9, dtype=torch.uint8)
    out = data.augment_batch(x, 2, False, gen(3))
    assert set(out.unique().tolist()) == {0, 9}                     # zeros come from the padding only
    assert (out == 9).flatten(1).sum(1).min() >= 4                  # a shift of at most 2: >= 2x2 inside


@pytest.mark.parametrize("pad, flip", [(2, True), (0, True), (4, False)])
def test_augment_reproducible(batch, pad, flip):
    a = data.augment_batch(batch, pad, flip, gen(21))
    b = data.augment_batch(batch, pad, flip, gen(21))
    c = data.augment_batch(batch, pad, flip, gen(22))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


# ------------------------------------------------------------------------------------ 8. labeled_split
LABELS = torch.arange(1000) % 10                                    # 100 per class
LABELS = LABELS[torch.randperm(1000, generator=gen(0))]


def check_partition(split, total):
    lab, unl = split.labeled, split.unlabeled
    assert lab.dtype == torch.int64 and unl.dtype == torch.int64
    assert lab.device.type == "cpu" and unl.device.type == "cpu"
    assert torch.equal(lab, lab.sort().values) and torch.equal(unl, unl.sort().values)
    assert not set(lab.tolist()) & set(unl.tolist())
    assert sorted(lab.tolist() + unl.tolist()) == list(range(total))


@pytest.mark.parametrize("n", [1, 9, 10, 25, 99, 500, 1000])
def test_labeled_split_total_is_balanced(n):
    split = data.labeled_split(LABELS, n, seed=3)
    check_partition(split, 1000)
    assert len(split.labeled) == n
    counts = torch.bincount(LABELS[split.labeled], minlength=10)
    assert int(counts.max() - counts.min()) <= 1


@pytest.mark.parametrize("n", [1, 7, 100])
def test_labeled_split_per_class(n):
    split = data.labeled_split(LABELS, n, per_class=True, seed=3)
    check_partition(split, 1000)
    assert torch.bincount(LABELS[split.labeled], minlength=10).tolist() == [n] * 10


def test_labeled_split_seeds():
    a = data.labeled_split(LABELS, 50, seed=1)
    b = data.labeled_split(LABELS, 50, seed=1)
    c = data.labeled_split(LABELS, 50, seed=2)
    assert torch.equal(a.labeled, b.labeled) and torch.equal(a.unlabeled, b.unlabeled)
    assert not torch.equal(a.labeled, c.labeled)
    p1 = data.labeled_split(LABELS, 5, per_class=True, seed=1)
    p2 = data.labeled_split(LABELS, 5, per_class=True, seed=2)
    assert not torch.equal(p1.labeled, p2.labeled)


def test_labeled_split_all():
    split = data.labeled_split(LABELS, None)
    assert split.labeled.tolist() == list(range(1000)) and len(split.unlabeled) == 0
    check_partition(split, 1000)


def test_labeled_split_odd_labels():
    """Labels need not be 0..K-1 nor balanced; n up to the smallest class works."""
    labels = torch.tensor([5] * 3 + [2] * 30 + [9] * 12)
    split = data.labeled_split(labels, 3, per_class=True, seed=0)
    assert sorted(labels[split.labeled].tolist()) == [2, 2, 2, 5, 5, 5, 9, 9, 9]
    check_partition(split, len(labels))
    split = data.labeled_split(labels, 8, seed=0)
    counts = torch.bincount(labels[split.labeled])[[2, 5, 9]]
    assert counts.sum() == 8 and int(counts.max() - counts.min()) <= 1


@needs_system_files
def test_labeled_split_on_fashion(fashion_tmp):
    train, _ = fashion_tmp
    split = data.labeled_split(train.y, 100, seed=0)
    assert torch.bincount(train.y[split.labeled], minlength=10).tolist() == [10] * 10
    assert len(split.unlabeled) == 59900
    sub = train.subset(split.labeled)
    assert len(sub) == 100 and torch.equal(sub.x, train.x[split.labeled])


@pytest.mark.parametrize("labels, n, per_class", [
    (LABELS, 1001, False),                                         # more than the data
    (LABELS, 0, False),
    (LABELS, -5, False),
    (LABELS, 0, True),
    (LABELS, -2, True),
    (LABELS, 101, True),                                           # 1010 > 1000 images
    (torch.tensor([0] * 3 + [1] * 50 + [2] * 50), 5, True),        # 15 <= 103, but class 0 has only 3
    (torch.tensor([0] * 3 + [1] * 50 + [2] * 50), 30, False),      # balanced 10 per class: class 0 has 3
    (LABELS, 2.5, False),
])
def test_labeled_split_errors(labels, n, per_class):
    with pytest.raises(ValueError) as info:
        data.labeled_split(labels, n, per_class=per_class, seed=0)
    assert names_value(str(info.value), n), str(info.value)


# -------------------------------------------------------------------------- 9. ImageData conveniences
def test_subset():
    d = make_images(30, c=3, pad=4, flip=True)
    idx = torch.tensor([4, 0, 29, 4])
    sub = d.subset(idx)
    assert torch.equal(sub.x, d.x[idx]) and torch.equal(sub.y, d.y[idx])
    assert (sub.name, sub.classes, sub.pad, sub.flip) == (d.name, d.classes, d.pad, d.flip)
    assert torch.equal(sub.mean, d.mean) and torch.equal(sub.std, d.std)
    assert len(sub) == 4
    assert torch.equal(d.subset([1, 2]).y, torch.tensor([1, 2]))   # a list works too
    assert len(d) == 30                                             # the original is unchanged


def test_to_and_device():
    d = make_images(10, c=3, pad=2, flip=True)
    moved = d.to("cpu")
    assert moved.device == torch.device("cpu") and moved.mean.device.type == "cpu"
    assert torch.equal(moved.x, d.x) and torch.equal(moved.y, d.y)
    assert (moved.name, moved.classes, moved.pad, moved.flip) == (d.name, d.classes, 2, True)
    moved = d.to(torch.device("cpu"))
    assert moved.device.type == "cpu"


def test_repr_is_short():
    d = make_images(1000, c=3, h=8, w=8)
    text = repr(d)
    assert text == "ImageData('fake', 1000 images of (3, 8, 8), device=cpu)"
    assert "tensor" not in text and len(text) < 100


def test_images():
    d = make_images(12, c=3)
    allx = d.images()
    assert allx.dtype == torch.float32 and allx.shape == d.x.shape
    assert torch.allclose(allx.double(), expected_normalised(d.x, d.mean, d.std), atol=1e-5, rtol=0)
    idx = torch.tensor([3, 1])
    assert torch.equal(d.images(idx), allx[idx])
    assert torch.equal(d.normalize(d.x[:2]), allx[:2])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda(cifar):
    root, (xtr, ytr, _, _) = cifar
    train, test = data.load("cifar10", device="cuda", root=root, download=False, apt=False)
    assert train.device.type == "cuda" and train.mean.device.type == "cuda"
    g = torch.Generator(device="cuda").manual_seed(0)
    seen = []
    for xb, yb in train.batches(32, augment=True, generator=g):
        assert xb.device.type == "cuda" and yb.device.type == "cuda"
        seen.append(yb.cpu())
    assert len(torch.cat(seen)) == 100
    split = data.labeled_split(train.y, 3, per_class=True)
    assert split.labeled.device.type == "cpu"
    assert train.subset(split.labeled).device.type == "cuda"
    assert torch.equal(train.to("cpu").x, torch.from_numpy(xtr).view(-1, 3, 32, 32))


# ----------------------------------------------------------------------------------------------- 10. CLI
def run_cli(*args, env_root: Path):
    env = dict(os.environ, KD_LAB_DATA=str(env_root),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "kd_lab", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


@needs_system_files
def test_cli_data_fetches_from_system_files(tmp_path):
    root = tmp_path / "cli_data"
    done = run_cli("data", "fashion-mnist", env_root=root)
    assert done.returncode == 0, done.stderr
    assert f"system files {SYSTEM_DIR}" in done.stdout
    assert "fashion-mnist: 60000 train / 10000 test images of (1, 28, 28)" in done.stdout
    assert str(root) in done.stdout
    assert data.is_complete("fashion-mnist", root)


def test_cli_data_unknown_name(tmp_path):
    root = tmp_path / "cli_data"
    done = run_cli("data", "nope", env_root=root)
    assert done.returncode == 2
    assert "'nope'" in done.stderr
    for name in NAMES:
        assert name in done.stderr
    assert "Traceback" not in done.stderr
    assert not root.exists()
