"""The transformer blocks of the EMT and of every fusion strategy (docs/REFERENCE.md §4.3, §8).

Perceiver-style pre-norm blocks:

* :class:`PreNorm` - LayerNorm on the block input (and a second LayerNorm on the context of a
  cross-attention); the residual is added by the caller.
* :class:`Attention` - bias-free q / kv projections, ``heads`` heads of width D/heads, a key-padding
  mask, dropout on the attention probabilities, an output projection with bias.
* :class:`FeedForward` - GEGLU: Linear(D, 2mD) -> a * gelu(b) -> Linear(mD, D) -> Dropout.
* :class:`CrossSelfTransformer` (CST, half an MPU) - cross-attention to one or several contexts,
  self-attention, FFN.
* :class:`AttentionPool` - ``W2 act(W1 S + b1) + b2`` scores, softmax over the 3 modality-specific
  copies of the global tokens.
* :class:`PositionalEmbedding` - sinusoidal (or learnable) absolute positions, added once to each local
  sequence before the first layer.

Attention masking follows the reference: invalid keys get the logit ``-finfo.max`` (not -inf), so a
query with no valid key at all gets a uniform distribution over its keys instead of NaN. Which kernel
computes the attention (the reference's explicit softmax, SDPA, or the lean dropout kernel) is the
:class:`~models.execution.BatchPlan`'s choice, handed down every forward call; so is whether the tokens
are packed (the valid rows only, :mod:`models.ragged`), in which case :class:`Attention` unpacks them to
(B, h, T, d) for the attention alone.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from models.dropout_attention import draw_seed, dropout_attention
from models.execution import DEFAULT_PLAN, EXPLICIT, LEAN, BatchPlan
from models.ragged import Ragged
from utils.errors import ConfigError

#: Base of the sinusoidal positional embedding (Vaswani et al.).
SINUSOID_BASE = 10000.0

POOL_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}

#: A cross-attention context (B, T, D), or packed (N, D), and its key mask: (B, T) bool, a
#: :class:`~models.ragged.Ragged` layout for a packed context, or None when every key is valid.
Context = tuple[torch.Tensor, Optional[torch.Tensor | Ragged]]


def masked_logit(dtype: torch.dtype) -> float:
    """The logit the reference gives invalid keys: the most negative finite value of ``dtype``."""
    return -torch.finfo(dtype).max


def key_padding_bias(key_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, Tk) bool, True = valid -> additive (B, 1, 1, Tk) bias: 0 for valid keys, -finfo.max otherwise."""
    bias = torch.zeros(key_mask.shape, dtype=dtype, device=key_mask.device)
    bias.masked_fill_(~key_mask, masked_logit(dtype))
    return rearrange(bias, "b j -> b 1 1 j")


class PreNorm(nn.Module):
    """LayerNorm on the input (and on the context, when ``context_dim`` is given) before ``fn``."""

    def __init__(self, dim: int, fn: nn.Module, context_dim: Optional[int] = None):
        super().__init__()
        self.fn = fn
        self.norm = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(context_dim) if context_dim is not None else None

    def forward(self, x: torch.Tensor, context=None, **kwargs) -> torch.Tensor:
        """``context``: a tensor, or a list of them (each normalised) for an attention reading several."""
        x = self.norm(x)
        if self.norm_context is not None:
            many = isinstance(context, (list, tuple))
            kwargs["context"] = [self.norm_context(c) for c in context] if many else self.norm_context(context)
        return self.fn(x, **kwargs)


