#!/usr/bin/env bash
# Experiment 2's runs (docs/results.md, pre-registered), resumable: a rerun skips every finished stage.
#   bash scripts/exp2.sh primary  "0 1 2"   # SIKeD unbiased adaptive with the combined baseline
#   bash scripts/exp2.sh secondary "0 1 2"  # SIKeD all, the teacher-only control, cot, l2m, pot, and
#                                           # combined under equal_steps (max_iterations·E* epochs)
# The primary runs of every seed come first so that the interim reads as early as possible.
# SIKED=path of the siked command (default .venv's); CONFIG=the experiment's config (default
# configs/exp2.yaml; configs/exp2-gpu.yaml is its one-GPU size). Writes <dir>/<run>-s<seed>, <dir> being
# the folder of the config's `out` (runs/exp2), packed into docs/results/<that folder's name>/<run>-s<seed>
# (scripts/pack_run.py), which scripts/exp2_tables.py reads.
set -euo pipefail
cd "$(dirname "$0")/.."
PHASE=${1:?primary or secondary}
SEEDS=${2:-"0 1 2"}
SIKED=${SIKED:-.venv/bin/siked}
CONFIG=${CONFIG:-configs/exp2.yaml}
if [ ! -f "$CONFIG" ]; then
    echo "exp2.sh: no config at $CONFIG (CONFIG names the experiment's config)" >&2
    exit 2
fi
if grep -q "from the pilot$" "$CONFIG"; then  # the placeholders' comments
    echo "exp2.sh: $CONFIG still holds placeholders for E* or k; write the pilot's values first" >&2
    exit 2
fi
PY=$(dirname "$SIKED")/python
setting() {  # setting train.epochs: one value of the config, by its dotted key
    "$PY" -c "import functools,yaml,sys; print(functools.reduce(dict.__getitem__, sys.argv[2].split('.'), yaml.safe_load(open(sys.argv[1]))))" "$CONFIG" "$1"
}
EPOCHS=$(setting train.epochs)
ITERATIONS=$(setting loop.max_iterations)
RUNS=$(dirname "$(setting out)")
PACKED=docs/results/$(basename "$RUNS")
run() {  # run NAME SEED [--set ...]; a finished run is packed into $PACKED for committing
    local name=$1 seed=$2
    shift 2
    "$SIKED" run "$CONFIG" --set seed="$seed" --out "$RUNS/$name-s$seed" "$@"
    "$PY" scripts/pack_run.py "$RUNS/$name-s$seed" "$PACKED/$name-s$seed"
}
for seed in $SEEDS; do
    case "$PHASE" in
        primary) run adaptive "$seed" ;;
        secondary)
            run all "$seed" --set mixing.mode=all --set 'loop.baselines=[]' --set loop.routing=false
            run control "$seed" --set mixing.mode=teacher --set 'loop.baselines=[]' --set loop.routing=false
            for strategy in cot l2m pot; do
                run "$strategy" "$seed" --set loop.method="$strategy" --set 'loop.baselines=[]' \
                    --set loop.routing=false
            done
            run combined-equal "$seed" --set loop.method=combined --set 'loop.baselines=[]' \
                --set train.epochs=$(( ITERATIONS * EPOCHS )) --set loop.routing=false
            ;;
        *) echo "exp2.sh: the phase is primary or secondary, not $PHASE" >&2; exit 2 ;;
    esac
done
