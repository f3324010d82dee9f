"""The Efficient Multimodal Transformer (EMT) of EMT-DLFR (docs/REFERENCE.md §4, §8).

Perceiver-style pre-norm blocks:

* :class:`PreNorm` - LayerNorm on the block input (and a second LayerNorm on the context of a
  cross-attention); the residual is added by the caller.
* :class:`Attention` - bias-free q / kv projections, ``heads`` heads of width D/heads, a key-padding
  mask, dropout on the attention probabilities, an output projection with bias.
* :class:`FeedForward` - GEGLU: Linear(D, 2mD) -> a * gelu(b) -> Linear(mD, D) -> Dropout.
* :class:`CrossSelfTransformer` (CST, half an MPU) - cross-attention to a context, self-attention, FFN
  (:meth:`CrossSelfTransformer.forward_contexts`: the same block reading several contexts, for OOLL).
* :class:`AttentionPool` - ``W2 act(W1 S + b1) + b2`` scores, softmax over the 3 modality-specific
  copies of the global tokens.
* :class:`PositionalEmbedding` - sinusoidal (or learnable) absolute positions, added once to each local
  sequence before the first layer.
* :class:`EMT` - L layers; in each, every modality's local tokens read the global multimodal context
  (GMC) of the previous layer and the GMC reads every modality's previous-layer local tokens; the three
  GMC copies are then pooled. Both directions read layer l-1 (the reference's parallel update).

Attention masking follows the reference: invalid keys get the logit ``-finfo.max`` (not -inf), so a
query with no valid key at all gets a uniform distribution over its keys instead of NaN. The default
(fast) path runs :func:`torch.nn.functional.scaled_dot_product_attention` with that additive mask;
``Attention.explicit_softmax = True`` (see :func:`set_explicit_attention`) selects the reference's
explicit masked_fill -> softmax -> dropout -> matmul, used to test the fast path. PyTorch's fused CPU
kernel has no dropout, so attention dropout in training on a CPU runs
:func:`models.dropout_attention.dropout_attention` instead of SDPA's memory-hungry math fallback
(:func:`set_lean_dropout` switches that off: SDPA with dropout, the branch GPUs take).
With ``EMT.packed`` (set by the model's fast path) the layers run on the valid local tokens only
(:mod:`models.ragged`); :class:`Attention` unpacks them to (B, h, T, d) for the attention alone. With
``EMT.recompute`` (also set by the fast path) training keeps no CST activations: they are
recomputed in the backward pass, chunk by chunk (activation checkpointing, same random draws), which
trades about one extra fusion forward pass for gigabytes of memory at MOSI's 375/500-frame sequences.
"""

from __future__ import annotations

import copy
import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from models.dropout_attention import draw_seed, dropout_attention
from models.ragged import Ragged, every_clip_has_tokens
from utils.errors import ConfigError

#: Number of global multimodal-context tokens: one per modality (text, audio, video).
NUM_MODALITIES = 3

#: Index of each direction inside one MPU pair: local tokens <- GMC, and GMC <- local tokens.
LOCAL_FROM_GLOBAL = 0
GLOBAL_FROM_LOCAL = 1

#: Target tokens per recomputed chunk of a CST application (fast path, training): bounds the memory of
#: the activations that exist at one time (about 150 MB at D = 128) while keeping the GEMMs large.
RECOMPUTE_CHUNK_TOKENS = 8192

#: Base of the sinusoidal positional embedding (Vaswani et al.).
SINUSOID_BASE = 10000.0

