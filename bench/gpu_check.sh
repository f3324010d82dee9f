#!/usr/bin/env bash
# One command for a lent GPU: the CUDA test tier, the training-step benchmark at MOSI shapes (fast, plain,
# bf16, deterministic: time and peak CUDA memory), cells packed per GPU, one full training cell on the
# synthetic mosi preset, and the full MOSI sweep's estimated wall time; one JSON record and a table.
#   bash bench/gpu_check.sh                 # on the GPU (cuda:0); about 5-8 minutes on one H200
#   bash bench/gpu_check.sh --device cpu    # the dry run on the tiny preset (CPU, about a minute)
# Options: --out FILE (the JSON record), --budget SECONDS (all stages together, default 450).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
exec "$PYTHON" bench/gpu_check.py "$@"