class Attention(nn.Module):
    """Multi-head (cross- or self-) attention with a key-padding mask; D -> D."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.dropout = dropout
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_kv = nn.Linear(dim, 2 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        context=None,
        key_mask=None,
        layout: Optional[Ragged] = None,
        plan: BatchPlan = DEFAULT_PLAN,
    ) -> torch.Tensor:
        """x (B, Tq, D) attends to context (B, Tk, D) (default: x itself) whose valid keys are ``key_mask`` (B, Tk).

        Packed tokens: with ``layout`` x is (N, D), the valid rows of a (B, Tq) batch, and so is the result;
        a :class:`~models.ragged.Ragged` ``key_mask`` says that the context is packed. Only the attention
        itself runs on the padded (B, h, T, d) tensors. Several contexts (OOLL): ``context`` and ``key_mask``
        are lists; x reads each context separately with the one query projection, and the mean of the reads
        goes through the output projection (= the mean of the projected reads). ``plan.attention`` picks
        the kernel.
        """
        if context is None:
            contexts, key_masks = [x], [layout if layout is not None else key_mask]
        elif isinstance(context, (list, tuple)):
            contexts, key_masks = context, key_mask
        else:
            contexts, key_masks = [context], [key_mask]
        q = self.to_q(x)  # (B, Tq, D) or (Nq, D)
        q = rearrange(q if layout is None else layout.unpack(q), "b n (h d) -> b h n d", h=self.heads)
        reads = [self._read(q, c, mask, layout, plan.attention) for c, mask in zip(contexts, key_masks)]
        out = rearrange(reads[0] if len(reads) == 1 else torch.stack(reads).mean(dim=0), "b h n d -> b n (h d)")
        return self.to_out(out if layout is None else layout.pack(out))

    def _read(self, q: torch.Tensor, context: torch.Tensor, key_mask, layout: Optional[Ragged], kernel: str):
        """q (B, h, Tq, d) reads one context (B, Tk, D), or (Nk, D) packed with a Ragged ``key_mask``."""
        context_layout = key_mask if isinstance(key_mask, Ragged) else None
        kv = self.to_kv(context)  # (B, Tk, 2D) or (Nk, 2D)
        if context_layout is not None:
            kv, key_mask = context_layout.unpack(kv), context_layout.mask  # (B, Tk, 2D), (B, Tk)
        k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in kv.chunk(2, dim=-1))
        dropout = self.dropout if self.training else 0.0
        if kernel == EXPLICIT:
            return self._explicit(q, k, v, key_mask, dropout)  # (B, h, Tq, d)
        # packed self-attention (query layout = key layout): the padded query rows are dropped by the caller
        padded_queries_unused = layout is not None and context_layout is layout
        return self._fused(q, k, v, key_mask, dropout, kernel == LEAN, padded_queries_unused)

    def _fused(self, q, k, v, key_mask, dropout: float, lean: bool, padded_queries_unused: bool) -> torch.Tensor:
        """SDPA, or with ``lean`` and dropout the lean dropout kernel; -> (B, h, Tq, d)."""
        if key_mask is not None:
            # The reference's constant -max logits give a clip without valid keys a uniform distribution and no
            # gradient to q or k: zero logits over all its keys do the same here. Applied to every clip (a no-op
            # where keys exist), so that no host read decides whether any clip lacks keys.
            has_key = key_mask.any(dim=-1)  # (B,)
            q = q * rearrange(has_key, "b -> b 1 1 1").to(q.dtype)
            key_mask = key_mask | ~has_key[:, None]
        if dropout > 0 and lean:
            return dropout_attention(q, k, v, key_mask, dropout, draw_seed(), padded_queries_unused)
        bias = None if key_mask is None else key_padding_bias(key_mask, q.dtype)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout)

    def _explicit(self, q, k, v, key_mask, dropout: float) -> torch.Tensor:
        logits = torch.einsum("b h i d, b h j d -> b h i j", q, k) * self.scale  # (B, h, Tq, Tk)
        if key_mask is not None:
            logits = logits.masked_fill(~rearrange(key_mask, "b j -> b 1 1 j"), masked_logit(logits.dtype))
        probs = F.dropout(logits.softmax(dim=-1), p=dropout)
        return torch.einsum("b h i j, b h j d -> b h i d", probs, v)  # (B, h, Tq, d)


class GEGLU(nn.Module):
    """Gated GELU: split the last dimension in halves (a, b) and return a * gelu(b)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, gates = x.chunk(2, dim=-1)
        return a * F.gelu(gates)


