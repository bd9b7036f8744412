#!/usr/bin/env bash
# One device machine session for the speed (12), Unsloth backend (13) and 2-GPU (8) issues, in three calls made back
# to back on the same warm nvidia-h200-x2 machine (/tmp survives between them; the wheel sets together exceed what
# one call may carry). Each part writes its logs and JSON to $OUT and keeps inside its own time limit.
#
#   bash benchmarks/device/session.sh speed     # carry .whl (NumPy-1 stack)
#       GPU 0: train_speed.py (baseline beside the trainer's set-ups, both shapes, profile of the trainer's path)
#       GPU 1: the Llama-3.1-8B-shaped model + data, the seed's flags with --torch_compile (e2e.sh compile), then
#              unsloth_backend.py's base model (for the third call)
#   bash benchmarks/device/session.sh scaling   # carry .whl-peers (installed into /tmp/peers for the third call)
#       GPUs 0+1: scaling.py: the trainer under torchrun on 1 and 2 GPUs (fixed 2,048-token samples), then the
#                 2-GPU checkpoint resumed on 1 GPU
#   bash benchmarks/device/session.sh backends  # no carry
#       GPU 0: peers.sh (baseline, packing + FlexAttention + Liger, Unsloth) on the image's NumPy 2, then the trainer
#              CLI with --backend auto on fixed rows (Unsloth chosen) and its checkpoint resumed with --backend hf
#       GPU 1: unsloth_backend.py: both backends on the same batch, adapters across, a merge from each
# A second machine session, two calls back to back:
#   bash benchmarks/device/session.sh trainer      # carry .whl
#       GPU 0: the trainer CLI (scaling.py --launcher python) at the seed's flags on var-length chat rows and on fixed
#              2,048-token samples, with --packing --torch_compile, and the seed's flags as they are
#       GPU 1: train_speed.py trainer+compile with its profile; unsloth_backend.py's base model for the next call
#   bash benchmarks/device/session.sh unsloth_cli  # carry .whl-peers (with fsspec 2026.2.0, which datasets 4.8.5 needs)
#       envdoctor check with Unsloth's stack beside NumPy 1; the trainer CLI with --backend auto on fixed rows
#       (Unsloth chosen), its checkpoint resumed with --backend hf
# A third machine session (fused LoRA), two calls back to back on a warm nvidia-h200-x2:
#   bash benchmarks/device/session.sh cli          # carry .whl
#       the trainer CLI (--fused_lora auto: on) at the seed's flags with --packing --torch_compile: GPU 0 on
#       var-length chat rows, GPU 1 on fixed 2,048-token samples; then GPU 1 builds unsloth_backend.py's base model
#       and runs the CUDA-only attention tests
#   bash benchmarks/device/session.sh speed_peers  # carry .whl-peers
#       GPU 0: train_speed.py on the image's own stack (it needs no NumPy 1): the baseline, the trainer's path before
#              fused LoRA (packed-flex+fce+compile), with it but with transformers' mask and the eager loss
#              arithmetic (+hfmask+eagerce), as it is (trainer+compile) and in the CLI's row layout (+2rows), both
#              shapes, profiles of the last two; then trainer+compile on rows of 8,192 tokens while time is left
#       GPU 1: peers.sh (baseline, packing + FlexAttention + Liger, Unsloth) on the model built by the cli part
# The same two calls measured the joined-GEMM LoRA variant (machine session G, benchmarks/README.md section 7).
#   bash benchmarks/device/session.sh cli_default  # carry .whl; one H200 is enough
#       the trainer CLI at the seed's flags as they are (--torch_compile, no --packing) on var-length chat rows
#   bash benchmarks/device/session.sh scaling_packed  # carry .whl; 2 x H200
#       the trainer CLI under torchrun on 2 GPUs, --packing --torch_compile on var-length chat rows
# Machine session L (2026-11-30, session 7), calls on one warm 2 x H200:
#   bash benchmarks/device/session.sh experiments     # no carry: train_speed A/Bs on the image's stack
#       GPU 0: fixed rows, trainer+compile+2rows beside +cudagraphs and +autotune, a profile (call 1 also ran
#              +nostack, a variant not kept: benchmarks/README.md section 7)
#       GPU 1: the CUDA-only tests, fixed rows of 4 x 2,048 (+budget0.6), var rows
# then, one H200 (no 2-GPU machine was lent any more), two calls on one warm machine:
#   bash benchmarks/device/session.sh autotune_cli    # carry .whl: the trainer CLI on fixed rows, --packing
#       --torch_compile (mode auto: max-autotune-no-cudagraphs)
#   bash benchmarks/device/session.sh autotune_var    # no carry: train_speed var rows, trainer+compile beside
#       +autotune, a profile of +autotune
#   bash benchmarks/device/session.sh autotune_fixed  # no carry: fixed rows +2rows+autotune and its profile
# machine session O (2 x H200), calls back to back on one warm machine (P: cli_var_budget on a fresh one):
#   bash benchmarks/device/session.sh tuned_speed   # no carry: train_speed, the tuned compile mode on var rows (GPU 0)
#       and on the seed's 4 x 2,048 rows with LoRA dropout 0.05, +budget0.6, and a profile (GPU 1)
#   bash benchmarks/device/session.sh tuned_peers   # carry .whl-peers: peers.sh, plain and Unsloth halves side by side
# then, on the same warm machine:
#   bash benchmarks/device/session.sh tuned_cli     # carry .whl: the CLI at the seed's flags + --packing
#       --torch_compile on fixed rows (GPU 0); train_speed's 4 x 2,048 rows without LoRA dropout (GPU 1)
#   bash benchmarks/device/session.sh tuned_cli_more  # carry .whl: the CLI on fixed rows with
#       --activation_memory_budget 0.6 (GPU 0) and on var-length chat rows (GPU 1)
#   CLI_EXTRA=--torch_compile_mode=default VAR_STEPS=16 bash benchmarks/device/session.sh cli_var_budget
#       # carry .whl: var chat rows with --activation_memory_budget 0.6, one process with both GPUs visible
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false UNSLOTH_DISABLE_STATISTICS=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
STACK=lora-cu130-2026.11
START=$SECONDS
elapsed() { echo $((SECONDS - START)); }
TUNING_NOISE='[Ww]arn|triton_[a-z_]+[0-9]+ |AUTOTUNE|strides|dtypes|select_al|num_choices|^  (mm|addmm|bmm) '  # case matters
without_progress() {  # without_progress FILE: the log without tqdm's progress-bar lines and blank lines
    tr '\r' '\n' < "$1" | grep -v -E 'it/s\]$|s/it\]$|^\s*$'
}
install() {  # install DIR WHEEL...: unpacked with --target, no index
    local target=$1; shift
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$target" "$@"
}

