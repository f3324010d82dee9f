"""MulT's configuration and per-dataset presets, as the authors' code ships them.

MulT (Tsai et al., ACL 2019) is the first baseline of the paper's Tables 6 and 7. The authors' repository
trains it with its own per-dataset hyperparameters (their ``config/config_regression.py``, ``__MULT``) and
its own trainer (``trains/baselines/MULT.py``); the values below are theirs, field by field, with their
names in the comments where ours differ. What their trainer does with them:

* one Adam over every parameter at ``learning_rate``, no weight decay: their config lists ``weight_decay``
  (0.001 for MOSEI and SIMS) but their trainer never passes it, so the presets hold 0.0 here;
* BERT frozen (``use_bert_finetune=False``), its outputs read under ``no_grad``;
* gradients summed over groups of ``batches_per_step`` = 8 mini-batches, stepped after every batch and once
  more at the end of each group (``step_schedule="mmsa"``), each element clipped to ``grad_clip`` first;
* ReduceLROnPlateau (factor 0.1, ``plateau_patience``) on the validation loss, which they round to 4
  decimals before it selects the model; early stopping after 8 epochs without improvement;
* trained, validated and tested on the incomplete views only (``data_missing=True``).

:data:`MULT_PRESETS` builds each preset from the EMT-DLFR preset of the same dataset (its data file,
encoder and sweep grid) plus MulT's own fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from config.base import ExperimentConfig, dataset_fields
from config.presets import DEMO, MOSEI, MOSI, SIMS, TINY
from utils.errors import ConfigError


@dataclass(frozen=True)
class MultConfig(ExperimentConfig):
    """Every setting of one MulT run (defaults: the authors' MOSI values)."""

    MODEL: ClassVar[str] = "mult"

    # --- the network (models/mult.py) -----------------------------------------------------------
    #: Width of every crossmodal stream (``dst_feature_dim_nheads[0]``); the memories are twice as wide.
    d_model: int = 40
    #: Attention heads (``dst_feature_dim_nheads[1]``).
    heads: int = 10
    #: Layers of each crossmodal transformer (``nlevels``); the memories get max(layers, 3).
    layers: int = 4
    #: Kernel sizes of the temporal Conv1d projections (``conv1d_kernel_size_{l,a,v}``), no padding.
    conv_kernel_text: int = 1
    conv_kernel_audio: int = 5
    conv_kernel_vision: int = 1
    #: Dropout on BERT's output sequence (``text_dropout``).
    text_dropout: float = 0.2
    #: Attention-weight dropout of the blocks whose keys are text, audio, vision (``attn_dropout``,
    #: ``attn_dropout_a``, ``attn_dropout_v``); the memories use the text one, as the authors' code does.
    attn_dropout: float = 0.1
    attn_dropout_audio: float = 0.1
    attn_dropout_vision: float = 0.2
    relu_dropout: float = 0.2
    embed_dropout: float = 0.1
    res_dropout: float = 0.2
    #: Dropout inside the residual output head (``output_dropout``).
    output_dropout: float = 0.1
    #: The authors' triangular attention mask (``attn_mask=True``); False attends everywhere.
    attn_mask: bool = True
    #: Sinusoidal positions added to every block's inputs. The authors' MulT never turns them on (their
    #: TransformerEncoder defaults to off and MULT.py does not pass the switch); MulT's own repository does.
    position_embedding: bool = False

    # --- optimisation -----------------------------------------------------------------------------
    learning_rate: float = 1e-3
    #: L2 decay of the one Adam group; 0.0 as the authors' trainer runs (their config's value is unused).
    weight_decay: float = 0.0

    # --- shared fields at MulT's values -----------------------------------------------------------
    use_finetune: bool = False
    batch_size: int = 4
    batches_per_step: int = 8
    step_schedule: str = "mmsa"
    grad_clip: float | None = 0.8
    plateau_patience: int | None = 20
    early_stop: int = 8
    eval_loss_decimals: int | None = 4

    def check_model(self) -> None:
        for name in ("d_model", "heads", "layers", "conv_kernel_text", "conv_kernel_audio", "conv_kernel_vision"):
            if getattr(self, name) < 1:
                raise ConfigError(f"config key '{name}' must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.heads:
            raise ConfigError(f"d_model ({self.d_model}) must be divisible by heads ({self.heads})")


#: The authors' ``__MULT`` dataset parameters, MOSI (also the class defaults).
MULT_MOSI = MultConfig(**dataset_fields(MOSI))

MULT_MOSEI = MultConfig(
    **dataset_fields(MOSEI),
    d_model=30,
    heads=6,
    conv_kernel_text=5,
    conv_kernel_audio=1,
    conv_kernel_vision=3,
    text_dropout=0.3,
    attn_dropout=0.4,
    attn_dropout_audio=0.0,
    attn_dropout_vision=0.0,
    relu_dropout=0.0,
    embed_dropout=0.0,
    res_dropout=0.0,
    output_dropout=0.5,
    batch_size=32,
    learning_rate=5e-4,
    grad_clip=0.6,
)

MULT_SIMS = MultConfig(
    **dataset_fields(SIMS),
    d_model=50,
    heads=10,
    layers=2,
    conv_kernel_text=5,
    conv_kernel_audio=1,
    conv_kernel_vision=1,
    text_dropout=0.3,
    attn_dropout=0.2,
    attn_dropout_audio=0.1,
    attn_dropout_vision=0.0,
    relu_dropout=0.0,
    embed_dropout=0.1,
    res_dropout=0.2,
    output_dropout=0.1,
    batch_size=16,
    learning_rate=2e-3,
    grad_clip=0.6,
    plateau_patience=10,
)

#: CPU demo: MOSI's MulT on the synthetic ``demo`` preset with the frozen MiniLM, narrower and shallower,
#: one mini-batch per step (gradient accumulation over 8 would leave a few dozen steps in 5 epochs).
MULT_DEMO = MultConfig(
    **dataset_fields(DEMO),
    d_model=30,
    heads=6,
    layers=2,
    batch_size=32,
    batches_per_step=1,
    early_stop=3,
)

#: Tests: tiny widths on the ``tiny`` synthetic preset.
MULT_TINY = MultConfig(
    **dataset_fields(TINY),
    d_model=8,
    heads=2,
    layers=1,
    batch_size=8,
    batches_per_step=1,
    early_stop=2,
)

MULT_PRESETS: dict[str, MultConfig] = {
    "mosi": MULT_MOSI, "mosei": MULT_MOSEI, "sims": MULT_SIMS, "demo": MULT_DEMO, "tiny": MULT_TINY,
}
