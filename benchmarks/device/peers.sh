#!/usr/bin/env bash
# The peers (benchmarks/peers/: plain HF + PEFT baselines, packing + FlexAttention + Liger, Unsloth), each in its own
# process on one GPU. Figures move up to 20% between runs: compare each peer with the plain baseline of the same run.
# The peers' wheels (make_wheels.sh peers) must be importable: run_suite.py puts them on PYTHONPATH (suites
# peers-plain and peers-unsloth), or install them yourself with pip install --target and set PYTHONPATH.
# Usage: bash benchmarks/device/peers.sh [STEPS] [all|plain|unsloth]
#   plain: the two HF + PEFT baselines and packing + FlexAttention + Liger; unsloth: Unsloth's packed and fixed runs
#   (two GPUs can run the halves side by side).
# Unsloth's script loads its model from /tmp/llama8b (a path fixed in the peer script); it is built there first
# unless it already holds config.json (PEERS_REUSE_MODEL=1 reuses any model there, e.g. unsloth_backend.py's build,
# which has the same config, seed and tokenizer). PEER_TIMEOUT: seconds each peer may run (default 200).
set -uo pipefail
cd "$(dirname "$0")/../peers" || exit 2
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1
STEPS=${1:-25}
GROUP=${2:-all}
case "$GROUP" in all|plain|unsloth) ;; *) echo "peers.sh: unknown group '$GROUP': all, plain or unsloth" >&2; exit 2 ;; esac
failed=0
run() {
    echo
    echo "=== $*"
    timeout "${PEER_TIMEOUT:-200}" python3 "$@" 2>&1 | grep -E "samples/h|tok/s|isolation|Error|error" | tail -4
    local code=${PIPESTATUS[0]}
    echo "exit=$code"
    [ "$code" -eq 0 ] || failed=1
    return "$code"
}
if [ "$GROUP" != unsloth ]; then
    run lora_baseline_varlen.py
    run packed_reference.py 4096 no-ckpt "$STEPS" flex_attention liger
fi
if [ "$GROUP" != plain ]; then
    if [ ! -f /tmp/llama8b/config.json ] || { [ -z "${PEERS_REUSE_MODEL:-}" ] && [ ! -f /tmp/llama8b/.peers-build ]; }
    then
        run unsloth_packed.py build && touch /tmp/llama8b/.peers-build
    fi
    run unsloth_packed.py 8192 none "$STEPS"
    run unsloth_packed.py 2048 none 15 fixed4
fi
[ "$GROUP" = unsloth ] || run lora_baseline.py
exit "$failed"
