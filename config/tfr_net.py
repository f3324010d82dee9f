"""TFR-Net's hyperparameters: the authors' ``config_regression.py`` ``tfr_net`` block, per dataset.

TFR-Net (Yuan et al., ACM MM 2021) is the strongest robust-MSA baseline of the paper's Tables 6 and 7. The
authors' repository ships it with its own settings, merged there from three sources: the TFR-Net common
block (``commonParas``: which modules, BERT fine-tuned, attention masks on, update every 4 batches, early
stop after 6 epochs), the dataset block (``seq_lens``, ``feature_dims``, ``KeyEval='Loss'``) and the
per-dataset block (``datasetParas``); its trainer (``trains/missingTask/TFR_NET.py``) adds what it
hard-codes. :class:`TFRNetConfig` holds them all, with the shared fields of
:class:`config.base.ExperimentConfig` at TFR-Net's values (the same for the three datasets): batch size 16,
BERT fine-tuned, Adam with BERT at lr 1e-5 (weight decay 1e-4, none on biases and LayerNorms) and the rest at
2e-3 (decay 1e-3), gradients summed over 4 batches with the MMSA step schedule, clip_grad_value 0.8,
ReduceLROnPlateau (factor 0.1, patience 5; SIMS 10) on the validation L1 rounded to 4 decimals, model
selection on it and early stopping after 6 epochs. Each preset takes its data part (file, widths, encoder,
sweep grid) from the EMT-DLFR preset of the same dataset (:func:`config.base.dataset_fields`).

``seq_lens`` are the padded lengths (text, audio, vision) of the official unaligned files. The reference
overwrites them with the training split's array shapes before building the model, because the last
self-attention of each modality is as wide as its sequence (models/tfr_net/alignment.py); the model here
also takes them from the data, and these values serve ``--describe``, which needs no data.

Only the modules the reference selects are implemented: the crossmodal-attention alignment, the linear
generator and the gated (``c_gate``) fusion; its reconstruction loss is ``combine`` with no CMD weight set,
which the reference's ``Storage`` reads as False, so it is SmoothL1 alone (models/tfr_net/losses.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from config.base import ExperimentConfig, dataset_fields
from config.presets import DEMO, MOSEI, MOSI, SIMS, TINY
from utils.errors import ConfigError


@dataclass(frozen=True)
class TFRNetConfig(ExperimentConfig):
    """Every setting of one TFR-Net run (defaults: the authors' MOSI values). Names follow their config."""

    MODEL: ClassVar[str] = "tfr_net"

    #: Padded (text, audio, vision) lengths; the model takes the data's, these serve --describe.
    seq_lens: tuple[int, int, int] = (50, 375, 500)
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
    # --- objective ----------------------------------------------------------------------------------
    #: Weights of the (text, audio, vision) reconstruction losses.
    weight_gen_loss: tuple[float, float, float] = (5.0, 2.0, 20.0)
    #: The reconstruction loss joins the objective from this epoch on (the reference: epoch 2).
    gen_loss_from_epoch: int = 2
    # --- optimiser ----------------------------------------------------------------------------------
    learning_rate_bert: float = 1e-5
    learning_rate_other: float = 2e-3
    weight_decay_bert: float = 1e-4
    weight_decay_other: float = 1e-3
    # --- shared fields at TFR-Net's values ----------------------------------------------------------
    use_finetune: bool = True
    batch_size: int = 16
    batches_per_step: int = 4
    step_schedule: str = "mmsa"
    grad_clip: Optional[float] = 0.8
    plateau_patience: Optional[int] = 5
    early_stop: int = 6
    eval_loss_decimals: Optional[int] = 4

    @property
    def d_model(self) -> int:
        return self.dst_feature_dim_nheads[0]

    def check_model(self) -> None:
        """Range checks of the values the network's shapes depend on."""
        d_model, heads = self.dst_feature_dim_nheads
        if d_model < 1 or heads < 1 or d_model % heads:
            raise ConfigError(f"dst_feature_dim_nheads {self.dst_feature_dim_nheads}: d must be a positive "
                              "multiple of the head count")
        for name in ("conv1d_kernel_size_l", "conv1d_kernel_size_a", "conv1d_kernel_size_v"):
            size = getattr(self, name)
            if size < 1 or size % 2 == 0:
                raise ConfigError(f"config key '{name}' must be an odd positive kernel size (the sequence length "
                                  f"is kept), got {size}")
        for name in ("nlevels", "fusion_t_hid", "fusion_a_hid", "fusion_v_hid", "fusion_gru_layers", "cls_hidden_dim",
                     "gen_loss_from_epoch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"config key '{name}' must be >= 1, got {getattr(self, name)}")
        if any(length < 1 for length in self.seq_lens):
            raise ConfigError(f"config key 'seq_lens' must be positive lengths, got {self.seq_lens}")


TFR_NET_MOSI = TFRNetConfig(**dataset_fields(MOSI))

#: MOSEI's block equals MOSI's; only the data shapes differ.
TFR_NET_MOSEI = TFRNetConfig(**dataset_fields(MOSEI), seq_lens=(50, 500, 375))

TFR_NET_SIMS = TFRNetConfig(
    **dataset_fields(SIMS),
    seq_lens=(39, 400, 55),
    relu_dropout=0.0,
    embed_dropout=0.1,
    nlevels=2,
    cls_dropout=0.1,
    plateau_patience=10,
    weight_gen_loss=(1.0, 0.01, 0.0001),
)

#: CPU demo: MOSI's TFR-Net on the synthetic ``demo`` preset with the frozen MiniLM (as EMT-DLFR's demo),
#: narrower, one mini-batch per step.
TFR_NET_DEMO = TFRNetConfig(
    **dataset_fields(DEMO),
    seq_lens=(24, 60, 50),
    dst_feature_dim_nheads=(12, 2),
    fusion_t_hid=12,
    fusion_a_hid=8,
    fusion_v_hid=8,
    fusion_gru_layers=1,
    cls_hidden_dim=32,
    use_finetune=False,
    batch_size=32,
    batches_per_step=1,
    early_stop=3,
)

#: Tests: tiny widths on the ``tiny`` synthetic preset.
TFR_NET_TINY = TFRNetConfig(
    **dataset_fields(TINY),
    seq_lens=(12, 20, 16),
    dst_feature_dim_nheads=(8, 2),
    nlevels=1,
    fusion_t_hid=6,
    fusion_a_hid=4,
    fusion_v_hid=4,
    fusion_gru_layers=1,
    cls_hidden_dim=8,
    batch_size=8,
    batches_per_step=1,
    early_stop=2,
)

TFR_NET_PRESETS: dict[str, TFRNetConfig] = {
    "mosi": TFR_NET_MOSI, "mosei": TFR_NET_MOSEI, "sims": TFR_NET_SIMS, "demo": TFR_NET_DEMO, "tiny": TFR_NET_TINY,
}