speed() {
    nvidia-smi -L
    install /tmp/site .whl/*.whl || exit 1
    install /tmp/np1 .whl/numpy-*.whl .whl/scipy-*.whl || exit 1
    (
        export CUDA_VISIBLE_DEVICES=0 PYTHONPATH=/tmp/site:$REPO/src
        timeout -s INT -k 15 "${SPEED_LIMIT:-520}" python3 benchmarks/train_speed.py --steps 8 --warmup 3 \
            --setups packed-sdpa,packed-flex,trainer,trainer+compile,trainer+ckpt --profile trainer \
            --json-out "$OUT/train_speed.json" > "$OUT/train_speed.log" 2>&1
        echo "train_speed exit=$? at $(elapsed) s" >> "$OUT/train_speed.log"
    ) &
    (
        export CUDA_VISIBLE_DEVICES=1
        COMPILE_LIMIT=240 bash benchmarks/device/e2e.sh 4 compile
        echo "e2e compile done at $(elapsed) s"
        PYTHONPATH=$REPO/src timeout 170 python3 benchmarks/unsloth_backend.py build
        echo "unsloth_backend build exit=$? at $(elapsed) s"
    ) > "$OUT/gpu1.log" 2>&1 &
    wait
    tail -n 60 "$OUT/gpu1.log"
    without_progress "$OUT/train_speed.log" | tail -n 60
}

scaling() {
    nvidia-smi -L
    (install /tmp/peers .whl-peers/*.whl && echo "peer wheels installed at $(elapsed) s") &
    local flags=(--model /tmp/llama8b --stack "$STACK" --gpus 1,2 --steps 14 --warmup-steps 4 --resume
                 --resume-steps 3 --workdir /tmp/scaling --json-out "$OUT/scaling.json" --run-timeout 150)
    PYTHONPATH=/tmp/site:$REPO/src timeout -k 15 "${SCALING_LIMIT:-330}" python3 benchmarks/scaling.py "${flags[@]}"
    echo "scaling exit=$? at $(elapsed) s"
    if grep -q "out of memory" /tmp/scaling/gpus-1.log 2>/dev/null && [ "$(elapsed)" -lt 120 ]; then
        echo "1-GPU run out of memory: again with --gradient_checkpointing"
        PYTHONPATH=/tmp/site:$REPO/src timeout -k 15 240 python3 benchmarks/scaling.py "${flags[@]}" \
            --trainer-arg=--gradient_checkpointing
        echo "scaling (checkpointing) exit=$? at $(elapsed) s"
    fi
    for log in /tmp/scaling/*.log; do without_progress "$log" > "$OUT/$(basename "$log")"; done
    tail -n 25 "$OUT/resume-2-on-1.log" 2>/dev/null
    wait
}

backends() {
    nvidia-smi -L
    [ -f /tmp/unsloth_backend/base/config.json ] || { echo "no /tmp/unsloth_backend/base: run the speed part first"; exit 1; }
    rm -rf /tmp/llama8b && ln -s /tmp/unsloth_backend/base /tmp/llama8b  # the peers' model: same build, reused
    (
        export CUDA_VISIBLE_DEVICES=0
        PEERS_REUSE_MODEL=1 PEER_TIMEOUT=100 timeout -k 10 "${PEERS_LIMIT:-380}" bash benchmarks/device/peers.sh 20
        echo "peers done at $(elapsed) s"
        local left=$(( ${BACKENDS_LIMIT:-540} - $(elapsed) ))
        if [ "$left" -gt 120 ]; then cli_backends "$left"; else echo "no time left for the trainer CLI runs"; fi
    ) > "$OUT/gpu0.log" 2>&1 &
    (
        export CUDA_VISIBLE_DEVICES=1 PYTHONPATH=/tmp/np1:/tmp/peers:$REPO/src
        timeout -k 15 "${BACKENDS_LIMIT:-540}" python3 benchmarks/unsloth_backend.py --steps 10
        echo "unsloth_backend exit=$? at $(elapsed) s"
    ) > "$OUT/unsloth_backend.log" 2>&1 &
    wait
    without_progress "$OUT/gpu0.log" | tail -n 70
    grep -v -E 'it/s\]$' "$OUT/unsloth_backend.log" | tail -n 40
}

trainer() {  # the trainer CLI itself at the seed's flags: its fast path (--packing --torch_compile) and default path
    nvidia-smi -L
    install /tmp/site .whl/*.whl || exit 1
    install /tmp/np1 .whl/numpy-*.whl .whl/scipy-*.whl || exit 1
    (
        export CUDA_VISIBLE_DEVICES=1 PYTHONPATH=/tmp/site:$REPO/src
        timeout -s INT -k 15 240 python3 benchmarks/train_speed.py --steps 8 --warmup 3 --setups trainer+compile \
            --profile trainer+compile --json-out "$OUT/train_speed_compile.json"
        echo "train_speed exit=$? at $(elapsed) s"
        PYTHONPATH=$REPO/src timeout 120 python3 benchmarks/unsloth_backend.py build
        echo "unsloth_backend build exit=$? at $(elapsed) s"
    ) > "$OUT/gpu1.log" 2>&1 &
    (
        export CUDA_VISIBLE_DEVICES=0
        python3 benchmarks/device/make_llama8b.py /tmp/llama8b 2>&1 | grep -v "it/s\]"
        python3 benchmarks/device/dataset_words.py /tmp/train.jsonl 4000 0
        export PYTHONPATH=/tmp/site:$REPO/src
        local common=(--model /tmp/llama8b --stack "$STACK" --gpus 1 --launcher python --run-timeout 170)
        echo "=== var-length chat rows, the seed's flags + --packing --torch_compile"
        python3 benchmarks/scaling.py "${common[@]}" --dataset /tmp/train.jsonl --steps 24 --warmup-steps 6 \
            --trainer-arg=--packing --trainer-arg=--torch_compile --workdir /tmp/cli-var --json-out "$OUT/cli_var.json"
        echo "=== fixed 2,048-token samples, the seed's flags + --packing --torch_compile"
        python3 benchmarks/scaling.py "${common[@]}" --steps 16 --warmup-steps 6 --trainer-arg=--packing \
            --trainer-arg=--torch_compile --workdir /tmp/cli-fixed --json-out "$OUT/cli_fixed.json"
        echo "=== var-length chat rows, the seed's flags as they are (--torch_compile, no --packing)"
        python3 benchmarks/scaling.py "${common[@]}" --dataset /tmp/train.jsonl --steps 16 --warmup-steps 6 \
            --trainer-arg=--torch_compile --workdir /tmp/cli-default --json-out "$OUT/cli_default.json"
        echo "trainer CLI runs done at $(elapsed) s"
    ) > "$OUT/gpu0.log" 2>&1 &
    wait
    grep -E "^===|GPU\(s\)|exit|done at" "$OUT/gpu0.log"
    grep -h -E "packing:|loss:|compiled|GiB" /tmp/cli-*/gpus-1.log 2>/dev/null | grep "\[trainer\]" | head -20
    without_progress "$OUT/gpu1.log" | tail -n 40
}

