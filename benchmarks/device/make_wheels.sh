#!/usr/bin/env bash
# Downloads a wheel set the benchmark suites need on the device (CPython 3.12, manylinux x86_64) into DIR.
#   numpy1  the trainer's NumPy-1 stack beside the device image's torch 2.11 / transformers 5.17: numpy 1.26.4,
#           scipy, datasets, trl, dill, multiprocess (the gate refuses NumPy 2; the image ships NumPy 2)
#   peers   Unsloth, Liger and what they need on the image's NumPy 2 (benchmarks/peers/peer_wheels.sh, trimmed)
# Usage: bash benchmarks/device/make_wheels.sh numpy1|peers DIR
#   then pass DIR to benchmarks/run_suite.py as --wheels (numpy1) or --peer-wheels (peers).
# PYTHON: the interpreter whose pip downloads (default python3). Nothing is installed here.
set -euo pipefail
usage() { echo "usage: make_wheels.sh numpy1|peers DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
set_name=$1 dir=$2
here=$(cd "$(dirname "$0")" && pwd)
case "$set_name" in
    numpy1)
        mkdir -p "$dir"
        "${PYTHON:-python3}" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
            --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
            --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            -d "$dir" numpy==1.26.4 scipy==1.17.1 datasets==5.2.0 trl==1.16.0 dill==0.4.1 multiprocess==0.70.19
        ;;
    peers)
        bash "$here/../peers/peer_wheels.sh" "$dir"
        ;;
    *) usage ;;
esac
ls -1 "$dir"
du -sh "$dir"
