"""The EMT-DLFR network (docs/REFERENCE.md §4): encoders, EMT fusion, DLFR heads and prediction head.

One Siamese network reads two views of every clip, the complete one and the incomplete one (dropped
tokens -> [UNK], dropped frames -> zeros), with all weights shared (§4.1). Per view (§4.2):

1. BERT ``last_hidden_state`` (B, L, H): position 0 ([CLS]) is the text utterance vector, positions 1..L-1
   the local text sequence; LSTM encoders give the audio / video utterance vectors and local sequences.
2. Bias-free projections to D (an Identity when the width already is D) give the 3 global tokens
   G0 = [text, audio, video utterance] (B, 3, D) and the local sequences H_t, H_a, H_v.
3. The fusion (EMT, :mod:`models.emt`) returns G^L and the updated local sequences Z_m.
4. Prediction head on [text_utt, audio_utt, video_utt, vec(G^L)]; SimSiam projector / predictor on vec(G^L)
   and the three utterance vectors (z returned detached); reconstruction heads on the incomplete view's
   Z_m.

Fast path (default): the text encoder, both LSTMs, the fusion and the prediction head run ONCE on the two
views stacked along the batch (2B); only the BatchNorm-carrying SimSiam heads run per view, so their
batch statistics are per view as in the reference. BERT and the EMT run on the valid tokens only
(:mod:`models.ragged`: the padded positions, which no loss and no attention reads, are skipped and come
out as zeros), with fused / memory-lean attention (:data:`models.text_encoder.LEAN_ATTENTION`,
:mod:`models.emt`); in training the fusion recomputes its activations in the backward pass. The plain path
(:func:`reference_path`) runs one view at a time with the explicit softmax attention and stores every
activation, as the reference does; it serves as the reference in tests and benchmarks. Both paths give
the same outputs and gradients (tests/test_model_fastpath.py).

One deliberate deviation: a view batch of one clip in training mode normalises the SimSiam heads with
the BatchNorm running statistics (:class:`models.dlfr_heads.ViewBatchNorm1d`) where the reference crashes.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch
from torch import nn

from models.dlfr_heads import Predictor, Projector, reconstruction_head
from models.emt import NUM_MODALITIES, set_explicit_attention
from models.encoders import AuViSubNet
from models.fusion import build_fusion
from models.text_encoder import LEAN_ATTENTION, load_text_encoder, packed_hidden_states

#: The four representations pulled together by the SimSiam attraction loss.
ATTRACTION_TARGETS = ("gmc", "text", "audio", "video")

#: Special tokens around the words of a BERT input: [CLS] ... [SEP].
SPECIAL_TOKENS = 2

#: HF attention of the text encoder on the plain path when the encoder came with the lean one selected.
PLAIN_TEXT_ATTENTION = "sdpa"

#: Suffix of the incomplete view's outputs.
MISSING_SUFFIX = "_m"

#: Sub-modules used only by the DLFR training losses (not needed to predict).
TRAINING_ONLY_MODULES = tuple(
    [f"{prefix}_{kind}" for prefix in ("gmc_tokens", "text", "audio", "video") for kind in ("projector", "predictor")]
    + ["recon_text", "recon_audio", "recon_video"]
)


def projection(in_dim: int, d_model: int) -> nn.Module:
    """Bias-free Linear(in_dim -> D), or an Identity without weights when in_dim == D (docs/REFERENCE.md §4.2 step 3)."""
    return nn.Identity() if in_dim == d_model else nn.Linear(in_dim, d_model, bias=False)


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_len) bool, True at positions < length."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class EMTDLFR(nn.Module):
    """EMT-DLFR: forward(complete and incomplete inputs) -> dict of predictions and DLFR head outputs.

    Attribute names matter: the trainer builds its Adam groups from ``text_model`` (BERT),
    ``audio_model`` and ``video_model``; everything else is "other".
    """

    #: Batch keys of the forward arguments, in order (both views).
    INPUTS = ("text", "text_m", "audio", "audio_m", "audio_lengths", "vision", "vision_m", "vision_lengths")

    def __init__(self, cfg, audio_dim: int, vision_dim: int, text_encoder: Optional[nn.Module] = None, fast: bool = True):
        super().__init__()
        d_model = cfg.d_model
        self.use_finetune = cfg.use_finetune
        self.text_model = text_encoder if text_encoder is not None else load_text_encoder(cfg.bert)
        text_dim = self.text_model.config.hidden_size
        current = self.text_model.config._attn_implementation
        self.plain_text_attention = PLAIN_TEXT_ATTENTION if current == LEAN_ATTENTION else current
        self.audio_model = AuViSubNet(
            audio_dim, cfg.a_lstm_hidden_size, cfg.audio_out, cfg.a_lstm_layers, cfg.a_lstm_dropout
        )
        self.video_model = AuViSubNet(
            vision_dim, cfg.v_lstm_hidden_size, cfg.video_out, cfg.v_lstm_layers, cfg.v_lstm_dropout
        )
        self.proj_text = projection(text_dim, d_model)
        self.proj_audio = projection(cfg.audio_out, d_model)
        self.proj_video = projection(cfg.video_out, d_model)
        self.fusion = build_fusion(cfg)

        gmc_dim = NUM_MODALITIES * d_model
        self.gmc_tokens_projector = Projector(gmc_dim)
        self.gmc_tokens_predictor = Predictor(gmc_dim, cfg.gmc_tokens_pred_dim)
        self.text_projector = Projector(text_dim)
        self.text_predictor = Predictor(text_dim, cfg.text_pred_dim)
        self.audio_projector = Projector(cfg.audio_out)
        self.audio_predictor = Predictor(cfg.audio_out, cfg.audio_pred_dim)
        self.video_projector = Projector(cfg.video_out)
        self.video_predictor = Predictor(cfg.video_out, cfg.video_pred_dim)

        self.recon_text = reconstruction_head(d_model, text_dim)
        self.recon_audio = reconstruction_head(d_model, audio_dim)
        self.recon_video = reconstruction_head(d_model, vision_dim)

        fused_dim = text_dim + cfg.audio_out + cfg.video_out + gmc_dim
        self.post_fusion_dropout = nn.Dropout(cfg.post_fusion_dropout)
        self.post_fusion_layer_1 = nn.Linear(fused_dim, cfg.post_fusion_dim)
        self.post_fusion_layer_2 = nn.Linear(cfg.post_fusion_dim, cfg.post_fusion_dim)
        self.post_fusion_layer_3 = nn.Linear(cfg.post_fusion_dim, 1)
        self.set_fast_path(fast)

    def set_fast_path(self, enabled: bool) -> None:
        """Fast path (stacked views, fused SDPA) or plain path (one view at a time, explicit softmax)."""
        self.fast = enabled
        set_explicit_attention(self.fusion, not enabled)
        self.text_model.set_attn_implementation(LEAN_ATTENTION if enabled else self.plain_text_attention)
        if hasattr(self.fusion, "recompute"):
            self.fusion.recompute = enabled
        if hasattr(self.fusion, "packed"):
            self.fusion.packed = enabled

    # --- one or two stacked views ---------------------------------------------------------------
    def _text_hidden(self, text: torch.Tensor) -> torch.Tensor:
        """(N, 3, L) float [ids; mask; segments] -> BERT last_hidden_state (N, L, H).

        The fast path runs BERT on the valid tokens only (zeros at the padded positions, which nothing reads).
        A clip without words is the exception: the fusion's text keys are then all masked, and the reference
        attends uniformly over the padded positions, so such a batch takes BERT's padded path.
        """
        ids, mask, segments = text[:, 0].long(), text[:, 1].long(), text[:, 2].long()
        every_clip_has_words = bool((mask.sum(dim=-1) > SPECIAL_TOKENS).all())
        with torch.set_grad_enabled(self.use_finetune and torch.is_grad_enabled()):
            if self.fast and every_clip_has_words:
                return packed_hidden_states(self.text_model, ids, mask, segments)
            return self.text_model(input_ids=ids, attention_mask=mask, token_type_ids=segments).last_hidden_state

    def _encode(self, text, audio, audio_lengths, vision, vision_lengths, text_lengths, host_lengths) -> dict:
        """Encoders, projections and fusion for N clips (one view, or both views stacked).

        ``host_lengths``: (audio, vision) lengths as given (the LSTMs pack by them on the host)."""
        hidden = self._text_hidden(text)  # (N, L, H)
        audio_utt, audio_seq = self.audio_model(audio, host_lengths[0])  # (N, a_out), (N, T_a', a_out)
        video_utt, video_seq = self.video_model(vision, host_lengths[1])  # (N, v_out), (N, T_v', v_out)
        text_tokens = self.proj_text(hidden)  # (N, L, D): [CLS] -> global token, the rest -> locals
        gmc = torch.stack([text_tokens[:, 0], self.proj_audio(audio_utt), self.proj_video(video_utt)], dim=1)
        locals_ = [text_tokens[:, 1:], self.proj_audio(audio_seq), self.proj_video(video_seq)]
        masks = [
            length_mask(text_lengths, locals_[0].shape[1]),
            length_mask(audio_lengths, locals_[1].shape[1]),
            length_mask(vision_lengths, locals_[2].shape[1]),
        ]
        gmc, locals_ = self.fusion(gmc, locals_, masks)  # (N, 3, D), [(N, T_m, D)]
        return {
            "text": hidden[:, 0],
            "text_seq": hidden[:, 1:],
            "audio": audio_utt,
            "video": video_utt,
            "gmc": gmc.flatten(1),
            "locals": locals_,
        }

    def _predict(self, enc: dict) -> torch.Tensor:
        """Prediction head on [text_utt, audio_utt, video_utt, vec(G^L)] -> (N, 1)."""
        fused = torch.cat([enc["text"], enc["audio"], enc["video"], enc["gmc"]], dim=-1)
        hidden = torch.relu(self.post_fusion_layer_1(self.post_fusion_dropout(fused)))
        hidden = torch.relu(self.post_fusion_layer_2(hidden))
        return self.post_fusion_layer_3(hidden)

    # --- per view --------------------------------------------------------------------------------
    def _siamese(self, enc: dict, suffix: str) -> dict:
        """SimSiam heads of one view: z = projector(x) (detached), p = predictor(projector(x))."""
        out = {}
        for name in ATTRACTION_TARGETS:
            prefix = "gmc_tokens" if name == "gmc" else name
            z = getattr(self, f"{prefix}_projector")(enc[name])
            out[f"z_{name}{suffix}"] = z.detach()
            out[f"p_{name}{suffix}"] = getattr(self, f"{prefix}_predictor")(z)
        return out

    def _reconstruct(self, locals_m: list[torch.Tensor]) -> dict:
        """Reconstruction heads on the incomplete view's EMT local outputs."""
        text_m, audio_m, video_m = locals_m
        return {
            "text_recon": self.recon_text(text_m),  # (B, L-1, H)
            "audio_recon": self.recon_audio(audio_m),  # (B, T_a', d_a)
            "video_recon": self.recon_video(video_m),  # (B, T_v', d_v)
        }

    def forward(
        self,
        text: torch.Tensor,
        text_m: torch.Tensor,
        audio: torch.Tensor,
        audio_m: torch.Tensor,
        audio_lengths: torch.Tensor,
        vision: torch.Tensor,
        vision_m: torch.Tensor,
        vision_lengths: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """text/text_m (B, 3, L); audio/audio_m (B, T_a, d_a); vision/vision_m (B, T_v, d_v); lengths (B,) int64,
        on the inputs' device or on the host (the trainer keeps them there: the LSTMs pack by them on the host)."""
        batch = text.shape[0]
        text_lengths = text[:, 1].sum(dim=-1).long() - SPECIAL_TOKENS  # word tokens, from the complete view
        host_lengths = (audio_lengths, vision_lengths)
        audio_lengths = audio_lengths.to(audio.device, non_blocking=True)
        vision_lengths = vision_lengths.to(vision.device, non_blocking=True)
        if self.fast:
            both = self._encode(
                torch.cat([text, text_m]),
                torch.cat([audio, audio_m]),
                audio_lengths.repeat(2),
                torch.cat([vision, vision_m]),
                vision_lengths.repeat(2),
                text_lengths.repeat(2),
                tuple(lengths.repeat(2) for lengths in host_lengths),
            )
            complete = {k: v[:batch] for k, v in both.items() if k != "locals"}
            missing = {k: v[batch:] for k, v in both.items() if k != "locals"}
            locals_m = [h[batch:] for h in both["locals"]]
            pred, pred_m = self._predict(both).split(batch)
        else:
            complete = self._encode(text, audio, audio_lengths, vision, vision_lengths, text_lengths, host_lengths)
            missing = self._encode(text_m, audio_m, audio_lengths, vision_m, vision_lengths, text_lengths, host_lengths)
            locals_m = missing["locals"]
            pred, pred_m = self._predict(complete), self._predict(missing)
        return {
            "pred": pred,
            "pred_m": pred_m,
            **self._siamese(complete, ""),
            **self._siamese(missing, MISSING_SUFFIX),
            "text_for_recon": complete["text_seq"].detach(),
            **self._reconstruct(locals_m),
        }


def read_positions(text: torch.Tensor, audio_lengths: torch.Tensor, vision_lengths: torch.Tensor) -> dict:
    """(B, T) bool masks of the positions of the sequence outputs that the losses read: words, frames.

    The fast path leaves zeros at the other (padded) positions, the plain path the values the padding gets,
    so paths are compared there only. ``text`` (B, 3, L) as given to the model; lengths (B,).
    """
    words = text[:, 1].sum(dim=-1).long() - SPECIAL_TOKENS  # (B,)
    text_mask = length_mask(words, text.shape[-1] - 1)  # (B, L-1): positions after [CLS]
    audio_mask = length_mask(audio_lengths, int(audio_lengths.max()))
    video_mask = length_mask(vision_lengths, int(vision_lengths.max()))
    return {"text_for_recon": text_mask, "text_recon": text_mask, "audio_recon": audio_mask, "video_recon": video_mask}


def build_model(cfg, audio_dim: int, vision_dim: int, text_encoder: Optional[nn.Module] = None) -> EMTDLFR:
    """The EMT-DLFR network for ``cfg`` and the dataset's audio / vision feature widths."""
    return EMTDLFR(cfg, audio_dim, vision_dim, text_encoder)


@contextlib.contextmanager
def reference_path(model: EMTDLFR) -> Iterator[EMTDLFR]:
    """Run ``model`` on the plain reference-like path inside the block (restores the previous mode after)."""
    previous = model.fast
    model.set_fast_path(False)
    try:
        yield model
    finally:
        model.set_fast_path(previous)
