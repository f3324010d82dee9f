"""The TFR-Net network (Yuan et al., "Transformer-based Feature Reconstruction Network for Robust Multimodal
Sentiment Analysis", ACM MM 2021), as the EMT-DLFR authors' repository ships it (``TFR_NET`` in
``models/missingTask/TFR_NET/model.py``, wrapped by ``AMIO``).

Which view it reads (the reference's ``data_missing`` loader and ``TFR_NET.forward``):

* BERT reads BOTH the incomplete text (dropped words -> [UNK]) and the complete text; the alignment, the
  fusion and the prediction read the incomplete view only (incomplete text states, zeroed audio / vision
  frames); the complete view is used only as the reconstruction target (complete BERT states, raw audio /
  vision features);
* the fusion's validity masks are the complete view's (BERT attention mask, frame lengths), which the
  incomplete view shares.

Forward: BERT -> :class:`~models.tfr_net.alignment.CrossmodalAlignment` -> h (to the fusion) and h^g -> the
generators (one Linear(3d -> D_m) per modality, the reference's ``linear`` generator) -> reconstructions;
:class:`~models.tfr_net.fusion.GatedFusion` on h -> the prediction (B, 1). The objective is in
:mod:`models.tfr_net.losses`.

BERT runs once on the two texts stacked along the batch (the reference calls it twice, incomplete first):
the same states up to float rounding; in training BERT's dropout draws differ. With ``use_finetune=False``
BERT runs without gradients, as the reference's ``BertTextEncoder``.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from config.tfr_net import TFRNetConfig
from models.execution import ExecutionPolicy
from models.tfr_net.alignment import CrossmodalAlignment
from models.tfr_net.fusion import GatedFusion
from models.text_encoder import load_text_encoder

#: The alignment's output width per modality, in multiples of d: [self; cross; cross].
ALIGNED_PARTS = 3


def frame_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_len) 0/1 int64 validity mask (the reference's audio_mask / vision_mask)."""
    return (torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]).long()


class TFRNet(nn.Module):
    """TFR-Net: forward(complete and incomplete inputs) -> prediction, reconstructions and their text target.

    ``text_model`` (BERT) is the only sub-module the optimiser treats apart; everything else is "other".
    """

    #: Batch keys of the forward arguments, in order.
    INPUTS = ("text", "text_m", "audio", "audio_m", "audio_lengths", "vision", "vision_m", "vision_lengths")

    def __init__(self, cfg: TFRNetConfig, audio_dim: int, vision_dim: int, text_encoder: Optional[nn.Module] = None,
                 policy: Optional[ExecutionPolicy] = None):
        """The network for ``cfg`` (its ``seq_lens``: the padded lengths the final attentions are as wide as)
        and the data's audio / vision widths; BERT from ``cfg.bert`` unless ``text_encoder`` is given."""
        super().__init__()
        #: How it computes (read by the trainer); its attention is SDPA on every policy.
        self.policy = policy if policy is not None else ExecutionPolicy.from_config(cfg)
        self.use_finetune = cfg.use_finetune
        self.text_model = text_encoder if text_encoder is not None else load_text_encoder(cfg.bert)
        text_dim = self.text_model.config.hidden_size
        feature_dims = (text_dim, audio_dim, vision_dim)
        self.seq_lens = tuple(cfg.seq_lens)
        self.align_subnet = CrossmodalAlignment(cfg, feature_dims, self.seq_lens)
        aligned = ALIGNED_PARTS * cfg.d_model
        self.generator_t = nn.Linear(aligned, text_dim)
        self.generator_a = nn.Linear(aligned, audio_dim)
        self.generator_v = nn.Linear(aligned, vision_dim)
        self.fusion_subnet = GatedFusion(cfg, (aligned, aligned, aligned))

    def _bert(self, text: torch.Tensor) -> torch.Tensor:
        """(N, 3, L) float [ids; mask; segments] -> last_hidden_state (N, L, H)."""
        with torch.set_grad_enabled(self.use_finetune and torch.is_grad_enabled()):
            return self.text_model(
                input_ids=text[:, 0].long(), attention_mask=text[:, 1].float(), token_type_ids=text[:, 2].long()
            ).last_hidden_state

    def forward(self, text, text_m, audio, audio_m, audio_lengths, vision, vision_m, vision_lengths) -> dict:
        """text, text_m (B, 3, L_t); audio, audio_m (B, L_a, D_a); vision, vision_m (B, L_v, D_v); lengths (B,).

        Returns ``pred_m`` (B, 1), the incomplete view's prediction; ``gen_text`` / ``target_text`` (B, L_t, H); ``gen_audio`` (B, L_a, D_a);
        ``gen_vision`` (B, L_v, D_v).
        """
        lengths = (text.shape[2], audio.shape[1], vision.shape[1])
        if lengths != self.seq_lens:
            raise ValueError(f"tfr_net was built for padded lengths {self.seq_lens} (text, audio, vision), "
                             f"got a batch of {lengths}")
        batch = text.shape[0]
        states = self._bert(torch.cat([text_m, text], dim=0))  # (2B, L_t, H)
        text_m_states, text_states = states[:batch], states[batch:]
        h_l, h_a, h_v, g_l, g_a, g_v = self.align_subnet(text_m_states, audio_m, vision_m)
        text_mask = text[:, 1]  # (B, L_t)
        audio_mask = frame_mask(audio_lengths, audio.shape[1])
        vision_mask = frame_mask(vision_lengths, vision.shape[1])
        pred = self.fusion_subnet((h_l, text_mask), (h_a, audio_mask), (h_v, vision_mask))
        return {
            "pred_m": pred,
            "gen_text": self.generator_t(g_l),
            "target_text": text_states,
            "gen_audio": self.generator_a(g_a),
            "gen_vision": self.generator_v(g_v),
        }



def build_tfr_net(cfg: TFRNetConfig, audio_dim: int, vision_dim: int, text_encoder: Optional[nn.Module] = None,
                  policy: Optional[ExecutionPolicy] = None) -> TFRNet:
    """TFR-Net for ``cfg`` (:class:`config.tfr_net.TFRNetConfig`) and the dataset's audio / vision widths."""
    return TFRNet(cfg, audio_dim, vision_dim, text_encoder, policy)
