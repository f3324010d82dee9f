"""Read and write checkpoints in the layout of the reference implementation (reference-behaviour §1, §4).

The reference saves ``AMIO.state_dict()``: the network sits under ``Model.``, its ``BertTextEncoder`` keeps
the HF model as ``.model`` (``Model.text_model.model.embeddings...``), and every other module name is the
one this project uses too (``audio_model.rnn``, ``audio_model.linear_1``, ``proj_text``,
``fusion.mpus.{layer}.{modality}.{direction}.layers.0.{0,1,2}...``, ``fusion.pools.{layer}.attention.{0,2}``,
``*_projector.net``, ``*_predictor.net``, ``recon_*``, ``post_fusion_layer_{1,2,3}``).

The released code's exact key names are not available here: the layout is RECONSTRUCTED from the
description of the code. All naming knowledge therefore lives in two tables, :data:`KEY_RULES` and
:data:`IGNORED_REFERENCE_KEYS`; if a real checkpoint disagrees, correct the tables, not the code.

A shared module appears in a state_dict once per alias (with the shipped sharing, the one CST appears under
every ``mpus.{layer}.{modality}.{direction}`` and the one pool under every ``pools.{layer}``).
:func:`to_reference_state_dict` writes all aliases; :func:`load_reference_state_dict` requires all aliases
of one tensor to hold the same values.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

import torch
from torch import nn

from utils.errors import CheckpointError

#: (our key template, reference key template); ``{name}`` matches one or more characters and carries over.
#: The first rule whose template matches wins, in either direction.
KEY_RULES: list[tuple[str, str]] = [
    ("text_model.{rest}", "Model.text_model.model.{rest}"),
    ("{rest}", "Model.{rest}"),
]

#: Reference keys with no counterpart here, skipped on loading: buffers that older transformers saved
#: (BERT's position / token type ids) and a sinusoidal positional table registered as a buffer.
IGNORED_REFERENCE_KEYS: list[str] = [
    r"^Model\.text_model\.model\.embeddings\.position_ids$",
    r"^Model\.text_model\.model\.embeddings\.token_type_ids$",
    r"^Model\.fusion\.(.+\.)?pe$",
]

#: How many offending keys an error message lists.
SHOWN_KEYS = 8

TABLE_HINT = (
    "The reference key layout is reconstructed (models/reference_checkpoint.py, KEY_RULES and "
    "IGNORED_REFERENCE_KEYS); correct the tables if the released code names its keys differently, "
    "and check that the config matches the checkpoint's dataset."
)


def _template_regex(template: str) -> re.Pattern:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>.+)", re.escape(template))
    return re.compile(f"^{pattern}$")


_RULES = [(_template_regex(ours), ours, _template_regex(ref), ref) for ours, ref in KEY_RULES]
_IGNORED = [re.compile(p) for p in IGNORED_REFERENCE_KEYS]


def to_reference_key(key: str) -> str:
    """Our state_dict key -> the reference's."""
    for ours_re, _, _, ref in _RULES:
        match = ours_re.match(key)
        if match:
            return ref.format(**match.groupdict())
    raise CheckpointError(f"no rule in KEY_RULES maps key {key!r}")


def from_reference_key(key: str) -> Optional[str]:
    """The reference's state_dict key -> ours (None when no rule matches)."""
    for _, ours, ref_re, _ in _RULES:
        match = ref_re.match(key)
        if match:
            return ours.format(**match.groupdict())
    return None


def to_reference_state_dict(model: nn.Module) -> "OrderedDict[str, torch.Tensor]":
    """``model``'s state in the reference layout, every alias of a shared module included."""
    return OrderedDict((to_reference_key(k), v) for k, v in model.state_dict().items())


@dataclass
class LoadReport:
    """What :func:`load_reference_state_dict` did."""

    loaded_keys: int
    unique_tensors: int
    alias_groups: int
    ignored_keys: list[str] = field(default_factory=list)


def _listing(keys) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - SHOWN_KEYS} more)" if len(keys) > SHOWN_KEYS else ""
    return ", ".join(keys[:SHOWN_KEYS]) + more


def _alias_groups(model: nn.Module) -> list[list[str]]:
    """Our state_dict keys grouped by the tensor they name (one group per shared tensor)."""
    groups: dict[int, list[str]] = {}
    for key, tensor in model.state_dict(keep_vars=True).items():
        groups.setdefault(id(tensor), []).append(key)
    return list(groups.values())


def load_reference_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> LoadReport:
    """Load a reference-layout state dict into ``model``; CheckpointError on any key, shape or alias mismatch."""
    ignored = [k for k in state_dict if any(p.match(k) for p in _IGNORED)]
    mapped: dict[str, torch.Tensor] = {}
    unmappable = []
    for ref_key, value in state_dict.items():
        if ref_key in ignored:
            continue
        key = from_reference_key(ref_key)
        if key is None:
            unmappable.append(ref_key)
        else:
            mapped[key] = value
    expected = model.state_dict()
    missing = [to_reference_key(k) for k in expected if k not in mapped]
    unexpected = unmappable + [to_reference_key(k) for k in mapped if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_listing(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
        raise CheckpointError(f"checkpoint does not fit the model: {'; '.join(parts)}. {TABLE_HINT}")
    wrong_shapes = [
        f"{to_reference_key(k)} {tuple(v.shape)} (model {tuple(expected[k].shape)})"
        for k, v in mapped.items()
        if tuple(v.shape) != tuple(expected[k].shape)
    ]
    if wrong_shapes:
        raise CheckpointError(f"checkpoint shapes do not fit the model: {_listing(wrong_shapes)}. {TABLE_HINT}")
    groups = _alias_groups(model)
    for group in groups:
        first = mapped[group[0]]
        differing = [k for k in group[1:] if not torch.equal(mapped[k], first)]
        if differing:
            raise CheckpointError(
                f"checkpoint holds different values under aliases of one shared tensor: "
                f"{to_reference_key(group[0])} vs {_listing(to_reference_key(k) for k in differing)}. "
                "The model's sharing switches (mpu_share, modality_share, layer_share) must match the checkpoint's."
            )
    model.load_state_dict(mapped, strict=True)
    return LoadReport(
        loaded_keys=len(mapped),
        unique_tensors=len(groups),
        alias_groups=sum(len(g) > 1 for g in groups),
        ignored_keys=ignored,
    )


def load_reference_checkpoint(model: nn.Module, path: str | Path) -> LoadReport:
    """Read a checkpoint file saved by the reference (``torch.save(model.state_dict())``) into ``model``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many types (pickle, zip, runtime) for unreadable files
        raise CheckpointError(f"cannot read checkpoint {path}: {type(err).__name__}: {err}") from None
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(f"checkpoint {path} is not a state dict (a mapping of names to tensors)")
    return load_reference_state_dict(model, state_dict)
