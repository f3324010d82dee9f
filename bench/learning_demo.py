"""Learning benchmark: does a model (EMT-DLFR by default) learn the planted signal of the synthetic ``demo``
preset, and does it lose accuracy as features go missing?

    python bench/learning_demo.py [--rates 0.0 0.7] [--seeds 111] [--out bench/results/learning]
    python bench/learning_demo.py --model mult            # a baseline, into bench/results/learning-mult
    python bench/learning_demo.py --out /tmp/emt -- --no-attraction --no-reconstruction   # run.py flags after --

Trains the ``demo`` config (pretrained MiniLM text encoder, frozen; see config/presets.py) at each rate
with run.py's own sweep machinery and prints the test metrics per rate. Expected: Corr well above 0 at
rate 0.0, and lower accuracy / higher MAE as the rate grows. Figures are recorded in docs/LEARNING.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def split_run_flags(argv: list[str]) -> tuple[list[str], list[str]]:
    """(this script's arguments, run.py's flags): everything after a ``--`` goes to run.py as it is."""
    if "--" not in argv:
        return list(argv), []
    cut = argv.index("--")
    return list(argv[:cut]), list(argv[cut + 1:])


def main(argv: list[str] | None = None) -> int:
    own, run_flags = split_run_flags(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     usage="%(prog)s [options] [-- run.py flags, e.g. --no-attraction]")
    parser.add_argument("--rates", nargs="+", default=["0.0", "0.7"])
    parser.add_argument("--seeds", nargs="+", default=["111"])
    parser.add_argument("--data-root", type=Path, default=REPO / "demo_data")
    parser.add_argument("--model", default="emt-dlfr", help="run.py's --model")
    parser.add_argument("--out", type=Path, help="default bench/results/learning (EMT-DLFR), learning-<model> otherwise")
    args = parser.parse_args(own)
    if args.out is None:
        args.out = REPO / "bench" / "results" / ("learning" if args.model == "emt-dlfr" else f"learning-{args.model}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import run
    from config import get_config
    from preprocess.make_synthetic import make_synthetic

    if not (args.data_root / get_config("demo").data_file).exists():
        make_synthetic("demo", args.data_root)
    start = time.time()
    run.main(["--model", args.model, "--dataset", "demo", "--data-root", str(args.data_root), "--missing-rates", *args.rates,
              "--seeds", *args.seeds, "--out", str(args.out), "--no-progress", *run_flags])
    summary = json.loads((args.out / "results.json").read_text())
    print(f"\nlearning benchmark of {args.model} on the synthetic demo preset ({time.time() - start:.0f} s)")
    print(f"{'rate':>5} {'MAE':>7} {'Corr':>7} {'Acc-2 Has0':>11} {'Acc-2 Non0':>11} {'Acc-7':>7}")
    for tag, info in summary["rates"].items():
        m = info["mean"]
        print(f"{tag:>5} {m['MAE'] / 100:7.3f} {m['Corr'] / 100:7.3f} {m['Has0_acc_2']:11.1f} "
              f"{m['Non0_acc_2']:11.1f} {m['Mult_acc_7']:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
