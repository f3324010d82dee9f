"""The DLFR objective: reconstruction masks, attraction symmetry, ablation switches, the total."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from config import get_config
from models.outputs import EMTDLFROutput, SimSiamPair, ViewOutputs
from trains.losses import DLFRObjective, attraction_loss, masked_recon_loss, reconstruction_targets

B, L, T_A, T_V, D_T, D_A, D_V = 3, 6, 5, 4, 7, 2, 3


def fake_batch_and_output(seed=0):
    g = torch.Generator().manual_seed(seed)
    text = torch.zeros(B, 3, L)
    text[:, 1, :] = torch.tensor([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], dtype=torch.float)
    text_keep = text[:, 1, :].clone()
    text_keep[0, 2] = 0  # dropped word of clip 0
    text_keep[1, 1] = 0
    text_keep[1, 3] = 0
    audio_mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 0, 0, 0]])
    audio_keep = audio_mask.clone()
    audio_keep[0, 1] = 0
    vision_mask = torch.ones(B, T_V, dtype=torch.long)
    vision_keep = vision_mask.clone()
    batch = {
        "text": text, "text_missing_mask": text_keep,
        "audio": torch.randn(B, T_A, D_A, generator=g), "audio_mask": audio_mask, "audio_missing_mask": audio_keep,
        "vision": torch.randn(B, T_V, D_V, generator=g), "vision_mask": vision_mask, "vision_missing_mask": vision_keep,
        "labels": {"M": torch.randn(B, 1, generator=g)},
    }
    pred, pred_m = torch.randn(B, 1, generator=g), torch.randn(B, 1, generator=g)
    text_target, text_recon = (torch.randn(B, L - 1, D_T, generator=g) for _ in range(2))
    reconstruction = {
        "text": text_recon,
        "audio": torch.randn(B, 4, D_A, generator=g),  # batch max length 4 < T_A
        "vision": torch.randn(B, T_V, D_V, generator=g),
    }
    siamese = {"complete": {}, "incomplete": {}}
    for key, dim in (("gmc", 6), ("text", D_T), ("audio", D_A), ("vision", D_V)):
        for view in siamese:
            z = torch.randn(B, dim, generator=g)
            siamese[view][key] = SimSiamPair(z=z, p=torch.randn(B, dim, generator=g, requires_grad=True))
    out = EMTDLFROutput(
        complete=ViewOutputs(pred, siamese["complete"]),
        incomplete=ViewOutputs(pred_m, siamese["incomplete"]),
        reconstruction=reconstruction,
        text_target=text_target,
    )
    return batch, out


def test_recon_mask_selects_dropped_valid_positions_only():
    batch, out = fake_batch_and_output()
    targets = reconstruction_targets(out, batch)
    text_mask = targets["text"][2]
    # positions 1.. of the text; clip 0 dropped index 2 -> mask index 1; clip 1 dropped 1 and 3 -> 0 and 2
    expected = torch.zeros(B, L - 1)
    expected[0, 1] = 1
    expected[1, 0] = 1
    expected[1, 2] = 1
    assert torch.equal(text_mask, expected)
    audio_pred, audio_target, audio_mask = targets["audio"]
    assert audio_target.shape == (B, 4, D_A)  # truncated to the batch max length
    assert audio_mask.tolist() == [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]


def test_masked_recon_loss_is_mean_smooth_l1_over_masked_elements():
    batch, out = fake_batch_and_output()
    pred, target, mask = reconstruction_targets(out, batch)["text"]
    loss = masked_recon_loss(pred, target, mask)
    sel = mask.bool()
    manual = F.smooth_l1_loss(pred[sel], target[sel], reduction="mean")
    assert torch.allclose(loss, manual, atol=1e-6)
    # values at kept positions do not matter
    pred2 = pred.clone()
    pred2[~sel] += 100.0
    assert torch.allclose(masked_recon_loss(pred2, target, mask), loss)


def test_recon_loss_is_zero_when_nothing_dropped():
    pred = torch.randn(2, 3, 4)
    assert masked_recon_loss(pred, torch.randn(2, 3, 4), torch.zeros(2, 3)).item() == 0.0


def test_recon_loss_divides_by_the_dropped_element_count_plus_1e6():
    """One dropped position of two features off by 0.5 and 3.0: SmoothL1 (beta 1) 0.125 + 2.5, over 2 + 1e-6."""
    pred = torch.tensor([[[0.5, 3.0], [9.0, 9.0]]])  # (B=1, T=2, C=2); the second position is kept
    loss = masked_recon_loss(pred, torch.zeros_like(pred), torch.tensor([[1, 0]]))
    assert loss.item() == pytest.approx(2.625 / (2 + 1e-6), rel=3e-7)  # minus 1e-6 is 9.5e-7 off


def test_attraction_loss_is_symmetric_negative_cosine():
    p_m, z, p, z_m = (torch.randn(4, 5) for _ in range(4))
    expected = -0.5 * (F.cosine_similarity(p_m, z).mean() + F.cosine_similarity(p, z_m).mean())
    assert torch.allclose(attraction_loss(p_m, z, p, z_m), expected)
    assert torch.allclose(attraction_loss(z, z, z_m, z_m), torch.tensor(-1.0))


def test_total_combines_terms_with_dataset_weights():
    batch, out = fake_batch_and_output()
    cfg = dataclasses.replace(get_config("sims"), loss_attra_weight=0.5, loss_recon_weight=0.25)
    terms = DLFRObjective(cfg)(out, batch)
    att = terms["task_c"] + sum(terms[f"att_{k}"] for k in ("gmc", "text", "audio", "vision"))
    rec = terms["rec_text"] + terms["rec_audio"] + terms["rec_vision"]
    assert torch.allclose(terms["total"], terms["task_m"] + 0.5 * att + 0.25 * rec)
    label = batch["labels"]["M"].view(-1)
    assert torch.allclose(terms["task_m"], (out.incomplete.prediction.view(-1) - label).abs().mean())


@pytest.mark.parametrize("attraction,reconstruction", [(False, True), (True, False), (False, False)])
def test_ablation_switches_drop_their_terms(attraction, reconstruction):
    batch, out = fake_batch_and_output()
    cfg = get_config("mosi", use_attraction=attraction, use_reconstruction=reconstruction)
    terms = DLFRObjective(cfg)(out, batch)
    assert ("att_gmc" in terms) == attraction and ("task_c" in terms) == attraction
    assert ("rec_text" in terms) == reconstruction
    if not attraction and not reconstruction:
        assert torch.equal(terms["total"], terms["task_m"])


def test_every_term_is_float32_under_bf16_autocast():
    """bf16 model outputs: each term equals the float32 loss of the widened outputs against the float32 labels
    and targets (in bf16 a label of 2.6 would be 2.594 and an audio target lose its low bits)."""
    batch, out = fake_batch_and_output()
    batch["labels"]["M"][0, 0] = 2.6
    out_bf16 = out.apply(lambda v: v.to(torch.bfloat16))
    widened = out_bf16.apply(lambda v: v.float())
    objective = DLFRObjective(get_config("mosi"))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = objective(out_bf16, batch)
    expected = objective(widened, batch)
    assert all(term.dtype == torch.float32 for term in terms.values())
    for name, term in terms.items():
        assert torch.equal(term, expected[name]), name
    label = batch["labels"]["M"].view(-1)
    assert torch.equal(terms["task_m"], (widened.incomplete.prediction.view(-1) - label).abs().mean())
    assert label[0] == torch.tensor(2.6) != label[0].to(torch.bfloat16).float()  # what a bf16 label would lose


def test_the_baselines_task_loss_is_float32_under_bf16_autocast():
    from trains.objective import TaskObjective

    batch, out = fake_batch_and_output()
    batch["labels"]["M"][0, 0] = 2.6
    pred = out.incomplete.prediction.to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = TaskObjective(get_config("mosi"))({"pred_m": pred}, batch)
    expected = (pred.float().view(-1) - batch["labels"]["M"].view(-1)).abs().mean()
    assert terms["total"].dtype == torch.float32 and torch.equal(terms["total"], expected)
