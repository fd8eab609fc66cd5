#!/usr/bin/env bash
# The experiment of docs/results.md, every seed, resumable: a rerun skips every finished stage.
# SEEDS="0 1" (default), SIKED=path of the siked command (default: .venv-vllm's if it exists, so
# that evaluation samples through vLLM, else .venv's). Writes runs/exp/{adaptive,all}-sS and
# runs/exp/compare.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-"0 1"}
if [ -z "${SIKED:-}" ]; then
    if [ -x .venv-vllm/bin/siked ]; then SIKED=.venv-vllm/bin/siked; else SIKED=.venv/bin/siked; fi
fi
if [[ "$SIKED" == *vllm* ]] && [ -e /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 ]; then
    export LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
fi
CONFIG=configs/experiment-templates.yaml
runs=()
for seed in $SEEDS; do
    "$SIKED" run "$CONFIG" --set seed="$seed" --out "runs/exp/adaptive-s$seed"
    "$SIKED" run "$CONFIG" --set seed="$seed" --out "runs/exp/all-s$seed" \
        --set mixing.mode=all --set 'loop.baselines=[]' --set loop.routing=false
    runs+=("runs/exp/adaptive-s$seed" "runs/exp/all-s$seed")
done
"$SIKED" compare "${runs[@]}" --out runs/exp/compare.md
