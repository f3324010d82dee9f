#!/usr/bin/env bash
# One missing rate on MOSEI, all three seeds, the reference's settings for this dataset.
# Usage: [MODEL=mult|tfr_net] bash scripts/mosei/run.sh RATE GPU     (e.g. bash scripts/mosei/run.sh 0.5 0)
# Data: set MMSA_DATA_ROOT or pass --data-root through EXTRA_ARGS.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${MODEL:-emt-dlfr}  # MODEL=mult (or tfr_net) runs a baseline of the paper's tables, into results/mosei/$MODEL/
# PYTHON=python uses your own environment; otherwise the project venv is built first (make venv).
PY=${PYTHON:-.venv/bin/python}
[ -n "${PYTHON:-}" ] || make -s venv
RATE=${1:?usage: run.sh RATE GPU}
GPU=${2:-0}
DATASET=${EMT_DLFR_PRESET:-mosei}
RESULTS=${EMT_DLFR_RESULTS:-results}
exec "$PY" run.py --model "$MODEL" --dataset "$DATASET" --missing-rate "$RATE"  \
  --device "cuda:$GPU" --out "$RESULTS/$DATASET/{variant}/run" ${EXTRA_ARGS:-}
