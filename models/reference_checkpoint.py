"""Read and write checkpoints in the layout of the authors' implementation (docs/REFERENCE.md §4).

The reference saves ``AMIO.state_dict()``: the network sits under ``Model.``, its ``BertTextEncoder`` keeps
the HF model as ``.model`` (``Model.text_model.model.embeddings...``). Each model's naming knowledge lives
in one :class:`KeyTable` of :data:`KEY_TABLES` (rules that map our keys to the reference's and back, and the
reference keys to skip); if a real checkpoint disagrees, correct its table, not the code.

* ``emt-dlfr``: the fusion keeps its CSTs as ``fusion.mpus.{layer}.{modality}.{direction}.layers.0.{0,1,2}...``
  (direction 0: local tokens <- GMC, 1: GMC <- local tokens; ours: ``fusion.layers.{layer}.{local,global}.
  {modality}``), its pooling MLPs as ``fusion.attn_pools.{layer}.attention.{0,2}`` (ours ``fusion.pools``), its
  positional table as ``fusion.pos_embed.pe`` (1, 1024, D) (ours ``fusion.pos_emb.pe``; a buffer, or a
  parameter when learnable); the vision modality is ``video`` (``video_model``, ``proj_video``,
  ``video_projector``, ``recon_video``), the GMC's SimSiam heads are ``gmc_tokens_*``; every other module
  name below ``Model.`` is the one this project uses too (``audio_model.rnn``, ``proj_text``,
  ``*_projector.net``, ``*_predictor.net``, ``post_fusion_layer_{1,2,3}``). Checked against the released
  code's key list of its MOSI model (tests/fixtures/emt_dlfr_mosi_state_dict_keys.tsv), and a model loaded
  from it gives the outputs of the released code with the same weights (tests/test_reference_outputs.py).
* ``mult``: the released code's key list (tests/fixtures/mult_mosi_state_dict_keys.tsv); module names
  below ``Model.`` are this project's too; its transformers carry a ``version`` buffer without a
  counterpart, skipped on loading.
* ``tfr_net``: the released code's key list (tests/fixtures/tfr_net_mosi_state_dict_keys.tsv). Its
  sub-networks sit in selector wrappers (``align_subnet.Model.``, ``fusion_subnet.Model.``,
  ``generator_t.Model.linear.``) that this project does not have; its transformers carry two buffers
  without a counterpart (``version`` and the positional embedding's ``_float_tensor``), skipped on loading.

A shared module appears in a state_dict once per alias (with EMT-DLFR's shipped sharing, the one CST appears
under every ``mpus.{layer}.{modality}.{direction}`` and the one pool under every ``attn_pools.{layer}``;
ours under every ``layers.{layer}.{local,global}.{modality}`` and ``pools.{layer}``).
:func:`to_reference_state_dict` writes all aliases; :func:`load_reference_state_dict` requires all aliases
of one tensor to hold the same values. EMT-DLFR's fixed positional table is not part of this model's own
``state_dict()`` (a non-persistent buffer); it is written to and read from the reference layout all the same.
"""

from __future__ import annotations

import functools
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

import torch
from torch import nn

from utils.errors import CheckpointError

#: BERT buffers that older transformers versions saved; no counterpart here.
BERT_BUFFER_KEYS = [
    r"^Model\.text_model\.model\.embeddings\.position_ids$",
    r"^Model\.text_model\.model\.embeddings\.token_type_ids$",
]

#: Every reference model keeps its ``BertTextEncoder``'s HF model as ``.model`` under ``Model.text_model``.
BERT_RULE = ("text_model.{rest}", "Model.text_model.model.{rest}")
#: A module named as this project names it, below the reference's ``Model.`` prefix.
SAME_NAME_RULE = ("{rest}", "Model.{rest}")

#: Our name of the fixed positional table, a buffer kept out of our state_dict but saved by the reference.
POSITION_TABLE = "pos_emb.pe"

#: How many offending keys an error message lists.
SHOWN_KEYS = 8


#: The template field that spans several dotted components.
REST = "rest"


