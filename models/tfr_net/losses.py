"""TFR-Net's training objective (Yuan et al. 2021, §3.4; the reference's ``RECLoss`` and ``TFR_NET`` trainer).

    L = L1(pred, y) + [epoch >= gen_loss_from_epoch] * (w_t L_rec,t + w_a L_rec,a + w_v L_rec,v)

* L_rec,m: SmoothL1 (beta 1) summed over the elements of the positions that are valid but were dropped,
  divided by the number of those elements + 1e-4 (the reference's ``combine`` loss with no CMD weight
  configured: its Storage returns False for the missing ``weight_sim_loss``, so the CMD term is off).
  Predictions are the generator's outputs from the incomplete view; targets are the complete view: BERT's
  states of the complete text (NOT detached, so with fine-tuning the text loss also trains BERT through its
  target, as in the reference) and the raw audio / vision features.
* The reconstruction term joins from the second epoch (the reference's ``if epochs > 1``).
* Validation and test report L1 alone as "Loss" (model selection and the LR schedule read it).
* Every term is computed in float32 against float32 labels and targets, also when the model ran under
  bf16 autocast (``amp="bf16"``), as the other models' objectives are: a label keeps its value (in bf16 2.6
  would become 2.59375).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from data.load_data import dropped_positions

#: Added to the element count of the reconstruction mask (the reference's eps).
REC_EPS = 1e-4


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """pred, target (B, L, D); mask (B, L), 1 at valid-but-dropped positions -> float32 scalar."""
    pred, target = pred.float(), target.float()
    mask = mask.float().unsqueeze(-1).expand_as(pred)  # (B, L, D)
    return F.smooth_l1_loss(pred * mask, target * mask, reduction="sum") / (mask.sum() + REC_EPS)


def reconstruction_terms(out: dict, batch: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(prediction, target, mask) per modality, masks = valid - kept: 1 where a valid position was dropped."""
    return {
        "text": (out["gen_text"], out["target_text"], dropped_positions(batch, "text")),
        "audio": (out["gen_audio"], batch["audio"], dropped_positions(batch, "audio")),
        "vision": (out["gen_vision"], batch["vision"], dropped_positions(batch, "vision")),
    }


def tfr_loss(out: dict, batch: dict, weights: tuple[float, float, float], with_generation: bool) -> dict:
    """All terms of one batch: "task_m" (L1 of ``pred_m`` to ``batch["labels"]["M"]``), "rec_text" /
    "rec_audio" / "rec_vision", "gen" (their weighted sum) and "total", the back-propagated objective."""
    prediction = out["pred_m"].view(-1)  # (B,)
    with torch.autocast(prediction.device.type, enabled=False):
        terms = {"task_m": F.l1_loss(prediction.float(), batch["labels"]["M"].float().view(-1))}
        gen = 0.0
        for weight, (name, (pred, target, mask)) in zip(weights, reconstruction_terms(out, batch).items()):
            term = reconstruction_loss(pred, target, mask)
            terms[f"rec_{name}"] = term
            gen = gen + weight * term
    terms["gen"] = gen
    terms["total"] = terms["task_m"] + gen if with_generation else terms["task_m"]
    return terms
