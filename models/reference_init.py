"""The authors' initial weights for a seed (``--faithful-rng``; docs/REFERENCE.md §4, §1).

The reference seeds once and then builds its network, so its initial weights are fixed by the ORDER in which
its constructors draw from the global torch generator. That order is the reference's module order, which
this project's model layout does not follow (it builds ``proj_text`` first, keeps the SimSiam heads by
modality, ...). :func:`reference_initial_state` therefore draws the weights in the reference's order, into
the reference's state-dict layout, with the same PyTorch initialisers (``nn.Linear``: Kaiming-uniform weight
and uniform bias; ``nn.LSTM``: uniform on every weight; LayerNorm and BatchNorm: ones and zeros, no draw):

1. the BERT text encoder (loaded from a folder or the hub: no draw);
2. ``audio_model``: LSTM, then ``linear_1`` (absent when the LSTM width is the output width); ``video_model``;
3. ``proj_audio``, ``proj_video``, ``proj_text`` (bias-free; absent when the width is already ``d_model``);
4. ``fusion``: the learnable positional table if any (one normal draw), then ONE cross-self block (cross
   attention q / kv / out, self attention q / kv / out, GEGLU feed-forward) and ONE attention pool; every
   other block and pool is a copy of these (the reference deep-copies or shares them), so all start equal;
5. SimSiam projectors (GMC, text, audio, video), predictors (same order), reconstruction heads (text, audio,
   video), then ``post_fusion_layer_1..3``.

:func:`build_faithful_model` loads that state into this project's model through the checkpoint key table
(:mod:`models.reference_checkpoint`), so the weights land where they belong whatever our module names are,
and leaves the global generator exactly where the reference's constructor leaves it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Iterator

import torch
from torch import nn

from models.fusion_engine import NUM_MODALITIES
from models.reference_checkpoint import load_reference_state_dict
from models.text_encoder import load_text_encoder

#: Prefix of the network inside the reference's state dict, and of its BERT.
MODEL_PREFIX = "Model."
BERT_PREFIX = "Model.text_model.model."
#: Directions of one modality's pair of blocks: local <- global, global <- local.
DIRECTIONS = 2


def _linear(in_dim: int, out_dim: int, bias: bool = True) -> nn.Module:
    return nn.Linear(in_dim, out_dim, bias=bias)


def _projection(in_dim: int, d_model: int) -> nn.Module | None:
    """The reference's bias-free projection, or None when it is an Identity (no weights, no draw)."""
    return None if in_dim == d_model else _linear(in_dim, d_model, bias=False)


def _cross_self_block(dim: int, ff_expansion: int) -> nn.Module:
    """One cross-self block in the reference's layout ``layers.0.{0,1,2}`` (modules built in its order)."""

    def attention() -> nn.Module:
        return nn.ModuleDict(
            OrderedDict(to_q=_linear(dim, dim, bias=False), to_kv=_linear(dim, 2 * dim, bias=False), to_out=_linear(dim, dim))
        )

    def pre_norm(fn: nn.Module, with_context: bool) -> nn.Module:
        parts = OrderedDict(fn=fn, norm=nn.LayerNorm(dim))  # fn is built first: it is the constructor's argument
        if with_context:
            parts["norm_context"] = nn.LayerNorm(dim)
        return nn.ModuleDict(parts)

    cross = pre_norm(attention(), with_context=True)
    self_attention = pre_norm(attention(), with_context=False)
    feed_forward = nn.ModuleDict({"net": _sequential(_0=_linear(dim, dim * ff_expansion * 2), _2=_linear(dim * ff_expansion, dim))})
    block = nn.ModuleList([cross, self_attention, pre_norm(feed_forward, with_context=False)])
    return nn.ModuleDict({"layers": nn.ModuleList([block])})


def _sequential(**modules: nn.Module | None) -> nn.Module:
    """A container keyed like ``nn.Sequential`` indices ("0", "1", "3"), skipping weightless entries."""
    return nn.ModuleDict(OrderedDict((name.lstrip("_"), m) for name, m in modules.items() if m is not None))


