"""The EMT-DLFR network (docs/REFERENCE.md §4): encoders, fusion, DLFR heads and prediction head.

One Siamese network reads two views of every clip, the complete one and the incomplete one (dropped
tokens -> [UNK], dropped frames -> zeros), with all weights shared (§4.1). Per view (§4.2):

1. BERT ``last_hidden_state`` (B, L, H): position 0 ([CLS]) is the text utterance vector, positions 1..L-1
   the local text sequence; LSTM encoders give the audio / vision utterance vectors and local sequences.
2. Bias-free projections to D (an Identity when the width already is D) give the 3 global tokens
   G0 = [text, audio, vision utterance] (B, 3, D) and the local sequences H_t, H_a, H_v.
3. The fusion (the EMT by default, :mod:`models.fusion`) returns G^L and the updated local sequences Z_m.
4. Prediction head on [text_utt, audio_utt, vision_utt, vec(G^L)]; SimSiam projector / predictor on
   vec(G^L) and the three utterance vectors (z returned detached); reconstruction heads on the incomplete
   view's Z_m. The outputs are an :class:`models.outputs.EMTDLFROutput`.

How it computes is the :class:`~models.execution.ExecutionPolicy`'s choice, made once from the config.
On the fast path the text encoder, both LSTMs, the fusion and the prediction head run ONCE on the two
views stacked along the batch (2B); only the BatchNorm-carrying SimSiam heads run per view, so their
batch statistics are per view as in the reference. Per batch, the policy's :class:`~models.execution.BatchPlan`
says whether BERT and the fusion run on the valid tokens only (:mod:`models.ragged`: the padded positions,
which no loss and no attention reads, are skipped and come out as zeros) and which attention kernel runs.
The reference-like policy (:func:`reference_path`) runs one view at a time with the explicit softmax
attention and stores every activation, as the reference does; both give the same outputs and gradients
(tests/test_model_fastpath.py).

One deliberate deviation: a view batch of one clip in training mode normalises the SimSiam heads with
the BatchNorm running statistics (:class:`models.dlfr_heads.ViewBatchNorm1d`) where the reference crashes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Optional

import torch
from torch import nn

from config import MODALITIES
from data.schema import CLS_POSITION, FIRST_WORD_POSITION, SPECIAL_TOKENS, TEXT_IDS_ROW, TEXT_MASK_ROW, TEXT_SEGMENT_ROW
from models.dlfr_heads import Predictor, Projector, reconstruction_head
from models.encoders import AuViSubNet
from models.execution import EXPLICIT, BatchPlan, ExecutionPolicy
from models.fusion import build_fusion
from models.fusion_engine import NUM_MODALITIES
from models.outputs import ATTRACTION_TARGETS, GMC, EMTDLFROutput, SimSiamPair, ViewOutputs
from models.text_encoder import hf_attention, load_text_encoder, own_attention, packed_hidden_states

#: Sub-modules used only by the DLFR training losses (not needed to predict).
TRAINING_ONLY_MODULES = tuple(
    [f"{target}_{kind}" for target in ATTRACTION_TARGETS for kind in ("projector", "predictor")]
    + [f"recon_{modality}" for modality in MODALITIES]
)


def projection(in_dim: int, d_model: int) -> nn.Module:
    """Bias-free Linear(in_dim -> D), or an Identity without weights when in_dim == D (docs/REFERENCE.md §4.2 step 3)."""
    return nn.Identity() if in_dim == d_model else nn.Linear(in_dim, d_model, bias=False)


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_len) bool, True at positions < length."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def word_counts(text: torch.Tensor) -> torch.Tensor:
    """(B, 3, L) ``text_bert`` rows -> (B,) int64 number of words (valid tokens without [CLS] and [SEP])."""
    return text[:, TEXT_MASK_ROW].sum(dim=-1).long() - SPECIAL_TOKENS


@dataclass(frozen=True)
class Encoded:
    """One view's (or both stacked views') encodings, N clips: what the heads read."""

    utterances: dict[str, torch.Tensor]  # text (N, H), audio (N, a_out), vision (N, v_out), gmc (N, 3D)
    text_seq: torch.Tensor  # (N, L-1, H): BERT's states after [CLS]
    locals_: list[torch.Tensor]  # the fusion's local outputs Z_m (N, T_m, D), text / audio / vision

    def split(self, batch: int) -> tuple["Encoded", "Encoded"]:
        """Both stacked views -> (complete, incomplete), the first ``batch`` clips and the rest."""
        first = Encoded({k: v[:batch] for k, v in self.utterances.items()}, self.text_seq[:batch],
                        [h[:batch] for h in self.locals_])
        second = Encoded({k: v[batch:] for k, v in self.utterances.items()}, self.text_seq[batch:],
                         [h[batch:] for h in self.locals_])
        return first, second


class EMTDLFR(nn.Module):
    """EMT-DLFR: forward(complete and incomplete inputs) -> :class:`~models.outputs.EMTDLFROutput`.

    Attribute names matter: the trainer builds its Adam groups from ``text_model`` (BERT),
    ``audio_model`` and ``vision_model``; everything else is "other".
    """

    #: Batch keys of the forward arguments, in order (both views).
    INPUTS = ("text", "text_m", "audio", "audio_m", "audio_lengths", "vision", "vision_m", "vision_lengths")

    def __init__(
        self,
        cfg,
        audio_dim: int,
        vision_dim: int,
        text_encoder: Optional[nn.Module] = None,
        policy: Optional[ExecutionPolicy] = None,
    ):
        super().__init__()
        d_model = cfg.d_model
        self.use_finetune = cfg.use_finetune
        self.text_model = text_encoder if text_encoder is not None else load_text_encoder(cfg.bert)
        text_dim = self.text_model.config.hidden_size
        #: The encoder's own HF attention, which the explicit kernel keeps (the reference's BERT).
        self.own_text_attention = own_attention(self.text_model)
        self.audio_model = AuViSubNet(
            audio_dim, cfg.a_lstm_hidden_size, cfg.audio_out, cfg.a_lstm_layers, cfg.a_lstm_dropout
        )
        self.vision_model = AuViSubNet(
            vision_dim, cfg.v_lstm_hidden_size, cfg.video_out, cfg.v_lstm_layers, cfg.v_lstm_dropout
        )
        self.proj_text = projection(text_dim, d_model)
        self.proj_audio = projection(cfg.audio_out, d_model)
        self.proj_vision = projection(cfg.video_out, d_model)
        self.fusion = build_fusion(cfg)

        gmc_dim = NUM_MODALITIES * d_model
        self.gmc_projector = Projector(gmc_dim)
        self.gmc_predictor = Predictor(gmc_dim, cfg.gmc_tokens_pred_dim)
        self.text_projector = Projector(text_dim)
        self.text_predictor = Predictor(text_dim, cfg.text_pred_dim)
        self.audio_projector = Projector(cfg.audio_out)
        self.audio_predictor = Predictor(cfg.audio_out, cfg.audio_pred_dim)
        self.vision_projector = Projector(cfg.video_out)
        self.vision_predictor = Predictor(cfg.video_out, cfg.video_pred_dim)

        self.recon_text = reconstruction_head(d_model, text_dim)
        self.recon_audio = reconstruction_head(d_model, audio_dim)
        self.recon_vision = reconstruction_head(d_model, vision_dim)

        fused_dim = text_dim + cfg.audio_out + cfg.video_out + gmc_dim
        self.post_fusion_dropout = nn.Dropout(cfg.post_fusion_dropout)
        self.post_fusion_layer_1 = nn.Linear(fused_dim, cfg.post_fusion_dim)
        self.post_fusion_layer_2 = nn.Linear(cfg.post_fusion_dim, cfg.post_fusion_dim)
        self.post_fusion_layer_3 = nn.Linear(cfg.post_fusion_dim, 1)
        self.set_policy(policy if policy is not None else ExecutionPolicy.from_config(cfg))

    def set_policy(self, policy: ExecutionPolicy) -> None:
        """Compute with ``policy`` from now on (the text encoder's HF attention follows its kernel)."""
        self.policy = policy
        kernel = policy.attention
        self.text_model.set_attn_implementation(self.own_text_attention if kernel == EXPLICIT else hf_attention(kernel))

    # --- one or two stacked views ---------------------------------------------------------------
    def _text_hidden(self, text: torch.Tensor, plan: BatchPlan) -> torch.Tensor:
        """(N, 3, L) float [ids; mask; segments] -> BERT last_hidden_state (N, L, H); zeros at the padding
        when the plan packs the tokens."""
        ids, mask, segments = (text[:, row].long() for row in (TEXT_IDS_ROW, TEXT_MASK_ROW, TEXT_SEGMENT_ROW))
        with torch.set_grad_enabled(self.use_finetune and torch.is_grad_enabled()):
            if plan.packed:
                return packed_hidden_states(self.text_model, ids, mask, segments)
            return self.text_model(input_ids=ids, attention_mask=mask, token_type_ids=segments).last_hidden_state

    def _encode(
        self, text, audio, audio_lengths, vision, vision_lengths, words, host_lengths, plan: BatchPlan
    ) -> Encoded:
        """Encoders, projections and fusion for N clips (one view, or both views stacked).

        ``host_lengths``: (audio, vision) lengths as given (the LSTMs pack by them on the host)."""
        hidden = self._text_hidden(text, plan)  # (N, L, H)
        audio_utt, audio_seq = self.audio_model(audio, host_lengths[0])  # (N, a_out), (N, T_a', a_out)
        vision_utt, vision_seq = self.vision_model(vision, host_lengths[1])  # (N, v_out), (N, T_v', v_out)
        text_tokens = self.proj_text(hidden)  # (N, L, D): [CLS] -> global token, the words -> locals
        gmc = torch.stack(
            [text_tokens[:, CLS_POSITION], self.proj_audio(audio_utt), self.proj_vision(vision_utt)], dim=1
        )  # (N, 3, D)
        locals_ = [text_tokens[:, FIRST_WORD_POSITION:], self.proj_audio(audio_seq), self.proj_vision(vision_seq)]
        masks = [length_mask(n, h.shape[1]) for n, h in zip((words, audio_lengths, vision_lengths), locals_)]
        gmc, locals_ = self.fusion(gmc, locals_, masks, plan)  # (N, 3, D), [(N, T_m, D)]
        utterances = {"text": hidden[:, CLS_POSITION], "audio": audio_utt, "vision": vision_utt, GMC: gmc.flatten(1)}
        return Encoded(utterances, hidden[:, FIRST_WORD_POSITION:], locals_)

    def _predict(self, enc: Encoded) -> torch.Tensor:
        """Prediction head on [text_utt, audio_utt, vision_utt, vec(G^L)] -> (N, 1)."""
        fused = torch.cat([enc.utterances[name] for name in (*MODALITIES, GMC)], dim=-1)
        hidden = torch.relu(self.post_fusion_layer_1(self.post_fusion_dropout(fused)))
        hidden = torch.relu(self.post_fusion_layer_2(hidden))
        return self.post_fusion_layer_3(hidden)

    # --- per view --------------------------------------------------------------------------------
    def _siamese(self, enc: Encoded) -> dict[str, SimSiamPair]:
        """SimSiam heads of one view: z = projector(x) (detached), p = predictor(projector(x))."""
        pairs = {}
        for target in ATTRACTION_TARGETS:
            z = getattr(self, f"{target}_projector")(enc.utterances[target])
            pairs[target] = SimSiamPair(z=z.detach(), p=getattr(self, f"{target}_predictor")(z))
        return pairs

    def _reconstruct(self, locals_m: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Reconstruction heads on the incomplete view's fusion outputs: text (B, L-1, H), audio (B, T_a', d_a),
        vision (B, T_v', d_v)."""
        return {modality: getattr(self, f"recon_{modality}")(h) for modality, h in zip(MODALITIES, locals_m)}

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
    ) -> EMTDLFROutput:
        """text/text_m (B, 3, L); audio/audio_m (B, T_a, d_a); vision/vision_m (B, T_v, d_v); lengths (B,) int64,
        on the inputs' device or on the host (the trainer keeps them there: the LSTMs pack by them on the host)."""
        batch = text.shape[0]
        words = word_counts(text)  # from the complete view; both views have the same masks and lengths
        every_clip_has_frames = bool((audio_lengths > 0).all() and (vision_lengths > 0).all())
        plan = self.policy.plan(every_clip_has_frames and bool((words > 0).all()))
        host_lengths = (audio_lengths, vision_lengths)
        audio_lengths = audio_lengths.to(audio.device, non_blocking=True)
        vision_lengths = vision_lengths.to(vision.device, non_blocking=True)
        if self.policy.stack_views:
            both = self._encode(
                torch.cat([text, text_m]),
                torch.cat([audio, audio_m]),
                audio_lengths.repeat(2),
                torch.cat([vision, vision_m]),
                vision_lengths.repeat(2),
                words.repeat(2),
                tuple(lengths.repeat(2) for lengths in host_lengths),
                plan,
            )
            pred, pred_m = self._predict(both).split(batch)
            complete, incomplete = both.split(batch)
        else:
            complete = self._encode(text, audio, audio_lengths, vision, vision_lengths, words, host_lengths, plan)
            incomplete = self._encode(text_m, audio_m, audio_lengths, vision_m, vision_lengths, words, host_lengths, plan)
            pred, pred_m = self._predict(complete), self._predict(incomplete)
        return EMTDLFROutput(
            complete=ViewOutputs(pred, self._siamese(complete)),
            incomplete=ViewOutputs(pred_m, self._siamese(incomplete)),
            reconstruction=self._reconstruct(incomplete.locals_),
            text_target=complete.text_seq.detach(),
        )


def read_positions(text: torch.Tensor, audio_lengths: torch.Tensor, vision_lengths: torch.Tensor) -> dict:
    """(B, T) bool masks of the positions of the sequence outputs that the losses read: words, frames.

    Keyed by the names of :meth:`~models.outputs.EMTDLFROutput.tensors`. The fast path leaves zeros at the
    other (padded) positions, the plain path the values the padding gets, so paths are compared there
    only. ``text`` (B, 3, L) as given to the model; lengths (B,).
    """
    text_mask = length_mask(word_counts(text), text.shape[-1] - FIRST_WORD_POSITION)  # (B, L-1)
    audio_mask = length_mask(audio_lengths, int(audio_lengths.max()))
    vision_mask = length_mask(vision_lengths, int(vision_lengths.max()))
    return {
        "text_target": text_mask,
        "reconstruction.text": text_mask,
        "reconstruction.audio": audio_mask,
        "reconstruction.vision": vision_mask,
    }


def build_model(
    cfg,
    audio_dim: int,
    vision_dim: int,
    text_encoder: Optional[nn.Module] = None,
    policy: Optional[ExecutionPolicy] = None,
) -> EMTDLFR:
    """The EMT-DLFR network for ``cfg`` and the dataset's audio / vision feature widths, computing with
    ``policy`` (default: the one ``cfg`` selects)."""
    return EMTDLFR(cfg, audio_dim, vision_dim, text_encoder, policy)


@contextlib.contextmanager
def reference_path(model: EMTDLFR) -> Iterator[EMTDLFR]:
    """Run ``model`` with its policy's reference-like form inside the block (restores the policy after)."""
    previous = model.policy
    model.set_policy(previous.reference_like())
    try:
        yield model
    finally:
        model.set_policy(previous)
