"""Benchmark (not a test): the host RAM a dataset's feature file takes, at the real shapes.

For each preset, a fresh subprocess imports torch and the data layer (its resident size is the baseline),
then loads the file as ``run.py`` does (:func:`data.load_data.load_mmsa`: restricted unpickling,
validation, the float32 copies the model reads) and builds the three splits' datasets with their masks at
rate 0.5. It prints the peak resident size of the process (``resource.getrusage``, which includes the
transient copies made while unpickling and validating) and the resident size once loading is done (what
stays for the whole run). The synthetic ``mosi``, ``mosei`` and ``sims`` presets have the official files'
shapes and split sizes, so the figures hold for the real files.

    python bench/data_memory.py --data-root DIR mosi sims mosei     # writes missing presets to DIR first
    python bench/data_memory.py --data-root DIR768 --text-width 768 mosi sims   # with the real files' text array

The real files also hold precomputed 768-wide BERT features (``text``), which the model never reads and
the loader drops after validation, but which are in memory while the file is unpickled; the synthetic files
hold a narrow placeholder unless ``--text-width 768`` is given.

The model, BERT and the activations of a training step come on top (docs/BENCHMARKS.md, training step).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GIB = 1024**3
#: Missing rate of the masks built after loading (the masks' size does not depend on it).
RATE = 0.5


def current_rss() -> int:
    """Resident set size of this process in bytes (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def measure(preset: str, data_root: Path) -> dict:
    """Load ``preset``'s file in this process; return its size and the RSS figures."""
    sys.path.insert(0, str(REPO))
    import torch  # noqa: F401  (part of the baseline: run.py imports it before loading)

    from config import get_config
    from data.load_data import load_mmsa
    from trains.experiment import build_datasets

    cfg = get_config(preset)
    path = data_root / cfg.data_file
    baseline = current_rss()
    data = load_mmsa(path, label_range=cfg.label_range, check_hash=False)
    build_datasets(cfg, data, path, (RATE, RATE, RATE))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "preset": preset,
        "file_gib": round(path.stat().st_size / GIB, 2),
        "clips": sum(split.num_samples for split in data.splits.values()),
        "baseline_gib": round(baseline / GIB, 2),
        "peak_rss_gib": round(peak / GIB, 2),
        "loaded_rss_gib": round(current_rss() / GIB, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("presets", nargs="+", choices=("mosi", "mosei", "sims", "demo", "tiny"))
    parser.add_argument("--data-root", type=Path, required=True, help="where the synthetic files are (or go)")
    parser.add_argument("--text-width", type=int, default=None,
                        help="width of the unused precomputed text features written (the real files: 768; "
                             "default: the synthetic placeholder)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # the measuring subprocess
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.presets[0], args.data_root)))
        return 0
    sys.path.insert(0, str(REPO))
    from config import get_config
    from preprocess import make_synthetic as synthetic

    if args.text_width is not None:
        synthetic.TEXT_FEATURE_DIM = args.text_width
    for preset in args.presets:
        if not (args.data_root / get_config(preset).data_file).exists():
            synthetic.make_synthetic(preset, args.data_root)
        out = subprocess.run([sys.executable, __file__, preset, "--data-root", str(args.data_root), "--one"],
                             check=True, capture_output=True, text=True)
        print(out.stdout.strip(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
