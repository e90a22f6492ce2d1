#!/usr/bin/env bash
# The GPU check, one command on one H100/H200 (under 10 minutes): synthetic FineWeb-format data, the challenge's
# baseline train_gpt.py and golf's experiment=baseline side by side (ms/step, tokens/s, loss at equal steps, the
# ratio golf/script), golf.bench on the GPU, and bf16 parity of golf against the script; one JSON under
# bench/results/<device>-<date>.json. golf/benchmark/gpu_check.py does the work; --help lists the options.
#
#   GOLF_REFERENCE_DIR=/path/to/parameter-golf scripts/gpu_check.sh [--steps 50] [--warmup 10]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
exec "$PY" -m golf.benchmark.gpu_check "$@"
