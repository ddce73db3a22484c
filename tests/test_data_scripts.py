"""The data scripts, run as a student runs them: ``python data_scripts/fetch.py NAME`` and
``python data_scripts/verify.py NAME`` in a subprocess, with ``$KD_LAB_DATA`` pointing at a temporary folder.

The real Fashion-MNIST comes from the Debian package's files under ``/usr/share/datasets/fashion-mnist``;
nothing goes to the network (``--no-download --no-apt`` wherever a source other than those files could be
tried). Damaged copies (a truncated file, a label out of range, another data set's files, an unreadable
CIFAR-10 batch) live in their own temporary folders.
"""
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "data_scripts"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
NAMES = ("cifar10", "fashion-mnist", "mnist")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
IDX_SIZES = {"train-images-idx3-ubyte": 16 + 60000 * 784, "train-labels-idx1-ubyte": 8 + 60000,
             "t10k-images-idx3-ubyte": 16 + 10000 * 784, "t10k-labels-idx1-ubyte": 8 + 10000}

needs_system_files = pytest.mark.skipif(
    not SYSTEM_DIR.is_dir(),
    reason=f"{SYSTEM_DIR} is missing: install the Debian package dataset-fashion-mnist (the project's set-up does)")


def run_script(script: str, *args, root: Path) -> subprocess.CompletedProcess:
    """``python data_scripts/<script> args...`` with ``$KD_LAB_DATA=root``, from the repository root."""
    env = dict(os.environ, KD_LAB_DATA=str(root),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, str(SCRIPTS / script), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def count_row(stdout: str, label: str) -> tuple[int, int]:
    """The (train, test) counts of the row ``label`` of verify.py's table."""
    match = re.search(rf"^{re.escape(label)}\s+([\d,]+)\s+([\d,]+)$", stdout, re.M)
    assert match, f"no row {label!r} in:\n{stdout}"
    return int(match[1].replace(",", "")), int(match[2].replace(",", ""))


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    """A data folder filled by ``fetch.py fashion-mnist`` (once per module), and that run's result."""
    if not SYSTEM_DIR.is_dir():
        pytest.skip(f"{SYSTEM_DIR} is missing")
    root = tmp_path_factory.mktemp("fetched") / "data"
    return root, run_script("fetch.py", "fashion-mnist", "--no-download", "--no-apt", root=root)


def damaged_copy(fetched_root: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the fetched Fashion-MNIST in a fresh data folder: ``(root, raw folder)``."""
    root = tmp_path / "data"
    shutil.copytree(fetched_root / "FashionMNIST", root / "FashionMNIST")
    return root, root / "FashionMNIST" / "raw"


# ------------------------------------------------------------------------------------------------ --help
@pytest.mark.parametrize("script", ["fetch.py", "verify.py"])
def test_help_names_every_data_set_and_the_default_folder(script, tmp_path):
    done = run_script(script, "--help", root=tmp_path / "data")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: {script}")
    for name in NAMES:
        assert name in done.stdout
    assert "--root" in done.stdout and "$KD_LAB_DATA" in done.stdout
    assert str(tmp_path / "data") in done.stdout.replace("\n", "").replace(" ", "")    # the folder in use
    assert not (tmp_path / "data").exists()


def test_fetch_help_lists_the_sources_and_switches(tmp_path):
    out = run_script("fetch.py", "--help", root=tmp_path).stdout
    assert "--no-download" in out and "--no-apt" in out
    for source in ("/usr/share/datasets/fashion-mnist", "torchvision", "apt-get install dataset-fashion-mnist"):
        assert source in out.replace("\n", " ")


# ------------------------------------------------------------------------------------------------- fetch
@needs_system_files
def test_fetch_copies_the_system_files_and_says_so(fetched):
    root, done = fetched
    assert done.returncode == 0, done.stderr
    assert f"fashion-mnist: files from system files {SYSTEM_DIR}" in done.stdout
    assert f"folder: {root / 'FashionMNIST'}" in done.stdout
    for name, size in IDX_SIZES.items():
        assert (root / "FashionMNIST" / "raw" / name).stat().st_size == size
        assert f"raw/{name}  {size:,} bytes" in done.stdout


@needs_system_files
def test_fetch_again_finds_the_files_in_place(fetched):
    root, _ = fetched
    before = {p: p.stat().st_mtime_ns for p in (root / "FashionMNIST" / "raw").iterdir()}
    done = run_script("fetch.py", "fashion-mnist", "--no-download", "--no-apt", root=root)
    assert done.returncode == 0, done.stderr
    assert "files from the data folder (already complete, nothing fetched)" in done.stdout
    assert "trying" not in done.stdout
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_fetch_fails_with_every_source_tried(tmp_path):
    root = tmp_path / "data"
    done = run_script("fetch.py", "mnist", "--no-download", "--no-apt", root=root)
    assert done.returncode == 1
    assert "data set 'mnist' is not available" in done.stderr
    assert f"data folder {root / 'MNIST'}: missing or incomplete" in done.stderr
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------------------------------------------ verify
@needs_system_files
def test_verify_counts_every_split_and_class(fetched):
    root, _ = fetched
    done = run_script("verify.py", "fashion-mnist", root=root)
    assert done.returncode == 0, done.stderr
    assert f"fashion-mnist in {root / 'FashionMNIST'}: OK" in done.stdout
    assert "image shape (1, 28, 28), torch.uint8" in done.stdout
    for cls in FASHION_CLASSES:
        assert count_row(done.stdout, cls) == (6000, 1000)
    assert count_row(done.stdout, "total") == (60000, 10000)


@needs_system_files
def test_verify_fails_on_a_truncated_file(fetched, tmp_path):
    root, raw = damaged_copy(fetched[0], tmp_path)
    with open(raw / "train-images-idx3-ubyte", "r+b") as f:
        f.truncate(1000)
    done = run_script("verify.py", "fashion-mnist", root=root)
    assert done.returncode == 1
    assert "size and header check" in done.stderr
    assert str(root / "FashionMNIST") in done.stderr
    assert "raw/train-images-idx3-ubyte  1,000 bytes" in done.stderr
    assert f"python data_scripts/fetch.py fashion-mnist --root {root}" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


@needs_system_files
def test_verify_fails_on_a_wrong_header(fetched, tmp_path):
    root, raw = damaged_copy(fetched[0], tmp_path)
    with open(raw / "t10k-labels-idx1-ubyte", "r+b") as f:
        f.write(b"\x00\x00\x09\x99")                                           # not an IDX magic number
    done = run_script("verify.py", "fashion-mnist", root=root)
    assert done.returncode == 1
    assert "size and header check" in done.stderr


@needs_system_files
def test_verify_fails_on_a_label_out_of_range(fetched, tmp_path):
    root, raw = damaged_copy(fetched[0], tmp_path)
    with open(raw / "t10k-labels-idx1-ubyte", "r+b") as f:
        f.seek(8 + 12)                                                          # the label of test image 12
        f.write(bytes([250]))
    done = run_script("verify.py", "fashion-mnist", root=root)
    assert done.returncode == 1
    assert "test: 1 label(s) outside 0..9, the first 250 at image 12" in done.stderr
    assert "train:" not in done.stderr


@needs_system_files
def test_verify_fails_on_another_data_sets_files(fetched, tmp_path):
    """Fashion-MNIST's files under MNIST's name pass the size check but not the mean pixel check."""
    root = tmp_path / "data"
    shutil.copytree(fetched[0] / "FashionMNIST", root / "MNIST")
    done = run_script("verify.py", "mnist", root=root)
    assert done.returncode == 1
    assert "mean pixel per channel [0.286" in done.stderr and "[0.1307]" in done.stderr
    assert "another data set" in done.stderr


def test_verify_fails_on_an_unreadable_cifar_batch(tmp_path):
    """CIFAR-10's check is only "every batch file present and not empty": a cut-short pickle fails loading."""
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (10, 3072), dtype=np.uint8), "labels": list(range(10))}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "data_batch_3").write_bytes((folder / "data_batch_3").read_bytes()[:100])
    done = run_script("verify.py", "cifar10", root=tmp_path / "data")
    assert done.returncode == 1
    assert "pass the size check but cannot be read" in done.stderr
    assert "Traceback" not in done.stderr


def test_verify_of_a_data_set_not_fetched(tmp_path):
    root = tmp_path / "data"
    done = run_script("verify.py", "fashion-mnist", root=root)
    assert done.returncode == 1
    assert f"{root / 'FashionMNIST'} does not exist" in done.stderr
    assert "python data_scripts/fetch.py fashion-mnist" in done.stderr
    assert not root.exists()                                                    # verify never fetches


# ------------------------------------------------------------------------------------- bad names, make
@pytest.mark.parametrize("script", ["fetch.py", "verify.py"])
def test_unknown_name_lists_the_allowed_ones(script, tmp_path):
    root = tmp_path / "data"
    done = run_script(script, "fashion_mnist", root=root)
    assert done.returncode == 2
    assert "'fashion_mnist'" in done.stderr
    for name in NAMES:
        assert f"'{name}'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not root.exists()


def test_make_data_runs_the_fetch_script():
    makefile = (REPO / "Makefile").read_text()
    target = re.search(r"^data:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert target, "the Makefile has no data target"
    assert "$(BIN)/python data_scripts/fetch.py fashion-mnist" in target[1]
