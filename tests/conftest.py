"""Shared fixtures: small real Fashion-MNIST subsets on the CPU, a student/teacher pair and a real batch, an
isolated teacher cache, and a guard that plots never touch pyplot."""
import importlib
import pkgutil

import matplotlib.pyplot as plt
import pytest
import torch

from kd_lab import data as kd_data
from kd_lab.models import build_model


@pytest.fixture(scope="session")
def fashion():
    """(train, test) Fashion-MNIST on the CPU, the real files."""
    return kd_data.load("fashion-mnist", device="cpu")


@pytest.fixture(scope="session")
def small(fashion):
    """A class-balanced 500-image train subset and the first 500 test images."""
    train, test = fashion
    idx = kd_data.labeled_split(train.y, 500, seed=0).labeled
    return train.subset(idx), test.subset(torch.arange(500))


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """An empty teacher cache for the test."""
    monkeypatch.setenv("KD_LAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "teachers"


@pytest.fixture(scope="module")
def nets():
    """A student (``student-tiny``: 8/16/32 channels, embedding width 32) and a frozen, randomly initialised
    'teacher' (``student``: 16/32/64 channels, embedding width 64)."""
    torch.manual_seed(0)
    return build_model("student-tiny"), build_model("student").eval()


@pytest.fixture(scope="module")
def batch(small):
    """The first 32 images of the ``small`` training subset: (32, 1, 28, 28), (32,)."""
    train, _ = small
    return next(train.batches(32, shuffle=False))


@pytest.fixture
def no_pyplot_figures():
    """No pyplot figure before or after the test (viz must never touch pyplot's global state); modules use it
    with ``pytestmark = pytest.mark.usefixtures("no_pyplot_figures")``."""
    assert plt.get_fignums() == []
    yield
    assert plt.get_fignums() == []


def assert_exports_union_of_families(package, families) -> None:
    """``package`` (kd_lab.viz, kd_lab.exercises) has exactly the modules ``families`` names, and its ``__all__`` is
    the union of theirs, no name exported by two families."""
    found = sorted(m.name for m in pkgutil.iter_modules(package.__path__))
    assert found == sorted(families)                      # a new family module needs its entry in the test
    union = [name for f in found for name in importlib.import_module(f"{package.__name__}.{f}").__all__]
    assert len(union) == len(set(union)), "a name is exported by two families"
    assert sorted(package.__all__) == sorted(union)


def views_of_each_evaluation(panel) -> list:
    """Record ``(view, figure, png)`` each time the panel's run has made a new live view (every redraw forced)."""
    seen, redraw = [], panel._redraw

    def record(h, force=False):
        redraw(h, force=True)
        if h.view is not None and (not seen or seen[-1][0] is not h.view):
            seen.append((h.view, panel.view_figure, bytes(panel.view_plot.value)))

    panel._redraw = record
    return seen
