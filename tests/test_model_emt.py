"""EMT building blocks (models.blocks) and the fusion engine's layer loop as the EMT (docs/REFERENCE.md §4.3)."""

import copy
import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from config import get_config
from models import blocks as blocks_module
from models import dropout_attention as dropout_attention_module
from models.dropout_attention import dropout_attention
from models.blocks import (
    Attention,
    AttentionPool,
    CrossSelfTransformer,
    FeedForward,
    PositionalEmbedding,
    key_padding_bias,
)
from models.emt import EMT
from models.execution import EXPLICIT, LEAN, SDPA, BatchPlan
from models.fusion import FUSIONS, build_fusion
from utils.errors import ConfigError

DIM, HEADS = 8, 2


def _attention_inputs(dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, DIM, generator=g, dtype=dtype, requires_grad=True)
    ctx = torch.randn(3, 6, DIM, generator=g, dtype=dtype, requires_grad=True)
    valid = torch.ones(3, 6, dtype=torch.bool)
    valid[0, 4:] = False
    valid[1] = False  # a clip without any valid key
    return x, ctx, valid


def test_fused_attention_equals_explicit_softmax_including_rows_without_keys():
    torch.manual_seed(0)
    attn = Attention(DIM, HEADS).double()
    x, ctx, valid = _attention_inputs()
    results = []
    for kernel in (LEAN, EXPLICIT):
        out = attn(x, context=ctx, key_mask=valid, plan=BatchPlan(attention=kernel))
        grads = torch.autograd.grad(out.square().sum(), [x, ctx, *attn.parameters()])
        results.append((out, grads))
    (out_f, grads_f), (out_e, grads_e) = results
    assert torch.allclose(out_f, out_e, atol=1e-12)
    for a, b in zip(grads_f, grads_e):
        assert torch.allclose(a, b, atol=1e-10)
    # No valid key: a uniform average of all values (the reference's -max fill), not NaN.
    _, v = attn.to_kv(ctx[1]).chunk(2, dim=-1)
    assert torch.allclose(out_f[1], attn.to_out(v.mean(0)).expand(5, DIM), atol=1e-12)
    # ... and no gradient reaches the queries of that clip.
    grad_x = torch.autograd.grad(attn(x, context=ctx, key_mask=valid).sum(), x)[0]
    assert torch.count_nonzero(grad_x[1]) == 0 and torch.count_nonzero(grad_x[0]) > 0


def test_attention_projections_have_the_reference_shapes():
    attn = Attention(DIM, HEADS)
    assert attn.to_q.weight.shape == (DIM, DIM) and attn.to_q.bias is None
    assert attn.to_kv.weight.shape == (2 * DIM, DIM) and attn.to_kv.bias is None
    assert attn.to_out.weight.shape == (DIM, DIM) and attn.to_out.bias is not None
    assert attn.scale == (DIM // HEADS) ** -0.5


def _qkv_and_mask(batch=4, tq=5, tk=6, dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(batch, HEADS, n, 4, generator=g, dtype=dtype, requires_grad=True) for n in (tq, tk, tk))
    valid = torch.arange(tk)[None] < torch.tensor([3, tk, 1, 4])[:batch, None]
    valid[3, 1] = False  # masks need not be prefixes
    return q, k, v, valid


@pytest.mark.parametrize("chunk_logits", [2**21, 30])  # one chunk; one row per chunk (keys trimmed per row)
def test_dropout_attention_gradients(monkeypatch, chunk_logits):
    monkeypatch.setattr(dropout_attention_module, "CHUNK_LOGITS", chunk_logits)
    q, k, v, valid = _qkv_and_mask()
    assert torch.autograd.gradcheck(lambda q, k, v: dropout_attention(q, k, v, valid, 0.3, 7), (q, k, v))


@pytest.mark.parametrize("chunk_logits", [2**21, 30])
def test_dropout_attention_without_drops_is_masked_softmax_attention(monkeypatch, chunk_logits):
    monkeypatch.setattr(dropout_attention_module, "CHUNK_LOGITS", chunk_logits)
    q, k, v, valid = _qkv_and_mask()
    out = dropout_attention(q, k, v, valid, 1e-12, 7)  # no draw falls below 1e-12
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=key_padding_bias(valid, q.dtype))
    assert torch.allclose(out, expected, atol=1e-12)
    w = torch.randn_like(out)
    for a, b in zip(torch.autograd.grad((out * w).sum(), (q, k, v)), torch.autograd.grad((expected * w).sum(), (q, k, v))):
        assert torch.allclose(a, b, atol=1e-10)
    with pytest.raises(ValueError, match="at least one valid key"):
        dropout_attention(q, k, v, torch.zeros_like(valid), 0.3, 7)


