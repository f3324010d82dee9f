"""One unit of work of the reference's protocol: train and test a model at one missing rate and seed.

For each (rate, seed) cell (docs/REFERENCE.md §1, §6): build the incomplete views
of the three splits at that rate (static masks from the fixed missing seeds), seed everything with the
training seed, build a fresh model, train it with early stopping, reload the best state and test it
once on the test split with the incomplete view's prediction.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import time
from pathlib import Path
from typing import Optional

from transformers import BertConfig

from config import ExperimentConfig
from data.load_data import MMSADataset, build_loaders, ordered_loader
from models.execution import ExecutionPolicy
from models.reference_checkpoint import load_reference_checkpoint
from models.reference_init import build_faithful_model
from models.text_encoder import CONFIG_FILE, MINILM_SPEC, RANDOM_PREFIX
from trains.compile import maybe_compile
from trains.model_file import save_model_file
from trains.predictions import write_csv
from trains.registry import model_spec
from trains.trainer import Trainer, run_model
from utils.device import resolve_device, set_tf32
from utils.errors import ConfigError
from utils.seed import setup_seed

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


def build_datasets(cfg: ExperimentConfig, data, data_path: Path, rates: tuple[float, float, float]) -> dict:
    """The three splits' datasets at ``rates``; only the training split takes the training-time options."""
    datasets = {}
    for split in SPLITS:
        is_train = split == "train"
        datasets[split] = MMSADataset(
            data_path,
            split,
            missing_rates=rates,
            missing_seeds=cfg.missing_seeds,
            data=data,
            label_range=cfg.label_range,
            redraw_masks=cfg.redraw_train_masks and is_train,
            protocol=cfg.train_missing_protocol if is_train else "static",
        )
    return datasets


def check_bert_folder_config(cfg: ExperimentConfig) -> None:
    """Refuse a local BERT folder whose config.json transformers would crash on (not a JSON object, sizes
    that are not positive integers, a hidden size not divisible by the heads), naming the file.

    Only a folder is read here, as :func:`models.text_encoder.load_text_encoder` resolves ``cfg.bert``; a
    missing config.json is left to the loader, which names the folder and the file.
    """
    if cfg.bert.startswith(RANDOM_PREFIX) or cfg.bert == MINILM_SPEC:
        return
    path = Path(cfg.bert).expanduser() / CONFIG_FILE
    if not path.is_file():
        return
    fix = f"restore the encoder's original {CONFIG_FILE}, or choose another --bert"
    try:
        conf = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        reason = f"{err.msg} at line {err.lineno} column {err.colno}" if isinstance(err, json.JSONDecodeError) else err
        raise ConfigError(f"text encoder {cfg.bert!r}: cannot read {path} as JSON ({reason}); {fix}") from None
    if not isinstance(conf, dict):
        raise ConfigError(f"text encoder {cfg.bert!r}: {path} holds a JSON {type(conf).__name__}, not an object; {fix}")
    for key in ("hidden_size", "num_attention_heads"):
        value = conf.get(key, 1)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(
                f"text encoder {cfg.bert!r}: {path} has {key}={value!r}, expected a positive integer; {fix}"
            )
    defaults = BertConfig()  # what transformers fills in for a missing key
    hidden = conf.get("hidden_size", defaults.hidden_size)
    heads = conf.get("num_attention_heads", defaults.num_attention_heads)
    if hidden % heads:
        raise ConfigError(
            f"text encoder {cfg.bert!r}: {path} has hidden_size={hidden}, which num_attention_heads={heads} does "
            f"not divide (a broken {CONFIG_FILE}); {fix}"
        )


def check_text_hidden_size(cfg: ExperimentConfig, text_model) -> None:
    """Refuse an encoder whose hidden size is not the one pinned with ``text_hidden_size`` (None: any)."""
    hidden = text_model.config.hidden_size
    if cfg.text_hidden_size is None or hidden == cfg.text_hidden_size:
        return
    conf_file = Path(cfg.bert).expanduser() / CONFIG_FILE
    is_folder = not cfg.bert.startswith(RANDOM_PREFIX) and cfg.bert != MINILM_SPEC and conf_file.is_file()
    source = f" (in {conf_file})" if is_folder else ""
    raise ConfigError(
        f"text encoder {cfg.bert!r} has hidden size {hidden}{source}, but text_hidden_size expects "
        f"{cfg.text_hidden_size}: use an encoder of hidden size {cfg.text_hidden_size} with --bert, or drop the "
        "text_hidden_size setting to take the width from the encoder"
    )


def model_for(cfg: ExperimentConfig, datasets: dict, policy: Optional[ExecutionPolicy] = None):
    """A fresh model for the data's audio/vision widths computing with ``policy`` (default: the config's),
    after checking the text encoder can read the data and has the hidden size pinned by
    ``text_hidden_size``, if any. With ``faithful_rng`` it holds the authors' initial weights for the current
    seed (:mod:`models.reference_init`)."""
    train = datasets["train"]
    _, audio_dim, vision_dim = train.feature_dims
    check_bert_folder_config(cfg)
    spec = model_spec(cfg)
    if spec.data_settings is not None:  # e.g. TFR-Net's widths that follow the data's padded lengths
        cfg = dataclasses.replace(cfg, **spec.data_settings(datasets))
    build = functools.partial(spec.build, policy=policy)
    if cfg.faithful_rng:
        model = build_faithful_model(cfg, audio_dim, vision_dim, build)
    else:
        model = build(cfg, audio_dim, vision_dim)
    model = maybe_compile(model, cfg)
    check_text_hidden_size(cfg, model.text_model)
    vocab_size = model.text_model.config.vocab_size
    max_id = max(int(train.data.splits[split].text_bert[:, 0].max()) for split in SPLITS)
    if max_id >= vocab_size:
        raise ConfigError(
            f"text encoder {cfg.bert!r} has a vocabulary of {vocab_size} tokens, but {train.data.path} holds token "
            f"id {max_id}: use the encoder the features were tokenised for (bert-base-uncased for MOSI/MOSEI, "
            "bert-base-chinese for SIMS) with --bert"
        )
    return model


