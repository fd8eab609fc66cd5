#!/usr/bin/env bash
# Experiment 2's runs (docs/results.md, pre-registered), resumable: a rerun skips every finished stage.
#   bash scripts/exp2.sh primary  "0 1 2"   # SIKeD unbiased adaptive with the combined baseline
#   bash scripts/exp2.sh secondary "0 1 2"  # SIKeD all, the teacher-only control, cot, l2m, pot, and
#                                           # combined under equal_steps (4·E* epochs)
# The primary runs of every seed come first so that the interim reads as early as possible.
# SIKED=path of the siked command (default .venv's). Writes runs/exp2/<run>-s<seed>, packed into
# docs/results/exp2/<run>-s<seed> (scripts/pack_run.py), which scripts/exp2_tables.py reads.
set -euo pipefail
cd "$(dirname "$0")/.."
PHASE=${1:?primary or secondary}
SEEDS=${2:-"0 1 2"}
SIKED=${SIKED:-.venv/bin/siked}
CONFIG=configs/exp2.yaml
if grep -q "from the pilot$" "$CONFIG"; then  # the placeholders' comments
    echo "exp2.sh: $CONFIG still holds placeholders for E* or k; write the pilot's values first" >&2
    exit 2
fi
EPOCHS=$("$(dirname "$SIKED")/python" -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1]))['train']['epochs'])" "$CONFIG")
run() {  # run NAME SEED [--set ...]; a finished run is packed into docs/results/exp2 for committing
    local name=$1 seed=$2
    shift 2
    "$SIKED" run "$CONFIG" --set seed="$seed" --out "runs/exp2/$name-s$seed" "$@"
    "$(dirname "$SIKED")/python" scripts/pack_run.py "runs/exp2/$name-s$seed" "docs/results/exp2/$name-s$seed"
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
                --set train.epochs=$(( 4 * EPOCHS )) --set loop.routing=false
            ;;
        *) echo "exp2.sh: the phase is primary or secondary, not $PHASE" >&2; exit 2 ;;
    esac
done
