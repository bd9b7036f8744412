#!/bin/bash
# envdoctor installed as a uv tool checks the image's training venv through --python, on a GPU machine.
# Needs .whl-h26/ (carried): uv, envdoctor's wheel (ed/) and its dependencies, pipdeptree and its dependencies (pdt/).
# Writes what it saw under $OUT. Usage: bash benchmarks/device/python_flag.sh
set -u
W=.whl-h26
TARGET=${TARGET:-/opt/torch/.venv/bin/python3}
OUT=${OUT:-/tmp/out}
export UV_TOOL_DIR=/tmp/uvtools UV_TOOL_BIN_DIR=/tmp/uvbin
python3 -m pip install -q --no-index --no-deps --target /tmp/uvpkg $W/uv-*.whl || exit 1
/tmp/uvpkg/bin/uv tool install -q --offline --no-index --find-links $W --find-links $W/ed envdoctor || exit 1
ED=/tmp/uvbin/envdoctor
echo "== $("$ED" --version); tool venv: $(ls $UV_TOOL_DIR); target: $TARGET ($("$TARGET" -V))"
"$TARGET" -c "import envdoctor" 2>&1 | tail -1
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
"$ED" probe --python "$TARGET" -o "$OUT/probe_target.json"; echo "probe rc=$?"
"$ED" check --python "$TARGET" --no-color > "$OUT/check_target.txt" 2>&1; echo "check rc=$?"
tail -3 "$OUT/check_target.txt"
echo "== CUDA_VISIBLE_DEVICES hides every GPU"
for cvd in "" -1 7; do CUDA_VISIBLE_DEVICES=$cvd "$ED" check --python "$TARGET" --json 2>/dev/null \
  | python3 -c "import json,sys; r=json.load(sys.stdin); print(repr('$cvd'), [f['rule'] for f in r['findings'] if f['rule'].startswith('cuda-visible')])"
  CUDA_VISIBLE_DEVICES=$cvd "$TARGET" -c "import torch; print('torch sees', torch.cuda.device_count(), 'GPU(s)')" 2>&1 | tail -1
done
echo "== LD_LIBRARY_PATH"
LIBDIR=$(dirname "$(ls /usr/local/cuda*/lib64/libnvJitLink.so* /usr/local/cuda*/targets/*/lib/libnvJitLink.so* 2>/dev/null | head -1)" 2>/dev/null)
echo "toolkit lib dir: ${LIBDIR:-none}"
[ -n "$LIBDIR" ] && LD_LIBRARY_PATH=$LIBDIR "$ED" check --python "$TARGET" --json 2>/dev/null \
  | python3 -c "import json,sys; r=json.load(sys.stdin); print([(f['rule'], f['severity'], f['fix']) for f in r['findings'] if f['rule'].startswith('ld-')]); print(r['snapshot']['env'])"
echo "== a GPU mostly in use"
"$TARGET" -c "import torch, time; x = torch.empty(int(60e9), dtype=torch.uint8, device='cuda'); print('holding', flush=True); time.sleep(90)" > /tmp/hold.log 2>&1 &
HOLD=$!
for _ in $(seq 60); do grep -q holding /tmp/hold.log && break; sleep 1; done
"$ED" check --python "$TARGET" --json 2>/dev/null | python3 -c "import json,sys; r=json.load(sys.stdin); print([(f['rule'], f['severity'], f['message'], f['fix']) for f in r['findings'] if f['rule'].startswith('gpu-memory')]); print(r['snapshot']['nvidia']['gpus'])"
kill $HOLD; wait $HOLD 2>/dev/null
echo "== timing: check --python from the uv tool install"
python3 benchmarks/python_flag_speed.py --python "$TARGET" --envdoctor "$ED" -n 15
echo "== --deep --python"
START=$(date +%s.%N)
"$ED" check --python "$TARGET" --deep --json > "$OUT/deep_target.json" 2>/dev/null; RC=$?
echo "deep rc=$RC in $(python3 -c "print(round($(date +%s.%N) - $START, 1))") s"
python3 -c "import json; r=json.load(open('$OUT/deep_target.json')); print({k: v['ok'] for k, v in r['snapshot']['smoke'].items()})"
echo "== peers"
python3 -m venv /tmp/pdtvenv && /tmp/pdtvenv/bin/pip install -q --no-index --find-links $W/pdt pipdeptree
PATH=/tmp/uvpkg/bin:/tmp/pdtvenv/bin:$PATH PYTHONPATH=$PWD/src python3 benchmarks/compare_tools.py --python "$TARGET" \
  --envdoctor-python "$UV_TOOL_DIR/envdoctor/bin/python" --no-install --runs 5 | tee "$OUT/compare.md"
