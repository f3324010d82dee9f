"""``make demo``: the main job on the embedded synthetic dataset, on the CPU, in a few minutes.

1. writes the synthetic ``demo`` preset (a few hundred clips in the MMSA pickle format) to demo_data/;
2. runs a small sweep (missing rates 0.0, 0.3, 0.6, 0.9, one seed) twice with the pretrained MiniLM
   text encoder: EMT-DLFR, and EMT without the DLFR losses, keeping each cell's model (``--save-model``);
3. tests every model at every demo rate (``run.py --evaluate``: the train rate x test rate matrix);
4. prints the AUILC table and writes the per-rate tables and curves with utils.report, then ends with each
   variant's train x test matrix of :data:`MATRIX_METRIC`.

Rerunning it skips the finished cells (the sweep is resumable); a cell an older demo finished without keeping
its model is trained again. ``--fresh`` starts over.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

DEMO_DATASET = "demo"
DEMO_RATES = ("0.0", "0.3", "0.6", "0.9")
DEMO_SEED = "111"
VARIANTS = {"emt-dlfr": [], "emt": ["--no-attraction", "--no-reconstruction"]}
#: The matrix the demo ends with: Corr falls the most visibly with the missing rate on the synthetic data
#: (docs/LEARNING.md); matrix.md beside it has every metric.
MATRIX_METRIC = "Corr"


def forget_cells_without_models(out: Path) -> int:
    """Remove the cell files of ``out`` that have no model file beside them (cells of a demo from before it
    kept its models), so that the sweep trains them again; return how many."""
    stale = 0
    for cell in sorted(Path(out).glob("cells/mr*/seed*.json")):
        tag, seed = cell.parent.name, cell.stem.removeprefix("seed")  # mr<rates>, <seed>
        if not any(Path(out).glob(f"models/*-{tag}-{seed}.pth")):
            cell.unlink()
            stale += 1
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=Path("demo_data"))
    parser.add_argument("--out", type=Path, default=Path("results/demo"))
    parser.add_argument("--fresh", action="store_true", help="delete earlier demo results first")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import run
    from config import get_config
    from preprocess.make_synthetic import make_synthetic
    from utils.matrix_report import load_evaluation, matrix_table
    from utils.report import make_report, markdown_table, title

    if args.fresh and args.out.exists():
        shutil.rmtree(args.out)
    start = time.time()
    data_file = args.data_root / get_config(DEMO_DATASET).data_file
    if not data_file.exists():
        print(f"[demo] writing the synthetic {DEMO_DATASET} dataset to {data_file}")
        make_synthetic(DEMO_DATASET, args.data_root)
    data_flags = ["--dataset", DEMO_DATASET, "--data-root", str(args.data_root)]
    dirs = []
    for variant, flags in VARIANTS.items():
        out = args.out / variant
        stale = forget_cells_without_models(out)
        if stale:
            print(f"[demo] {variant}: {stale} cell(s) of an older demo kept no model; training them again")
        print(f"[demo] {variant}: rates {' '.join(DEMO_RATES)}, seed {DEMO_SEED} -> {out}")
        run.main([*data_flags, "--missing-rates", *DEMO_RATES, "--seeds", DEMO_SEED, "--out", str(out),
                  "--save-model", *flags])
        dirs.append(out)
    for out in dirs:
        print(f"[demo] {out.name}: testing each model at every rate ({' '.join(DEMO_RATES)})")
        run.main(["--evaluate", str(out), *data_flags, "--missing-rates", *DEMO_RATES])
    report = make_report(dirs, args.out / "report")
    print(f"\n[demo] AUILC over rates {DEMO_RATES[0]}-{DEMO_RATES[-1]} (MAE, Corr as fractions; accuracies in %):\n")
    print(report["auilc_markdown"])
    print(f"\n[demo] per-rate tables: {report['out'] / 'per_rate.md'}")
    print(f"[demo] curves: {report['figures'][0]} (and .pdf)")
    print(f"\n[demo] {MATRIX_METRIC} of each model trained at one rate (rows) and tested at another (columns); "
          "the diagonal is its sweep's own result:")
    for variant, out in zip(VARIANTS, dirs):
        print(f"\n{title(variant)} (all metrics: {out / 'evaluation' / 'matrix.md'}, heat-maps: matrix.png):\n")
        print(markdown_table(matrix_table(load_evaluation(out), MATRIX_METRIC)))
    print(f"\n[demo] done in {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    from utils.errors import cli_exit

    cli_exit(main, "rerun make demo to continue")
