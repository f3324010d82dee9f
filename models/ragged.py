"""Packed ("ragged") token layouts: the valid tokens of a padded batch, without the padding.

The fast path skips the padded positions of every per-token operation (projections, LayerNorms,
feed-forward layers; in BERT and in the EMT). A padded batch x (B, T, ...) with a validity mask (B, T) is
packed into its N valid rows (N, ...); only attention, which mixes tokens of one clip, unpacks them again
to (B, T, ...) and masks the padded keys. Nothing downstream reads the padded positions: the losses are
masked to the valid ones, and padded keys are masked in every attention (docs/REFERENCE.md §4, §5),
so the results at the valid positions are those of the padded computation. Unpacked results hold zeros
at the padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Ragged:
    """Where the valid tokens of a (B, T) batch sit: ``index`` (N,) flat positions b * T + t, ``mask`` (B, T) bool."""

    index: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def from_mask(cls, mask: torch.Tensor) -> "Ragged":
        """Layout of the True positions of a (B, T) bool mask."""
        return cls(mask.flatten().nonzero().squeeze(1), mask)

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, ...) padded -> (N, ...) valid rows."""
        return x.flatten(0, 1).index_select(0, self.index)

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """(N, ...) valid rows -> (B, T, ...) padded with zeros."""
        batch, length = self.mask.shape
        padded = x.new_zeros(batch * length, *x.shape[1:]).index_copy(0, self.index, x)
        return padded.view(batch, length, *x.shape[1:])


def every_clip_has_tokens(*masks: torch.Tensor) -> bool:
    """True when every clip has at least one valid position in each (B, T) mask.

    A clip without any valid key is the one case where the reference reads the padding (it attends
    uniformly over its all-masked keys), so packing is exact only when this holds.
    """
    return all(bool(mask.any(dim=-1).all()) for mask in masks)
