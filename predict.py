"""Run a saved model on any feature file in the MMSA format and write its per-clip predictions.

    python -m predict --model results/mosi/emt-dlfr/models/emt-dlfr-mosi-regression-mr0.5-111.pth \\
        --data my_features.pkl [--split test] [--missing-rate 0.3] --out preds.csv

The model file is what ``run.py --save-model`` writes (trains/model_file.py): it rebuilds the network
without the training data or the BERT folder. The data file gets the same checks as in training (restricted
unpickling, validation of every split and key, label range, non-finite values) plus the model's own: the
audio and vision widths it was trained on and its encoder's vocabulary. The CSV has one row per clip in the
file's order (columns in trains/predictions.py); the metrics of each split against its labels are printed.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from config import MODALITIES
from utils.errors import ConfigError, UserError

SPLITS = ("train", "valid", "test")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m predict", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, type=Path, help="a model file written by run.py --save-model")
    p.add_argument("--data", required=True, type=Path, help="a feature pickle in the MMSA format (README)")
    p.add_argument("--split", choices=SPLITS, help="one split (default: all three)")
    rates = p.add_mutually_exclusive_group()
    rates.add_argument("--missing-rate", type=float, default=0.0, help="drop this fraction of every modality's features")
    rates.add_argument("--diff-missing", type=float, nargs=3, metavar=("T", "A", "V"), help="per-modality rates")
    p.add_argument("--out", required=True, type=Path, help="the predictions CSV to write")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: the config's default)")
    p.add_argument("--batch-size", type=int, help="clips per forward pass (default: the model's training batch size)")
    p.add_argument("--fix-nonfinite", action="store_true", help="replace nan/inf features by 0 instead of failing")
    p.add_argument("--strict-data", action="store_true", help="fail when a known file's SHA-1 is not the official one")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    rates = tuple(args.diff_missing) if args.diff_missing else (args.missing_rate,) * len(MODALITIES)
    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")

    from data.load_data import MMSADataset, find_empty_modalities, load_mmsa, ordered_loader
    from trains.model_file import check_data_fits, load_model_file
    from trains.predictions import write_csv
    from trains.trainer import run_model
    from models.execution import ExecutionPolicy

    saved = load_model_file(args.model, {"device": args.device} if args.device else None)
    cfg = saved.cfg
    data = load_mmsa(args.data, label_range=cfg.label_range, fix_nonfinite=args.fix_nonfinite,
                     strict_data=args.strict_data)
    check_data_fits(saved, data)
    policy = ExecutionPolicy.from_config(cfg)
    model = saved.model.to(policy.device)
    frames = []
    for split in [args.split] if args.split else SPLITS:
        dataset = MMSADataset(data.path, split, rates, cfg.missing_seeds, data=data)
        find_empty_modalities(MMSADataset(data.path, split, (0.0,) * len(MODALITIES), cfg.missing_seeds, data=data))
        loader = ordered_loader(dataset, args.batch_size or cfg.batch_size, cfg.num_workers)
        preds, _ = run_model(model, loader, cfg, policy=policy, with_loss=False)
        metrics = preds.metrics(cfg.metric_set)
        print(f"{split}: {len(dataset)} clips, " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        frames.append(preds.to_frame(split, rates))
    try:
        write_csv(args.out, frames)
    except OSError as exc:
        raise UserError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(f"wrote {sum(len(f) for f in frames)} predictions to {args.out}")
    return 0


if __name__ == "__main__":
    from utils.errors import cli_exit

    cli_exit(main)