def test_dropout_attention_is_softmax_dropout_matmul():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, HEADS, n, 4, generator=g) for n in (50, 60, 60))
    p, seed = 0.3, 11
    out = dropout_attention(q, k, v, None, p, seed)
    probs = (q @ k.transpose(-1, -2) * 0.5).softmax(-1)  # one chunk: the draws are one uniform_ call
    keep = torch.empty(2 * HEADS, 50, 60).uniform_(generator=torch.Generator().manual_seed(seed)) >= p
    expected = (probs * keep.view(2, HEADS, 50, 60) / (1 - p)) @ v
    assert torch.allclose(out, expected, atol=1e-5)
    assert abs((~keep).float().mean().item() - p) < 0.02
    assert torch.equal(out, dropout_attention(q, k, v, None, p, seed))
    assert not torch.equal(out, dropout_attention(q, k, v, None, p, seed + 1))


def test_recomputation_reuses_the_dropout_draws(monkeypatch):
    drawn = []
    draw = dropout_attention_module._draw
    monkeypatch.setattr(dropout_attention_module, "_draw", lambda *args: drawn.append(1) or draw(*args))
    torch.manual_seed(0)
    emt = EMT(DIM, 2, HEADS, attn_dropout=0.3).train()
    locals_ = [torch.randn(2, t, DIM, requires_grad=True) for t in (4, 6, 5)]
    masks = [torch.ones(2, t, dtype=torch.bool) for t in (4, 6, 5)]
    gmc, out = emt(torch.randn(2, 3, DIM), locals_, masks, BatchPlan(recompute=True))
    after_forward = len(drawn)
    (gmc.sum() + sum(h.sum() for h in out)).backward()
    assert after_forward > 0 and len(drawn) == after_forward
    assert all(h.grad is not None for h in locals_)


def test_sdpa_dropout_under_recomputation_replays_the_draws_and_gradients(monkeypatch):
    """The GPU branch, driven on the CPU: attention dropout inside SDPA in recomputed (checkpointed) blocks.
    The recomputed forward draws the same dropout masks (checkpointing restores the RNG state), so the outputs
    and gradients equal those of blocks that store their activations; the lean kernel is never called."""
    monkeypatch.setattr(blocks_module, "dropout_attention", lambda *a, **k: pytest.fail("the lean kernel ran"))
    torch.manual_seed(0)
    recomputed = EMT(DIM, 2, HEADS, attn_dropout=0.3).double().train()
    stored = copy.deepcopy(recomputed)
    plans = {id(recomputed): BatchPlan(attention=SDPA, recompute=True), id(stored): BatchPlan(attention=SDPA)}
    g = torch.Generator().manual_seed(3)
    gmc = torch.randn(3, 3, DIM, generator=g, dtype=torch.float64)
    locals_ = [torch.randn(3, t, DIM, generator=g, dtype=torch.float64) for t in (4, 6, 5)]
    masks = [torch.arange(t)[None] < torch.tensor([t, 2, 1])[:, None] for t in (4, 6, 5)]
    results = []
    for model in (recomputed, stored):
        inputs = [gmc.clone().requires_grad_(), *[h.clone().requires_grad_() for h in locals_]]
        torch.manual_seed(7)
        out_gmc, out_locals = model(inputs[0], inputs[1:], masks, plans[id(model)])
        weights = torch.Generator().manual_seed(4)
        loss = (out_gmc * torch.randn(out_gmc.shape, generator=weights, dtype=torch.float64)).sum()
        loss = loss + sum((h * torch.randn(h.shape, generator=weights, dtype=torch.float64)).sum() for h in out_locals)
        loss.backward()
        results.append(([out_gmc, *out_locals], [x.grad for x in inputs], [p.grad for p in model.parameters()]))
    (outs_a, input_grads_a, grads_a), (outs_b, input_grads_b, grads_b) = results
    for a, b in zip(outs_a + input_grads_a + grads_a, outs_b + input_grads_b + grads_b):
        assert torch.allclose(a, b, atol=1e-12)
    torch.manual_seed(8)
    assert not torch.allclose(recomputed(gmc, locals_, masks, plans[id(recomputed)])[0], outs_a[0])  # dropout is on


