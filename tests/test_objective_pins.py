"""The baselines' objectives and TFR-Net's optimiser, pinned with the reference's literal values (issue #16).

Written to kill the mutants that the rest of the suite let through in ``trains/objective.py``,
``trains/tfr_net.py`` and ``models/tfr_net/losses.py``: which prediction is scored, which loss term is
reported and back-propagated, from which epoch the reconstruction joins, the reconstruction's normaliser,
and TFR-Net's three Adam groups (the authors' ``trains/missingTask/TFR_NET.py``).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from config import get_config
from models.execution import ExecutionPolicy
from models.tfr_net import TFRNet
from models.tfr_net.losses import reconstruction_loss, tfr_loss
from tests import tfr_net_inputs as ti
from trains.objective import Objective, TaskObjective
from trains.tfr_net import TFRNetObjective, tfr_net_optimizer

#: The reference's BERT parameters without weight decay: any name containing one of these.
REFERENCE_BERT_NO_DECAY = ("bias", "LayerNorm.bias", "LayerNorm.weight")


def labelled(pred_m, labels, pred=None):
    outputs = {"pred_m": torch.tensor(pred_m).view(-1, 1)}
    if pred is not None:
        outputs["pred"] = torch.tensor(pred).view(-1, 1)
    return outputs, {"labels": {"M": torch.tensor(labels).view(-1, 1), "T": torch.zeros(len(labels), 1)}}


# --------------------------------------------------------------------------------------------- MulT: L1 on pred_m
def test_task_objective_is_the_mean_l1_of_pred_m_and_the_multimodal_label():
    outputs, batch = labelled([1.0, -2.0, 0.5], [0.0, 1.0, 0.5], pred=[9.0, 9.0, 9.0])
    objective = TaskObjective(get_config("mosi", "mult"))
    terms = objective(outputs, batch)
    assert set(terms) == {"task_m", "total"}
    assert terms["total"].item() == pytest.approx((1.0 + 3.0 + 0.0) / 3)
    assert torch.equal(terms["task_m"], terms["total"])
    assert objective.predictions(outputs).tolist() == [1.0, -2.0, 0.5]
    assert objective.labels(batch).tolist() == [0.0, 1.0, 0.5]
    assert objective.complete_predictions(outputs) is None
    assert objective.for_epoch(1) is objective and objective.for_epoch(5) is objective
    assert objective.loss_term == "total"
    assert dict(objective.reported_terms) == {"Loss(pred_m)": "task_m"}


def test_the_base_objective_leaves_loss_and_predictions_to_the_model():
    objective = Objective()
    with pytest.raises(NotImplementedError):
        objective({}, {})
    with pytest.raises(NotImplementedError):
        objective.predictions({})
    assert objective.loss_term == "total" and dict(objective.reported_terms) == {}


# --------------------------------------------------------------------------------------------- TFR-Net's objective
@pytest.fixture(scope="module")
def tfr_outputs():
    torch.manual_seed(0)
    model = TFRNet(ti.CONFIG, ti.AUDIO_DIM, ti.VISION_DIM, ti.tiny_bert()).eval()
    batch = ti.reference_batch()
    with torch.no_grad():
        out = model(**{k: batch[k] for k in model.INPUTS})
    return out, batch


def test_tfr_objective_adds_the_reconstruction_from_the_second_epoch(tfr_outputs):
    out, batch = tfr_outputs
    cfg = dataclasses.replace(ti.CONFIG, weight_gen_loss=(5.0, 2.0, 20.0))  # the authors' MOSI weights
    objective = TFRNetObjective(cfg)
    assert objective.loss_term == "task_m" and dict(objective.reported_terms) == {"Loss(pred_m)": "task_m"}
    first, second, third = (objective.for_epoch(e)(out, batch) for e in (1, 2, 3))
    expected_task = (out["pred_m"].view(-1) - batch["labels"]["M"].view(-1)).abs().mean()
    for terms in (first, second, third):
        assert torch.allclose(terms["task_m"], expected_task)
    assert torch.equal(first["total"], first["task_m"])
    gen = 5.0 * second["rec_text"] + 2.0 * second["rec_audio"] + 20.0 * second["rec_vision"]
    assert torch.allclose(second["gen"], gen) and torch.allclose(second["total"], second["task_m"] + gen)
    assert torch.equal(third["total"], second["total"])
    assert torch.equal(objective(out, batch)["total"], second["total"])  # a fresh objective includes it
    assert torch.equal(objective.predictions(out), out["pred_m"].view(-1))
    later = TFRNetObjective(dataclasses.replace(cfg, gen_loss_from_epoch=3))
    assert torch.equal(later.for_epoch(2)(out, batch)["total"], first["total"])
    assert torch.equal(later.for_epoch(3)(out, batch)["total"], second["total"])


def test_reconstruction_loss_is_smooth_l1_summed_over_dropped_elements_over_their_count_plus_1e4():
    pred = torch.tensor([[[0.0, 3.0], [0.5, 7.0]], [[-2.0, 0.2], [4.0, 4.0]]])  # (B=2, L=2, D=2)
    target = torch.zeros_like(pred)
    mask = torch.tensor([[1, 0], [1, 1]])
    # smooth L1 with beta 1 of the masked elements: 0, 2.5 | 1.5, 0.02 | 3.5, 3.5 over 6 elements
    expected = (0.0 + 2.5 + 1.5 + 0.02 + 3.5 + 3.5) / (6 + 1e-4)
    assert reconstruction_loss(pred, target, mask).item() == pytest.approx(expected, rel=1e-6)
    assert reconstruction_loss(pred, target, torch.zeros(2, 2)).item() == 0.0


def test_each_reconstruction_term_compares_its_own_modality(tfr_outputs):
    out, batch = tfr_outputs
    terms = tfr_loss(out, batch, (1.0, 1.0, 1.0), with_generation=True)
    dropped = {m: batch[f"{m}_mask"] - batch[f"{m}_missing_mask"] for m in ("audio", "vision")}
    dropped["text"] = batch["text"][:, 1] - batch["text_missing_mask"]
    for name, target in (("text", out["target_text"]), ("audio", batch["audio"]), ("vision", batch["vision"])):
        expected = reconstruction_loss(out[f"gen_{name}"], target, dropped[name])
        assert torch.allclose(terms[f"rec_{name}"], expected), name
    assert len({terms["rec_text"].item(), terms["rec_audio"].item(), terms["rec_vision"].item()}) == 3


def test_tfr_terms_are_float32_against_float32_labels_under_bf16(tfr_outputs):
    """As every objective: with bf16 outputs (amp="bf16") a label of 2.6 stays 2.6 (bf16 would make it 2.59375)."""
    out, batch = tfr_outputs
    half = {k: v.to(torch.bfloat16) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in out.items()}
    batch = dict(batch, labels={"M": torch.full_like(batch["labels"]["M"], 2.6)})
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = tfr_loss(half, batch, (1.0, 1.0, 1.0), with_generation=True)
    assert all(value.dtype == torch.float32 for value in terms.values())
    label = torch.full((half["pred_m"].numel(),), 2.6)
    assert torch.equal(terms["task_m"], F.l1_loss(half["pred_m"].float().view(-1), label))
    mask = batch["audio_mask"] - batch["audio_missing_mask"]
    assert torch.equal(terms["rec_audio"],
                       reconstruction_loss(half["gen_audio"].float(), batch["audio"].float(), mask.float()))


# --------------------------------------------------------------------------------------------- TFR-Net's optimiser
def distinct_rates(use_finetune: bool):
    return dataclasses.replace(ti.CONFIG, learning_rate_bert=1e-2, learning_rate_other=4e-2, weight_decay_bert=0.1,
                               weight_decay_other=0.4, use_finetune=use_finetune)


@pytest.mark.parametrize("fused", [True, False])
def test_tfr_net_optimizer_has_the_references_three_groups(fused):
    cfg = distinct_rates(use_finetune=True)
    model = TFRNet(cfg, ti.AUDIO_DIM, ti.VISION_DIM, ti.tiny_bert())
    optimizer = tfr_net_optimizer(cfg, model, dataclasses.replace(ExecutionPolicy.from_config(cfg), fused_adam=fused))
    assert type(optimizer) is torch.optim.Adam and optimizer.defaults["fused"] is fused
    assert [g["name"] for g in optimizer.param_groups] == ["bert_decay", "bert_no_decay", "other"]
    setting = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            assert id(p) not in setting, "a parameter is in two groups"
            setting[id(p)] = (group["lr"], group["weight_decay"])
    for name, p in model.named_parameters():
        if name.startswith("text_model."):
            no_decay = any(term in name for term in REFERENCE_BERT_NO_DECAY)
            expected = (1e-2, 0.0) if no_decay else (1e-2, 0.1)
        else:
            expected = (4e-2, 0.4)
        assert setting.get(id(p)) == expected, name
        assert p.requires_grad, name
    assert setting[id(model.text_model.embeddings.LayerNorm.weight)] == (1e-2, 0.0)
    assert setting[id(model.text_model.embeddings.word_embeddings.weight)] == (1e-2, 0.1)


def test_tfr_net_optimizer_without_finetuning_freezes_bert_and_trains_the_rest_in_one_group():
    cfg = distinct_rates(use_finetune=False)
    model = TFRNet(cfg, ti.AUDIO_DIM, ti.VISION_DIM, ti.tiny_bert())
    optimizer = tfr_net_optimizer(cfg, model, ExecutionPolicy.from_config(cfg))
    (group,) = optimizer.param_groups
    assert (group["name"], group["lr"], group["weight_decay"]) == ("other", 4e-2, 0.4)
    bert_ids = {id(p) for p in model.text_model.parameters()}
    assert {id(p) for p in group["params"]} == {id(p) for p in model.parameters()} - bert_ids
    assert not any(p.requires_grad for p in model.text_model.parameters())
    assert all(p.requires_grad for n, p in model.named_parameters() if not n.startswith("text_model."))


# --------------------------------------------------------------------------------------------- EMT-DLFR's optimiser
@pytest.mark.parametrize("use_finetune", [True, False])
def test_emt_dlfr_optimizer_groups_in_the_references_order(use_finetune):
    from models import build_model
    from trains.optim import build_optimizer

    cfg = dataclasses.replace(get_config("tiny"), use_finetune=use_finetune, learning_rate_other=4e-2,
                              weight_decay_other=0.4)
    model = build_model(cfg, 5, 6)
    optimizer = build_optimizer(cfg, model, ExecutionPolicy.from_config(cfg))
    bert = ["bert_decay", "bert_no_decay"] if use_finetune else []
    assert [g["name"] for g in optimizer.param_groups] == bert + ["audio", "vision", "other"]
    assert (optimizer.param_groups[-1]["lr"], optimizer.param_groups[-1]["weight_decay"]) == (4e-2, 0.4)
    bert_ids = {id(p) for p in model.text_model.parameters()}
    in_groups = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert in_groups == ({id(p) for p in model.parameters()} - (set() if use_finetune else bert_ids))
    assert all(p.requires_grad is use_finetune for p in model.text_model.parameters())
