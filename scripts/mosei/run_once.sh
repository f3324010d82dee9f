#!/usr/bin/env bash
# The whole missing-rate sweep on MOSEI (the reference's grid), all three seeds.
# Usage: [MODEL=mult|tfr_net] bash scripts/mosei/run_once.sh GPU      (GPU may be a list: 0,1,2,3 runs cells in parallel)
# Interrupted? Run the same command again: finished cells are kept, only the rest is redone.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${MODEL:-emt-dlfr}  # MODEL=mult (or tfr_net) runs a baseline of the paper's tables, into results/mosei/$MODEL/
# PYTHON=python uses your own environment; otherwise the project venv is built first (make venv).
PY=${PYTHON:-.venv/bin/python}
[ -n "${PYTHON:-}" ] || make -s venv
GPU=${1:-0}
# Every variant gets its own folder: results/mosei/emt-dlfr/run_once, .../emt-llfr/... (EXTRA_ARGS=
# "--no-attraction"), .../emt-hlfr/..., .../emt/..., .../emt-dlfr-ooll/... (--fusion ooll), .../mult/... (MODEL=mult).
# EMT_DLFR_PRESET and EMT_DLFR_RESULTS replace the preset (mosei) and the results root (results), e.g. for a
# smoke test on synthetic data; by default they are unset.
DATASET=${EMT_DLFR_PRESET:-mosei}
RESULTS=${EMT_DLFR_RESULTS:-results}
exec "$PY" run.py --model "$MODEL" --dataset "$DATASET" --sweep  \
  --gpus "$GPU" --out "$RESULTS/$DATASET/{variant}/run_once" ${EXTRA_ARGS:-}
