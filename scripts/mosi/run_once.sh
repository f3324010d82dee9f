#!/usr/bin/env bash
# The whole missing-rate sweep on MOSI (the reference's grid), all three seeds.
# Usage: bash scripts/mosi/run_once.sh GPU      (GPU may be a list: 0,1,2,3 runs cells in parallel)
# Interrupted? Run the same command again: finished cells are kept, only the rest is redone.
set -euo pipefail
cd "$(dirname "$0")/../.."
# PYTHON=python uses your own environment; otherwise the project venv is built first (make venv).
PY=${PYTHON:-.venv/bin/python}
[ -n "${PYTHON:-}" ] || make -s venv
GPU=${1:-0}
exec "$PY" run.py --dataset mosi --sweep --save-model \
  --gpus "$GPU" --out results/mosi/emt-dlfr/run_once ${EXTRA_ARGS:-}
