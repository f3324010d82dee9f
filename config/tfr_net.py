"""TFR-Net's hyperparameters: the authors' ``config_regression.py`` ``tfr_net`` block, per dataset.

TFR-Net (Yuan et al., ACM MM 2021) is the strongest robust-MSA baseline of the paper's Tables 6 and 7. The
authors' repository ships it with its own settings, merged there from three sources: the TFR-Net common
block (``commonParas``: which modules, BERT fine-tuned, attention masks on, update every 4 batches, early
stop after 6 epochs), the dataset block (``seq_lens``, ``feature_dims``, ``KeyEval='Loss'``) and the
per-dataset block (``datasetParas``). :class:`TFRNetConfig` holds the network's and the objective's settings. The
training settings are the same for the three datasets: batch size 16, Adam with BERT at lr 1e-5 (weight decay
1e-4, none on biases and LayerNorms) and the rest at 2e-3 (decay 1e-3), gradients summed over 4 batches,
clip_grad_value 0.8, ReduceLROnPlateau(factor 0.1) on the validation loss, early stop after 6 epochs.

``seq_lens`` are the padded lengths (text, audio, vision) of the official unaligned files. The reference
overwrites them with the training split's array shapes before building the model, because the last
self-attention of each modality is as wide as its sequence (models/tfr_net/alignment.py); the model here
also takes them from the data, and these values serve ``--describe``, which needs no data.

Only the modules the reference selects are implemented: the crossmodal-attention alignment, the linear
generator and the gated (``c_gate``) fusion; its reconstruction loss is ``combine`` with no CMD weight set,
which the reference's ``Storage`` reads as False, so it is SmoothL1 alone (models/tfr_net/losses.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from utils.errors import ConfigError


@dataclass(frozen=True)
class TFRNetConfig:
    """TFR-Net's own settings. Names follow the reference's ``config_regression.py`` keys."""

    #: Padded (text, audio, vision) lengths; the model takes the data's, these serve --describe.
    seq_lens: tuple[int, int, int] = (50, 375, 500)
    #: (text, audio, vision) input widths: text is BERT's width, audio/vision the feature widths.
    feature_dims: tuple[int, int, int] = (768, 5, 20)
    # --- alignment: crossmodal transformers (MulT-style) -------------------------------------------
    text_dropout: float = 0.2
    conv1d_kernel_size_l: int = 1
    conv1d_kernel_size_a: int = 5
    conv1d_kernel_size_v: int = 3
    attn_dropout: float = 0.2
    attn_dropout_a: float = 0.1
    attn_dropout_v: float = 0.0
    relu_dropout: float = 0.2
    embed_dropout: float = 0.2
    res_dropout: float = 0.2
    #: (d, heads) of the crossmodal transformers: every modality is projected to d.
    dst_feature_dim_nheads: tuple[int, int] = (30, 6)
    #: Layers of the crossmodal transformers; the memory and final self-attentions use max(nlevels, 3).
    nlevels: int = 3
    #: Causal ("future") attention masks in every transformer, as the reference's ``attn_mask=True``.
    attn_mask: bool = True
    # --- gated fusion -------------------------------------------------------------------------------
    fusion_t_hid: int = 36
    fusion_a_hid: int = 20
    fusion_v_hid: int = 48
    fusion_gru_layers: int = 3
    fusion_drop: float = 0.2
    cls_hidden_dim: int = 128
    cls_dropout: float = 0.0
    # --- objective and training ---------------------------------------------------------------------
    #: Weights of the (text, audio, vision) reconstruction losses.
    weight_gen_loss: tuple[float, float, float] = (5.0, 2.0, 20.0)
    #: The reconstruction loss joins the objective from this epoch on (the reference: epoch 2).
    gen_loss_from_epoch: int = 2
    #: clip_grad_value_ bound; -1 disables clipping (the reference's convention).
    grad_clip: float = 0.8
    #: ReduceLROnPlateau patience in epochs, stepped on the validation loss.
    patience: int = 5

    @property
    def d_model(self) -> int:
        return self.dst_feature_dim_nheads[0]

    @property
    def heads(self) -> int:
        return self.dst_feature_dim_nheads[1]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


MOSI = TFRNetConfig()

#: MOSEI's block equals MOSI's; only the data shapes differ.
MOSEI = dataclasses.replace(MOSI, seq_lens=(50, 500, 375), feature_dims=(768, 74, 35))

SIMS = dataclasses.replace(
    MOSI,
    seq_lens=(39, 400, 55),
    feature_dims=(768, 33, 709),
    relu_dropout=0.0,
    embed_dropout=0.1,
    nlevels=2,
    cls_dropout=0.1,
    patience=10,
    weight_gen_loss=(1.0, 0.01, 0.0001),
)

#: The synthetic presets (preprocess/make_synthetic.py): MOSI's settings at their shapes, narrower.
DEMO = dataclasses.replace(MOSI, seq_lens=(24, 60, 50), feature_dims=(384, 5, 20), dst_feature_dim_nheads=(12, 2),
                           fusion_t_hid=12, fusion_a_hid=8, fusion_v_hid=8, fusion_gru_layers=1, cls_hidden_dim=32)
TINY = dataclasses.replace(MOSI, seq_lens=(12, 20, 16), feature_dims=(32, 5, 6), dst_feature_dim_nheads=(8, 2), nlevels=1,
                           fusion_t_hid=6, fusion_a_hid=4, fusion_v_hid=4, fusion_gru_layers=1, cls_hidden_dim=8)

PRESETS: dict[str, TFRNetConfig] = {"mosi": MOSI, "mosei": MOSEI, "sims": SIMS, "demo": DEMO, "tiny": TINY}

def get_tfr_config(dataset: str) -> TFRNetConfig:
    key = dataset.lower()
    if key not in PRESETS:
        raise ConfigError(f"unknown dataset {dataset!r} for tfr_net (choose from: {', '.join(PRESETS)})")
    return PRESETS[key]


def validate_tfr(cfg: TFRNetConfig) -> None:
    """Range checks of the values the network's shapes depend on."""
    d_model, heads = cfg.dst_feature_dim_nheads
    if d_model < 1 or heads < 1 or d_model % heads:
        raise ConfigError(f"tfr_net dst_feature_dim_nheads {cfg.dst_feature_dim_nheads}: d must be a positive "
                          "multiple of the head count")
    for name in ("conv1d_kernel_size_l", "conv1d_kernel_size_a", "conv1d_kernel_size_v"):
        size = getattr(cfg, name)
        if size < 1 or size % 2 == 0:
            raise ConfigError(f"tfr_net {name} must be an odd positive kernel size (the sequence length is kept), "
                              f"got {size}")
    for name in ("nlevels", "fusion_t_hid", "fusion_a_hid", "fusion_v_hid", "fusion_gru_layers", "cls_hidden_dim"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"tfr_net {name} must be >= 1, got {getattr(cfg, name)}")
