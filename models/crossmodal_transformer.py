"""The MulT-style transformer encoder that TFR-Net's alignment is built from (Tsai et al., ACL 2019).

It follows the fairseq-derived encoder the authors' repository ships for its baselines
(``models/subNets/transformers_encoder``), which MulT and TFR-Net both use:

* the input is scaled by sqrt(D), then gets a sinusoidal position embedding (optional) and dropout. The
  positions come from the input's first feature channel: a time step whose first channel is exactly 0
  counts as padding and gets position 0, a zero vector; every other step t gets position t + 1. The table
  is tensor2tensor's: frequencies exp(-i log(10^4) / (D/2 - 1)), sines then cosines, a zero column for an
  odd D;
* in a crossmodal block the key/value source is embedded the same way, the key and the value each with
  its own dropout draw, and each pre-normalised with the layer's first LayerNorm;
* every layer is pre-LN: x + Drop(Attn(LN0(x), LN0(k), LN0(v))), then x + Drop(FC2(Drop(ReLU(FC1(LN1(x))))));
  a final LayerNorm closes the stack;
* ``attn_mask=True`` adds a "future" mask: query i may read key j only when j <= i + |L_k - L_q|. With equal
  lengths that is a causal mask; otherwise the length difference shifts the diagonal (the reference's
  ``triu(-inf, 1 + |L_k - L_q|)``), so a query sequence much longer than its keys sees them all;
* weights: in_proj and out_proj xavier-uniform, their biases 0; FC1/FC2 xavier-uniform, biases 0.

The attention itself runs on :func:`torch.nn.functional.scaled_dot_product_attention` (the same softmax up to
float rounding; its attention-dropout draws differ from the explicit softmax's). Tensors are batch-first
here, (B, L, D); the reference is sequence-first.

Parameter names equal the reference's (``layers.N.self_attn.in_proj_weight``, ``layer_norms.0``, ``fc1``,
``layer_norm``) so that its checkpoints map by prefix only (models/reference_checkpoint.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: The sinusoidal table's base wavelength (tensor2tensor / fairseq).
POSITION_BASE = 10000.0
#: Width of a transformer layer's hidden feed-forward layer, in multiples of D.
FF_EXPANSION = 4


def sinusoidal_positions(first_channel: torch.Tensor, dim: int) -> torch.Tensor:
    """(B, L) first input channel -> (B, L, dim) position embeddings; zero where the channel is exactly 0."""
    half = dim // 2
    step = math.log(POSITION_BASE) / (half - 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float, device=first_channel.device) * -step)  # (half,)
    length = first_channel.shape[1]
    positions = torch.arange(1, length + 1, dtype=torch.float, device=first_channel.device)  # (L,)
    angles = positions[:, None] * freqs[None, :]  # (L, half)
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)  # (L, 2 half)
    if dim % 2:
        table = F.pad(table, (0, 1))
    not_padding = (first_channel != 0).unsqueeze(-1)  # (B, L, 1)
    return (table.unsqueeze(0) * not_padding).to(first_channel.dtype)  # (B, L, dim)


def future_mask(query_len: int, key_len: int, device: torch.device) -> torch.Tensor:
    """(L_q, L_k) bool, True where query i may read key j: j <= i + |L_k - L_q|."""
    offset = abs(key_len - query_len)
    rows = torch.arange(query_len, device=device)[:, None]
    cols = torch.arange(key_len, device=device)[None, :]
    return cols <= rows + offset


def xavier_linear(in_features: int, out_features: int) -> nn.Linear:
    layer = nn.Linear(in_features, out_features)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class MultiheadAttention(nn.Module):
    """Multi-head attention with one packed (3D, D) input projection, as the reference stores it."""

    def __init__(self, embed_dim: int, num_heads: int, attn_dropout: float):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.attn_dropout = attn_dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads, -1).transpose(1, 2)  # (B, h, L, D/h)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask=None) -> torch.Tensor:
        """query (B, L_q, D), key / value (B, L_k, D), mask (L_q, L_k) bool or None -> (B, L_q, D)."""
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q = self._heads(F.linear(query, w_q, b_q))
        k = self._heads(F.linear(key, w_k, b_k))
        v = self._heads(F.linear(value, w_v, b_v))
        dropout = self.attn_dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)  # (B, h, L_q, D/h)
        batch, _, length, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, -1))


class CrossmodalLayer(nn.Module):
    """One pre-LN layer: (cross- or self-) attention and a ReLU feed-forward, each with a residual."""

    def __init__(self, embed_dim: int, num_heads: int, attn_dropout: float, relu_dropout: float,
                 res_dropout: float, attn_mask: bool):
        super().__init__()
        self.self_attn = MultiheadAttention(embed_dim, num_heads, attn_dropout)
        self.fc1 = xavier_linear(embed_dim, FF_EXPANSION * embed_dim)
        self.fc2 = xavier_linear(FF_EXPANSION * embed_dim, embed_dim)
        self.layer_norms = nn.ModuleList([nn.LayerNorm(embed_dim) for _ in range(2)])
        self.relu_dropout = relu_dropout
        self.res_dropout = res_dropout
        self.attn_mask = attn_mask

    def forward(self, x: torch.Tensor, x_k: torch.Tensor | None = None, x_v: torch.Tensor | None = None):
        """x (B, L_q, D); x_k, x_v (B, L_k, D) or None (self-attention) -> (B, L_q, D)."""
        residual = x
        x = self.layer_norms[0](x)
        if x_k is None:
            keys = values = x
        else:
            keys, values = self.layer_norms[0](x_k), self.layer_norms[0](x_v)
        mask = future_mask(x.shape[1], keys.shape[1], x.device) if self.attn_mask else None
        x = self.self_attn(x, keys, values, mask)
        x = residual + F.dropout(x, p=self.res_dropout, training=self.training)
        residual = x
        x = F.relu(self.fc1(self.layer_norms[1](x)))
        x = self.fc2(F.dropout(x, p=self.relu_dropout, training=self.training))
        return residual + F.dropout(x, p=self.res_dropout, training=self.training)


class CrossmodalTransformer(nn.Module):
    """A stack of :class:`CrossmodalLayer`: self-attention with one input, crossmodal with a key source."""

    def __init__(self, embed_dim: int, num_heads: int, layers: int, attn_dropout: float = 0.0,
                 relu_dropout: float = 0.0, res_dropout: float = 0.0, embed_dropout: float = 0.0,
                 attn_mask: bool = False, position_embedding: bool = False):
        super().__init__()
        self.embed_dim = embed_dim
        self.embed_scale = math.sqrt(embed_dim)
        self.embed_dropout = embed_dropout
        self.position_embedding = position_embedding
        self.layers = nn.ModuleList(
            CrossmodalLayer(embed_dim, num_heads, attn_dropout, relu_dropout, res_dropout, attn_mask)
            for _ in range(layers)
        )
        self.layer_norm = nn.LayerNorm(embed_dim)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> scaled, position-embedded, dropped-out (B, L, D)."""
        out = self.embed_scale * x
        if self.position_embedding:
            out = out + sinusoidal_positions(x[:, :, 0], self.embed_dim)
        return F.dropout(out, p=self.embed_dropout, training=self.training)

    def forward(self, x: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, L_q, D), source (B, L_k, D) or None -> (B, L_q, D)."""
        x = self._embed(x)
        x_k = x_v = None
        if source is not None:
            x_k, x_v = self._embed(source), self._embed(source)  # independent dropout draws, as the reference
        for layer in self.layers:
            x = layer(x, x_k, x_v)
        return self.layer_norm(x)
