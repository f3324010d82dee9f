"""load_text_encoder: random, offline-pretrained and local-folder encoders; one clear UserError otherwise."""

import json

import pytest
import torch
from transformers import BertConfig, BertModel

from models import text_encoder
from models.execution import LEAN
from models.text_encoder import RANDOM_ENCODERS, hf_attention, load_text_encoder
from utils.errors import UserError

LEAN_ATTENTION = hf_attention(LEAN)


def test_random_tiny_has_the_documented_size_and_is_seeded():
    torch.manual_seed(3)
    first = load_text_encoder("random:tiny")
    torch.manual_seed(3)
    second = load_text_encoder("random:tiny")
    cfg = first.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (32, 1, 2)
    assert (cfg.intermediate_size, cfg.vocab_size, cfg.max_position_embeddings) == (64, 30522, 512)
    assert first.pooler is not None
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name
    torch.manual_seed(4)
    third = load_text_encoder("random:tiny")
    assert not torch.equal(third.embeddings.word_embeddings.weight, first.embeddings.word_embeddings.weight)


@pytest.mark.parametrize(
    "size, vocab", [("base", 30522), ("base-chinese", 21128)]
)
def test_random_base_sizes_are_bert_base(size, vocab):
    cfg = BertConfig(**RANDOM_ENCODERS[size])
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size) == (768, 12, 12, 3072)
    assert cfg.vocab_size == vocab


def test_minilm_is_the_pretrained_384_wide_encoder():
    model = load_text_encoder("minilm")
    assert isinstance(model, BertModel)
    assert (model.config.hidden_size, model.config.num_hidden_layers) == (384, 6)
    assert model.dtype == torch.float32
    # Pretrained, not random: LayerNorm weights are no longer all ones.
    assert not torch.allclose(model.embeddings.LayerNorm.weight, torch.ones(384))


def test_local_folder_round_trip(tmp_path):
    torch.manual_seed(0)
    original = load_text_encoder("random:tiny")
    original.save_pretrained(tmp_path)
    loaded = load_text_encoder(str(tmp_path))
    assert torch.equal(loaded.embeddings.word_embeddings.weight, original.embeddings.word_embeddings.weight)


def test_missing_folder_is_a_user_error():
    with pytest.raises(UserError, match=r"/no/such/folder.*does not exist.*config\.json"):
        load_text_encoder("/no/such/folder")


def test_folder_without_weights_is_a_user_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(UserError, match=r"lacks config\.json or weights"):
        load_text_encoder(str(tmp_path))


def test_unknown_random_size_is_a_user_error():
    with pytest.raises(UserError, match=r"random:huge.*random:tiny"):
        load_text_encoder("random:huge")


def test_unreachable_hub_name_is_one_user_error(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files.\nmore detail")

    monkeypatch.setattr(text_encoder.BertModel, "from_pretrained", offline)
    with pytest.raises(UserError) as err:
        load_text_encoder("bert-base-uncased")
    message = str(err.value)
    assert "'bert-base-uncased'" in message and "couldn't connect" in message
    assert "HF_HUB_OFFLINE" in message and "config.json" in message
    assert "\n" not in message
    assert err.value.__cause__ is None and err.value.__suppress_context__


def _tiny_bert(**overrides) -> BertModel:
    torch.manual_seed(0)
    return BertModel(BertConfig(**dict(RANDOM_ENCODERS["tiny"], **overrides))).double().train()


def test_lean_attention_is_sdpa_attention():
    """With (practically) no drops the lean CPU kernel gives SDPA's outputs and gradients, padding included."""
    ids = torch.randint(1000, 2000, (3, 9))
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 4:] = 0
    mask[2, 7:] = 0
    results = []
    for implementation in ("sdpa", LEAN_ATTENTION):
        model = _tiny_bert(hidden_dropout_prob=0.0, attention_probs_dropout_prob=1e-12)
        model.set_attn_implementation(implementation)
        out = model(input_ids=ids, attention_mask=mask).last_hidden_state
        out.square().sum().backward()
        results.append((out, [p.grad for p in model.parameters() if p.grad is not None]))
    (out_sdpa, grads_sdpa), (out_lean, grads_lean) = results
    assert torch.allclose(out_lean, out_sdpa, atol=1e-10)
    assert len(grads_lean) == len(grads_sdpa)
    for a, b in zip(grads_lean, grads_sdpa):
        assert torch.allclose(a, b, atol=1e-9)


def test_lean_attention_drops_reproducibly():
    model = _tiny_bert(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.5)
    model.set_attn_implementation(LEAN_ATTENTION)
    ids = torch.randint(1000, 2000, (2, 6))
    torch.manual_seed(1)
    first = model(input_ids=ids).last_hidden_state
    torch.manual_seed(1)
    assert torch.equal(first, model(input_ids=ids).last_hidden_state)
    assert not torch.allclose(first, model.eval()(input_ids=ids).last_hidden_state)


def test_only_key_padding_masks_take_the_lean_kernel():
    padding = torch.tensor([[True, True, False], [True, True, True]])[:, None, None, :].expand(2, 1, 3, 3)
    assert torch.equal(text_encoder._key_mask(padding), padding[:, 0, 0])
    causal = torch.ones(3, 3, dtype=torch.bool).tril()[None, None].expand(2, 1, 3, 3)
    assert text_encoder._key_mask(causal) is False
    assert text_encoder._key_mask(torch.zeros(2, 1, 3, 3)) is False  # an additive float mask
    assert text_encoder._key_mask(None) is None
