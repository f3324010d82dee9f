"""Memory-lean softmax attention with dropout on the probabilities, for CPUs (reference-behaviour §4.3).

PyTorch's fused CPU attention kernel has no dropout, so ``scaled_dot_product_attention`` with
``dropout_p > 0`` falls back to the math path, which keeps three (B, h, Tq, Tk) tensors per call for the
backward pass (probabilities, dropout mask, dropped probabilities: 9 bytes per logit). With MOSI's
attention dropout of 0.3 and 500-frame clips that is gigabytes per training step.

:func:`dropout_attention` computes the same function, softmax(q k^T * scale + bias) -> dropout -> @ v, in
chunks of (batch x head) slices, and keeps only q, k, v, the output and the dropout mask (1 byte per
logit). The backward pass recomputes the probabilities chunk by chunk (as flash attention does) and uses
``rowsum(dP * P) = rowsum(dO * O)``, which holds with dropout too. The dropout draws come from a
generator seeded by the caller, so the result is reproducible under ``torch.manual_seed``; as with any
dropout, the draws differ from ``F.dropout``'s.
"""

from __future__ import annotations

from typing import Optional

import torch

#: Logits per chunk (2^21 float32 = 8 MiB): large enough for efficient bmm, small enough to stay in cache.
CHUNK_LOGITS = 2**21


def _chunks(extents: list[int], tq: int, tk: int) -> list[tuple[slice, int]]:
    """Row slices of about CHUNK_LOGITS logits and, per slice, how many leading keys its rows can see."""
    step = max(1, CHUNK_LOGITS // (tq * tk))
    return [
        (slice(start, min(start + step, len(extents))), extents[min(start + step, len(extents)) - 1])
        for start in range(0, len(extents), step)
    ]


def _logits(q, k, bias, scale: float) -> torch.Tensor:
    """(n, Tq, d), (n, Tk, d), (n, 1, Tk) or None -> scaled, masked logits (n, Tq, Tk)."""
    if bias is None:
        return torch.bmm(q, k.transpose(1, 2)).mul_(scale)
    return torch.baddbmm(bias, q, k.transpose(1, 2), alpha=scale)


class _DropoutAttention(torch.autograd.Function):
    """q (N, Tq, d), k / v (N, Tk, d), additive bias (N, 1, Tk) or None -> (N, Tq, d).

    Rows come sorted by ``extents`` (ascending): row n has no valid key at or after ``extents[n]``, so a
    chunk only looks at the keys before its largest extent. The skipped logits would be -finfo.max, whose
    probabilities (and gradients) are exactly 0, so the result is the same as over all keys. Scalar
    factors (1 / (1 - p), the logit scale) are applied to the (n, T, d) results rather than to the
    (n, Tq, Tk) chunks, which saves passes over the largest tensors.
    """

    @staticmethod
    def forward(ctx, q, k, v, bias, extents: list[int], p: float, scale: float, seed: int):
        rows, tq, tk = q.shape[0], q.shape[1], k.shape[1]
        generator = torch.Generator(device=q.device).manual_seed(seed)
        chunks = _chunks(extents, tq, tk)
        out = torch.empty_like(q)
        drop = torch.empty(rows, tq, tk, dtype=torch.bool, device=q.device)
        for sl, ext in chunks:
            chunk_bias = None if bias is None else bias[sl, :, :ext]
            probs = torch.softmax(_logits(q[sl], k[sl, :ext], chunk_bias, scale), dim=-1)  # (n, Tq, ext)
            chunk_drop = drop[sl, :, :ext]
            torch.lt(torch.empty_like(probs).uniform_(generator=generator), p, out=chunk_drop)
            torch.bmm(probs.masked_fill_(chunk_drop, 0.0), v[sl, :ext], out=out[sl])
        out.mul_(1.0 / (1.0 - p))
        ctx.save_for_backward(q, k, v, bias, out, drop)
        ctx.chunks, ctx.p, ctx.scale = chunks, p, scale
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, bias, out, drop = ctx.saved_tensors
        p, scale = ctx.p, ctx.scale
        grad_out = grad_out.contiguous()
        # rowsum(dO * O) = rowsum(dP * P), times (1 - p) because dP below lacks its 1 / (1 - p) factor.
        delta = (grad_out * out).sum(dim=-1, keepdim=True).mul_(1.0 - p)
        grad_q, grad_k, grad_v = torch.empty_like(q), torch.zeros_like(k), torch.zeros_like(v)
        for sl, ext in ctx.chunks:
            chunk_bias = None if bias is None else bias[sl, :, :ext]
            chunk_drop = drop[sl, :, :ext]
            probs = torch.softmax(_logits(q[sl], k[sl, :ext], chunk_bias, scale), dim=-1)
            torch.bmm(probs.masked_fill(chunk_drop, 0.0).transpose(1, 2), grad_out[sl], out=grad_v[sl, :ext])
            grad_probs = torch.bmm(grad_out[sl], v[sl, :ext].transpose(1, 2)).masked_fill_(chunk_drop, 0.0)
            grad_logits = probs.mul_(grad_probs.sub_(delta[sl]))  # (1 - p) dS: softmax backward
            torch.bmm(grad_logits, k[sl, :ext], out=grad_q[sl])
            torch.bmm(grad_logits.transpose(1, 2), q[sl], out=grad_k[sl, :ext])
        factor = 1.0 / (1.0 - p)
        grads = grad_q.mul_(factor * scale), grad_k.mul_(factor * scale), grad_v.mul_(factor)
        return (*grads, None, None, None, None, None)


def dropout_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: Optional[torch.Tensor], p: float, seed: int
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d), invalid keys at -finfo.max) -> dropout(p) -> @ v.

    q (B, h, Tq, d), k / v (B, h, Tk, d); ``key_mask`` (B, Tk) bool, True = valid, at least one valid key
    per clip (or None: all valid); ``seed`` seeds the dropout draws. Clips are processed in order of their
    last valid key, so that chunks of similar clips can skip the keys that none of them can see.
    """
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
    order = torch.argsort(extents, stable=True)

    def rows(t: torch.Tensor) -> torch.Tensor:  # (B, h, T, d) -> sorted (B * h, T, d)
        return t.index_select(0, order).reshape(batch * heads, t.shape[2], dim)

    sorted_bias = None if bias is None else bias.index_select(0, order).repeat_interleave(heads, dim=0)
    row_extents = extents[order].repeat_interleave(heads).tolist()
    out = _DropoutAttention.apply(rows(q), rows(k), rows(v), sorted_bias, row_extents, p, dim**-0.5, seed)
    return out.view(batch, heads, tq, dim).index_select(0, torch.argsort(order))
