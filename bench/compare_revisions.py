"""Benchmark (not a test): the training step of two revisions of this repository, measured alternately.

A refactor must not slow the step down. Timing "before" and "after" in two separate runs compares two
machine states as much as two revisions, so this script checks the older revision out into a temporary
git worktree and runs ``bench/train_step_speed.py --variant ...`` in each tree in turn, round after round,
one fresh process per measurement; both revisions meet the same load in every round. It prints one JSON
line per measurement and a summary: per revision and variant, the median over rounds of each process's
median step time.

    python bench/compare_revisions.py --before main                 # fast path, batch 8, 3 rounds
    python bench/compare_revisions.py --before HEAD~3 --variants fast plain --batch 32 --rounds 2
    python bench/compare_revisions.py --before main --shapes tiny --rounds 1   # a quick dry run

The "after" revision is the working tree this script lives in (uncommitted changes included).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STEP_BENCH = Path("bench") / "train_step_speed.py"


def add_worktree(rev: str, where: Path) -> Path:
    """A detached checkout of ``rev`` at ``where`` (removed again by :func:`remove_worktree`)."""
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(where), rev], check=True)
    return where


def remove_worktree(where: Path) -> None:
    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(where)], check=False)


def measure(tree: Path, variant: str, args: argparse.Namespace) -> dict:
    """One fresh process in ``tree``: ``train_step_speed.py --variant`` and its JSON record."""
    cmd = [sys.executable, str(tree / STEP_BENCH), "--variant", variant, "--batch", str(args.batch),
           "--repeats", str(args.repeats), "--warmup", str(args.warmup), "--device", args.device,
           "--shapes", args.shapes]
    done = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, timeout=args.timeout)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed in {tree}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="main", help="the older revision (any git revision)")
    parser.add_argument("--variants", nargs="+", default=["fast"], choices=("fast", "plain"))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="before/after alternations")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shapes", default="mosi", help="train_step_speed.py's --shapes")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per process")
    args = parser.parse_args(argv)
    medians: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="compare-revisions-") as tmp:
        before = add_worktree(args.before, Path(tmp) / "before")
        try:
            trees = {"before": before, "after": REPO}
            for round_index in range(args.rounds):
                order = ("before", "after") if round_index % 2 == 0 else ("after", "before")
                for variant in args.variants:
                    for name in order:
                        record = measure(trees[name], variant, args)
                        medians.setdefault((name, variant), []).append(record["median_s"])
                        print(json.dumps({"revision": name, "round": round_index, **record}), flush=True)
        finally:
            remove_worktree(before)
    summary = {f"{name}/{variant}": round(statistics.median(times), 3) for (name, variant), times in medians.items()}
    for variant in args.variants:
        summary[f"after/before {variant}"] = round(
            statistics.median(medians[("after", variant)]) / statistics.median(medians[("before", variant)]), 3)
    print(json.dumps({"before": args.before, "batch": args.batch, "rounds": args.rounds, **summary}), flush=True)


if __name__ == "__main__":
    main()
