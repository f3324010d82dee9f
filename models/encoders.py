"""Audio and vision encoders: ``AuViSubNet`` (docs/REFERENCE.md §4, §8).

A unidirectional LSTM reads the valid frames of each clip (packed by length). The clip's utterance vector
is the last layer's final hidden state h_n -> dropout -> ``linear_1``; its local sequence is the padded
per-step output over the batch's longest clip -> the same ``linear_1``. ``linear_1`` is an Identity when
the LSTM width already equals the output width (MOSEI and SIMS), so those configs have no weights there.
Unlike the reference (which squeezes h_n), a batch of one clip works.

The LSTM always runs in float32, outside autocast: CUDA autocast would run cuDNN's LSTM in float16 (not
bf16) with no gradient scaler under ``--amp bf16``, and these LSTMs are tiny. ``linear_1`` follows the
caller's autocast. The lengths may be on the CPU, where packing needs them: then no copy back from the GPU.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class AuViSubNet(nn.Module):
    """LSTM encoder of one non-text modality: (B, T, d_in), lengths (B,) -> utterance (B, out), sequence (B, T', out)."""

    def __init__(self, in_size: int, hidden_size: int, out_size: int, num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.rnn = nn.LSTM(
            in_size,
            hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.dropout = nn.Dropout(dropout)
        self.linear_1 = nn.Identity() if hidden_size == out_size else nn.Linear(hidden_size, out_size)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(x.device.type, enabled=False):
            x = x.to(self.rnn.weight_ih_l0.dtype)  # float32 (float64 in float64 tests), never autocast's dtype
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            steps, (h_n, _) = self.rnn(packed)
            seq, _ = pad_packed_sequence(steps, batch_first=True)  # (B, T_batchmax, hidden), float32
        utterance = self.linear_1(self.dropout(h_n[-1]))  # (B, out)
        return utterance, self.linear_1(seq)  # (B, out), (B, T_batchmax, out)