def _reference_modules(cfg, text_dim: int, audio_dim: int, vision_dim: int) -> Iterator[tuple[list[str], Callable[[], nn.Module]]]:
    """(reference prefixes, constructor) in the reference's construction order; one module per entry is built
    and its state written under every prefix (aliases and deep copies start equal)."""
    d_model = cfg.d_model
    gmc_dim = NUM_MODALITIES * d_model
    for name, in_dim, hidden, out, layers in (
        ("audio_model", audio_dim, cfg.a_lstm_hidden_size, cfg.audio_out, cfg.a_lstm_layers),
        ("video_model", vision_dim, cfg.v_lstm_hidden_size, cfg.video_out, cfg.v_lstm_layers),
    ):
        yield [f"{name}.rnn"], lambda i=in_dim, h=hidden, n=layers: nn.LSTM(i, h, num_layers=n, batch_first=True)
        if hidden != out:
            yield [f"{name}.linear_1"], lambda h=hidden, o=out: _linear(h, o)
    for name, in_dim in (("proj_audio", cfg.audio_out), ("proj_video", cfg.video_out), ("proj_text", text_dim)):
        if in_dim != d_model:
            yield [name], lambda i=in_dim: _projection(i, d_model)
    if cfg.learnable_pos_emb:
        yield ["fusion.pos_embed"], lambda: nn.ParameterDict({"pe": nn.Parameter(torch.randn(1, cfg.max_seq_len, d_model))})
    blocks = [
        f"fusion.mpus.{layer}.{modality}.{direction}"
        for layer in range(cfg.fusion_layers)
        for modality in range(NUM_MODALITIES)
        for direction in range(DIRECTIONS)
    ]
    yield blocks, lambda: _cross_self_block(d_model, cfg.ff_expansion)
    pools = [f"fusion.attn_pools.{layer}.attention" for layer in range(cfg.fusion_layers)]
    yield pools, lambda: _sequential(_0=_linear(gmc_dim, gmc_dim), _2=_linear(gmc_dim, 1))
    heads = (("gmc_tokens", gmc_dim, cfg.gmc_tokens_pred_dim), ("text", text_dim, cfg.text_pred_dim),
             ("audio", cfg.audio_out, cfg.audio_pred_dim), ("video", cfg.video_out, cfg.video_pred_dim))
    for name, dim, _ in heads:
        yield [f"{name}_projector.net"], lambda d=dim: _sequential(_0=_linear(d, d), _1=nn.BatchNorm1d(d, affine=False))
    for name, dim, pred_dim in heads:
        yield [f"{name}_predictor.net"], lambda d=dim, p=pred_dim: _sequential(
            _0=_linear(d, p, bias=False), _1=nn.BatchNorm1d(p), _3=_linear(p, d)
        )
    for name, width in (("recon_text", text_dim), ("recon_audio", audio_dim), ("recon_video", vision_dim)):
        yield [name], lambda w=width: _linear(d_model, w)
    fused = text_dim + cfg.video_out + cfg.audio_out + gmc_dim
    yield ["post_fusion_layer_1"], lambda: _linear(fused, cfg.post_fusion_dim)
    yield ["post_fusion_layer_2"], lambda: _linear(cfg.post_fusion_dim, cfg.post_fusion_dim)
    yield ["post_fusion_layer_3"], lambda: _linear(cfg.post_fusion_dim, 1)


def reference_initial_state(cfg, text_encoder: nn.Module, audio_dim: int, vision_dim: int) -> "OrderedDict[str, torch.Tensor]":
    """The reference model's initial state dict (its key layout), drawn from the global torch generator in its
    construction order; the BERT entries are ``text_encoder``'s weights. Only the EMT fusion has a reference
    counterpart (``config.validate`` refuses ``faithful_rng`` with another one)."""
    text_dim = text_encoder.config.hidden_size
    state: "OrderedDict[str, torch.Tensor]" = OrderedDict(
        (BERT_PREFIX + key, value.detach().clone()) for key, value in text_encoder.state_dict().items()
    )
    for prefixes, build in _reference_modules(cfg, text_dim, audio_dim, vision_dim):
        module_state = build().state_dict()
        for prefix in prefixes:
            for key, value in module_state.items():
                state[f"{MODEL_PREFIX}{prefix}.{key}"] = value.detach().clone()
    return state


def build_faithful_model(cfg, audio_dim: int, vision_dim: int, build: Callable[..., nn.Module]) -> nn.Module:
    """``build(cfg, audio_dim, vision_dim, text_encoder=...)`` holding the reference's initial weights.

    Call it right after seeding: the text encoder is loaded first, the reference's weights are drawn next,
    and the global generator is left where the reference's constructor leaves it (whatever building this
    project's modules draws is undone), so the loaders' first shuffle is the reference's too.
    """
    text_encoder = load_text_encoder(cfg.bert)
    state = reference_initial_state(cfg, text_encoder, audio_dim, vision_dim)
    with torch.random.fork_rng(devices=[]):
        model = build(cfg, audio_dim, vision_dim, text_encoder=text_encoder)
    load_reference_state_dict(model, state)
    return model
