#!/usr/bin/env bash
# Device end to end (issues 2, 5, 6). Usage (device): bash benchmarks/device/e2e.sh [MAX_STEPS] [PARTS]
# PARTS, comma-separated, in this order (default all of them):
#   check    envdoctor check/probe on the image as it is, and check speed against collect_env
#   refuse   the trainer under the image's NumPy 2 (must refuse, exit 3)
#   train    NumPy-1 wheels from .whl/ carried into /tmp/site, check, then the trainer with the seed's flags
#            (without --torch_compile) on a Llama-3.1-8B-shaped model with random bf16 weights
#   merge    merge the adapter into the base on the GPU (logit-equivalence proof), then validate
#   compile  the seed's flags with --torch_compile, a few steps, recompiles logged
# COMPILE_LIMIT: seconds for the compile phase (default 150).
# Every phase has its own time limit and its full log goes to $OUT; a phase that overruns does not stop the rest.
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD/src" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
STEPS=${1:-20}
PARTS=",${2:-check,refuse,train,merge,compile},"
step() { printf '\n=== %s\n' "$*"; }
want() { [[ "$PARTS" == *",$1,"* ]]; }
logged() {  # logged NAME SECONDS CMD...: full log to $OUT/NAME.log, progress bars dropped from the console
    local name=$1 limit=$2; shift 2
    timeout -s INT -k 20 "$limit" "$@" > "$OUT/$name.log" 2>&1
    local code=$?
    tr '\r' '\n' < "$OUT/$name.log" | grep -v -E 'it/s\]$|s/it\]$|^\s*$' | tail -45
    echo "exit=$code"
}
SEED=(--model_name /tmp/llama8b --dataset_path /tmp/train.jsonl --num_train_epochs 3
      --per_device_train_batch_size 4 --gradient_accumulation_steps 2 --dataloader_num_workers 4 --save_steps 10
      --stack lora-cu130-2026.11 --logging_steps 2)

if want check; then
    step "envdoctor check --stack phase1a-2.0 (image as it is)"
    python3 -m envdoctor check --stack phase1a-2.0 --no-color; echo "exit=$?"
    python3 -m envdoctor probe --json -o "$OUT/device-probe.json"; echo "probe exit=$?"
    python3 -m envdoctor check --snapshot "$OUT/device-probe.json" --json > "$OUT/device-check-default.json"
    echo "default-stack exit=$?"
    step "check speed"
    python3 benchmarks/check_speed.py --runs 15 2>&1 | tail -8
fi
if [ ! -f /tmp/llama8b/config.json ]; then
    step "model + data"
    python3 benchmarks/device/make_llama8b.py /tmp/llama8b 2>&1 | grep -v "it/s\]" || exit 1
    python3 benchmarks/device/dataset_words.py /tmp/train.jsonl 4000 0
    python3 benchmarks/device/dataset_words.py /tmp/val.jsonl 64 1
fi
if want refuse; then
    step "trainer under the image's NumPy 2 (must refuse, exit 3)"
    python3 -m trainer "${SEED[@]}" --output_dir /tmp/ck-refused --max_steps "$STEPS"; echo "exit=$?"
fi
if [ -d .whl ] && [ ! -f /tmp/site/numpy/__init__.py ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
fi
export PYTHONPATH="/tmp/site:$PYTHONPATH"
if want train; then
    step "NumPy 1 carried: envdoctor check --stack lora-cu130-2026.11"
    python3 -m envdoctor check --stack lora-cu130-2026.11 --no-color; echo "exit=$?"
    step "trainer, the seed's flags without --torch_compile, $STEPS steps"
    logged train 110 python3 -m trainer "${SEED[@]}" --output_dir /tmp/ck --max_steps "$STEPS"
    cp /tmp/ck/summary.json "$OUT/train-summary.json" 2>/dev/null
    cp /tmp/ck/loss.png "$OUT/train-loss.png" 2>/dev/null
fi
if want merge; then
    step "merge (GPU, bf16)"
    logged merge 130 python3 -m trainer merge --base_model /tmp/llama8b --adapter_path /tmp/ck/adapter \
        --output_dir /tmp/ck/merged --device cuda --overwrite
    step "validate"
    logged validate 100 python3 -m trainer validate --model_path /tmp/ck/merged --test_set /tmp/val.jsonl \
        --base_model /tmp/llama8b
    cp /tmp/ck/merged/validation_report.json /tmp/ck/merged/validation_report.md "$OUT/" 2>/dev/null
fi
if want compile; then
    step "trainer, the seed's flags with --torch_compile, 4 steps (recompiles logged)"
    TORCH_LOGS=recompiles logged compile "${COMPILE_LIMIT:-150}" python3 -m trainer "${SEED[@]}" --torch_compile --output_dir /tmp/ck-compiled \
        --max_steps 4
fi
exit 0