unsloth_cli() {  # carry .whl-peers (fsspec 2026.2.0 included); after `trainer` on the same warm machine
    nvidia-smi -L
    install /tmp/peers .whl-peers/*.whl || exit 1
    [ -f /tmp/unsloth_backend/base/config.json ] || { echo "no /tmp/unsloth_backend/base: run the trainer part first"; exit 1; }
    PYTHONPATH=/tmp/np1:/tmp/peers:$REPO/src python3 -m envdoctor check --stack "$STACK" --no-color
    echo "check exit=$?"
    CUDA_VISIBLE_DEVICES=0 cli_backends 400
}

cli_backends() {  # cli_backends SECONDS: the trainer CLI with --backend auto (fixed rows), resumed with --backend hf
    export PYTHONPATH=/tmp/np1:/tmp/peers:$REPO/src
    python3 - <<'PY'
import json, random
rng = random.Random(0)
with open("/tmp/fixed_t.jsonl", "w") as f:
    for _ in range(64):
        f.write(json.dumps({"text": " ".join(f"t{rng.randrange(4, 128256)}" for _ in range(2100))}) + "\n")
PY
    local common=(--model_name /tmp/unsloth_backend/base --dataset_path /tmp/fixed_t.jsonl --dataset_format text
                  --max_seq_length 2048 --truncate_long_rows --per_device_train_batch_size 4
                  --gradient_accumulation_steps 2 --logging_steps 1 --save_steps 4 --stack "$STACK"
                  --output_dir /tmp/ck-backend)
    rm -rf /tmp/ck-backend
    echo "=== python -m trainer --backend auto (fixed rows, no --packing), 4 steps"
    timeout -k 10 $(( $1 / 2 )) python3 -m trainer "${common[@]}" --backend auto --max_steps 4
    echo "exit=$? at $(elapsed) s"
    echo "=== the same run continued with --backend hf from checkpoint-4, to step 6"
    timeout -k 10 $(( $1 / 2 - 10 )) python3 -m trainer "${common[@]}" --backend hf --max_steps 6 \
        --resume_from_checkpoint /tmp/ck-backend/checkpoint-4
    echo "exit=$? at $(elapsed) s"
    cp /tmp/ck-backend/summary.json "$OUT/backend-summary.json" 2>/dev/null
}

cli_machine() {  # the trainer CLI's parts: the NumPy-1 stack (carry .whl), the 8B-shaped model, the chat rows
    nvidia-smi -L
    install /tmp/site .whl/*.whl || exit 1
    install /tmp/np1 .whl/numpy-*.whl .whl/scipy-*.whl || exit 1
    python3 benchmarks/device/make_llama8b.py /tmp/llama8b-cli 2>&1 | grep -v "it/s\]"
    python3 benchmarks/device/dataset_words.py /tmp/train.jsonl 4000 0
}

packed_cli() {  # packed_cli LIMIT NAME [scaling.py args]: the CLI on one GPU, the seed's flags + --packing
    local limit=$1 name=$2; shift 2  # --torch_compile; workdir /tmp/NAME, $OUT/NAME.log, $OUT/NAME (- as _).json
    PYTHONPATH=/tmp/site:$REPO/src timeout -k 5 "$limit" python3 benchmarks/scaling.py --model /tmp/llama8b-cli \
        --stack "$STACK" --gpus 1 --launcher python --run-timeout "$limit" --trainer-arg=--packing \
        --trainer-arg=--torch_compile --workdir "/tmp/$name" --json-out "$OUT/${name//-/_}.json" "$@"
    echo "$name exit=$? at $(elapsed) s"
    without_progress "/tmp/$name/gpus-1.log" > "$OUT/$name.log" 2>/dev/null
}

cli() {
    cli_machine
    local common=(--model /tmp/llama8b-cli --stack "$STACK" --gpus 1 --launcher python --run-timeout 130)
    (
        export CUDA_VISIBLE_DEVICES=0 PYTHONPATH=/tmp/site:$REPO/src
        echo "=== var-length chat rows, the seed's flags + --packing --torch_compile (--fused_lora auto)"
        python3 benchmarks/scaling.py "${common[@]}" --dataset /tmp/train.jsonl --steps 24 --warmup-steps 6 \
            --trainer-arg=--packing \
            --trainer-arg=--torch_compile --workdir /tmp/cli-var --json-out "$OUT/cli_var.json"
        echo "done at $(elapsed) s"
    ) > "$OUT/gpu0.log" 2>&1 &
    (
        export CUDA_VISIBLE_DEVICES=1 PYTHONPATH=/tmp/site:$REPO/src
        echo "=== fixed 2,048-token samples, the seed's flags + --packing --torch_compile (rows of one sample: SDPA)"
        python3 benchmarks/scaling.py "${common[@]}" --steps 16 --warmup-steps 6 \
            --trainer-arg=--packing --trainer-arg=--torch_compile --workdir /tmp/cli-fixed \
            --json-out "$OUT/cli_fixed.json"
        echo "done at $(elapsed) s"
        PYTHONPATH=$REPO/src timeout 90 python3 benchmarks/unsloth_backend.py build
        echo "unsloth_backend build exit=$? at $(elapsed) s"
        PYTHONPATH=$REPO/src timeout 120 python3 -m pytest -q -p no:cacheprovider -k cuda tests/trainer/test_attention.py
        echo "CUDA attention tests exit=$? at $(elapsed) s"
    ) > "$OUT/gpu1.log" 2>&1 &
    wait
    cat "$OUT/gpu0.log" "$OUT/gpu1.log" | grep -E "^===|GPU\(s\)|exit|done at|Error|passed|failed"
    for log in /tmp/cli-*/gpus-1.log; do
        [ -f "$log" ] || continue
        local kept="$OUT/$(basename "$(dirname "$log")").log"
        without_progress "$log" > "$kept"
        grep -E "\[trainer\].*(fused LoRA|packing:|loss:|compiled|GiB)|'grad_norm'" "$kept" | sed -n '1,5p;$p' | cut -c1-220
    done
}

