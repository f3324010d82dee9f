"""Which config class and presets each ``--model`` has; :func:`get_config` is the one way to a config.

A model is registered here by its presets (dataset name -> frozen config); models listed in
:data:`config.base.MODEL_NAMES` without presets yet are refused with a clear error.
"""

from __future__ import annotations

from config.base import MODEL_NAMES, ExperimentConfig, override
from config.mult import MULT_PRESETS
from config.tfr_net import TFR_NET_PRESETS
from config.presets import PRESETS
from utils.errors import ConfigError

#: The default model (the paper's).
DEFAULT_MODEL = "emt-dlfr"

#: model name -> dataset name -> preset.
MODEL_PRESETS: dict[str, dict[str, ExperimentConfig]] = {"emt-dlfr": PRESETS, "mult": MULT_PRESETS, "tfr_net": TFR_NET_PRESETS}


def get_config(dataset: str, model: str = DEFAULT_MODEL, **overrides) -> ExperimentConfig:
    """The ``model``'s preset for ``dataset`` with ``overrides`` applied (unknown names are a ConfigError)."""
    name = model.lower()
    if name not in MODEL_NAMES:
        raise ConfigError(f"unknown model {model!r} (choose from: {', '.join(MODEL_NAMES)})")
    if name not in MODEL_PRESETS:
        raise ConfigError(f"model {name!r} is not available yet in this version (available: {', '.join(MODEL_PRESETS)})")
    presets = MODEL_PRESETS[name]
    key = dataset.lower()
    if key not in presets:
        raise ConfigError(f"unknown dataset {dataset!r} (choose from: {', '.join(presets)})")
    return override(presets[key], overrides) if overrides else presets[key]
