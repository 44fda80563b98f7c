#!/usr/bin/env bash
# The GPU figures of the README's performance section in one go (about 5 minutes on one H100;
# WITH_BEST=1 adds the 5-minute `best` preset run):
#
#   bench/gpu_report.sh DATA_DIR OUT_DIR
#
# Each step's output goes to OUT_DIR/all.log; OUT_DIR/summary.txt gets each step's command,
# exit status, wall time and last lines.
set -u
DATA=$1
OUT=$2
PY=${PYTHON:-python3}
START=$(date +%s)
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
RUNS=$(mktemp -d)

step() {  # step NAME LIMIT_S COMMAND...
    local name=$1 limit=$2
    shift 2
    echo "== $name: $*" | tee -a "$OUT/summary.txt" >>"$OUT/all.log"
    local t0 rc
    t0=$(date +%s%N)
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    cat "$OUT/$name.log" >>"$OUT/all.log"
    { echo "rc=$rc wall_ms=$((($(date +%s%N) - t0) / 1000000))"; tail -n "${TAIL:-22}" "$OUT/$name.log"; echo; } >>"$OUT/summary.txt"
    rm -f "$OUT/$name.log"
    return $rc
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv >>"$OUT/summary.txt" 2>&1
"$PY" -c "import torch, pytorch_lightning as pl; print('torch', torch.__version__, 'lightning', pl.__version__)" >>"$OUT/summary.txt" 2>&1

# Cold: the command a user types, in a fresh process (imports, CUDA start, autotuning included).
# It also checks the GPU path (bf16, channels-last, fused optimiser): stop here if it fails.
step cold_cnn_fast 90 "$PY" -m fmnist_tui run --preset cnn_fast --data-dir "$DATA" --runs-dir "$RUNS" || exit 1
TAIL=26 step tta_cnn_fast 90 "$PY" bench/time_to_accuracy.py --preset cnn_fast --data-dir "$DATA" --json "$OUT/tta_cnn_fast.json"
TAIL=30 step throughput_bs64 150 "$PY" bench/throughput.py --data-dir "$DATA" --batch-size 64 --steps 1500 --rounds 3
TAIL=30 step throughput_bs512 120 "$PY" bench/throughput.py --data-dir "$DATA" --batch-size 512 --steps 1500 --rounds 3 \
    --only device_plain engine engine_app_thr engine_app

[ "${WITH_BEST:-0}" = 1 ] && TAIL=40 step tta_best 330 "$PY" bench/time_to_accuracy.py --preset best --data-dir "$DATA" --targets 0.94 0.95 \
    --json "$OUT/tta_best.json"
echo "done in $(($(date +%s) - START)) s" >>"$OUT/summary.txt"
