"""The experiment configuration: one typed, frozen dataclass holding every setting of a run.

:class:`ExperimentConfig` holds what every model shares (data, missing protocol, text encoder, training
loop, run-time); each model's class adds its own fields: :class:`Config` (EMT-DLFR) here, the baselines'
in their own modules (:mod:`config.mult`). Defaults are the reference implementation's EMT-DLFR values for
CMU-MOSI (docs/REFERENCE.md §2); the per-dataset presets in :mod:`config.presets` override what differs. Command-line flags and
``--set key=value`` pairs are applied with :func:`override`, which refuses unknown keys and values of the
wrong type instead of silently falling back to a default (the reference's ``Storage`` returned False).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

from data.missing import check_missing_rate, check_protocol
from utils.errors import ConfigError

#: Modalities in the order the reference uses everywhere: (text, audio, vision).
MODALITIES = ("text", "audio", "vision")

#: numpy seeds of the static missing masks, per modality (docs/REFERENCE.md §3.2).
REFERENCE_MISSING_SEEDS = (111, 1111, 11111)

#: Training seeds used when none are given (reference: num_seeds=None).
REFERENCE_TRAIN_SEEDS = (111, 1111, 11111)

#: Sweep grids of run_once.py (docs/REFERENCE.md §1): 0.0..1.0 for MOSI/MOSEI, 0.0..0.5 for SIMS.
#: The fusion strategy of the paper; results of any other strategy go to a folder named after it.
DEFAULT_FUSION = "emt"
FULL_RATE_GRID = tuple(round(0.1 * i, 1) for i in range(11))
SIMS_RATE_GRID = tuple(round(0.1 * i, 1) for i in range(6))

#: The device strings a config accepts.
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


#: Names of the models run.py trains (``--model``), in the order of the paper's tables.
MODEL_NAMES = ("mult", "tfr_net", "emt-dlfr")
#: The paper's names of the models.
MODEL_TITLES = {"mult": "MulT", "tfr_net": "TFR-Net", "emt-dlfr": "EMT-DLFR"}

#: Values of ``attention_kernel`` (models/execution.py names the kernels).
ATTENTION_KERNEL_CHOICES = ("auto", "explicit", "lean", "sdpa")

#: Names the reference gives config fields that are called otherwise here; :func:`override` accepts both.
FIELD_ALIASES = {"update_epochs": "batches_per_step"}

#: Validation keys every model's objective reports besides the metrics: the mean of its loss term, and the
#: incomplete view's task loss (trains/objective.py).
LOSS_KEYS = ("Loss", "Loss(pred_m)")

#: How the optimiser steps inside a group of ``batches_per_step`` mini-batches whose gradients are summed.
#: "group": once, after the group's last batch (EMT-DLFR's trainer). "mmsa": after every batch, with the
#: gradients summed since the group's start, and once more after the group's last batch (the baselines'
#: trainers, inherited from MMSA; docs/REFERENCE.md §8).
STEP_SCHEDULES = ("group", "mmsa")


@dataclass(frozen=True)
class ExperimentConfig:
    """The settings every model shares: data, missing protocol, text encoder, training loop, run-time.

    Each model's config (:class:`Config` for EMT-DLFR, :class:`config.mult.MultConfig`, ...) adds its own
    network and optimiser fields; ``MODEL`` names the model (``--model``).
    """

    MODEL: ClassVar[str] = ""

    # --- dataset -----------------------------------------------------------------------------
    dataset: str = "mosi"
    #: Path of the feature pickle relative to a data root (the loader also tries ``Datasets/<this>``).
    data_file: str = "MOSI/Processed/unaligned_50.pkl"
    #: SIMS only: the z-normalised copy written by preprocess/normalize_sims.py.
    normalized_data_file: Optional[str] = None
    use_normalized_data: bool = False
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

    # --- training loop (§6) --------------------------------------------------------------------
    batch_size: int = 32
    #: Mini-batches whose gradients are summed into one optimiser step (the reference's ``update_epochs``, a
    #: name :func:`override` accepts too).
    batches_per_step: int = 4
    #: Within a group: "group" steps once at its end, "mmsa" as the baselines' trainers (see STEP_SCHEDULES).
    step_schedule: str = "group"
    #: Off by default (reference): the trailing 1-3 batches of an epoch are never stepped ("group" schedule).
    step_trailing_batches: bool = False
    #: Clip every gradient element to [-v, v] before each step (the baselines' clip_grad_value_); None: no clipping.
    grad_clip: Optional[float] = None
    #: ReduceLROnPlateau patience on the validation loss (factor 0.1, the baselines' scheduler); None: constant rates.
    plateau_patience: Optional[int] = None
    early_stop: int = 8
    #: Validation metric for model selection. "Loss" (reference, minimised); any metric key works.
    key_eval: str = "Loss"
    #: Decimals the validation "Loss" is rounded to before model selection and the scheduler read it
    #: (the baselines' trainers round to 4); None: not rounded (EMT-DLFR's trainer).
    eval_loss_decimals: Optional[int] = None
    #: Safety cap on epochs; None = unbounded, as the reference.
    max_epochs: Optional[int] = None
    num_workers: int = 0
    #: Off by default (each loader shuffles from its own seeded generator, so an epoch-level resume is exact).
    #: True = the authors' random stream (EMT-DLFR only): their initial weights for the seed
    #: (models/reference_init.py) and shuffles drawn from the global torch generator when each loader is
    #: iterated, as their loaders do.
    faithful_rng: bool = False

    # --- run-time ------------------------------------------------------------------------------
    #: "auto" (the first CUDA device, else the CPU), "cpu", "cuda" or "cuda:N" (utils/device.py).
    device: str = "auto"
    #: TF32 for float32 matmuls and cuDNN on GPUs, as torch 1.7 (the authors') did by default; False = full
    #: float32 (utils/device.py). No effect on a CPU.
    tf32: bool = True
    #: None (fp32, reference) or "bf16" autocast on GPUs.
    amp: Optional[str] = None
    deterministic: bool = False
    #: torch.compile the model's forward. Off by default: see docs/BENCHMARKS.md, compile vs eager.
    compile: bool = False
    #: The fast implementation (both views stacked, padding skipped, fused attention and Adam kernels), the same
    #: results up to float rounding and dropout draws; False = the reference-like computation (one padded view at
    #: a time, explicit softmax attention, per-parameter Adam). See models/execution.py and docs/BENCHMARKS.md.
    fast_path: bool = True
    #: Attention kernel: "auto" (lean on a CPU, sdpa elsewhere; explicit without fast_path), "explicit",
    #: "lean" or "sdpa" (models/execution.py).
    attention_kernel: str = "auto"
    checkpoint_every_epoch: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @property
    def variant(self) -> str:
        """The name of this run's model (and, for EMT-DLFR, of its objective): the results folder's name."""
        return self.MODEL

    @property
    def run_name(self) -> str:
        """The results folder's name (``results/<dataset>/<run_name>``): the variant, and for EMT-DLFR its
        fusion strategy when that is not the paper's, so that no two kinds of run share a folder."""
        return self.variant

    def check_model(self) -> None:
        """Range checks of the model's own fields (ConfigError); see :func:`validate`."""


