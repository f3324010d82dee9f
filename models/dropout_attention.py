"""Memory-lean softmax attention with dropout on the probabilities, for CPUs (docs/REFERENCE.md §4).

PyTorch's fused CPU attention kernel has no dropout, so ``scaled_dot_product_attention`` with
``dropout_p > 0`` falls back to the math path, which keeps three (B, h, Tq, Tk) tensors per call for the
backward pass (probabilities, dropout mask, dropped probabilities: 9 bytes per logit), the largest part
of a training step's memory at MOSI's 500-frame clips (docs/BENCHMARKS.md).

:func:`dropout_attention` computes the same function, softmax(q k^T * scale + bias) -> dropout -> @ v, in
chunks of (batch x head) slices, and keeps only q, k, v, the output and the dropout mask (1 byte per
logit). The backward pass recomputes the probabilities chunk by chunk (as flash attention does) and uses
``rowsum(dP * P) = rowsum(dO * O)``, which holds with dropout too. The dropout draws come from a
generator seeded by the caller, so the result is reproducible under ``torch.manual_seed``; as with any
dropout, the draws differ from ``F.dropout``'s. When activation checkpointing recomputes a call (same
seed, same chunks) while its backward pass is pending, the recomputation reuses the call's draws
instead of drawing again: the draws are the costliest part of the kernel on a CPU.
"""

from __future__ import annotations

import weakref
from typing import Optional

import torch

#: Logits per chunk (2^21 float32 = 8 MiB): large enough for efficient bmm, small enough to stay in cache.
CHUNK_LOGITS = 2**21

#: Dropout seeds are drawn from the global generator in [0, 2^62), so runs repeat under torch.manual_seed.
SEED_RANGE = 2**62


def draw_seed() -> int:
    """A seed for :func:`dropout_attention`, taken from torch's global generator."""
    return int(torch.randint(SEED_RANGE, (1,)).item())


class _Draws:
    """The dropout keep-masks (bool, one per chunk) of one call, shared with its recomputation."""

    def __init__(self, masks: list[torch.Tensor]):
        self.masks = masks


#: Draws of the calls whose backward pass is pending, by (seed, dtype, device, chunk shapes). A call
#: recomputed by activation checkpointing (same seed, same chunks) reuses them instead of drawing again;
#: an entry disappears with the autograd graph that holds it.
_PENDING_DRAWS: "weakref.WeakValueDictionary[tuple, _Draws]" = weakref.WeakValueDictionary()


def _draw(generator: torch.Generator, shape: torch.Size, p: float, dtype: torch.dtype) -> torch.Tensor:
    """Keep-mask of one chunk as 0. / 1. floats on the generator's device: 1 with probability 1 - p."""
    return torch.empty(shape, dtype=dtype, device=generator.device).uniform_(generator=generator).ge_(p)


def _logits(q, k, bias, scale: float) -> torch.Tensor:
    """(n, Tq, d), (n, Tk, d), (n, 1, Tk) or None -> scaled, masked logits (n, Tq, Tk)."""
    if bias is None:
        return torch.bmm(q, k.transpose(1, 2)).mul_(scale)
    return torch.baddbmm(bias, q, k.transpose(1, 2), alpha=scale)


