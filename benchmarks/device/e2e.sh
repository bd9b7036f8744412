#!/usr/bin/env bash
# Device end to end (issues 2, 5, 6): envdoctor on the image as it is, then the trainer refused under NumPy 2,
# then with the NumPy-1 wheels carried in .whl/: check, train with the seed's flags on a Llama-3.1-8B-shaped model
# (random bf16 weights), merge, validate. Usage (device): bash benchmarks/device/e2e.sh [MAX_STEPS]
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD/src" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
STEPS=${1:-20}
step() { printf '\n=== %s\n' "$*"; }
step "envdoctor check --stack phase1a-2.0 (image as it is)"
python3 -m envdoctor check --stack phase1a-2.0 --no-color; echo "exit=$?"
python3 -m envdoctor probe --json -o "$OUT/h100-probe.json"; echo "probe exit=$?"
python3 -m envdoctor check --snapshot "$OUT/h100-probe.json" --json > "$OUT/h100-check-default.json"; echo "default-stack exit=$?"
step "check speed"
python3 benchmarks/check_speed.py --runs 15 2>&1 | tail -8
step "model + data"
python3 benchmarks/device/make_llama8b.py /tmp/llama8b || exit 1
python3 benchmarks/device/dataset_words.py /tmp/train.jsonl 4000 0
python3 benchmarks/device/dataset_words.py /tmp/val.jsonl 64 1
SEED=(--model_name /tmp/llama8b --dataset_path /tmp/train.jsonl --output_dir /tmp/ck --num_train_epochs 3
      --per_device_train_batch_size 4 --gradient_accumulation_steps 2 --dataloader_num_workers 4 --save_steps 10
      --torch_compile --stack lora-cu130-2026.11 --max_steps "$STEPS" --logging_steps 5)
step "trainer under the image's NumPy 2 (must refuse, exit 3)"
python3 -m trainer "${SEED[@]}"; echo "exit=$?"
step "carry NumPy 1"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PYTHONPATH"
python3 -m envdoctor check --stack lora-cu130-2026.11 --no-color; echo "exit=$?"
step "trainer, seed flags"
python3 -m trainer "${SEED[@]}" 2>&1 | grep -v "it/s]$" | tail -40; echo "exit=${PIPESTATUS[0]}"
cp /tmp/ck/summary.json "$OUT/train-summary.json" 2>/dev/null
step "merge"
python3 -m trainer merge --base_model /tmp/llama8b --adapter_path /tmp/ck/adapter --output_dir /tmp/ck/merged \
    --device cuda; echo "exit=$?"
step "validate"
python3 -m trainer validate --model_path /tmp/ck/merged --test_set /tmp/val.jsonl --base_model /tmp/llama8b; echo "exit=$?"
cp /tmp/ck/merged/validation_report.json "$OUT/" 2>/dev/null
exit 0
