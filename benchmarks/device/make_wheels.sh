#!/usr/bin/env bash
# Downloads a wheel set the benchmark suites need on the device (CPython 3.12, manylinux x86_64) into DIR.
#   numpy1  the trainer's NumPy-1 stack beside the device image's torch 2.11 / transformers 5.17: numpy 1.26.4,
#           scipy, datasets, dill, multiprocess (the gate refuses NumPy 2; the image ships NumPy 2)
#   peers   Unsloth, Liger and what they need on the image's NumPy 2 (benchmarks/peers/peer_wheels.sh, trimmed)
#   clearml ClearML and what the image lacks of its needs: the second tracker of the conventions suite (offline)
# Usage: bash benchmarks/device/make_wheels.sh numpy1|peers|clearml DIR
#   then pass DIR to benchmarks/run_suite.py as --wheels (numpy1), --peer-wheels (peers) or --tracker-wheels.
# PYTHON: the interpreter whose pip downloads (default python3). Nothing is installed here.
set -euo pipefail
usage() { echo "usage: make_wheels.sh numpy1|peers|clearml DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
set_name=$1 dir=$2
here=$(cd "$(dirname "$0")" && pwd)
download() {
    mkdir -p "$dir"
    "${PYTHON:-python3}" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$dir" "$@"
}
case "$set_name" in
    numpy1)
        download numpy==1.26.4 scipy==1.17.1 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
        ;;
    clearml)
        download clearml==2.1.12 furl==2.1.4 orderedmultidict==1.0.2 jsonschema==4.26.0 \
            jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 pathlib2==2.3.7.post1 \
            pyjwt==2.15.1
        ;;
    peers)
        bash "$here/../peers/peer_wheels.sh" "$dir"
        ;;
    *) usage ;;
esac
ls -1 "$dir"
du -sh "$dir"
