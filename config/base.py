"""The experiment configuration: one typed, frozen dataclass holding every setting of a run.

Defaults are the reference implementation's EMT-DLFR values for CMU-MOSI (reference-behaviour §2);
the per-dataset presets in :mod:`config.presets` override what differs. Command-line flags and
``--set key=value`` pairs are applied with :func:`override`, which refuses unknown keys and values of the
wrong type instead of silently falling back to a default (the reference's ``Storage`` returned False).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from typing import Any, Optional

from utils.errors import ConfigError

#: Modalities in the order the reference uses everywhere: (text, audio, vision).
MODALITIES = ("text", "audio", "vision")

#: numpy seeds of the static missing masks, per modality (reference §3.2).
REFERENCE_MISSING_SEEDS = (111, 1111, 11111)

#: Training seeds used when none are given (reference: num_seeds=None).
REFERENCE_TRAIN_SEEDS = (111, 1111, 11111)

#: Sweep grids of run_once.py (reference §1): 0.0..1.0 for MOSI/MOSEI, 0.0..0.5 for SIMS.
FULL_RATE_GRID = tuple(round(0.1 * i, 1) for i in range(11))
SIMS_RATE_GRID = tuple(round(0.1 * i, 1) for i in range(6))


@dataclass(frozen=True)
class Config:
    """Every setting of one EMT-DLFR run. Field names follow the reference where it has one."""

    # --- dataset -----------------------------------------------------------------------------
    dataset: str = "mosi"
    #: Path of the feature pickle relative to a data root (the loader also tries ``Datasets/<this>``).
    data_file: str = "MOSI/Processed/unaligned_50.pkl"
    #: SIMS only: the z-normalised copy written by preprocess/normalize_sims.py.
    normalized_data_file: Optional[str] = None
    use_normalized_data: bool = False
    language: str = "en"
    #: (text, audio, vision) input widths of the official files. Audio and vision are checked against the
    #: data file; the text entry only records the reference's BERT width: the model takes the text width
    #: from the loaded encoder (see ``text_hidden_size`` to pin it).
    feature_dims: tuple[int, int, int] = (768, 5, 20)
    #: Regression label range of the dataset, used to validate files.
    label_range: tuple[float, float] = (-3.0, 3.0)
    #: Which metric family utils.metrics applies: "mosi" (also MOSEI) or "sims".
    metric_set: str = "mosi"
    sweep_rates: tuple[float, ...] = FULL_RATE_GRID
    missing_seeds: tuple[int, int, int] = REFERENCE_MISSING_SEEDS
    #: Off by default (reference: static masks). When True the training split's masks are redrawn every epoch.
    redraw_train_masks: bool = False
    #: "static" (reference) or "lnln": each training sample and modality gets its own rate drawn from U[0, 1).
    train_missing_protocol: str = "static"

    # --- text encoder ------------------------------------------------------------------------
    #: Local folder, hub name, "minilm" (the offline pretrained MiniLM), or "random:<size>" (random init).
    bert: str = "bert-base-uncased"
    use_finetune: bool = True
    #: None (default): any hidden size works, the projections and heads follow the encoder. An integer pins
    #: it: an encoder of another hidden size is refused before training (e.g. 768 to insist on bert-base).
    text_hidden_size: Optional[int] = None

    # --- audio / vision encoders (§4.2) --------------------------------------------------------
    a_lstm_hidden_size: int = 32
    audio_out: int = 16
    a_lstm_layers: int = 1
    a_lstm_dropout: float = 0.0
    v_lstm_hidden_size: int = 64
    video_out: int = 32
    v_lstm_layers: int = 1
    v_lstm_dropout: float = 0.0

    # --- EMT (§4.3) ----------------------------------------------------------------------------
    fusion: str = "emt"
    d_model: int = 128
    fusion_layers: int = 3
    heads: int = 4
    learnable_pos_emb: bool = False
    max_seq_len: int = 1024
    emb_dropout: float = 0.0
    attn_dropout: float = 0.3
    ff_dropout: float = 0.1
    ff_expansion: int = 4
    mpu_share: bool = True
    modality_share: bool = True
    layer_share: bool = True
    attn_act_fn: str = "tanh"

    # --- DLFR (§4.4) and prediction head ------------------------------------------------------
    gmc_tokens_pred_dim: int = 128
    text_pred_dim: int = 256
    audio_pred_dim: int = 8
    video_pred_dim: int = 16
    use_attraction: bool = True
    use_reconstruction: bool = True
    loss_attra_weight: float = 1.0
    loss_recon_weight: float = 1.0
    post_fusion_dim: int = 256
    post_fusion_dropout: float = 0.3

    # --- optimisation (§6) ---------------------------------------------------------------------
    batch_size: int = 32
    learning_rate_bert: float = 5e-5
    learning_rate_audio: float = 1e-3
    learning_rate_video: float = 1e-4
    learning_rate_other: float = 1e-3
    weight_decay_bert: float = 1e-3
    weight_decay_audio: float = 1e-2
    weight_decay_video: float = 1e-3
    weight_decay_other: float = 1e-3
    update_epochs: int = 4
    #: Off by default (reference): the trailing 1-3 batches of an epoch are never stepped.
    step_trailing_batches: bool = False
    early_stop: int = 8
    #: Validation metric for model selection. "Loss" (reference, minimised); any metric key works.
    key_eval: str = "Loss"
    #: Safety cap on epochs; None = unbounded, as the reference.
    max_epochs: Optional[int] = None
    num_workers: int = 0

    # --- run-time ------------------------------------------------------------------------------
    device: str = "cpu"
    #: None (fp32, reference) or "bf16" autocast on GPUs.
    amp: Optional[str] = None
    deterministic: bool = False
    #: torch.compile the model's forward. Off: measured no faster on the CPU (docs/BENCHMARKS.md).
    compile: bool = False
    #: The fast implementation (both views stacked, padding skipped, fused attention and Adam kernels), the same
    #: results up to float rounding and dropout draws; False = the reference-like computation (one padded view at
    #: a time, explicit softmax attention, per-parameter Adam), about 2.5x slower (docs/BENCHMARKS.md).
    fast_path: bool = True
    checkpoint_every_epoch: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @property
    def variant(self) -> str:
        """The paper's name of this objective: EMT-DLFR, EMT-HLFR, EMT-LLFR or EMT."""
        if self.use_attraction and self.use_reconstruction:
            return "emt-dlfr"
        if self.use_attraction:
            return "emt-hlfr"
        if self.use_reconstruction:
            return "emt-llfr"
        return "emt"


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}
_TYPE_HINTS = typing.get_type_hints(Config)


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Convert ``value`` (often a string from the command line) to the field's declared type."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _coerce(key, value, inner[0])
    if origin is tuple:
        items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(key, v, args[0]) for v in items)
        if len(items) != len(args):
            raise ConfigError(f"config key '{key}': expected {len(args)} values, got {value!r}")
        return tuple(_coerce(key, v, a) for v, a in zip(items, args))
    if hint is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"config key '{key}': expected true/false, got {value!r}")
    if hint in (int, float, str):
        if hint is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"config key '{key}': expected an integer, got {value!r}")
        if hint is int and isinstance(value, bool):
            raise ConfigError(f"config key '{key}': expected an integer, got {value!r}")
        try:
            return hint(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key '{key}': expected {hint.__name__}, got {value!r}") from None
    return value


def override(cfg: Config, updates: dict[str, Any]) -> Config:
    """Return ``cfg`` with ``updates`` applied; unknown keys and ill-typed values raise ConfigError."""
    unknown = sorted(set(updates) - set(_FIELDS))
    if unknown:
        raise ConfigError(
            f"unknown config key(s): {', '.join(unknown)} (known keys: {', '.join(sorted(_FIELDS))})"
        )
    coerced = {k: _coerce(k, v, _TYPE_HINTS[k]) for k, v in updates.items()}
    new = dataclasses.replace(cfg, **coerced)
    validate(new)
    return new


def parse_set_pairs(pairs: list[str]) -> dict[str, str]:
    """Parse ``["key=value", ...]`` from ``--set``; a pair without '=' is an error."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def validate(cfg: Config) -> None:
    """Range checks that no type annotation expresses."""
    if cfg.d_model % cfg.heads:
        raise ConfigError(f"d_model ({cfg.d_model}) must be divisible by heads ({cfg.heads})")
    for name in ("batch_size", "update_epochs", "early_stop", "fusion_layers", "heads", "d_model"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"config key '{name}' must be >= 1, got {getattr(cfg, name)}")
    if cfg.max_epochs is not None and cfg.max_epochs < 1:
        raise ConfigError(f"config key 'max_epochs' must be >= 1, got {cfg.max_epochs}")
    if cfg.text_hidden_size is not None and cfg.text_hidden_size < 1:
        raise ConfigError(
            f"config key 'text_hidden_size' must be a positive BERT hidden size or none, got {cfg.text_hidden_size}"
        )
    for rate in cfg.sweep_rates:
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"missing rate {rate} is outside [0, 1]")
    if cfg.train_missing_protocol not in ("static", "lnln"):
        raise ConfigError(
            f"train_missing_protocol must be 'static' or 'lnln', got {cfg.train_missing_protocol!r}"
        )
    if cfg.amp not in (None, "bf16"):
        raise ConfigError(f"amp must be None or 'bf16', got {cfg.amp!r}")
    if cfg.metric_set not in ("mosi", "sims"):
        raise ConfigError(f"metric_set must be 'mosi' or 'sims', got {cfg.metric_set!r}")
