"""DLFR heads: SimSiam projector / predictor and reconstruction heads (docs/REFERENCE.md §4, §8).

* :class:`Projector` - Linear(d, d) -> BatchNorm1d(d, affine=False); no ReLU (a single layer).
* :class:`Predictor` - Linear(d, p, bias=False) -> BatchNorm1d(p) -> ReLU -> Linear(p, d).
* :func:`reconstruction_head` - Linear(D -> feature width) with bias, applied to the EMT's local outputs.

The BatchNorm layers are :class:`ViewBatchNorm1d`: in training mode a batch of ONE sample (where
``nn.BatchNorm1d`` raises, and the reference crashes) is normalised with the running statistics, which
are left unchanged. This is the model's one deliberate deviation from the reference; every other batch
size behaves exactly as ``nn.BatchNorm1d``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ViewBatchNorm1d(nn.BatchNorm1d):
    """``nn.BatchNorm1d`` that uses (and does not update) its running statistics for a 1-sample training batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1 and self.track_running_stats:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


class Projector(nn.Module):
    """SimSiam projector: Linear(d, d) -> BatchNorm1d(d, affine=False). (B, d) -> (B, d)."""

    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim), ViewBatchNorm1d(dim, affine=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Predictor(nn.Module):
    """SimSiam predictor: Linear(d, p, bias=False) -> BatchNorm1d(p) -> ReLU -> Linear(p, d). (B, d) -> (B, d)."""

    def __init__(self, dim: int, pred_dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, pred_dim, bias=False),
            ViewBatchNorm1d(pred_dim),
            nn.ReLU(inplace=True),
            nn.Linear(pred_dim, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def reconstruction_head(d_model: int, feature_dim: int) -> nn.Linear:
    """Linear(D -> feature_dim) with bias: reconstructs one modality's features from its EMT local tokens."""
    return nn.Linear(d_model, feature_dim)
