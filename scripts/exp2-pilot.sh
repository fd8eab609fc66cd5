#!/usr/bin/env bash
# Experiment 2's pilot (docs/results.md): combined on the drawn templates with a validated snapshot
# per epoch and the routing pass on validation, then 10 forced samples per strategy on the first 8
# training questions of each template (the sample-count rule). Resumable: a rerun skips what is done.
#   bash scripts/exp2-pilot.sh [CONFIG]   # default configs/exp2-pilot.yaml (the first draw)
# SIKED=path of the siked command (default .venv's).
set -euo pipefail
cd "$(dirname "$0")/.."
SIKED=${SIKED:-.venv/bin/siked}
PY=$(dirname "$SIKED")/python
CONFIG=${1:-configs/exp2-pilot.yaml}
RUN=$("$PY" -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1]))['out'])" "$CONFIG")
"$SIKED" run "$CONFIG"
"$PY" - "$RUN" <<'PYTHON'
import json, sys
from collections import Counter
from pathlib import Path
run = Path(sys.argv[1])
rows, seen = [], Counter()
for line in (run / "data" / "train.jsonl").read_text().splitlines():
    problem = json.loads(line)
    template = problem["meta"]["template"]
    if seen[template] < 8:
        seen[template] += 1
        rows.append(line)
(run / "saturation-questions.jsonl").write_text("\n".join(rows) + "\n")
PYTHON
MODEL="$RUN/$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['best_model'])" "$RUN/metrics.json")"
for strategy in cot l2m pot; do
    if [ ! -s "$RUN/saturation-$strategy.jsonl" ]; then  # written last, so present means complete
        "$SIKED" sample "$CONFIG" --model "$MODEL" --data jsonl:train \
            --data-file "$RUN/saturation-questions.jsonl" --strategy "$strategy" --samples 10 \
            --out "$RUN/saturation-$strategy-part.jsonl"
        mv "$RUN/saturation-$strategy-part.verdicts.jsonl" "$RUN/saturation-$strategy.verdicts.jsonl"
        mv "$RUN/saturation-$strategy-part.jsonl" "$RUN/saturation-$strategy.jsonl"
    fi
done
"$PY" scripts/exp2_saturation.py "$RUN"/saturation-{cot,l2m,pot}.jsonl | tee "$RUN/saturation.md"
