"""Shared fixtures: a tiny synthetic data root written once per test session."""

from __future__ import annotations

import os

import pytest
import torch

# Tests use tiny tensors: one thread per test process is fastest, and with pytest-xdist's two workers on
# two cores it avoids OpenMP threads spinning against each other. Subprocesses inherit the setting.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Modules holding a test marked ``slow`` first, each module's tests kept together and in order: with two
    pytest-xdist workers the long tests start early, and the short ones fill in around them at the end."""
    slow_modules = {item.module for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module not in slow_modules)


@pytest.fixture(autouse=True)
def _cpu_unless_marked_cuda(request, monkeypatch):
    """Tests not marked ``cuda`` run on the CPU even where a GPU is visible: ``--device auto`` would pick it,
    and these tests assert results that are bit-exact only on the CPU. Subprocesses see no GPU either."""
    if request.node.get_closest_marker("cuda") is None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep the SHA-1 cache of every test out of the user's ~/.cache."""
    monkeypatch.setenv("EMT_DLFR_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "sha1-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    """A data root holding the synthetic ``tiny`` preset (TINY/Processed/unaligned_12.pkl)."""
    from preprocess.make_synthetic import make_synthetic

    root = tmp_path_factory.mktemp("tiny_root")
    make_synthetic("tiny", root, seed=0)
    return root
