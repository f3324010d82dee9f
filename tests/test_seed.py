"""utils.seed: --deterministic sets the flags torch needs for deterministic GPU kernels, and only then."""

import os

import torch

from utils.seed import setup_seed


def test_deterministic_flags(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    assert torch.backends.cuda.cudnn_sdp_enabled()
    try:
        setup_seed(3)
        assert not torch.are_deterministic_algorithms_enabled()
        assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ and torch.backends.cudnn.benchmark
        setup_seed(3, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()  # a nondeterministic op is an error
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert not torch.backends.cuda.cudnn_sdp_enabled()  # SDPA keeps to kernels with a deterministic backward
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cuda.enable_cudnn_sdp(True)


def test_same_seed_same_draws():
    setup_seed(5)
    first = torch.rand(4)
    setup_seed(5)
    assert torch.equal(first, torch.rand(4))
