"""A trained model as one self-contained file: what ``--save-model`` writes and ``--evaluate``/``predict`` read.

The file (``torch.save`` of a dict of plain values and tensors, read back with ``weights_only=True``) holds
everything needed to rebuild the network without the training data or the BERT folder:

* ``format``: :data:`FORMAT`;
* ``model``: the ``--model`` name (its registry entry builds the network, trains.registry);
* ``config``: the whole resolved config (a dict), and its ``fingerprint`` (utils.results);
* ``feature_dims``: the audio and vision widths the model was built for;
* ``text_encoder``: the ``--bert`` spec it was trained from and the encoder's ``BertConfig`` as JSON, from
  which an encoder of the same architecture is built (its weights are in the state dict);
* ``train_rates``, ``seed`` and the recorded ``test`` metrics of its cell;
* ``state_dict``: the weights (the best validation epoch's).

Run-time settings (device, ``fast_path``, workers: ``config.RUNTIME_FIELDS``) are not taken from the
file but from the caller, so a model trained on a GPU runs on a CPU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from transformers import BertConfig, BertModel

from config import MODEL_PRESETS, RUNTIME_FIELDS, ExperimentConfig, override
from trains.registry import model_spec
from utils.errors import CheckpointError, ConfigError, DataError, UserError
from utils.io import atomic_torch_save
from utils.results import config_fingerprint

FORMAT = "emt-dlfr-model/1"


@dataclass(frozen=True)
class SavedModel:
    """A model rebuilt from a model file, in eval mode, with what the file says about it."""

    path: Path
    model: torch.nn.Module
    cfg: ExperimentConfig  # the training config with the caller's run-time fields
    fingerprint: str  # of the training config
    audio_dim: int
    vision_dim: int
    train_rates: tuple[float, float, float]
    seed: int
    test: dict  # the cell's recorded test metrics


def config_from_dict(model: str, stored: dict) -> ExperimentConfig:
    """The config of ``model`` holding the fields of ``stored`` (a ``to_dict()`` or a config.json's config)."""
    if model not in MODEL_PRESETS:
        raise ConfigError(f"model {model!r} is not available in this version (available: {', '.join(MODEL_PRESETS)})")
    return override(next(iter(MODEL_PRESETS[model].values())), stored)


def save_model_file(path: Path, cfg: ExperimentConfig, model: torch.nn.Module, state_dict: dict, *,
                    feature_dims: tuple[int, int], train_rates: tuple[float, float, float], seed: int,
                    test: dict) -> Path:
    """Write ``state_dict`` (weights of ``model``'s architecture, built for the (audio, vision)
    ``feature_dims``) with what rebuilding it needs, atomically."""
    audio_dim, vision_dim = feature_dims
    return atomic_torch_save(path, {
        "format": FORMAT,
        "model": cfg.MODEL,
        "config": json.dumps(cfg.to_dict()),
        "fingerprint": config_fingerprint(cfg),
        "feature_dims": {"audio": int(audio_dim), "vision": int(vision_dim)},
        "text_encoder": {"spec": cfg.bert, "config": model.text_model.config.to_json_string(use_diff=False)},
        "train_rates": [float(r) for r in train_rates],
        "seed": int(seed),
        "test": {k: float(v) for k, v in test.items()},
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
    })


def _read(path: Path) -> dict:
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"model file {path} does not exist") from None
    except Exception as exc:  # a truncated, foreign or unsafe file
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"cannot read model file {path}: {first_line}") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a model file of this project (expected format {FORMAT!r}; bare weights from an older "
            "--save-model cannot be rebuilt: retrain with --save-model)"
        )
    return blob


def load_model_file(path: Path, runtime: Optional[dict] = None) -> SavedModel:
    """Rebuild the model stored in ``path``; ``runtime`` sets run-time config fields (device, fast_path, ...)."""
    path = Path(path)
    blob = _read(path)
    runtime = dict(runtime or {})
    bad = sorted(set(runtime) - set(RUNTIME_FIELDS))
    if bad:
        raise ConfigError(f"{', '.join(bad)} cannot change a trained model (only run-time settings: "
                          f"{', '.join(RUNTIME_FIELDS)})")
    try:
        stored = json.loads(blob["config"])
        cfg = config_from_dict(blob["model"], stored)
        cfg = override(cfg, runtime) if runtime else cfg
        text_config = BertConfig.from_dict(json.loads(blob["text_encoder"]["config"]))
        dims = blob["feature_dims"]
        audio_dim, vision_dim = int(dims["audio"]), int(dims["vision"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"model file {path} lacks or garbles a field ({exc})") from None
    except UserError as exc:
        raise CheckpointError(f"model file {path} holds a config this code cannot use: {exc}") from None
    model = model_spec(cfg).build(cfg, audio_dim, vision_dim, text_encoder=BertModel(text_config))
    missing, unexpected = model.load_state_dict(blob["state_dict"], strict=False)
    if missing or unexpected:
        shown = ", ".join([*missing[:3], *unexpected[:3]])
        raise CheckpointError(f"model file {path}: weights do not fit the stored config ({len(missing)} missing, "
                              f"{len(unexpected)} unexpected, e.g. {shown})")
    model.eval()
    return SavedModel(path, model, cfg, blob["fingerprint"], audio_dim, vision_dim,
                      tuple(float(r) for r in blob["train_rates"]), int(blob["seed"]), dict(blob["test"]))


def check_data_fits(saved: SavedModel, data) -> None:
    """Refuse a data file the model cannot read: other audio/vision widths, or token ids past its vocabulary."""
    _, audio_dim, vision_dim = data.feature_dims
    for name, have, want in (("audio", audio_dim, saved.audio_dim), ("vision", vision_dim, saved.vision_dim)):
        if have != want:
            raise DataError(
                f"{data.path}: {name} features are {have} wide, but model {saved.path.name} was trained on "
                f"{want}-wide {name} features ({saved.cfg.dataset}); use data with the model's feature set"
            )
    vocab = saved.model.text_model.config.vocab_size
    max_id = max(int(split.text_bert[:, 0].max()) for split in data.splits.values())
    if max_id >= vocab:
        raise DataError(f"{data.path}: text_bert holds token id {max_id}, but model {saved.path.name}'s text "
                        f"encoder has a vocabulary of {vocab} tokens (features tokenised for another encoder)")
