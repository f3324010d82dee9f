"""The DLFR training objective (paper §3.3-3.4; docs/REFERENCE.md §4, §5).

    L = L_task^m + λ_att · (Σ_r L_att,r + L_task^c) + λ_rec · Σ_m L_rec,m

* ``L_task^m`` / ``L_task^c``: L1 between the prediction of the incomplete / complete view and the label.
  The complete-view task loss sits inside the attraction bracket, as in the reference (docs/REFERENCE.md §8 item 2).
* ``L_att,r`` (high-level attraction, SimSiam): for r in {gmc, text, audio, video},
  ``-½ [cos(p_r^m, sg(z_r)) + cos(p_r, sg(z_r^m))]``; the model returns the z's already detached.
* ``L_rec,m`` (low-level reconstruction): SmoothL1 between the incomplete view's reconstruction and the
  complete target, averaged over the elements of the positions that are valid but were dropped.
  Text targets are the complete view's detached BERT states at positions 1.., audio/vision targets the
  raw complete features truncated to the batch's longest clip.

Every term is computed in float32, also under bf16 autocast: the model's bf16 outputs are widened, and the
labels and reconstruction targets keep their float32 values (in bf16 a label of 2.6 would be 2.594).

Ablations: ``use_attraction=False`` drops the whole λ_att bracket (EMT-LLFR), ``use_reconstruction=False``
the λ_rec term (EMT-HLFR), both leave the incomplete-view task loss alone (EMT).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from config import Config

#: Added to the mask count so that a batch with nothing dropped (rate 0) gives a loss of exactly 0.
RECON_EPS = 1e-6
#: The representations the attraction loss is applied to (model output keys z_<r>, p_<r>, *_m).
ATTRACTION_KEYS = ("gmc", "text", "audio", "video")


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


def reconstruction_targets(out: dict, batch: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(prediction, target, mask) per modality, as the reference builds them."""
    text_valid = batch["text"][:, 1, 1:]  # (B, L-1) attention mask without [CLS]
    text_kept = batch["text_missing_mask"][:, 1:]  # (B, L-1)
    t_audio = out["audio_recon"].shape[1]
    t_vision = out["video_recon"].shape[1]
    return {
        "text": (out["text_recon"], out["text_for_recon"], text_valid - text_kept),
        "audio": (
            out["audio_recon"],
            batch["audio"][:, :t_audio],
            (batch["audio_mask"] - batch["audio_missing_mask"])[:, :t_audio],
        ),
        "vision": (
            out["video_recon"],
            batch["vision"][:, :t_vision],
            (batch["vision_mask"] - batch["vision_missing_mask"])[:, :t_vision],
        ),
    }


def dlfr_loss(out: dict, batch: dict, cfg: Config) -> dict[str, torch.Tensor]:
    """All loss terms of one batch; ``"total"`` is the objective that is back-propagated.

    out: the model's output dict; batch: the collated data batch (labels["M"] of shape (B, 1)). Every term is
    float32, whatever the outputs' dtype and whether or not autocast is on.
    """
    with torch.autocast(out["pred_m"].device.type, enabled=False):
        return _float32_terms(out, batch, cfg)


def _float32_terms(out: dict, batch: dict, cfg: Config) -> dict[str, torch.Tensor]:
    label = batch["labels"]["M"].float().view(-1)  # (B,)
    terms: dict[str, torch.Tensor] = {"task_m": F.l1_loss(out["pred_m"].float().view(-1), label)}
    total = terms["task_m"]
    if cfg.use_attraction:
        terms["task_c"] = F.l1_loss(out["pred"].float().view(-1), label)
        attraction = terms["task_c"]
        for key in ATTRACTION_KEYS:
            term = attraction_loss(out[f"p_{key}_m"], out[f"z_{key}"], out[f"p_{key}"], out[f"z_{key}_m"])
            terms[f"att_{key}"] = term
            attraction = attraction + term
        total = total + cfg.loss_attra_weight * attraction
    if cfg.use_reconstruction:
        recon = 0.0
        for key, (pred, target, mask) in reconstruction_targets(out, batch).items():
            term = masked_recon_loss(pred, target, mask)
            terms[f"rec_{key}"] = term
            recon = recon + term
        total = total + cfg.loss_recon_weight * recon
    terms["total"] = total
    return terms