def _template_regex(template: str) -> re.Pattern:
    def field(match: re.Match) -> str:
        name = match.group(1)
        return f"(?P<{name}>.+)" if name == REST else f"(?P<{name}>[^.]+)"

    pattern = re.sub(r"\\\{(\w+)\\\}", field, re.escape(template))
    return re.compile(f"^{pattern}$")


@dataclass(frozen=True)
class KeyTable:
    """One model's reference key layout.

    ``rules``: (our key template, reference key template); ``{rest}`` matches one or more characters, any
    other ``{name}`` one dotted component, and each carries over; the first rule whose template matches wins,
    in either direction. ``ignored``: regexes of
    reference keys with no counterpart here, skipped on loading.
    """

    model: str
    rules: tuple[tuple[str, str], ...]
    ignored: tuple[str, ...]

    @property
    def hint(self) -> str:
        return (
            f"The {self.model} reference key layout is the table KEY_TABLES[{self.model!r}] in "
            "models/reference_checkpoint.py; correct it if the released code names its keys differently, "
            "and check that the config (model, dataset) matches the checkpoint's."
        )

    def compiled(self):
        rules = [(_template_regex(ours), ours, _template_regex(ref), ref) for ours, ref in self.rules]
        return rules, [re.compile(p) for p in self.ignored]


