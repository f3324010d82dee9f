#!/usr/bin/env bash
# Write SIMS's normalised features (unaligned_39_normalized.pkl) beside the original, once.
set -euo pipefail
cd "$(dirname "$0")/../.."
# PYTHON=python uses your own environment; otherwise the project venv is built first (make venv).
PY=${PYTHON:-.venv/bin/python}
[ -n "${PYTHON:-}" ] || make -s venv
ROOT=${MMSA_DATA_ROOT:?set MMSA_DATA_ROOT to the folder holding SIMS/Processed/unaligned_39.pkl}
for dir in "$ROOT/SIMS/Processed" "$ROOT/Datasets/SIMS/Processed"; do
  if [ -f "$dir/unaligned_39.pkl" ]; then
    [ -f "$dir/unaligned_39_normalized.pkl" ] || "$PY" -m preprocess.normalize_sims --input "$dir/unaligned_39.pkl"
    exit 0
  fi
done
echo "error: no SIMS/Processed/unaligned_39.pkl under $ROOT (or $ROOT/Datasets)" >&2
exit 2
