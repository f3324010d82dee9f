"""The DLFR training objective (paper §3.3-3.4; docs/REFERENCE.md §4, §5).

    L = L_task^m + λ_att · (Σ_r L_att,r + L_task^c) + λ_rec · Σ_m L_rec,m

* ``L_task^m`` / ``L_task^c``: L1 between the prediction of the incomplete / complete view and the label.
  The complete-view task loss sits inside the attraction bracket, as in the reference (docs/REFERENCE.md §8 item 2).
* ``L_att,r`` (high-level attraction, SimSiam): for r in {gmc, text, audio, vision},
  ``-½ [cos(p_r^m, sg(z_r)) + cos(p_r, sg(z_r^m))]``; the model returns the z's already detached.
* ``L_rec,m`` (low-level reconstruction): SmoothL1 between the incomplete view's reconstruction and the
  complete target, averaged over the elements of the positions that are valid but were dropped.
  Text targets are the complete view's detached BERT states at the word positions, audio/vision targets
  the raw complete features truncated to the batch's longest clip.

Every term is computed in float32, also under bf16 autocast: the model's bf16 outputs are widened, and the
labels and reconstruction targets keep their float32 values (in bf16 a label of 2.6 would be 2.594).

Ablations: ``use_attraction=False`` drops the whole λ_att bracket (EMT-LLFR), ``use_reconstruction=False``
the λ_rec term (EMT-HLFR), both leave the incomplete-view task loss alone (EMT).

:class:`DLFRObjective` is the :class:`~trains.objective.Objective` of :class:`models.emt_dlfr.EMTDLFR`:
it reads the typed :class:`~models.outputs.EMTDLFROutput`.
"""

from __future__ import annotations

from types import MappingProxyType

import torch
import torch.nn.functional as F

from config import MODALITIES, Config
from data.load_data import dropped_positions
from data.schema import FIRST_WORD_POSITION
from models.outputs import ATTRACTION_TARGETS, EMTDLFROutput
from trains.objective import TASK_INCOMPLETE, TOTAL, Objective

#: Added to the mask count so that a batch with nothing dropped (rate 0) gives a loss of exactly 0.
RECON_EPS = 1e-6


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """-cos(p, z) along the feature dimension, averaged over the batch. ``z`` must already be detached."""
    return -F.cosine_similarity(p.float(), z.float(), dim=-1).mean()


def attraction_loss(p_m: torch.Tensor, z: torch.Tensor, p: torch.Tensor, z_m: torch.Tensor) -> torch.Tensor:
    """Symmetric SimSiam loss between the incomplete (``_m``) and the complete view."""
    return 0.5 * (negative_cosine(p_m, z) + negative_cosine(p, z_m))


def masked_recon_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean SmoothL1 (β=1) over the elements of the masked positions.

    pred, target: (B, T, C); mask: (B, T), 1 where the position is valid but was dropped.
    """
    pred, target = pred.float(), target.float()
    mask = mask.float().unsqueeze(-1).expand_as(pred)  # (B, T, C)
    loss_sum = F.smooth_l1_loss(pred * mask, target * mask, reduction="sum", beta=1.0)
    return loss_sum / (mask.sum() + RECON_EPS)


def reconstruction_targets(
    out: EMTDLFROutput, batch: dict
) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(prediction, target, dropped positions) per modality, as the reference builds them."""
    words_dropped = dropped_positions(batch, "text")[:, FIRST_WORD_POSITION:]  # (B, L-1)
    targets = {"text": (out.reconstruction["text"], out.text_target, words_dropped)}
    for modality in MODALITIES[1:]:
        pred = out.reconstruction[modality]  # (B, T', d): the batch's longest clip
        frames = pred.shape[1]
        targets[modality] = (pred, batch[modality][:, :frames], dropped_positions(batch, modality)[:, :frames])
    return targets


class DLFRObjective(Objective):
    """The DLFR loss of :class:`models.emt_dlfr.EMTDLFR`; the metrics read the incomplete view's prediction."""

    reported_terms = MappingProxyType({"Loss(pred_m)": TASK_INCOMPLETE})

    def __init__(self, cfg: Config):
        self.use_attraction = cfg.use_attraction
        self.use_reconstruction = cfg.use_reconstruction
        self.attraction_weight = cfg.loss_attra_weight
        self.reconstruction_weight = cfg.loss_recon_weight

    def predictions(self, outputs: EMTDLFROutput) -> torch.Tensor:
        return outputs.incomplete.prediction.view(-1)

    def complete_predictions(self, outputs: EMTDLFROutput) -> torch.Tensor:
        return outputs.complete.prediction.view(-1)

    def __call__(self, outputs: EMTDLFROutput, batch: dict) -> dict[str, torch.Tensor]:
        """All loss terms of one batch (labels["M"] of shape (B, 1)); ``"total"`` is back-propagated. Every
        term is float32, whatever the outputs' dtype and whether or not autocast is on."""
        with torch.autocast(outputs.incomplete.prediction.device.type, enabled=False):
            return self._float32_terms(outputs, batch)

    def _float32_terms(self, outputs: EMTDLFROutput, batch: dict) -> dict[str, torch.Tensor]:
        label = self.labels(batch).float()  # (B,)
        terms: dict[str, torch.Tensor] = {TASK_INCOMPLETE: F.l1_loss(self.predictions(outputs).float(), label)}
        total = terms[TASK_INCOMPLETE]
        if self.use_attraction:
            terms["task_c"] = F.l1_loss(outputs.complete.prediction.float().view(-1), label)
            attraction = terms["task_c"]
            for target in ATTRACTION_TARGETS:
                complete, incomplete = outputs.complete.siamese[target], outputs.incomplete.siamese[target]
                term = attraction_loss(incomplete.p, complete.z, complete.p, incomplete.z)
                terms[f"att_{target}"] = term
                attraction = attraction + term
            total = total + self.attraction_weight * attraction
        if self.use_reconstruction:
            recon = 0.0
            for modality, (pred, target, dropped) in reconstruction_targets(outputs, batch).items():
                term = masked_recon_loss(pred, target, dropped)
                terms[f"rec_{modality}"] = term
                recon = recon + term
            total = total + self.reconstruction_weight * recon
        terms[TOTAL] = total
        return terms