def test_sdpa_attention_reads_nothing_back_from_the_device(monkeypatch):
    """No host read (``bool`` of a tensor) per attention call: the clips without keys are handled on the device."""
    attn = Attention(DIM, HEADS).eval()
    x, ctx, valid = _attention_inputs(torch.float32)
    expected = attn(x, context=ctx, key_mask=valid)
    monkeypatch.setattr(torch.Tensor, "__bool__", lambda self: pytest.fail("a tensor was read on the host"))
    assert torch.equal(attn(x, context=ctx, key_mask=valid), expected)


def test_training_attention_dropout_is_seeded_by_torch_manual_seed():
    attn = Attention(DIM, HEADS, dropout=0.3).train()
    x, ctx, valid = _attention_inputs(torch.float32)
    torch.manual_seed(5)
    first = attn(x, context=ctx, key_mask=valid)
    torch.manual_seed(5)
    assert torch.equal(first, attn(x, context=ctx, key_mask=valid))
    assert not torch.equal(first, attn.eval()(x, context=ctx, key_mask=valid))


def test_geglu_feed_forward():
    torch.manual_seed(0)
    ff = FeedForward(DIM, mult=4)
    x = torch.randn(2, 3, DIM)
    a, b = ff.net[0](x).chunk(2, dim=-1)
    assert ff.net[0].weight.shape == (2 * 4 * DIM, DIM) and ff.net[2].weight.shape == (DIM, 4 * DIM)
    assert torch.allclose(ff(x), ff.net[2](a * F.gelu(b)))