def renamed_modules(names: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Rules for whole modules the reference names otherwise: our module name -> its name below ``Model.``."""
    return tuple((f"{ours}.{{{REST}}}", f"Model.{ref}.{{{REST}}}") for ours, ref in names.items())


#: EMT-DLFR's modules that the reference names otherwise (the vision modality is its ``video``).
EMT_DLFR_RENAMED = {
    "fusion.pools": "fusion.attn_pools",
    "vision_model": "video_model",
    "proj_vision": "proj_video",
    "gmc_projector": "gmc_tokens_projector",
    "gmc_predictor": "gmc_tokens_predictor",
    "vision_projector": "video_projector",
    "vision_predictor": "video_predictor",
    "recon_vision": "recon_video",
}

KEY_TABLES: dict[str, KeyTable] = {
    "emt-dlfr": KeyTable(
        model="emt-dlfr",
        rules=(
            BERT_RULE,
            ("fusion.layers.{layer}.local.{modality}.{rest}", "Model.fusion.mpus.{layer}.{modality}.0.{rest}"),
            ("fusion.layers.{layer}.global.{modality}.{rest}", "Model.fusion.mpus.{layer}.{modality}.1.{rest}"),
            ("fusion.pos_emb.pe", "Model.fusion.pos_embed.pe"),
            *renamed_modules(EMT_DLFR_RENAMED),
            SAME_NAME_RULE,
        ),
        ignored=tuple(BERT_BUFFER_KEYS),
    ),
    "mult": KeyTable(
        model="mult",
        rules=(BERT_RULE, SAME_NAME_RULE),
        ignored=(*BERT_BUFFER_KEYS, r"^Model\.trans_\w+\.version$"),
    ),
    "tfr_net": KeyTable(
        model="tfr_net",
        rules=(
            BERT_RULE,
            ("generator_{modality}.{rest}", "Model.generator_{modality}.Model.linear.{rest}"),
            *renamed_modules({"align_subnet": "align_subnet.Model", "fusion_subnet": "fusion_subnet.Model"}),
        ),
        ignored=(
            *BERT_BUFFER_KEYS,
            r"^Model\.align_subnet\.Model\.trans_\w+\.version$",
            r"^Model\.align_subnet\.Model\.trans_\w+\.embed_positions\._float_tensor$",
        ),
    ),
}


def _table(model: str) -> KeyTable:
    if model not in KEY_TABLES:
        raise CheckpointError(f"no reference key table for model {model!r} (known: {', '.join(KEY_TABLES)})")
    return KEY_TABLES[model]


@functools.lru_cache(maxsize=None)
def _compiled(model: str):
    return _table(model).compiled()


def to_reference_key(key: str, model: str = "emt-dlfr") -> str:
    """Our state_dict key -> the reference's."""
    rules, _ = _compiled(model)
    for ours_re, _, _, ref in rules:
        match = ours_re.match(key)
        if match:
            return ref.format(**match.groupdict())
    raise CheckpointError(f"no rule in KEY_TABLES[{model!r}] maps key {key!r}")


def from_reference_key(key: str, model: str = "emt-dlfr") -> Optional[str]:
    """The reference's state_dict key -> ours (None when no rule matches)."""
    rules, _ = _compiled(model)
    for _, ours, ref_re, _ in rules:
        match = ref_re.match(key)
        if match:
            return ours.format(**match.groupdict())
    return None


def _unsaved_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """Buffers the model keeps out of its own state_dict but the reference saves (the fixed positional table)."""
    saved = model.state_dict().keys()
    return {k: v for k, v in model.named_buffers() if k not in saved and k.endswith(POSITION_TABLE)}


def to_reference_state_dict(model: nn.Module, model_name: str = "emt-dlfr") -> "OrderedDict[str, torch.Tensor]":
    """``model``'s state in the reference layout, every alias of a shared module included."""
    state = OrderedDict((to_reference_key(k, model_name), v) for k, v in model.state_dict().items())
    state.update((to_reference_key(k, model_name), v) for k, v in _unsaved_buffers(model).items())
    return state


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


def load_reference_state_dict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], model_name: str = "emt-dlfr"
) -> LoadReport:
    """Load a reference-layout state dict into ``model``; CheckpointError on any key, shape or alias mismatch."""
    table = _table(model_name)
    _, ignored_patterns = _compiled(model_name)
    ignored = [k for k in state_dict if any(p.match(k) for p in ignored_patterns)]
    mapped: dict[str, torch.Tensor] = {}
    unmappable = []
    for ref_key, value in state_dict.items():
        if ref_key in ignored:
            continue
        key = from_reference_key(ref_key, model_name)
        if key is None:
            unmappable.append(ref_key)
        else:
            mapped[key] = value
    expected = model.state_dict()
    tables = {k: mapped.pop(k) for k in _unsaved_buffers(model) if k in mapped}  # copied in after the checks
    missing = [to_reference_key(k, model_name) for k in expected if k not in mapped]
    unexpected = unmappable + [to_reference_key(k, model_name) for k in mapped if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_listing(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
        raise CheckpointError(f"checkpoint does not fit the model: {'; '.join(parts)}. {table.hint}")
    buffers = dict(model.named_buffers())
    targets = [(k, v, expected[k]) for k, v in mapped.items()] + [(k, v, buffers[k]) for k, v in tables.items()]
    wrong_shapes = [
        f"{to_reference_key(k, model_name)} {tuple(v.shape)} (model {tuple(ref.shape)})"
        for k, v, ref in targets
        if tuple(v.shape) != tuple(ref.shape)
    ]
    if wrong_shapes:
        raise CheckpointError(f"checkpoint shapes do not fit the model: {_listing(wrong_shapes)}. {table.hint}")
    groups = _alias_groups(model)
    for group in groups:
        first = mapped[group[0]]
        differing = [k for k in group[1:] if not torch.equal(mapped[k], first)]
        if differing:
            raise CheckpointError(
                f"checkpoint holds different values under aliases of one shared tensor: "
                f"{to_reference_key(group[0], model_name)} vs "
                f"{_listing(to_reference_key(k, model_name) for k in differing)}. "
                "The model's sharing switches (mpu_share, modality_share, layer_share) must match the checkpoint's."
            )
    model.load_state_dict(mapped, strict=True)
    with torch.no_grad():
        for key, value in tables.items():
            buffers[key].copy_(value)
    return LoadReport(
        loaded_keys=len(mapped),
        unique_tensors=len(groups),
        alias_groups=sum(len(g) > 1 for g in groups),
        ignored_keys=ignored,
    )


def load_reference_checkpoint(model: nn.Module, path: str | Path, model_name: str = "emt-dlfr") -> LoadReport:
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
    return load_reference_state_dict(model, state_dict, model_name)
