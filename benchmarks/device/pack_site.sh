#!/usr/bin/env bash
# Installs a wheel set (make_wheels.sh) for the device's CPython 3.12 into a scratch site-packages and packs it as one
# xz archive, about 40% smaller than the wheels: the NumPy-1 set (54 MB of wheels, 32 MB packed) then travels to the
# device beside the repository within the 64 MiB a call may carry.
# Usage: bash benchmarks/device/pack_site.sh WHEEL_DIR OUT_DIR
#   writes OUT_DIR/site.tar.xz; pass OUT_DIR to benchmarks/run_suite.py as the set's flag (--wheels), which unpacks
#   it once into WORK/site-NAME. Every wheel in WHEEL_DIR is packed (the suites' file patterns do not apply).
# PYTHON: the interpreter whose pip installs (default python3); nothing is installed into its environment.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: pack_site.sh WHEEL_DIR OUT_DIR" >&2; exit 2; }
wheel_dir=$1 out_dir=$2
shopt -s nullglob
wheels=("$wheel_dir"/*.whl)
[ ${#wheels[@]} -gt 0 ] || { echo "pack_site.sh: $wheel_dir holds no wheels (make them with make_wheels.sh)" >&2; exit 2; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"${PYTHON:-python3}" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --only-binary=:all: \
    --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --target "$scratch/site" "${wheels[@]}"
mkdir -p "$out_dir"
tar -C "$scratch/site" -cf - . | xz -9 -T0 > "$scratch/site.tar.xz"
mv "$scratch/site.tar.xz" "$out_dir/site.tar.xz"
ls -l "$out_dir/site.tar.xz"
