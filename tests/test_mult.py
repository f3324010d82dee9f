"""MulT as the authors' code builds and trains it: config values, parameter counts, checkpoint layout and
outputs against numbers recorded from their code, the masks, and learning on the tiny preset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from config import get_config
from models.mult import build_mult
from models.reference_checkpoint import load_reference_state_dict, to_reference_state_dict
from tests.reference_fixtures import TINY_BERT, reference_batch, reference_weights
from trains.registry import TaskObjective, model_spec

FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: (audio width, vision width) of the official feature files.
FEATURE_DIMS = {"mosi": (5, 20), "mosei": (74, 35), "sims": (33, 709)}

#: The authors' config_regression.py __MULT values, written down field by field (their names on the left).
AUTHORS_MULT = {
    "mosi": dict(attn_dropout_a=0.1, attn_dropout_v=0.2, relu_dropout=0.2, embed_dropout=0.1, res_dropout=0.2,
                 dst_feature_dim_nheads=(40, 10), batch_size=4, learning_rate=1e-3, nlevels=4,
                 conv1d_kernel_size_l=1, conv1d_kernel_size_a=5, conv1d_kernel_size_v=1, text_dropout=0.2,
                 attn_dropout=0.1, output_dropout=0.1, grad_clip=0.8, patience=20, weight_decay=0.0),
    "mosei": dict(attn_dropout_a=0.0, attn_dropout_v=0.0, relu_dropout=0.0, embed_dropout=0.0, res_dropout=0.0,
                  dst_feature_dim_nheads=(30, 6), batch_size=32, learning_rate=5e-4, nlevels=4,
                  conv1d_kernel_size_l=5, conv1d_kernel_size_a=1, conv1d_kernel_size_v=3, text_dropout=0.3,
                  attn_dropout=0.4, output_dropout=0.5, grad_clip=0.6, patience=20, weight_decay=0.001),
    "sims": dict(attn_dropout_a=0.1, attn_dropout_v=0.0, relu_dropout=0.0, embed_dropout=0.1, res_dropout=0.2,
                 dst_feature_dim_nheads=(50, 10), batch_size=16, learning_rate=2e-3, nlevels=2,
                 conv1d_kernel_size_l=5, conv1d_kernel_size_a=1, conv1d_kernel_size_v=1, text_dropout=0.3,
                 attn_dropout=0.2, output_dropout=0.1, grad_clip=0.6, patience=10, weight_decay=0.001),
}
#: Their commonParas: trained on the incomplete views, BERT frozen, triangular masks, 8-batch groups.
AUTHORS_COMMON = dict(early_stop=8, use_bert_finetune=False, attn_mask=True, update_epochs=8)
#: Parameter counts of the authors' model (AMIO, built from their code with bert-base shapes): without BERT.
AUTHORS_NON_BERT = {"mosi": 1_556_761, "mosei": 982_951, "sims": 1_870_701}
#: bert-base-uncased (MOSI, MOSEI) and bert-base-chinese (SIMS).
BERT_BASE = {"mosi": 109_482_240, "mosei": 109_482_240, "sims": 102_267_648}


@pytest.mark.parametrize("dataset", ["mosi", "mosei", "sims"])
def test_config_values_are_the_authors(dataset):
    cfg, ref = get_config(dataset, "mult"), AUTHORS_MULT[dataset]
    assert (cfg.d_model, cfg.heads) == ref["dst_feature_dim_nheads"] and cfg.layers == ref["nlevels"]
    assert (cfg.conv_kernel_text, cfg.conv_kernel_audio, cfg.conv_kernel_vision) == (
        ref["conv1d_kernel_size_l"], ref["conv1d_kernel_size_a"], ref["conv1d_kernel_size_v"])
    assert (cfg.attn_dropout, cfg.attn_dropout_audio, cfg.attn_dropout_vision) == (
        ref["attn_dropout"], ref["attn_dropout_a"], ref["attn_dropout_v"])
    for ours, theirs in (("relu_dropout", "relu_dropout"), ("embed_dropout", "embed_dropout"),
                         ("res_dropout", "res_dropout"), ("text_dropout", "text_dropout"),
                         ("output_dropout", "output_dropout"), ("batch_size", "batch_size"),
                         ("learning_rate", "learning_rate"), ("grad_clip", "grad_clip"),
                         ("plateau_patience", "patience")):
        assert getattr(cfg, ours) == ref[theirs], ours
    # listed in their config, never passed to their Adam: the preset runs what their trainer runs
    assert cfg.weight_decay == 0.0
    assert (cfg.early_stop, cfg.use_finetune, cfg.attn_mask, cfg.batches_per_step) == tuple(AUTHORS_COMMON.values())
    assert cfg.step_schedule == "mmsa" and cfg.eval_loss_decimals == 4 and cfg.key_eval == "Loss"
    assert not cfg.position_embedding
    assert cfg.data_file == get_config(dataset).data_file and cfg.bert == get_config(dataset).bert


@pytest.mark.parametrize("dataset", ["mosi", "mosei", "sims"])
def test_parameter_counts_equal_the_authors(dataset):
    # a 1-layer, 768-wide BERT with a small vocabulary: the non-BERT part is the same as with bert-base
    bert = BertModel(BertConfig(num_hidden_layers=1, vocab_size=8, intermediate_size=8))
    cfg = get_config(dataset, "mult")
    counts = model_spec(cfg).describe(build_mult(cfg, *FEATURE_DIMS[dataset], text_encoder=bert))
    assert counts["trainable_excluding_bert"] == AUTHORS_NON_BERT[dataset]
    assert counts["trainable"] == AUTHORS_NON_BERT[dataset]  # BERT frozen
    assert counts["total"] - counts["bert"] + BERT_BASE[dataset] == AUTHORS_NON_BERT[dataset] + BERT_BASE[dataset]


def read_key_table(path: Path) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape, _ = line.split("\t")
            shapes[key] = tuple(int(x) for x in shape.strip("()").split(",") if x.strip())
    return shapes


def test_a_state_dict_with_the_authors_keys_loads():
    ref = read_key_table(FIXTURES / "mult_mosi_state_dict_keys.tsv")
    bert = BertModel(BertConfig(num_hidden_layers=1, intermediate_size=256))  # the key list's BERT
    model = build_mult(get_config("mosi", "mult"), *FEATURE_DIMS["mosi"], text_encoder=bert)
    state = reference_weights(ref)
    report = load_reference_state_dict(model, state, "mult")
    assert report.loaded_keys == len(model.state_dict())
    assert sorted(report.ignored_keys) == sorted(k for k in ref if k.endswith(".version"))
    ours = to_reference_state_dict(model, "mult")
    assert set(ours) == {k for k in ref if not k.endswith(".version")}
    assert all(torch.equal(ours[k], state[k]) for k in ours)


@pytest.mark.parametrize("dataset", ["mosi", "mosei"])
def test_outputs_and_loss_equal_the_authors_model(dataset):
    """Numbers recorded by running the authors' MULT (eval mode, CPU) on the same weights and batch."""
    recorded = json.loads((FIXTURES / "mult_reference_outputs.json").read_text())["cases"][dataset]
    audio_dim, vision_dim = FEATURE_DIMS[dataset]
    bert = BertModel(BertConfig(**TINY_BERT))
    model = build_mult(get_config(dataset, "mult"), audio_dim, vision_dim, text_encoder=bert).eval()
    shapes = {k: tuple(v.shape) for k, v in to_reference_state_dict(model, "mult").items()}
    versions = {f"Model.{name}.version": (1,) for name, _ in model.named_children() if name.startswith("trans_")}
    load_reference_state_dict(model, reference_weights(shapes | versions), "mult")
    assert len(shapes | versions) == recorded["keys"]
    batch = reference_batch(audio_dim, vision_dim)
    with torch.no_grad():
        out = model(*(batch[k] for k in model.INPUTS))
        loss = TaskObjective(get_config(dataset, "mult"))(out, batch)["total"]
    np.testing.assert_allclose(out["pred_m"].view(-1).numpy(), recorded["pred"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["fused"].sum(dim=1).numpy(), recorded["fused"], rtol=1e-5, atol=1e-5)
    assert loss.item() == pytest.approx(recorded["loss"], rel=1e-5)


def test_short_run_fits_the_training_labels(tiny_root):
    """The tiny preset with the authors' trainer settings (MMSA stepping, clipping, frozen BERT) learns."""
    from data.load_data import build_loaders, load_mmsa
    from trains.experiment import build_datasets, model_for
    from trains.trainer import Trainer
    from utils.seed import setup_seed

    cfg = get_config("tiny", "mult")
    path = tiny_root / cfg.data_file
    datasets = build_datasets(cfg, load_mmsa(path, label_range=cfg.label_range), path, (0.0, 0.0, 0.0))
    setup_seed(0)
    model = model_for(cfg, datasets)
    trainer = Trainer(cfg, model, progress=False)
    bert_before = [p.detach().clone() for p in model.text_model.parameters()]
    loaders = build_loaders(datasets, cfg.batch_size, seed=0)
    labels = np.array([datasets["train"][i]["labels"]["M"].item() for i in range(len(datasets["train"]))])
    constant_mae = np.abs(labels - labels.mean()).mean()
    history = [trainer.train_epoch(loaders["train"], epoch) for epoch in range(1, 26)]
    assert history[-1]["Loss"] < history[0]["Loss"] - 0.4
    assert history[-1]["MAE"] < 0.7 * constant_mae and history[-1]["Corr"] > 0.6
    assert all(torch.equal(a, b) for a, b in zip(bert_before, model.text_model.parameters()))  # frozen


def test_masks_and_padding_as_the_authors():
    """The triangular mask hides keys beyond the band; padding is attended (no padding mask)."""
    torch.manual_seed(0)
    cfg = get_config("tiny", "mult", embed_dropout=0.0, attn_dropout=0.0, attn_dropout_audio=0.0,
                     attn_dropout_vision=0.0, relu_dropout=0.0, res_dropout=0.0, text_dropout=0.0, output_dropout=0.0)
    model = build_mult(cfg, 5, 6, text_encoder=BertModel(BertConfig(**TINY_BERT))).eval()
    batch = reference_batch(5, 6)
    text, audio, vision = (batch[k] for k in model.INPUTS)
    out = model(text, audio, vision)
    assert out["pred_m"].shape == (3, 1) and out["fused"].shape == (3, 6 * cfg.d_model)
    # text (12 steps) queries audio (20 - 5 + 1 = 16 steps): query 0 sees keys 0..4 only (j < 0 + 1 + 4)
    proj_l = model.proj_l(torch.randn(1, 32, 12)).transpose(1, 2)
    proj_a = torch.randn(1, 16, cfg.d_model)
    changed = proj_a.clone()
    changed[:, 5:] = torch.randn(1, 11, cfg.d_model)  # (a constant shift would vanish in the LayerNorm)
    first = model.trans_l_with_a(proj_l, proj_a)
    second = model.trans_l_with_a(proj_l, changed)
    assert torch.allclose(first[:, 0], second[:, 0], atol=1e-6) and not torch.allclose(first[:, -1], second[:, -1])
    # a padded audio frame (clip 1 has 9 of 20 frames) changes the prediction: padding is read
    padded = audio.clone()
    padded[1, 15] = 3.0
    moved = model(text, padded, vision)["pred_m"]
    assert not torch.allclose(moved[1], out["pred_m"][1]) and torch.allclose(moved[0], out["pred_m"][0])
