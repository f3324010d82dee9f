"""EMTDLFR: outputs, masks, views, batch size 1, encoders of other widths (docs/REFERENCE.md §4.1-4.2, §4.4)."""

import torch
from torch import nn

from models import build_model, describe, reference_path
from models.dlfr_heads import Predictor, Projector
from models.emt_dlfr import length_mask
from models.execution import LEAN
from models.outputs import ATTRACTION_TARGETS
from models.text_encoder import hf_attention, load_text_encoder
from tests.model_inputs import dropout_free_bert, make_inputs, tiny_config

TEXT_LENGTHS = [12, 5, 2, 8]
AUDIO_LENGTHS = [10, 3, 7, 1]
VISION_LENGTHS = [4, 6, 1, 2]
LEAN_ATTENTION = hf_attention(LEAN)


def _model(cfg=None, encoder=None):
    torch.manual_seed(0)
    return build_model(cfg or tiny_config(), 5, 6, encoder if encoder is not None else dropout_free_bert())


def _inputs(**kwargs):
    return make_inputs(TEXT_LENGTHS, AUDIO_LENGTHS, VISION_LENGTHS, **kwargs)


def test_outputs_keys_and_shapes():
    cfg = tiny_config()
    out = _model(cfg).train()(**_inputs(audio_len=13, vision_len=8))
    batch, hidden, d = 4, 32, cfg.d_model
    widths = {"gmc": 3 * d, "text": hidden, "audio": cfg.audio_out, "vision": cfg.video_out}
    expected = {"complete.prediction": (batch, 1), "incomplete.prediction": (batch, 1)}
    for r, w in widths.items():
        for view in ("complete", "incomplete"):
            for head in ("z", "p"):
                expected[f"{view}.siamese.{r}.{head}"] = (batch, w)
    expected.update({
        "text_target": (batch, 11, hidden),
        "reconstruction.text": (batch, 11, hidden),
        "reconstruction.audio": (batch, max(AUDIO_LENGTHS), 5),  # the batch's longest clip, not the padded 13
        "reconstruction.vision": (batch, max(VISION_LENGTHS), 6),
    })
    assert {k: tuple(v.shape) for k, v in out.tensors().items()} == expected
    for r in ATTRACTION_TARGETS:
        assert not out.complete.siamese[r].z.requires_grad and not out.incomplete.siamese[r].z.requires_grad
        assert out.complete.siamese[r].p.requires_grad and out.incomplete.siamese[r].p.requires_grad
    assert not out.text_target.requires_grad and out.reconstruction["text"].requires_grad


def test_text_for_recon_is_the_complete_views_bert_states():
    model = _model().eval()
    inputs = _inputs()
    text = inputs["text"]
    hidden = model.text_model(
        input_ids=text[:, 0].long(), attention_mask=text[:, 1].long(), token_type_ids=text[:, 2].long()
    ).last_hidden_state
    valid = text[:, 1, 1:].bool()  # BERT's valid tokens after [CLS]: the padding may differ (fast path)
    assert torch.allclose(model(**inputs).text_target[valid], hidden[:, 1:][valid], atol=1e-6)


def test_masks_given_to_the_fusion():
    model = _model()
    seen = {}
    forward = model.fusion.forward

    def record(gmc, locals_, masks, plan):
        seen.update(gmc=gmc, locals_=locals_, masks=masks)
        return forward(gmc, locals_, masks, plan)

    model.fusion.forward = record
    inputs = make_inputs(TEXT_LENGTHS, [9, 3, 7, 1], VISION_LENGTHS)
    model.train()(**inputs)
    words = torch.tensor(TEXT_LENGTHS) - 2  # [CLS] and [SEP] excluded
    both = 2 * len(TEXT_LENGTHS)  # fast path: the two views stacked
    assert seen["gmc"].shape == (both, 3, 16)
    assert torch.equal(seen["masks"][0], length_mask(words, 11).repeat(2, 1))
    assert torch.equal(seen["masks"][1], length_mask(torch.tensor([9, 3, 7, 1]), 9).repeat(2, 1))
    assert torch.equal(seen["masks"][2], length_mask(torch.tensor(VISION_LENGTHS), 6).repeat(2, 1))
    assert [h.shape[1] for h in seen["locals_"]] == [11, 9, 6]


