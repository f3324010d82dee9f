"""TFR-Net's gated fusion and prediction head (the reference's ``c_gate`` fusion: ``GATE_F`` / ``C_GATE``).

Per modality m, on the alignment's h_m (B, L_m, 3d) of the incomplete view:

1. a bidirectional GRU (``fusion_gru_layers`` layers, hidden H_m) over the clip's valid steps, packed by the
   clip's length (the first 0 of its validity mask); steps past the length come out as zeros;
2. a gate g = sigmoid(Conv1d(2H_m -> 1, kernel 3, padding 1)(GRU states)) per step;
3. u = tanh(Linear([h_m; tanh(GRU states) * g])) (B, L_m, H_m), max-pooled over ALL L_m steps (the padded
   steps too, as the reference does), then dropout: the utterance vector (B, H_m);

and the head: BatchNorm1d -> Linear(sum H_m -> cls_hidden_dim) -> LeakyReLU -> Dropout -> Linear(-> 1) on the
concatenated utterance vectors. Attribute names are the reference's (``text_encoder.gru.gru``, ``cnn``,
``fc``, ``classifier.linear_trans_*``).

A clip with no valid step would make the packed GRU fail in the reference (a zero length); here its length
is raised to 1, so it reads its first (padded) step instead of raising.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from config.tfr_net import TFRNetConfig

#: Kernel size of the gate's Conv1d (padding keeps the length).
GATE_KERNEL = 3


def mask_lengths(mask: torch.Tensor) -> torch.Tensor:
    """(B, L) 0/1 validity mask -> (B,) index of its first 0 (L when there is none), the reference's length."""
    padded = torch.cat([mask, mask.new_zeros(mask.shape[0], 1)], dim=1)  # (B, L + 1)
    return torch.argmin(padded, dim=1)


class PackedBiGRU(nn.Module):
    """A bidirectional GRU over the first ``length`` steps of each clip; (B, L, D) -> (B, L, 2H), zeros after."""

    def __init__(self, input_dim: int, hidden_dim: int, num_layers: int):
        super().__init__()
        self.gru = nn.GRU(input_size=input_dim, hidden_size=hidden_dim, num_layers=num_layers,
                          bidirectional=True, batch_first=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]


class GatedEncoder(nn.Module):
    """One modality's utterance vector: BiGRU, convolutional gate, Linear + tanh, max-pool, dropout."""

    def __init__(self, input_dim: int, hidden_dim: int, num_layers: int, dropout: float):
        super().__init__()
        self.gru = PackedBiGRU(input_dim, hidden_dim, num_layers)
        self.cnn = nn.Conv1d(2 * hidden_dim, 1, kernel_size=GATE_KERNEL, stride=1, padding=GATE_KERNEL // 2)
        self.fc = nn.Linear(2 * hidden_dim + input_dim, hidden_dim)
        self.dropout_in = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, L, D), mask (B, L) -> (B, H)."""
        states = self.gru(x, mask_lengths(mask))  # (B, L, 2H)
        gate = torch.sigmoid(self.cnn(states.transpose(1, 2)).transpose(1, 2))  # (B, L, 1)
        gated = torch.tanh(states) * gate  # (B, L, 2H)
        rep = torch.tanh(self.fc(torch.cat([x, gated], dim=-1)))  # (B, L, H)
        return self.dropout_in(rep.max(dim=1).values)


class GatedFusion(nn.Module):
    """(h_l, mask_l), (h_a, mask_a), (h_v, mask_v) -> prediction (B, 1)."""

    def __init__(self, cfg: TFRNetConfig, input_dims: tuple[int, int, int]):
        super().__init__()
        hidden = (cfg.fusion_t_hid, cfg.fusion_a_hid, cfg.fusion_v_hid)
        for name, in_dim, hid in zip(("text", "audio", "vision"), input_dims, hidden):
            setattr(self, f"{name}_encoder", GatedEncoder(in_dim, hid, cfg.fusion_gru_layers, cfg.fusion_drop))
        self.classifier = nn.Sequential()
        self.classifier.add_module("linear_trans_norm", nn.BatchNorm1d(sum(hidden)))
        self.classifier.add_module("linear_trans_hidden", nn.Linear(sum(hidden), cfg.cls_hidden_dim))
        self.classifier.add_module("linear_trans_activation", nn.LeakyReLU())
        self.classifier.add_module("linear_trans_drop", nn.Dropout(cfg.cls_dropout))
        self.classifier.add_module("linear_trans_final", nn.Linear(cfg.cls_hidden_dim, 1))

    def forward(self, text, audio, vision) -> torch.Tensor:
        reps = [self.text_encoder(*text), self.audio_encoder(*audio), self.vision_encoder(*vision)]
        return self.classifier(torch.cat(reps, dim=1))  # (B, 1)