def test_cross_self_transformer_is_prenorm_cross_then_self_then_ffn():
    torch.manual_seed(0)
    cst = CrossSelfTransformer(DIM, HEADS)
    x, ctx = torch.randn(2, 4, DIM), torch.randn(2, 3, DIM)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    ctx_mask = torch.tensor([[True, False, True], [True, True, True]])
    cross, self_attn, ff = cst.layers[0]
    h = x + cross.fn(cross.norm(x), context=cross.norm_context(ctx), key_mask=ctx_mask)
    h = h + self_attn.fn(self_attn.norm(h), key_mask=mask)
    h = h + ff.fn(ff.norm(h))
    assert torch.allclose(cst(x, ctx, mask=mask, context_mask=ctx_mask), h, atol=1e-6)
    norms = [n for n, m in cst.named_modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms == ["layers.0.0.norm", "layers.0.0.norm_context", "layers.0.1.norm", "layers.0.2.norm"]


def test_attention_pool_is_a_softmax_over_the_three_copies():
    torch.manual_seed(0)
    pool = AttentionPool(3 * DIM)
    s = torch.randn(2, 3, 3 * DIM)
    scores = pool.attention[2](torch.tanh(pool.attention[0](s)))
    expected = (scores.softmax(dim=1) * s).sum(dim=1)
    assert torch.allclose(pool(s), expected, atol=1e-6)
    with pytest.raises(ConfigError):
        AttentionPool(DIM, act="swish")


def test_sinusoidal_positions():
    emb = PositionalEmbedding(DIM, max_len=1024)
    assert list(emb.parameters()) == [] and "pe" not in emb.state_dict()
    x = torch.zeros(1, 20, DIM)
    pe = emb(x)[0]
    pos, i = 7, 2
    assert math.isclose(pe[pos, 2 * i].item(), math.sin(pos / 10000 ** (2 * i / DIM)), abs_tol=1e-6)
    assert math.isclose(pe[pos, 2 * i + 1].item(), math.cos(pos / 10000 ** (2 * i / DIM)), abs_tol=1e-6)
    learnable = PositionalEmbedding(DIM, max_len=1024, learnable=True)
    assert sum(p.numel() for p in learnable.parameters()) == 1024 * DIM


def _distinct(modules):
    return len({id(m) for m in modules})


@pytest.mark.parametrize("mpu, modality, layer", list(itertools.product([True, False], repeat=3)))
def test_sharing_switches(mpu, modality, layer):
    depth = 3
    emt = EMT(DIM, depth, HEADS, mpu_share=mpu, modality_share=modality, layer_share=layer)
    csts = [emt.layers[l][d][m] for l in range(depth) for m in range(3) for d in ("local", "global")]
    expected = (1 if mpu else 2) * (1 if modality else 3) * (1 if layer else depth)
    assert _distinct(csts) == expected
    assert _distinct(emt.pools) == (1 if layer else depth)
    assert (emt.layers[0]["local"][0] is emt.layers[0]["global"][0]) == mpu
    for direction in ("local", "global"):
        assert (emt.layers[0][direction][0] is emt.layers[0][direction][2]) == modality
    assert (emt.layers[0] is emt.layers[depth - 1]) == layer
    # Copies start from the same weights, as the reference's deep copies.
    for cst in csts:
        assert torch.equal(cst.layers[0][0].fn.to_q.weight, csts[0].layers[0][0].fn.to_q.weight)
    params_per_cst = sum(p.numel() for p in csts[0].parameters())
    params_per_pool = sum(p.numel() for p in emt.pools[0].parameters())
    assert sum(p.numel() for p in emt.parameters()) == expected * params_per_cst + _distinct(emt.pools) * params_per_pool


def test_layer_loop_reads_the_previous_layer_in_both_directions():
    torch.manual_seed(0)
    emt = EMT(DIM, 2, HEADS, mpu_share=False, modality_share=False, layer_share=False)
    for p in emt.parameters():  # distinct weights everywhere, so a mixed-up module would show
        p.data.normal_(0, 0.3)
    gmc = torch.randn(2, 3, DIM)
    lengths = (4, 6, 5)
    locals_ = [torch.randn(2, t, DIM) for t in lengths]
    masks = [torch.arange(t)[None] < torch.tensor([[t], [t - 2]]) for t in lengths]
    expected_locals = [h + emt.pos_emb.pe[0, : h.shape[1]] for h in locals_]
    g = gmc
    for layer in range(2):
        new_locals = [emt.layers[layer]["local"][m](expected_locals[m], g, mask=masks[m]) for m in range(3)]
        copies = [emt.layers[layer]["global"][m](g, expected_locals[m], context_mask=masks[m]) for m in range(3)]
        g = emt.pools[layer](torch.stack([c.reshape(2, -1) for c in copies], dim=1)).reshape(2, 3, DIM)
        expected_locals = new_locals
    out_g, out_locals = emt(gmc, locals_, masks)
    assert torch.allclose(out_g, g, atol=1e-6)
    for a, b in zip(out_locals, expected_locals):
        assert torch.allclose(a, b, atol=1e-6)


def test_registry_builds_the_configured_fusion():
    cfg = get_config("tiny")
    fusion = build_fusion(cfg)
    assert FUSIONS["emt"] is EMT and isinstance(fusion, EMT)
    gmc = torch.randn(2, 3, cfg.d_model)
    locals_ = [torch.randn(2, t, cfg.d_model) for t in (4, 6, 5)]
    masks = [torch.ones(2, t, dtype=torch.bool) for t in (4, 6, 5)]
    out_g, out_locals = fusion(gmc, locals_, masks, BatchPlan(attention=EXPLICIT))
    assert out_g.shape == gmc.shape and [h.shape for h in out_locals] == [h.shape for h in locals_]
    with pytest.raises(ConfigError, match="unknown fusion"):
        build_fusion(get_config("tiny", fusion="no-such-fusion"))


#: One chunk holding a full-length clip skips nothing; one clip per chunk skips each clip's padded rows.
@pytest.mark.parametrize("chunk_logits, skips", [(2**21, False), (30, True)])
def test_dropout_attention_skipping_padded_queries_keeps_the_valid_rows(monkeypatch, chunk_logits, skips):
    """Self-attention whose padded query rows are unused: the valid rows and every gradient they send are
    those of the full computation (no drops), and the kernel's own gradients pass gradcheck with drops."""
    monkeypatch.setattr(dropout_attention_module, "CHUNK_LOGITS", chunk_logits)
    q, k, v, valid = _qkv_and_mask(tq=6)
    rows = rearrange(valid, "b t -> b 1 t 1").to(q.dtype)  # weights on the valid query rows only
    w = torch.randn_like(q) * rows
    full = dropout_attention(q, k, v, valid, 1e-12, 7)
    skipped = dropout_attention(q, k, v, valid, 1e-12, 7, padded_queries_unused=True)
    assert torch.allclose(skipped * rows, full * rows, atol=1e-12)
    assert torch.equal(skipped, full) != skips
    grads_full = torch.autograd.grad((full * w).sum(), (q, k, v))
    for a, b in zip(torch.autograd.grad((skipped * w).sum(), (q, k, v)), grads_full):
        assert torch.allclose(a, b, atol=1e-10)
    fn = lambda q, k, v: dropout_attention(q, k, v, valid, 0.3, 7, padded_queries_unused=True) * rows  # noqa: E731
    assert torch.autograd.gradcheck(fn, (q, k, v))