#: The fields a dataset preset sets for every model (the data, its encoder, its sweep grid, and the
#: MOSEI-sized run-time defaults); :func:`dataset_fields` copies them from the EMT-DLFR presets.
DATASET_FIELDS = (
    "dataset", "data_file", "normalized_data_file", "feature_dims", "label_range", "metric_set",
    "sweep_rates", "bert", "max_epochs", "checkpoint_every_epoch",
)


def dataset_fields(cfg: ExperimentConfig) -> dict[str, Any]:
    """The dataset part of ``cfg`` (see :data:`DATASET_FIELDS`), to build another model's preset from."""
    return {name: getattr(cfg, name) for name in DATASET_FIELDS}


@dataclass(frozen=True)
class Config(ExperimentConfig):
    """Every setting of one EMT-DLFR run. Field names follow the reference where it has one."""

    MODEL: ClassVar[str] = "emt-dlfr"

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
    fusion: str = DEFAULT_FUSION
    d_model: int = 128
    fusion_layers: int = 3
    heads: int = 4
    #: Fixed sinusoids in the reference config of every dataset (a (1, max_seq_len, D) parameter when True).
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
    learning_rate_bert: float = 5e-5
    learning_rate_audio: float = 1e-3
    learning_rate_video: float = 1e-4
    learning_rate_other: float = 1e-3
    weight_decay_bert: float = 1e-3
    weight_decay_audio: float = 1e-2
    weight_decay_video: float = 1e-3
    weight_decay_other: float = 1e-3

    def check_model(self) -> None:
        for name in ("fusion_layers", "heads", "d_model"):
            if getattr(self, name) < 1:
                raise ConfigError(f"config key '{name}' must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.heads:
            raise ConfigError(f"d_model ({self.d_model}) must be divisible by heads ({self.heads})")

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

    @property
    def run_name(self) -> str:
        """The results folder's name: the variant, plus the fusion strategy when it is not the EMT
        (``emt-dlfr``, ``emt-llfr``, ``emt-dlfr-ooll``, ...), so that no two of them share a folder."""
        return self.variant if self.fusion == DEFAULT_FUSION else f"{self.variant}-{self.fusion}"


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """Declared type of every field of a config class."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in typing.get_type_hints(cls).items() if k in names}


#: Fields that change how fast a run goes, or what it checks, but not what it computes: left out of the
#: results' fingerprint and of :func:`config_diff` (``text_hidden_size`` only refuses an encoder, so results
#: made without it stay valid; ``fast_path`` and ``attention_kernel`` change the implementation, not the
#: computation).
RUNTIME_FIELDS = (
    "device", "tf32", "num_workers", "checkpoint_every_epoch", "text_hidden_size", "fast_path", "attention_kernel",
)


def config_diff(saved: dict, current: dict) -> list[str]:
    """The fields, other than :data:`RUNTIME_FIELDS`, whose values differ between two config dicts (a
    field one of them lacks differs); values are compared as JSON, so tuples equal the lists JSON reads."""
    fields = (saved.keys() | current.keys()) - set(RUNTIME_FIELDS)

    def as_json(value: Any) -> str:
        return json.dumps(value, default=str, sort_keys=True)

    return sorted(k for k in fields if k not in saved or k not in current or as_json(saved[k]) != as_json(current[k]))


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


def override(cfg: ExperimentConfig, updates: dict[str, Any]) -> ExperimentConfig:
    """Return ``cfg`` with ``updates`` applied; unknown keys and ill-typed values raise ConfigError."""
    hints = _type_hints(type(cfg))
    for alias, name in FIELD_ALIASES.items():
        if alias in updates:
            if name in updates:
                raise ConfigError(f"config keys '{alias}' and '{name}' name the same setting: give one")
            updates = {name if k == alias else k: v for k, v in updates.items()}
    unknown = sorted(set(updates) - set(hints))
    if unknown:
        raise ConfigError(
            f"unknown config key(s) for model {cfg.MODEL}: {', '.join(unknown)} "
            f"(known keys: {', '.join(sorted(hints))})"
        )
    coerced = {k: _coerce(k, v, hints[k]) for k, v in updates.items()}
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


def check_device_spec(spec: str) -> None:
    """Refuse a device string other than auto, cpu, cuda, cuda:N (resolved by utils.device.resolve_device)."""
    if not DEVICE_PATTERN.match(str(spec)):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {spec!r}")


def validate(cfg: ExperimentConfig) -> None:
    """Range checks that no type annotation expresses: the shared fields here, the model's in ``check_model``."""
    for name in ("batch_size", "batches_per_step", "early_stop"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"config key '{name}' must be >= 1, got {getattr(cfg, name)}")
    if cfg.max_epochs is not None and cfg.max_epochs < 1:
        raise ConfigError(f"config key 'max_epochs' must be >= 1, got {cfg.max_epochs}")
    if cfg.text_hidden_size is not None and cfg.text_hidden_size < 1:
        raise ConfigError(
            f"config key 'text_hidden_size' must be a positive BERT hidden size or none, got {cfg.text_hidden_size}"
        )
    for rate in cfg.sweep_rates:
        check_missing_rate(rate)
    check_protocol(cfg.train_missing_protocol)
    check_device_spec(cfg.device)
    if cfg.amp not in (None, "bf16"):
        raise ConfigError(f"amp must be None or 'bf16', got {cfg.amp!r}")
    if cfg.faithful_rng and (cfg.MODEL != "emt-dlfr" or cfg.fusion != "emt"):
        what = f"fusion {cfg.fusion!r}" if cfg.MODEL == "emt-dlfr" else f"model {cfg.MODEL!r}"
        raise ConfigError(
            f"faithful_rng reproduces the authors' EMT-DLFR initialisation; {what} has no counterpart in "
            "their EMT-DLFR code (use EMT-DLFR with --fusion emt, or drop --faithful-rng)"
        )
    if cfg.attention_kernel not in ATTENTION_KERNEL_CHOICES:
        raise ConfigError(
            f"attention_kernel must be one of {', '.join(ATTENTION_KERNEL_CHOICES)}, got {cfg.attention_kernel!r}"
        )
    if cfg.metric_set not in ("mosi", "sims"):
        raise ConfigError(f"metric_set must be 'mosi' or 'sims', got {cfg.metric_set!r}")
    if cfg.key_eval not in LOSS_KEYS:
        from utils.metrics import MOSI_KEYS, SIMS_KEYS  # scikit-learn: imported only when a metric is named

        known = (*LOSS_KEYS, *(SIMS_KEYS if cfg.metric_set == "sims" else MOSI_KEYS))
        if cfg.key_eval not in known:
            raise ConfigError(f"key_eval {cfg.key_eval!r} is not a validation metric (choose from: {', '.join(known)})")
    if cfg.step_schedule not in STEP_SCHEDULES:
        raise ConfigError(f"step_schedule must be one of {', '.join(STEP_SCHEDULES)}, got {cfg.step_schedule!r}")
    if cfg.grad_clip is not None and cfg.grad_clip <= 0:
        raise ConfigError(f"config key 'grad_clip' must be > 0 or none, got {cfg.grad_clip}")
    if cfg.plateau_patience is not None and cfg.plateau_patience < 0:
        raise ConfigError(f"config key 'plateau_patience' must be >= 0 or none, got {cfg.plateau_patience}")
    cfg.check_model()
