"""Parameter counts follow the reference architecture exactly (docs/REFERENCE.md §4, §8 item 16).

The expected numbers come from an independent hand formula of the reference network. The non-BERT parts
use the real dataset configs; BERT is a 1-layer, 768-wide random encoder (same hidden size as bert-base)
to keep the test fast, and its own count is checked against a formula that also gives bert-base's.
"""

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertModel

from config import get_config
from models import build_model, describe

#: (audio width, vision width) of the official feature files (docs/REFERENCE.md §2).
FEATURE_DIMS = {"mosi": (5, 20), "mosei": (74, 35), "sims": (33, 709)}
BERT_BASE_UNCASED = 109_482_240
BERT_BASE_CHINESE = 102_267_648
#: Totals with a bert-base encoder (uncased for MOSI/MOSEI, chinese for SIMS), from the formula below.
TOTALS_WITH_BERT_BASE = {"mosi": 111_805_019, "mosei": 111_597_823, "sims": 103_793_240}


def linear(n_in, n_out, bias=True):
    return n_in * n_out + (n_out if bias else 0)


def layer_norm(d):
    return 2 * d


def lstm(n_in, h):
    return 4 * (h * (n_in + h) + 2 * h)  # W_ih, W_hh and two bias vectors per gate


def maybe_linear(n_in, n_out, bias=True):
    return 0 if n_in == n_out else linear(n_in, n_out, bias)


def bert(hidden, layers, vocab, intermediate, positions=512, token_types=2):
    embeddings = (vocab + positions + token_types) * hidden + layer_norm(hidden)
    attention = 4 * linear(hidden, hidden) + layer_norm(hidden)
    ffn = linear(hidden, intermediate) + linear(intermediate, hidden) + layer_norm(hidden)
    pooler = linear(hidden, hidden)
    return embeddings + layers * (attention + ffn) + pooler


def reference_counts(cfg, d_a, d_v, text_hidden):
    """Non-BERT parameter counts of the reference network, by part."""
    d = cfg.d_model
    encoders = lstm(d_a, cfg.a_lstm_hidden_size) + maybe_linear(cfg.a_lstm_hidden_size, cfg.audio_out)
    encoders += lstm(d_v, cfg.v_lstm_hidden_size) + maybe_linear(cfg.v_lstm_hidden_size, cfg.video_out)
    projections = sum(maybe_linear(w, d, bias=False) for w in (text_hidden, cfg.audio_out, cfg.video_out))
    attention = linear(d, d, bias=False) + linear(d, 2 * d, bias=False) + linear(d, d)
    m = cfg.ff_expansion
    cst = (
        layer_norm(d) + layer_norm(d) + attention  # cross-attention with a context norm
        + layer_norm(d) + attention  # self-attention
        + layer_norm(d) + linear(d, 2 * m * d) + linear(m * d, d)  # GEGLU feed-forward
    )
    pool = linear(3 * d, 3 * d) + linear(3 * d, 1)
    fusion = cst + pool  # shipped sharing: one CST, one pool

    def projector(w):
        return linear(w, w)  # BatchNorm1d(affine=False) has no parameters

    def predictor(w, p):
        return linear(w, p, bias=False) + 2 * p + linear(p, w)

    widths = {"gmc": 3 * d, "text": text_hidden, "audio": cfg.audio_out, "video": cfg.video_out}
    pred_dims = {
        "gmc": cfg.gmc_tokens_pred_dim, "text": cfg.text_pred_dim,
        "audio": cfg.audio_pred_dim, "video": cfg.video_pred_dim,
    }
    simsiam = sum(projector(widths[r]) + predictor(widths[r], pred_dims[r]) for r in widths)
    recon = linear(d, text_hidden) + linear(d, d_a) + linear(d, d_v)
    p = cfg.post_fusion_dim
    head = linear(text_hidden + cfg.audio_out + cfg.video_out + 3 * d, p) + linear(p, p) + linear(p, 1)
    inference = encoders + projections + fusion + head
    return {"fusion": fusion, "inference": inference, "trainable": inference + simsiam + recon}


def test_bert_formula_gives_the_published_bert_base_sizes():
    assert bert(768, 12, 30522, 3072) == BERT_BASE_UNCASED
    assert bert(768, 12, 21128, 3072) == BERT_BASE_CHINESE
    small = BertModel(BertConfig(num_hidden_layers=1, vocab_size=1000))
    assert sum(p.numel() for p in small.parameters()) == bert(768, 1, 1000, 3072)


@pytest.mark.parametrize("dataset", ["mosi", "mosei", "sims"])
def test_counts_follow_the_reference(dataset):
    cfg = get_config(dataset)
    d_a, d_v = FEATURE_DIMS[dataset]
    torch.manual_seed(0)
    encoder = BertModel(BertConfig(num_hidden_layers=1, vocab_size=1000))  # 768 wide, cheap
    model = build_model(cfg, d_a, d_v, encoder)
    counts = describe(model)
    expected = reference_counts(cfg, d_a, d_v, 768)
    assert counts["bert"] == bert(768, 1, 1000, 3072)
    assert counts["fusion"] == expected["fusion"]
    assert counts["inference_excluding_bert"] == expected["inference"]
    assert counts["trainable_excluding_bert"] == expected["trainable"]
    assert counts["total"] == counts["bert"] + expected["trainable"]
    # Identity (no weights) where widths match: SIMS video projection, MOSEI/SIMS linear_1.
    assert isinstance(model.proj_vision, nn.Identity) == (cfg.video_out == cfg.d_model)
    assert isinstance(model.audio_model.linear_1, nn.Identity) == (cfg.a_lstm_hidden_size == cfg.audio_out)
    bert_base = BERT_BASE_CHINESE if dataset == "sims" else BERT_BASE_UNCASED
    assert bert_base + expected["trainable"] == TOTALS_WITH_BERT_BASE[dataset]