def test_reconstruction_reads_only_the_incomplete_view():
    model = _model().eval()
    inputs = _inputs()
    out = model(**inputs).tensors()
    changed = dict(inputs, audio=inputs["audio"] + 1.0, vision=inputs["vision"] + 1.0)
    out_changed = model(**changed).tensors()
    for key in ("reconstruction.text", "reconstruction.audio", "reconstruction.vision", "incomplete.prediction"):
        assert torch.allclose(out[key], out_changed[key], atol=1e-6), key
    assert not torch.allclose(out["complete.prediction"], out_changed["complete.prediction"])
    changed_m = dict(inputs, audio_m=inputs["audio_m"] + 1.0)
    assert not torch.allclose(out["reconstruction.audio"], model(**changed_m).reconstruction["audio"])


def test_views_are_siamese():
    model = _model().eval()
    inputs = _inputs()
    same = dict(inputs, text_m=inputs["text"], audio_m=inputs["audio"], vision_m=inputs["vision"])
    out = model(**same)
    assert torch.allclose(out.complete.prediction, out.incomplete.prediction, atol=1e-6)
    for r in ATTRACTION_TARGETS:
        assert torch.allclose(out.complete.siamese[r].z, out.incomplete.siamese[r].z, atol=1e-5)


def test_batch_of_one_trains_and_uses_running_statistics():
    model = _model().train()
    inputs = make_inputs([6], [4], [3])
    bn = model.text_predictor.net[1]
    before = (bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone())
    out = model(**inputs).tensors()
    sum(v.sum() for v in out.values() if v.requires_grad).backward()
    assert all(torch.isfinite(v).all() for v in out.values())
    assert torch.equal(bn.running_mean, before[0]) and torch.equal(bn.running_var, before[1])
    assert torch.equal(bn.num_batches_tracked, before[2])
    assert model.text_projector.net[0].weight.grad is not None
    # A larger batch does update the statistics, as nn.BatchNorm1d.
    model(**_inputs())
    assert not torch.equal(bn.running_mean, before[0])


def test_heads_layout():
    projector, predictor = Projector(6), Predictor(6, 3)
    assert sum(p.numel() for p in projector.parameters()) == 6 * 6 + 6  # BN without affine parameters
    assert predictor.net[0].bias is None and predictor.net[1].affine
    assert [type(m).__name__ for m in predictor.net] == ["Linear", "ViewBatchNorm1d", "ReLU", "Linear"]


def test_identity_projection_when_width_is_d_model():
    cfg = tiny_config(video_out=16)  # d_model of the tiny preset
    model = _model(cfg)
    assert isinstance(model.proj_vision, nn.Identity)
    assert model.proj_audio.bias is None and model.proj_text.bias is None
    assert model(**_inputs()).reconstruction["vision"].shape == (4, max(VISION_LENGTHS), 6)


def test_a_384_wide_pretrained_encoder_fits():
    model = _model(encoder=load_text_encoder("minilm")).eval()
    out = model(**_inputs())
    assert out.reconstruction["text"].shape == (4, 11, 384) and out.complete.siamese["text"].z.shape == (4, 384)
    assert model.post_fusion_layer_1.in_features == 384 + 8 + 8 + 3 * 16


def test_frozen_encoder_without_finetuning():
    model = _model(tiny_config(use_finetune=False)).train()
    out = model(**_inputs()).tensors()
    sum(v.sum() for v in out.values() if v.requires_grad).backward()
    assert all(p.grad is None for p in model.text_model.parameters())
    assert model.fusion.pools[0].attention[0].weight.grad is not None


def test_describe_counts_shared_modules_once():
    model = _model()
    counts = describe(model)
    cst = model.fusion.layers[0]["local"][0]
    per_cst = sum(p.numel() for p in cst.parameters())
    per_pool = sum(p.numel() for p in model.fusion.pools[0].parameters())
    assert counts["fusion"] == per_cst + per_pool
    assert counts["total"] == counts["bert"] + counts["trainable_excluding_bert"]
    assert counts["bert"] == sum(p.numel() for p in model.text_model.parameters())


def test_fast_path_selects_the_lean_bert_attention():
    encoder = dropout_free_bert()
    model = _model(encoder=encoder)
    assert model.text_model.config._attn_implementation == LEAN_ATTENTION
    with reference_path(model):
        assert model.text_model.config._attn_implementation == "sdpa"
    assert model.text_model.config._attn_implementation == LEAN_ATTENTION
    again = _model(encoder=encoder)  # an encoder handed over with the lean attention already selected
    with reference_path(again):
        assert again.text_model.config._attn_implementation == "sdpa"
