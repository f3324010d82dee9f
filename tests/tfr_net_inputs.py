"""A deterministic TFR-Net batch and reference-layout weights, shared by the TFR-Net tests.

tests/fixtures/tfr_net_reference_outputs.json holds the outputs and losses that the authors' TFR-Net gave
for exactly this batch and these weights (their code run on the CPU with the tiny BERT below); the
equivalence test rebuilds both here and compares.
"""

from __future__ import annotations

import dataclasses
import zlib

import torch
from transformers import BertConfig, BertModel

from config.tfr_net import TFR_NET_MOSI

CLS_ID, SEP_ID, UNK_ID = 101, 102, 100
FIRST_WORD_ID, LAST_WORD_ID = 1000, 2000
#: BertConfig of the tiny encoder (1 layer, 32 wide) used in place of bert-base.
TINY_BERT = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                 vocab_size=30522, max_position_embeddings=512)
#: Padded (text, audio, vision) lengths and the clips' valid lengths of the batch.
SEQ_LENS = (12, 20, 16)
TEXT_LENGTHS = (12, 7, 4, 9)
AUDIO_LENGTHS = (20, 6, 13, 1)
VISION_LENGTHS = (3, 16, 9, 12)
AUDIO_DIM, VISION_DIM = 5, 20
DROP_RATE = 0.4
SEED = 11

#: MOSI's TFR-Net settings at the batch's shapes (the widths come from the tiny BERT and the features).
CONFIG = dataclasses.replace(TFR_NET_MOSI, seq_lens=SEQ_LENS)
#: The same without any dropout, for a deterministic training-mode forward.
DROPOUT_FREE = dataclasses.replace(CONFIG, text_dropout=0.0, attn_dropout=0.0, attn_dropout_a=0.0, attn_dropout_v=0.0,
                                   relu_dropout=0.0, embed_dropout=0.0, res_dropout=0.0, fusion_drop=0.0)


def tiny_bert(dropout: bool = True) -> BertModel:
    settings = dict(TINY_BERT)
    if not dropout:
        settings.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertModel(BertConfig(**settings))


def reference_batch() -> dict:
    """A loader-style batch (the reference's field names) of 4 clips with varied lengths and dropped parts."""
    g = torch.Generator().manual_seed(SEED)
    batch = len(TEXT_LENGTHS)
    len_t, len_a, len_v = SEQ_LENS
    ids = torch.randint(FIRST_WORD_ID, LAST_WORD_ID, (batch, len_t), generator=g).float()
    valid_t = (torch.arange(len_t)[None] < torch.tensor(TEXT_LENGTHS)[:, None]).float()  # (B, L_t)
    for i, n in enumerate(TEXT_LENGTHS):
        ids[i, 0], ids[i, n - 1] = CLS_ID, SEP_ID
    ids = ids * valid_t
    keep_t = (torch.rand(batch, len_t, generator=g) > DROP_RATE).float() * valid_t
    for i, n in enumerate(TEXT_LENGTHS):
        keep_t[i, 0] = keep_t[i, n - 1] = 1.0
    text = torch.stack([ids, valid_t, torch.zeros_like(ids)], dim=1)  # (B, 3, L_t)
    text_m = text.clone()
    text_m[:, 0] = keep_t * ids + UNK_ID * (valid_t - keep_t)
    out = {"text": text, "text_m": text_m, "text_missing_mask": keep_t}
    for name, lengths, length, dim in (("audio", AUDIO_LENGTHS, len_a, AUDIO_DIM),
                                       ("vision", VISION_LENGTHS, len_v, VISION_DIM)):
        lengths = torch.tensor(lengths)
        valid = (torch.arange(length)[None] < lengths[:, None]).long()  # (B, T)
        keep = (torch.rand(batch, length, generator=g) > DROP_RATE).long() * valid
        features = torch.randn(batch, length, dim, generator=g) * valid[..., None]
        out.update({name: features, f"{name}_m": features * keep[..., None], f"{name}_lengths": lengths,
                    f"{name}_mask": valid, f"{name}_missing_mask": keep})
    out["labels"] = {"M": (torch.rand(batch, 1, generator=g) * 6 - 3)}
    return out


def deterministic_value(key: str, shape: tuple[int, ...]) -> torch.Tensor:
    """A value for one state-dict entry that depends only on its key and shape (fan-in scaled normals)."""
    g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    if key.endswith("num_batches_tracked"):
        return torch.tensor(3)
    if key.endswith("running_var"):
        return 0.5 + torch.rand(shape, generator=g)
    if len(shape) == 0:
        return torch.randn((), generator=g)
    fan_in = 1 if len(shape) == 1 else int(torch.tensor(shape[1:]).prod())
    scale = 0.1 if len(shape) == 1 else fan_in ** -0.5
    value = torch.randn(shape, generator=g) * scale
    if key.endswith(("LayerNorm.weight", "layer_norm.weight", "norm.weight")) or ".layer_norms." in key and \
            key.endswith("weight"):
        value = value + 1.0
    return value


def deterministic_state_dict(keys_and_shapes) -> dict[str, torch.Tensor]:
    """{reference key: deterministic value} for (key, shape) pairs."""
    return {key: deterministic_value(key, tuple(shape)) for key, shape in keys_and_shapes}
