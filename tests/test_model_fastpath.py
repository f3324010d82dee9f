"""The fast path (stacked views, fused SDPA) equals the plain reference-like path: outputs and gradients."""

import copy
import dataclasses

import pytest
import torch

from models import dropout_attention, fusion_engine
from models.emt_dlfr import build_model, read_positions, reference_path
from models.outputs import ATTRACTION_TARGETS
from tests.model_inputs import dropout_free_bert, make_inputs, tiny_config

#: Token counts incl. [CLS]/[SEP], audio / vision frame counts. Every clip has words, so the fast path
#: packs the valid tokens; WORDLESS_TEXT_LENGTHS has a clip without words (2: its text keys are all masked,
#: and the reference reads the padding), for which the fast path keeps the padding.
TEXT_LENGTHS = [12, 5, 3, 8, 3, 12, 7, 4]
WORDLESS_TEXT_LENGTHS = [12, 5, 2, 8, 3, 12, 7, 4]
AUDIO_LENGTHS = [10, 3, 7, 1, 10, 2, 5, 6]
VISION_LENGTHS = [4, 9, 1, 2, 9, 3, 3, 8]

TOLERANCE = 1e-5
#: float32 gradients are sums over many terms, accumulated in another order on the stacked batch.
FLOAT32_GRAD_TOLERANCE = 1e-4


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1.0)).item()


def _masked(out: dict, valid: dict) -> dict:
    return {k: v * valid[k][..., None] if k in valid else v for k, v in out.items()}


def _run(model, inputs, weights=None):
    """Outputs, and the gradients of a scalar built from every output (at the positions the losses read)."""
    read = read_positions(inputs["text"], inputs["audio_lengths"], inputs["vision_lengths"])
    out = _masked(model(**inputs).tensors(), read)
    if weights is None:
        g = torch.Generator().manual_seed(1)
        weights = {k: torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in out.items()}
    sum((out[k] * weights[k]).sum() for k in out).backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    return out, grads, weights


@pytest.mark.parametrize(
    "dtype, chunk_tokens, text_lengths, fusion",
    [
        (torch.float64, fusion_engine.RECOMPUTE_CHUNK_TOKENS, TEXT_LENGTHS, "emt"),
        (torch.float32, fusion_engine.RECOMPUTE_CHUNK_TOKENS, TEXT_LENGTHS, "emt"),
        (torch.float64, fusion_engine.RECOMPUTE_CHUNK_TOKENS, WORDLESS_TEXT_LENGTHS, "emt"),
        (torch.float64, 20, WORDLESS_TEXT_LENGTHS, "emt"),  # padded fallback, several recomputed chunks per CST
        (torch.float64, fusion_engine.RECOMPUTE_CHUNK_TOKENS, TEXT_LENGTHS, "ooll"),  # packed local-local reads
        (torch.float64, fusion_engine.RECOMPUTE_CHUNK_TOKENS, TEXT_LENGTHS, "emt-serial"),
    ],
)
def test_fast_path_matches_plain_path(monkeypatch, dtype, chunk_tokens, text_lengths, fusion):
    monkeypatch.setattr(fusion_engine, "RECOMPUTE_CHUNK_TOKENS", chunk_tokens)
    torch.manual_seed(0)
    fast = build_model(tiny_config(fusion_layers=2, fusion=fusion), 5, 6, dropout_free_bert()).to(dtype).train()
    plain = copy.deepcopy(fast)
    inputs = make_inputs(text_lengths, AUDIO_LENGTHS, VISION_LENGTHS)
    inputs = {k: v.to(dtype) if v.is_floating_point() else v for k, v in inputs.items()}

    out_fast, grads_fast, weights = _run(fast, inputs)
    with reference_path(plain):
        assert not plain.policy.stack_views
        out_plain, grads_plain, _ = _run(plain, inputs, weights)
    assert plain.policy.stack_views

    assert out_fast.keys() == out_plain.keys()
    for key in out_fast:
        assert out_fast[key].shape == out_plain[key].shape, key
        assert _relative_error(out_fast[key], out_plain[key]) < TOLERANCE, key
    assert grads_fast.keys() == grads_plain.keys()
    assert len(grads_fast) == len(list(fast.parameters())) - 2  # all but BERT's unused pooler
    grad_tolerance = TOLERANCE if dtype == torch.float64 else FLOAT32_GRAD_TOLERANCE
    for name in grads_fast:
        assert _relative_error(grads_fast[name], grads_plain[name]) < grad_tolerance, name
    # BatchNorm statistics are per view on both paths.
    for (name, a), (_, b) in zip(fast.named_buffers(), plain.named_buffers()):
        assert torch.allclose(a.to(torch.float64), b.to(torch.float64), atol=TOLERANCE), name


def test_batchnorm_statistics_are_per_view():
    """Each view's projector output is normalised over that view alone (zero mean per feature per view),
    which would fail if the stacked 2B batch were batch-normalised at once."""
    torch.manual_seed(0)
    model = build_model(tiny_config(), 5, 6, dropout_free_bert()).train()
    out = model(**make_inputs(TEXT_LENGTHS, AUDIO_LENGTHS, VISION_LENGTHS))
    for name in ATTRACTION_TARGETS:
        for view in (out.complete, out.incomplete):
            z = view.siamese[name].z
            assert torch.allclose(z.mean(0), torch.zeros(z.shape[1]), atol=1e-4), name


def test_recomputation_replays_the_same_dropout(monkeypatch):
    """With every dropout on, the recomputed (fast) path gives the outputs and gradients of a path that
    stores its activations, given the same seed: the backward pass sees the forward's dropout draws."""
    monkeypatch.setattr(dropout_attention, "CHUNK_LOGITS", 50)  # several attention chunks
    cfg = tiny_config(attn_dropout=0.3, ff_dropout=0.1, emb_dropout=0.1, post_fusion_dropout=0.3)
    torch.manual_seed(0)
    recomputed = build_model(cfg, 5, 6).double().train()
    stored = copy.deepcopy(recomputed)
    stored.set_policy(dataclasses.replace(stored.policy, recompute=False))
    assert recomputed.policy.recompute
    inputs = make_inputs(TEXT_LENGTHS, AUDIO_LENGTHS, VISION_LENGTHS)
    inputs = {k: v.double() if v.is_floating_point() else v for k, v in inputs.items()}
    torch.manual_seed(1)
    out_a, grads_a, weights = _run(recomputed, inputs)
    torch.manual_seed(1)
    out_b, grads_b, _ = _run(stored, inputs, weights)
    for key in out_a:
        assert torch.allclose(out_a[key], out_b[key], atol=1e-10), key
    for name in grads_a:
        assert torch.allclose(grads_a[name], grads_b[name], atol=1e-8), name
    torch.manual_seed(2)
    again = recomputed(**inputs).complete.prediction
    assert not torch.allclose(again, out_a["complete.prediction"])  # dropout is really on
