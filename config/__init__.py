"""Typed, frozen experiment configuration (see config.base), the per-dataset presets of each model."""

from config.base import (
    MODALITIES,
    MODEL_NAMES,
    MODEL_TITLES,
    RUNTIME_FIELDS,
    Config,
    ExperimentConfig,
    config_diff,
    override,
    parse_set_pairs,
)
from config.models import DEFAULT_MODEL, MODEL_PRESETS, get_config
from config.mult import MultConfig
from config.presets import PRESETS

__all__ = [
    "DEFAULT_MODEL", "MODALITIES", "MODEL_NAMES", "MODEL_PRESETS", "MODEL_TITLES", "RUNTIME_FIELDS", "Config",
    "ExperimentConfig", "MultConfig", "PRESETS", "config_diff", "get_config", "override", "parse_set_pairs",
]
