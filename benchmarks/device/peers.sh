#!/usr/bin/env bash
# The peers of the speed issue, each run on the device in one invocation with the plain baseline beside it
# (figures move up to 20% between runs: compare ratios). Needs the wheels of benchmarks/peers/peer_wheels.sh
# carried as .whl-peers (Unsloth 2026.10.9, Liger 0.8.5, ...) on the image's NumPy 2 stack.
# Usage (device): bash benchmarks/device/peers.sh [STEPS] [all|plain|unsloth]
#   plain: the two HF + PEFT baselines and packing + FlexAttention + Liger; unsloth: Unsloth's packed and fixed runs
#   (two GPUs can run the halves side by side).
#   PEERS_REUSE_MODEL=1: /tmp/llama8b already holds unsloth_packed.py's build (or unsloth_backend.py's, the same
#   config, seed and tokenizer), so the 16 GB build is skipped. The wheels are installed once into /tmp/peers.
#   PEER_TIMEOUT: seconds each peer may run (default 200).
set -uo pipefail
cd "$(dirname "$0")/../peers"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1
STEPS=${1:-25}
GROUP=${2:-all}
case "$GROUP" in all|plain|unsloth) ;; *) echo "peers.sh: unknown group '$GROUP': all, plain or unsloth"; exit 2 ;; esac
if [ ! -f /tmp/peers/unsloth/__init__.py ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/peers \
        ../../.whl-peers/*.whl || exit 1
fi
export PYTHONPATH=/tmp/peers
run() { echo; echo "=== $*"; timeout "${PEER_TIMEOUT:-200}" python3 "$@" 2>&1 | grep -E "samples/h|tok/s|isolation|Error|error" | tail -4; }
if [ "$GROUP" != unsloth ]; then
    run lora_baseline_varlen.py
    run packed_reference.py 4096 no-ckpt "$STEPS" flex_attention liger
fi
if [ "$GROUP" != plain ]; then
    [ -n "${PEERS_REUSE_MODEL:-}" ] && [ -f /tmp/llama8b/config.json ] || run unsloth_packed.py build
    run unsloth_packed.py 8192 none "$STEPS"
    run unsloth_packed.py 2048 none 15 fixed4
fi
[ "$GROUP" = unsloth ] || run lora_baseline.py