POOL_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}


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
        self.explicit_softmax = False
        #: Attention dropout on a CPU runs the lean kernel (True) or SDPA's math fallback (False); on other
        #: devices SDPA always (see :func:`set_lean_dropout`).
        self.lean_dropout = True

    def forward(self, x: torch.Tensor, context=None, key_mask=None, layout: Optional[Ragged] = None) -> torch.Tensor:
        """x (B, Tq, D) attends to context (B, Tk, D) (default: x itself) whose valid keys are ``key_mask`` (B, Tk).

        Packed tokens: with ``layout`` x is (N, D), the valid rows of a (B, Tq) batch, and so is the result;
        a :class:`~models.ragged.Ragged` ``key_mask`` says that the context is packed. Only the attention
        itself runs on the padded (B, h, T, d) tensors. Several contexts (OOLL): ``context`` and ``key_mask``
        are lists; x reads each context separately with the one query projection, and the mean of the reads
        goes through the output projection (= the mean of the projected reads).
        """
        if context is None:
            contexts, key_masks = [x], [layout if layout is not None else key_mask]
        elif isinstance(context, (list, tuple)):
            contexts, key_masks = context, key_mask
        else:
            contexts, key_masks = [context], [key_mask]
        q = self.to_q(x)  # (B, Tq, D) or (Nq, D)
        q = rearrange(q if layout is None else layout.unpack(q), "b n (h d) -> b h n d", h=self.heads)
        reads = [self._read(q, c, mask, layout) for c, mask in zip(contexts, key_masks)]  # [(B, h, Tq, d)]
        out = rearrange(reads[0] if len(reads) == 1 else torch.stack(reads).mean(dim=0), "b h n d -> b n (h d)")
        return self.to_out(out if layout is None else layout.pack(out))

    def _read(self, q: torch.Tensor, context: torch.Tensor, key_mask, layout: Optional[Ragged]) -> torch.Tensor:
        """q (B, h, Tq, d) reads one context (B, Tk, D), or (Nk, D) packed with a Ragged ``key_mask``."""
        context_layout = key_mask if isinstance(key_mask, Ragged) else None
        kv = self.to_kv(context)  # (B, Tk, 2D) or (Nk, 2D)
        if context_layout is not None:
            kv, key_mask = context_layout.unpack(kv), context_layout.mask  # (B, Tk, 2D), (B, Tk)
        k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in kv.chunk(2, dim=-1))
        dropout = self.dropout if self.training else 0.0
        if self.explicit_softmax:
            return self._explicit(q, k, v, key_mask, dropout)
        # packed self-attention (query layout = key layout): the padded query rows are dropped by the caller
        return self._fused(q, k, v, key_mask, dropout, layout is not None and context_layout is layout)

    def _fused(self, q, k, v, key_mask, dropout: float, padded_queries_unused: bool = False) -> torch.Tensor:
        if key_mask is not None:
            # The reference's constant -max logits give a clip without valid keys a uniform distribution and no
            # gradient to q or k: zero logits over all its keys do the same here. Applied to every clip (a no-op
            # where keys exist), so that no host read decides whether any clip lacks keys.
            has_key = key_mask.any(dim=-1)  # (B,)
            q = q * rearrange(has_key, "b -> b 1 1 1").to(q.dtype)
            key_mask = key_mask | ~has_key[:, None]
        if dropout > 0 and self.lean_dropout and q.device.type == "cpu":
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

    def __init__(
        self,
        dim: int,
        heads: int,
        depth: int = 1,
        attn_dropout: float = 0.0,
        ff_dropout: float = 0.0,
        ff_expansion: int = 4,
    ):
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
    ) -> torch.Tensor:
        """x (B, T1, D), context (B, T2, D), masks bool (B, T1) / (B, T2), True = valid -> (B, T1, D).

        Packed tokens: a :class:`~models.ragged.Ragged` mask says that x (or the context) is packed, (N, D).
        """
        return self.forward_contexts(x, [(context, context_mask)], mask)

    def forward_contexts(
        self,
        x: torch.Tensor,
        contexts: Sequence[tuple[torch.Tensor, Optional[torch.Tensor]]],
        mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """x (B, T1, D) reads several contexts [(context (B, T_j, D), context_mask (B, T_j) or None)] per layer.

        The one cross-attention (same weights and norms) reads each context separately and the residual adds
        their mean, ``x <- x + mean_j CrossAttn(LN(x), LN(C_j), mask_j)``, then self-attention and the FFN run
        once; the query and output projections run once for all the reads (:class:`Attention`). With one
        context this is exactly :meth:`forward`.
        """
        layout = mask if isinstance(mask, Ragged) else None
        context_list, context_masks = [c for c, _ in contexts], [c_mask for _, c_mask in contexts]
        for cross_attn, self_attn, ff in self.layers:
            x = cross_attn(x, context=context_list, key_mask=context_masks, layout=layout) + x
            x = self_attn(x, key_mask=mask, layout=layout) + x
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


def fusion_kwargs(cfg) -> dict:
    """The constructor arguments every fusion strategy takes from the config (width, depth, sharing, ...)."""
    return dict(
        dim=cfg.d_model,
        depth=cfg.fusion_layers,
        heads=cfg.heads,
        attn_dropout=cfg.attn_dropout,
        ff_dropout=cfg.ff_dropout,
        ff_expansion=cfg.ff_expansion,
        emb_dropout=cfg.emb_dropout,
        max_seq_len=cfg.max_seq_len,
        learnable_pos_emb=cfg.learnable_pos_emb,
        mpu_share=cfg.mpu_share,
        modality_share=cfg.modality_share,
        layer_share=cfg.layer_share,
        attn_act_fn=cfg.attn_act_fn,
    )


def share_or_copy(module: nn.Module, share: bool) -> nn.Module:
    """The module itself when shared, else an independent deep copy (same initial weights, as the reference)."""
    return module if share else copy.deepcopy(module)


class EMT(nn.Module):
    """L layers of mutual promotion between the 3 global tokens and each modality's local tokens.

    ``mpus[l][m][direction]`` is the CST of layer l, modality m, direction (``LOCAL_FROM_GLOBAL`` or
    ``GLOBAL_FROM_LOCAL``); ``pools[l]`` pools layer l's three GMC copies. The sharing switches alias
    modules exactly as the reference's deep copies do: ``mpu_share`` makes both directions one CST,
    ``modality_share`` shares the (pair of) CSTs across modalities, ``layer_share`` shares everything
    (CSTs and pool) across layers. All three True (the shipped config) = one CST and one pool in total.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int,
        attn_dropout: float = 0.0,
        ff_dropout: float = 0.0,
        ff_expansion: int = 4,
        emb_dropout: float = 0.0,
        max_seq_len: int = 1024,
        learnable_pos_emb: bool = False,
        mpu_share: bool = True,
        modality_share: bool = True,
        layer_share: bool = True,
        attn_act_fn: str = "tanh",
    ):
        super().__init__()
        self.dim = dim
        self.pos_emb = PositionalEmbedding(dim, max_seq_len, emb_dropout, learnable_pos_emb)
        cst = CrossSelfTransformer(dim, heads, 1, attn_dropout, ff_dropout, ff_expansion)
        pair = nn.ModuleList([cst, share_or_copy(cst, mpu_share)])
        per_modality = nn.ModuleList([pair] + [share_or_copy(pair, modality_share) for _ in range(NUM_MODALITIES - 1)])
        self.mpus = nn.ModuleList([per_modality] + [share_or_copy(per_modality, layer_share) for _ in range(depth - 1)])
        pool = AttentionPool(NUM_MODALITIES * dim, attn_act_fn)
        self.pools = nn.ModuleList([pool] + [share_or_copy(pool, layer_share) for _ in range(depth - 1)])
        self.recompute = False
        self.packed = False

    @classmethod
    def from_config(cls, cfg) -> "EMT":
        return cls(**fusion_kwargs(cfg))

    def _run(self, cst: CrossSelfTransformer, x, context, mask, context_mask) -> torch.Tensor:
        """One CST application.

        With ``recompute`` (the fast path in training) the CST keeps no activations: it runs on chunks of
        about ``RECOMPUTE_CHUNK_TOKENS`` target tokens, each recomputed in the backward pass, so only one
        chunk's activations exist at a time. Clips are independent, so chunking over the batch is exact.
        Packed applications (:class:`~models.ragged.Ragged` masks) are recomputed whole.
        """
        if not (self.recompute and torch.is_grad_enabled()):
            return cst(x, context, mask, context_mask)
        if isinstance(mask, Ragged) or isinstance(context_mask, Ragged):
            return checkpoint(cst, x, context, mask, context_mask, use_reentrant=False)
        step = max(1, RECOMPUTE_CHUNK_TOKENS // x.shape[1])
        chunks = [
            checkpoint(
                cst,
                x[sl],
                context[sl],
                None if mask is None else mask[sl],
                None if context_mask is None else context_mask[sl],
                use_reentrant=False,
            )
            for sl in (slice(i, i + step) for i in range(0, x.shape[0], step))
        ]
        return chunks[0] if len(chunks) == 1 else torch.cat(chunks)

    def forward(
        self, gmc: torch.Tensor, locals_: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """gmc (B, 3, D); locals_ [(B, T_m, D)] x 3; masks [(B, T_m) bool, True = valid] -> same shapes.

        With ``packed`` (the model's fast path) the layers run on the valid local tokens only and the
        returned local sequences are zero at the padding (see :mod:`models.ragged`); a batch with a clip
        that has no valid token in some modality keeps the padding, which the reference then reads.
        """
        locals_ = [self.pos_emb(h) for h in locals_]
        if not (self.packed and every_clip_has_tokens(*masks)):
            return self._layers(gmc, locals_, masks)
        layouts = [Ragged.from_mask(mask) for mask in masks]
        gmc, packed = self._layers(gmc, [layout.pack(h) for layout, h in zip(layouts, locals_)], layouts)
        return gmc, [layout.unpack(h) for layout, h in zip(layouts, packed)]

    def _layers(
        self, gmc: torch.Tensor, locals_: Sequence[torch.Tensor], masks: Sequence[torch.Tensor | Ragged]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The L layers on padded locals (B, T_m, D) with bool masks, or packed (N_m, D) with their layouts."""
        for layer, pool in zip(self.mpus, self.pools):
            new_locals, gmc_copies = [], []
            for (local_cst, global_cst), h, mask in zip(layer, locals_, masks):
                new_locals.append(self._run(local_cst, h, gmc, mask, None))  # (B, T_m, D) or (N_m, D)
                gmc_copies.append(self._run(global_cst, gmc, h, None, mask))  # (B, 3, D)
            pooled = pool(rearrange(torch.stack(gmc_copies, dim=1), "b m n d -> b m (n d)"))  # (B, 3D)
            gmc = rearrange(pooled, "b (n d) -> b n d", n=NUM_MODALITIES)
            locals_ = new_locals
        return gmc, locals_


def set_lean_dropout(module: nn.Module, enabled: bool) -> None:
    """Attention dropout on a CPU in every :class:`Attention` inside ``module``: the lean kernel (True, the
    default) or SDPA's own dropout (False, the branch every GPU run takes; tests drive it on the CPU)."""
    for sub in module.modules():
        if isinstance(sub, Attention):
            sub.lean_dropout = enabled


def set_explicit_attention(module: nn.Module, enabled: bool) -> None:
    """Switch every :class:`Attention` inside ``module`` to the reference's explicit softmax (or back to SDPA)."""
    for sub in module.modules():
        if isinstance(sub, Attention):
            sub.explicit_softmax = enabled
