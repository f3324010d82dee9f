"""Deterministic weights and batches for checking a model against numbers recorded from the authors' code.

Both sides generate the same state dict from the reference key names alone (each tensor from a generator
seeded by the key's CRC32), so only the recorded outputs need to be stored (tests/fixtures/*.json), never
weights. LayerNorm-style scales are drawn around 1 so activations stay in a normal range.
"""

from __future__ import annotations

import zlib

import torch

#: Spread of the generated weights.
WEIGHT_SCALE = 0.2
#: BERT of the recorded runs: tiny, with a small vocabulary that the generated token ids fit in.
TINY_BERT = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                 vocab_size=2100, max_position_embeddings=64)
CLS_ID, SEP_ID, UNK_ID = 101, 102, 100
FIRST_WORD_ID, LAST_WORD_ID = 1000, 2000


def _is_scale(key: str) -> bool:
    return key.endswith("weight") and ("LayerNorm" in key or "layer_norm" in key)


def reference_weights(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """One tensor per key: N(0, WEIGHT_SCALE^2), plus 1 for normalisation scales; a ``version`` buffer is [2.]."""
    state = {}
    for key, shape in shapes.items():
        if key.endswith(".version"):
            state[key] = torch.tensor([2.0])
            continue
        generator = torch.Generator().manual_seed(zlib.crc32(key.encode("utf-8")))
        value = torch.randn(shape, generator=generator) * WEIGHT_SCALE
        state[key] = value + 1.0 if _is_scale(key) else value
    return state


def reference_batch(audio_dim: int, vision_dim: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Three clips of 12 text positions, 20 audio and 16 vision frames, with padding and [UNK]-masked words.

    Keys as the data layer's (``text_m``, ``audio_m``, ``vision_m``, ``audio_lengths``, ``vision_lengths``,
    ``labels``): the incomplete view, which is what the baselines read.
    """
    g = torch.Generator().manual_seed(seed)
    tokens, audio_lengths, vision_lengths = [12, 7, 4], [20, 9, 3], [16, 5, 11]
    batch, seq_len, audio_len, vision_len = len(tokens), 12, 20, 16
    ids = torch.randint(FIRST_WORD_ID, LAST_WORD_ID, (batch, seq_len), generator=g)
    mask = torch.zeros(batch, seq_len)
    for i, n in enumerate(tokens):
        mask[i, :n] = 1
        ids[i, 0], ids[i, n - 1] = CLS_ID, SEP_ID
        ids[i, n:] = 0
        if n > 3:
            ids[i, 1] = UNK_ID
    text = torch.stack([ids.float(), mask, torch.zeros(batch, seq_len)], dim=1)  # (B, 3, L)
    frames_a = (torch.arange(audio_len)[None] < torch.tensor(audio_lengths)[:, None]).float()
    frames_v = (torch.arange(vision_len)[None] < torch.tensor(vision_lengths)[:, None]).float()
    audio = torch.randn(batch, audio_len, audio_dim, generator=g) * frames_a[..., None]
    vision = torch.randn(batch, vision_len, vision_dim, generator=g) * frames_v[..., None]
    labels = torch.tensor([[1.5], [-0.4], [2.2]])
    return {
        "text_m": text, "audio_m": audio, "vision_m": vision,
        "audio_lengths": torch.tensor(audio_lengths), "vision_lengths": torch.tensor(vision_lengths),
        "labels": {"M": labels},
    }
