"""Reference-layout checkpoints: round trip, aliases of shared modules, and clear errors."""

import pytest
import torch

from models import build_model
from models.reference_checkpoint import (
    load_reference_checkpoint,
    load_reference_state_dict,
    to_reference_state_dict,
)
from tests.model_inputs import dropout_free_bert, make_inputs, tiny_config
from utils.errors import CheckpointError

SHARED_CST = "Model.fusion.mpus.{layer}.{modality}.{direction}.layers.0.0.fn.to_q.weight"


def _model(seed, **cfg):
    torch.manual_seed(seed)
    return build_model(tiny_config(**cfg), 5, 6, dropout_free_bert())


def _inputs():
    return make_inputs([12, 5, 3], [10, 3, 7], [4, 9, 1])


def test_reference_layout_keys():
    keys = to_reference_state_dict(_model(0)).keys()
    assert all(k.startswith("Model.") for k in keys)
    assert "Model.text_model.model.embeddings.word_embeddings.weight" in keys
    assert "Model.text_model.model.pooler.dense.weight" in keys
    for key in (
        "Model.audio_model.rnn.weight_ih_l0", "Model.video_model.rnn.bias_hh_l0", "Model.proj_text.weight",
        "Model.fusion.mpus.0.0.0.layers.0.0.norm_context.weight", "Model.fusion.mpus.0.0.0.layers.0.1.fn.to_kv.weight",
        "Model.fusion.mpus.0.0.0.layers.0.2.fn.net.0.weight", "Model.fusion.mpus.0.0.0.layers.0.2.fn.net.2.bias",
        "Model.fusion.attn_pools.1.attention.0.weight", "Model.fusion.attn_pools.1.attention.2.bias",
        "Model.fusion.pos_embed.pe",
        "Model.gmc_tokens_projector.net.1.running_mean", "Model.text_predictor.net.3.weight",
        "Model.recon_video.bias", "Model.post_fusion_layer_3.weight",
    ):
        assert key in keys, key
    # The one shared CST under every (layer, modality, direction) alias: 2 layers x 3 x 2.
    aliases = [k for k in keys if k.endswith("layers.0.0.fn.to_q.weight")]
    assert len(aliases) == 12


def test_round_trip_gives_identical_outputs(tmp_path):
    source, target = _model(0).eval(), _model(1).eval()
    inputs = _inputs()
    assert not torch.allclose(source(**inputs).complete.prediction, target(**inputs).complete.prediction)
    path = tmp_path / "reference.pth"
    torch.save(to_reference_state_dict(source), path)
    report = load_reference_checkpoint(target, path)
    assert report.alias_groups > 0 and report.unique_tensors < report.loaded_keys
    out_source, out_target = source(**inputs).tensors(), target(**inputs).tensors()
    for key in out_source:
        assert torch.equal(out_source[key], out_target[key]), key


def test_round_trip_without_sharing():
    cfg = dict(mpu_share=False, modality_share=False, layer_share=False)
    source, target = _model(0, **cfg), _model(1, **cfg)
    for p in source.fusion.parameters():  # make every copy distinct
        p.data.normal_()
    report = load_reference_state_dict(target, to_reference_state_dict(source))
    assert report.alias_groups == 0
    for (name, a), (_, b) in zip(source.state_dict().items(), target.state_dict().items()):
        assert torch.equal(a, b), name


def test_older_transformers_buffers_are_ignored():
    state = dict(to_reference_state_dict(_model(0)))
    state["Model.text_model.model.embeddings.position_ids"] = torch.arange(512)[None]
    report = load_reference_state_dict(_model(1), state)
    assert report.ignored_keys == ["Model.text_model.model.embeddings.position_ids"]


def test_missing_key_is_an_error():
    state = dict(to_reference_state_dict(_model(0)))
    del state["Model.recon_audio.weight"]
    with pytest.raises(CheckpointError, match=r"1 missing key\(s\): Model\.recon_audio\.weight.*KEY_TABLES"):
        load_reference_state_dict(_model(1), state)


def test_unexpected_key_is_an_error():
    state = dict(to_reference_state_dict(_model(0)))
    state["Model.fusion.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"unexpected key\(s\): Model\.fusion\.extra\.weight"):
        load_reference_state_dict(_model(1), state)


def test_shape_mismatch_is_an_error():
    state = dict(to_reference_state_dict(_model(0)))
    state["Model.post_fusion_layer_3.weight"] = torch.zeros(1, 17)
    with pytest.raises(CheckpointError, match=r"post_fusion_layer_3\.weight \(1, 17\) \(model \(1, 16\)\)"):
        load_reference_state_dict(_model(1), state)


def test_unequal_aliases_are_an_error():
    model = _model(1)
    before = model.fusion.layers[0]["local"][0].layers[0][0].fn.to_q.weight.clone()
    state = dict(to_reference_state_dict(_model(0)))
    key = SHARED_CST.format(layer=1, modality=2, direction=1)
    state[key] = state[key].clone() + 1.0
    with pytest.raises(CheckpointError, match=r"different values under aliases.*" + key.replace(".", r"\.")):
        load_reference_state_dict(model, state)
    assert torch.equal(model.fusion.layers[0]["local"][0].layers[0][0].fn.to_q.weight, before)  # nothing loaded


def test_unreadable_files_are_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_reference_checkpoint(_model(0), tmp_path / "absent.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_reference_checkpoint(_model(0), garbage)
    not_a_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_a_dict)
    with pytest.raises(CheckpointError, match="not a state dict"):
        load_reference_checkpoint(_model(0), not_a_dict)


def test_run_py_tests_a_reference_checkpoint(tiny_root, tmp_path, monkeypatch):
    """run.py --load-reference-checkpoint: the model loads the file, is tested at each rate without training,
    and the results are written; --deterministic reaches the seeding."""
    import json
    import math

    import run
    from data.load_data import load_mmsa
    from trains import experiment

    cfg = run.get_config("tiny")
    data = load_mmsa(tiny_root / cfg.data_file, label_range=cfg.label_range)
    datasets = experiment.build_datasets(cfg, data, tiny_root / cfg.data_file, (0.0, 0.0, 0.0))
    path = tmp_path / "reference.pth"
    torch.save(to_reference_state_dict(experiment.model_for(cfg, datasets)), path)
    seeded = []
    monkeypatch.setattr(experiment, "setup_seed", lambda seed, deterministic=False: seeded.append(deterministic))
    out = tmp_path / "out"
    assert run.main(["--dataset", "tiny", "--data-root", str(tiny_root), "--out", str(out), "--no-progress",
                     "--missing-rates", "0.0", "0.5", "--load-reference-checkpoint", str(path), "--deterministic"]) == 0
    results = json.loads((out / "reference_checkpoint_test.json").read_text())
    assert len(results) == 2 and all(math.isfinite(r["MAE"]) for r in results.values())
    assert seeded == [True, True]
    assert not list(out.glob("cells/*/*.json"))  # nothing trained
