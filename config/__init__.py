"""Typed, frozen experiment configuration (see config.base) and the per-dataset presets."""

from config.base import MODALITIES, Config, override, parse_set_pairs
from config.presets import PRESETS, get_config

__all__ = ["MODALITIES", "Config", "PRESETS", "get_config", "override", "parse_set_pairs"]