class _DropoutAttention(torch.autograd.Function):
    """q (N, Tq, d), k / v (N, Tk, d), additive bias (N, 1, Tk) or None -> (N, Tq, d), in row chunks.

    ``chunks`` lists (row indices, key extent): rows of similar extent go together, and a chunk only
    looks at its first ``extent`` keys, past which none of its rows has a valid key. The skipped logits
    would be -finfo.max, whose probabilities (and gradients) are exactly 0, so the result equals
    attention over all keys. With ``padded_queries_unused`` (self-attention whose padded query rows nobody
    reads) a chunk also computes only its first ``extent`` query rows and leaves zeros in the others.
    Scalar factors (1 / (1 - p), the logit scale) are applied to the (N, T, d)
    results rather than to the (n, Tq, Tk) chunks, which saves passes over the largest tensors.
    """

    @staticmethod
    def forward(ctx, q, k, v, bias, chunks, p: float, scale: float, seed: int, padded_queries_unused: bool):
        tq = q.shape[1]
        key = (seed, q.dtype, q.device, tq, padded_queries_unused, tuple((len(rows), ext) for rows, ext in chunks))
        draws = _PENDING_DRAWS.get(key)
        generator = None if draws is not None else torch.Generator().manual_seed(seed)  # CPU, as the draws
        masks = []
        out = torch.zeros_like(q) if padded_queries_unused else torch.empty_like(q)
        for i, (rows, ext) in enumerate(chunks):
            queries = slice(ext) if padded_queries_unused else slice(None)
            chunk_bias = None if bias is None else bias[rows, :, :ext]
            probs = torch.softmax(_logits(q[rows, queries], k[rows, :ext], chunk_bias, scale), dim=-1)  # (n, tq, ext)
            if draws is None:
                keep = _draw(generator, probs.shape, p, probs.dtype)
                masks.append(keep.bool())
            else:
                keep = draws.masks[i].to(probs.dtype)
            out[rows, queries] = torch.bmm(probs.mul_(keep), v[rows, :ext])
        out.mul_(1.0 / (1.0 - p))
        if draws is None:
            draws = _PENDING_DRAWS[key] = _Draws(masks)
        ctx.save_for_backward(q, k, v, bias, out)
        ctx.draws, ctx.chunks, ctx.p, ctx.scale = draws, chunks, p, scale
        ctx.padded_queries_unused = padded_queries_unused
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, bias, out = ctx.saved_tensors
        p, scale = ctx.p, ctx.scale
        grad_out = grad_out.contiguous()
        # rowsum(dO * O) = rowsum(dP * P), times (1 - p) because dP below lacks its 1 / (1 - p) factor.
        delta = (grad_out * out).sum(dim=-1, keepdim=True).mul_(1.0 - p)
        grad_q = torch.zeros_like(q) if ctx.padded_queries_unused else torch.empty_like(q)
        grad_k, grad_v = torch.zeros_like(k), torch.zeros_like(v)
        for (rows, ext), mask in zip(ctx.chunks, ctx.draws.masks):
            queries = slice(ext) if ctx.padded_queries_unused else slice(None)
            chunk_bias = None if bias is None else bias[rows, :, :ext]
            q_c, k_c, v_c, grad_c = q[rows, queries], k[rows, :ext], v[rows, :ext], grad_out[rows, queries]
            keep = mask.to(q.dtype)
            probs = torch.softmax(_logits(q_c, k_c, chunk_bias, scale), dim=-1)
            grad_v[rows, :ext] = torch.bmm((probs * keep).transpose(1, 2), grad_c)
            grad_probs = torch.bmm(grad_c, v_c.transpose(1, 2)).mul_(keep)  # (1 - p) dP
            grad_logits = probs.mul_(grad_probs.sub_(delta[rows, queries]))  # (1 - p) dS: softmax backward
            grad_q[rows, queries] = torch.bmm(grad_logits, k_c)
            grad_k[rows, :ext] = torch.bmm(grad_logits.transpose(1, 2), q_c)
        factor = 1.0 / (1.0 - p)
        grads = grad_q.mul_(factor * scale), grad_k.mul_(factor * scale), grad_v.mul_(factor)
        return (*grads, None, None, None, None, None, None)


def _plan(extents: torch.Tensor, heads: int, tq: int, tk: int) -> list[tuple[torch.Tensor, int]]:
    """Chunks of (row indices of the (B * h) rows, key extent), clips taken in order of their extent."""
    order = torch.argsort(extents, stable=True)
    clips_per_chunk = max(1, CHUNK_LOGITS // (heads * tq * tk))
    head_offsets = torch.arange(heads, device=extents.device)
    plan = []
    for start in range(0, len(order), clips_per_chunk):
        clips = order[start : start + clips_per_chunk]
        rows = (clips[:, None] * heads + head_offsets).flatten()
        plan.append((rows, int(extents[clips[-1]])))
    return plan


def dropout_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: Optional[torch.Tensor],
    p: float,
    seed: int,
    padded_queries_unused: bool = False,
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d), invalid keys at -finfo.max) -> dropout(p) -> @ v.

    CPU tensors only (its keep-masks are drawn by a CPU generator; on a GPU SDPA has fused dropout).
    q (B, h, Tq, d), k / v (B, h, Tk, d); ``key_mask`` (B, Tk) bool, True = valid, at least one valid key
    per clip (or None: all valid); ``seed`` seeds the dropout draws. Clips are processed in order of their
    last valid key, so that chunks of similar clips can skip the keys that none of them can see.
    ``padded_queries_unused``: self-attention (queries = keys) whose caller reads only the valid query rows;
    the rows past a clip's last valid key are then skipped (zeros).
    """
    if q.device.type != "cpu":
        raise ValueError(f"dropout_attention is a CPU kernel, got tensors on {q.device} (use SDPA there)")
    batch, heads, tq, dim = q.shape
    tk = k.shape[2]
    if key_mask is None:
        extents, bias = torch.full((batch,), tk), None
    else:
        extents = (key_mask * torch.arange(1, tk + 1, device=key_mask.device)).amax(dim=-1)  # last valid + 1
        if bool((extents == 0).any()):
            raise ValueError("dropout_attention needs at least one valid key per clip")
        bias = torch.zeros(batch, 1, tk, dtype=q.dtype, device=q.device).masked_fill_(
            ~key_mask[:, None, :], -torch.finfo(q.dtype).max
        )
        bias = bias.repeat_interleave(heads, dim=0)  # (B * h, 1, Tk)
    out = _DropoutAttention.apply(
        q.reshape(batch * heads, tq, dim),
        k.reshape(batch * heads, tk, dim),
        v.reshape(batch * heads, tk, dim),
        bias,
        _plan(extents, heads, tq, tk),
        p,
        dim**-0.5,
        seed,
        padded_queries_unused,
    )
    return out.view(batch, heads, tq, dim)
