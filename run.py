"""Command-line entry point: train and test a model (EMT-DLFR by default) at missing rates over seeds.

    python run.py --dataset mosi --missing-rate 0.5              # one rate, seeds 111 1111 11111
    python run.py --dataset mosi --sweep                         # the reference's grid 0.0..1.0
    python run.py --dataset mosi --diff-missing 0.1 0.5 0.0      # per-modality rates (text audio vision)
    python run.py --dataset mosi --describe                      # parameter counts, no data needed
    python run.py --model mult --dataset mosi --sweep            # a baseline of the paper's tables

Every error caused by the input is one line on stderr and exit status 2 (see utils/errors.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Optional

from config import DEFAULT_MODEL, MODEL_NAMES, PRESETS, get_config, override, parse_set_pairs
from data.missing import check_missing_rate
from trains import sweep
from utils.errors import ConfigError, DataError
from utils.results import aggregate, merge_cells, prepare_out_dir, stored_config

#: Options a worker process of a multi-device sweep does not inherit (it gets its own), with their value counts.
WORKER_OWN_OPTIONS = {"--gpus": 1, "--device": 1, "--shard": 1}

log = logging.getLogger("emt_dlfr")

DEFAULT_DATASET = "mosi"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run.py", description="EMT-DLFR and the paper's baselines: train and test over missing rates and seeds.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", choices=MODEL_NAMES,
                   help=f"the network and its trainer settings, as the authors' code ships them (default {DEFAULT_MODEL}; "
                        "with --evaluate, the models')")
    p.add_argument("--dataset", help=f"one of: {', '.join(PRESETS)} (default {DEFAULT_DATASET}; with --evaluate, the models')")
    rates = p.add_mutually_exclusive_group()
    rates.add_argument("--missing-rate", type=float, help="one rate for all modalities (default 0.4, as the reference's run.py)")
    rates.add_argument("--missing-rates", type=float, nargs="+", help="several rates, one model per rate")
    rates.add_argument("--sweep", action="store_true", help="the reference's grid: 0.0..1.0 (MOSI/MOSEI), 0.0..0.5 (SIMS)")
    rates.add_argument("--diff-missing", type=float, nargs=3, metavar=("T", "A", "V"), help="per-modality rates")
    p.add_argument("--seeds", type=int, nargs="+", default=[111, 1111, 11111], help="training seeds")
    p.add_argument("--data-root", help="folder holding <DATASET>/Processed/*.pkl (or Datasets/<DATASET>/...); default $MMSA_DATA_ROOT")
    p.add_argument("--data-path", help="any pickle in the MMSA format (overrides --data-root)")
    p.add_argument("--use-normalized-data", action="store_true", help="SIMS: read unaligned_39_normalized.pkl")
    p.add_argument("--fix-nonfinite", action="store_true", help="replace nan/inf features by 0 (and report counts) instead of failing")
    p.add_argument("--strict-data", action="store_true", help="fail when a known file's SHA-1 is not the official one")
    p.add_argument("--bert", help="BERT folder, hub name, 'minilm' or 'random:<tiny|base|base-chinese>'")
    p.add_argument("--fusion", help="EMT-DLFR: fusion strategy (default emt)")
    p.add_argument("--device", help="auto (the config's default: the first CUDA device, else the CPU), cpu, cuda or cuda:N")
    p.add_argument("--amp", choices=["bf16"], help="bf16 autocast on GPUs (off by default)")
    p.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=None,
                   help="TF32 float32 matmuls and cuDNN on GPUs (default on, as the authors' torch 1.7)")
    p.add_argument("--out", help="results directory (default results/<dataset>/<variant>); '{dataset}' and "
                                 "'{variant}' in it are replaced (the variant with its fusion, e.g. emt-llfr, emt-dlfr-ooll)")
    p.add_argument("--save-model", action="store_true", help="keep the best model of every cell (a file --evaluate and predict read)")
    p.add_argument("--save-predictions", action="store_true",
                   help="write per-clip predictions of every cell and split (predictions/mr<rate>/seed<seed>/<split>.csv)")
    p.add_argument("--no-attraction", action="store_true", help="EMT-DLFR: drop the high-level attraction (EMT-LLFR)")
    p.add_argument("--no-reconstruction", action="store_true", help="EMT-DLFR: drop the low-level reconstruction (EMT-HLFR)")
    p.add_argument("--key-eval", help="validation metric for model selection (default 'Loss', as the reference)")
    p.add_argument("--max-epochs", type=int, help="cap on epochs (default: unbounded, early stopping only)")
    p.add_argument("--step-trailing-batches", action="store_true", help="also step the 1-3 trailing batches of an epoch")
    p.add_argument("--redraw-masks", action="store_true", help="redraw the training masks every epoch")
    p.add_argument("--train-protocol", choices=["static", "lnln"], help="training missing protocol")
    p.add_argument("--checkpoint-every-epoch", action=argparse.BooleanOptionalAction, default=None,
                   help="save the training state after each epoch and resume from it (default on for MOSEI)")
    p.add_argument("--deterministic", action="store_true", help="deterministic GPU kernels (slower)")
    p.add_argument("--faithful-rng", action="store_true",
                   help="the authors' random stream: their initial weights for each seed and loader shuffles drawn "
                        "from the global torch generator (with every dropout 0 and --set fast_path=false, the "
                        "authors' run epoch by epoch on a CPU; README 'Fidelity')")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (off by default; see docs/BENCHMARKS.md)")
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override any config field (may be repeated; every pair counts)")
    p.add_argument("--describe", action="store_true", help="print parameter counts as JSON and exit")
    p.add_argument("--evaluate", metavar="RESULTS_DIR",
                   help="test the models a --save-model run stored in RESULTS_DIR at the given rates (no training)")
    p.add_argument("--load-reference-checkpoint", metavar="FILE", help="test a checkpoint saved by the authors' code")
    p.add_argument("--gpus", help="comma-separated GPU indices; several run independent cells in parallel, one process each")
    p.add_argument("--shard", metavar="I/N", help="run only every N-th cell, starting at I (cluster job arrays)")
    p.add_argument("--no-aggregate", action="store_true", help="write cell results only (shards, workers)")
    p.add_argument("--merge", nargs="+", metavar="DIR", help="copy finished cells of shard directories into --out, then aggregate")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


#: Flags that only EMT-DLFR has (its fusion strategies and DLFR ablations).
EMT_DLFR_FLAGS = {"fusion": "--fusion", "no_attraction": "--no-attraction", "no_reconstruction": "--no-reconstruction"}


def config_from_args(args: argparse.Namespace):
    return get_config(args.dataset or DEFAULT_DATASET, args.model or DEFAULT_MODEL, **config_updates(args))


def config_updates(args: argparse.Namespace) -> dict:
    """The config fields the command line sets (``--set`` pairs and the flags that stand for fields)."""
    model = args.model or DEFAULT_MODEL
    if model != "emt-dlfr":
        used = [flag for dest, flag in EMT_DLFR_FLAGS.items() if getattr(args, dest)]
        if used:
            raise ConfigError(f"{', '.join(used)}: EMT-DLFR's option(s), not {model}'s (drop them, or use --model emt-dlfr)")
    updates = parse_set_pairs(args.set)
    flag_fields = {
        "bert": args.bert, "fusion": args.fusion, "device": args.device, "amp": args.amp, "tf32": args.tf32,
        "key_eval": args.key_eval, "max_epochs": args.max_epochs,
        "train_missing_protocol": args.train_protocol, "checkpoint_every_epoch": args.checkpoint_every_epoch,
    }
    updates.update({k: v for k, v in flag_fields.items() if v is not None})
    for flag, field_name, value in (
        (args.use_normalized_data, "use_normalized_data", True),
        (args.no_attraction, "use_attraction", False),
        (args.no_reconstruction, "use_reconstruction", False),
        (args.step_trailing_batches, "step_trailing_batches", True),
        (args.redraw_masks, "redraw_train_masks", True),
        (args.deterministic, "deterministic", True),
        (args.faithful_rng, "faithful_rng", True),
        (args.compile, "compile", True),
    ):
        if flag:
            updates[field_name] = value
    return updates


def rate_grid(args: argparse.Namespace, cfg) -> list[tuple[float, float, float]]:
    if args.diff_missing:
        grid = [tuple(args.diff_missing)]
    elif args.sweep:
        grid = [(r, r, r) for r in cfg.sweep_rates]
    elif args.missing_rates:
        grid = [(r, r, r) for r in args.missing_rates]
    else:
        r = 0.4 if args.missing_rate is None else args.missing_rate
        grid = [(r, r, r)]
    for rates in grid:
        for r in rates:
            check_missing_rate(r)
    return grid


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N) with 0 <= I < N."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard expects I/N with integers (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard {text}: need 0 <= I < N")
    return index, count


def parse_devices(text: str) -> list[str]:
    """``"0,1,3"`` -> ["cuda:0", "cuda:1", "cuda:3"]; ``cpu`` entries stay ``cpu`` (tests, CPU clusters)."""
    devices = []
    for item in (part.strip() for part in text.split(",")):
        if item.isdigit():
            devices.append(f"cuda:{item}")
        elif item == "cpu" or item.startswith("cuda"):
            devices.append(item)
        else:
            raise ConfigError(f"--gpus expects GPU indices such as 0,1,2 (or cpu), got {item!r}")
    if not devices:
        raise ConfigError("--gpus is empty")
    return devices



def worker_commands(argv: list[str], devices: list[str], environ: Optional[dict[str, str]] = None) -> list[sweep.Worker]:
    """One ``run.py`` worker per device, each running every N-th cell of the sweep on its device."""
    base = _strip_options(argv, WORKER_OWN_OPTIONS)
    run_py = str(Path(__file__).resolve())
    workers = []
    for k, device in enumerate(devices):
        env, device_arg = sweep.worker_env(device, environ)
        command = [sys.executable, run_py, *base, "--device", device_arg, "--shard", f"{k}/{len(devices)}",
                   "--no-progress", "--no-aggregate"]
        workers.append(sweep.Worker(command, env, device))
    return workers


def _strip_options(argv: list[str], options: dict[str, int]) -> list[str]:
    out, skip = [], 0
    for item in argv:
        if skip:
            skip -= 1
            continue
        name = item.split("=", 1)[0]
        if name in options:
            skip = 0 if "=" in item else options[name]
            continue
        out.append(item)
    return out


def results_dir(template: str | None, cfg) -> Path:
    """``--out`` with ``{dataset}`` and ``{variant}`` filled in; results/<dataset>/<variant> without it.
    The scripts rely on this so that every variant and fusion strategy gets its own folder."""
    if template is None:
        return Path("results") / cfg.dataset / cfg.run_name
    return Path(template.replace("{dataset}", cfg.dataset).replace("{variant}", cfg.run_name))


def encoder_flag(args: argparse.Namespace) -> str:
    """The option the user chose the text encoder with, for error messages."""
    if args.bert is None and any(pair.split("=", 1)[0].strip() == "bert" for pair in args.set):
        return "--set bert=..."
    return "--bert"


def check_encoder_early(cfg, args: argparse.Namespace) -> None:
    """Refuse an encoder that cannot load before the data are read and hashed (minutes for MOSEI)."""
    from models.text_encoder import check_encoder_spec
    from trains.experiment import check_bert_folder_config

    check_encoder_spec(cfg.bert, encoder_flag(args))
    check_bert_folder_config(cfg)


def setup_logging(out_dir: Path | None, name: str) -> Path | None:
    from tqdm.auto import tqdm

    class TqdmHandler(logging.Handler):
        def emit(self, record):
            tqdm.write(self.format(record), file=sys.stderr)

    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    console = TqdmHandler()
    console.setFormatter(logging.Formatter("%(message)s"))
    # per-epoch metric lines go to the log file only; the console has the progress bars
    console.addFilter(lambda record: record.name != "trains.trainer.epochs")
    root.addHandler(console)
    if out_dir is None:
        return None
    log_dir = Path(out_dir) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    return log_file


#: Hub encoders whose counts a randomly initialised encoder of the same shapes gives (no download needed).
SAME_SHAPE_ENCODERS = {"bert-base-uncased": "random:base", "bert-base-chinese": "random:base-chinese"}


def describe_command(cfg) -> dict:
    """Parameter counts of the config's model at the dataset's official feature widths (no data read)."""
    import dataclasses

    from trains.experiment import check_bert_folder_config, check_text_hidden_size
    from trains.registry import model_spec

    _, audio_dim, vision_dim = cfg.feature_dims
    check_bert_folder_config(cfg)
    spec = model_spec(cfg)
    shapes_only = dataclasses.replace(cfg, bert=SAME_SHAPE_ENCODERS.get(cfg.bert, cfg.bert))
    model = spec.build(shapes_only, audio_dim, vision_dim)
    check_text_hidden_size(cfg, model.text_model)
    return {"model": cfg.MODEL, "dataset": cfg.dataset, **spec.describe(model)}


def log_device(cfg) -> None:
    """Say where the cells run (and refuse a CUDA device that is not there) before the data is read."""
    from utils.device import describe_device, resolve_device

    device = resolve_device(cfg.device)
    how = "chosen by --device auto" if cfg.device == "auto" else "as asked"
    log.info("device: %s (%s)%s", describe_device(device), how, ", bf16 autocast" if cfg.amp else "")


def read_data(cfg, args):
    """The data file the config and the flags name, checked and loaded, and its path."""
    from data.load_data import MMSADataset, find_empty_modalities, load_mmsa
    from data.paths import is_official_layout, resolve_data_path

    data_path = resolve_data_path(cfg, data_root=args.data_root, data_path=args.data_path)
    data = load_mmsa(data_path, label_range=cfg.label_range, fix_nonfinite=args.fix_nonfinite,
                     strict_data=args.strict_data)
    dims = data.feature_dims
    expected = tuple(cfg.feature_dims[1:])
    if tuple(dims[1:]) != expected:
        if is_official_layout(data_path, cfg):
            raise DataError(
                f"{data_path}: audio/vision feature dims are {tuple(dims[1:])}, but the {cfg.dataset} config "
                f"expects {expected}; is this the {cfg.dataset} file? (use --data-path for other feature sets)"
            )
        log.info("%s has audio/vision dims %s (the %s files have %s): training with the %s hyperparameters",
                 data_path, tuple(dims[1:]), cfg.dataset, expected, cfg.dataset)
    for split in data.splits:  # warns about a modality that is all zeros even at rate 0 (a broken file)
        find_empty_modalities(MMSADataset(data_path, split, (0.0, 0.0, 0.0), cfg.missing_seeds, data=data))
    return data, data_path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    devices = parse_devices(args.gpus) if args.gpus else None
    if devices is not None and len(devices) == 1:
        args.device = devices[0]
    if args.evaluate:
        return evaluate_command(args)
    cfg = config_from_args(args)
    if args.describe:
        print(json.dumps(describe_command(cfg), indent=2))
        return 0
    grid = rate_grid(args, cfg)
    if not args.merge:
        check_encoder_early(cfg, args)
    shard = parse_shard(args.shard) if args.shard else None
    out_dir = results_dir(args.out, cfg)
    if args.merge:
        copied = merge_cells(out_dir, [results_dir(d, cfg) for d in args.merge])
        print(f"merged {copied} cells into {out_dir}")
    fingerprint = prepare_out_dir(out_dir, cfg)  # refuses an unwritable or foreign --out before any work
    log_file = setup_logging(out_dir, f"run-{cfg.variant}-{cfg.dataset}")
    if args.merge:
        print_summary(aggregate(out_dir, cfg, grid, args.seeds, fingerprint))
        return 0
    if devices is not None and len(devices) > 1:
        todo = sweep.count_todo(out_dir, grid, args.seeds, fingerprint, shard=None)
        log.info("%d cells to do on %d devices (%s)", todo, len(devices), ", ".join(devices))
        sweep.run_workers(worker_commands(argv, devices), out_dir, todo, progress=not args.no_progress)
        print_summary(aggregate(out_dir, cfg, grid, args.seeds, fingerprint))
        return 0
    log_device(cfg)
    data, data_path = read_data(cfg, args)
    if args.load_reference_checkpoint:
        from trains.experiment import evaluate_reference_checkpoint
        from utils.io import atomic_write_json

        results = {}
        for rates in grid:
            results[str(rates)] = evaluate_reference_checkpoint(cfg, data, data_path, rates, Path(args.load_reference_checkpoint),
                                                                progress=not args.no_progress)
            log.info("reference checkpoint at rates %s: %s", rates, results[str(rates)])
        atomic_write_json(out_dir / "reference_checkpoint_test.json", results)
        return 0
    summary = sweep.run_sweep(cfg, data, data_path, grid, args.seeds, out_dir, save_model=args.save_model,
                              save_predictions=args.save_predictions,
                              shard=shard, progress=not args.no_progress, write_aggregate=not args.no_aggregate)
    if args.no_aggregate:
        return 0
    log.info("results in %s (log %s)", out_dir / "normals", log_file)
    print_summary(summary)
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    """``--evaluate RESULTS_DIR``: the directory's config (run-time flags only may change), its models, the data."""
    from config import RUNTIME_FIELDS

    results_dir = Path(args.evaluate)
    stored, _, model = stored_config(results_dir)
    if args.dataset and args.dataset.lower() != stored["dataset"]:
        raise ConfigError(f"{results_dir} holds models of dataset {stored['dataset']!r}, not {args.dataset!r}")
    if args.model and args.model != model:
        raise ConfigError(f"{results_dir} holds {model} models, not {args.model}")
    updates = config_updates(argparse.Namespace(**{**vars(args), "model": model}))
    fixed = sorted(set(updates) - set(RUNTIME_FIELDS))
    if fixed:
        raise ConfigError(f"--evaluate tests the models as they were trained: {', '.join(fixed)} cannot change "
                          f"(only run-time settings: {', '.join(RUNTIME_FIELDS)})")
    if not (args.missing_rate is not None or args.missing_rates or args.sweep or args.diff_missing):
        raise ConfigError("--evaluate needs the test rates: --missing-rate R, --missing-rates R ..., --sweep or --diff-missing T A V")
    # torch and the models only once the folder and the flags are known good: a mistyped command fails at once
    from trains.evaluate_saved import evaluate_results_dir
    from trains.model_file import config_from_dict
    from utils.matrix_report import write_matrix_report

    cfg = override(config_from_dict(model, stored), updates)
    grid = rate_grid(args, cfg)
    log_file = setup_logging(results_dir, f"evaluate-{cfg.variant}-{cfg.dataset}")
    data, data_path = read_data(cfg, args)
    evaluate_results_dir(results_dir, cfg, data, data_path, grid, save_predictions=args.save_predictions,
                         progress=not args.no_progress)
    report = write_matrix_report(results_dir)
    print(report["markdown"])
    print(f"\nevaluation in {results_dir / 'evaluation.json'}; matrix tables and heat-map in {report['out']} (log {log_file})")
    return 0


def print_summary(summary: dict) -> None:
    for tag, info in summary["rates"].items():
        means = info["mean"]
        shown = {k: round(v, 2) for k, v in means.items() if not k.startswith("Loss")}
        print(f"rate {tag}: {shown}")
    if "auilc" in summary:
        print("AUILC:", {k: round(v, 1) for k, v in summary["auilc"].items() if not k.startswith("Loss")})


if __name__ == "__main__":
    from utils.errors import cli_exit

    cli_exit(main, "finished cells are saved; rerun the same command to continue")
