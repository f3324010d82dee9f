"""The setting of the whole-run trajectory test (tests/test_trajectory.py), rebuilt deterministically.

The authors' code was run once on the CPU with exactly this setting (their run_once.py protocol: build the
loaders, seed, build the model, train with early stopping, test the best state), and the numbers it printed
are kept in ``tests/fixtures/reference_trajectory.json``. Everything here is this project's own: the data
come from :mod:`preprocess.make_synthetic`, and the tiny BERT's weights are filled from a seeded generator
(not from transformers' initialiser, so a new transformers release cannot change them).

Sizes are chosen to exercise the trainer's details: 38 training clips in batches of 6 give 7 batches, so
with gradients summed over groups of 2 the 7th batch is never stepped; 16 validation / test clips give a
last batch of 4, so the mean of per-batch losses depends on the shuffle. No batch has one clip (the
reference's LSTM squeeze and BatchNorm need two). Every dropout is 0, so the only randomness is the
initialisation and the batch order.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import BertConfig, BertModel

from preprocess.make_synthetic import make_synthetic

#: The synthetic data: preset, generator seed and clips per split (train, valid, test).
DATA = {"preset": "tiny", "seed": 0, "clips": [38, 16, 16]}

#: The tiny BERT: a BertConfig with every dropout 0, weights ~ N(0, WEIGHT_STD) from a seeded generator.
BERT_CONFIG = {
    "vocab_size": 30522,
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 512,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
}
BERT_WEIGHT_SEED = 0
BERT_WEIGHT_STD = 0.3

#: The run: one training seed at one missing rate.
SEED = 111
MISSING_RATE = 0.3

#: Config fields set on top of the ``tiny`` preset (the same values were given to the authors' code).
CONFIG = {
    "batch_size": 6,
    "update_epochs": 2,
    "early_stop": 2,
    "max_epochs": None,
    "a_lstm_hidden_size": 8,
    "audio_out": 6,
    "v_lstm_hidden_size": 10,
    "video_out": 8,
    "d_model": 16,
    "fusion_layers": 1,
    "heads": 2,
    "gmc_tokens_pred_dim": 8,
    "text_pred_dim": 8,
    "audio_pred_dim": 4,
    "video_pred_dim": 4,
    "post_fusion_dim": 16,
    "learning_rate_bert": 5e-5,
    "learning_rate_audio": 1e-3,
    "learning_rate_video": 1e-3,
    "learning_rate_other": 2e-3,
    "attn_dropout": 0.0,
    "ff_dropout": 0.0,
    "emb_dropout": 0.0,
    "post_fusion_dropout": 0.0,
    "a_lstm_dropout": 0.0,
    "v_lstm_dropout": 0.0,
}


def recipe() -> dict:
    """Everything that defines the run, as stored beside the reference numbers in the fixture."""
    return {
        "data": DATA,
        "bert_config": BERT_CONFIG,
        "bert_weight_seed": BERT_WEIGHT_SEED,
        "bert_weight_std": BERT_WEIGHT_STD,
        "seed": SEED,
        "missing_rate": MISSING_RATE,
        "config": CONFIG,
    }


def write_data(root: Path) -> Path:
    """Write the synthetic data under the data root ``root``; return the pickle's path."""
    return make_synthetic(DATA["preset"], root, seed=DATA["seed"], n_override=tuple(DATA["clips"]))


def write_bert(folder: Path) -> Path:
    """Save the tiny BERT (config.json + model.safetensors) to ``folder``; the global RNG is left untouched."""
    with torch.random.fork_rng(devices=[]):
        model = BertModel(BertConfig(**BERT_CONFIG))
    generator = torch.Generator().manual_seed(BERT_WEIGHT_SEED)
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            if not tensor.is_floating_point():
                continue
            if "LayerNorm" in name:
                tensor.fill_(1.0 if name.endswith("weight") else 0.0)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * BERT_WEIGHT_STD)
    model.save_pretrained(folder)
    return Path(folder)


def set_arguments() -> list[str]:
    """``--set`` pairs of :data:`CONFIG` for run.py."""
    return [f"{key}={'none' if value is None else value}" for key, value in CONFIG.items()]
