"""The optimiser of docs/REFERENCE.md §6: Adam (L2 weight decay, not AdamW) with five parameter groups.

1. BERT weights (names containing no bias / LayerNorm term): lr_bert, wd_bert
2. BERT biases and LayerNorm parameters: lr_bert, no decay
3. the audio encoder (LSTM + linear_1): lr_audio, wd_audio
4. the vision encoder: lr_video, wd_video
5. everything else (projections, fusion, DLFR heads, prediction head): lr_other, wd_other

No scheduler, no clipping, no warm-up. With ``use_finetune=False`` BERT is frozen and left out.
"""

from __future__ import annotations

import torch
from torch import nn

from config import Config
from models.execution import ExecutionPolicy

#: Parameter-name fragments of BERT that get no weight decay (the reference's list).
NO_DECAY_TERMS = ("bias", "LayerNorm.bias", "LayerNorm.weight")


def parameter_groups(cfg: Config, model: nn.Module) -> list[dict]:
    bert = list(model.text_model.named_parameters())
    audio = list(model.audio_model.parameters())
    vision = list(model.vision_model.parameters())
    grouped = {id(p) for _, p in bert} | {id(p) for p in audio} | {id(p) for p in vision}
    other = [p for p in model.parameters() if id(p) not in grouped]
    groups = []
    if cfg.use_finetune:
        groups += [
            {
                "params": [p for n, p in bert if not any(t in n for t in NO_DECAY_TERMS)],
                "lr": cfg.learning_rate_bert,
                "weight_decay": cfg.weight_decay_bert,
                "name": "bert_decay",
            },
            {
                "params": [p for n, p in bert if any(t in n for t in NO_DECAY_TERMS)],
                "lr": cfg.learning_rate_bert,
                "weight_decay": 0.0,
                "name": "bert_no_decay",
            },
        ]
    groups += [
        {"params": audio, "lr": cfg.learning_rate_audio, "weight_decay": cfg.weight_decay_audio, "name": "audio"},
        {"params": vision, "lr": cfg.learning_rate_video, "weight_decay": cfg.weight_decay_video, "name": "vision"},
        {"params": other, "lr": cfg.learning_rate_other, "weight_decay": cfg.weight_decay_other, "name": "other"},
    ]
    return groups


def build_optimizer(cfg: Config, model: nn.Module, policy: ExecutionPolicy) -> torch.optim.Adam:
    """Adam over :func:`parameter_groups`; ``policy.fused_adam`` selects PyTorch's fused kernel, the same
    update as the reference's per-parameter loop up to float rounding, and much faster on a CPU
    (docs/BENCHMARKS.md)."""
    if not cfg.use_finetune:
        for p in model.text_model.parameters():
            p.requires_grad_(False)
    return torch.optim.Adam(parameter_groups(cfg, model), fused=policy.fused_adam)