def run_cell(
    cfg: ExperimentConfig,
    data,
    data_path: Path,
    rates: tuple[float, float, float],
    seed: int,
    work_dir: Optional[Path] = None,
    save_model_path: Optional[Path] = None,
    progress: bool = True,
    predictions_dir: Optional[Path] = None,
) -> dict:
    """Train and test one cell; return its record (test metrics, best epoch, timings, and the per-epoch history:
    each epoch's training metrics and loss and every validation metric).

    ``work_dir`` holds the per-epoch training checkpoint when ``cfg.checkpoint_every_epoch`` is on, so a
    killed cell resumes from its last finished epoch; the checkpoint is removed once the cell is done.
    ``save_model_path`` receives the model file (trains.model_file), ``predictions_dir`` one predictions CSV
    per split (trains.predictions), the test split's from the very pass that gives the recorded metrics.
    """
    start = time.time()
    datasets = build_datasets(cfg, data, data_path, rates)
    device = resolve_device(cfg.device)
    setup_seed(seed, cfg.deterministic)
    set_tf32(cfg.tf32)
    policy = ExecutionPolicy.from_config(cfg)
    model = model_for(cfg, datasets, policy=policy)
    loaders = build_loaders(datasets, cfg.batch_size, seed, cfg.num_workers, pin_memory=device.type == "cuda",
                            global_rng=cfg.faithful_rng)
    trainer = Trainer(cfg, model, policy=policy, progress=progress)
    checkpoint = None
    if cfg.checkpoint_every_epoch and work_dir is not None:
        checkpoint = Path(work_dir) / "train_state.pt"
    fit = trainer.fit(loaders, checkpoint_path=checkpoint)
    model.load_state_dict(fit.best_state)
    test, test_preds = trainer.evaluate_with_predictions(loaders["test"], desc="test")
    if predictions_dir is not None:
        write_split_predictions(predictions_dir, cfg, trainer, data, data_path, rates, test_preds)
    if save_model_path is not None:
        save_model_file(save_model_path, cfg, model, fit.best_state, feature_dims=datasets["train"].feature_dims[1:],
                        train_rates=rates, seed=seed, test=test)
    if checkpoint is not None and checkpoint.exists():
        checkpoint.unlink()
    log.info("rates %s seed %d: best epoch %d of %d, test %s", rates, seed, fit.best_epoch, fit.epochs_run,
             {k: round(v, 4) for k, v in test.items()})
    return {
        "rates": list(rates),
        "seed": seed,
        "test": test,
        "best_epoch": fit.best_epoch,
        "epochs": fit.epochs_run,
        "best_valid": fit.best_valid,
        "history": fit.history,
        "seconds": round(time.time() - start, 1),
    }


def write_split_predictions(out_dir: Path, cfg: ExperimentConfig, trainer: Trainer, data, data_path: Path,
                            rates: tuple[float, float, float], test_preds) -> None:
    """``out_dir/<split>.csv`` for the three splits at ``rates`` (the static masks, also for the training split,
    whatever its training-time protocol); the test split's rows are ``test_preds``."""
    for split in SPLITS:
        if split == "test":
            preds = test_preds
        else:
            dataset = MMSADataset(data_path, split, rates, cfg.missing_seeds, data=data)
            preds, _ = run_model(trainer.model, ordered_loader(dataset, cfg.batch_size, cfg.num_workers), cfg,
                                 policy=trainer.policy, objective=trainer.objective, with_loss=False)
        write_csv(Path(out_dir) / f"{split}.csv", [preds.to_frame(split, rates)])


def evaluate_reference_checkpoint(cfg: ExperimentConfig, data, data_path: Path, rates: tuple[float, float, float],
                                  checkpoint: Path, progress: bool = True) -> dict:
    """Test a checkpoint saved by the authors' implementation at ``rates``, without training."""
    device = resolve_device(cfg.device)
    setup_seed(0, cfg.deterministic)  # the loader order and, with --deterministic, the GPU flags
    set_tf32(cfg.tf32)
    datasets = build_datasets(cfg, data, data_path, rates)
    policy = ExecutionPolicy.from_config(cfg)
    model = model_for(cfg, datasets, policy=policy)
    report = load_reference_checkpoint(model, checkpoint, cfg.MODEL)
    log.info("loaded reference checkpoint %s: %s", checkpoint, report)
    loaders = build_loaders(datasets, cfg.batch_size, seed=0, num_workers=cfg.num_workers,
                            pin_memory=device.type == "cuda")
    return Trainer(cfg, model, policy=policy, progress=progress).evaluate(loaders["test"], desc="test")
