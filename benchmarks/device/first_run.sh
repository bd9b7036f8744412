#!/usr/bin/env bash
# The trainer's first run on one GPU, as a newcomer makes it: the Phase 1A command exactly as the README writes it
# (with --torch_compile), with --max_steps added, then without --torch_compile, then train_speed.py's trainer path
# in the same row layout on the same rows, for the CLI-to-benchmark ratio.
#
# Usage: bash benchmarks/device/first_run.sh MODEL_DIR DATA_JSONL WHEEL_DIR WORK_DIR [PARTS]
#   MODEL_DIR   a Llama-3.1-8B-shaped model; built there with random bf16 weights (make_llama8b.py) if it has no
#               config.json
#   DATA_JSONL  chat rows; written there (dataset_words.py, 4,000 rows, seed 0) if missing
#   WHEEL_DIR   wheels installed with --target into WORK_DIR/site and put first on PYTHONPATH (the NumPy-1 set the
#               trainer's stack needs: make_wheels.sh numpy1); "-" for none: PYTHONPATH as the caller set it
#               (run_suite.py's first-run-* suites install the set and pass "-")
#   WORK_DIR    checkpoints (WORK_DIR/NAME), the wheels' install and the logs
#   PARTS       comma-separated, run in this order (default compiled,eager,speed,as_given):
#     compiled  the seed's command as written (--torch_compile), --max_steps $STEPS
#     eager     the same without --torch_compile
#     speed     train_speed.py --no-baseline, trainer+compile+4rows+autotune+dropout at --row-tokens 8192 (the CLI's
#               4 rows of 2,048 a micro-step, LoRA dropout 0.05) on DATA_JSONL, tokenized as the trainer does
#     as_given  the eager command with --memory_fit off (the settings as given, no memory fitting): calibrates the
#               estimate; on an 80 GB card it may stop with exit 5 (out of memory), which is what it then shows
# Environment: STEPS (default 30), OUT (logs and summaries copied there; default WORK_DIR/out), LIMIT (seconds per
# part, default 420), TRAINER_EXTRA (flags appended to every trainer run).
# Each part's log (progress bars dropped) and summary.json go to OUT as NAME.log and NAME-summary.json.
# On a GPU image that ships NumPy 2 the gate refuses the NumPy-1 set beside the image's contourpy, jaxlib and
# ml-dtypes (NumPy-2-only builds the trainer does not use): `python3 -m pip uninstall -y contourpy jaxlib ml-dtypes`
# first (run_suite.py --uninstall-conflicts).
set -uo pipefail
if [ $# -lt 4 ]; then sed -n '2,26p' "$0" >&2; exit 2; fi
MODEL=$1 DATA=$2 WHEELS=$3 WORK=$4
PARTS=",${5:-compiled,eager,speed,as_given},"
cd "$(dirname "$0")/../.." || exit 2
REPO=$PWD
OUT=${OUT:-$WORK/out}
STEPS=${STEPS:-30}
mkdir -p "$WORK" "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
START=$SECONDS
want() { [[ "$PARTS" == *",$1,"* ]]; }
without_progress() { tr '\r' '\n' < "$1" | grep -v -E 'it/s\]$|s/it\]$|^\s*$'; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if [ "$WHEELS" != "-" ] && [ ! -f "$WORK/site/numpy/__init__.py" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" \
        "$WHEELS"/*.whl || exit 1
fi
export PYTHONPATH="$WORK/site:$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "import torch, transformers, peft, numpy; print('torch', torch.__version__, 'transformers',
transformers.__version__, 'peft', peft.__version__, 'numpy', numpy.__version__)"
if [ ! -f "$MODEL/config.json" ]; then
    python3 benchmarks/device/make_llama8b.py "$MODEL" 2>&1 | grep -v "it/s\]" || exit 1
fi
[ -f "$DATA" ] || python3 benchmarks/device/dataset_words.py "$DATA" 4000 0
echo "model and data ready at $((SECONDS - START)) s"

SEED=(--model_name "$MODEL" --dataset_path "$DATA" --num_train_epochs 3 --per_device_train_batch_size 4
      --gradient_accumulation_steps 2 --dataloader_num_workers 4 --save_steps 2000)
trainer_run() {  # trainer_run NAME FLAGS...: the seed's flags, --max_steps, then FLAGS
    local name=$1; shift
    rm -rf "${WORK:?}/$name"
    echo "=== $name: python -m trainer ${SEED[*]} --output_dir $WORK/$name --max_steps $STEPS $* ${TRAINER_EXTRA:-}"
    # shellcheck disable=SC2086
    timeout -s INT -k 20 "${LIMIT:-420}" python3 -m trainer "${SEED[@]}" --output_dir "$WORK/$name" \
        --max_steps "$STEPS" "$@" ${TRAINER_EXTRA:-} > "$WORK/$name.raw.log" 2>&1
    local code=$?
    without_progress "$WORK/$name.raw.log" > "$OUT/$name.log"
    cp "$WORK/$name/summary.json" "$OUT/$name-summary.json" 2>/dev/null
    grep -E "\[trainer\] (packing|memory|compile cache|--torch_compile|[0-9]+ steps in)|^out of GPU memory" \
        "$OUT/$name.log" | cut -c1-400
    echo "$name exit=$code at $((SECONDS - START)) s"
}

want compiled && trainer_run compiled --torch_compile
want eager && trainer_run eager
if want speed; then
    echo "=== speed: train_speed.py trainer+compile+4rows+autotune+dropout on $DATA"
    # the trainer's own compile cache, so the kernels tuned by the compiled part are reused
    TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/envdoctor-trainer/inductor} \
        timeout -s INT -k 20 "${LIMIT:-420}" python3 benchmarks/train_speed.py --no-baseline --shape var \
        --row-tokens 8192 --setups trainer+compile+4rows+autotune+dropout --steps 20 --warmup 3 \
        --dataset "$DATA" --tokenizer "$MODEL" --json-out "$OUT/speed.json" > "$WORK/speed.raw.log" 2>&1
    code=$?
    without_progress "$WORK/speed.raw.log" | grep -v -E '[Ww]arn|AUTOTUNE|triton_|select_al|num_choices' \
        > "$OUT/speed.log"
    tail -n 4 "$OUT/speed.log"
    echo "speed exit=$code at $((SECONDS - START)) s"
fi
want as_given && trainer_run as_given --memory_fit off
exit 0
