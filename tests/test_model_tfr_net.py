"""TFR-Net: shapes and masks, the objective, parameter counts and equivalence with the authors' model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel

from config import get_config
from config.base import FIELD_ALIASES
from config.tfr_net import TFR_NET_MOSEI as MOSEI
from config.tfr_net import TFR_NET_MOSI as MOSI
from config.tfr_net import TFR_NET_SIMS as SIMS
from models.crossmodal_transformer import future_mask, sinusoidal_positions
from models.reference_checkpoint import (
    from_reference_key,
    load_reference_state_dict,
    to_reference_state_dict,
)
from models.tfr_net import TFRNet, tfr_loss
from models.tfr_net.fusion import mask_lengths
from tests import tfr_net_inputs as ti
from utils.errors import CheckpointError, ConfigError

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE = json.loads((FIXTURES / "tfr_net_reference_outputs.json").read_text())
MODEL_INPUTS = ("text", "text_m", "audio", "audio_m", "audio_lengths", "vision", "vision_m", "vision_lengths")
#: Agreement with the authors' float32 numbers (different kernels, same maths).
ATOL = 1e-5


def _inputs(batch: dict) -> dict:
    return {key: batch[key] for key in MODEL_INPUTS}


def _reference_model(cfg, dropout: bool) -> TFRNet:
    model = TFRNet(cfg, ti.AUDIO_DIM, ti.VISION_DIM, ti.tiny_bert(dropout))
    values = ti.deterministic_state_dict((k, v.shape) for k, v in to_reference_state_dict(model, "tfr_net").items())
    load_reference_state_dict(model, values, "tfr_net")
    return model


def _close(actual, expected):
    assert torch.allclose(torch.as_tensor(actual, dtype=torch.float), torch.tensor(expected), atol=ATOL, rtol=1e-5), \
        (actual, expected)


# --- shapes and masks --------------------------------------------------------------------------------
def test_forward_shapes():
    torch.manual_seed(0)
    model = TFRNet(ti.CONFIG, ti.AUDIO_DIM, ti.VISION_DIM, ti.tiny_bert()).eval()
    out = model(**_inputs(ti.reference_batch()))
    batch, hidden = len(ti.TEXT_LENGTHS), ti.TINY_BERT["hidden_size"]
    assert out["pred_m"].shape == (batch, 1)
    assert out["gen_text"].shape == out["target_text"].shape == (batch, ti.SEQ_LENS[0], hidden)
    assert out["gen_audio"].shape == (batch, ti.SEQ_LENS[1], ti.AUDIO_DIM)
    assert out["gen_vision"].shape == (batch, ti.SEQ_LENS[2], ti.VISION_DIM)


def test_prediction_is_per_clip_but_generation_reads_earlier_clips():
    """The final transformers attend over the batch under a causal mask (the reference's quirk): a clip's
    reconstruction depends on the clips before it; its prediction depends on no other clip."""
    torch.manual_seed(0)
    model = TFRNet(ti.CONFIG, ti.AUDIO_DIM, ti.VISION_DIM, ti.tiny_bert()).eval()
    batch = _inputs(ti.reference_batch())
    with torch.no_grad():
        full = model(**batch)
        changed = dict(batch, audio_m=batch["audio_m"].clone())
        changed["audio_m"][0] += 1.0
        other = model(**changed)
        alone = model(**{k: v[:1] for k, v in batch.items()})
    assert torch.allclose(full["pred_m"][1:], other["pred_m"][1:], atol=1e-6)
    assert not torch.allclose(full["gen_audio"][1], other["gen_audio"][1], atol=1e-4)
    assert torch.allclose(alone["gen_vision"][0], full["gen_vision"][0], atol=1e-5)  # clip 0 reads only itself


def test_future_mask_offsets_by_the_length_difference():
    assert torch.equal(future_mask(3, 3, torch.device("cpu")), torch.ones(3, 3).tril().bool())
    mask = future_mask(2, 5, torch.device("cpu"))  # offset 3: query 0 reads keys 0..3
    assert mask[0].tolist() == [True, True, True, True, False] and mask[1].all()
    assert future_mask(6, 2, torch.device("cpu")).all()  # queries far longer than keys see every key


def test_positions_are_zero_where_the_first_channel_is_zero():
    first = torch.tensor([[0.5, 0.0, 2.0]])
    pos = sinusoidal_positions(first, 7)  # odd width: a zero last column
    assert pos.shape == (1, 3, 7)
    assert torch.equal(pos[0, 1], torch.zeros(7)) and pos[0, 0].abs().sum() > 0
    assert torch.equal(pos[..., -1], torch.zeros(1, 3))
    assert torch.allclose(pos[0, 0, :3], torch.sin(torch.ones(3) * torch.exp(-torch.arange(3.0) * (9.2103404 / 2))))


def test_mask_lengths_is_the_first_zero():
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 1, 0]])
    assert mask_lengths(mask).tolist() == [2, 4, 1]


def test_objective_terms():
    torch.manual_seed(0)
    model = TFRNet(ti.CONFIG, ti.AUDIO_DIM, ti.VISION_DIM, ti.tiny_bert()).eval()
    batch = ti.reference_batch()
    with torch.no_grad():
        out = model(**_inputs(batch))
    first_epoch = tfr_loss(out, batch, MOSI.weight_gen_loss, with_generation=False)
    later = tfr_loss(out, batch, MOSI.weight_gen_loss, with_generation=True)
    assert torch.equal(first_epoch["total"], first_epoch["task_m"])
    weighted = sum(w * later[f"rec_{m}"] for w, m in zip(MOSI.weight_gen_loss, ("text", "audio", "vision")))
    assert torch.allclose(later["total"], later["task_m"] + weighted)
    nothing_dropped = dict(batch, text_missing_mask=batch["text"][:, 1], audio_missing_mask=batch["audio_mask"])
    terms = tfr_loss(out, nothing_dropped, MOSI.weight_gen_loss, with_generation=True)
    assert terms["rec_text"] == 0 and terms["rec_audio"] == 0 and terms["rec_vision"] > 0


# --- the authors' model ------------------------------------------------------------------------------
def test_outputs_and_losses_equal_the_authors_model_in_eval():
    model = _reference_model(ti.CONFIG, dropout=True).eval()
    batch = ti.reference_batch()
    with torch.no_grad():
        out = model(**_inputs(batch))
    terms = tfr_loss(out, batch, ti.CONFIG.weight_gen_loss, with_generation=True)
    expected = REFERENCE["eval"]
    _close(out["pred_m"].view(-1), expected["pred"])
    _close(terms["task_m"], expected["task"])
    _close(terms["gen"], expected["gen"])
    _close([terms["rec_text"], terms["rec_audio"], terms["rec_vision"]], expected["rec"])


def test_training_forward_and_gradients_equal_the_authors_model():
    model = _reference_model(ti.DROPOUT_FREE, dropout=False).train()
    batch = ti.reference_batch()
    out = model(**_inputs(batch))
    terms = tfr_loss(out, batch, ti.CONFIG.weight_gen_loss, with_generation=True)
    terms["total"].backward()
    expected = REFERENCE["train_dropout_free"]
    _close(out["pred_m"].detach().view(-1), expected["pred"])
    _close(terms["task_m"].detach(), expected["task"])
    _close(terms["gen"].detach(), expected["gen"])
    params = dict(model.named_parameters())
    for ref_key, norm in expected["grad_norms"].items():
        _close(params[from_reference_key(ref_key, "tfr_net")].grad.norm(), norm)
    _close(model.fusion_subnet.classifier.linear_trans_norm.running_mean.sum(), expected["running_mean_sum"])


def _tsv_keys() -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in (FIXTURES / "tfr_net_mosi_state_dict_keys.tsv").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape = line.split("\t")[:2]
        rows.append((key, tuple(int(x) for x in shape.strip("()").split(",") if x.strip())))
    return rows


#: The key list's BERT is 768 wide with one layer and a 256-wide feed-forward (its header says so).
TSV_BERT_INTERMEDIATE = 256


def _mosi_model_with_one_layer_bert() -> TFRNet:
    bert = BertModel(BertConfig(num_hidden_layers=1, intermediate_size=TSV_BERT_INTERMEDIATE))
    return TFRNet(MOSI, MOSI.feature_dims[1], MOSI.feature_dims[2], bert)


def test_the_authors_mosi_key_layout_loads_exactly():
    rows = _tsv_keys()
    model = _mosi_model_with_one_layer_bert()
    zeros = {key: torch.zeros(shape) for key, shape in rows}  # the layout is under test, not the values
    report = load_reference_state_dict(model, zeros, "tfr_net")
    ignored = {k for k in report.ignored_keys}
    assert all(k.endswith((".version", "._float_tensor")) for k in ignored) and len(ignored) == 12 + 9  # 12 transformers, 9 with positions
    assert report.loaded_keys + len(ignored) == len(rows)
    assert set(to_reference_state_dict(model, "tfr_net")) == {k for k, _ in rows} - ignored
    with pytest.raises(CheckpointError, match="1 missing key.*generator_v.Model.linear.bias.*KEY_TABLES"):
        load_reference_state_dict(
            model, {k: v for k, v in zeros.items() if k != "Model.generator_v.Model.linear.bias"}, "tfr_net")


# --- configuration -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dataset,audio,vision", [("mosi", 5, 20), ("mosei", 74, 35), ("sims", 33, 709)])
def test_parameter_counts_equal_the_authors(dataset, audio, vision):
    cfg = get_config(dataset, "tfr_net")
    vocab = 21128 if dataset == "sims" else 30522
    with torch.device("meta"):
        model = TFRNet(cfg, audio, vision, BertModel(BertConfig(vocab_size=vocab)))
    total = sum(p.numel() for p in model.parameters())
    bert = sum(p.numel() for p in model.text_model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert dict(total=total, bert=bert, trainable=trainable) == REFERENCE["parameter_counts"][dataset]


#: The authors' config_regression.py, TFR-Net block, written down: MOSI's per-dataset values (MOSEI's are
#: identical) and what SIMS changes, plus the dataset shapes.
AUTHORS_MOSI = dict(
    text_dropout=0.2, conv1d_kernel_size_l=1, conv1d_kernel_size_a=5, conv1d_kernel_size_v=3, attn_dropout=0.2,
    attn_dropout_a=0.1, attn_dropout_v=0.0, relu_dropout=0.2, embed_dropout=0.2, res_dropout=0.2,
    dst_feature_dim_nheads=(30, 6), nlevels=3, fusion_t_hid=36, fusion_a_hid=20, fusion_v_hid=48,
    fusion_gru_layers=3, fusion_drop=0.2, cls_hidden_dim=128, cls_dropout=0.0, grad_clip=0.8, plateau_patience=5,
    weight_gen_loss=(5, 2, 20), attn_mask=True, seq_lens=(50, 375, 500), feature_dims=(768, 5, 20),
    # the TFR-Net common block and trainer: fine-tuned BERT, 4-batch groups, MMSA steps, rounded L1 "Loss"
    batch_size=16, learning_rate_bert=1e-5, learning_rate_other=2e-3, weight_decay_bert=1e-4,
    weight_decay_other=1e-3, update_epochs=4, early_stop=6, use_finetune=True, key_eval="Loss",
    step_schedule="mmsa", eval_loss_decimals=4,
)
AUTHORS_SIMS_CHANGES = dict(relu_dropout=0.0, embed_dropout=0.1, nlevels=2, cls_dropout=0.1, plateau_patience=10,
                            weight_gen_loss=(1, 0.01, 0.0001), seq_lens=(39, 400, 55), feature_dims=(768, 33, 709))


def test_config_values_are_the_authors():
    for cfg, expected in ((MOSI, AUTHORS_MOSI),
                          (MOSEI, dict(AUTHORS_MOSI, seq_lens=(50, 500, 375), feature_dims=(768, 74, 35))),
                          (SIMS, dict(AUTHORS_MOSI, **AUTHORS_SIMS_CHANGES))):
        actual = {key: getattr(cfg, FIELD_ALIASES.get(key, key)) for key in expected}  # the authors' names
        assert actual == expected
        assert cfg.gen_loss_from_epoch == 2


def test_validation_refuses_shapes_the_network_cannot_take():
    with pytest.raises(ConfigError, match="multiple of the head count"):
        get_config("tiny", "tfr_net", dst_feature_dim_nheads="10,3")
    with pytest.raises(ConfigError, match="odd positive kernel"):
        get_config("tiny", "tfr_net", conv1d_kernel_size_a=4)
    with pytest.raises(ConfigError, match="unknown config key.*tfr_net: fusion_layers"):
        get_config("tiny", "tfr_net", fusion_layers=2)
