"""Per-dataset presets: the reference's EMT-DLFR hyperparameters (docs/REFERENCE.md §2).

Every model's presets start from these: :func:`config.base.dataset_fields` takes the data part
(file, feature widths, encoder, sweep grid) from them; :func:`config.models.get_config` picks a model's.

``mosi``, ``mosei`` and ``sims`` are the paper's datasets. ``demo`` and ``tiny`` go with the synthetic
presets of :mod:`preprocess.make_synthetic`: ``demo`` is small enough to train on a laptop CPU in
minutes with the pretrained MiniLM encoder, ``tiny`` is for tests (a 1-layer random BERT).
"""

from __future__ import annotations

import dataclasses

from config.base import SIMS_RATE_GRID, Config

MOSI = Config()

MOSEI = dataclasses.replace(
    MOSI,
    dataset="mosei",
    data_file="MOSEI/Processed/unaligned_50.pkl",
    feature_dims=(768, 74, 35),
    batch_size=16,
    learning_rate_bert=2e-5,
    learning_rate_audio=1e-4,
    learning_rate_video=1e-4,
    learning_rate_other=1e-4,
    weight_decay_audio=1e-3,
    a_lstm_hidden_size=16,
    v_lstm_hidden_size=32,
    fusion_layers=2,
    attn_dropout=0.0,
    ff_dropout=0.0,
    post_fusion_dim=128,
    post_fusion_dropout=0.0,
    checkpoint_every_epoch=True,
)

SIMS = dataclasses.replace(
    MOSI,
    dataset="sims",
    data_file="SIMS/Processed/unaligned_39.pkl",
    normalized_data_file="SIMS/Processed/unaligned_39_normalized.pkl",
    bert="bert-base-chinese",
    feature_dims=(768, 33, 709),
    label_range=(-1.0, 1.0),
    metric_set="sims",
    sweep_rates=SIMS_RATE_GRID,
    learning_rate_bert=2e-5,
    learning_rate_audio=1e-3,
    learning_rate_video=1e-3,
    learning_rate_other=1e-3,
    weight_decay_audio=0.0,
    weight_decay_video=0.0,
    weight_decay_other=0.0,
    a_lstm_hidden_size=16,
    v_lstm_hidden_size=32,
    d_model=32,
    fusion_layers=4,
    attn_dropout=0.0,
    ff_dropout=0.0,
    loss_attra_weight=0.5,
    loss_recon_weight=0.5,
    post_fusion_dropout=0.0,
)

#: CPU demo on the synthetic ``demo`` preset with the pretrained MiniLM (384-wide) encoder, kept frozen
#: (BERT's backward pass would dominate a CPU step) and stepped after every batch, so that a handful of
#: epochs on a few hundred clips learn the planted signal in well under a minute per model.
DEMO = dataclasses.replace(
    MOSI,
    dataset="demo",
    data_file="DEMO/Processed/unaligned_24.pkl",
    bert="minilm",
    use_finetune=False,
    feature_dims=(384, 5, 20),
    d_model=32,
    fusion_layers=1,
    attn_dropout=0.0,
    ff_dropout=0.0,
    post_fusion_dim=64,
    post_fusion_dropout=0.0,
    learning_rate_audio=3e-3,
    learning_rate_video=3e-3,
    learning_rate_other=3e-3,
    batches_per_step=1,
    early_stop=3,
    max_epochs=5,
)

#: Tests: a few dozen clips, a 1-layer random BERT, tiny widths.
TINY = dataclasses.replace(
    MOSI,
    dataset="tiny",
    data_file="TINY/Processed/unaligned_12.pkl",
    bert="random:tiny",
    feature_dims=(32, 5, 6),
    a_lstm_hidden_size=8,
    audio_out=8,
    v_lstm_hidden_size=8,
    video_out=8,
    d_model=16,
    fusion_layers=2,
    heads=2,
    gmc_tokens_pred_dim=8,
    text_pred_dim=8,
    audio_pred_dim=4,
    video_pred_dim=4,
    post_fusion_dim=16,
    batch_size=8,
    batches_per_step=1,
    early_stop=2,
    max_epochs=3,
)

PRESETS: dict[str, Config] = {"mosi": MOSI, "mosei": MOSEI, "sims": SIMS, "demo": DEMO, "tiny": TINY}