class FeedForward(nn.Module):
    """GEGLU feed-forward: Linear(D, 2mD) -> GEGLU -> Linear(mD, D) -> Dropout."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, dim * mult * 2),
            GEGLU(),
            nn.Linear(dim * mult, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CrossSelfTransformer(nn.Module):
    """Half an MPU: target tokens cross-attend to a context, then self-attend, then an FFN (all pre-norm).

    ``layers.0`` = [cross PreNorm(Attention) with a context norm, self PreNorm(Attention),
    PreNorm(FeedForward)]; four LayerNorms, no final norm (docs/REFERENCE.md §4.3).
    """

    def __init__(self, dim: int, heads: int, depth: int = 1, attn_dropout: float = 0.0, ff_dropout: float = 0.0,
                 ff_expansion: int = 4):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    PreNorm(dim, Attention(dim, heads, attn_dropout), context_dim=dim),
                    PreNorm(dim, Attention(dim, heads, attn_dropout)),
                    PreNorm(dim, FeedForward(dim, ff_expansion, ff_dropout)),
                ]
            )
            for _ in range(depth)
        )

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        mask: Optional[torch.Tensor] = None,
        context_mask: Optional[torch.Tensor] = None,
        plan: BatchPlan = DEFAULT_PLAN,
    ) -> torch.Tensor:
        """x (B, T1, D), context (B, T2, D), masks bool (B, T1) / (B, T2), True = valid -> (B, T1, D)."""
        return self.forward_contexts(x, [(context, context_mask)], mask, plan)

    def forward_contexts(
        self,
        x: torch.Tensor,
        contexts: Sequence[Context],
        mask: Optional[torch.Tensor | Ragged] = None,
        plan: BatchPlan = DEFAULT_PLAN,
    ) -> torch.Tensor:
        """x (B, T1, D) reads several contexts [(context (B, T_j, D), context_mask (B, T_j) or None)] per layer.

        The one cross-attention (same weights and norms) reads each context separately and the residual adds
        their mean, ``x <- x + mean_j CrossAttn(LN(x), LN(C_j), mask_j)``, then self-attention and the FFN run
        once; the query and output projections run once for all the reads (:class:`Attention`). With one
        context this is exactly :meth:`forward`. Packed tokens: a :class:`~models.ragged.Ragged` ``mask``
        says that x is packed, (N, D); a Ragged context mask, that the context is.
        """
        layout = mask if isinstance(mask, Ragged) else None
        context_list, context_masks = [c for c, _ in contexts], [c_mask for _, c_mask in contexts]
        for cross_attn, self_attn, ff in self.layers:
            x = cross_attn(x, context=context_list, key_mask=context_masks, layout=layout, plan=plan) + x
            x = self_attn(x, key_mask=mask, layout=layout, plan=plan) + x
            x = ff(x) + x
        return x


class AttentionPool(nn.Module):
    """Pool the modality-specific GMC copies: S (B, 3, 3D) -> sum_m softmax_m(W2 act(W1 S_m + b1) + b2) S_m (B, 3D)."""

    def __init__(self, dim: int, act: str = "tanh"):
        super().__init__()
        if act not in POOL_ACTIVATIONS:
            raise ConfigError(f"attn_act_fn must be one of {', '.join(POOL_ACTIVATIONS)}, got {act!r}")
        self.attention = nn.Sequential(nn.Linear(dim, dim), POOL_ACTIVATIONS[act](), nn.Linear(dim, 1))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        weights = self.attention(s).softmax(dim=1)  # (B, 3, 1)
        return (weights * s).sum(dim=1)  # (B, 3D)


def sinusoid_table(max_len: int, dim: int) -> torch.Tensor:
    """(max_len, dim): pe[p, 2i] = sin(p / 10000^(2i/dim)), pe[p, 2i+1] = cos(p / 10000^(2i/dim))."""
    position = torch.arange(max_len, dtype=torch.float32)[:, None]
    inv_freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(SINUSOID_BASE) / dim))
    table = torch.zeros(max_len, dim)
    table[:, 0::2] = torch.sin(position * inv_freq)
    table[:, 1::2] = torch.cos(position * inv_freq[: dim // 2])
    return table


class PositionalEmbedding(nn.Module):
    """Add absolute positions to (B, T, D), then dropout.

    The table ``pe`` (1, max_len, D) is laid out as the reference's: fixed sinusoids held as a buffer, or, with
    ``learnable``, a parameter drawn from N(0, 1). The reference saves the buffer in its checkpoints; here it
    stays out of ``state_dict()`` (it is a function of the config) and the reference-checkpoint loader copies
    a checkpoint's table into it (models/reference_checkpoint.py).
    """

    def __init__(self, dim: int, max_len: int, dropout: float = 0.0, learnable: bool = False):
        super().__init__()
        self.max_len = max_len
        if learnable:
            self.pe = nn.Parameter(torch.randn(1, max_len, dim))
        else:
            self.register_buffer("pe", sinusoid_table(max_len, dim)[None], persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequence of {length} steps exceeds the positional table ({self.max_len})")
        return self.dropout(x + self.pe[:, :length])


