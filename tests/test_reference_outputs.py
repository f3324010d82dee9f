"""The authors' checkpoints load into this model and give the authors' outputs (issue #10, part 1).

* ``fixtures/emt_dlfr_mosi_state_dict_keys.tsv`` is the key list, with shapes, of the ``state_dict()`` of the
  authors' MOSI model (BERT shown with 1 layer). A state dict with exactly those keys, the shared block's
  aliases holding one tensor, must load with no missing or unexpected key: a test from the authors' names,
  not from names this project writes itself.
* ``fixtures/reference_outputs_tiny.json`` holds the outputs and loss terms that the authors' released code
  gives at a tiny config (same key names, small widths) on a fixed batch, for the state dict drawn by
  :func:`draw_state_dict` from the seed and the key list stored with them. Loaded through the
  reference-checkpoint loader, this model must give the same numbers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel

from config import get_config
from models import build_model
from models.emt_dlfr import read_positions, reference_path
from models.reference_checkpoint import load_reference_state_dict, to_reference_state_dict
from trains.losses import DLFRObjective

FIXTURES = Path(__file__).resolve().parent / "fixtures"
KEYS_TSV = FIXTURES / "emt_dlfr_mosi_state_dict_keys.tsv"
OUTPUTS = FIXTURES / "reference_outputs_tiny.json"
#: Scale of the drawn weights (small enough that nothing saturates), and the running variances' floor.
WEIGHT_SCALE = 0.2
VARIANCE_FLOOR = 0.5
#: num_batches_tracked of every BatchNorm (read by nothing in eval mode).
BATCHES_TRACKED = 5
#: Float32 tolerance for two implementations of the same arithmetic (summation orders differ).
ATOL, RTOL = 2e-5, 1e-4


def read_key_list(path: Path) -> list[tuple[str, tuple[int, ...], str]]:
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, dtype = line.split("\t")
        rows.append((key, tuple(int(x) for x in re.findall(r"\d+", shape)), dtype.strip()))
    return rows


def canonical(key: str) -> str:
    """The first alias of a shared tensor: with every sharing switch on, one CST under every
    ``mpus.{layer}.{modality}.{direction}`` and one pool under every ``attn_pools.{layer}``."""
    key = re.sub(r"mpus\.\d+\.\d+\.\d+\.", "mpus.0.0.0.", key)
    return re.sub(r"attn_pools\.\d+\.", "attn_pools.0.", key)


def draw_state_dict(rows, seed: int) -> dict[str, torch.Tensor]:
    """Values for every key in order from one seeded generator; aliases get the very tensor of their first key."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape, dtype in rows:
        first = canonical(key)
        if first != key:
            state[key] = state[first]
        elif dtype == "torch.int64":
            state[key] = torch.full(shape, BATCHES_TRACKED, dtype=torch.int64)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + VARIANCE_FLOOR
        else:
            state[key] = torch.randn(shape, generator=generator) * WEIGHT_SCALE
    return state


#: The key list shows BERT at 768 wide with 1 layer and a 256-wide feed-forward (a bert-base checkpoint has
#: 12 such layers of 3072, under the same names).
LISTED_BERT = dict(num_hidden_layers=1, intermediate_size=256)


def mosi_model(learnable_pos_emb: bool = False):
    """The MOSI model with the encoder the key list shows."""
    cfg = get_config("mosi", learnable_pos_emb=learnable_pos_emb)
    encoder = BertModel(BertConfig(**LISTED_BERT))
    return build_model(cfg, 5, 20, text_encoder=encoder)


@pytest.mark.parametrize("learnable", [False, True])
def test_the_authors_mosi_key_list_loads_with_no_missing_or_unexpected_key(learnable):
    rows = read_key_list(KEYS_TSV)
    assert any(k == "Model.fusion.pos_embed.pe" for k, _, _ in rows)
    assert any(k.startswith("Model.fusion.attn_pools.") for k, _, _ in rows)
    state = draw_state_dict(rows, seed=0)
    model = mosi_model(learnable)
    report = load_reference_state_dict(model, state)
    assert report.ignored_keys == []
    assert report.alias_groups > 0  # the shared CST and pool were matched under all their aliases
    ours = to_reference_state_dict(model)
    assert set(ours) == {k for k, _, _ in rows}  # and written back under exactly the authors' names
    for key, shape, _ in rows:
        assert tuple(ours[key].shape) == shape, key
        assert torch.equal(ours[key], state[key]), key
    table = model.fusion.pos_emb.pe
    assert isinstance(table, torch.nn.Parameter) == learnable  # a parameter only when learnable, as theirs


