"""Shared fixtures: small real Fashion-MNIST subsets on the CPU, and an isolated teacher cache."""
import pytest
import torch

from kd_lab import data as kd_data


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
