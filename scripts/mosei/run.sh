#!/usr/bin/env bash
# One missing rate on MOSEI, all three seeds, the reference's settings for this dataset.
# Usage: bash scripts/mosei/run.sh RATE GPU     (e.g. bash scripts/mosei/run.sh 0.5 0)
# Data: set MMSA_DATA_ROOT or pass --data-root through EXTRA_ARGS.
set -euo pipefail
cd "$(dirname "$0")/../.."
# PYTHON=python uses your own environment; otherwise the project venv is built first (make venv).
PY=${PYTHON:-.venv/bin/python}
[ -n "${PYTHON:-}" ] || make -s venv
RATE=${1:?usage: run.sh RATE GPU}
GPU=${2:-0}
exec "$PY" run.py --dataset mosei --missing-rate "$RATE"  \
  --device "cuda:$GPU" --out results/mosei/emt-dlfr/run ${EXTRA_ARGS:-}