def test_different_values_under_aliases_of_the_shared_block_are_refused():
    rows = read_key_list(KEYS_TSV)
    state = draw_state_dict(rows, seed=0)
    state["Model.fusion.mpus.2.1.0.layers.0.0.fn.to_q.weight"] = state["Model.fusion.mpus.2.1.0.layers.0.0.fn.to_q.weight"] + 1
    with pytest.raises(Exception, match="aliases of one shared tensor"):
        load_reference_state_dict(mosi_model(), state)


@pytest.fixture(scope="module")
def reference():
    return json.loads(OUTPUTS.read_text())


def tiny_model(reference):
    conf = reference["config"]
    assert reference["bert"] == {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                 "intermediate_size": 64, "vocab_size": 30522, "max_position_embeddings": 512}
    cfg = get_config(
        "tiny", bert="random:tiny", feature_dims=tuple(conf["feature_dims"]),
        **{k: conf[k] for k in ("a_lstm_hidden_size", "audio_out", "v_lstm_hidden_size", "video_out", "d_model",
                                "fusion_layers", "heads", "learnable_pos_emb", "emb_dropout", "attn_dropout",
                                "ff_dropout", "ff_expansion", "mpu_share", "modality_share", "layer_share",
                                "attn_act_fn", "gmc_tokens_pred_dim", "text_pred_dim", "audio_pred_dim",
                                "video_pred_dim", "post_fusion_dim", "post_fusion_dropout", "loss_attra_weight",
                                "loss_recon_weight")},
    )
    model = build_model(cfg, *conf["feature_dims"][1:])
    rows = [(k, tuple(s), d) for k, s, d in reference["keys"]]
    assert [k for k, _, _ in rows] == [k for k, _, _ in read_key_list(KEYS_TSV)]  # the same names as MOSI's
    load_reference_state_dict(model, draw_state_dict(rows, reference["seed_weights"]))
    return cfg, model.eval()


#: The reference's modality names for this project's.
REFERENCE_MODALITY = {"video": "vision", "gmc_tokens": "gmc"}


def our_name(reference_output: str) -> str:
    """The name in :meth:`~models.outputs.EMTDLFROutput.tensors` of one of the authors' outputs: their flat dict
    (``pred``, ``z_text_m``, ``video_recon``, ``text_for_recon``) against this model's typed outputs."""
    if reference_output == "text_for_recon":
        return "text_target"
    match = re.fullmatch(r"(\w+)_recon", reference_output)
    if match:
        return f"reconstruction.{REFERENCE_MODALITY.get(match.group(1), match.group(1))}"
    view = "incomplete" if reference_output.endswith("_m") else "complete"
    name = reference_output[:-2] if view == "incomplete" else reference_output
    if name == "pred":
        return f"{view}.prediction"
    head, target = name.split("_", 1)  # z_text -> z, text
    return f"{view}.siamese.{REFERENCE_MODALITY.get(target, target)}.{head}"


#: Loss terms named otherwise here (the fixture names them after the reference's outputs).
LOSS_NAMES = {"rec_video": "rec_vision"}


def batch_of(reference) -> dict:
    b = {k: torch.tensor(v) for k, v in reference["batch"].items()}
    for key in ("audio_lengths", "vision_lengths", "audio_mask", "audio_missing_mask", "vision_mask",
                "vision_missing_mask"):
        b[key] = b[key].long()
    b["labels"] = {"M": b.pop("labels")}
    return b


@pytest.mark.parametrize("path", ["fast", "plain"])
def test_outputs_and_losses_equal_the_authors_model_with_the_same_weights(reference, path):
    cfg, model = tiny_model(reference)
    batch = batch_of(reference)
    inputs = {k: batch[k] for k in ("text", "text_m", "audio", "audio_m", "audio_lengths", "vision", "vision_m",
                                    "vision_lengths")}
    with torch.no_grad():
        if path == "plain":
            with reference_path(model):
                out = model(**inputs)
        else:
            out = model(**inputs)
        terms = DLFRObjective(cfg)(out, batch)
    out = out.tensors()
    want = {our_name(k): torch.tensor(v) for k, v in reference["outputs"].items()}
    assert set(want) == set(out)
    positions = read_positions(batch["text"], batch["audio_lengths"], batch["vision_lengths"])
    for key, expected in want.items():
        got = out[key]
        assert got.shape == expected.shape, key
        if path == "fast" and key in positions:  # the fast path leaves zeros where no loss reads
            got, expected = got[positions[key]], expected[positions[key]]
        torch.testing.assert_close(got, expected, atol=ATOL, rtol=RTOL, msg=lambda m: f"{key}: {m}")
    for name, value in reference["losses"].items():
        ours = terms[LOSS_NAMES.get(name, name)].item()
        assert ours == pytest.approx(value, rel=RTOL, abs=ATOL), name
