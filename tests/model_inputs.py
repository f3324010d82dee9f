"""Random EMT-DLFR inputs with varied lengths, shared by the model tests."""

from __future__ import annotations

import torch
from transformers import BertConfig, BertModel

from config import get_config
from models.text_encoder import RANDOM_ENCODERS

CLS_ID, SEP_ID, UNK_ID = 101, 102, 100
FIRST_WORD_ID, LAST_WORD_ID = 1000, 2000


def tiny_config(**overrides):
    """The 'tiny' preset with every dropout off unless overridden."""
    settings = dict(attn_dropout=0.0, ff_dropout=0.0, post_fusion_dropout=0.0, emb_dropout=0.0)
    settings.update(overrides)
    return get_config("tiny", **settings)


def dropout_free_bert(**overrides) -> BertModel:
    """The 'random:tiny' encoder with BERT's internal dropouts off."""
    settings = dict(RANDOM_ENCODERS["tiny"], hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    settings.update(overrides)
    return BertModel(BertConfig(**settings))


def make_inputs(
    text_lengths, audio_lengths, vision_lengths, seq_len=12, audio_len=10, vision_len=9, audio_dim=5, vision_dim=6,
    drop_rate=0.4, generator=None,
) -> dict:
    """Model inputs for clips of the given token counts (incl. [CLS]/[SEP]) and frame counts.

    The incomplete view replaces a random subset of words by [UNK] and zeroes a random subset of frames,
    keeping masks and lengths (docs/REFERENCE.md §3.2).
    """
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    batch = len(text_lengths)
    ids = torch.randint(FIRST_WORD_ID, LAST_WORD_ID, (batch, seq_len), generator=g)
    mask = torch.zeros(batch, seq_len)
    for i, n in enumerate(text_lengths):
        mask[i, :n] = 1
        ids[i, 0], ids[i, n - 1] = CLS_ID, SEP_ID
        ids[i, n:] = 0
    text = torch.stack([ids.float(), mask, torch.zeros(batch, seq_len)], dim=1)
    keep = (torch.rand(batch, seq_len, generator=g) > drop_rate).float()
    keep[:, 0] = 1
    for i, n in enumerate(text_lengths):
        keep[i, n - 1] = 1
    text_m = text.clone()
    text_m[:, 0] = keep * text[:, 0] + UNK_ID * (mask - keep * mask)
    audio_lengths = torch.tensor(audio_lengths, dtype=torch.int64)
    vision_lengths = torch.tensor(vision_lengths, dtype=torch.int64)
    frames_a = torch.arange(audio_len)[None] < audio_lengths[:, None]
    frames_v = torch.arange(vision_len)[None] < vision_lengths[:, None]
    audio = torch.randn(batch, audio_len, audio_dim, generator=g) * frames_a[..., None]
    vision = torch.randn(batch, vision_len, vision_dim, generator=g) * frames_v[..., None]
    audio_m = audio * (torch.rand(batch, audio_len, 1, generator=g) > drop_rate)
    vision_m = vision * (torch.rand(batch, vision_len, 1, generator=g) > drop_rate)
    return dict(
        text=text, text_m=text_m, audio=audio, audio_m=audio_m, audio_lengths=audio_lengths,
        vision=vision, vision_m=vision_m, vision_lengths=vision_lengths,
    )