speed_peers() {
    nvidia-smi -L
    [ -f /tmp/unsloth_backend/base/config.json ] || { echo "no /tmp/unsloth_backend/base: run the cli part first"; exit 1; }
    rm -rf /tmp/llama8b && ln -s /tmp/unsloth_backend/base /tmp/llama8b
    install /tmp/peers .whl-peers/*.whl || exit 1
    local limit=${SPEED_PEERS_LIMIT:-400}
    (
        export CUDA_VISIBLE_DEVICES=0 PYTHONPATH=$REPO/src
        timeout -s INT -k 10 "$limit" python3 benchmarks/train_speed.py --steps 8 --warmup 3 \
            --setups packed-flex+fce+compile,trainer+compile+hfmask+eagerce,trainer+compile,trainer+compile+2rows \
            --profile trainer+compile,trainer+compile+2rows \
            --json-out "$OUT/train_speed.json"
        echo "train_speed exit=$? at $(elapsed) s"
        local left=$(( limit - $(elapsed) - 10 ))
        if [ "$left" -gt 100 ]; then
            timeout -s INT -k 5 "$left" python3 benchmarks/train_speed.py --steps 6 --warmup 3 \
                --row-tokens 8192 --setups trainer+compile --json-out "$OUT/train_speed_8192.json"
            echo "train_speed 8192 exit=$? at $(elapsed) s"
        else
            echo "train_speed 8192 skipped: ${left} s left"
        fi
    ) > "$OUT/gpu0.log" 2>&1 &
    (
        export CUDA_VISIBLE_DEVICES=1
        PEERS_REUSE_MODEL=1 PEER_TIMEOUT=100 timeout -k 10 "$limit" bash benchmarks/device/peers.sh 20
        echo "peers done at $(elapsed) s"
    ) > "$OUT/peers.log" 2>&1 &
    wait
    without_progress "$OUT/peers.log" | grep -v "could not be imported" | tail -n 30
    without_progress "$OUT/gpu0.log" | grep -v warn | tail -n 45
}

cli_default() {  # the seed's flags as they are (no --packing): padded batches, SDPA through trainer.attention
    cli_machine
    echo "=== var-length chat rows, the seed's flags as they are (--torch_compile, no --packing)"
    PYTHONPATH=/tmp/site:$REPO/src python3 benchmarks/scaling.py --model /tmp/llama8b-cli --stack "$STACK" --gpus 1 \
        --launcher python --run-timeout 150 --dataset /tmp/train.jsonl --steps 16 --warmup-steps 6 \
        --trainer-arg=--torch_compile --workdir /tmp/cli-default --json-out "$OUT/cli_default.json"
    without_progress /tmp/cli-default/gpus-1.log > "$OUT/cli-default.log"
    grep -E "\[trainer\].*(attention|loss:|compiled|GiB)" "$OUT/cli-default.log" | cut -c1-220
}

scaling_packed() {  # the trainer CLI under torchrun on 2 GPUs with --packing --torch_compile (DDP + the fused loss)
    cli_machine
    PYTHONPATH=/tmp/site:$REPO/src timeout -k 10 "${SCALING_LIMIT:-190}" python3 benchmarks/scaling.py \
        --model /tmp/llama8b-cli --stack "$STACK" --gpus 2 --dataset /tmp/train.jsonl --steps "${SCALING_STEPS:-14}" --warmup-steps 4 \
        --trainer-arg=--packing --trainer-arg=--torch_compile --trainer-arg=--torch_compile_mode="${COMPILE_MODE:-auto}" \
        --workdir /tmp/scaling-packed --run-timeout $(( ${SCALING_LIMIT:-190} - 10 )) \
        --json-out "$OUT/scaling_packed.json"
    echo "scaling exit=$? at $(elapsed) s"
    without_progress /tmp/scaling-packed/gpus-2.log > "$OUT/scaling-packed.log"
    grep -E "\[trainer\].*(attention|loss:|compiled|GiB)|'grad_norm'" "$OUT/scaling-packed.log" | sed -n '1,5p;$p' | cut -c1-220
}

experiments() {  # A/B of the ideas of 2026-11-30 (session 7) on fixed 2,048-token rows; no carry, 2 x H200
    nvidia-smi -L
    local limit=${EXPERIMENTS_LIMIT:-540}
    (
        export CUDA_VISIBLE_DEVICES=0 PYTHONPATH=$REPO/src
        timeout -s INT -k 10 "$limit" python3 benchmarks/train_speed.py --shape fixed --steps 8 --warmup 3 \
            --setups trainer+compile+2rows,trainer+compile+2rows+cudagraphs,trainer+compile+2rows+autotune \
            --profile trainer+compile+2rows --json-out "$OUT/experiments_fixed.json"
        echo "train_speed fixed exit=$? at $(elapsed) s"
    ) > "$OUT/gpu0.log" 2>&1 &
    (
        export CUDA_VISIBLE_DEVICES=1 PYTHONPATH=$REPO/src
        timeout 100 python3 -m pytest -q -p no:cacheprovider -k cuda tests/trainer/test_fused_lora.py \
            tests/trainer/test_attention.py 2>&1 | tail -n 5
        echo "CUDA tests exit=$? at $(elapsed) s"
        timeout -s INT -k 10 $(( limit * 11 / 20 )) python3 benchmarks/train_speed.py --shape fixed --steps 6 --warmup 3 \
            --row-tokens 8192 --setups trainer+compile+4rows,trainer+compile+4rows+budget0.6 \
            --json-out "$OUT/experiments_4rows.json"
        echo "train_speed 4 rows exit=$? at $(elapsed) s"
        local left=$(( limit - $(elapsed) - 5 ))
        timeout -s INT -k 5 "$left" python3 benchmarks/train_speed.py --shape var --steps 8 --warmup 3 \
            --setups trainer+compile --json-out "$OUT/experiments_var.json"
        echo "train_speed var exit=$? at $(elapsed) s"
    ) > "$OUT/gpu1.log" 2>&1 &
    wait
    without_progress "$OUT/gpu0.log" | grep -v -i warn | tail -n 45
    without_progress "$OUT/gpu1.log" | grep -v -i warn | tail -n 30
}

autotune_cli() {  # the trainer CLI on fixed rows with --packing --torch_compile (mode auto: max-autotune); carry .whl
    cli_machine
    echo "=== fixed 2,048-token samples, the seed's flags + --packing --torch_compile (mode auto: max-autotune)"
    packed_cli "${AUTOTUNE_LIMIT:-480}" cli-fixed --steps 16 --warmup-steps 6
    grep -E "\[trainer\].*(fused LoRA|attention|loss:|compiled|GiB)" "$OUT/cli-fixed.log" | cut -c1-220
}

autotune_speed() {  # autotune_speed SHAPE SETUPS: no carry; train_speed on one shape, a profile of the last set-up
    local shape=$1 setups=$2
    PYTHONPATH=$REPO/src timeout -s INT -k 5 "${AUTOTUNE_LIMIT:-480}" python3 benchmarks/train_speed.py --shape "$shape" \
        --steps 8 --warmup 3 --setups "$setups" --profile "${setups##*,}" --json-out "$OUT/autotune_$shape.json" \
        > "$OUT/autotune_$shape.log" 2>&1
    echo "train_speed $shape exit=$? at $(elapsed) s"
    without_progress "$OUT/autotune_$shape.log" | grep -v -E "$TUNING_NOISE" \
        | tail -n 40
}

autotune_var() {  # var rows, trainer+compile beside +autotune, a profile of +autotune
    autotune_speed var trainer+compile,trainer+compile+autotune
}

autotune_fixed() {  # fixed rows in the CLI's layout with +autotune, and its profile
    autotune_speed fixed trainer+compile+2rows+autotune
}

tuned_speed() {  # machine session O, call 1 (2 x H200, no carry): the tuned path on both shapes, the seed's dropout
    nvidia-smi -L
    local limit=${TUNED_LIMIT:-540}
    (
        export CUDA_VISIBLE_DEVICES=0 PYTHONPATH=$REPO/src
        timeout -s INT -k 10 "$limit" python3 benchmarks/train_speed.py --shape var --steps 8 --warmup 3 \
            --setups trainer+compile+autotune,trainer+compile+autotune+dropout --json-out "$OUT/tuned_var.json"
        echo "train_speed var exit=$? at $(elapsed) s"
    ) > "$OUT/gpu0.log" 2>&1 &
    (  # the seed's batch: 4 rows of 2,048 tokens a micro-step (the CLI's layout at --per_device_train_batch_size 4)
        export CUDA_VISIBLE_DEVICES=1 PYTHONPATH=$REPO/src
        local fixed=trainer+compile+4rows+autotune+dropout
        timeout -s INT -k 10 "$limit" python3 benchmarks/train_speed.py --shape fixed --row-tokens 8192 --steps 6 \
            --warmup 3 --setups "$fixed,$fixed+budget0.6" --profile "$fixed" --json-out "$OUT/tuned_fixed.json"
        echo "train_speed fixed exit=$? at $(elapsed) s"
    ) > "$OUT/gpu1.log" 2>&1 &
    wait
    without_progress "$OUT/gpu0.log" | grep -v -E "$TUNING_NOISE" | tail -n 25
    without_progress "$OUT/gpu1.log" | grep -v -E "$TUNING_NOISE" | tail -n 45
}

tuned_peers() {  # machine session O, call 2 (the same warm machine, carry .whl-peers): the peers, halves side by side
    nvidia-smi -L
    install /tmp/peers .whl-peers/*.whl || exit 1
    local limit=${PEERS_LIMIT:-520}
    (CUDA_VISIBLE_DEVICES=0 PEER_TIMEOUT=170 timeout -k 10 "$limit" bash benchmarks/device/peers.sh 20 plain
     echo "plain peers done at $(elapsed) s") > "$OUT/peers_plain.log" 2>&1 &
    (CUDA_VISIBLE_DEVICES=1 PEER_TIMEOUT=200 timeout -k 10 "$limit" bash benchmarks/device/peers.sh 20 unsloth
     echo "Unsloth peers done at $(elapsed) s") > "$OUT/peers_unsloth.log" 2>&1 &
    wait
    without_progress "$OUT/peers_plain.log" | grep -v "could not be imported" | tail -n 20
    without_progress "$OUT/peers_unsloth.log" | grep -v "could not be imported" | tail -n 20
}

tuned_cli() {  # machine session O, call 3 (carry .whl): GPU 0 the CLI at the seed's flags + --packing
    cli_machine   # --torch_compile on fixed rows; GPU 1 train_speed's 4 x 2,048 rows without LoRA dropout, as the peers
    local limit=${TUNED_LIMIT:-500}
    CUDA_VISIBLE_DEVICES=0 packed_cli "$limit" cli-tuned --steps 16 --warmup-steps 6 > "$OUT/gpu0.log" 2>&1 &
    (
        export CUDA_VISIBLE_DEVICES=1 PYTHONPATH=$REPO/src
        timeout -s INT -k 10 "$limit" python3 benchmarks/train_speed.py --shape fixed --row-tokens 8192 --steps 6 \
            --warmup 3 --setups trainer+compile+4rows+autotune --json-out "$OUT/tuned_fixed_nodropout.json"
        echo "train_speed fixed exit=$? at $(elapsed) s"
    ) > "$OUT/gpu1.log" 2>&1 &
    wait
    without_progress "$OUT/gpu0.log" | tail -n 12
    without_progress "$OUT/gpu1.log" | grep -v -E "$TUNING_NOISE" | tail -n 8
    grep -h -E "\[trainer\].*(fused LoRA|attention|loss:|compiled|GiB)" "$OUT/cli-tuned.log" | cut -c1-220
}

tuned_cli_more() {  # machine session O, call 4 (carry .whl): the CLI at the seed's flags + --packing --torch_compile,
    cli_machine       # GPU 0 fixed rows with --activation_memory_budget 0.6, GPU 1 var-length chat rows
    local limit=${TUNED_LIMIT:-500}
    CUDA_VISIBLE_DEVICES=0 packed_cli "$limit" cli-budget --steps 16 --warmup-steps 6 \
        --trainer-arg=--activation_memory_budget=0.6 > "$OUT/gpu0.log" 2>&1 &
    CUDA_VISIBLE_DEVICES=1 packed_cli "$limit" cli-var --dataset /tmp/train.jsonl --steps 24 --warmup-steps 6 \
        > "$OUT/gpu1.log" 2>&1 &
    wait
    without_progress "$OUT/gpu0.log" | tail -n 6
    without_progress "$OUT/gpu1.log" | tail -n 6
    grep -h -E "\[trainer\].*(packing:|compiled|GiB)" "$OUT/cli-budget.log" "$OUT/cli-var.log" | cut -c1-220
}

cli_var_budget() {  # machine session O, call 5 (carry .whl): var-length chat rows, --activation_memory_budget 0.6
    cli_machine
    local limit=${TUNED_LIMIT:-400}
    packed_cli "$limit" cli-var-budget --trainer-arg=--activation_memory_budget=0.6 --dataset /tmp/train.jsonl \
        ${CLI_EXTRA:+"--trainer-arg=$CLI_EXTRA"} --steps "${VAR_STEPS:-24}" --warmup-steps 5
    grep -h -E "\[trainer\].*(GPUs visible|packing:|compiled|GiB)" "$OUT/cli-var-budget.log" | cut -c1-220
}

case "${1:-}" in
    speed|scaling|backends|trainer|unsloth_cli|cli|speed_peers|cli_default|scaling_packed|experiments) "$1" ;;
    autotune_cli|autotune_var|autotune_fixed|tuned_speed|tuned_peers|tuned_cli|tuned_cli_more|cli_var_budget) "$1" ;;
    *) echo "usage: session.sh speed|scaling|backends|trainer|unsloth_cli|cli|speed_peers|cli_default|scaling_packed"\
"|experiments|autotune_cli|autotune_var|autotune_fixed|tuned_speed|tuned_peers|tuned_cli|tuned_cli_more|cli_var_budget"
       exit 2 ;;
esac
