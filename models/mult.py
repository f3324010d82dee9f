"""MulT, the Multimodal Transformer baseline, as the authors' repository builds it (their MULT.py and
``models/subNets/transformers_encoder``), on the incomplete views of the missing protocol.

Per clip (B clips; T_t tokens incl. [CLS]/[SEP] and padding, T_a / T_v padded frames):

1. BERT's ``last_hidden_state`` (B, T_t, H), under ``no_grad`` when BERT is frozen (the authors' default),
   then dropout (``text_dropout``).
2. Temporal Conv1d projections to d (no padding, no bias: a kernel k shortens a sequence by k - 1); a
   modality already d wide skips its convolution (whose weights exist all the same).
3. Six crossmodal transformers, one per (target, source) pair: the target sequence queries the source
   sequence, layer after layer, with the source's embedded sequence as keys and values at every layer.
4. Per target, the two crossmodal outputs are concatenated (2d) and pass a self-attention "memory"
   transformer of max(layers, 3) layers; its output at the LAST time step summarises the target.
5. Head: [text, audio, vision] (6d) -> Linear -> ReLU -> dropout -> Linear, plus the input (a residual
   block) -> Linear -> 1.

The transformers are :class:`models.crossmodal_transformer.CrossmodalTransformer` (shared with TFR-Net).
Module names are the authors' (``proj_l``, ``trans_l_with_a``, ``trans_l_mem``, ``proj1``, ``proj2``,
``out_layer``), so their checkpoints load by prefix (models/reference_checkpoint.py, ``KEY_TABLES["mult"]``).

Quirks of the authors' code that are kept (README, differences table):

* No padding mask anywhere: padded tokens and frames are attended to, and the summary of step 4 is read
  at the last PADDED step.
* ``attn_mask=True`` is a triangular mask: query i sees the keys j < i + 1 + |T_k - T_q| (causal for the
  memories; for crossmodal pairs a band that grows with the length difference).
* No positional embeddings: their encoder has a sinusoidal table but MULT.py never turns it on
  (``position_embedding=True`` adds one here, as MulT's own repository does).
* The attention-weight dropout of a crossmodal block is the SOURCE modality's (``attn_dropout`` for text
  keys, ``_audio``, ``_vision``); the memories use the text one.

The attention runs in PyTorch's ``scaled_dot_product_attention`` on either path (``fast_path`` changes
nothing here): the authors' explicit softmax up to float rounding, with other dropout draws.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from models.crossmodal_transformer import CrossmodalTransformer
from models.execution import ExecutionPolicy
from models.text_encoder import load_text_encoder

#: The memories (self-attention transformers) have at least this many layers (the authors' MULT.py).
MEMORY_MIN_LAYERS = 3

#: One-letter modality names of the authors' module names, in their order (text, audio, vision).
MODALITIES = ("l", "a", "v")
#: The two source modalities of each target, in the authors' order (their concatenation order in step 4).
SOURCES = {"l": ("a", "v"), "a": ("l", "v"), "v": ("l", "a")}


class MulT(nn.Module):
    """MulT on one view: forward(text (B, 3, T_t), audio (B, T_a, d_a), vision (B, T_v, d_v)) -> {"pred_m"}.

    The trainer feeds it the incomplete view (:data:`INPUTS`), as the authors' trainer does; its prediction
    is therefore the incomplete view's, ``pred_m``.
    """

    #: Batch keys of the forward arguments, in order.
    INPUTS = ("text_m", "audio_m", "vision_m")

    def __init__(self, cfg, audio_dim: int, vision_dim: int, text_encoder: Optional[nn.Module] = None,
                 policy: Optional[ExecutionPolicy] = None):
        super().__init__()
        #: How it computes (read by the trainer); its attention is SDPA on every policy (module docstring).
        self.policy = policy if policy is not None else ExecutionPolicy.from_config(cfg)
        self.use_finetune = cfg.use_finetune
        self.text_model = text_encoder if text_encoder is not None else load_text_encoder(cfg.bert)
        self.text_dropout = cfg.text_dropout
        d = cfg.d_model
        self.d_model = d
        self.widths = {"l": self.text_model.config.hidden_size, "a": audio_dim, "v": vision_dim}
        kernels = {"l": cfg.conv_kernel_text, "a": cfg.conv_kernel_audio, "v": cfg.conv_kernel_vision}
        for m in MODALITIES:  # proj_l, proj_a, proj_v: temporal convolutions, no padding, no bias
            self.add_module(f"proj_{m}", nn.Conv1d(self.widths[m], d, kernel_size=kernels[m], padding=0, bias=False))
        key_dropout = {"l": cfg.attn_dropout, "a": cfg.attn_dropout_audio, "v": cfg.attn_dropout_vision}
        shared = dict(num_heads=cfg.heads, relu_dropout=cfg.relu_dropout, res_dropout=cfg.res_dropout,
                      embed_dropout=cfg.embed_dropout, attn_mask=cfg.attn_mask,
                      position_embedding=cfg.position_embedding)
        for target in MODALITIES:  # trans_l_with_a, ...: the target queries the source
            for source in SOURCES[target]:
                self.add_module(f"trans_{target}_with_{source}", CrossmodalTransformer(
                    d, layers=cfg.layers, attn_dropout=key_dropout[source], **shared))
        for m in MODALITIES:  # trans_l_mem, ...: self-attention over the two crossmodal outputs
            self.add_module(f"trans_{m}_mem", CrossmodalTransformer(
                2 * d, layers=max(cfg.layers, MEMORY_MIN_LAYERS), attn_dropout=cfg.attn_dropout, **shared))
        combined = 2 * d * len(MODALITIES)
        self.proj1 = nn.Linear(combined, combined)
        self.proj2 = nn.Linear(combined, combined)
        self.out_layer = nn.Linear(combined, 1)
        self.output_dropout = cfg.output_dropout

    def _text_states(self, text: torch.Tensor) -> torch.Tensor:
        """(B, 3, T_t) float [ids; mask; segments] -> BERT last_hidden_state (B, T_t, H) at every position."""
        ids, mask, segments = text[:, 0].long(), text[:, 1].float(), text[:, 2].long()
        with torch.set_grad_enabled(self.use_finetune and torch.is_grad_enabled()):
            return self.text_model(input_ids=ids, attention_mask=mask, token_type_ids=segments).last_hidden_state

    def _project(self, m: str, seq: torch.Tensor) -> torch.Tensor:
        """(B, T, width) -> (B, T - k + 1, d); unchanged when the width already is d."""
        if self.widths[m] == self.d_model:
            return seq
        return getattr(self, f"proj_{m}")(seq.transpose(1, 2)).transpose(1, 2)

    def forward(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor) -> dict[str, torch.Tensor]:
        states = F.dropout(self._text_states(text), self.text_dropout, self.training)  # (B, T_t, H)
        seqs = {"l": states, "a": audio, "v": vision}
        projected = {m: self._project(m, seqs[m]) for m in MODALITIES}  # (B, T_m', d)
        summaries = []
        for target in MODALITIES:
            crossed = [getattr(self, f"trans_{target}_with_{s}")(projected[target], projected[s])
                       for s in SOURCES[target]]  # 2 x (B, T_target', d)
            memory = getattr(self, f"trans_{target}_mem")(torch.cat(crossed, dim=-1))  # (B, T_target', 2d)
            summaries.append(memory[:, -1])  # the last (padded) step, as the authors read it
        fused = torch.cat(summaries, dim=-1)  # (B, 6d)
        hidden = F.dropout(F.relu(self.proj1(fused)), self.output_dropout, self.training)
        return {"pred_m": self.out_layer(self.proj2(hidden) + fused), "fused": fused}


def build_mult(cfg, audio_dim: int, vision_dim: int, text_encoder: Optional[nn.Module] = None,
               policy: Optional[ExecutionPolicy] = None) -> MulT:
    """MulT for ``cfg`` (:class:`config.mult.MultConfig`) and the dataset's audio / vision widths."""
    return MulT(cfg, audio_dim, vision_dim, text_encoder, policy)
